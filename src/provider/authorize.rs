//! The authorization endpoint (OIDC Core §3.1.2, RFC 6749 §4.1.1, RFC 7636).
//! Checks run in this order; the first two cannot redirect (there is no
//! trusted place to send the person), every later one redirects with an error.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::Provider;
use super::claims::{GROUPS_SCOPE, SUPPORTED_SCOPES};
use super::clients::Client;
use super::error::{Cause, ErrorCode, OAuthError};
use super::grant::{SignedIn, app_name, complete, needs_consent};
use super::par;

use super::params::{Lenient, Params, is_form};
use super::session::now;
use crate::limits::Endpoint;
use crate::observability::metrics::{self, Refusal};
use crate::store::records::{ClientRequest, PendingLogin, Session, random_secret, secret_hash};
use crate::web::i18n::Locale;
use crate::web::pages::Frame;

pub async fn get(req: HttpRequest, provider: web::Data<Provider>) -> HttpResponse {
    authorize(&req, &provider, Params::parse_lenient(req.query_string())).await
}

pub async fn post(
    req: HttpRequest,
    body: web::Bytes,
    provider: web::Data<Provider>,
) -> HttpResponse {
    let is_form = is_form(&req);
    let malformed = |e: OAuthError| {
        provider.error_page_in(
            Locale::for_request(&req, None),
            None,
            StatusCode::BAD_REQUEST,
            "The sign-in request is malformed",
            &e,
        )
    };
    if !is_form {
        return malformed(OAuthError::invalid_request(
            "the request must be application/x-www-form-urlencoded",
        ));
    }
    let Ok(body) = std::str::from_utf8(&body) else {
        return malformed(OAuthError::invalid_request(
            "the request body is not valid UTF-8",
        ));
    };
    authorize(&req, &provider, Params::parse_lenient(body)).await
}

/// What `prompt`, `max_age` and `id_token_hint` ask of the session.
#[derive(Default)]
struct SessionRules {
    none: bool,
    login: bool,
    max_age: Option<i64>,
    /// `sub` of a verified `id_token_hint`.
    hint_sub: Option<String>,
}

async fn authorize(req: &HttpRequest, provider: &Provider, parsed: Lenient) -> HttpResponse {
    if let Err(limited) = provider.limits.check_address(Endpoint::Authorize, req) {
        metrics::sign_in_refused(Refusal::RateLimited);
        return limited.page(provider, req);
    }
    // The language of our pages: `ui_locales` first (even on the error page
    // for an unknown client: it only picks among our languages).
    let ui_locale = parsed
        .params
        .get("ui_locales")
        .and_then(Locale::from_ui_locales);
    let locale = Locale::for_request(req, ui_locale.map(Locale::tag));
    // A pushed request (RFC 9126) stands in for the query's parameters.
    let (parsed, pushed) = match par::resolve(provider, parsed).await {
        Ok(resolved) => resolved,
        Err(e) => {
            metrics::sign_in_refused(Refusal::of(&e));
            let status = if e.code == ErrorCode::TemporarilyUnavailable {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::BAD_REQUEST
            };
            return provider.error_page_in(
                locale,
                None,
                status,
                "This sign-in link is not valid",
                &e,
            );
        }
    };
    let (client, redirect_uri) = match check_client_and_redirect_uri(provider, &parsed) {
        Ok(v) => v,
        Err(e) => {
            metrics::sign_in_refused(Refusal::InvalidRequest);
            return provider.error_page_in(
                locale,
                None,
                StatusCode::BAD_REQUEST,
                "This sign-in link is not valid",
                &e,
            );
        }
    };
    if let Err(limited) = provider
        .limits
        .check_client(Endpoint::Authorize, &client.id)
    {
        metrics::sign_in_refused(Refusal::RateLimited);
        return limited.page(provider, req);
    }
    let params = &parsed.params;
    let state = params.get("state").map(str::to_string);
    let fail = |e: OAuthError| {
        provider.refuse_sign_in(
            req,
            Refusal::of(&e),
            e,
            &client.id,
            &redirect_uri,
            state.as_deref(),
        )
    };

    if !pushed && (client.require_par || provider.config.require_pushed_authorization_requests) {
        return fail(OAuthError::invalid_request(
            "this application must push its authorization requests first (PAR)",
        ));
    }
    let Checked {
        rules,
        scopes,
        code_challenge,
        dpop_jkt,
    } = match check_request(provider, &client, &parsed) {
        Ok(checked) => checked,
        Err(e) => return fail(e),
    };
    let request = ClientRequest {
        client_id: client.id.clone(),
        redirect_uri: redirect_uri.clone(),
        state: state.clone(),
        nonce: params.get("nonce").map(str::to_string),
        scopes,
        code_challenge,
        prompt_consent: params
            .get("prompt")
            .is_some_and(|p| p.split(' ').any(|v| v == "consent")),
        ui_locale: ui_locale.map(|l| l.tag().to_string()),
        dpop_jkt,
    };
    let result = match reuse_session(req, provider, &client, &rules).await {
        Ok(Some((cookie, session))) => {
            if rules.none
                && needs_consent(provider, &request, &session.identity)
                    .await
                    .unwrap_or(true)
            {
                Err(OAuthError::new(
                    ErrorCode::ConsentRequired,
                    "this application needs the person's consent",
                ))
            } else {
                let who = SignedIn {
                    cookie: &cookie,
                    session,
                    upstream_token: None,
                    admitted: None,
                    locale,
                };
                complete(provider, request, who).await
            }
        }
        Ok(None) if rules.none => Err(OAuthError::new(
            ErrorCode::LoginRequired,
            "the person is not signed in",
        )),
        Ok(None) => start_upstream_login(req, provider, request, None, locale).await,
        Err(e) => Err(e),
    };
    result.unwrap_or_else(fail)
}

