//! The token endpoint (RFC 6749 §4.1.3, §5; RFC 7636 §4.6; OIDC Core §3.1.3).

use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use subtle::ConstantTimeEq;

use super::Provider;
use super::claims::{IdTokenRequest, sign_id_token};
use super::clients::Client;
use super::error::{ErrorCode, OAuthError};
use super::params::Params;
use crate::store::records::{AccessGrant, CodeGrant, UsedCode, random_secret, secret_hash};
use crate::upstream::s256;

#[derive(Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
    scope: String,
    id_token: String,
}

pub async fn token(
    req: HttpRequest,
    body: web::Bytes,
    provider: web::Data<Provider>,
) -> HttpResponse {
    match handle(&req, &body, &provider).await {
        Ok(response) => response,
        Err(e) => {
            tracing::info!(error = e.code.as_str(), description = %e.description, "token request refused");
            e.json()
        }
    }
}

async fn handle(
    req: &HttpRequest,
    body: &[u8],
    provider: &Provider,
) -> Result<HttpResponse, OAuthError> {
    check_form_content_type(req)?;
    let body = std::str::from_utf8(body)
        .map_err(|_| OAuthError::invalid_request("the body is not valid UTF-8"))?;
    let params = Params::parse(body)?;
    let client = provider.clients.authenticate(req, &params)?;
    match params.get("grant_type") {
        None => Err(OAuthError::invalid_request("grant_type is missing")),
        Some("authorization_code") => authorization_code(provider, &client, &params).await,
        Some(_) => Err(OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            "only authorization_code is supported",
        )),
    }
}

fn check_form_content_type(req: &HttpRequest) -> Result<(), OAuthError> {
    let ok = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if ok {
        Ok(())
    } else {
        Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ))
    }
}

async fn authorization_code(
    provider: &Provider,
    client: &Client,
    params: &Params,
) -> Result<HttpResponse, OAuthError> {
    let code = params.require("code")?;
    let grant = consume_code(provider, code).await?;
    check_code_belongs_to_client(&grant, client)?;
    check_redirect_uri_matches(&grant, params)?;
    check_pkce_verifier(&grant, params)?;
    let (response, access_token_hash) = issue_tokens(provider, grant).await?;
    let used = UsedCode {
        client_id: client.id.clone(),
        access_token_hash,
    };
    // Remembered as long as the access token lives, so a replay can revoke it.
    if let Err(e) = provider
        .records
        .put_used_code(code, &used, provider.ttl_access_token())
        .await
    {
        tracing::warn!(error = %e, "could not record the redeemed code");
    }
    Ok(response)
}

/// The code is taken atomically: of two concurrent redemptions exactly one
/// succeeds. A replayed code revokes the access token of its first redemption.
async fn consume_code(provider: &Provider, code: &str) -> Result<CodeGrant, OAuthError> {
    let records = &provider.records;
    if let Some(grant) = records
        .take_code(code)
        .await
        .map_err(|e| OAuthError::unavailable(&e))?
    {
        return Ok(grant);
    }
    if let Some(used) = records
        .take_used_code(code)
        .await
        .map_err(|e| OAuthError::unavailable(&e))?
    {
        tracing::warn!(client_id = %used.client_id, "authorization code replayed; revoking its access token");
        let _ = records
            .revoke_access_token_hash(&used.access_token_hash)
            .await;
        return Err(OAuthError::invalid_grant("the code was already used"));
    }
    Err(OAuthError::invalid_grant("the code is invalid or expired"))
}

fn check_code_belongs_to_client(grant: &CodeGrant, client: &Client) -> Result<(), OAuthError> {
    if grant.client_id == client.id {
        Ok(())
    } else {
        Err(OAuthError::invalid_grant(
            "the code was issued to another client",
        ))
    }
}

fn check_redirect_uri_matches(grant: &CodeGrant, params: &Params) -> Result<(), OAuthError> {
    match params.get("redirect_uri") {
        Some(uri) if uri == grant.redirect_uri => Ok(()),
        Some(_) => Err(OAuthError::invalid_grant(
            "redirect_uri does not match the authorization request",
        )),
        None => Err(OAuthError::invalid_request("redirect_uri is required")),
    }
}

/// RFC 7636 §4.6, plus: a verifier with no challenge on the code is refused.
fn check_pkce_verifier(grant: &CodeGrant, params: &Params) -> Result<(), OAuthError> {
    match (&grant.code_challenge, params.get("code_verifier")) {
        (None, None) => Ok(()),
        (None, Some(_)) => Err(OAuthError::invalid_grant(
            "code_verifier sent but the authorization request had no code_challenge",
        )),
        (Some(_), None) => Err(OAuthError::invalid_grant("code_verifier is required")),
        (Some(challenge), Some(verifier)) => {
            let well_formed = (43..=128).contains(&verifier.len())
                && verifier
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
            if well_formed && bool::from(s256(verifier).as_bytes().ct_eq(challenge.as_bytes())) {
                Ok(())
            } else {
                Err(OAuthError::invalid_grant(
                    "code_verifier does not match the code_challenge",
                ))
            }
        }
    }
}

async fn issue_tokens(
    provider: &Provider,
    grant: CodeGrant,
) -> Result<(HttpResponse, String), OAuthError> {
    let access_token = random_secret();
    let keys = provider.keys.current();
    let alg = provider.config.id_token_alg(&grant.client_id);
    let key = keys.signer_for(alg).ok_or_else(|| {
        tracing::error!(%alg, "no active signing key for the client's algorithm");
        OAuthError::new(ErrorCode::ServerError, "the ID token could not be signed")
    })?;
    let id_token = sign_id_token(
        key,
        &grant.identity,
        &IdTokenRequest {
            issuer: &provider.issuer_url,
            client_id: &grant.client_id,
            scopes: &grant.scopes,
            nonce: grant.nonce.as_deref(),
            auth_time: grant.auth_time,
            access_token: &access_token,
            lifetime_secs: provider.config.tokens.id_token_ttl_secs,
        },
    )
    .map_err(|e| {
        tracing::error!(error = %e, "ID token signing failed");
        OAuthError::new(ErrorCode::ServerError, "the ID token could not be signed")
    })?;
    let ttl: Duration = provider.ttl_access_token();
    let access = AccessGrant {
        client_id: grant.client_id.clone(),
        scopes: grant.scopes.clone(),
        identity: grant.identity,
        expires_at: chrono::Utc::now().timestamp() + ttl.as_secs() as i64,
    };
    provider
        .records
        .put_access_token(&access_token, &access, ttl)
        .await
        .map_err(|e| OAuthError::unavailable(&e))?;
    let body = TokenResponse {
        access_token: access_token.clone(),
        token_type: "Bearer",
        expires_in: ttl.as_secs(),
        scope: grant.scopes.join(" "),
        id_token,
    };
    let response = HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(body);
    Ok((response, secret_hash(&access_token)))
}
