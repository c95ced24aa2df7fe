//! The device authorization endpoint (RFC 8628 §3.1, §3.2): the client
//! authenticates as at the token endpoint, asks for scopes as at the
//! authorization endpoint, and gets a device code (kept secret on the
//! device, 256 bits, stored as its SHA-256) and a user code for the person.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use super::records::{Answer, DeviceGrant, DeviceRecords, UserCodeRecord};
use super::{INTERVAL_SECS, check_client_allows_device_code, limits, user_code};
use crate::limits::Endpoint;
use crate::provider::Provider;
use crate::provider::authorize::check_scope;
use crate::provider::clients::Client;
use crate::provider::error::{ErrorCode, OAuthError};
use crate::provider::session::now;
use crate::provider::token::authenticated_client;
use crate::store::records::{random_secret, secret_hash};

/// A fresh user code is drawn again when it collides with a live one (about
/// one chance in 2.5 × 10^10 per live code).
const MAX_DRAWS: usize = 8;

#[derive(Debug, Serialize)]
struct DeviceAuthorization {
    device_code: String,
    user_code: String,
    verification_uri: String,
    verification_uri_complete: String,
    expires_in: u64,
    interval: u64,
}

pub async fn device_authorization(
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
            tracing::info!(error = e.code.as_str(), description = %e.description, "device authorization refused");
            e.json()
        }
    }
}

async fn handle(
    req: &HttpRequest,
    body: &[u8],
    provider: &Provider,
) -> Result<HttpResponse, OAuthError> {
    let (params, client) =
        match authenticated_client(req, body, provider, "device_authorization").await? {
            Ok(authenticated) => authenticated,
            Err(limited) => return Ok(limited),
        };
    check_client_allows_device_code(provider, &client)?;
    let scopes = check_scope(&params, &client, provider.directory.is_enabled())?;
    // Counted only now: a refused request stores nothing.
    if let Err(limited) = provider
        .device_limits
        .authorization(limits::address(provider, req))
    {
        return Ok(limited.json());
    }
    let answer = start(provider, &client, scopes).await?;
    tracing::info!(client_id = %client.id, "device authorization started");
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(answer))
}

/// Stores the device code, then a user code no live one has.
async fn start(
    provider: &Provider,
    client: &Client,
    scopes: Vec<String>,
) -> Result<DeviceAuthorization, OAuthError> {
    let unavailable = |e| OAuthError::unavailable(&e);
    let lifetime = provider.config.tokens.device_code_ttl_secs;
    let expires_at = now() + lifetime as i64;
    let device_code = random_secret();
    let device_key = secret_hash(&device_code);
    let records = DeviceRecords(&provider.records);
    records
        .put_grant(
            &device_key,
            &DeviceGrant {
                client_id: client.id.clone(),
                scopes: scopes.clone(),
                expires_at,
                answer: Answer::Pending,
            },
        )
        .await
        .map_err(unavailable)?;
    let record = UserCodeRecord {
        device_key,
        client_id: client.id.clone(),
        scopes,
        expires_at,
        entries: 0,
    };
    for _ in 0..MAX_DRAWS {
        let code = user_code::generate();
        if records
            .new_user_code(&user_code::key(&code), &record)
            .await
            .map_err(unavailable)?
        {
            let shown = user_code::display(&code);
            let verification_uri = format!("{}/device", provider.issuer);
            return Ok(DeviceAuthorization {
                device_code,
                verification_uri_complete: format!("{verification_uri}?user_code={shown}"),
                verification_uri,
                user_code: shown,
                expires_in: lifetime,
                interval: INTERVAL_SECS,
            });
        }
    }
    tracing::error!("no free user code after {MAX_DRAWS} draws");
    Err(OAuthError::new(
        ErrorCode::ServerError,
        "no user code could be allocated",
    ))
}
