//! The directory side: `users.info`, `usergroups.list`, the user flags and
//! groups tests change through `Control`, token revocation, the directory
//! faults and the call counters.

use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::upstream::standin::{
    DirectoryFault, DirectoryMethod, GuestKind, StandinGroup, UserinfoFault,
};

fn err(code: &str) -> Value {
    json!({"ok": false, "error": code})
}

/// A GET of a Web API method with the bot token (or `token`) as Bearer.
async fn web_api_with(
    h: &StandinHandle,
    c: &reqwest::Client,
    method: &str,
    token: Option<&str>,
    args: &[(&str, &str)],
) -> (reqwest::StatusCode, Value) {
    let url = url::Url::parse_with_params(&format!("{}/api/{method}", h.base_url), args).unwrap();
    let mut req = c.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    if status == 200 {
        assert_eq!(
            resp.headers()["content-type"],
            "application/json; charset=utf-8"
        );
    }
    (status, resp.json().await.unwrap())
}

async fn web_api(
    h: &StandinHandle,
    c: &reqwest::Client,
    method: &str,
    args: &[(&str, &str)],
) -> Value {
    let (status, body) = web_api_with(h, c, method, Some(DEV_BOT_TOKEN), args).await;
    assert_eq!(status, 200);
    body
}

async fn users_info(h: &StandinHandle, c: &reqwest::Client, user: &str) -> Value {
    web_api(h, c, "users.info", &[("user", user)]).await
}

/// The group ids of a `usergroups.list` answer, in order.
fn group_ids(v: &Value) -> Vec<String> {
    assert_eq!(v["ok"], true, "{v}");
    v["usergroups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_str().unwrap().to_owned())
        .collect()
}

fn group<'a>(v: &'a Value, id: &str) -> &'a Value {
    v["usergroups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == id)
        .unwrap_or_else(|| panic!("{id} in {v}"))
}

#[tokio::test]
async fn users_info_describes_a_full_member() {
    let h = spawn().await;
    let c = client();
    let v = users_info(&h, &c, "U0000000001").await;
    assert_eq!(v["ok"], true);
    let u = &v["user"];
    assert_eq!(u["id"], "U0000000001");
    assert_eq!(u["team_id"], "T0000000001");
    assert_eq!(u["name"], "ada.lovelace");
    assert_eq!(u["real_name"], "Ada Lovelace");
    for flag in [
        "deleted",
        "is_bot",
        "is_app_user",
        "is_restricted",
        "is_ultra_restricted",
        "is_admin",
        "is_owner",
    ] {
        assert_eq!(u[flag], false, "{flag}");
    }
    assert!(u["updated"].as_i64().unwrap() > 1_600_000_000);
    assert_eq!(u["profile"]["real_name"], "Ada Lovelace");
    assert_eq!(u["profile"]["display_name"], "Ada");
    assert_eq!(u["profile"]["email"], "ada@example.com");
    assert!(u.get("enterprise_user").is_none());
    h.stop().await;
}

#[tokio::test]
async fn users_info_marks_multi_and_single_channel_guests() {
    let h = spawn().await;
    let c = client();
    let mallory = users_info(&h, &c, "U0000000005").await;
    assert_eq!(mallory["user"]["is_restricted"], true);
    assert_eq!(mallory["user"]["is_ultra_restricted"], false);
    assert_eq!(
        mallory["user"]["profile"]["email"],
        "mallory@partner.example"
    );
    let sam = users_info(&h, &c, "U0000000006").await;
    assert_eq!(sam["user"]["is_restricted"], false);
    assert_eq!(sam["user"]["is_ultra_restricted"], true);
    assert_eq!(sam["user"]["team_id"], "T0000000001");
    h.stop().await;
}

#[tokio::test]
async fn users_info_marks_the_bot_which_has_no_email() {
    let h = spawn().await;
    let c = client();
    let bot = users_info(&h, &c, "U0000000007").await;
    assert_eq!(bot["user"]["is_bot"], true);
    assert_eq!(bot["user"]["real_name"], "Deploy Bot");
    assert!(bot["user"]["profile"].get("email").is_none());
    h.stop().await;
}

#[tokio::test]
async fn users_info_gives_grid_users_an_enterprise_user() {
    let h = spawn().await;
    let c = client();
    let v = users_info(&h, &c, "W0000000003").await;
    assert_eq!(
        v["user"]["enterprise_user"],
        json!({
            "id": "W0000000003",
            "enterprise_id": "E0000000001",
            "enterprise_name": "Example Org",
            "is_admin": false,
            "is_owner": false,
            "teams": ["T0000000003"],
        })
    );
    h.stop().await;
}

