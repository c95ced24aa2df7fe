//! OAuth 2.0 / OpenID Connect error responses: as a redirect to the client
//! (RFC 6749 §4.1.2.1 plus `iss`, RFC 9207), as JSON from the token endpoint
//! (§5.2), or as a page when there is no safe place to redirect to.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::observability::metrics::{Refusal, RefusalReason};
use crate::store::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidRequest,
    UnauthorizedClient,
    AccessDenied,
    UnsupportedResponseType,
    InvalidScope,
    ServerError,
    TemporarilyUnavailable,
    LoginRequired,
    InteractionRequired,
    ConsentRequired,
    RequestNotSupported,
    RequestUriNotSupported,
    InvalidClient,
    InvalidGrant,
    UnsupportedGrantType,
    InvalidToken,
    /// RFC 8628 §3.5: the device code's person has not answered yet.
    AuthorizationPending,
    /// RFC 8628 §3.5: polled faster than the interval, which grows by 5 s.
    SlowDown,
    /// RFC 8628 §3.5: the device code has expired.
    ExpiredToken,
    /// RFC 9126 §4: the `request_uri` is unknown, expired or used.
    InvalidRequestUri,
    /// RFC 9449 §5: the DPoP proof is missing where required, or invalid.
    InvalidDpopProof,
    /// RFC 9449 §8: the proof must carry the nonce the answer names.
    UseDpopNonce,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::ServerError => "server_error",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            ErrorCode::LoginRequired => "login_required",
            ErrorCode::InteractionRequired => "interaction_required",
            ErrorCode::ConsentRequired => "consent_required",
            ErrorCode::RequestNotSupported => "request_not_supported",
            ErrorCode::RequestUriNotSupported => "request_uri_not_supported",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::InvalidRequestUri => "invalid_request_uri",
            ErrorCode::AuthorizationPending => "authorization_pending",
            ErrorCode::SlowDown => "slow_down",
            ErrorCode::ExpiredToken => "expired_token",
            ErrorCode::InvalidDpopProof => "invalid_dpop_proof",
            ErrorCode::UseDpopNonce => "use_dpop_nonce",
        }
    }
}

/// Where an error came from when it is not the request's fault: chosen by
/// the metrics (why a sign-in was refused) and by the front channel (a full
/// store gets a 503 page, not a redirect).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Cause {
    #[default]
    Request,
    StoreUnavailable,
    StoreFull,
    Upstream,
    /// Slack's answer about the person (or the application's policy) said no.
    Policy,
}

impl RefusalReason for OAuthError {
    fn refusal(&self) -> Refusal {
        match self.cause {
            Cause::StoreFull => return Refusal::StoreFull,
            Cause::StoreUnavailable => return Refusal::StoreUnavailable,
            Cause::Upstream => return Refusal::UpstreamError,
            Cause::Policy => return Refusal::NotAdmitted,
            Cause::Request => {}
        }
        match self.code {
            ErrorCode::LoginRequired
            | ErrorCode::InteractionRequired
            | ErrorCode::ConsentRequired => Refusal::InteractionRequired,
            ErrorCode::InvalidRequest
            | ErrorCode::UnauthorizedClient
            | ErrorCode::UnsupportedResponseType
            | ErrorCode::InvalidScope
            | ErrorCode::RequestNotSupported
            | ErrorCode::RequestUriNotSupported
            | ErrorCode::InvalidClient => Refusal::InvalidRequest,
            _ => Refusal::Other,
        }
    }
}

/// An error code with a description safe to send anywhere.
#[derive(Debug, Clone)]
pub struct OAuthError {
    pub code: ErrorCode,
    pub description: String,
    pub cause: Cause,
}

impl OAuthError {
    /// The description keeps only the characters RFC 6749 allows in
    /// `error_description` (%x20-21 / %x23-5B / %x5D-7E), so no request value
    /// can smuggle markup, quotes or line breaks through it.
    pub fn new(code: ErrorCode, description: impl AsRef<str>) -> OAuthError {
        let description = description
            .as_ref()
            .chars()
            .filter(|c| matches!(*c as u32, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E))
            .take(300)
            .collect();
        OAuthError {
            code,
            description,
            cause: Cause::Request,
        }
    }

    pub fn with_cause(self, cause: Cause) -> OAuthError {
        OAuthError { cause, ..self }
    }

    pub fn invalid_request(description: impl AsRef<str>) -> OAuthError {
        OAuthError::new(ErrorCode::InvalidRequest, description)
    }

    pub fn invalid_grant(description: impl AsRef<str>) -> OAuthError {
        OAuthError::new(ErrorCode::InvalidGrant, description)
    }

