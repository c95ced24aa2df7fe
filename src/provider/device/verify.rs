//! The verification page (RFC 8628 §3.3) at `{issuer}/device`: the person
//! enters the user code, signs in with Slack (or reuses the SSO session),
//! and answers a confirmation that names the application, the scopes and
//! the code. The device code is never approved without that answer (§5.4).
//!
//! Guessing (§5.1): an address gets five wrong codes a minute (well-formed
//! codes that match none; typos that make no code are not counted)
//! ([`super::limits`]); a live code entered more than [`MAX_ENTRIES`] times
//! is circulating (a phishing link, a guessed code tried again) and locks:
//! its device is told `access_denied`.
//!
//! The confirmation's form carries a token sealed with the key set (no store
//! write) and bound to the session cookie; whoever answers first takes the
//! user code, so each code is answered once.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::records::{Answer, Approval, DeviceGrant, DeviceRecords, UserCodeRecord};
use super::{SEAL_UPSTREAM, limits, user_code};
use crate::limits::Limited;
use crate::observability::metrics::{self, Refusal};
use crate::provider::Provider;
use crate::provider::authorize::start_upstream_login;
use crate::provider::error::{ErrorCode, OAuthError};
use crate::provider::grant::{app_name, session_ended};
use crate::provider::params::Params;
use crate::provider::policy;
use crate::provider::session::now;
use crate::provider::token::form_params;
use crate::store::StoreError;
use crate::store::records::{ClientRequest, Session, secret_hash};
use crate::web::headers::{FormAction, form_action_source};
use crate::web::i18n::{self, Locale};
use crate::web::pages::Frame;

/// Times a live code may be entered before it locks.
pub const MAX_ENTRIES: u32 = 5;
/// The purpose the confirmation's token is sealed for.
const SEAL_CONFIRM: &str = "device-confirm";
/// The title of every error page of the device flow.
const TITLE: &str = "This device sign-in cannot be completed";

/// What the code entry page says about the last code entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Problem {
    Wrong,
    Expired,
    Locked,
    TooMany(u64),
}

#[derive(Serialize)]
struct EntryPage<'a> {
    action: String,
    user_code: &'a str,
    message: Option<String>,
}

#[derive(Serialize)]
struct ConfirmPage<'a> {
    app: &'a str,
    user: &'a str,
    code: String,
    scopes: Vec<&'static str>,
    token: String,
    action: String,
    switch_action: String,
}

#[derive(Serialize)]
struct DonePage {
    heading: String,
    body: String,
}

/// What the confirmation's form carries, sealed.
#[derive(Serialize, Deserialize)]
struct ConfirmToken {
    /// The normalized user code.
    code: String,
    /// Hash of the session cookie the page was shown to.
    session: String,
    expires_at: i64,
}

/// `GET /device`, prefilled from `user_code` (`verification_uri_complete`):
/// the person still reads the code and presses Continue.
pub async fn page(req: HttpRequest, provider: web::Data<Provider>) -> HttpResponse {
    let locale = Locale::for_request(&req, None);
    let params = Params::parse_lenient(req.query_string()).params;
    let typed = params.get("user_code").unwrap_or_default();
    let shown = user_code::normalize(typed)
        .map(|c| user_code::display(&c))
        .unwrap_or_default();
    entry_page(&provider, locale, StatusCode::OK, &shown, None)
}

