//! The stand-in's HTML: Slack-style error pages and the "pick a test user"
//! page that replaces Slack's login and consent screens.
//!
//! Everything echoed from a request is escaped: a redirect URI or state is
//! attacker-chosen, and these pages run on the developer's machine.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;

use super::StandinUser;
use super::http::html;

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
.user{display:block;width:100%;text-align:left;margin:.5rem 0;padding:.8rem 1rem;border:1px solid #bbb;\
border-radius:6px;background:#fff;cursor:pointer;font-size:1rem}.user:hover{background:#f0f7ff}\
.user small{display:block;color:#616061}.cancel{margin-top:1rem;padding:.6rem 1rem;border:0;background:none;\
color:#1264a3;cursor:pointer;font-size:1rem}footer{margin-top:1.5rem;font-size:.8rem;color:#616061}";

fn page(title: &str, body: &str) -> String {
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

/// The user picker. Its form posts every authorize parameter back, plus the
/// chosen `user` (an id, or `deny` for Cancel).
pub fn pick_user_page(
    app_name: &str,
    params: &[(String, String)],
    users: &[StandinUser],
) -> HttpResponse {
    let mut hidden = String::new();
    for (k, v) in params.iter().filter(|(k, _)| k != "user") {
        hidden.push_str(&format!(
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
            escape(k),
            escape(v)
        ));
    }
    let mut buttons = String::new();
    for u in users {
        let email = u.email.as_deref().unwrap_or("(no email)");
        let team = match &u.enterprise_name {
            Some(org) => format!("{} · {}", u.team_name, org),
            None => u.team_name.clone(),
        };
        buttons.push_str(&format!(
            "<button class=\"user\" type=\"submit\" name=\"user\" value=\"{id}\">{name}\
             <small>{email} · {team} ({id})</small></button>",
            id = escape(&u.user_id),
            name = escape(&u.name),
            email = escape(email),
            team = escape(&team),
        ));
    }
    let body = format!(
        "<h1>Sign in to <code>{app}</code> with Slack</h1><p>Pick a test user:</p>\
         <form method=\"post\" action=\"/openid/connect/authorize/decide\">{hidden}{buttons}\
         <button class=\"cancel\" type=\"submit\" name=\"user\" value=\"deny\">Cancel</button></form>",
        app = escape(app_name),
    );
    html(StatusCode::OK, page("Sign in with Slack", &body))
}