#[tokio::test]
async fn users_info_says_user_not_found_for_an_unknown_or_missing_user() {
    let h = spawn().await;
    let c = client();
    assert_eq!(
        users_info(&h, &c, "U0000000099").await,
        err("user_not_found")
    );
    assert_eq!(
        web_api(&h, &c, "users.info", &[]).await,
        err("user_not_found")
    );
    assert_eq!(users_info(&h, &c, "").await, err("user_not_found"));
    h.stop().await;
}

#[tokio::test]
async fn directory_methods_without_a_token_are_not_authed() {
    let h = spawn().await;
    let c = client();
    for method in ["users.info", "usergroups.list"] {
        let (status, v) = web_api_with(&h, &c, method, None, &[("user", "U0000000001")]).await;
        assert_eq!((status, v), (reqwest::StatusCode::OK, err("not_authed")));
    }
    h.stop().await;
}

#[tokio::test]
async fn directory_methods_refuse_any_other_token_with_invalid_auth() {
    let h = spawn().await;
    let c = client();
    // A sign-in (user) token is not the bot token either.
    let user_token = sign_in(&h, &c, "U0000000001").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    for token in ["xoxb-0000000000-not-the-bot-token", user_token.as_str()] {
        for method in ["users.info", "usergroups.list"] {
            let (status, v) =
                web_api_with(&h, &c, method, Some(token), &[("user", "U0000000001")]).await;
            assert_eq!((status, v), (reqwest::StatusCode::OK, err("invalid_auth")));
        }
    }
    h.stop().await;
}

#[tokio::test]
async fn directory_methods_without_a_configured_bot_token_are_invalid_auth() {
    let h = start(StandinOptions {
        bot_token: None,
        ..options(false)
    })
    .await
    .unwrap();
    let c = client();
    let (_, v) = web_api_with(
        &h,
        &c,
        "users.info",
        Some(DEV_BOT_TOKEN),
        &[("user", "U0000000001")],
    )
    .await;
    assert_eq!(v, err("invalid_auth"));
    h.stop().await;
}

