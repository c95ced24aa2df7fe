//! Cross-origin calls from browser applications (the CORS protocol of the
//! Fetch standard). Why it is shaped this way: docs/decisions/0015-cors.md.
//!
//! - Discovery and the JWKS are public documents, readable from any origin
//!   (`Access-Control-Allow-Origin: *`, set where they are served:
//!   [`crate::web::cached`]).
//! - Token, userinfo and revocation ([`client_bound`]): an origin is allowed
//!   when a registered client allows it (the origins of its redirect URIs,
//!   and its `allowed_cors_origins`); once the endpoint knows the client (it
//!   authenticated, or the access token names it: [`OfClient`]) only that
//!   client's origins. An allowed origin is echoed back in
//!   `Access-Control-Allow-Origin`, on errors too, so the application can
//!   read a 400; never `*`, and never `Access-Control-Allow-Credentials`:
//!   these endpoints use no cookies. Every answer carries `Vary: Origin`.
//! - A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`)
//!   answers 204; for an allowed origin with the methods, the request headers
//!   (`Authorization`, `Content-Type`, `DPoP`) and a max-age, for any other
//!   origin with none of them (the browser then makes no call).
//! - Introspection is for servers: no CORS.

use std::collections::BTreeSet;
use std::sync::Arc;

use actix_web::body::BoxBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, HttpResponse, web};

/// The request headers an application may send (RFC 6750 bearer tokens and
/// client credentials, form bodies, RFC 9449 DPoP proofs).
pub const ALLOW_HEADERS: &str = "Authorization, Content-Type, DPoP";
/// Answer headers a script may read besides the CORS-safelisted ones: the
/// bearer-token error (RFC 6750 §3), when to try again (429, 503) and the
/// DPoP nonce to put in the next proof (RFC 9449 §8).
pub const EXPOSE_HEADERS: &str = "WWW-Authenticate, Retry-After, DPoP-Nonce";
/// How long a browser may cache a preflight answer (Chromium caps it at 2 h).
pub const MAX_AGE_SECS: &str = "600";
/// The methods of the token and revocation endpoints.
pub const POST: &str = "POST";
/// The methods of the userinfo endpoint.
pub const GET_POST: &str = "GET, POST";

/// A set of origins: exact ones (`https://app.example`, as a browser writes
/// them in `Origin`), and loopback IP literals allowed on any port
/// (`http://127.0.0.1`, `http://[::1]`: RFC 8252 §7.3 native and
/// development applications, whose port changes from run to run).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Origins {
    exact: BTreeSet<String>,
    any_port: BTreeSet<&'static str>,
}

impl Origins {
    /// An origin allowed exactly as written.
    pub fn add(&mut self, origin: String) {
        self.exact.insert(origin);
    }

    /// `http://127.0.0.1` or `http://[::1]` with any port (or none).
    pub fn add_any_port(&mut self, loopback: &'static str) {
        self.any_port.insert(loopback);
    }

    /// Adds every origin of `other`.
    pub fn extend(&mut self, other: &Origins) {
        self.exact.extend(other.exact.iter().cloned());
        self.any_port.extend(other.any_port.iter().copied());
    }

    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.any_port.is_empty()
    }

    /// Whether the `Origin` header value `origin` is in the set: byte for
    /// byte (no case folding, no default-port removal: browsers send the
    /// serialized origin), or a loopback literal of the set with a port.
    pub fn allows(&self, origin: &str) -> bool {
        self.exact.contains(origin)
            || self.any_port.iter().any(|loopback| {
                origin.strip_prefix(loopback).is_some_and(|rest| {
                    rest.is_empty() || rest.strip_prefix(':').is_some_and(is_port)
                })
            })
    }
}

