//! The middleware every request passes first: a request id, a `tracing` span
//! carrying it, the explicit size limits of the request head, one log line
//! and the HTTP metrics per request.

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest, HttpResponse};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tracing::Instrument;

use super::metrics;

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest incoming `X-Request-Id` that is reused as is.
const MAX_REQUEST_ID_LEN: usize = 64;

/// Longest request target (path and query) answered; longer gets 414. Every
/// legitimate request of ours fits in 2 KiB; authorization requests with an
/// `id_token_hint` stay far below this.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Most bytes of header names and values together; more gets 431. Generous
/// for cookies that sibling sites on a parent domain may add. (actix-web's
/// own, fixed limits are 96 headers and a 128 KiB request head, also 431.)
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

tokio::task_local! {
    /// The id of the request this task serves (set by [`middleware`]), for
    /// code that has no `HttpRequest` at hand, such as the error page.
    static CURRENT: String;
}

/// The id of the request being served by this task, or a fresh one outside
/// a request.
pub fn current_request_id() -> String {
    CURRENT
        .try_with(Clone::clone)
        .unwrap_or_else(|_| new_request_id())
}

/// The id of the request being served, in the request's extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// This request's id (as echoed in `X-Request-Id`); a fresh one if the
/// middleware did not run (unit tests).
pub fn request_id(req: &HttpRequest) -> String {
    req.extensions()
        .get::<RequestId>()
        .map(|id| id.0.clone())
        .unwrap_or_else(new_request_id)
}

/// 96 random bits, 16 characters of base64url.
pub fn new_request_id() -> String {
    let mut bytes = [0u8; 12];
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// An incoming id is reused when it is a short token of letters, digits and
/// `-_.:`; anything else (too long, spaces, quotes, control characters) is
/// replaced, so a client cannot put arbitrary text into our logs.
fn sane_request_id(value: &HeaderValue) -> Option<String> {
    let bytes = value.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= MAX_REQUEST_ID_LEN
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    ok.then(|| String::from_utf8_lossy(bytes).into_owned())
}

/// A bounded label for the method: the standard ones, else `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

fn head_too_large(req: &ServiceRequest) -> Option<(StatusCode, &'static str)> {
    let target = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if target > MAX_URI_BYTES {
        return Some((StatusCode::URI_TOO_LONG, "the request URI is too long"));
    }
    let headers: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if headers > MAX_HEADER_BYTES {
        return Some((
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "the request headers are too large",
        ));
    }
    None
}

/// Request id, span, head limits, log line and metrics around every request.
/// (It must not keep a clone of the `HttpRequest` across the call: routing
/// needs the only reference.)
///
/// The log line names the method, the route and the path, never the query
/// (it carries codes and states) nor any header value.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = Instant::now();
    let id = req
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(sane_request_id)
        .unwrap_or_else(new_request_id);
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = method_label(req.method());
    let span = tracing::info_span!("request", request_id = %id, method);

    let result = async {
        if let Some((status, why)) = head_too_large(&req) {
            tracing::info!(status = status.as_u16(), "{why}");
            let response = HttpResponse::build(status)
                .content_type("text/plain; charset=utf-8")
                .body(why);
            return Ok(req.into_response(response));
        }
        next.call(req).await.map(|r| r.map_into_boxed_body())
    }
    .instrument(span.clone());
    let result = CURRENT.scope(id.clone(), result).await;

    let elapsed = started.elapsed();
    let mut response = match result {
        Ok(response) => response,
        Err(e) => {
            // Handlers turn their errors into responses; only a middleware
            // error lands here. actix-web renders it; it is still counted.
            let status = e.as_response_error().status_code().as_u16();
            span.in_scope(|| tracing::warn!(status, error = %e, "request failed"));
            metrics::http_request("unmatched", method, status, elapsed);
            return Err(e);
        }
    };
    let status = response.status().as_u16();
    let route = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_string());
    span.in_scope(|| {
        tracing::info!(
            route = route.as_str(),
            path = response.request().path(),
            status,
            elapsed_ms = elapsed.as_millis() as u64,
            "request"
        );
    });
    metrics::http_request(&route, method, status, elapsed);
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sane_incoming_request_id_is_kept_and_others_replaced() {
        let keep = |s: &str| sane_request_id(&HeaderValue::from_str(s).unwrap());
        assert_eq!(keep("abc-123_X.y:z").as_deref(), Some("abc-123_X.y:z"));
        assert_eq!(keep(""), None);
        assert_eq!(keep("has space"), None);
        assert_eq!(keep("quote\"d"), None);
        assert_eq!(keep(&"a".repeat(65)), None);
        assert!(keep(&"a".repeat(64)).is_some());
    }

    #[test]
    fn generated_ids_are_short_url_safe_and_distinct() {
        let a = new_request_id();
        assert_eq!(a.len(), 16);
        assert!(sane_request_id(&HeaderValue::from_str(&a).unwrap()).is_some());
        assert_ne!(a, new_request_id());
    }
}
