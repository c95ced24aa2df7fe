//! `/admin`: a page for people running the bridge locally to change the
//! directory by hand (deactivate a user, make them a guest, revoke their
//! tokens, change group membership). Each change goes through `Control`, like
//! a test's, and is announced as a signed event when `StandinOptions::events`
//! names an endpoint.

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, LOCATION, ORIGIN};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::Value;

use super::events::{
    Signature, send_event, subteam_members_changed_event, subteam_updated_event,
    tokens_revoked_event, user_change_event,
};
use super::http::{form_pairs, get, html};
use super::pages::{error_page, escape, page as page_html, user_marks};
use super::{Config, Control, GuestKind};

/// The directory as it stands, with a form per change.
pub async fn page(config: web::Data<Config>, control: web::Data<Control>) -> HttpResponse {
    let groups = control.group_records();
    let mut body = String::from(
        "<h1>Directory</h1><p>Changes apply at once to <code>users.info</code>, \
         <code>usergroups.list</code> and userInfo.</p>",
    );
    body.push_str(&match &config.events {
        Some(sub) => format!(
            "<p id=\"events\">Each change is sent as a signed event to <code>{}</code>.</p>",
            escape(&sub.url)
        ),
        None => "<p id=\"events\">No event endpoint is configured: changes are not announced.</p>"
            .to_owned(),
    });

    body.push_str(
        "<h2>Users</h2><table><tr><th>User</th><th>Status</th><th>Actions</th><th>Groups</th></tr>",
    );
    for user in &config.users {
        let Some(flags) = control.user_flags(&user.user_id) else {
            continue;
        };
        let marks = user_marks(user, &control);
        let status = if marks.is_empty() {
            "member".to_owned()
        } else {
            marks.join(", ")
        };
        let id = escape(&user.user_id);
        let button = |action: &str, label: &str| {
            format!("<button type=\"submit\" name=\"action\" value=\"{action}\">{label}</button>")
        };
        let guest = flags.is_restricted || flags.is_ultra_restricted;
        body.push_str(&format!(
            "<tr id=\"{id}\"><td><strong>{name}</strong><br><code>{id}</code> · {team}</td>\
             <td class=\"status\">{status}</td>\
             <td><form method=\"post\" action=\"/admin/user\">\
             <input type=\"hidden\" name=\"user\" value=\"{id}\">{b1} {b2} {b3}</form></td><td>",
            name = escape(&user.name),
            team = escape(&user.team_name),
            status = escape(&status),
            b1 = if flags.deleted {
                button("reactivate", "reactivate")
            } else {
                button("deactivate", "deactivate")
            },
            b2 = if guest {
                button("member", "make member")
            } else {
                button("guest", "make guest")
            },
            b3 = button("revoke", "revoke tokens"),
        ));
        for r in groups
            .iter()
            .filter(|r| r.group.team_id == user.team_id && r.group.date_delete == 0)
        {
            let member = r.group.users.contains(&user.user_id);
            body.push_str(&format!(
                "<form method=\"post\" action=\"/admin/group\" class=\"inline\">\
                 <input type=\"hidden\" name=\"user\" value=\"{id}\">\
                 <input type=\"hidden\" name=\"group\" value=\"{handle}\">\
                 <button type=\"submit\" name=\"action\" value=\"{action}\" title=\"{title}\">@{handle} {sign}</button></form> ",
                handle = escape(&r.group.handle),
                action = if member { "remove" } else { "add" },
                title = if member { "remove from the group" } else { "add to the group" },
                sign = if member { "✓" } else { "+" },
            ));
        }
        body.push_str("</td></tr>");
    }
    body.push_str("</table>");

    body.push_str(
        "<h2>Groups</h2><table><tr><th>Group</th><th>Workspace</th><th>Members</th></tr>",
    );
    for r in &groups {
        body.push_str(&format!(
            "<tr><td><strong>@{handle}</strong> <code>{id}</code>{disabled}</td><td><code>{team}</code></td><td>{members}</td></tr>",
            handle = escape(&r.group.handle),
            id = escape(&r.group.id),
            disabled = if r.group.date_delete > 0 { " (disabled)" } else { "" },
            team = escape(&r.group.team_id),
            members = escape(&r.group.users.join(", ")),
        ));
    }
    body.push_str("</table>");

    let doc = page_html("Directory", &body).replace(
        "</style>",
        "main{max-width:60rem}table{border-collapse:collapse;width:100%}\
         td,th{border-bottom:1px solid #eee;padding:.4rem;text-align:left;vertical-align:top}\
         form.inline{display:inline}button{margin:.1rem}</style>",
    );
    html(StatusCode::OK, doc)
}