/// The origin of an http or https URL as a browser serializes it in `Origin`
/// (RFC 6454 §6.2: lower-case scheme and host, no default port, no path):
/// `https://App.example:443/cb` → `https://app.example`. None for other
/// schemes (the custom schemes of native applications have no origin).
pub fn origin_of(uri: &str) -> Option<String> {
    let url = url::Url::parse(uri).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    let origin = url.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

/// A port as written after `host:`: 1 to 65535 in plain decimal (no sign,
/// no leading zero, no percent-encoding).
pub fn is_port(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 5
        && !s.starts_with('0')
        && s.bytes().all(|b| b.is_ascii_digit())
        && s.parse::<u32>().is_ok_and(|p| p <= 65535)
}

/// App data: the origins some registered client allows, for answers given
/// before the endpoint knows the client (preflights, failed
/// authentication).
#[derive(Debug, Default)]
pub struct AnyClient(pub Origins);

/// Request extension set by an endpoint once it knows the client (after
/// client authentication; from the access token at userinfo): from then on
/// the answer is readable only from that client's origins.
#[derive(Debug, Clone)]
pub struct OfClient(pub Arc<Origins>);

/// The middleware of the token, userinfo and revocation endpoints, which
/// accept `methods` (e.g. [`POST`]): answers preflights itself and adds the
/// CORS headers to every other answer when its origin is allowed.
pub async fn client_bound(
    req: ServiceRequest,
    next: Next<BoxBody>,
    methods: &'static str,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let origin = req.headers().get(header::ORIGIN).cloned();
    let any = req.app_data::<web::Data<AnyClient>>().cloned();
    let allowed_by_some_client = |origin: &HeaderValue| {
        let origin = origin.to_str().unwrap_or_default();
        any.as_ref().is_some_and(|any| any.0.allows(origin))
    };

    if req.method() == Method::OPTIONS {
        let mut answer = HttpResponse::NoContent();
        answer
            .insert_header((header::ALLOW, format!("{methods}, OPTIONS")))
            .insert_header((header::VARY, "Origin"));
        let preflight = req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        if let Some(origin) = origin.filter(|o| preflight && allowed_by_some_client(o)) {
            answer
                .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin))
                .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, methods))
                .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS))
                .insert_header((header::ACCESS_CONTROL_MAX_AGE, MAX_AGE_SECS));
        }
        return Ok(req.into_response(answer.finish()));
    }

    let request = req.request().clone();
    let mut res = match next.call(req).await {
        Ok(res) => res,
        Err(e) => ServiceResponse::from_err(e, request),
    };
    let allowed = origin.filter(|o| {
        let of_client = res.request().extensions().get::<OfClient>().cloned();
        match of_client {
            Some(client) => client.0.allows(o.to_str().unwrap_or_default()),
            None => allowed_by_some_client(o),
        }
    });
    let headers = res.headers_mut();
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(origin) = allowed {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSE_HEADERS),
        );
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> Origins {
        let mut o = Origins::default();
        o.add("https://app.example".into());
        o.add_any_port("http://127.0.0.1");
        o
    }

    #[test]
    fn exact_origins_match_byte_for_byte() {
        let o = set();
        assert!(o.allows("https://app.example"));
        for other in [
            "https://app.example/",
            "https://APP.example",
            "https://app.example:443",
            "http://app.example",
            "https://app.example.evil",
            "null",
            "",
        ] {
            assert!(!o.allows(other), "{other}");
        }
    }

    #[test]
    fn a_loopback_literal_matches_on_any_valid_port() {
        let o = set();
        for ok in [
            "http://127.0.0.1",
            "http://127.0.0.1:1",
            "http://127.0.0.1:8080",
            "http://127.0.0.1:65535",
        ] {
            assert!(o.allows(ok), "{ok}");
        }
        for no in [
            "http://127.0.0.1:0",
            "http://127.0.0.1:65536",
            "http://127.0.0.1:08080",
            "http://127.0.0.1:",
            "http://127.0.0.1:+80",
            "http://127.0.0.1:80/",
            "http://127.0.0.1.evil.example",
            "http://127.0.0.1:80@evil.example",
            "https://127.0.0.1:8080",
            "http://127.0.0.2:8080",
            "http://localhost:8080",
            "http://[::1]:8080",
        ] {
            assert!(!o.allows(no), "{no}");
        }
    }

    #[test]
    fn origins_are_serialized_as_browsers_send_them() {
        assert_eq!(
            origin_of("https://App.Example:443/cb?x=1").as_deref(),
            Some("https://app.example")
        );
        assert_eq!(
            origin_of("http://127.0.0.1:18999/spa/cb").as_deref(),
            Some("http://127.0.0.1:18999")
        );
        assert_eq!(
            origin_of("http://[::1]:8080/cb").as_deref(),
            Some("http://[::1]:8080")
        );
        assert_eq!(origin_of("com.example.app:/oauth"), None);
        assert_eq!(origin_of("not a url"), None);
    }

    #[test]
    fn ports_are_plain_decimal_from_1_to_65535() {
        for ok in ["1", "80", "8080", "65535"] {
            assert!(is_port(ok), "{ok}");
        }
        for no in [
            "", "0", "00", "080", "65536", "99999", "123456", "+1", "8O", "%38",
        ] {
            assert!(!is_port(no), "{no}");
        }
    }
}
