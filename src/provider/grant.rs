//! The step every successful authorization ends with, whether the person just
//! came back from Slack, already had a session, or answered the consent page:
//! record the client in the session, ask for consent when the client requires
//! it, then mint a code and send the browser back.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use serde::Serialize;

use super::Provider;
use super::error::{ErrorCode, OAuthError, redirect_with};
use super::policy;
use crate::observability::metrics;
use crate::store::Namespace;
use crate::store::records::{
    ClientRequest, CodeGrant, Consent, PendingConsent, Session, random_secret,
};
use crate::store::seal;
use crate::upstream::SlackIdentity;
use crate::web::headers::{FormAction, form_action_source};
use crate::web::i18n::{self, Locale};
use crate::web::pages::{BackLink, Frame};

/// Consents are remembered for a year.
const CONSENT_TTL: std::time::Duration = std::time::Duration::from_secs(365 * 86400);

pub const SEAL_UPSTREAM: &str = "upstream-token";

/// Who is signing in, and the session they hold.
pub struct SignedIn<'a> {
    pub cookie: &'a str,
    pub session: Session,
    /// Slack's tokens (`UpstreamTokens` text), when the person just came
    /// back from Slack; otherwise they are opened from the session.
    pub upstream_token: Option<String>,
    /// The identity `policy::admit` just admitted for this request, when the
    /// caller checked already (the callback checks before opening a session).
    pub admitted: Option<SlackIdentity>,
    /// The language of the pages this person sees.
    pub locale: Locale,
}

fn consent_key(client_id: &str, sub: &str) -> String {
    format!("{client_id}\n{sub}")
}

/// Trusted clients never ask; others ask on `prompt=consent` and whenever the
/// person has not yet agreed to every requested scope.
pub async fn needs_consent(
    provider: &Provider,
    request: &ClientRequest,
    identity: &SlackIdentity,
) -> Result<bool, OAuthError> {
    let Some(client) = provider.clients.get(&request.client_id) else {
        return Ok(true);
    };
    if !client.require_consent {
        return Ok(false);
    }
    if request.prompt_consent {
        return Ok(true);
    }
    let given: Option<Consent> = provider
        .records
        .get(
            Namespace::Consent,
            &consent_key(&request.client_id, &identity.subject()),
        )
        .await
        .map_err(|e| OAuthError::unavailable(&e))?;
    Ok(!given.is_some_and(|c| request.scopes.iter().all(|s| c.scopes.contains(s))))
}

pub async fn remember_consent(
    provider: &Provider,
    request: &ClientRequest,
    identity: &SlackIdentity,
) -> Result<(), OAuthError> {
    let consent = Consent {
        scopes: request.scopes.clone(),
    };
    provider
        .records
        .put(
            Namespace::Consent,
            &consent_key(&request.client_id, &identity.subject()),
            &consent,
            CONSENT_TTL,
        )
        .await
        .map_err(|e| OAuthError::unavailable(&e))
}

/// A logout (in another tab, or back-channel) ended the session while this
/// sign-in was under way: no code for a session that no longer exists.
pub fn session_ended() -> OAuthError {
    OAuthError::new(
        ErrorCode::AccessDenied,
        "the session ended during sign-in; sign in again",
    )
}

/// The application's policy, checked at every code issuance: the identity
/// the code will carry (with `groups` when asked for).
pub async fn admitted(
    provider: &Provider,
    request: &ClientRequest,
    identity: &SlackIdentity,
) -> Result<SlackIdentity, OAuthError> {
    let client = provider
        .clients
        .get(&request.client_id)
        .ok_or_else(|| OAuthError::invalid_request("the application is no longer registered"))?;
    policy::admit(provider, &client, identity, &request.scopes)
        .await
        .map_err(|denied| denied.at_sign_in())
}

/// Finishes an authorization for a signed-in person.
pub async fn complete(
    provider: &Provider,
    request: ClientRequest,
    mut who: SignedIn<'_>,
) -> Result<HttpResponse, OAuthError> {
    let identity = match who.admitted.take() {
        Some(identity) => identity,
        None => admitted(provider, &request, &who.session.identity).await?,
    };
    let upstream_token = who
        .upstream_token
        .take()
        .or_else(|| provider.session_upstream_token(who.cookie, &who.session));
    if needs_consent(provider, &request, &identity).await? {
        return show_consent(provider, request, who, identity, upstream_token).await;
    }
    let session = provider
        .join_session(who.cookie, who.session, &request.client_id)
        .await
        .map_err(|e| OAuthError::unavailable(&e))?
        .ok_or_else(session_ended)?;
    let code = issue_code(
        provider,
        &request,
        identity,
        session.auth_time,
        Some(session.sid),
        upstream_token,
    )
    .await?;
    Ok(redirect_with(
        &request.redirect_uri,
        &[
            ("code", Some(&code)),
            ("state", request.state.as_deref()),
            ("iss", Some(&provider.issuer)),
        ],
    ))
}

