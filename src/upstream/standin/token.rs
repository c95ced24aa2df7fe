//! `POST /api/openid.connect.token`.
//!
//! Every refusal is HTTP 200 `{"ok":false,"error":…}` (only `ratelimited` is
//! a 429), checked in the reference's order, because that is what trips up
//! generic OAuth clients talking to Slack.

use actix_web::http::StatusCode;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::Value;
use std::time::Instant;
use subtle::ConstantTimeEq;

use super::control::TOKEN_METHOD;
use super::http::{
    Obj, api_error, api_json, form_pairs, get, html_404, mime_essence, random_alnum, random_digits,
    random_hex, rate_limited,
};
use super::id_token::{self, IdTokenInput};
use super::state::{AccessGrant, CodeGrant, ROTATING_TOKEN_TTL, RefreshGrant};
use super::{ClientAuthMethod, Config, Control, StandinApp, TokenFault, TokenRequestRecord};

/// The token endpoint.
pub async fn token(
    req: HttpRequest,
    body: web::Bytes,
    config: web::Data<Config>,
    control: web::Data<Control>,
) -> HttpResponse {
    control.count_call(TOKEN_METHOD);
    let content_type = mime_essence(&req);
    let parsed = parse_body(content_type.as_deref(), &body);
    let basic = basic_credentials(&req);
    let empty = Vec::new();
    let pairs = parsed.as_ref().unwrap_or(&empty);

    let client_auth = match (&basic, get(pairs, "client_secret")) {
        (Some(_), _) => ClientAuthMethod::Basic,
        (None, Some(_)) => ClientAuthMethod::Post,
        (None, None) => ClientAuthMethod::None,
    };
    control.record_token_request(TokenRequestRecord {
        grant_type: get(pairs, "grant_type").map(str::to_owned),
        client_auth,
        redirect_uri: get(pairs, "redirect_uri").map(str::to_owned),
        code_verifier_present: get(pairs, "code_verifier").is_some(),
        content_type,
    });

    match control.token_fault() {
        Some(TokenFault::RateLimited { retry_after_secs }) => {
            return rate_limited(retry_after_secs);
        }
        Some(TokenFault::InternalError) => return api_error("internal_error"),
        Some(TokenFault::NonJson404) => return html_404(),
        Some(TokenFault::ErrorCode(code)) => return api_error(&code),
        Some(TokenFault::Slow(d)) => tokio::time::sleep(d).await,
        None => {}
    }

    let pairs = match parsed {
        Ok(p) => p,
        Err(code) => return api_error(code),
    };
    match exchange(&config, &control, &pairs, basic) {
        Ok(obj) => api_json(StatusCode::OK, &obj),
        Err(code) => api_error(code),
    }
}

/// Checks the request in the reference's order and issues tokens.
fn exchange(
    config: &Config,
    control: &Control,
    pairs: &[(String, String)],
    basic: Option<(String, String)>,
) -> Result<Obj, &'static str> {
    let grant_type = get(pairs, "grant_type").unwrap_or("authorization_code");
    if grant_type != "authorization_code" && grant_type != "refresh_token" {
        return Err("invalid_grant_type");
    }

    let (client_id, secret) = match basic {
        Some((id, secret)) => (id, Some(secret)),
        None => (
            get(pairs, "client_id").unwrap_or_default().to_owned(),
            get(pairs, "client_secret").map(str::to_owned),
        ),
    };
    let app = config.app(&client_id).ok_or("invalid_client_id")?;
    let secret_ok =
        secret.is_some_and(|s| bool::from(s.as_bytes().ct_eq(app.client_secret.as_bytes())));
    if !secret_ok {
        return Err("bad_client_secret");
    }

    if grant_type == "refresh_token" {
        return refresh(control, app, pairs);
    }

    let code = get(pairs, "code")
        .filter(|c| !c.is_empty())
        .ok_or("invalid_code")?;
    let grant = control
        .store
        .redeem_code(code, &app.client_id)
        .map_err(|_| "invalid_code")?;
    check_redirect(&grant, get(pairs, "redirect_uri"))?;
    check_pkce(&grant, get(pairs, "code_verifier"))?;

    let user = config.user(&grant.user_id).ok_or("invalid_code")?;
    let (access_token, refresh_token) = issue_pair(control, app, &grant.user_id, &grant.scopes);
    let id_token = id_token::issue(
        config,
        control,
        user,
        &IdTokenInput {
            client_id: &app.client_id,
            scopes: &grant.scopes,
            nonce: grant.nonce.as_deref(),
            access_token: &access_token,
        },
    );

    let mut obj = Obj::new();
    obj.set("ok", true)
        .set("access_token", access_token)
        .set("token_type", "Bearer")
        .set("id_token", id_token);
    if let Some(refresh_token) = refresh_token {
        // Rotation responses echo the authorize `state` [obs]; "" when none was sent [inf].
        obj.set("state", grant.state.unwrap_or_default())
            .set("refresh_token", refresh_token)
            .set("expires_in", ROTATING_TOKEN_TTL.as_secs());
    }
    Ok(obj)
}

