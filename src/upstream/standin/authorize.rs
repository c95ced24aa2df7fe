//! `GET /openid/connect/authorize` and the user picker's form target.
//!
//! Configuration errors end on an HTML page with HTTP 400 and no redirect,
//! as on Slack; only the user's own choice (a user or Cancel) redirects.

use actix_web::http::header::{CACHE_CONTROL, LOCATION};
use actix_web::{HttpRequest, HttpResponse, web};
use std::time::Instant;

use super::http::{form_pairs, get, random_digits, random_hex};
use super::pages::{error_page, pick_user_page, redirect_mismatch_page};
use super::state::CodeGrant;
use super::{Config, Control, StandinApp};

/// The scopes Sign in with Slack knows; any other scope is a "scope conflict".
const OIDC_SCOPES: [&str; 3] = ["openid", "profile", "email"];

/// A checked authorize request.
struct AuthzRequest<'a> {
    app: &'a StandinApp,
    redirect_uri: String,
    redirect_uri_sent: Option<String>,
    scopes: Vec<String>,
    state: Option<String>,
    nonce: Option<String>,
    team: Option<String>,
    code_challenge: Option<String>,
}

/// Why an authorize request is refused; rendered as Slack's error page.
enum Refusal {
    Error(&'static str, &'static str),
    RedirectMismatch(String),
}

impl Refusal {
    fn page(self) -> HttpResponse {
        match self {
            Refusal::Error(code, detail) => error_page(code, detail),
            Refusal::RedirectMismatch(passed) => redirect_mismatch_page(&passed),
        }
    }
}

/// Shows the user picker once the request passes Slack's checks.
pub async fn authorize(
    req: HttpRequest,
    config: web::Data<Config>,
    control: web::Data<Control>,
) -> HttpResponse {
    let params = form_pairs(req.query_string().as_bytes());
    match validate(&config, &params) {
        Ok(authz) => pick_user_page(&req, &authz.app.client_id, &params, &config.users, &control),
        Err(refusal) => refusal.page(),
    }
}

/// Receives the picker's choice: re-checks everything, then redirects.
pub async fn decide(
    body: web::Bytes,
    config: web::Data<Config>,
    control: web::Data<Control>,
) -> HttpResponse {
    let params = form_pairs(&body);
    let authz = match validate(&config, &params) {
        Ok(a) => a,
        Err(refusal) => return refusal.page(),
    };
    let choice = get(&params, "user").unwrap_or_default();
    if choice == "deny" {
        return redirect_back(
            &authz.redirect_uri,
            &[("error", "access_denied")],
            authz.state.as_deref(),
        );
    }
    let Some(user) = config.user(choice) else {
        return error_page("invalid_user", &format!("No test user with id {choice}."));
    };
    if let Some(team) = &authz.team
        && !authz.app.distributed
        && *team != user.team_id
    {
        return error_page(
            "invalid_team_for_non_distributed_app",
            "This app is not distributed and can only be used in its own workspace.",
        );
    }

    let code = format!(
        "{}.{}.{}",
        random_digits(10),
        random_digits(13),
        random_hex::<32>()
    );
    control.store.insert_code(
        code.clone(),
        CodeGrant {
            client_id: authz.app.client_id.clone(),
            redirect_uri_sent: authz.redirect_uri_sent,
            redirect_uri: authz.redirect_uri.clone(),
            scopes: authz.scopes,
            nonce: authz.nonce,
            state: authz.state.clone(),
            user_id: user.user_id.clone(),
            code_challenge: authz.code_challenge,
            created_at: Instant::now(),
            used: false,
        },
    );
    redirect_back(
        &authz.redirect_uri,
        &[("code", &code)],
        authz.state.as_deref(),
    )
}