/// The browser's session, when it may answer this request without Slack:
/// no `prompt=login`, not older than `max_age`, and the user the hint names
/// (its `sub` is as this client knows the person: public or pairwise).
async fn reuse_session(
    req: &HttpRequest,
    provider: &Provider,
    client: &Client,
    rules: &SessionRules,
) -> Result<Option<(String, Session)>, OAuthError> {
    if rules.login {
        return Ok(None);
    }
    let Some((cookie, session)) = provider
        .current_session(req)
        .await
        .map_err(|e| OAuthError::unavailable(&e))?
    else {
        return Ok(None);
    };
    let too_old = rules
        .max_age
        .is_some_and(|max| now() - session.auth_time > max);
    let other_user = rules
        .hint_sub
        .as_ref()
        .is_some_and(|sub| *sub != client.subject(&session.identity));
    Ok((!too_old && !other_user).then_some((cookie, session)))
}

/// What the checks of an authorization request yield.
pub(crate) struct Checked {
    rules: SessionRules,
    pub scopes: Vec<String>,
    pub code_challenge: Option<String>,
    pub dpop_jkt: Option<String>,
}

/// Every check after the client and its redirect URI, in the order of the
/// specification; shared with the pushed authorization request endpoint
/// (RFC 9126 §2.1: a pushed request is checked as an authorization request).
pub(crate) fn check_request(
    provider: &Provider,
    client: &Client,
    parsed: &Lenient,
) -> Result<Checked, OAuthError> {
    if let Some(problem) = parsed.problem.clone() {
        return Err(problem);
    }
    let params = &parsed.params;
    let checks = [
        check_no_request_object,
        check_response_type,
        check_response_mode,
    ];
    for check in checks {
        check(params)?;
    }
    let mut rules = check_prompt(params).and_then(|r| check_max_age(params, r))?;
    rules.hint_sub = check_id_token_hint(provider, params)?;
    let scopes = check_scope(params, client, provider.directory.is_enabled())?;
    let code_challenge = check_pkce(params, client)?;
    let dpop_jkt = check_dpop_jkt(params)?;
    Ok(Checked {
        rules,
        scopes,
        code_challenge,
        dpop_jkt,
    })
}

