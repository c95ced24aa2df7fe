//! Slack decides, live: with a bot token the bridge asks Slack's directory
//! at every code issuance and every refresh. Deactivated accounts, bots and
//! (unless admitted) guests are refused; the `groups` scope carries the
//! person's user groups; an application may require groups and workspaces;
//! Slack's answers are cached within a budget shared by every instance, and
//! a refresh fails closed once the last answer is too old. Most scenarios
//! run on the memory store and on Redis.

use crate::common;
use common::metric;

use std::time::{Duration, Instant};

use common::bridge::{BASIC, Bridge, REDIRECT_URI, REFRESH, Setup, config_text, free_port};
use common::browser::{
    Browser, ClientAuth, auth_params, id_claims, location, param, redeem, token_request,
    verify_id_token,
};
use common::redis_server::RedisServer;
use serde_json::{Value, json};
use slack_oidc_bridge::upstream::standin::{
    DirectoryFault, DirectoryMethod, GuestKind, UserinfoFault,
};
use url::Url;

const ADA: &str = "U0000000001";
const GRACE: &str = "U0000000002";
const KATHERINE: &str = "W0000000003";
const ALAN: &str = "U0000000004";
/// A multi-channel guest (`is_restricted`), in @engineering.
const MALLORY: &str = "U0000000005";
/// A single-channel guest (`is_ultra_restricted`).
const SAM: &str = "U0000000006";
/// A bot user (`is_bot`).
const DEPLOY_BOT: &str = "U0000000007";

const STATE: &str = "state-dir";

const USERINFO: &str = "openid.connect.userInfo";
const USERS_INFO: &str = "users.info";
const USERGROUPS_LIST: &str = "usergroups.list";
const SLACK_TOKEN: &str = "openid.connect.token";

/// Admits members of @engineering only; registered for refresh tokens.
const ENGINEERING: (&str, &str) = (
    "app-engineering",
    "engineering-secret-0123456789abcdef012345",
);
/// Admits people of the workspace T0000000001 only.
const TEAM_ONE: (&str, &str) = ("app-team-one", "team-one-secret-0123456789abcdef0123456");
/// Admits Slack guests, whatever `upstream.allow_guests` says.
const GUESTS: (&str, &str) = ("app-guests", "guests-secret-0123456789abcdef0123456789");

const OWNER: ClientAuth = ClientAuth::Other(REFRESH.0, REFRESH.1);
const ENG: ClientAuth = ClientAuth::Other(ENGINEERING.0, ENGINEERING.1);
const TEAM: ClientAuth = ClientAuth::Other(TEAM_ONE.0, TEAM_ONE.1);
const GUEST_APP: ClientAuth = ClientAuth::Other(GUESTS.0, GUESTS.1);

/// The three applications with a policy of their own (they need a bot token).
fn policy_clients() -> String {
    format!(
        r#"
[[clients]]
client_id = "{eng_id}"
client_secret = "{eng_secret}"
redirect_uris = ["{REDIRECT_URI}"]
grant_types = ["authorization_code", "refresh_token"]
allowed_groups = ["engineering"]
[[clients]]
client_id = "{team_id}"
client_secret = "{team_secret}"
redirect_uris = ["{REDIRECT_URI}"]
allowed_team_ids = ["T0000000001"]
[[clients]]
client_id = "{guests_id}"
client_secret = "{guests_secret}"
redirect_uris = ["{REDIRECT_URI}"]
allow_guests = true
"#,
        eng_id = ENGINEERING.0,
        eng_secret = ENGINEERING.1,
        team_id = TEAM_ONE.0,
        team_secret = TEAM_ONE.1,
        guests_id = GUESTS.0,
        guests_secret = GUESTS.1,
    )
}

/// The bridge with Slack's directory (a bot token), the policy clients and
/// these `BRIDGE_` overrides.
fn with_directory(mut setup: Setup, env: &[(&str, &str)]) -> Setup {
    setup.directory = true;
    setup.extra_toml = policy_clients();
    setup
        .env
        .extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    setup
}

const TTL_1: (&str, &str) = ("BRIDGE_UPSTREAM__DIRECTORY_TTL_SECS", "1");

// ------------------------------------------------------------------ helpers

/// Signs `user` in at Slack for `client_id` with `scope`; where the bridge
/// finally sends the browser.
async fn sign_in(
    bridge: &Bridge,
    browser: &Browser,
    client_id: &str,
    scope: &str,
    user: &str,
) -> Url {
    let mut params = auth_params(client_id, STATE, "n");
    params.retain(|(k, _)| *k != "scope");
    params.push(("scope", scope));
    browser.sign_in(bridge, &params, user).await
}