/// Slack's checks, in the order of the reference's mock spec.
fn validate<'a>(
    config: &'a Config,
    params: &[(String, String)],
) -> Result<AuthzRequest<'a>, Refusal> {
    let client_id = get(params, "client_id").unwrap_or_default();
    let Some(app) = config.app(client_id) else {
        return Err(Refusal::Error(
            "invalid_client_id",
            "The client_id is not that of a known app.",
        ));
    };

    let redirect_uri_sent = get(params, "redirect_uri").map(str::to_owned);
    let redirect_uri = match &redirect_uri_sent {
        Some(uri) if app.redirect_urls.iter().any(|r| redirect_allowed(r, uri)) => uri.clone(),
        Some(uri) => return Err(Refusal::RedirectMismatch(uri.clone())),
        None => match app.redirect_urls.first() {
            Some(first) => first.clone(),
            None => return Err(Refusal::RedirectMismatch(String::new())),
        },
    };

    let scopes: Vec<String> = get(params, "scope")
        .unwrap_or_default()
        .split([' ', ','])
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if !scopes.iter().any(|s| s == "openid")
        || scopes.iter().any(|s| !OIDC_SCOPES.contains(&s.as_str()))
    {
        return Err(Refusal::Error(
            "invalid_scope",
            "Invalid permissions requested. Sign in with Slack needs openid, optionally profile and email, and nothing else.",
        ));
    }

    if get(params, "response_type") != Some("code") {
        return Err(Refusal::Error(
            "unsupported_response_type",
            "Only response_type=code is supported.",
        ));
    }

    let code_challenge = match get(params, "code_challenge").filter(|c| !c.is_empty()) {
        None => None,
        Some(c) if get(params, "code_challenge_method") == Some("S256") => Some(c.to_owned()),
        Some(_) => {
            return Err(Refusal::Error(
                "invalid_request",
                "code_challenge_method must be S256.",
            ));
        }
    };

    let non_empty = |name: &str| {
        get(params, name)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    Ok(AuthzRequest {
        app,
        redirect_uri,
        redirect_uri_sent,
        scopes,
        state: non_empty("state"),
        // An empty nonce counts as none: the ID token then says "" either way.
        nonce: non_empty("nonce"),
        team: non_empty("team"),
        code_challenge,
    })
}

/// Exact match, or the same origin with a path at or below the registered one.
fn redirect_allowed(registered: &str, passed: &str) -> bool {
    if registered == passed {
        return true;
    }
    let (Ok(r), Ok(p)) = (url::Url::parse(registered), url::Url::parse(passed)) else {
        return false;
    };
    if p.fragment().is_some()
        || r.query().is_some()
        || !p.username().is_empty()
        || p.password().is_some()
    {
        return false;
    }
    let base = r.path().trim_end_matches('/');
    r.scheme() == p.scheme()
        && r.host_str() == p.host_str()
        && r.port_or_known_default() == p.port_or_known_default()
        && (p.path() == r.path() || p.path() == base || p.path().starts_with(&format!("{base}/")))
}

/// A 302 to the client, keeping any query it registered and adding `state`
/// only when one was sent.
fn redirect_back(redirect_uri: &str, pairs: &[(&str, &str)], state: Option<&str>) -> HttpResponse {
    let Ok(mut url) = url::Url::parse(redirect_uri) else {
        return error_page("bad_redirect_uri", "The redirect URI cannot be parsed.");
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
        if let Some(s) = state {
            q.append_pair("state", s);
        }
    }
    HttpResponse::Found()
        .insert_header((LOCATION, url.as_str()))
        .insert_header((CACHE_CONTROL, "no-store"))
        .finish()
}

#[cfg(test)]
mod redirect_tests {
    use super::redirect_allowed;

    #[test]
    fn redirect_match_accepts_exact_and_subpaths_only() {
        let reg = "http://127.0.0.1:9/cb";
        assert!(redirect_allowed(reg, "http://127.0.0.1:9/cb"));
        assert!(redirect_allowed(reg, "http://127.0.0.1:9/cb/deeper"));
        assert!(redirect_allowed(reg, "http://127.0.0.1:9/cb?x=1"));
        assert!(!redirect_allowed(reg, "http://127.0.0.1:9/cbx"));
        assert!(!redirect_allowed(reg, "http://127.0.0.1:9/cb/../evil"));
        assert!(!redirect_allowed(reg, "http://127.0.0.1:10/cb"));
        assert!(!redirect_allowed(reg, "https://127.0.0.1:9/cb"));
        assert!(!redirect_allowed(reg, "http://evil@127.0.0.1:9/cb"));
        assert!(!redirect_allowed(reg, "http://127.0.0.1:9/cb#frag"));
    }
}