#[tokio::test]
async fn directory_methods_take_token_and_arguments_from_a_form_body() {
    let h = spawn().await;
    let c = client();
    let post = |method: &str, form: &[(&str, &str)]| {
        c.post(format!("{}/api/{method}", h.base_url))
            .form(form)
            .send()
    };
    let v: Value = post(
        "users.info",
        &[("token", DEV_BOT_TOKEN), ("user", "U0000000004")],
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(v["user"]["id"], "U0000000004");
    assert!(v["user"]["profile"].get("email").is_none());

    let v: Value = post(
        "usergroups.list",
        &[("token", DEV_BOT_TOKEN), ("include_users", "1")],
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(group(&v, "S0000000003")["users"], json!(["U0000000004"]));
    h.stop().await;
}

#[tokio::test]
async fn set_user_deleted_shows_in_users_info_and_makes_userinfo_account_inactive() {
    let h = spawn().await;
    let c = client();
    let access = sign_in(&h, &c, "U0000000001").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(userinfo(&h, &c, &access).await["ok"], true);

    h.control.set_user_deleted("U0000000001", true);
    assert_eq!(
        users_info(&h, &c, "U0000000001").await["user"]["deleted"],
        true
    );
    assert_eq!(userinfo(&h, &c, &access).await, err("account_inactive"));
    // Other users are untouched.
    assert_eq!(
        users_info(&h, &c, "U0000000004").await["user"]["deleted"],
        false
    );

    h.control.set_user_deleted("U0000000001", false);
    assert_eq!(
        users_info(&h, &c, "U0000000001").await["user"]["deleted"],
        false
    );
    assert_eq!(userinfo(&h, &c, &access).await["ok"], true);
    h.stop().await;
}

#[tokio::test]
async fn set_user_guest_switches_between_member_and_either_guest_kind() {
    let h = spawn().await;
    let c = client();
    let flags = |v: Value| {
        (
            v["user"]["is_restricted"].as_bool().unwrap(),
            v["user"]["is_ultra_restricted"].as_bool().unwrap(),
        )
    };
    h.control
        .set_user_guest("U0000000001", GuestKind::MultiChannel);
    assert_eq!(
        flags(users_info(&h, &c, "U0000000001").await),
        (true, false)
    );
    h.control
        .set_user_guest("U0000000001", GuestKind::SingleChannel);
    assert_eq!(
        flags(users_info(&h, &c, "U0000000001").await),
        (false, true)
    );
    h.control.set_user_guest("U0000000005", GuestKind::Member);
    assert_eq!(
        flags(users_info(&h, &c, "U0000000005").await),
        (false, false)
    );
    h.stop().await;
}

#[tokio::test]
async fn usergroups_list_shows_enabled_workspace_groups_with_counts_but_no_members_by_default() {
    let h = spawn().await;
    let c = client();
    let v = web_api(&h, &c, "usergroups.list", &[]).await;
    // The disabled @old-team and the Grid workspace's @grid-eng are left out.
    assert_eq!(group_ids(&v), ["S0000000001", "S0000000002", "S0000000003"]);
    let eng = group(&v, "S0000000001");
    assert_eq!(eng["team_id"], "T0000000001");
    assert_eq!(eng["handle"], "engineering");
    assert_eq!(eng["name"], "Engineering");
    assert_eq!(eng["description"], "");
    assert_eq!(eng["date_delete"], 0);
    assert_eq!(eng["user_count"], 2);
    assert!(eng["date_create"].as_i64().unwrap() > 0);
    assert!(eng["date_update"].as_i64().unwrap() > 0);
    assert!(eng.get("users").is_none(), "{eng}");
    h.stop().await;
}

#[tokio::test]
async fn usergroups_list_include_users_lists_members() {
    let h = spawn().await;
    let c = client();
    for yes in ["true", "1"] {
        let v = web_api(&h, &c, "usergroups.list", &[("include_users", yes)]).await;
        assert_eq!(
            group(&v, "S0000000001")["users"],
            json!(["U0000000001", "U0000000005"])
        );
        assert_eq!(group(&v, "S0000000002")["users"], json!(["U0000000001"]));
    }
    let v = web_api(&h, &c, "usergroups.list", &[("include_users", "false")]).await;
    assert!(group(&v, "S0000000001").get("users").is_none());
    h.stop().await;
}

#[tokio::test]
async fn usergroups_list_shows_disabled_groups_only_with_include_disabled() {
    let h = spawn().await;
    let c = client();
    let v = web_api(&h, &c, "usergroups.list", &[("include_disabled", "true")]).await;
    assert_eq!(
        group_ids(&v),
        ["S0000000001", "S0000000002", "S0000000003", "S0000000004"]
    );
    assert_eq!(group(&v, "S0000000004")["date_delete"], 1_700_000_000);
    assert_eq!(group(&v, "S0000000004")["handle"], "old-team");
    let v = web_api(&h, &c, "usergroups.list", &[("include_disabled", "false")]).await;
    assert!(!group_ids(&v).contains(&"S0000000004".to_owned()));
    h.stop().await;
}

#[tokio::test]
async fn usergroups_list_with_team_id_lists_only_that_teams_groups() {
    let h = spawn().await;
    let c = client();
    let v = web_api(
        &h,
        &c,
        "usergroups.list",
        &[("team_id", "T0000000003"), ("include_users", "true")],
    )
    .await;
    assert_eq!(group_ids(&v), ["S0000000005"]);
    assert_eq!(group(&v, "S0000000005")["users"], json!(["W0000000003"]));
    let v = web_api(&h, &c, "usergroups.list", &[("team_id", "T0000000002")]).await;
    assert_eq!(group_ids(&v), Vec::<String>::new());
    let v = web_api(&h, &c, "usergroups.list", &[("team_id", "T0000000001")]).await;
    assert_eq!(group_ids(&v), ["S0000000001", "S0000000002", "S0000000003"]);
    h.stop().await;
}

#[tokio::test]
async fn group_changes_through_control_show_in_usergroups_list() {
    let h = spawn().await;
    let c = client();
    let list = || web_api(&h, &c, "usergroups.list", &[("include_users", "true")]);
    let before = group(&list().await, "S0000000002")["date_update"].clone();

    h.control
        .set_group_members("admins", &["U0000000004", "U0000000006"]);
    let v = list().await;
    assert_eq!(
        group(&v, "S0000000002")["users"],
        json!(["U0000000004", "U0000000006"])
    );
    assert_eq!(group(&v, "S0000000002")["user_count"], 2);
    assert!(group(&v, "S0000000002")["date_update"].as_i64() >= before.as_i64());
    assert_eq!(
        h.control.group("admins").unwrap().users,
        ["U0000000004", "U0000000006"]
    );

    h.control.create_group(StandinGroup {
        id: "S0000000009".into(),
        team_id: "T0000000001".into(),
        handle: "oncall".into(),
        name: "On call".into(),
        users: vec!["U0000000001".into()],
        date_delete: 0,
    });
    let v = list().await;
    assert_eq!(group(&v, "S0000000009")["handle"], "oncall");
    assert_eq!(group(&v, "S0000000009")["users"], json!(["U0000000001"]));

    h.control.disable_group("engineering");
    let v = list().await;
    assert!(!group_ids(&v).contains(&"S0000000001".to_owned()));
    let v = web_api(&h, &c, "usergroups.list", &[("include_disabled", "1")]).await;
    assert!(group(&v, "S0000000001")["date_delete"].as_i64().unwrap() > 1_700_000_000);
    h.stop().await;
}

#[tokio::test]
async fn directory_fault_rate_limited_answers_429_with_retry_after_until_cleared() {
    let h = spawn().await;
    let c = client();
    for (method, name) in [
        (DirectoryMethod::UsersInfo, "users.info"),
        (DirectoryMethod::UsergroupsList, "usergroups.list"),
    ] {
        h.control.set_directory_fault(
            method,
            Some(DirectoryFault::RateLimited {
                retry_after_secs: 30,
            }),
        );
        for _ in 0..2 {
            let resp = c
                .get(format!("{}/api/{name}?user=U0000000001", h.base_url))
                .bearer_auth(DEV_BOT_TOKEN)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 429, "{name}");
            assert_eq!(resp.headers()["retry-after"], "30");
            assert_eq!(
                resp.headers()["content-type"],
                "application/json; charset=utf-8"
            );
            assert_eq!(resp.json::<Value>().await.unwrap(), err("ratelimited"));
        }
        h.control.set_directory_fault(method, None);
        let (status, v) = web_api_with(
            &h,
            &c,
            name,
            Some(DEV_BOT_TOKEN),
            &[("user", "U0000000001")],
        )
        .await;
        assert_eq!((status, &v["ok"]), (reqwest::StatusCode::OK, &json!(true)));
    }
    h.stop().await;
}

#[tokio::test]
async fn directory_faults_answer_an_error_code_html_404_or_slowly_for_one_method_only() {
    let h = spawn().await;
    let c = client();
    h.control.set_directory_fault(
        DirectoryMethod::UsersInfo,
        Some(DirectoryFault::ErrorCode("internal_error".into())),
    );
    assert_eq!(
        users_info(&h, &c, "U0000000001").await,
        err("internal_error")
    );
    // The other method is not affected.
    assert_eq!(web_api(&h, &c, "usergroups.list", &[]).await["ok"], true);

    h.control.set_directory_fault(
        DirectoryMethod::UsergroupsList,
        Some(DirectoryFault::NonJson404),
    );
    let resp = c
        .get(format!("{}/api/usergroups.list", h.base_url))
        .bearer_auth(DEV_BOT_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );

    h.control.set_directory_fault(
        DirectoryMethod::UsersInfo,
        Some(DirectoryFault::Slow(Duration::from_millis(300))),
    );
    let started = std::time::Instant::now();
    assert_eq!(users_info(&h, &c, "U0000000001").await["ok"], true);
    assert!(started.elapsed() >= Duration::from_millis(300));
    h.stop().await;
}

#[tokio::test]
async fn userinfo_fault_rate_limited_answers_429_with_retry_after() {
    let h = spawn().await;
    let c = client();
    let access = sign_in(&h, &c, "U0000000001").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    h.control
        .set_userinfo_fault(Some(UserinfoFault::RateLimited {
            retry_after_secs: 12,
        }));
    let resp = c
        .get(format!("{}/api/openid.connect.userInfo", h.base_url))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "12");
    assert_eq!(resp.json::<Value>().await.unwrap(), err("ratelimited"));
    h.control.set_userinfo_fault(None);
    assert_eq!(userinfo(&h, &c, &access).await["ok"], true);
    h.stop().await;
}