/// A sign-in that must succeed, redeemed: the token response.
async fn signed_in_tokens(
    bridge: &Bridge,
    browser: &Browser,
    auth: ClientAuth,
    scope: &str,
    user: &str,
) -> Value {
    let back = sign_in(bridge, browser, auth.client_id(), scope, user).await;
    let code = param(&back, "code").unwrap_or_else(|| panic!("{user} gets no code: {back}"));
    json_ok(redeem(bridge, auth, &code, None).await).await
}

/// The error redirect of a refused sign-in: `access_denied` with the
/// request's `state` and the issuer, and no code.
fn assert_access_denied(bridge: &Bridge, back: &Url) {
    assert!(back.as_str().starts_with(REDIRECT_URI), "{back}");
    assert_eq!(
        param(back, "error").as_deref(),
        Some("access_denied"),
        "{back}"
    );
    assert_eq!(param(back, "state").as_deref(), Some(STATE), "{back}");
    assert_eq!(
        param(back, "iss").as_deref(),
        Some(bridge.base.as_str()),
        "{back}"
    );
    assert!(param(back, "code").is_none(), "no code: {back}");
}

/// GET /authorize for `client_id` with the browser's cookies; the bridge
/// must answer by itself (no trip to Slack): where it sends the browser.
async fn authorize_with_session(
    bridge: &Bridge,
    browser: &Browser,
    client_id: &str,
    extra: &[(&str, &str)],
) -> Url {
    let mut params = auth_params(client_id, STATE, "n");
    params.extend_from_slice(extra);
    let r = browser.authorize(bridge, &params).await;
    assert_eq!(r.status(), 302);
    let back = location(&r);
    assert!(
        back.as_str().starts_with(REDIRECT_URI),
        "answered by the bridge, not sent to Slack: {back}"
    );
    back
}

/// `prompt=none` for the basic client: the error it redirects with, or
/// `None` with a code.
async fn silent_error(bridge: &Bridge, browser: &Browser) -> Option<String> {
    let back = authorize_with_session(bridge, browser, BASIC.0, &[("prompt", "none")]).await;
    let error = param(&back, "error");
    if error.is_none() {
        assert!(param(&back, "code").is_some(), "{back}");
    }
    error
}

async fn json_ok(r: reqwest::Response) -> Value {
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

async fn refresh_at(base: &str, (id, secret): (&str, &str), token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", token)])
        .send()
        .await
        .unwrap()
}

async fn refresh(bridge: &Bridge, auth: ClientAuth, token: &str) -> reqwest::Response {
    token_request(
        bridge,
        auth,
        &[("grant_type", "refresh_token"), ("refresh_token", token)],
    )
    .await
}

/// The status and `error` of a refused token request.
async fn token_error(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    assert_ne!(status, 200, "refused: {body}");
    (status, s(&body, "error").to_string())
}

async fn userinfo(bridge: &Bridge, access_token: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(bridge.url("/userinfo"))
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body = if status == 200 {
        r.json().await.unwrap()
    } else {
        Value::Null
    };
    (status, body)
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("no {key} in {v}"))
}

