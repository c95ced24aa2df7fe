//! Where Slack sends the person back. Nothing here is trusted because it came
//! back through a redirect: the pending login is consumed once and must belong
//! to this browser, Slack's code is exchanged and its ID token verified, and
//! the workspace gate runs before a code of ours exists.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::Value;
use subtle::ConstantTimeEq;

use super::Provider;
use super::authorize::SEAL_LOGIN;
use super::error::{Cause, ErrorCode, OAuthError};
use super::grant::{SignedIn, admitted, back_link, complete};
use super::params::Params;
use super::session::now;
use crate::keys::sealing::Unsealed;
use crate::observability::metrics::{self, Refusal};
use crate::store::records::{PendingLogin, secret_hash};
use crate::upstream::{SlackIdentity, UpstreamError, UpstreamTokens};
use crate::web::i18n::Locale;

pub async fn callback(req: HttpRequest, provider: web::Data<Provider>) -> HttpResponse {
    let locale = Locale::for_request(&req, None);
    let page = |e: OAuthError| {
        metrics::sign_in_refused(Refusal::BadState);
        provider.error_page_in(
            locale,
            None,
            StatusCode::BAD_REQUEST,
            "This sign-in cannot be completed",
            &e,
        )
    };
    let params = match Params::parse(req.query_string()) {
        Ok(p) => p,
        Err(e) => return page(e),
    };
    let login = match open_pending_login(&provider, &params) {
        Ok(login) => login,
        Err(e) => return page(e),
    };
    // From here the application is known: the language it asked for, and a
    // way back to it (its registered origin) when the page is an error.
    let locale = Locale::for_request(&req, login.request.ui_locale.as_deref());
    if let Err(e) = check_same_browser(&req, &provider, &login) {
        metrics::sign_in_refused(Refusal::BadState);
        let back = back_link(&provider, &login.request);
        return provider.error_page_in(
            locale,
            back.as_ref(),
            StatusCode::BAD_REQUEST,
            "This sign-in cannot be completed",
            &e,
        );
    }
    let fail = |reason: Refusal, e: OAuthError| {
        // A device sign-in has no application to send the browser back to.
        if login.device.is_some() {
            return super::device::verify::refused(&provider, locale, reason, &e);
        }
        provider.refuse_sign_in(
            &req,
            reason,
            e,
            &login.request.client_id,
            &login.request.redirect_uri,
            login.request.state.as_deref(),
        )
    };
    // A callback already completed is refused without asking Slack again (a
    // read: an anonymous request still writes nothing).
    match provider
        .records
        .state_used(params.get("state").unwrap_or_default())
        .await
    {
        Ok(false) => {}
        Ok(true) => return page(already_completed()),
        Err(e) => {
            let e = OAuthError::unavailable(&e);
            return fail(Refusal::of(&e), e);
        }
    }
    if let Err((reason, e)) = check_slack_did_not_refuse(&params) {
        return fail(reason, e);
    }
    let identity = match sign_in_upstream(&provider, &params, &login).await {
        Ok(identity) => identity,
        Err(e) => return fail(Refusal::UpstreamError, e),
    };
    match check_state_unused(&provider, &params, &login).await {
        Ok(()) => {}
        Err(e) if e.code == ErrorCode::TemporarilyUnavailable => {
            return fail(Refusal::of(&e), e);
        }
        Err(e) => {
            metrics::sign_in_refused(Refusal::BadState);
            return provider.error_page_in(
                locale,
                back_link(&provider, &login.request).as_ref(),
                StatusCode::BAD_REQUEST,
                "This sign-in cannot be completed",
                &e,
            );
        }
    }
    if let Err(e) = check_workspace_allowed(&provider, &identity.identity) {
        return fail(Refusal::WorkspaceNotAllowed, e);
    }
    let Verified {
        identity,
        auth_time,
        upstream_token,
    } = identity;
    // The application's policy before a session exists: no session for a
    // deactivated account or a bot.
    let admitted = match admitted(&provider, &login.request, &identity).await {
        Ok(admitted) => admitted,
        Err(e) => return fail(Refusal::of(&e), e),
    };
    let (cookie, session) = match provider
        .open_session(&req, identity, auth_time, Some(&upstream_token))
        .await
    {
        Ok(opened) => opened,
        Err(e) => {
            let e = OAuthError::unavailable(&e);
            return fail(Refusal::of(&e), e);
        }
    };
    let request = login.request.clone();
    if let Some(user_code) = &login.device {
        // Never approved silently: the person confirms on our page.
        let mut response =
            super::device::verify::signed_in(&provider, user_code, &cookie, &session, locale).await;
        let _ = response.add_cookie(&provider.session_cookie(&cookie));
        return response;
    }
    let who = SignedIn {
        cookie: &cookie,
        session,
        upstream_token: Some(upstream_token),
        admitted: Some(admitted),
        locale,
    };
    let mut response = complete(&provider, request, who)
        .await
        .unwrap_or_else(|e| fail(Refusal::of(&e), e));
    let _ = response.add_cookie(&provider.session_cookie(&cookie));
    response
}

