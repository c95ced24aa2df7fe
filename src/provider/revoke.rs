//! Token revocation (RFC 7009). Revoking a refresh token revokes its whole
//! family; revoking an access token revokes that token. Unknown tokens get
//! 200, as §2.2 says, so the endpoint reveals nothing about them.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::Provider;
use super::error::{ErrorCode, OAuthError};
use super::token::form_params;
use crate::store::Namespace;
use crate::store::records::RefreshRecord;

pub async fn revoke(
    req: HttpRequest,
    body: web::Bytes,
    provider: web::Data<Provider>,
) -> HttpResponse {
    match handle(&req, &body, &provider).await {
        Ok(()) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish(),
        Err(e) => e.json(),
    }
}

async fn handle(req: &HttpRequest, body: &[u8], provider: &Provider) -> Result<(), OAuthError> {
    let params = form_params(req, body)?;
    let client = super::client_auth::authenticate(provider, req, &params, "revoke").await?;
    let token = params.require("token")?;
    let unavailable = |e| OAuthError::unavailable(&e);
    let records = &provider.records;
    let not_yours = || {
        OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "the token was issued to another client",
        )
    };

    let refresh: Option<RefreshRecord> = records
        .get(Namespace::RefreshToken, token)
        .await
        .map_err(unavailable)?;
    if let Some(record) = refresh {
        if record.client_id() != client.id {
            return Err(not_yours());
        }
        let family = match &record {
            RefreshRecord::Live(g) => &g.family_id,
            RefreshRecord::Rotated(r) => &r.family_id,
        };
        records.revoke_family(family).await.map_err(unavailable)?;
        tracing::info!(client_id = %client.id, "refresh token revoked with its family");
        return Ok(());
    }
    if let Some(access) = records.get_access_token(token).await.map_err(unavailable)? {
        if access.client_id != client.id {
            return Err(not_yours());
        }
        records
            .delete(Namespace::AccessToken, token)
            .await
            .map_err(unavailable)?;
        tracing::info!(client_id = %client.id, "access token revoked");
    }
    Ok(())
}
