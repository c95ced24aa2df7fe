//! Token introspection (RFC 7662) for the client a token was issued to. Any
//! other token, including another client's, is `{"active":false}`, so the
//! endpoint cannot be used to probe tokens.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::Provider;
use super::error::OAuthError;
use super::token::form_params;
use super::userinfo::live_access_token;
use crate::store::Namespace;
use crate::store::records::RefreshRecord;

pub async fn introspect(
    req: HttpRequest,
    body: web::Bytes,
    provider: web::Data<Provider>,
) -> HttpResponse {
    match handle(&req, &body, &provider).await {
        Ok(body) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(body),
        Err(e) => e.json(),
    }
}

async fn handle(
    req: &HttpRequest,
    body: &[u8],
    provider: &Provider,
) -> Result<serde_json::Value, OAuthError> {
    let params = form_params(req, body)?;
    let client = super::client_auth::authenticate(provider, req, &params, "introspect").await?;
    let token = params.require("token")?;
    let unavailable = |e| OAuthError::unavailable(&e);
    let inactive = json!({"active": false});

    if let Some(access) = live_access_token(provider, token)
        .await
        .map_err(unavailable)?
    {
        if access.client_id != client.id {
            return Ok(inactive);
        }
        let mut answer = json!({
            "active": true,
            "token_type": if access.jkt.is_some() { "DPoP" } else { "Bearer" },
            "scope": access.scopes.join(" "),
            "client_id": access.client_id,
            "sub": client.subject(&access.identity),
            "aud": access.client_id,
            "iss": provider.issuer,
            "exp": access.expires_at,
            "iat": access.issued_at,
        });
        // RFC 9449 §6.2: the key the token is bound to.
        if let Some(jkt) = &access.jkt {
            answer["cnf"] = json!({ "jkt": jkt });
        }
        return Ok(answer);
    }
    let refresh: Option<RefreshRecord> = provider
        .records
        .get(Namespace::RefreshToken, token)
        .await
        .map_err(unavailable)?;
    if let Some(RefreshRecord::Live(grant)) = refresh
        && grant.client_id == client.id
        && !provider.keys.current().is_revoked(&grant.kid)
        && provider
            .records
            .family_alive(&grant.family_id)
            .await
            .map_err(unavailable)?
    {
        let idle = provider.config.tokens.refresh_token_idle_secs as i64;
        let mut answer = json!({
            "active": true,
            "token_type": "refresh_token",
            "scope": grant.scopes.join(" "),
            "client_id": grant.client_id,
            "sub": client.subject(&grant.identity),
            "aud": grant.client_id,
            "iss": provider.issuer,
            "exp": (grant.issued_at + idle).min(grant.family_expires_at),
            "iat": grant.issued_at,
        });
        if let Some(jkt) = &grant.jkt {
            answer["cnf"] = json!({ "jkt": jkt });
        }
        return Ok(answer);
    }
    Ok(inactive)
}