/// client_id must name a registered client and redirect_uri must be one of
/// its URIs, compared as exact strings (a public client's loopback redirect
/// URI on any port: RFC 8252 §7.3, `Client::has_redirect_uri`). Neither may
/// be repeated.
pub(crate) fn check_client_and_redirect_uri(
    provider: &Provider,
    parsed: &Lenient,
) -> Result<(Arc<Client>, String), OAuthError> {
    for key in ["client_id", "redirect_uri"] {
        if parsed.repeated.iter().any(|r| r == key) {
            return Err(OAuthError::invalid_request(format!("{key} is repeated")));
        }
    }
    let params = &parsed.params;
    let client_id = params
        .get("client_id")
        .ok_or_else(|| OAuthError::invalid_request("client_id is missing"))?;
    let client = provider.clients.get(client_id).ok_or_else(|| {
        OAuthError::new(
            ErrorCode::InvalidClient,
            "this application is not registered here",
        )
    })?;
    let redirect_uri = params
        .get("redirect_uri")
        .ok_or_else(|| OAuthError::invalid_request("redirect_uri is missing"))?;
    if !client.has_redirect_uri(redirect_uri) {
        return Err(OAuthError::invalid_request(
            "redirect_uri is not registered for this application",
        ));
    }
    Ok((client, redirect_uri.to_string()))
}

/// Request objects are not supported (discovery says so); OIDC Core §6.
fn check_no_request_object(params: &Params) -> Result<(), OAuthError> {
    if params.contains("request") {
        return Err(OAuthError::new(
            ErrorCode::RequestNotSupported,
            "request objects are not supported",
        ));
    }
    if params.contains("request_uri") {
        return Err(OAuthError::new(
            ErrorCode::RequestUriNotSupported,
            "request_uri is not supported",
        ));
    }
    Ok(())
}

fn check_response_type(params: &Params) -> Result<(), OAuthError> {
    match params.get("response_type") {
        None => Err(OAuthError::invalid_request("response_type is missing")),
        Some("code") => Ok(()),
        Some(_) => Err(OAuthError::new(
            ErrorCode::UnsupportedResponseType,
            "only response_type=code is supported",
        )),
    }
}

fn check_response_mode(params: &Params) -> Result<(), OAuthError> {
    match params.get("response_mode") {
        None | Some("query") => Ok(()),
        Some(_) => Err(OAuthError::invalid_request(
            "only response_mode=query is supported",
        )),
    }
}

/// `prompt` values are known and `none` stands alone (OIDC Core §3.1.2.1).
fn check_prompt(params: &Params) -> Result<SessionRules, OAuthError> {
    let Some(prompt) = params.get("prompt") else {
        return Ok(SessionRules::default());
    };
    let values: Vec<&str> = prompt.split(' ').filter(|v| !v.is_empty()).collect();
    for v in &values {
        if !matches!(*v, "none" | "login" | "consent" | "select_account") {
            return Err(OAuthError::invalid_request("prompt has an unknown value"));
        }
    }
    let none = values.contains(&"none");
    if none && values.len() > 1 {
        return Err(OAuthError::invalid_request(
            "prompt=none cannot be combined with other values",
        ));
    }
    Ok(SessionRules {
        none,
        login: values.contains(&"login"),
        ..SessionRules::default()
    })
}

fn check_max_age(params: &Params, rules: SessionRules) -> Result<SessionRules, OAuthError> {
    match params.get("max_age") {
        None => Ok(rules),
        Some(v) => match v.parse::<u32>() {
            Ok(max) => Ok(SessionRules {
                max_age: Some(max as i64),
                ..rules
            }),
            Err(_) => Err(OAuthError::invalid_request(
                "max_age must be a non-negative integer",
            )),
        },
    }
}

/// An `id_token_hint` must be an ID token we signed (expired is fine).
fn check_id_token_hint(provider: &Provider, params: &Params) -> Result<Option<String>, OAuthError> {
    let Some(hint) = params.get("id_token_hint") else {
        return Ok(None);
    };
    let claims = provider
        .keys
        .current()
        .verify_own_jwt(hint, &provider.issuer)
        .map_err(|e| OAuthError::invalid_request(format!("id_token_hint is not valid: {e}")))?;
    Ok(claims
        .get("sub")
        .and_then(|s| s.as_str())
        .map(str::to_string))
}

