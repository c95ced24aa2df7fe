//! The answer to the consent page (for clients registered with
//! `require_consent`). The one-time interaction token in the form is bound to
//! the session cookie, so another site cannot answer for the person.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use super::Provider;
use super::error::{OAuthError, redirect_with};
use super::grant::{
    SEAL_UPSTREAM, access_denied, admitted, back_link, issue_code, remember_consent, session_ended,
};
use super::token::form_params;
use crate::observability::metrics::{self, Refusal};
use crate::store::Namespace;
use crate::store::records::PendingConsent;
use crate::store::seal;
use crate::web::i18n::Locale;

pub async fn consent(
    req: HttpRequest,
    body: web::Bytes,
    provider: web::Data<Provider>,
) -> HttpResponse {
    let page = |e: OAuthError| {
        provider.error_page_in(
            Locale::for_request(&req, None),
            None,
            StatusCode::BAD_REQUEST,
            "This consent cannot be recorded",
            &e,
        )
    };
    let params = match form_params(&req, &body) {
        Ok(p) => p,
        Err(e) => return page(e),
    };
    let Some(interaction) = params.get("interaction") else {
        return page(OAuthError::invalid_request("the form is incomplete"));
    };
    let pending: PendingConsent = match provider
        .records
        .take(Namespace::Interaction, interaction)
        .await
    {
        Ok(Some(p)) => p,
        Ok(None) => {
            return page(OAuthError::invalid_request(
                "this page has expired or was already answered; start again",
            ));
        }
        Err(e) => return page(OAuthError::unavailable(&e)),
    };
    if provider
        .session_cookie_bound_to(&req, &pending.browser_hash)
        .is_none()
    {
        return provider.error_page_in(
            Locale::for_request(&req, pending.request.ui_locale.as_deref()),
            back_link(&provider, &pending.request).as_ref(),
            StatusCode::BAD_REQUEST,
            "This consent cannot be recorded",
            &OAuthError::invalid_request("this page was opened in another browser; start again"),
        );
    }
    let request = pending.request;
    if params.get("decision") != Some("allow") {
        metrics::sign_in_refused(Refusal::ConsentDeclined);
        return access_denied(
            &request,
            &provider,
            "the person declined to share their data",
        );
    }
    let fail = |e: OAuthError| {
        provider.refuse_sign_in(
            &req,
            Refusal::of(&e),
            e,
            &request.client_id,
            &request.redirect_uri,
            request.state.as_deref(),
        )
    };
    // Policy at every code issuance: Slack may have said no since the page
    // was shown.
    let identity = match admitted(&provider, &request, &pending.identity).await {
        Ok(identity) => identity,
        Err(e) => return fail(e),
    };
    if let Err(e) = remember_consent(&provider, &request, &identity).await {
        return fail(e);
    }
    // The consent was asked within this browser's session: it must still be
    // there (a logout meanwhile is not undone by a late "allow").
    let joined = match provider.current_session(&req).await {
        Ok(Some((cookie, session))) => {
            provider
                .join_session(&cookie, session, &request.client_id)
                .await
        }
        // No session (Ok(None)) or the store failed (Err): passed on as is.
        other => other.map(|_| None),
    };
    match joined {
        Ok(Some(_)) => {}
        Ok(None) => return fail(session_ended()),
        Err(e) => return fail(OAuthError::unavailable(&e)),
    }
    let upstream_token = pending
        .upstream_token
        .as_deref()
        .and_then(|s| seal::open(interaction, SEAL_UPSTREAM, s))
        .and_then(|t| String::from_utf8(t).ok());
    match issue_code(
        &provider,
        &request,
        identity,
        pending.auth_time,
        pending.sid,
        upstream_token,
    )
    .await
    {
        Ok(code) => redirect_with(
            &request.redirect_uri,
            &[
                ("code", Some(&code)),
                ("state", request.state.as_deref()),
                ("iss", Some(&provider.issuer)),
            ],
        ),
        Err(e) => fail(e),
    }
}
