//! The token endpoint (RFC 6749 §4.1.3, §5, §6; RFC 7636 §4.6; OIDC Core
//! §3.1.3 and §12; RFC 9449 §5): the client authenticates, its DPoP proof
//! is checked, and the grant is handed to its own file: `code` (the
//! authorization code), `refresh` (rotation, reuse detection), the device
//! code (`crate::provider::device`). `family` starts token families and
//! issues tokens for all of them.
//!
//! Every code redemption starts a token family; everything issued from it
//! (access tokens, each rotated refresh token) dies with the family. A
//! replayed code or a reused refresh token revokes its family.

mod code;
mod family;
mod refresh;

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::Provider;
use super::client_auth;
use super::clients::Client;
use super::dpop;
use super::error::{ErrorCode, OAuthError};
use super::params::{Params, is_form};
use crate::limits::Endpoint;
use crate::observability::metrics;

pub(crate) use family::{Redeemed, issue_first, start_family};

#[derive(Serialize, Deserialize)]
pub(crate) struct TokenResponse {
    access_token: String,
    token_type: String,
    expires_in: u64,
    scope: String,
    id_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
}

pub async fn token(
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
            // A device polling while the person decides is no refusal worth
            // a log line at every poll.
            if matches!(
                e.code,
                ErrorCode::AuthorizationPending | ErrorCode::SlowDown
            ) {
                tracing::debug!(error = e.code.as_str(), "device code polled");
            } else {
                tracing::info!(error = e.code.as_str(), description = %e.description, "token request refused");
            }
            e.json()
        }
    }
}

async fn handle(
    req: &HttpRequest,
    body: &[u8],
    provider: &Provider,
) -> Result<HttpResponse, OAuthError> {
    let (params, client) = match authenticated_client(req, body, provider, "token").await? {
        Ok(authenticated) => authenticated,
        Err(limited) => return Ok(limited),
    };
    let proof = check_dpop_proof(provider, req, &client)?;
    let response = match params.get("grant_type") {
        None => return Err(OAuthError::invalid_request("grant_type is missing")),
        Some("authorization_code") => {
            let response = code::authorization_code(provider, &client, &params, &proof).await?;
            metrics::token_issued("authorization_code");
            response
        }
        Some("refresh_token") if client.allows_refresh => {
            let response = refresh::refresh(provider, &client, &params, &proof).await?;
            metrics::token_issued("refresh_token");
            response
        }
        Some("refresh_token") => {
            return Err(OAuthError::new(
                ErrorCode::UnauthorizedClient,
                "this client is not registered for refresh tokens",
            ));
        }
        Some(crate::config::DEVICE_CODE_GRANT) => {
            let response =
                super::device::poll::device_code(provider, &client, &params, &proof).await?;
            metrics::token_issued("device_code");
            response
        }
        Some(_) => {
            return Err(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                "this grant type is not supported",
            ));
        }
    };
    Ok(no_store(HttpResponse::Ok()).json(response))
}

/// RFC 9449 §5: a token request may carry a DPoP proof, and must when the
/// client registered `dpop_bound_access_tokens`. Checked now, spent by the
/// grant once its code or token is known to be good.
fn check_dpop_proof(
    provider: &Provider,
    req: &HttpRequest,
    client: &Client,
) -> Result<dpop::TokenProof, OAuthError> {
    let proof = dpop::verify_request(provider, req, "token", None).map_err(|r| r.oauth())?;
    if proof.is_none() && client.dpop_required {
        crate::observability::metrics::dpop_proof("missing");
        return Err(OAuthError::invalid_request(
            "this client must send a DPoP proof (dpop_bound_access_tokens)",
        ));
    }
    Ok(dpop::TokenProof(proof))
}

fn no_store(mut builder: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    builder
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"));
    builder
}

/// A back-channel request's form and the client it authenticates, counted
/// against that client's token-endpoint limit: after authentication, so
/// nobody can spend another client's budget. `Ok(Err(answer))`: over it.
/// `endpoint`: the path under the issuer (an assertion may name its URL).
pub(crate) async fn authenticated_client(
    req: &HttpRequest,
    body: &[u8],
    provider: &Provider,
    endpoint: &str,
) -> Result<Result<(Params, Arc<Client>), HttpResponse>, OAuthError> {
    let params = form_params(req, body)?;
    let client = client_auth::authenticate(provider, req, &params, endpoint).await?;
    if let Err(limited) = provider.limits.check_client(Endpoint::Token, &client.id) {
        return Ok(Err(limited.json()));
    }
    Ok(Ok((params, client)))
}

/// The body of a back-channel request: form-encoded, UTF-8, no repeats.
pub fn form_params(req: &HttpRequest, body: &[u8]) -> Result<Params, OAuthError> {
    let is_form = is_form(req);
    if !is_form {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let body = std::str::from_utf8(body)
        .map_err(|_| OAuthError::invalid_request("the body is not valid UTF-8"))?;
    Params::parse(body)
}
