//! Security headers on every response.
//!
//! Pages load nothing from elsewhere and run no script: their one stylesheet
//! is inline and allowed by its hash, so a page is a single self-contained
//! response wherever the issuer's path puts it.
//!
//! `form-action` is `'self'`. Browsers apply it to every redirect that
//! follows a form submission too (Chrome does), so a form whose answer
//! redirects elsewhere needs that destination allowed: the consent page adds
//! the origin of the application's registered redirect URI
//! ([`form_action_source`]).

use std::sync::LazyLock;

use actix_web::middleware::DefaultHeaders;
use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::pages::STYLESHEET;

/// `'sha256-…'` of the inline stylesheet.
pub static STYLE_HASH: LazyLock<String> = LazyLock::new(|| {
    let hash = digest::digest(&digest::SHA256, STYLESHEET.as_bytes());
    format!("'sha256-{}'", STANDARD.encode(hash.as_ref()))
});

/// Where the forms of a page may send the browser (and be redirected to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormAction {
    /// Our own origin only.
    SelfOnly,
    /// Ours and one more source expression (from [`form_action_source`]).
    SelfAnd(String),
    /// No `form-action`: the Slack stand-in's picker answers with a redirect
    /// to the bridge, which redirects on to an application it cannot know.
    Unrestricted,
}

/// The Content-Security-Policy of a page.
pub fn content_security_policy(form_action: &FormAction) -> String {
    let forms = match form_action {
        FormAction::SelfOnly => " form-action 'self';".to_string(),
        FormAction::SelfAnd(source) => format!(" form-action 'self' {source};"),
        FormAction::Unrestricted => String::new(),
    };
    format!(
        "default-src 'none'; style-src {style}; base-uri 'none';{forms} frame-ancestors 'none'",
        style = *STYLE_HASH
    )
}

/// The CSP source expression that allows navigating to `uri`: its origin
/// (`https://app.example:8443`) for http and https, its scheme (`com.app:`)
/// for the custom schemes of native applications. None when `uri` is not an
/// absolute URL.
pub fn form_action_source(uri: &str) -> Option<String> {
    let url = url::Url::parse(uri).ok()?;
    match url.scheme() {
        "http" | "https" => {
            let origin = url.origin();
            origin.is_tuple().then(|| origin.ascii_serialization())
        }
        scheme => Some(format!("{scheme}:")),
    }
}

/// Headers every page sets itself (so the stand-in's pages have them too);
/// the middleware below adds them to every other response.
pub const PAGE_HEADERS: [(&str, &str); 3] = [
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
];

/// Added to every response of the bridge that does not set them itself.
pub fn security_headers(https: bool) -> DefaultHeaders {
    let mut headers = DefaultHeaders::new().add((
        "Content-Security-Policy",
        content_security_policy(&FormAction::SelfOnly),
    ));
    for header in PAGE_HEADERS {
        headers = headers.add(header);
    }
    if https {
        headers = headers.add((
            "Strict-Transport-Security",
            "max-age=31536000; includeSubDomains",
        ));
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_action_sources_are_origins_or_schemes() {
        let src = |u| form_action_source(u);
        assert_eq!(
            src("https://app.example/cb?x=1").as_deref(),
            Some("https://app.example")
        );
        assert_eq!(
            src("http://127.0.0.1:9/cb").as_deref(),
            Some("http://127.0.0.1:9")
        );
        assert_eq!(
            src("https://app.example:443/cb").as_deref(),
            Some("https://app.example")
        );
        assert_eq!(
            src("com.example.app:/oauth").as_deref(),
            Some("com.example.app:")
        );
        assert_eq!(src("not a url"), None);
    }

    #[test]
    fn the_policy_allows_only_the_inline_stylesheet() {
        let csp = content_security_policy(&FormAction::SelfOnly);
        assert!(csp.starts_with("default-src 'none'; style-src 'sha256-"));
        assert!(csp.contains("form-action 'self';"));
        assert!(csp.ends_with("frame-ancestors 'none'"));
        let with = content_security_policy(&FormAction::SelfAnd("https://a.example".into()));
        assert!(with.contains("form-action 'self' https://a.example;"));
        assert!(!content_security_policy(&FormAction::Unrestricted).contains("form-action"));
    }
}