/// `redirect_uri` must repeat the authorize value when one was sent there.
fn check_redirect(grant: &CodeGrant, sent_now: Option<&str>) -> Result<(), &'static str> {
    let ok = match (&grant.redirect_uri_sent, sent_now) {
        (Some(before), Some(now)) => before == now,
        (Some(_), None) => false,
        (None, Some(now)) => now == grant.redirect_uri,
        (None, None) => true,
    };
    if ok { Ok(()) } else { Err("bad_redirect_uri") }
}

/// PKCE S256, only when the authorize request carried a challenge.
fn check_pkce(grant: &CodeGrant, verifier: Option<&str>) -> Result<(), &'static str> {
    let Some(challenge) = &grant.code_challenge else {
        return Ok(());
    };
    let verifier = verifier.ok_or("invalid_grant")?;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    let computed = URL_SAFE_NO_PAD.encode(digest.as_ref());
    if (43..=128).contains(&verifier.len())
        && bool::from(computed.as_bytes().ct_eq(challenge.as_bytes()))
    {
        Ok(())
    } else {
        Err("invalid_grant")
    }
}

/// The refresh grant: a new pair, the old refresh token spent, no ID token.
fn refresh(
    control: &Control,
    app: &StandinApp,
    pairs: &[(String, String)],
) -> Result<Obj, &'static str> {
    let presented = get(pairs, "refresh_token")
        .filter(|t| !t.is_empty())
        .ok_or("invalid_refresh_token")?;
    let old = control
        .store
        .redeem_refresh(presented, &app.client_id)
        .ok_or("invalid_refresh_token")?;
    let (access_token, refresh_token) = issue_pair(control, app, &old.user_id, &old.scopes);
    let mut obj = Obj::new();
    obj.set("ok", true)
        .set("access_token", access_token)
        .set("token_type", "Bearer");
    if let Some(refresh_token) = refresh_token {
        obj.set("refresh_token", refresh_token)
            .set("expires_in", ROTATING_TOKEN_TTL.as_secs());
    }
    Ok(obj)
}

/// Mints an access token, plus a refresh token for rotation apps.
fn issue_pair(
    control: &Control,
    app: &StandinApp,
    user_id: &str,
    scopes: &[String],
) -> (String, Option<String>) {
    let (access, expires_at, refresh) = if app.rotation {
        (
            format!("xoxe.xoxp-1-{}", random_alnum(140)),
            Some(Instant::now() + ROTATING_TOKEN_TTL),
            Some(format!("xoxe-1-{}", random_alnum(140))),
        )
    } else {
        let access = format!(
            "xoxp-{}-{}-{}-{}",
            random_digits(10),
            random_digits(13),
            random_digits(13),
            random_hex::<16>()
        );
        (access, None, None)
    };
    control.store.insert_access(
        access.clone(),
        AccessGrant {
            user_id: user_id.to_owned(),
            scopes: scopes.to_vec(),
            expires_at,
            revoked: false,
        },
    );
    if let Some(r) = &refresh {
        control.store.insert_refresh(
            r.clone(),
            RefreshGrant {
                client_id: app.client_id.clone(),
                user_id: user_id.to_owned(),
                scopes: scopes.to_vec(),
                used: false,
                revoked: false,
            },
        );
    }
    (access, refresh)
}

/// Form or JSON; anything else is Slack's `invalid_post_type`.
fn parse_body(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Vec<(String, String)>, &'static str> {
    match content_type {
        None if body.is_empty() => Ok(Vec::new()),
        None => Err("missing_post_type"),
        Some("application/x-www-form-urlencoded") => Ok(form_pairs(body)),
        Some("application/json") => {
            let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
                return Err("invalid_json");
            };
            Ok(map
                .into_iter()
                .filter_map(|(k, v)| match v {
                    Value::String(s) => Some((k, s)),
                    Value::Null => None,
                    other => Some((k, other.to_string())),
                })
                .collect())
        }
        Some(_) => Err("invalid_post_type"),
    }
}

/// `client_secret_basic`: base64 of the form-encoded `id:secret`.
fn basic_credentials(req: &HttpRequest) -> Option<(String, String)> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(rest.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((form_decode(id)?, form_decode(secret)?))
}

/// Undoes `application/x-www-form-urlencoded` on one value (`+`, `%XX`).
fn form_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}