    pub fn unavailable(e: &StoreError) -> OAuthError {
        tracing::error!(error = %e, "store call failed");
        let cause = match e {
            StoreError::Full => Cause::StoreFull,
            // Backend errors are counted by the metered store; a record that
            // does not decode is only seen here.
            StoreError::Corrupt(_) => {
                crate::observability::metrics::store_error("decode", e);
                Cause::StoreUnavailable
            }
            StoreError::Unavailable(_) => Cause::StoreUnavailable,
        };
        let description = match e {
            StoreError::Full => "Too many sign-ins are in progress; try again shortly",
            _ => "The session store is unavailable; try again shortly",
        };
        OAuthError::new(ErrorCode::TemporarilyUnavailable, description).with_cause(cause)
    }

    /// The store is at its cap: the front channel answers with a 503 page
    /// rather than an error redirect (see docs/decisions/0007).
    pub fn is_store_full(&self) -> bool {
        self.cause == Cause::StoreFull
    }

    /// The redirect back to the client with `error`, `error_description`,
    /// `state` and `iss`. Any query already on the registered URI is kept.
    pub fn redirect(&self, redirect_uri: &str, state: Option<&str>, issuer: &str) -> HttpResponse {
        redirect_with(
            redirect_uri,
            &[
                ("error", Some(self.code.as_str())),
                ("error_description", Some(self.description.as_str())),
                ("state", state),
                ("iss", Some(issuer)),
            ],
        )
    }

    /// The §5.2 JSON error of the token endpoint (also used by the other
    /// back-channel endpoints).
    pub fn json(&self) -> HttpResponse {
        let status = match self.code {
            ErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidToken => StatusCode::UNAUTHORIZED,
            ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        let mut builder = HttpResponse::build(status);
        builder
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::PRAGMA, "no-cache"));
        if self.code == ErrorCode::InvalidClient {
            builder.insert_header((
                header::WWW_AUTHENTICATE,
                "Basic realm=\"slack-oidc-bridge\"",
            ));
        }
        if self.code == ErrorCode::TemporarilyUnavailable {
            builder.insert_header((header::RETRY_AFTER, "2"));
        }
        builder.json(ErrorBody {
            error: self.code.as_str(),
            error_description: &self.description,
        })
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    error_description: &'a str,
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.description)
    }
}

impl ResponseError for OAuthError {
    fn status_code(&self) -> StatusCode {
        self.json().status()
    }
    fn error_response(&self) -> HttpResponse {
        self.json()
    }
}

/// A 302 to `base` with parameters appended to its query (absent ones skipped).
pub fn redirect_with(base: &str, params: &[(&str, Option<&str>)]) -> HttpResponse {
    // The registered URI is used exactly as registered (not re-serialized),
    // with our parameters appended to its query.
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        if let Some(v) = v {
            query.append_pair(k, v);
        }
    }
    let query = query.finish();
    let location = match (query.is_empty(), base.contains('?')) {
        (true, _) => base.to_string(),
        (false, false) => format!("{base}?{query}"),
        (false, true) if base.ends_with('?') || base.ends_with('&') => format!("{base}{query}"),
        (false, true) => format!("{base}&{query}"),
    };
    HttpResponse::Found()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_and_upstream_causes_win_over_the_error_code() {
        let e = OAuthError::unavailable(&StoreError::Full);
        assert_eq!(Refusal::of(&e), Refusal::StoreFull);
        let e = OAuthError::unavailable(&StoreError::Unavailable("down".into()));
        assert_eq!(Refusal::of(&e), Refusal::StoreUnavailable);
        let e = OAuthError::invalid_request("x");
        assert_eq!(Refusal::of(&e), Refusal::InvalidRequest);
        let e = OAuthError::new(ErrorCode::LoginRequired, "x");
        assert_eq!(Refusal::of(&e), Refusal::InteractionRequired);
    }

    #[test]
    fn descriptions_drop_characters_rfc6749_forbids() {
        let e = OAuthError::invalid_request("bad \"x\" \\ <b>\r\nok");
        assert_eq!(e.description, "bad x  <b>ok");
    }

    #[test]
    fn an_error_redirect_keeps_the_registered_query_and_adds_iss() {
        let r = OAuthError::new(ErrorCode::AccessDenied, "no").redirect(
            "https://app.example/cb?tenant=1",
            Some("s t"),
            "https://id.example",
        );
        let loc = r.headers().get("location").unwrap().to_str().unwrap();
        assert_eq!(
            loc,
            "https://app.example/cb?tenant=1&error=access_denied&error_description=no&state=s+t&iss=https%3A%2F%2Fid.example"
        );
    }
}