/// The pending login, opened from Slack's `state`: sealed by us under a
/// still active key, and not expired. Single use is enforced once Slack has
/// answered (see [`check_state_unused`]): Slack's code is single use too.
fn open_pending_login(provider: &Provider, params: &Params) -> Result<PendingLogin, OAuthError> {
    let state = params
        .get("state")
        .ok_or_else(|| OAuthError::invalid_request("Slack sent no state"))?;
    let bytes = provider
        .keys
        .current()
        .open(SEAL_LOGIN, state)
        .map_err(|e| match e {
            Unsealed::Tampered => {
                OAuthError::invalid_request("this sign-in link is not valid; start again")
            }
            Unsealed::RetiredKey => {
                OAuthError::invalid_request("this sign-in began before a key change; start again")
            }
        })?;
    let login: PendingLogin = serde_json::from_slice(&bytes)
        .map_err(|_| OAuthError::invalid_request("this sign-in link is not valid; start again"))?;
    if login.expires_at <= now() {
        return Err(already_completed());
    }
    Ok(login)
}

/// Slack answered this state's callback: recorded once, so the same
/// state cannot complete a second sign-in.
async fn check_state_unused(
    provider: &Provider,
    params: &Params,
    login: &PendingLogin,
) -> Result<(), OAuthError> {
    let state = params.get("state").unwrap_or_default();
    let ttl = std::time::Duration::from_secs((login.expires_at - now()).max(1) as u64);
    let first = provider
        .records
        .mark_state_used(state, ttl)
        .await
        .map_err(|e| OAuthError::unavailable(&e))?;
    if first {
        Ok(())
    } else {
        Err(already_completed())
    }
}

fn already_completed() -> OAuthError {
    OAuthError::invalid_request("this sign-in has expired or was already completed; start again")
}

/// The pending login must have been started by this browser.
fn check_same_browser(
    req: &HttpRequest,
    provider: &Provider,
    login: &PendingLogin,
) -> Result<(), OAuthError> {
    let cookie = req.cookie(provider.browser_cookie);
    let same_browser = cookie
        .map(|c| secret_hash(c.value()))
        .is_some_and(|h| bool::from(h.as_bytes().ct_eq(login.browser_hash.as_bytes())));
    if !same_browser {
        return Err(OAuthError::invalid_request(
            "this sign-in was started in another browser (or cookies are blocked); start again",
        ));
    }
    Ok(())
}

/// Slack redirects with `error=access_denied` when the person cancels.
fn check_slack_did_not_refuse(params: &Params) -> Result<(), (Refusal, OAuthError)> {
    match params.get("error") {
        None => Ok(()),
        Some("access_denied") => Err((
            Refusal::UserCancelled,
            OAuthError::new(
                ErrorCode::AccessDenied,
                "the person cancelled the sign-in at Slack",
            ),
        )),
        Some(_) => Err((
            Refusal::UpstreamError,
            OAuthError::new(ErrorCode::ServerError, "Slack refused the sign-in"),
        )),
    }
}

/// Who Slack says signed in, when, and Slack's tokens (`UpstreamTokens`
/// text, kept sealed for checking the person with Slack later).
struct Verified {
    identity: SlackIdentity,
    auth_time: i64,
    upstream_token: String,
}

