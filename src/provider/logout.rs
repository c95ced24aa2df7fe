//! RP-Initiated Logout 1.0 (`end_session_endpoint`). The browser is sent back
//! to the application only with a valid `id_token_hint` and a
//! `post_logout_redirect_uri` registered exactly for that client; anything
//! else gets a confirmation page (a form with a one-time token bound to the
//! session cookie), then a "signed out" page.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use serde_json::Value;

use super::Provider;
use super::backchannel;
use super::error::{OAuthError, redirect_with};
use super::params::Params;
use super::token::form_params;
use crate::store::Namespace;
use crate::store::records::{PendingLogout, Session, random_secret, secret_hash};
use crate::web::i18n::Locale;
use crate::web::pages::Frame;

/// RP-Initiated Logout 1.0 §2 lets the application pass `ui_locales` too.
fn locale(req: &HttpRequest, params: Option<&Params>) -> Locale {
    Locale::for_request(req, params.and_then(|p| p.get("ui_locales")))
}

fn invalid_link(req: &HttpRequest, provider: &Provider, e: &OAuthError) -> HttpResponse {
    provider.error_page_in(
        locale(req, None),
        None,
        StatusCode::BAD_REQUEST,
        "This sign-out link is not valid",
        e,
    )
}

fn unavailable(provider: &Provider, locale: Locale, e: &OAuthError) -> HttpResponse {
    provider.error_page_in(
        locale,
        None,
        StatusCode::SERVICE_UNAVAILABLE,
        "Sign-out is unavailable right now",
        e,
    )
}

pub async fn get(req: HttpRequest, provider: web::Data<Provider>) -> HttpResponse {
    match Params::parse(req.query_string()) {
        Ok(params) => end_session(&req, &provider, &params).await,
        Err(e) => invalid_link(&req, &provider, &e),
    }
}

pub async fn post(
    req: HttpRequest,
    body: web::Bytes,
    provider: web::Data<Provider>,
) -> HttpResponse {
    match form_params(&req, &body) {
        Ok(params) => end_session(&req, &provider, &params).await,
        Err(e) => invalid_link(&req, &provider, &e),
    }
}

/// The client a verified hint was issued to, and its subject.
struct Hint {
    client_id: String,
    sub: String,
}

fn verified_hint(provider: &Provider, params: &Params) -> Option<Hint> {
    let claims = provider
        .keys
        .current()
        .verify_own_jwt(params.get("id_token_hint")?, &provider.issuer)
        .ok()?;
    let client_id = match claims.get("aud")? {
        Value::String(a) => a.clone(),
        Value::Array(list) if list.len() == 1 => list[0].as_str()?.to_string(),
        _ => claims.get("azp")?.as_str()?.to_string(),
    };
    if params.get("client_id").is_some_and(|c| c != client_id) {
        return None;
    }
    Some(Hint {
        client_id,
        sub: claims.get("sub")?.as_str()?.to_string(),
    })
}

async fn end_session(req: &HttpRequest, provider: &Provider, params: &Params) -> HttpResponse {
    let locale = locale(req, Some(params));
    let hint = verified_hint(provider, params);
    let session = match provider.current_session(req).await {
        Ok(s) => s,
        Err(e) => return unavailable(provider, locale, &OAuthError::unavailable(&e)),
    };
    let redirect = match (&hint, params.get("post_logout_redirect_uri")) {
        (Some(h), Some(uri)) => match provider.clients.get(&h.client_id) {
            Some(c) if c.post_logout_redirect_uris.iter().any(|r| r == uri) => {
                Some(uri.to_string())
            }
            _ => return confirm(provider, locale, session.map(|(c, _)| c)).await,
        },
        (None, Some(_)) => return confirm(provider, locale, session.map(|(c, _)| c)).await,
        _ => None,
    };
    let Some(hint) = hint else {
        return confirm(provider, locale, session.map(|(c, _)| c)).await;
    };
    // The hint's `sub` is its client's: public or pairwise.
    let hinted_person = |s: &Session| {
        provider
            .clients
            .get(&hint.client_id)
            .is_some_and(|c| c.subject(&s.identity) == hint.sub)
    };
    if let Some((_, s)) = &session
        && !hinted_person(s)
    {
        // The hint names someone else: let the person decide.
        return confirm(provider, locale, session.map(|(c, _)| c)).await;
    }
    if let Some((cookie, _)) = &session {
        finish(provider, cookie).await;
    }
    let mut response = match redirect {
        Some(uri) => redirect_with(&uri, &[("state", params.get("state"))]),
        None => signed_out_page(provider, locale),
    };
    let _ = response.add_cookie(&provider.session_cookie_removal());
    response
}