/// `POST /device`: the code the person entered.
pub async fn enter(
    req: HttpRequest,
    body: web::Bytes,
    provider: web::Data<Provider>,
) -> HttpResponse {
    let locale = Locale::for_request(&req, None);
    let address = limits::address(&provider, &req);
    if let Err(limited) = provider.device_limits.code_entry(address) {
        return too_many(&provider, locale, limited);
    }
    let params = match form_params(&req, &body) {
        Ok(p) => p,
        Err(e) => return error_page(&provider, locale, StatusCode::BAD_REQUEST, &e),
    };
    let typed = params.get("user_code").unwrap_or_default();
    let retype = |problem| {
        let status = if problem == Problem::Wrong {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::GONE
        };
        entry_page(&provider, locale, status, "", Some(problem))
    };
    let wrong = || {
        provider.device_limits.wrong_code(address);
        tracing::info!("wrong user code entered");
        retype(Problem::Wrong)
    };
    // A typo that makes no code (a digit, a letter short) cannot be a
    // lucky guess: it is not counted against the address.
    let Some(code) = user_code::normalize(typed) else {
        return retype(Problem::Wrong);
    };
    let records = DeviceRecords(&provider.records);
    let key = user_code::key(&code);
    let mut record = match records.user_code(&key).await {
        Ok(Some(record)) => record,
        Ok(None) => return wrong(),
        Err(e) => return unavailable(&provider, locale, &e),
    };
    if record.expires_at <= now() {
        return retype(Problem::Expired);
    }
    if record.entries >= MAX_ENTRIES {
        tracing::warn!(client_id = %record.client_id, "user code entered too many times: locked");
        let reason = "the user code was entered too many times";
        return match decide(
            &provider,
            &key,
            Answer::Denied {
                reason: reason.into(),
            },
        )
        .await
        {
            Ok(()) | Err(Decided::Gone) => retype(Problem::Locked),
            Err(e) => e.page(&provider, locale),
        };
    }
    record.entries += 1;
    match records.replace_user_code(&key, &record).await {
        Ok(Some(_)) => {}
        // Answered or expired since it was read.
        Ok(None) => return retype(Problem::Expired),
        Err(e) => return unavailable(&provider, locale, &e),
    }
    // "Use another Slack account" skips the session.
    let session = if params.get("login") == Some("1") {
        Ok(None)
    } else {
        provider.current_session(&req).await
    };
    match session {
        Ok(Some((cookie, session))) => {
            confirmation(&provider, &record, &code, &cookie, &session, locale)
        }
        Ok(None) => {
            let request = ClientRequest {
                client_id: record.client_id.clone(),
                redirect_uri: String::new(),
                state: None,
                nonce: None,
                scopes: record.scopes.clone(),
                code_challenge: None,
                prompt_consent: false,
                ui_locale: None,
                dpop_jkt: None,
            };
            start_upstream_login(&req, &provider, request, Some(code), locale)
                .await
                .unwrap_or_else(|e| refused(&provider, locale, Refusal::of(&e), &e))
        }
        Err(e) => unavailable(&provider, locale, &e),
    }
}

/// Back from Slack (the callback, for a device sign-in): the confirmation.
pub(crate) async fn signed_in(
    provider: &Provider,
    code: &str,
    cookie: &str,
    session: &Session,
    locale: Locale,
) -> HttpResponse {
    let records = DeviceRecords(&provider.records);
    match records.user_code(&user_code::key(code)).await {
        Ok(Some(record)) if record.expires_at > now() => {
            confirmation(provider, &record, code, cookie, session, locale)
        }
        Ok(_) => error_page(provider, locale, StatusCode::GONE, &gone()),
        Err(e) => unavailable(provider, locale, &e),
    }
}

/// A device sign-in the callback refused: a page (there is no application
/// to send the browser back to). The device keeps waiting; the person may
/// enter the code again.
pub(crate) fn refused(
    provider: &Provider,
    locale: Locale,
    reason: Refusal,
    error: &OAuthError,
) -> HttpResponse {
    metrics::sign_in_refused(reason);
    tracing::info!(reason = reason.as_str(), error = error.code.as_str(), description = %error.description, "device sign-in refused");
    let status = match error.code {
        ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::ServerError => StatusCode::BAD_GATEWAY,
        ErrorCode::AccessDenied => StatusCode::FORBIDDEN,
        _ => StatusCode::BAD_REQUEST,
    };
    error_page(provider, locale, status, error)
}

/// The confirmation page: the application, the account, the code to compare
/// with the device's, the scopes; Approve and Deny.
fn confirmation(
    provider: &Provider,
    record: &UserCodeRecord,
    code: &str,
    cookie: &str,
    session: &Session,
    locale: Locale,
) -> HttpResponse {
    let token = ConfirmToken {
        code: code.to_string(),
        session: secret_hash(cookie),
        expires_at: record
            .expires_at
            .min(now() + provider.ttl_login().as_secs() as i64),
    };
    let token = provider.keys.current().seal(
        SEAL_CONFIRM,
        &serde_json::to_vec(&token).expect("a token serializes"),
    );
    let app = app_name(provider, &record.client_id);
    let identity = &session.identity;
    let user = identity
        .name
        .as_deref()
        .or(identity.email.as_deref())
        .unwrap_or(&identity.user_id);
    let page = ConfirmPage {
        app: &app,
        user,
        code: user_code::display(code),
        scopes: record
            .scopes
            .iter()
            .filter_map(|s| i18n::scope_text(locale, s))
            .collect(),
        token,
        action: format!("{}/device/confirm", provider.base_path),
        switch_action: format!("{}/device", provider.base_path),
    };
    provider.pages.render(
        "device_confirm.html",
        StatusCode::OK,
        &frame_to_slack(provider, locale),
        &page,
    )
}