#[tokio::test]
async fn revoke_user_tokens_revokes_that_users_earlier_tokens_only() {
    let h = spawn().await;
    let c = client();
    let rotation_sign_in = |user: &'static str| {
        let (h, c) = (&h, &c);
        async move { exchange(h, c, ROT, &code(h, c, &params(ROT), user).await).await }
    };
    let refresh = |rt: String| {
        let (h, c) = (&h, &c);
        async move {
            let form = [
                ("grant_type", "refresh_token"),
                ("client_id", ROT),
                ("client_secret", SECRET),
                ("refresh_token", rt.as_str()),
            ];
            token(h, c, &form).await.1
        }
    };
    let s = |v: &Value, k: &str| v[k].as_str().unwrap().to_owned();

    let ada = rotation_sign_in("U0000000001").await;
    let ada_plain = sign_in(&h, &c, "U0000000001").await;
    let alan = rotation_sign_in("U0000000004").await;

    h.control.revoke_user_tokens("U0000000001");
    assert_eq!(
        userinfo(&h, &c, &s(&ada, "access_token")).await,
        err("token_revoked")
    );
    assert_eq!(
        userinfo(&h, &c, &s(&ada_plain, "access_token")).await,
        err("token_revoked")
    );
    assert_eq!(
        refresh(s(&ada, "refresh_token")).await,
        err("invalid_refresh_token")
    );

    // Another user's tokens still work.
    assert_eq!(
        userinfo(&h, &c, &s(&alan, "access_token")).await["ok"],
        true
    );
    assert_eq!(refresh(s(&alan, "refresh_token")).await["ok"], true);

    // Tokens issued after the revocation work, refresh included.
    let again = rotation_sign_in("U0000000001").await;
    assert_eq!(
        userinfo(&h, &c, &s(&again, "access_token")).await["ok"],
        true
    );
    let refreshed = refresh(s(&again, "refresh_token")).await;
    assert_eq!(refreshed["ok"], true);
    assert_eq!(
        userinfo(&h, &c, &s(&refreshed, "access_token")).await["ok"],
        true
    );
    h.stop().await;
}