pub async fn issue_code(
    provider: &Provider,
    request: &ClientRequest,
    identity: SlackIdentity,
    auth_time: i64,
    sid: Option<String>,
    upstream_token: Option<String>,
) -> Result<String, OAuthError> {
    let code = random_secret();
    let grant = CodeGrant {
        client_id: request.client_id.clone(),
        redirect_uri: request.redirect_uri.clone(),
        scopes: request.scopes.clone(),
        nonce: request.nonce.clone(),
        code_challenge: request.code_challenge.clone(),
        identity,
        auth_time,
        sid,
        upstream_token: upstream_token.map(|t| seal::seal(&code, SEAL_UPSTREAM, t.as_bytes())),
        issued_at_ms: chrono::Utc::now().timestamp_millis(),
        dpop_jkt: request.dpop_jkt.clone(),
    };
    provider
        .records
        .put_code(&code, &grant, provider.ttl_code())
        .await
        .map_err(|e| OAuthError::unavailable(&e))?;
    // Every sign-in that ends with a code comes through here (after Slack,
    // from the session, or from the consent page).
    metrics::sign_in_completed(&request.client_id);
    Ok(code)
}

#[derive(Serialize)]
struct ConsentPage<'a> {
    app: &'a str,
    user: String,
    scopes: Vec<&'static str>,
    interaction: &'a str,
    action: String,
}

async fn show_consent(
    provider: &Provider,
    request: ClientRequest,
    who: SignedIn<'_>,
    identity: SlackIdentity,
    upstream_token: Option<String>,
) -> Result<HttpResponse, OAuthError> {
    let interaction = random_secret();
    let pending = PendingConsent {
        request: request.clone(),
        identity: identity.clone(),
        auth_time: who.session.auth_time,
        sid: Some(who.session.sid.clone()),
        upstream_token: upstream_token
            .map(|t| seal::seal(&interaction, SEAL_UPSTREAM, t.as_bytes())),
        // Bound to the session cookie: only this browser can answer the page.
        browser_hash: crate::store::records::secret_hash(who.cookie),
    };
    provider
        .records
        .put(
            Namespace::Interaction,
            &interaction,
            &pending,
            provider.ttl_login(),
        )
        .await
        .map_err(|e| OAuthError::unavailable(&e))?;
    let name = app_name(provider, &request.client_id);
    let page = ConsentPage {
        app: &name,
        user: identity
            .name
            .clone()
            .or(identity.email.clone())
            .unwrap_or(identity.user_id.clone()),
        scopes: request
            .scopes
            .iter()
            .filter_map(|s| i18n::scope_text(who.locale, s))
            .collect(),
        interaction: &interaction,
        action: format!("{}/consent", provider.base_path),
    };
    // Either answer redirects to the application: its origin must be an
    // allowed form destination, or the browser blocks the redirect.
    let frame = Frame {
        locale: who.locale,
        form_action: form_action_source(&request.redirect_uri)
            .map_or(FormAction::SelfOnly, FormAction::SelfAnd),
    };
    Ok(provider
        .pages
        .render("consent.html", StatusCode::OK, &frame, &page))
}

/// How pages name an application: its registered `client_name`, else its id.
pub fn app_name(provider: &Provider, client_id: &str) -> String {
    provider
        .clients
        .get(client_id)
        .and_then(|c| c.name.clone())
        .unwrap_or_else(|| client_id.to_string())
}

/// A way back to the application of a validated request, for error pages.
pub fn back_link(provider: &Provider, request: &ClientRequest) -> Option<BackLink> {
    BackLink::to_origin_of(
        &request.redirect_uri,
        &app_name(provider, &request.client_id),
    )
}

pub fn access_denied(request: &ClientRequest, provider: &Provider, why: &str) -> HttpResponse {
    OAuthError::new(ErrorCode::AccessDenied, why).redirect(
        &request.redirect_uri,
        request.state.as_deref(),
        &provider.issuer,
    )
}