/// `POST /device/confirm`: Approve or Deny, from the browser and session
/// the page was shown to.
pub async fn confirm(
    req: HttpRequest,
    body: web::Bytes,
    provider: web::Data<Provider>,
) -> HttpResponse {
    let locale = Locale::for_request(&req, None);
    let page = |status: StatusCode, e: &OAuthError| error_page(&provider, locale, status, e);
    let params = match form_params(&req, &body) {
        Ok(p) => p,
        Err(e) => return page(StatusCode::BAD_REQUEST, &e),
    };
    let Some(token) = params.get("token").and_then(|t| open_token(&provider, t)) else {
        return page(
            StatusCode::BAD_REQUEST,
            &OAuthError::invalid_request(
                "this page has expired or was already answered; start again",
            ),
        );
    };
    let Some(cookie) = provider.session_cookie_bound_to(&req, &token.session) else {
        return page(
            StatusCode::BAD_REQUEST,
            &OAuthError::invalid_request("this page was opened in another browser; start again"),
        );
    };
    let session = match provider.current_session(&req).await {
        Ok(Some((current, session))) if current == cookie => session,
        Ok(_) => return page(StatusCode::BAD_REQUEST, &session_ended()),
        Err(e) => return unavailable(&provider, locale, &e),
    };
    let key = user_code::key(&token.code);
    let record = match DeviceRecords(&provider.records).user_code(&key).await {
        Ok(Some(record)) if record.expires_at > now() => record,
        Ok(_) => return page(StatusCode::GONE, &gone()),
        Err(e) => return unavailable(&provider, locale, &e),
    };
    let app = app_name(&provider, &record.client_id);
    match params.get("decision") {
        Some("approve") => approve(&provider, locale, &key, record, &cookie, session).await,
        Some("deny") => {
            let denied = Answer::Denied {
                reason: "the person denied the request".into(),
            };
            match decide(&provider, &key, denied).await {
                Ok(()) => {
                    metrics::sign_in_refused(Refusal::ConsentDeclined);
                    tracing::info!(client_id = %record.client_id, "device code denied");
                    done(&provider, locale, &app, false)
                }
                Err(e) => e.page(&provider, locale),
            }
        }
        _ => page(
            StatusCode::BAD_REQUEST,
            &OAuthError::invalid_request("the form is incomplete"),
        ),
    }
}

/// Approve: the application's policy, as at every code issuance (Slack's
/// "no" denies the device too); then the approval, for the device's poll.
async fn approve(
    provider: &Provider,
    locale: Locale,
    key: &str,
    record: UserCodeRecord,
    cookie: &str,
    session: Session,
) -> HttpResponse {
    let Some(client) = provider.clients.get(&record.client_id) else {
        let e = OAuthError::invalid_request("the application is no longer registered");
        return error_page(provider, locale, StatusCode::BAD_REQUEST, &e);
    };
    let identity = match policy::admit(provider, &client, &session.identity, &record.scopes).await {
        Ok(identity) => identity,
        Err(denied) => {
            let e = denied.at_sign_in();
            if denied.is_no() {
                let answer = Answer::Denied {
                    reason: e.description.clone(),
                };
                if let Err(e) = decide(provider, key, answer).await {
                    return e.page(provider, locale);
                }
            }
            return refused(provider, locale, Refusal::of(&e), &e);
        }
    };
    let upstream_token = provider
        .session_upstream_token(cookie, &session)
        .map(|t| provider.keys.current().seal(SEAL_UPSTREAM, t.as_bytes()));
    let (auth_time, sid) = (session.auth_time, session.sid.clone());
    // Like a code: the client joins the session (back-channel logout).
    match provider.join_session(cookie, session, &client.id).await {
        Ok(Some(_)) => {}
        Ok(None) => return error_page(provider, locale, StatusCode::BAD_REQUEST, &session_ended()),
        Err(e) => return unavailable(provider, locale, &e),
    }
    let approval = Approval {
        identity,
        auth_time,
        sid: Some(sid),
        upstream_token,
        approved_at_ms: chrono::Utc::now().timestamp_millis(),
    };
    match decide(provider, key, Answer::Approved(Box::new(approval))).await {
        Ok(()) => {
            metrics::sign_in_completed(&client.id);
            tracing::info!(client_id = %client.id, "device code approved");
            done(provider, locale, &app_name(provider, &client.id), true)
        }
        Err(e) => e.page(provider, locale),
    }
}

