//! Pushed authorization requests (RFC 9126): the application sends its
//! authorization request to `POST {issuer}/par` first, authenticated as at
//! the token endpoint and checked as the authorization endpoint would, and
//! gets a `request_uri` to send the browser with instead. The request cannot
//! be read or changed in the browser. Each `request_uri` is used once and
//! lives [`REQUEST_URI_TTL`].

use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::Provider;
use super::authorize::{check_client_and_redirect_uri, check_request};
use super::dpop;
use super::error::{ErrorCode, OAuthError};
use super::params::{Lenient, Params};
use super::session::now;
use super::token::authenticated_client;
use crate::limits::Endpoint;
use crate::store::Namespace;
use crate::store::records::random_secret;

/// RFC 9126 §2.2: the `request_uri` is a URN of this prefix.
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";
/// Long enough to send the browser on, short as the RFC advises (§2.2).
pub const REQUEST_URI_TTL: Duration = Duration::from_secs(60);

/// A pushed request, waiting for the browser.
#[derive(Serialize, Deserialize)]
struct Pushed {
    client_id: String,
    /// The request's parameters, form-encoded, as pushed.
    params: String,
    expires_at: i64,
}

/// `POST {issuer}/par`.
pub async fn push(
    req: HttpRequest,
    body: web::Bytes,
    provider: web::Data<Provider>,
) -> HttpResponse {
    if let Err(limited) = provider.limits.check_address(Endpoint::Token, &req) {
        return limited.json();
    }
    match handle(&req, &body, &provider).await {
        Ok(response) => response,
        Err(e) => {
            tracing::info!(error = e.code.as_str(), description = %e.description, "pushed authorization request refused");
            e.json()
        }
    }
}

async fn handle(
    req: &HttpRequest,
    body: &[u8],
    provider: &Provider,
) -> Result<HttpResponse, OAuthError> {
    let (params, client) = match authenticated_client(req, body, provider, "par").await? {
        Ok(authenticated) => authenticated,
        Err(limited) => return Ok(limited),
    };
    // §2.1: a request_uri has no place in a pushed request.
    if params.contains("request_uri") {
        return Err(OAuthError::invalid_request(
            "request_uri must not be pushed",
        ));
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| OAuthError::invalid_request("the body is not valid UTF-8"))?;
    let parsed = Params::parse_lenient(text);
    // The request is checked now, as the authorization endpoint would: the
    // application hears of a mistake here, not the person in the browser.
    let (named, _) = check_client_and_redirect_uri(provider, &parsed)?;
    if named.id != client.id {
        return Err(OAuthError::invalid_request(
            "client_id is not the authenticated client",
        ));
    }
    let checked = check_request(provider, &client, &parsed)?;
    // RFC 9449 §10.1: a proof with the push binds the code to its key, as
    // `dpop_jkt` would; both must then name the same key.
    let proof = dpop::check(provider, req, "par", None)
        .await
        .map_err(|r| r.oauth())?;
    let mut text = text.to_string();
    match (proof, checked.dpop_jkt) {
        (Some(proof), Some(jkt)) if proof.jkt != jkt => {
            return Err(OAuthError::new(
                ErrorCode::InvalidDpopProof,
                "dpop_jkt is not the thumbprint of the proof's key",
            ));
        }
        (Some(proof), None) => {
            text.push_str("&dpop_jkt=");
            text.push_str(&proof.jkt);
        }
        _ => {}
    }
    let request_uri = format!("{REQUEST_URI_PREFIX}{}", random_secret());
    let pushed = Pushed {
        client_id: client.id.clone(),
        params: text,
        expires_at: now() + REQUEST_URI_TTL.as_secs() as i64,
    };
    provider
        .records
        .put(
            Namespace::PushedRequest,
            &request_uri,
            &pushed,
            REQUEST_URI_TTL,
        )
        .await
        .map_err(|e| OAuthError::unavailable(&e))?;
    Ok(HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({
            "request_uri": request_uri,
            "expires_in": REQUEST_URI_TTL.as_secs(),
        })))
}

/// At the authorization endpoint: a `request_uri` of ours is replaced by
/// the request it stands for, once (it is taken), and only for the client
/// that pushed it. Returns the parameters to use and whether they were
/// pushed. Another `request_uri` is left for the endpoint to refuse.
pub async fn resolve(provider: &Provider, parsed: Lenient) -> Result<(Lenient, bool), OAuthError> {
    let Some(request_uri) = parsed
        .params
        .get("request_uri")
        .filter(|u| u.starts_with(REQUEST_URI_PREFIX))
    else {
        return Ok((parsed, false));
    };
    let pushed: Option<Pushed> = provider
        .records
        .take(Namespace::PushedRequest, request_uri)
        .await
        .map_err(|e| OAuthError::unavailable(&e))?;
    let invalid = |why: &str| OAuthError::new(ErrorCode::InvalidRequestUri, why);
    let pushed = pushed.filter(|p| p.expires_at > now()).ok_or_else(|| {
        invalid("the pushed request has expired or was already used; start again")
    })?;
    if parsed.params.get("client_id") != Some(pushed.client_id.as_str()) {
        return Err(invalid("the pushed request belongs to another application"));
    }
    Ok((Params::parse_lenient(&pushed.params), true))
}
