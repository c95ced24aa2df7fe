//! The stand-in's HTML: Slack-style error pages and the "pick a test user"
//! page that replaces Slack's login and consent screens (a template of the
//! bridge's, `templates/standin/pick_user.html`).
//!
//! Everything echoed from a request is escaped: a redirect URI or state is
//! attacker-chosen, and these pages run on the developer's machine.

use std::sync::LazyLock;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use serde::Serialize;

use super::http::html;
use super::{Control, StandinUser};
use crate::web::Pages;
use crate::web::headers::FormAction;
use crate::web::i18n::Locale;
use crate::web::pages::Frame;

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            _ => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:Lato,Helvetica,Arial,sans-serif;background:#f8f8f8;color:#1d1c1d;margin:0}\
main{max-width:34rem;margin:4rem auto;background:#fff;border:1px solid #ddd;border-radius:8px;padding:2rem}\
h1{font-size:1.4rem;margin-top:0}code{background:#f4f4f4;padding:.1rem .3rem;word-break:break-all}\
footer{margin-top:1.5rem;font-size:.8rem;color:#616061}";

pub(super) fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{title} | Slack (stand-in)</title><style>{STYLE}</style></head>\
         <body><main>{body}<footer>Slack stand-in for local development. Not Slack.</footer></main></body></html>",
        title = escape(title),
    )
}

/// Slack's own error page: HTTP 400, no redirect. `code` is a Slack error
/// code (never user input), `detail` is escaped here.
pub fn error_page(code: &str, detail: &str) -> HttpResponse {
    let body = format!(
        "<h1>Oops, something went wrong</h1><p><code id=\"error\">{code}</code></p><p id=\"detail\">{detail}</p>",
        code = escape(code),
        detail = escape(detail),
    );
    html(StatusCode::BAD_REQUEST, page("Error", &body))
}

/// The wrong-redirect page, with the text Slack shows.
pub fn redirect_mismatch_page(passed: &str) -> HttpResponse {
    let body = format!(
        "<h1>Oops, something went wrong</h1><p><code id=\"error\">bad_redirect_uri</code></p>\
         <p id=\"detail\">redirect_uri did not match any configured URIs. Passed URI: {}</p>",
        escape(passed)
    );
    html(StatusCode::BAD_REQUEST, page("Error", &body))
}

/// The user picker, in the browser's language (Slack's own authorize request
/// carries no `ui_locales`). Its form posts every authorize parameter back,
/// plus the chosen `user` (an id, or `deny` for Cancel). Rendered with the
/// bridge's templates and look, escaped by tera. Guests, bots and
/// deactivated users are marked after their workspace.
pub fn pick_user_page(
    req: &HttpRequest,
    app_name: &str,
    params: &[(String, String)],
    users: &[StandinUser],
    control: &Control,
) -> HttpResponse {
    #[derive(Serialize)]
    struct Hidden<'a> {
        name: &'a str,
        value: &'a str,
    }
    #[derive(Serialize)]
    struct User<'a> {
        id: &'a str,
        name: &'a str,
        email: Option<&'a str>,
        team: String,
    }
    #[derive(Serialize)]
    struct Picker<'a> {
        app: &'a str,
        params: Vec<Hidden<'a>>,
        users: Vec<User<'a>>,
    }
    let picker = Picker {
        app: app_name,
        params: params
            .iter()
            .filter(|(k, _)| k != "user")
            .map(|(name, value)| Hidden { name, value })
            .collect(),
        users: users
            .iter()
            .map(|u| User {
                id: &u.user_id,
                name: &u.name,
                email: u.email.as_deref(),
                team: {
                    let mut team = match &u.enterprise_name {
                        Some(org) => format!("{} · {}", u.team_name, org),
                        None => u.team_name.clone(),
                    };
                    for mark in user_marks(u, control) {
                        team.push_str(" · ");
                        team.push_str(mark);
                    }
                    team
                },
            })
            .collect(),
    };
    // The picker's answer redirects to the bridge, which redirects on to an
    // application: no `form-action` could name them all.
    let frame = Frame {
        locale: Locale::for_request(req, None),
        form_action: FormAction::Unrestricted,
    };
    PAGES.render("standin/pick_user.html", StatusCode::OK, &frame, &picker)
}

/// What sets a user apart in the directory, now: `bot`, a guest kind,
/// `deactivated`. Empty for an active full member.
pub(super) fn user_marks(user: &StandinUser, control: &Control) -> Vec<&'static str> {
    let Some(flags) = control.user_flags(&user.user_id) else {
        return Vec::new();
    };
    let mut marks = Vec::new();
    if flags.is_bot {
        marks.push("bot");
    }
    if flags.is_ultra_restricted {
        marks.push("single-channel guest");
    } else if flags.is_restricted {
        marks.push("multi-channel guest");
    }
    if flags.deleted {
        marks.push("deactivated");
    }
    marks
}

static PAGES: LazyLock<Pages> =
    LazyLock::new(|| Pages::new().expect("the compiled-in templates parse"));