/// Why an answer was not recorded.
enum Decided {
    /// The code was answered (or locked) meanwhile, or has expired.
    Gone,
    /// The store did not answer.
    Store(OAuthError),
}

impl Decided {
    fn page(&self, provider: &Provider, locale: Locale) -> HttpResponse {
        match self {
            Decided::Gone => error_page(provider, locale, StatusCode::GONE, &gone()),
            Decided::Store(e) => error_page(provider, locale, StatusCode::SERVICE_UNAVAILABLE, e),
        }
    }
}

impl From<StoreError> for Decided {
    fn from(e: StoreError) -> Decided {
        Decided::Store(OAuthError::unavailable(&e))
    }
}

/// Records the answer for the device: taking the user code first, so that
/// of two answers (two browsers, or a lock) exactly one is recorded.
async fn decide(provider: &Provider, key: &str, answer: Answer) -> Result<(), Decided> {
    let records = DeviceRecords(&provider.records);
    let record = records.take_user_code(key).await?.ok_or(Decided::Gone)?;
    let grant = DeviceGrant {
        client_id: record.client_id,
        scopes: record.scopes,
        expires_at: record.expires_at,
        answer,
    };
    match records.replace_grant(&record.device_key, &grant).await? {
        Some(_) => Ok(()),
        None => Err(Decided::Gone),
    }
}

fn open_token(provider: &Provider, sealed: &str) -> Option<ConfirmToken> {
    let bytes = provider.keys.current().open(SEAL_CONFIRM, sealed).ok()?;
    let token: ConfirmToken = serde_json::from_slice(&bytes).ok()?;
    (token.expires_at > now()).then_some(token)
}

fn gone() -> OAuthError {
    OAuthError::invalid_request(
        "this code was already used or has expired; start again on your device",
    )
}

/// Forms of the device pages may lead to Slack (a code entered without a
/// session, "use another Slack account"): its origin must be an allowed
/// form destination, or the browser blocks the redirect.
fn frame_to_slack(provider: &Provider, locale: Locale) -> Frame {
    Frame {
        locale,
        form_action: form_action_source(&provider.config.upstream.issuer)
            .map_or(FormAction::SelfOnly, FormAction::SelfAnd),
    }
}

fn entry_page(
    provider: &Provider,
    locale: Locale,
    status: StatusCode,
    user_code: &str,
    problem: Option<Problem>,
) -> HttpResponse {
    let m = locale.messages();
    let message = problem.map(|p| match p {
        Problem::Wrong => m.device_wrong.to_string(),
        Problem::Expired => m.device_expired.to_string(),
        Problem::Locked => m.device_locked.to_string(),
        Problem::TooMany(secs) => m.device_too_many.replace("{seconds}", &secs.to_string()),
    });
    let page = EntryPage {
        action: format!("{}/device", provider.base_path),
        user_code,
        message,
    };
    provider.pages.render(
        "device.html",
        status,
        &frame_to_slack(provider, locale),
        &page,
    )
}

fn too_many(provider: &Provider, locale: Locale, limited: Limited) -> HttpResponse {
    let secs = limited.retry_after_secs;
    let mut response = entry_page(
        provider,
        locale,
        StatusCode::TOO_MANY_REQUESTS,
        "",
        Some(Problem::TooMany(secs)),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    response
}

fn done(provider: &Provider, locale: Locale, app: &str, approved: bool) -> HttpResponse {
    let m = locale.messages();
    let (heading, body) = if approved {
        (m.device_approved_title, m.device_approved_body)
    } else {
        (m.device_denied_title, m.device_denied_body)
    };
    provider.pages.render(
        "device_done.html",
        StatusCode::OK,
        &Frame::new(locale),
        &DonePage {
            heading: heading.to_string(),
            body: body.replace("{app}", app),
        },
    )
}

fn error_page(
    provider: &Provider,
    locale: Locale,
    status: StatusCode,
    error: &OAuthError,
) -> HttpResponse {
    provider.error_page_in(locale, None, status, TITLE, error)
}

fn unavailable(provider: &Provider, locale: Locale, e: &StoreError) -> HttpResponse {
    error_page(
        provider,
        locale,
        StatusCode::SERVICE_UNAVAILABLE,
        &OAuthError::unavailable(e),
    )
}