/// Ends the session and tells its clients.
async fn finish(provider: &Provider, cookie: &str) {
    if let Ok(Some(session)) = provider
        .records
        .get::<crate::store::records::Session>(Namespace::Session, cookie)
        .await
    {
        let _ = provider.end_session(cookie).await;
        tracing::info!(clients = session.clients.len(), "session ended");
        backchannel::notify(provider, &session);
    }
}

#[derive(Serialize)]
struct ConfirmPage {
    token: String,
    action: String,
    /// Sent back with the form, so the signed-out page keeps the language.
    ui_locales: &'static str,
}

#[derive(Serialize)]
struct SignedOutPage {}

fn signed_out_page(provider: &Provider, locale: Locale) -> HttpResponse {
    provider.pages.render(
        "logged_out.html",
        StatusCode::OK,
        &Frame::new(locale),
        &SignedOutPage {},
    )
}

/// Asks the person to confirm. Without a session there is nothing to end.
async fn confirm(
    provider: &Provider,
    locale: Locale,
    session_cookie: Option<String>,
) -> HttpResponse {
    let Some(cookie) = session_cookie else {
        return signed_out_page(provider, locale);
    };
    let token = random_secret();
    let pending = PendingLogout {
        browser_hash: secret_hash(&cookie),
    };
    if let Err(e) = provider
        .records
        .put(
            Namespace::Interaction,
            &token,
            &pending,
            provider.ttl_login(),
        )
        .await
    {
        return unavailable(provider, locale, &OAuthError::unavailable(&e));
    }
    let page = ConfirmPage {
        token,
        action: format!("{}/logout/confirm", provider.base_path),
        ui_locales: locale.tag(),
    };
    provider.pages.render(
        "logout_confirm.html",
        StatusCode::OK,
        &Frame::new(locale),
        &page,
    )
}

/// The confirmation form's answer.
pub async fn confirmed(
    req: HttpRequest,
    body: web::Bytes,
    provider: web::Data<Provider>,
) -> HttpResponse {
    let params = form_params(&req, &body);
    let locale = locale(&req, params.as_ref().ok());
    let page = |e: OAuthError| {
        provider.error_page_in(
            locale,
            None,
            StatusCode::BAD_REQUEST,
            "This sign-out cannot be completed",
            &e,
        )
    };
    let params = match params {
        Ok(p) => p,
        Err(e) => return page(e),
    };
    let Some(token) = params.get("token") else {
        return page(OAuthError::invalid_request("the form is incomplete"));
    };
    let pending: PendingLogout = match provider.records.take(Namespace::Interaction, token).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            return page(OAuthError::invalid_request(
                "this page has expired; sign out again",
            ));
        }
        Err(e) => return page(OAuthError::unavailable(&e)),
    };
    let Some(cookie) = provider.session_cookie_bound_to(&req, &pending.browser_hash) else {
        return page(OAuthError::invalid_request(
            "this page was opened in another browser",
        ));
    };
    finish(&provider, &cookie).await;
    let mut response = signed_out_page(&provider, locale);
    let _ = response.add_cookie(&provider.session_cookie_removal());
    response
}