#[tokio::test]
async fn call_counters_count_every_request_to_each_method_faulted_or_not() {
    let h = spawn().await;
    let c = client();
    assert_eq!(h.control.calls("openid.connect.token"), 0);
    let access = sign_in(&h, &c, "U0000000001").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    userinfo(&h, &c, &access).await;
    userinfo(&h, &c, &access).await;
    users_info(&h, &c, "U0000000001").await;
    web_api_with(&h, &c, "users.info", None, &[]).await;
    h.control.set_directory_fault(
        DirectoryMethod::UsergroupsList,
        Some(DirectoryFault::RateLimited {
            retry_after_secs: 1,
        }),
    );
    web_api_with(&h, &c, "usergroups.list", Some(DEV_BOT_TOKEN), &[]).await;

    assert_eq!(h.control.calls("openid.connect.token"), 1);
    assert_eq!(h.control.calls("openid.connect.userInfo"), 2);
    assert_eq!(h.control.calls("users.info"), 2, "refused calls count");
    assert_eq!(h.control.calls("usergroups.list"), 1, "a 429 counts");
    assert_eq!(h.control.calls("users.list"), 0);
    assert_eq!(DirectoryMethod::UsersInfo.name(), "users.info");
    assert_eq!(DirectoryMethod::UsergroupsList.name(), "usergroups.list");

    h.control.reset_calls();
    for method in [
        "openid.connect.token",
        "openid.connect.userInfo",
        "users.info",
        "usergroups.list",
    ] {
        assert_eq!(h.control.calls(method), 0, "{method}");
    }
    users_info(&h, &c, "U0000000001").await;
    assert_eq!(h.control.calls("users.info"), 1);
    h.stop().await;
}

#[tokio::test]
async fn guests_and_the_bot_can_sign_in_and_the_picker_marks_them() {
    let h = spawn().await;
    let c = client();
    h.control.set_user_deleted("U0000000004", true);
    let html = c
        .get(authorize_url(&h, &params(APP)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (id, mark) in [
        ("U0000000005", "multi-channel guest"),
        ("U0000000006", "single-channel guest"),
        ("U0000000007", "bot"),
        ("U0000000004", "deactivated"),
    ] {
        let button = html
            .split("<button")
            .find(|b| b.contains(&format!("value=\"{id}\"")))
            .unwrap_or_else(|| panic!("a button for {id}"));
        assert!(button.contains(mark), "{id} is marked {mark}: {button}");
    }
    let ada = html
        .split("<button")
        .find(|b| b.contains("value=\"U0000000001\""))
        .unwrap();
    assert!(!ada.contains("guest") && !ada.contains("bot"), "{ada}");

    for user in ["U0000000005", "U0000000006", "U0000000007"] {
        let t = sign_in(&h, &c, user).await;
        assert_eq!(t["ok"], true, "{user}");
        let claims = verify(&h, &c, t["id_token"].as_str().unwrap(), APP)
            .await
            .unwrap();
        assert_eq!(claims["sub"], user);
    }
    h.stop().await;
}
