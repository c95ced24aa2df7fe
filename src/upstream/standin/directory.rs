//! The directory methods of Slack's Web API, called with the app's bot token:
//! `users.info` and `usergroups.list` (reference §9).
//!
//! Arguments come from the query string or a form body; the token from
//! `Authorization: Bearer` or a `token` form field. Every refusal is HTTP 200
//! `{"ok":false,"error":…}`, except the rate-limit fault (429).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use subtle::ConstantTimeEq;

use super::control::{GroupRecord, UserFlags};
use super::http::{
    Obj, api_error, api_json, form_pairs, get, html_404, mime_essence, rate_limited,
};
use super::userinfo::{bearer, body_token};
use super::{Config, Control, DirectoryFault, DirectoryMethod, StandinUser};

/// `users.info?user=U…`.
pub async fn users_info(
    req: HttpRequest,
    body: web::Bytes,
    config: web::Data<Config>,
    control: web::Data<Control>,
) -> HttpResponse {
    let args = match admit(&req, &body, &config, &control, DirectoryMethod::UsersInfo).await {
        Ok(args) => args,
        Err(refusal) => return refusal,
    };
    let Some(user_id) = get(&args, "user").filter(|u| !u.is_empty()) else {
        return api_error("user_not_found");
    };
    let (Some(user), Some(flags)) = (config.user(user_id), control.user_flags(user_id)) else {
        return api_error("user_not_found");
    };
    let mut obj = Obj::new();
    obj.set("ok", true).set("user", user_object(user, &flags));
    api_json(StatusCode::OK, &obj)
}

/// `usergroups.list`: the groups of one team (`team_id`) or of every
/// workspace that is not on Enterprise Grid (a workspace token's view).
pub async fn usergroups_list(
    req: HttpRequest,
    body: web::Bytes,
    config: web::Data<Config>,
    control: web::Data<Control>,
) -> HttpResponse {
    let args = match admit(
        &req,
        &body,
        &config,
        &control,
        DirectoryMethod::UsergroupsList,
    )
    .await
    {
        Ok(args) => args,
        Err(refusal) => return refusal,
    };
    let include_users = truthy(get(&args, "include_users"));
    let include_disabled = truthy(get(&args, "include_disabled"));
    let team_id = get(&args, "team_id").filter(|t| !t.is_empty());

    let groups: Vec<serde_json::Value> = control
        .group_records()
        .iter()
        .filter(|r| match team_id {
            Some(team) => r.group.team_id == team,
            None => !config.is_grid_team(&r.group.team_id),
        })
        .filter(|r| include_disabled || r.group.date_delete == 0)
        .map(|r| group_value(r, include_users))
        .collect();
    let mut obj = Obj::new();
    obj.set("ok", true).set("usergroups", groups);
    api_json(StatusCode::OK, &obj)
}

/// Counts the call, applies the fault, checks the bot token; the arguments
/// if the request may go on, else the answer to send.
async fn admit(
    req: &HttpRequest,
    body: &[u8],
    config: &Config,
    control: &Control,
    method: DirectoryMethod,
) -> Result<Vec<(String, String)>, HttpResponse> {
    control.count_call(method.name());
    match control.directory_fault(method) {
        Some(DirectoryFault::RateLimited { retry_after_secs }) => {
            return Err(rate_limited(retry_after_secs));
        }
        Some(DirectoryFault::ErrorCode(code)) => return Err(api_error(&code)),
        Some(DirectoryFault::NonJson404) => return Err(html_404()),
        Some(DirectoryFault::Slow(d)) => tokio::time::sleep(d).await,
        None => {}
    }

    let Some(token) = bearer(req).or_else(|| body_token(req, body)) else {
        return Err(api_error("not_authed"));
    };
    let valid = config
        .bot_token
        .as_deref()
        .is_some_and(|bot| bool::from(token.as_bytes().ct_eq(bot.as_bytes())));
    if !valid {
        return Err(api_error("invalid_auth"));
    }

    // Query arguments, then form fields for names the query did not have.
    let mut args = form_pairs(req.query_string().as_bytes());
    if mime_essence(req).as_deref() == Some("application/x-www-form-urlencoded") {
        for (k, v) in form_pairs(body) {
            if get(&args, &k).is_none() {
                args.push((k, v));
            }
        }
    }
    Ok(args)
}

/// Slack's boolean arguments: `true` or `1`.
fn truthy(v: Option<&str>) -> bool {
    matches!(v, Some(s) if s == "1" || s.eq_ignore_ascii_case("true"))
}

fn group_value(r: &GroupRecord, include_users: bool) -> serde_json::Value {
    serde_json::to_value(r.group.to_obj(r.date_create, r.date_update, include_users))
        .unwrap_or_default()
}

/// The `user` object of `users.info` (and of `user_change` events), with the
/// current directory flags.
pub(crate) fn user_object(user: &StandinUser, flags: &UserFlags) -> serde_json::Value {
    let mut profile = Obj::new();
    profile
        .set("real_name", user.name.as_str())
        .set("display_name", user.given_name.as_str())
        .set("first_name", user.given_name.as_str())
        .set("last_name", user.family_name.as_str());
    if let Some(email) = &user.email {
        profile.set("email", email.as_str());
    }
    profile.set("image_512", user.picture.as_str());

    let mut obj = Obj::new();
    obj.set("id", user.user_id.as_str())
        .set("team_id", user.team_id.as_str())
        .set("name", user.username())
        .set("deleted", flags.deleted)
        .set("real_name", user.name.as_str())
        .set("profile", to_value(&profile))
        .set("is_admin", false)
        .set("is_owner", false)
        .set("is_primary_owner", false)
        .set("is_restricted", flags.is_restricted)
        .set("is_ultra_restricted", flags.is_ultra_restricted)
        .set("is_bot", flags.is_bot)
        .set("is_app_user", false)
        .set("updated", flags.updated);
    if let Some(enterprise_id) = &user.enterprise_id {
        let mut ent = Obj::new();
        ent.set("id", user.user_id.as_str())
            .set("enterprise_id", enterprise_id.as_str())
            .set(
                "enterprise_name",
                user.enterprise_name.clone().unwrap_or_default(),
            )
            .set("is_admin", false)
            .set("is_owner", false)
            .set("teams", vec![user.team_id.clone()]);
        obj.set("enterprise_user", to_value(&ent));
    }
    to_value(&obj)
}

fn to_value(obj: &Obj) -> serde_json::Value {
    serde_json::to_value(obj).unwrap_or_default()
}