/// Waits (briefly) until the bridge's log contains `needle`.
async fn assert_logged(bridge: &Bridge, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while !bridge.log().contains(needle) {
        assert!(
            Instant::now() < deadline,
            "the log should say {needle:?}:\n{}",
            bridge.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sleeps until `from` + `secs` seconds.
async fn sleep_until(from: Instant, secs: f64) {
    let until = from + Duration::from_secs_f64(secs);
    tokio::time::sleep(until.saturating_duration_since(Instant::now())).await;
}

async fn metrics_at(base: &str) -> String {
    let r = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

// ------------------------------------------------- standing, at sign-in

async fn a_deactivated_account_is_refused_at_sign_in_and_gets_no_session(setup: Setup) {
    let bridge = Bridge::start(with_directory(setup, &[TTL_1])).await;
    bridge.standin.control.set_user_deleted(ADA, true);
    let browser = Browser::new();
    let back = sign_in(&bridge, &browser, BASIC.0, "openid email", ADA).await;
    assert_access_denied(&bridge, &back);
    assert_eq!(
        silent_error(&bridge, &browser).await.as_deref(),
        Some("login_required"),
        "no session was opened for a deactivated account"
    );
    assert_logged(&bridge, "the Slack account is deactivated").await;

    // Reactivated, the same person signs in (once the cached answer is
    // older than the TTL).
    bridge.standin.control.set_user_deleted(ADA, false);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let back = sign_in(&bridge, &Browser::new(), BASIC.0, "openid", ADA).await;
    assert!(param(&back, "code").is_some(), "{back}");
}

async fn a_bot_is_refused_at_sign_in_and_gets_no_session(setup: Setup) {
    let bridge = Bridge::start(with_directory(setup, &[])).await;
    let browser = Browser::new();
    let back = sign_in(&bridge, &browser, BASIC.0, "openid", DEPLOY_BOT).await;
    assert_access_denied(&bridge, &back);
    assert_eq!(
        silent_error(&bridge, &browser).await.as_deref(),
        Some("login_required")
    );
    assert_logged(&bridge, "the Slack account is a bot").await;
}

async fn guests_of_either_kind_are_refused_by_default(setup: Setup) {
    let bridge = Bridge::start(with_directory(setup, &[TTL_1])).await;
    for guest in [MALLORY, SAM] {
        let browser = Browser::new();
        let back = sign_in(&bridge, &browser, BASIC.0, "openid", guest).await;
        assert_access_denied(&bridge, &back);
        assert_eq!(
            silent_error(&bridge, &browser).await.as_deref(),
            Some("login_required"),
            "no session for the guest {guest}"
        );
    }
    assert_logged(&bridge, "Slack guests are not admitted").await;
    // A full member made a guest is refused too; made a member again, admitted.
    let control = &bridge.standin.control;
    control.set_user_guest(ALAN, GuestKind::SingleChannel);
    let back = sign_in(&bridge, &Browser::new(), BASIC.0, "openid", ALAN).await;
    assert_access_denied(&bridge, &back);
    control.set_user_guest(MALLORY, GuestKind::Member);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let back = sign_in(&bridge, &Browser::new(), BASIC.0, "openid", MALLORY).await;
    assert!(param(&back, "code").is_some(), "{back}");
}

async fn an_application_that_allows_guests_admits_them_while_the_others_refuse(setup: Setup) {
    let bridge = Bridge::start(with_directory(setup, &[])).await;
    for guest in [MALLORY, SAM] {
        let browser = Browser::new();
        let tokens = signed_in_tokens(&bridge, &browser, GUEST_APP, "openid", guest).await;
        let claims = verify_id_token(&bridge, s(&tokens, "id_token"), GUESTS.0).await;
        assert_eq!(claims["https://slack.com/user_id"], guest);
        // The session this opened does not carry the guest into another
        // application.
        let back = authorize_with_session(&bridge, &browser, BASIC.0, &[]).await;
        assert_access_denied(&bridge, &back);
        let back = sign_in(&bridge, &Browser::new(), TEAM_ONE.0, "openid", guest).await;
        assert_access_denied(&bridge, &back);
    }
    // Deactivated accounts and bots stay out, even there.
    let back = sign_in(&bridge, &Browser::new(), GUESTS.0, "openid", DEPLOY_BOT).await;
    assert_access_denied(&bridge, &back);
}

async fn allow_guests_in_the_bridge_config_admits_guests_everywhere(setup: Setup) {
    let bridge = Bridge::start(with_directory(
        setup,
        &[("BRIDGE_UPSTREAM__ALLOW_GUESTS", "true")],
    ))
    .await;
    for guest in [MALLORY, SAM] {
        for auth in [ClientAuth::Basic, TEAM] {
            let tokens = signed_in_tokens(&bridge, &Browser::new(), auth, "openid", guest).await;
            assert_eq!(id_claims(&tokens)["https://slack.com/user_id"], guest);
        }
    }
    let back = sign_in(&bridge, &Browser::new(), BASIC.0, "openid", DEPLOY_BOT).await;
    assert_access_denied(&bridge, &back);
}

// --------------------------------------------------------- the groups scope

async fn the_groups_scope_carries_the_sorted_handles_of_enabled_groups(setup: Setup) {
    let bridge = Bridge::start(with_directory(setup, &[])).await;
    let discovery: Value = reqwest::get(bridge.url("/.well-known/openid-configuration"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for list in ["scopes_supported", "claims_supported"] {
        assert!(
            discovery[list]
                .as_array()
                .unwrap()
                .contains(&json!("groups")),
            "{list} names groups with a bot token: {discovery}"
        );
    }
    let cases = [
        // @old-team is disabled: left out.
        (ADA, json!(["admins", "engineering"])),
        (ALAN, json!(["design"])),
        (GRACE, json!([])),
        // Enterprise Grid: the workspace is named in usergroups.list.
        (KATHERINE, json!(["grid-eng"])),
    ];
    for (user, groups) in cases {
        let tokens = signed_in_tokens(
            &bridge,
            &Browser::new(),
            ClientAuth::Basic,
            "openid email groups",
            user,
        )
        .await;
        assert_eq!(tokens["scope"], "openid email groups");
        let claims = verify_id_token(&bridge, s(&tokens, "id_token"), BASIC.0).await;
        assert_eq!(claims["groups"], groups, "the ID token of {user}");
        let (status, info) = userinfo(&bridge, s(&tokens, "access_token")).await;
        assert_eq!(status, 200);
        assert_eq!(info["groups"], groups, "userinfo of {user}");
    }
    // Not asked for: no claim.
    let tokens = signed_in_tokens(&bridge, &Browser::new(), ClientAuth::Basic, "openid", ADA).await;
    assert!(id_claims(&tokens).get("groups").is_none());
    let (_, info) = userinfo(&bridge, s(&tokens, "access_token")).await;
    assert!(info.get("groups").is_none(), "{info}");
}

async fn without_a_bot_token_the_groups_scope_is_ignored(setup: Setup) {
    let bridge = Bridge::start(setup).await;
    let discovery: Value = reqwest::get(bridge.url("/.well-known/openid-configuration"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for list in ["scopes_supported", "claims_supported"] {
        assert!(
            !discovery[list]
                .as_array()
                .unwrap()
                .contains(&json!("groups")),
            "{list} does not name groups without a bot token: {discovery}"
        );
    }
    let tokens = signed_in_tokens(
        &bridge,
        &Browser::new(),
        ClientAuth::Basic,
        "openid groups",
        ADA,
    )
    .await;
    assert_eq!(tokens["scope"], "openid", "groups is not granted");
    assert!(id_claims(&tokens).get("groups").is_none());
    let (status, info) = userinfo(&bridge, s(&tokens, "access_token")).await;
    assert_eq!(status, 200);
    assert!(info.get("groups").is_none(), "{info}");
    let control = &bridge.standin.control;
    assert_eq!(
        control.calls(USERS_INFO),
        0,
        "no directory without a bot token"
    );
    assert_eq!(control.calls(USERGROUPS_LIST), 0);
}

async fn a_refresh_carries_the_groups_slack_tells_now(setup: Setup) {
    let bridge = Bridge::start(with_directory(setup, &[TTL_1])).await;
    let control = &bridge.standin.control;
    let first = signed_in_tokens(
        &bridge,
        &Browser::new(),
        OWNER,
        "openid offline_access groups",
        ADA,
    )
    .await;
    assert_eq!(
        id_claims(&first)["groups"],
        json!(["admins", "engineering"])
    );
    control.disable_group("admins");
    control.set_group_members("design", &[ALAN, ADA]);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let second = json_ok(refresh(&bridge, OWNER, s(&first, "refresh_token")).await).await;
    let now = json!(["design", "engineering"]);
    assert_eq!(id_claims(&second)["groups"], now);
    let (status, info) = userinfo(&bridge, s(&second, "access_token")).await;
    assert_eq!(status, 200);
    assert_eq!(info["groups"], now);
}

// ---------------------------------------------------- per-application policy

async fn an_application_limited_to_a_group_admits_only_its_members(setup: Setup) {
    let bridge = Bridge::start(with_directory(setup, &[])).await;
    let tokens = signed_in_tokens(&bridge, &Browser::new(), ENG, "openid", ADA).await;
    assert_eq!(id_claims(&tokens)["https://slack.com/user_id"], ADA);
    let back = sign_in(&bridge, &Browser::new(), ENGINEERING.0, "openid", ALAN).await;
    assert_access_denied(&bridge, &back);
    assert_logged(&bridge, "admits only members of certain Slack user groups").await;
    // In @engineering but a guest: still refused.
    let back = sign_in(&bridge, &Browser::new(), ENGINEERING.0, "openid", MALLORY).await;
    assert_access_denied(&bridge, &back);
}

async fn an_application_limited_to_a_workspace_refuses_the_others(setup: Setup) {
    let bridge = Bridge::start(with_directory(setup, &[])).await;
    signed_in_tokens(&bridge, &Browser::new(), TEAM, "openid", ADA).await;
    let back = sign_in(&bridge, &Browser::new(), TEAM_ONE.0, "openid", GRACE).await;
    assert_access_denied(&bridge, &back);
    // Grace is welcome where no workspace is required.
    signed_in_tokens(&bridge, &Browser::new(), ClientAuth::Basic, "openid", GRACE).await;
}

async fn the_sso_session_does_not_carry_a_refused_person_into_an_application(setup: Setup) {
    let bridge = Bridge::start(with_directory(setup, &[TTL_1])).await;
    let control = &bridge.standin.control;
    let alan = Browser::new();
    let back = sign_in(&bridge, &alan, BASIC.0, "openid", ALAN).await;
    assert!(param(&back, "code").is_some(), "{back}");
    let slack_tokens = control.calls(SLACK_TOKEN);
    let back = authorize_with_session(&bridge, &alan, ENGINEERING.0, &[]).await;
    assert_access_denied(&bridge, &back);
    let back = authorize_with_session(&bridge, &alan, ENGINEERING.0, &[("prompt", "none")]).await;
    assert_access_denied(&bridge, &back);
    assert_eq!(
        control.calls(SLACK_TOKEN),
        slack_tokens,
        "decided from the session"
    );
    // The session itself still serves the application Alan may use.
    assert_eq!(silent_error(&bridge, &alan).await, None);

    // Ada's session carries her in.
    let ada = Browser::new();
    sign_in(&bridge, &ada, BASIC.0, "openid", ADA).await;
    let back = authorize_with_session(&bridge, &ada, ENGINEERING.0, &[]).await;
    let code = param(&back, "code").unwrap_or_else(|| panic!("Ada gets a code: {back}"));
    json_ok(redeem(&bridge, ENG, &code, None).await).await;

    // Taken out of the group, her session no longer carries her in (once
    // the cached groups are older than the TTL).
    control.set_group_members("engineering", &[MALLORY]);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let back = authorize_with_session(&bridge, &ada, ENGINEERING.0, &[]).await;
    assert_access_denied(&bridge, &back);
}

#[tokio::test(flavor = "multi_thread")]
async fn check_config_refuses_a_group_or_guest_policy_without_a_bot_token() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let run = |setup: &Setup| {
        let path = dir.path().join("bridge.toml");
        std::fs::write(
            &path,
            config_text(&base, port, "http://127.0.0.1:9", setup, &dir),
        )
        .unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_slack-oidc-bridge"))
            .args(["check-config", "--config", path.to_str().unwrap()])
            .current_dir(dir.path())
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .output()
            .expect("the binary runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // The harness registers six clients; the policy clients come after them.
    let (ok, stderr) = run(&Setup {
        directory: true,
        extra_toml: policy_clients(),
        ..Setup::default()
    });
    assert!(ok, "valid with a bot token: {stderr}");
    let (ok, stderr) = run(&Setup {
        extra_toml: policy_clients(),
        ..Setup::default()
    });
    assert!(!ok, "refused without a bot token");
    assert!(
        stderr.contains("clients[6].allowed_groups") && stderr.contains("bot_token"),
        "names the key and what it needs: {stderr}"
    );
    let guests_only = policy_clients()
        .split("[[clients]]")
        .filter(|c| c.contains("allow_guests"))
        .map(|c| format!("[[clients]]{c}"))
        .collect::<String>();
    let (ok, stderr) = run(&Setup {
        extra_toml: guests_only,
        ..Setup::default()
    });
    assert!(!ok, "refused without a bot token");
    assert!(
        stderr.contains("clients[6].allow_guests"),
        "names the key: {stderr}"
    );
}

// ------------------------------------------------------- refresh is checked

/// The family of `last` is over: its access token no longer answers and
/// its refresh token (the newest) is invalid.
async fn assert_family_ended(bridge: &Bridge, auth: ClientAuth, last: &Value) {
    assert_eq!(userinfo(bridge, s(last, "access_token")).await.0, 401);
    assert_eq!(
        token_error(refresh(bridge, auth, s(last, "refresh_token")).await).await,
        (400, "invalid_grant".to_string()),
        "the newest refresh token died with its family"
    );
}

async fn a_refresh_after_leaving_the_required_group_is_invalid_grant_and_ends_the_family(
    setup: Setup,
) {
    let bridge = Bridge::start(with_directory(setup, &[TTL_1])).await;
    let control = &bridge.standin.control;
    let first = signed_in_tokens(&bridge, &Browser::new(), ENG, "openid offline_access", ADA).await;
    let elsewhere = signed_in_tokens(
        &bridge,
        &Browser::new(),
        OWNER,
        "openid offline_access",
        ADA,
    )
    .await;
    let second = json_ok(refresh(&bridge, ENG, s(&first, "refresh_token")).await).await;

    control.set_group_members("engineering", &[]);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        token_error(refresh(&bridge, ENG, s(&second, "refresh_token")).await).await,
        (400, "invalid_grant".to_string())
    );
    assert_family_ended(&bridge, ENG, &second).await;
    assert_eq!(userinfo(&bridge, s(&first, "access_token")).await.0, 401);
    // Her tokens for an application without that requirement live on.
    json_ok(refresh(&bridge, OWNER, s(&elsewhere, "refresh_token")).await).await;
}

async fn a_refresh_after_deactivation_is_invalid_grant_and_ends_the_family(setup: Setup) {
    let bridge = Bridge::start(with_directory(setup, &[TTL_1])).await;
    let first = signed_in_tokens(
        &bridge,
        &Browser::new(),
        OWNER,
        "openid offline_access",
        ADA,
    )
    .await;
    let second = json_ok(refresh(&bridge, OWNER, s(&first, "refresh_token")).await).await;
    bridge.standin.control.set_user_deleted(ADA, true);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        token_error(refresh(&bridge, OWNER, s(&second, "refresh_token")).await).await,
        (400, "invalid_grant".to_string())
    );
    assert_family_ended(&bridge, OWNER, &second).await;
}

async fn a_refresh_after_slack_revokes_the_persons_tokens_is_invalid_grant_and_ends_the_family(
    setup: Setup,
) {
    let bridge = Bridge::start(with_directory(setup, &[TTL_1])).await;
    let first = signed_in_tokens(
        &bridge,
        &Browser::new(),
        OWNER,
        "openid offline_access",
        ADA,
    )
    .await;
    let second = json_ok(refresh(&bridge, OWNER, s(&first, "refresh_token")).await).await;
    let control = &bridge.standin.control;
    control.revoke_user_tokens(ADA);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    control.reset_calls();
    assert_eq!(
        token_error(refresh(&bridge, OWNER, s(&second, "refresh_token")).await).await,
        (400, "invalid_grant".to_string())
    );
    assert_eq!(control.calls(USERINFO), 1, "Slack's userInfo was asked");
    assert_family_ended(&bridge, OWNER, &second).await;
}

// ------------------------------------------- fail closed, bounded staleness

const STALENESS_3: (&str, &str) = ("BRIDGE_UPSTREAM__MAX_STALENESS_SECS", "3");

/// Signs Ada in for refresh tokens (the directory's TTL 1 s, staleness
/// 3 s), puts `fault` on, and checks: within the staleness the last answer
/// stands in; past it the refresh is `temporarily_unavailable`; once `clear`
/// has run the same refresh token works.
async fn stale_answers_stand_in_until_the_staleness_bound(
    setup: Setup,
    method: &str,
    fault: impl Fn(&Bridge),
    clear: impl Fn(&Bridge),
    retry_after_secs: f64,
) {
    let bridge = Bridge::start(with_directory(setup, &[TTL_1, STALENESS_3])).await;
    let control = &bridge.standin.control;
    let first = signed_in_tokens(
        &bridge,
        &Browser::new(),
        OWNER,
        "openid email offline_access",
        ADA,
    )
    .await;
    // Slack's answers at sign-in were given before this instant.
    let signed_in = Instant::now();
    fault(&bridge);
    sleep_until(signed_in, 1.2).await;
    control.reset_calls();
    let second = json_ok(refresh(&bridge, OWNER, s(&first, "refresh_token")).await).await;
    assert_eq!(control.calls(method), 1, "past the TTL Slack is asked");
    assert_eq!(
        id_claims(&second)["email"],
        "ada@example.com",
        "the last answer stands in"
    );
    let text = metrics_at(&bridge.base).await;
    assert!(
        metric(
            &text,
            "bridge_directory_answers_total",
            &[("answer", "stale")]
        ) >= 1.0,
        "{text}"
    );

    sleep_until(signed_in, 4.2).await;
    let r = refresh(&bridge, OWNER, s(&second, "refresh_token")).await;
    assert_eq!(
        r.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"2"[..])
    );
    assert_eq!(
        token_error(r).await,
        (503, "temporarily_unavailable".to_string()),
        "past max_staleness_secs the refresh fails closed"
    );
    assert_logged(&bridge, "no recent answer can stand in").await;

    clear(&bridge);
    // A back-off the last 429 asked for must pass first.
    tokio::time::sleep(Duration::from_secs_f64(retry_after_secs + 0.2)).await;
    let third = json_ok(refresh(&bridge, OWNER, s(&second, "refresh_token")).await).await;
    assert_eq!(id_claims(&third)["https://slack.com/user_id"], ADA);
    assert_eq!(userinfo(&bridge, s(&third, "access_token")).await.0, 200);
}

async fn while_userinfo_is_rate_limited_a_refresh_is_served_stale_then_temporarily_unavailable(
    setup: Setup,
) {
    stale_answers_stand_in_until_the_staleness_bound(
        setup,
        USERINFO,
        |b| {
            b.standin
                .control
                .set_userinfo_fault(Some(UserinfoFault::RateLimited {
                    retry_after_secs: 1,
                }))
        },
        |b| b.standin.control.set_userinfo_fault(None),
        1.0,
    )
    .await;
}

async fn while_users_info_answers_html_a_refresh_is_served_stale_then_temporarily_unavailable(
    setup: Setup,
) {
    stale_answers_stand_in_until_the_staleness_bound(
        setup,
        USERS_INFO,
        |b| {
            b.standin
                .control
                .set_directory_fault(DirectoryMethod::UsersInfo, Some(DirectoryFault::NonJson404))
        },
        |b| {
            b.standin
                .control
                .set_directory_fault(DirectoryMethod::UsersInfo, None)
        },
        0.0,
    )
    .await;
}

// ------------------------------------------------------------- the budget

async fn refreshes_within_the_ttl_make_no_userinfo_call_and_at_most_one_directory_call(
    setup: Setup,
) {
    let bridge = Bridge::start(with_directory(setup, &[])).await;
    let control = &bridge.standin.control;
    let mut tokens = signed_in_tokens(
        &bridge,
        &Browser::new(),
        OWNER,
        "openid email offline_access groups",
        ADA,
    )
    .await;
    control.reset_calls();
    for _ in 0..10 {
        tokens = json_ok(refresh(&bridge, OWNER, s(&tokens, "refresh_token")).await).await;
    }
    assert_eq!(control.calls(USERINFO), 0, "userInfo answered at sign-in");
    assert!(
        control.calls(USERS_INFO) <= 1,
        "{}",
        control.calls(USERS_INFO)
    );
    assert!(
        control.calls(USERGROUPS_LIST) <= 1,
        "{}",
        control.calls(USERGROUPS_LIST)
    );
    assert_eq!(
        id_claims(&tokens)["groups"],
        json!(["admins", "engineering"])
    );
    assert_eq!(id_claims(&tokens)["email"], "ada@example.com");
}

async fn after_a_429_users_info_is_not_asked_again_until_its_retry_after_passes(setup: Setup) {
    let bridge = Bridge::start(with_directory(setup, &[TTL_1])).await;
    let control = &bridge.standin.control;
    let mut tokens = signed_in_tokens(
        &bridge,
        &Browser::new(),
        OWNER,
        "openid offline_access",
        ADA,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    control.set_directory_fault(
        DirectoryMethod::UsersInfo,
        Some(DirectoryFault::RateLimited {
            retry_after_secs: 3,
        }),
    );
    control.reset_calls();
    let limited_at = Instant::now();
    tokens = json_ok(refresh(&bridge, OWNER, s(&tokens, "refresh_token")).await).await;
    // The 429 came before this instant.
    let first_done = Instant::now();
    assert_eq!(control.calls(USERS_INFO), 1, "past the TTL Slack is asked");
    // Past the TTL: each refresh would ask Slack, but after the 429 the
    // stale answer stands in without a call until Retry-After has passed.
    while limited_at.elapsed() < Duration::from_millis(1300) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        tokens = json_ok(refresh(&bridge, OWNER, s(&tokens, "refresh_token")).await).await;
    }
    assert_eq!(control.calls(USERS_INFO), 1, "one call, then the back-off");
    assert!(
        control.calls(USERINFO) >= 2,
        "userInfo is not rate limited: asked past each TTL"
    );
    let text = metrics_at(&bridge.base).await;
    assert!(
        metric(
            &text,
            "bridge_slack_backoff_skips_total",
            &[("source", "users_info")]
        ) >= 1.0,
        "{text}"
    );

    control.set_directory_fault(DirectoryMethod::UsersInfo, None);
    sleep_until(first_done, 3.1).await;
    json_ok(refresh(&bridge, OWNER, s(&tokens, "refresh_token")).await).await;
    assert_eq!(
        control.calls(USERS_INFO),
        2,
        "asked again after Retry-After"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_share_slacks_answers_and_its_back_off() {
    let redis = RedisServer::start();
    let ttl = ("BRIDGE_UPSTREAM__DIRECTORY_TTL_SECS", "4");
    let setup = with_directory(
        Setup {
            redis_url: Some(redis.url.clone()),
            ..Setup::default()
        },
        &[ttl],
    );
    let env = setup.env.clone();
    let a = Bridge::start(setup).await;
    let b = a.start_sibling(&env).await;
    let control = &a.standin.control;
    let mut tokens = signed_in_tokens(
        &a,
        &Browser::new(),
        OWNER,
        "openid offline_access groups",
        ADA,
    )
    .await;
    let signed_in = Instant::now();
    let bases = [a.base.clone(), b.base.clone()];
    let counts = || {
        (
            control.calls(USERINFO),
            control.calls(USERS_INFO),
            control.calls(USERGROUPS_LIST),
        )
    };

    // Within the TTL: what Slack told A at sign-in serves B too.
    control.reset_calls();
    for base in bases.iter().cycle().take(4) {
        tokens = json_ok(refresh_at(base, REFRESH, s(&tokens, "refresh_token")).await).await;
    }
    assert!(
        signed_in.elapsed() < Duration::from_secs(3),
        "took too long"
    );
    assert_eq!(counts(), (0, 0, 0), "the sign-in's answers are shared");

    // Past the TTL: one call of each for both instances.
    sleep_until(signed_in, 4.2).await;
    control.reset_calls();
    let asked = Instant::now();
    for base in bases.iter().cycle().take(4) {
        tokens = json_ok(refresh_at(base, REFRESH, s(&tokens, "refresh_token")).await).await;
    }
    assert!(asked.elapsed() < Duration::from_secs(3), "took too long");
    assert_eq!(counts(), (1, 1, 1), "one budget for both instances");

    // A 429 on A: B does not call users.info until Retry-After has passed.
    sleep_until(asked, 4.2).await;
    control.set_directory_fault(
        DirectoryMethod::UsersInfo,
        Some(DirectoryFault::RateLimited {
            retry_after_secs: 5,
        }),
    );
    control.reset_calls();
    tokens = json_ok(refresh_at(&a.base, REFRESH, s(&tokens, "refresh_token")).await).await;
    assert_eq!(control.calls(USERS_INFO), 1);
    for base in [&b.base, &b.base, &a.base, &b.base] {
        tokens = json_ok(refresh_at(base, REFRESH, s(&tokens, "refresh_token")).await).await;
    }
    assert_eq!(control.calls(USERS_INFO), 1, "B honours A's back-off");
    let text = metrics_at(&b.base).await;
    assert!(
        metric(
            &text,
            "bridge_slack_backoff_skips_total",
            &[("source", "users_info")]
        ) >= 1.0,
        "B skipped the call: {text}"
    );
    assert_eq!(
        id_claims(&tokens)["groups"],
        json!(["admins", "engineering"])
    );
    drop(b);
    drop(a);
    drop(redis);
}

// ----------------------------------------------------- Slack token rotation

async fn with_slack_token_rotation_an_expired_slack_token_is_renewed_at_refresh(mut setup: Setup) {
    setup.upstream_rotation = true;
    let bridge = Bridge::start(with_directory(setup, &[TTL_1])).await;
    let control = &bridge.standin.control;
    let mut tokens = signed_in_tokens(
        &bridge,
        &Browser::new(),
        OWNER,
        "openid email offline_access",
        ADA,
    )
    .await;
    // Twice: the second renewal needs the refresh token Slack gave with the
    // first (Slack's refresh tokens are single use).
    for round in 1..=2 {
        control.expire_access_tokens();
        tokio::time::sleep(Duration::from_millis(1200)).await;
        control.reset_calls();
        let before = control.token_requests().len();
        tokens = json_ok(refresh(&bridge, OWNER, s(&tokens, "refresh_token")).await).await;
        assert_eq!(control.calls(SLACK_TOKEN), 1, "renewed in round {round}");
        let renewals: Vec<_> = control.token_requests()[before..]
            .iter()
            .map(|r| r.grant_type.clone())
            .collect();
        assert_eq!(renewals, vec![Some("refresh_token".to_string())]);
        assert_eq!(id_claims(&tokens)["email"], "ada@example.com");
    }
    // The renewed Slack token is the one kept: past the TTL userInfo takes
    // it as it is, with no renewal.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    control.reset_calls();
    json_ok(refresh(&bridge, OWNER, s(&tokens, "refresh_token")).await).await;
    assert_eq!(control.calls(USERINFO), 1);
    assert_eq!(control.calls(SLACK_TOKEN), 0, "not renewed again");
}

on_both_stores!(
    a_deactivated_account_is_refused_at_sign_in_and_gets_no_session,
    a_bot_is_refused_at_sign_in_and_gets_no_session,
    guests_of_either_kind_are_refused_by_default,
    an_application_that_allows_guests_admits_them_while_the_others_refuse,
    allow_guests_in_the_bridge_config_admits_guests_everywhere,
    the_groups_scope_carries_the_sorted_handles_of_enabled_groups,
    without_a_bot_token_the_groups_scope_is_ignored,
    a_refresh_carries_the_groups_slack_tells_now,
    an_application_limited_to_a_group_admits_only_its_members,
    an_application_limited_to_a_workspace_refuses_the_others,
    the_sso_session_does_not_carry_a_refused_person_into_an_application,
    a_refresh_after_leaving_the_required_group_is_invalid_grant_and_ends_the_family,
    a_refresh_after_deactivation_is_invalid_grant_and_ends_the_family,
    a_refresh_after_slack_revokes_the_persons_tokens_is_invalid_grant_and_ends_the_family,
    while_userinfo_is_rate_limited_a_refresh_is_served_stale_then_temporarily_unavailable,
    while_users_info_answers_html_a_refresh_is_served_stale_then_temporarily_unavailable,
    refreshes_within_the_ttl_make_no_userinfo_call_and_at_most_one_directory_call,
    after_a_429_users_info_is_not_asked_again_until_its_retry_after_passes,
    with_slack_token_rotation_an_expired_slack_token_is_renewed_at_refresh,
);