/// `user` and `action` (`deactivate`, `reactivate`, `guest`, `member`,
/// `revoke`), then back to the page.
pub async fn user_action(
    req: HttpRequest,
    body: web::Bytes,
    config: web::Data<Config>,
    control: web::Data<Control>,
) -> HttpResponse {
    if !same_origin(&req) {
        return forbidden();
    }
    let form = form_pairs(&body);
    let user_id = get(&form, "user").unwrap_or_default();
    let Some(user) = config
        .user(user_id)
        .filter(|u| control.user_flags(&u.user_id).is_some())
    else {
        return error_page(
            "user_not_found",
            &format!("No test user with id {user_id}."),
        );
    };
    match get(&form, "action").unwrap_or_default() {
        "deactivate" => control.set_user_deleted(user_id, true),
        "reactivate" => control.set_user_deleted(user_id, false),
        "guest" => control.set_user_guest(user_id, GuestKind::MultiChannel),
        "member" => control.set_user_guest(user_id, GuestKind::Member),
        "revoke" => {
            control.revoke_user_tokens(user_id);
            announce(
                &config,
                vec![tokens_revoked_event(&user.team_id, &[user_id])],
            );
            return back();
        }
        _ => return error_page("invalid_arguments", "Unknown action."),
    }
    announce(&config, vec![user_change_event(&control, user)]);
    back()
}

/// `group` (a handle), `user` and `action` (`add` or `remove`).
pub async fn group_action(
    req: HttpRequest,
    body: web::Bytes,
    config: web::Data<Config>,
    control: web::Data<Control>,
) -> HttpResponse {
    if !same_origin(&req) {
        return forbidden();
    }
    let form = form_pairs(&body);
    let handle = get(&form, "group").unwrap_or_default();
    let user_id = get(&form, "user").unwrap_or_default();
    let Some(group) = control.group(handle) else {
        return error_page("no_such_subteam", &format!("No group @{handle}."));
    };
    let mut members: Vec<&str> = group.users.iter().map(String::as_str).collect();
    let (added, removed) = match get(&form, "action").unwrap_or_default() {
        "add" if !members.contains(&user_id) && config.user(user_id).is_some() => {
            members.push(user_id);
            (vec![user_id], vec![])
        }
        "remove" if members.contains(&user_id) => {
            members.retain(|u| *u != user_id);
            (vec![], vec![user_id])
        }
        "add" | "remove" => return back(),
        _ => return error_page("invalid_arguments", "Unknown action."),
    };
    control.set_group_members(handle, &members);
    let mut events = vec![subteam_members_changed_event(
        &group.team_id,
        &group.id,
        &added,
        &removed,
    )];
    if let Some(updated) = control.group(handle) {
        events.push(subteam_updated_event(&updated));
    }
    announce(&config, events);
    back()
}

/// Sends the events in order, in the background; failures are only logged.
fn announce(config: &Config, events: Vec<Value>) {
    let Some(sub) = config.events.clone() else {
        return;
    };
    tokio::spawn(async move {
        for event in events {
            let kind = event["event"]["type"].as_str().unwrap_or("?").to_owned();
            match send_event(&sub.url, &sub.signing_secret, &event, Signature::Good, None).await {
                Ok(resp) if resp.status().is_success() => {}
                Ok(resp) => tracing::warn!(
                    event = %kind,
                    url = %sub.url,
                    status = %resp.status(),
                    "the event endpoint refused a stand-in event"
                ),
                Err(error) => tracing::warn!(
                    event = %kind,
                    url = %sub.url,
                    %error,
                    "the stand-in could not send an event"
                ),
            }
        }
    });
}

/// Refuses cross-site form posts: another site open in the same browser
/// must not change the directory. Requests without `Origin` (curl) pass.
fn same_origin(req: &HttpRequest) -> bool {
    let Some(origin) = req.headers().get(ORIGIN) else {
        return true;
    };
    let info = req.connection_info();
    let host = info.host();
    let loopback_host = ["127.0.0.1:", "localhost:", "[::1]:"]
        .iter()
        .any(|p| host.starts_with(p));
    loopback_host && origin.to_str().is_ok_and(|o| o == format!("http://{host}"))
}

fn forbidden() -> HttpResponse {
    let mut resp = error_page(
        "forbidden",
        "Cross-site requests may not change the directory.",
    );
    *resp.status_mut() = StatusCode::FORBIDDEN;
    resp
}

/// 303 back to the page.
fn back() -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((LOCATION, "/admin"))
        .insert_header((CACHE_CONTROL, "no-store"))
        .finish()
}
