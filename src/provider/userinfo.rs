//! The UserInfo endpoint (OIDC Core §5.3, RFC 6750): the token comes in the
//! Authorization header or, for POST, in the form body, never both.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};

use super::Provider;
use super::claims;
use super::params::{Params, is_form};
use crate::store::StoreResult;
use crate::store::records::AccessGrant;

pub async fn userinfo(
    req: HttpRequest,
    body: web::Bytes,
    provider: web::Data<Provider>,
) -> HttpResponse {
    let token = match bearer_token(&req, &body) {
        Ok(Some(token)) => token,
        Ok(None) => return challenge(StatusCode::UNAUTHORIZED, None, None),
        Err(why) => return challenge(StatusCode::BAD_REQUEST, Some("invalid_request"), Some(why)),
    };
    match live_access_token(&provider, &token).await {
        Ok(Some(grant)) => {
            // The token names its client: only that client's origins may
            // read the claims (CORS, `crate::web::cors`).
            provider.clients.restrict_cors_to(&grant.client_id, &req);
            HttpResponse::Ok()
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .json(claims::userinfo(&grant.identity, &grant.scopes))
        }
        Ok(None) => challenge(
            StatusCode::UNAUTHORIZED,
            Some("invalid_token"),
            Some("the access token is invalid or expired"),
        ),
        Err(e) => {
            tracing::error!(error = %e, "store call failed");
            HttpResponse::ServiceUnavailable()
                .insert_header((header::RETRY_AFTER, "2"))
                .json(serde_json::json!({"error": "temporarily_unavailable", "error_description": "the session store is unavailable"}))
        }
    }
}

/// An access token whose record exists and whose family is not revoked.
pub async fn live_access_token(
    provider: &Provider,
    token: &str,
) -> StoreResult<Option<AccessGrant>> {
    let Some(grant) = provider.records.get_access_token(token).await? else {
        return Ok(None);
    };
    if provider.keys.current().is_revoked(&grant.kid)
        || !provider.records.family_alive(&grant.family_id).await?
    {
        return Ok(None);
    }
    Ok(Some(grant))
}

fn bearer_token(req: &HttpRequest, body: &[u8]) -> Result<Option<String>, &'static str> {
    let from_header = match req.headers().get(header::AUTHORIZATION) {
        None => None,
        Some(v) => {
            let v = v.to_str().map_err(|_| "malformed Authorization header")?;
            match v.split_once(' ') {
                Some((scheme, token))
                    if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
                {
                    Some(token.trim().to_string())
                }
                _ => return Err("the Authorization header must be Bearer"),
            }
        }
    };
    let from_body =
        if req.method() == actix_web::http::Method::POST && is_form(req) && !body.is_empty() {
            let text = std::str::from_utf8(body).map_err(|_| "the body is not valid UTF-8")?;
            let params = Params::parse(text).map_err(|_| "the body is malformed")?;
            params.get("access_token").map(str::to_string)
        } else {
            None
        };
    match (from_header, from_body) {
        (Some(_), Some(_)) => {
            Err("send the access token once, not in both the header and the body")
        }
        (h, b) => Ok(h.or(b)),
    }
}

/// RFC 6750 §3: without a token, a bare challenge; with a bad one, its error.
fn challenge(status: StatusCode, error: Option<&str>, description: Option<&str>) -> HttpResponse {
    let value = match (error, description) {
        (Some(e), Some(d)) => format!("Bearer error=\"{e}\", error_description=\"{d}\""),
        (Some(e), None) => format!("Bearer error=\"{e}\""),
        _ => "Bearer".to_string(),
    };
    let mut builder = HttpResponse::build(status);
    builder
        .insert_header((header::WWW_AUTHENTICATE, value))
        .insert_header((header::CACHE_CONTROL, "no-store"));
    match error {
        Some(e) => builder
            .json(serde_json::json!({"error": e, "error_description": description.unwrap_or("")})),
        None => builder.finish(),
    }
}
