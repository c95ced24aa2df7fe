//! `GET`/`POST /api/openid.connect.userInfo`.

use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{HttpRequest, HttpResponse, web};

use super::control::USERINFO_METHOD;
use super::http::{
    Obj, api_error, api_json, form_pairs, get, html_404, mime_essence, rate_limited,
};
use super::{Config, Control, UserinfoFault};

/// Answers with the user's claims, filtered by the token's scopes.
pub async fn userinfo(
    req: HttpRequest,
    body: web::Bytes,
    config: web::Data<Config>,
    control: web::Data<Control>,
) -> HttpResponse {
    control.count_call(USERINFO_METHOD);
    match control.userinfo_fault() {
        Some(UserinfoFault::RateLimited { retry_after_secs }) => {
            return rate_limited(retry_after_secs);
        }
        Some(UserinfoFault::NonJson404) => return html_404(),
        Some(UserinfoFault::ErrorCode(code)) => return api_error(&code),
        Some(UserinfoFault::Slow(d)) => tokio::time::sleep(d).await,
        None => {}
    }

    // New apps may not pass tokens in the query string (changelog 2020-11).
    if get(&form_pairs(req.query_string().as_bytes()), "token").is_some() {
        return api_error("invalid_auth");
    }
    let Some(token) = bearer(&req).or_else(|| body_token(&req, &body)) else {
        return api_error("not_authed");
    };
    let Some(grant) = control.store.access(&token) else {
        return api_error("invalid_auth");
    };
    if grant.revoked {
        return api_error("token_revoked");
    }
    if grant.expires_at.is_some_and(|at| Instant::now() >= at) {
        return api_error("token_expired");
    }
    if !grant.scopes.iter().any(|s| s == "openid") {
        let mut obj = Obj::new();
        obj.set("ok", false)
            .set("error", "missing_scope")
            .set("needed", "openid")
            .set("provided", grant.scopes.join(","));
        return api_json(StatusCode::OK, &obj);
    }
    let deleted = control
        .user_flags(&grant.user_id)
        .is_none_or(|flags| flags.deleted);
    let Some(user) = config.user(&grant.user_id).filter(|_| !deleted) else {
        return api_error("account_inactive");
    };

    let mut obj = Obj::new();
    obj.set("ok", true).set("sub", user.user_id.as_str());
    user.id_claims(&mut obj);
    obj.extend(user.scope_claims(&grant.scopes, true));
    api_json(StatusCode::OK, &obj)
}

/// `Authorization: Bearer …`, which wins over a body field.
pub(crate) fn bearer(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

/// A `token` field of a form-encoded POST body.
pub(crate) fn body_token(req: &HttpRequest, body: &[u8]) -> Option<String> {
    if mime_essence(req).as_deref() != Some("application/x-www-form-urlencoded") {
        return None;
    }
    get(&form_pairs(body), "token")
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}