/// RFC 9449 §10: `dpop_jkt` binds the code to a DPoP key; it is the
/// key's SHA-256 thumbprint (RFC 7638), base64url.
fn check_dpop_jkt(params: &Params) -> Result<Option<String>, OAuthError> {
    match params.get("dpop_jkt") {
        None => Ok(None),
        Some(jkt)
            if jkt.len() == 43
                && jkt
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            Ok(Some(jkt.to_string()))
        }
        Some(_) => Err(OAuthError::invalid_request(
            "dpop_jkt must be a base64url SHA-256 JWK thumbprint",
        )),
    }
}

/// `openid` is required; scopes we do not know are ignored (OIDC Core §5.4),
/// and so is `offline_access` for a client not registered for refresh tokens.
/// `groups` is understood only with Slack's directory (a bot token);
/// without it, like any unknown scope, it is ignored (OIDC Core §5.4).
/// The device authorization endpoint asks the same (`provider::device`).
pub(crate) fn check_scope(
    params: &Params,
    client: &Client,
    with_groups: bool,
) -> Result<Vec<String>, OAuthError> {
    let mut scopes = granted_scopes(params.get("scope").unwrap_or(""), client.allows_refresh)?;
    if with_groups
        && params
            .get("scope")
            .is_some_and(|s| s.split(' ').any(|s| s == GROUPS_SCOPE))
    {
        scopes.push(GROUPS_SCOPE.to_string());
    }
    Ok(scopes)
}

fn granted_scopes(scope: &str, allows_refresh: bool) -> Result<Vec<String>, OAuthError> {
    let requested: Vec<&str> = scope.split(' ').filter(|s| !s.is_empty()).collect();
    if !requested.contains(&"openid") {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            "scope must contain openid",
        ));
    }
    Ok(SUPPORTED_SCOPES
        .iter()
        .filter(|s| **s != "offline_access" || allows_refresh)
        .filter(|s| requested.contains(s))
        .map(|s| s.to_string())
        .collect())
}

/// RFC 7636: only S256; required for public clients; the challenge is 43-128
/// characters of the unreserved set (§4.2).
fn check_pkce(params: &Params, client: &Client) -> Result<Option<String>, OAuthError> {
    let challenge = params.get("code_challenge");
    let method = params.get("code_challenge_method");
    match (challenge, method) {
        (None, None) if client.is_public() => Err(OAuthError::invalid_request(
            "PKCE (code_challenge with S256) is required for this client",
        )),
        (None, None) => Ok(None),
        (None, Some(_)) => Err(OAuthError::invalid_request(
            "code_challenge_method without code_challenge",
        )),
        (Some(_), None) | (Some(_), Some("plain")) => Err(OAuthError::invalid_request(
            "code_challenge_method must be S256 (plain is not allowed)",
        )),
        (Some(_), Some(m)) if m != "S256" => Err(OAuthError::invalid_request(
            "code_challenge_method must be S256",
        )),
        (Some(c), Some(_)) => {
            let valid = (43..=128).contains(&c.len())
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
            if valid {
                Ok(Some(c.to_string()))
            } else {
                Err(OAuthError::invalid_request("code_challenge is malformed"))
            }
        }
    }
}

/// Stores the pending login (bound to this browser) and sends the person to
/// Slack with a fresh state and nonce: at once, or through our sign-in page
/// when `pages.login_page` is on.
/// The purpose a pending login is sealed for (see `keys::sealing`).
pub const SEAL_LOGIN: &str = "upstream-state";
/// Slack's `state` comes back in the callback's URI, which is limited to
/// 8 KiB; the application's own `state` and `nonce` take most of this.
const MAX_UPSTREAM_STATE: usize = 6 * 1024;

