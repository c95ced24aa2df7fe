//! Security headers on every response.

use actix_web::middleware::DefaultHeaders;

/// Pages load nothing from elsewhere: one stylesheet of our own, no scripts,
/// no frames.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'";

pub fn security_headers(https: bool) -> DefaultHeaders {
    let mut headers = DefaultHeaders::new()
        .add(("Content-Security-Policy", CONTENT_SECURITY_POLICY))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("Referrer-Policy", "no-referrer"))
        .add(("X-Frame-Options", "DENY"));
    if https {
        headers = headers.add((
            "Strict-Transport-Security",
            "max-age=31536000; includeSubDomains",
        ));
    }
    headers
}