async fn sign_in_upstream(
    provider: &Provider,
    params: &Params,
    login: &PendingLogin,
) -> Result<Verified, OAuthError> {
    let code = params
        .get("code")
        .ok_or_else(|| OAuthError::new(ErrorCode::ServerError, "Slack sent no code"))?;
    let slack = &provider.slack;
    let tokens = slack
        .exchange_code(code, login.upstream_pkce_verifier.as_deref())
        .await
        .map_err(upstream_error)?;
    let claims = slack
        .verify_id_token(
            &tokens.id_token,
            &login.upstream_nonce,
            &tokens.access_token,
        )
        .await
        .map_err(upstream_error)?;
    // Slack's ID token normally carries every claim: userInfo (Tier 3) is
    // asked only for what it lacks; when that fails the token's claims suffice.
    let userinfo = if lacks_claims(&claims, &slack.config().scopes) {
        match slack.userinfo(&tokens.access_token).await {
            Ok(info) if info.get("sub") == claims.get("sub") => Some(info),
            Ok(_) => {
                return Err(OAuthError::new(
                    ErrorCode::ServerError,
                    "Slack's userInfo names another user",
                ));
            }
            Err(e) => {
                tracing::warn!(error = %e, "Slack userInfo failed; using the ID token's claims");
                None
            }
        }
    } else {
        None
    };
    let identity = SlackIdentity::from_claims(&claims, userinfo.as_ref()).ok_or_else(|| {
        OAuthError::new(
            ErrorCode::ServerError,
            "Slack's ID token lacks the team or user id",
        )
    })?;
    let auth_time = claims
        .get("auth_time")
        .or_else(|| claims.get("iat"))
        .and_then(Value::as_i64)
        .unwrap_or_else(|| chrono::Utc::now().timestamp());
    Ok(Verified {
        identity,
        auth_time,
        upstream_token: UpstreamTokens::from_answer(&tokens).to_text(),
    })
}

/// Whether the ID token lacks a claim that the scopes asked of Slack would
/// give: the email for `email`; the name and workspace name for `profile`.
fn lacks_claims(claims: &serde_json::Map<String, Value>, scopes: &[String]) -> bool {
    let missing = |key: &str| {
        claims
            .get(key)
            .and_then(Value::as_str)
            .is_none_or(|v| v.trim().is_empty())
    };
    let asked = |scope: &str| scopes.iter().any(|s| s == scope);
    (asked("email") && missing("email"))
        || (asked("profile") && (missing("name") || missing(crate::upstream::identity::TEAM_NAME)))
}

fn upstream_error(e: UpstreamError) -> OAuthError {
    tracing::warn!(error = %e, "Slack sign-in failed");
    let error = if e.is_transient() {
        OAuthError::new(
            ErrorCode::TemporarilyUnavailable,
            format!("{e}; try again shortly"),
        )
    } else {
        OAuthError::new(ErrorCode::ServerError, e.to_string())
    };
    error.with_cause(Cause::Upstream)
}

fn check_workspace_allowed(
    provider: &Provider,
    identity: &SlackIdentity,
) -> Result<(), OAuthError> {
    if identity.is_in(&provider.config.upstream.allowed_team_ids) {
        Ok(())
    } else {
        tracing::info!(team_id = %identity.team_id, "sign-in refused: workspace not allowed");
        Err(OAuthError::new(
            ErrorCode::AccessDenied,
            "this Slack workspace is not allowed to sign in here",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scopes(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn userinfo_is_asked_only_for_claims_the_id_token_lacks() {
        let full = json!({"sub": "U1", "email": "a@b.c", "name": "Ada",
            "https://slack.com/team_name": "Acme"});
        let full = full.as_object().unwrap();
        assert!(!lacks_claims(
            full,
            &scopes(&["openid", "email", "profile"])
        ));
        let no_email = json!({"sub": "U1", "name": "Ada", "https://slack.com/team_name": "Acme"});
        assert!(lacks_claims(
            no_email.as_object().unwrap(),
            &scopes(&["openid", "email"])
        ));
        assert!(!lacks_claims(
            no_email.as_object().unwrap(),
            &scopes(&["openid", "profile"])
        ));
        let blank_name = json!({"sub": "U1", "name": " ", "https://slack.com/team_name": "Acme"});
        assert!(lacks_claims(
            blank_name.as_object().unwrap(),
            &scopes(&["openid", "profile"])
        ));
        assert!(!lacks_claims(&serde_json::Map::new(), &scopes(&["openid"])));
    }
}