/// `device`: the user code of a device sign-in (see `PendingLogin::device`).
pub(crate) async fn start_upstream_login(
    req: &HttpRequest,
    provider: &Provider,
    request: ClientRequest,
    device: Option<String>,
    locale: Locale,
) -> Result<HttpResponse, OAuthError> {
    let app = app_name(provider, &request.client_id);
    let (browser_id, new_cookie) = provider.browser_id(req);
    let upstream_nonce = random_secret();
    let pkce = provider.slack.pkce_pair();
    let login = PendingLogin {
        request,
        upstream_nonce: upstream_nonce.clone(),
        upstream_pkce_verifier: pkce.as_ref().map(|(v, _)| v.clone()),
        browser_hash: secret_hash(&browser_id),
        expires_at: now() + provider.ttl_login().as_secs() as i64,
        device,
    };
    // Nothing is stored before the person has authenticated: the pending
    // sign-in travels sealed in Slack's `state`.
    let upstream_state = provider.keys.current().seal(
        SEAL_LOGIN,
        &serde_json::to_vec(&login).expect("a pending login serializes"),
    );
    if upstream_state.len() > MAX_UPSTREAM_STATE {
        return Err(OAuthError::invalid_request(
            "state and nonce are too long together",
        ));
    }
    let url = provider
        .slack
        .authorize_url(
            &upstream_state,
            &upstream_nonce,
            pkce.as_ref().map(|(_, c)| c.as_str()),
        )
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "cannot build Slack's authorization URL");
            OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                "Slack cannot be reached right now; try again shortly",
            )
            .with_cause(Cause::Upstream)
        })?;
    let mut response = if provider.config.pages.login_page {
        login_page(provider, locale, &app, url.as_str())
    } else {
        HttpResponse::Found()
            .insert_header((header::LOCATION, url.as_str()))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish()
    };
    if let Some(cookie) = new_cookie {
        let _ = response.add_cookie(&cookie);
    }
    Ok(response)
}

#[derive(serde::Serialize)]
struct LoginPage<'a> {
    app: &'a str,
    slack_url: &'a str,
}

/// "Sign in to {app}" with a "Sign in with Slack" button: a plain link to
/// Slack's authorization URL (the pending login is sealed in it), so no form
/// and no `form-action` is involved.
fn login_page(provider: &Provider, locale: Locale, app: &str, slack_url: &str) -> HttpResponse {
    provider.pages.render(
        "login.html",
        StatusCode::OK,
        &Frame::new(locale),
        &LoginPage { app, slack_url },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(q: &str) -> Params {
        Params::parse(q).unwrap()
    }

    #[test]
    fn unknown_scopes_are_ignored_and_openid_required() {
        assert_eq!(
            granted_scopes("email openid phone", false).unwrap(),
            vec!["openid", "email"]
        );
        assert_eq!(
            granted_scopes("email", false).unwrap_err().code,
            ErrorCode::InvalidScope
        );
    }

    #[test]
    fn offline_access_needs_a_client_registered_for_refresh() {
        assert_eq!(
            granted_scopes("openid offline_access", false).unwrap(),
            vec!["openid"]
        );
        assert_eq!(
            granted_scopes("openid offline_access", true).unwrap(),
            vec!["openid", "offline_access"]
        );
    }

    #[test]
    fn prompt_none_stands_alone_and_values_are_known() {
        assert!(check_prompt(&p("prompt=none")).ok().unwrap().none);
        assert_eq!(
            check_prompt(&p("prompt=none+login")).err().unwrap().code,
            ErrorCode::InvalidRequest
        );
        assert_eq!(
            check_prompt(&p("prompt=bogus")).err().unwrap().code,
            ErrorCode::InvalidRequest
        );
        assert!(check_prompt(&p("prompt=login+consent")).ok().unwrap().login);
    }

    #[test]
    fn response_type_must_be_code() {
        assert_eq!(
            check_response_type(&p("")).unwrap_err().code,
            ErrorCode::InvalidRequest
        );
        assert_eq!(
            check_response_type(&p("response_type=token"))
                .unwrap_err()
                .code,
            ErrorCode::UnsupportedResponseType
        );
    }

    #[test]
    fn request_objects_are_refused_with_their_own_codes() {
        assert_eq!(
            check_no_request_object(&p("request=x")).unwrap_err().code,
            ErrorCode::RequestNotSupported
        );
        assert_eq!(
            check_no_request_object(&p("request_uri=x"))
                .unwrap_err()
                .code,
            ErrorCode::RequestUriNotSupported
        );
    }
}
