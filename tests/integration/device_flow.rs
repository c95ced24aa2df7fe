//! The device authorization grant (RFC 8628) end to end: a device (a real
//! HTTP client) asks for a code and polls the token endpoint, while a person
//! (a browser with cookies) enters the code on the verification page, signs
//! in at the Slack stand-in and answers the confirmation. Every polling
//! answer, the code forms, guessing limits, the confirmation (always shown,
//! bound to its browser), the application's policy and `groups`; most
//! scenarios run on the memory store and on Redis.

use crate::common;
use crate::sessions::hidden_value;

use std::time::Duration;

use common::bridge::{BASIC, Bridge, REDIRECT_URI, SIGNING_SECRET, Setup};
use common::browser::{
    Browser, ClientAuth, id_claims, location, sign_in_and_redeem, verify_id_token,
};
use common::redis_cluster::RedisCluster;
use serde_json::Value;
use slack_oidc_bridge::upstream::standin::events::{self, user_change_event};
use slack_oidc_bridge::upstream::standin::{Signature, StandinUser};

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// A public client of the device flow alone (no redirect URI), registered
/// for refresh tokens.
const CLI: &str = "app-device";
const CLI_NAME: &str = "Device CLI";
/// A confidential client of both the code flow and the device flow.
const CONFIDENTIAL: (&str, &str) = (
    "app-device-secret",
    "device-secret-0123456789abcdef0123456789",
);
const ADA: &str = "U0000000001";
const GRACE: &str = "U0000000002";
/// A multi-channel guest (refused by default with the directory on).
const MALLORY: &str = "U0000000005";

fn device_clients() -> String {
    format!(
        r#"
[[clients]]
client_id = "{CLI}"
client_name = "{CLI_NAME}"
token_endpoint_auth_method = "none"
grant_types = ["{DEVICE_GRANT}", "refresh_token"]
[[clients]]
client_id = "{confidential_id}"
client_secret = "{confidential_secret}"
redirect_uris = ["{REDIRECT_URI}"]
grant_types = ["authorization_code", "{DEVICE_GRANT}"]
"#,
        confidential_id = CONFIDENTIAL.0,
        confidential_secret = CONFIDENTIAL.1,
    )
}

fn with_devices(mut setup: Setup) -> Setup {
    setup.extra_toml.push_str(&device_clients());
    setup
}

fn with_env(mut setup: Setup, env: &[(&str, &str)]) -> Setup {
    setup
        .env
        .extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    setup
}

// ------------------------------------------------------------------ the device

/// Who the device says it is.
#[derive(Clone, Copy)]
enum Device {
    /// The public client: its client_id in the form.
    Cli,
    /// The confidential client, with Basic authentication.
    Confidential,
    /// A client registered without the device grant.
    Basic,
}

async fn device_post(
    bridge: &Bridge,
    path: &str,
    device: Device,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let mut form = form.to_vec();
    let mut req = reqwest::Client::new().post(bridge.url(path));
    match device {
        Device::Cli => form.push(("client_id", CLI)),
        Device::Confidential => req = req.basic_auth(CONFIDENTIAL.0, Some(CONFIDENTIAL.1)),
        Device::Basic => req = req.basic_auth(BASIC.0, Some(BASIC.1)),
    }
    req.form(&form).send().await.unwrap()
}

/// A device authorization that must succeed: its JSON answer.
async fn start(bridge: &Bridge, device: Device, scope: &str) -> Value {
    let r = device_post(bridge, "/device_authorization", device, &[("scope", scope)]).await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    assert_eq!(r.headers()["cache-control"], "no-store");
    r.json().await.unwrap()
}

fn s(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {v}"))
        .to_string()
}

async fn poll(bridge: &Bridge, device: Device, device_code: &str) -> reqwest::Response {
    device_post(
        bridge,
        "/token",
        device,
        &[("grant_type", DEVICE_GRANT), ("device_code", device_code)],
    )
    .await
}

/// A refused poll: 400, not cached, RFC 6749 §5.2 JSON; its error and
/// description.
async fn poll_error(bridge: &Bridge, device: Device, device_code: &str) -> (String, String) {
    let r = poll(bridge, device, device_code).await;
    let status = r.status();
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 400, "{body}");
    (s(&body, "error"), s(&body, "error_description"))
}

/// A successful poll: the token response.
async fn poll_tokens(bridge: &Bridge, device: Device, device_code: &str) -> Value {
    let r = poll(bridge, device, device_code).await;
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

async fn userinfo(bridge: &Bridge, access_token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(bridge.url("/userinfo"))
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap()
}

// ------------------------------------------------------------------ the person

async fn enter_code(bridge: &Bridge, browser: &Browser, typed: &str) -> reqwest::Response {
    enter(bridge, browser, &[("user_code", typed)]).await
}

async fn enter(bridge: &Bridge, browser: &Browser, form: &[(&str, &str)]) -> reqwest::Response {
    browser
        .http
        .post(bridge.url("/device"))
        .form(form)
        .send()
        .await
        .unwrap()
}

/// Enters the code with no session, signs in at Slack as `user`: the page
/// the bridge shows after Slack.
async fn enter_and_sign_in(
    bridge: &Bridge,
    browser: &Browser,
    typed: &str,
    user: &str,
) -> reqwest::Response {
    let r = enter_code(bridge, browser, typed).await;
    assert_eq!(r.status(), 302, "to Slack: {:?}", r.text().await);
    let slack = location(&r);
    assert!(
        slack.as_str().starts_with(&bridge.standin.base_url),
        "{slack}"
    );
    let callback = browser.slack_decide(&slack, user).await;
    browser.get(callback.as_str()).await
}

/// The confirmation page's HTML, checked to be one.
async fn confirmation(r: reqwest::Response) -> String {
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("name=\"decision\" value=\"approve\"")
            && html.contains("name=\"decision\" value=\"deny\""),
        "not the confirmation: {html}"
    );
    html
}

async fn answer(
    bridge: &Bridge,
    browser: &Browser,
    html: &str,
    decision: &str,
) -> reqwest::Response {
    let token = hidden_value(html, "token");
    browser
        .http
        .post(bridge.url("/device/confirm"))
        .form(&[("token", token.as_str()), ("decision", decision)])
        .send()
        .await
        .unwrap()
}

/// Approves on the confirmation page; the page that follows.
async fn approve(bridge: &Bridge, browser: &Browser, html: &str) -> String {
    let r = answer(bridge, browser, html, "approve").await;
    assert_eq!(r.status(), 200);
    let done = r.text().await.unwrap();
    assert!(done.contains("You may return to your device"), "{done}");
    done
}

/// A whole approval by `user`, signing in at Slack.
async fn approve_as(bridge: &Bridge, user_code: &str, user: &str) {
    let browser = Browser::new();
    let html = confirmation(enter_and_sign_in(bridge, &browser, user_code, user).await).await;
    approve(bridge, &browser, &html).await;
}

// ------------------------------------------------------------------ scenarios

async fn discovery_names_the_device_endpoint_and_grant() {
    let bridge = Bridge::start(with_devices(Setup::default())).await;
    let doc: Value = reqwest::get(bridge.url("/.well-known/openid-configuration"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        doc["device_authorization_endpoint"],
        bridge.url("/device_authorization")
    );
    let grants = doc["grant_types_supported"].as_array().unwrap();
    assert!(grants.iter().any(|g| g == DEVICE_GRANT), "{grants:?}");
}

async fn a_device_gets_tokens_once_the_person_approves_and_only_once(setup: Setup) {
    let bridge = Bridge::start(with_devices(setup)).await;
    let started = start(&bridge, Device::Cli, "openid email profile offline_access").await;
    let user_code = s(&started, "user_code");
    let device_code = s(&started, "device_code");
    assert_eq!(device_code.len(), 43, "256 bits, base64url");
    assert!(
        user_code.len() == 9
            && user_code.as_bytes()[4] == b'-'
            && user_code
                .bytes()
                .filter(|b| *b != b'-')
                .all(|b| b"BCDFGHJKLMNPQRSTVWXZ".contains(&b)),
        "{user_code}"
    );
    assert_eq!(s(&started, "verification_uri"), bridge.url("/device"));
    assert_eq!(
        s(&started, "verification_uri_complete"),
        format!("{}?user_code={user_code}", bridge.url("/device"))
    );
    assert_eq!(started["expires_in"], 600);
    assert_eq!(started["interval"], 5);

    let (error, _) = poll_error(&bridge, Device::Cli, &device_code).await;
    assert_eq!(error, "authorization_pending");

    // The link the device shows prefills the form; the person still reads
    // the code and presses Continue.
    let browser = Browser::new();
    let page = browser.get(&s(&started, "verification_uri_complete")).await;
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains(&format!("value=\"{user_code}\"")), "{page}");

    let html = confirmation(enter_and_sign_in(&bridge, &browser, &user_code, ADA).await).await;
    assert!(html.contains(CLI_NAME), "names the application: {html}");
    assert!(html.contains("Ada Lovelace"), "names the account: {html}");
    assert!(
        html.contains(&user_code),
        "shows the code to compare: {html}"
    );
    assert!(html.contains("See your email address"), "{html}");
    approve(&bridge, &browser, &html).await;

    let tokens = poll_tokens(&bridge, Device::Cli, &device_code).await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert!(
        tokens["refresh_token"].is_string(),
        "offline_access was granted: {tokens}"
    );
    let claims = verify_id_token(&bridge, &s(&tokens, "id_token"), CLI).await;
    assert_eq!(claims["sub"], "T0000000001:U0000000001");
    assert_eq!(claims["email"], "ada@example.com");
    assert!(claims.get("nonce").is_none());
    let access = s(&tokens, "access_token");
    assert_eq!(userinfo(&bridge, &access).await.status(), 200);
    // The refresh token works as one from a code redemption.
    let r = device_post(
        &bridge,
        "/token",
        Device::Cli,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &s(&tokens, "refresh_token")),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    let refreshed: Value = r.json().await.unwrap();
    let refreshed_access = s(&refreshed, "access_token");

    // Redeemed once: the code again is refused, and what it gave is revoked
    // (as for a replayed authorization code).
    let (error, _) = poll_error(&bridge, Device::Cli, &device_code).await;
    assert_eq!(error, "invalid_grant");
    assert_eq!(userinfo(&bridge, &access).await.status(), 401);
    assert_eq!(userinfo(&bridge, &refreshed_access).await.status(), 401);
}

async fn device_authorizations_are_limited_per_address() {
    let bridge = Bridge::start(with_devices(Setup::default())).await;
    for _ in 0..20 {
        start(&bridge, Device::Cli, "openid").await;
    }
    let r = device_post(
        &bridge,
        "/device_authorization",
        Device::Cli,
        &[("scope", "openid")],
    )
    .await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    // The budget counts device authorizations about to be stored: a client
    // without the grant is refused before it, and told why.
    let r = device_post(
        &bridge,
        "/device_authorization",
        Device::Basic,
        &[("scope", "openid")],
    )
    .await;
    assert_eq!(r.status(), 400);
}

async fn polling_faster_than_the_interval_is_slow_down_and_the_interval_grows(setup: Setup) {
    let bridge = Bridge::start(with_devices(setup)).await;
    let device_code = s(&start(&bridge, Device::Cli, "openid").await, "device_code");
    let (first, _) = poll_error(&bridge, Device::Cli, &device_code).await;
    assert_eq!(
        first, "authorization_pending",
        "the first poll may come at once"
    );
    let (error, description) = poll_error(&bridge, Device::Cli, &device_code).await;
    assert_eq!(error, "slow_down");
    assert!(description.contains("10 s"), "{description}");
    // Six seconds would have been enough before; the interval is now 10 s.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (error, description) = poll_error(&bridge, Device::Cli, &device_code).await;
    assert_eq!(error, "slow_down");
    assert!(description.contains("15 s"), "{description}");
}

async fn a_device_code_past_its_lifetime_is_expired_token(setup: Setup) {
    let setup = with_env(
        with_devices(setup),
        &[("BRIDGE_TOKENS__DEVICE_CODE_TTL_SECS", "2")],
    );
    let bridge = Bridge::start(setup).await;
    let started = start(&bridge, Device::Cli, "openid").await;
    assert_eq!(started["expires_in"], 2);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (error, _) = poll_error(&bridge, Device::Cli, &s(&started, "device_code")).await;
    assert_eq!(error, "expired_token");
    let r = enter_code(&bridge, &Browser::new(), &s(&started, "user_code")).await;
    assert_eq!(r.status(), 410);
    assert!(r.text().await.unwrap().contains("This code has expired"));
}

async fn a_person_who_denies_leaves_the_device_with_access_denied(setup: Setup) {
    let bridge = Bridge::start(with_devices(setup)).await;
    let started = start(&bridge, Device::Cli, "openid").await;
    let browser = Browser::new();
    let user_code = s(&started, "user_code");
    let html = confirmation(enter_and_sign_in(&bridge, &browser, &user_code, ADA).await).await;
    let r = answer(&bridge, &browser, &html, "deny").await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("was not signed in"));
    let (error, _) = poll_error(&bridge, Device::Cli, &s(&started, "device_code")).await;
    assert_eq!(error, "access_denied");
    // Answered: the code is no longer accepted, and the page cannot be
    // answered again.
    assert_eq!(
        enter_code(&bridge, &browser, &user_code).await.status(),
        400
    );
    assert_eq!(
        answer(&bridge, &browser, &html, "approve").await.status(),
        410
    );
    let (error, _) = poll_error(&bridge, Device::Cli, &s(&started, "device_code")).await;
    assert_eq!(error, "access_denied");
}

async fn a_client_without_the_grant_is_unauthorized_at_both_endpoints(setup: Setup) {
    let bridge = Bridge::start(with_devices(setup)).await;
    let r = device_post(
        &bridge,
        "/device_authorization",
        Device::Basic,
        &[("scope", "openid")],
    )
    .await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized_client", "{body}");

    let device_code = s(&start(&bridge, Device::Cli, "openid").await, "device_code");
    let (error, _) = poll_error(&bridge, Device::Basic, &device_code).await;
    assert_eq!(error, "unauthorized_client");

    // A confidential client authenticates as at the token endpoint.
    let theirs = start(&bridge, Device::Confidential, "openid").await;
    let r = reqwest::Client::new()
        .post(bridge.url("/device_authorization"))
        .basic_auth(CONFIDENTIAL.0, Some("a-wrong-secret-0123456789abcdef0123"))
        .form(&[("scope", "openid")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Another client's code, and a code nobody issued: invalid_grant.
    let (error, description) = poll_error(&bridge, Device::Cli, &s(&theirs, "device_code")).await;
    assert_eq!(error, "invalid_grant");
    assert!(description.contains("another client"), "{description}");
    let (error, _) = poll_error(&bridge, Device::Cli, "not-a-device-code").await;
    assert_eq!(error, "invalid_grant");
    // ... which left the owner's code pending, not slowed down.
    let (error, _) = poll_error(&bridge, Device::Confidential, &s(&theirs, "device_code")).await;
    assert_eq!(error, "authorization_pending");

    // Scopes as at the authorization endpoint.
    let r = device_post(
        &bridge,
        "/device_authorization",
        Device::Cli,
        &[("scope", "email")],
    )
    .await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_scope", "{body}");
    let r = device_post(
        &bridge,
        "/token",
        Device::Cli,
        &[("grant_type", DEVICE_GRANT)],
    )
    .await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request", "{body}");
}

async fn user_codes_are_accepted_in_any_case_with_or_without_the_dash(setup: Setup) {
    let bridge = Bridge::start(with_devices(setup)).await;
    let forms: [fn(&str) -> String; 4] = [
        |c| c.to_string(),
        |c| c.to_lowercase(),
        |c| c.replace('-', ""),
        |c| format!("  {} ", c.to_lowercase().replace('-', " ")),
    ];
    for form in forms {
        let user_code = s(&start(&bridge, Device::Cli, "openid").await, "user_code");
        let typed = form(&user_code);
        let r = enter_code(&bridge, &Browser::new(), &typed).await;
        assert_eq!(r.status(), 302, "{typed:?}: {:?}", r.text().await);
        assert!(location(&r).as_str().starts_with(&bridge.standin.base_url));
    }
    // The prefilled form shows the code as the device does.
    let user_code = s(&start(&bridge, Device::Cli, "openid").await, "user_code");
    let typed = user_code.to_lowercase().replace('-', "");
    let page = Browser::new()
        .get(&bridge.url(&format!("/device?user_code={typed}")))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains(&format!("value=\"{user_code}\"")), "{page}");
}

async fn a_wrong_code_says_so_and_guessing_is_limited_per_address(setup: Setup) {
    let setup = with_env(
        with_devices(setup),
        &[("BRIDGE_LIMITS__TRUST_FORWARDED_FOR", "true")],
    );
    let bridge = Bridge::start(setup).await;
    let user_code = s(&start(&bridge, Device::Cli, "openid").await, "user_code");
    let browser = Browser::new();
    let from = |address: &'static str, typed: &str| {
        browser
            .http
            .post(bridge.url("/device"))
            .header("X-Forwarded-For", address)
            .form(&[("user_code", typed.to_string())])
            .send()
    };
    // Typos that make no code are not guesses: they are not counted.
    for typed in [
        "not a code",
        "BCDF-GHJ",
        "BCDF-GHJ1",
        "",
        "AEIO-UAEI",
        "BCDF-GHJKL",
    ] {
        let r = from("192.0.2.1", typed).await.unwrap();
        assert_eq!(r.status(), 400, "{typed}");
        let html = r.text().await.unwrap();
        assert!(html.contains("This code is not valid"), "{html}");
    }
    for typed in [
        "BCDF-GHJK",
        "XXXX-XXXX",
        "bcdfghjz",
        "ZZZZ-ZZZZ",
        "MNPQ-RSTV",
    ] {
        // Five wrong codes (the odds that one is live are negligible).
        let r = from("192.0.2.1", typed).await.unwrap();
        assert_eq!(r.status(), 400, "{typed}");
        let html = r.text().await.unwrap();
        assert!(html.contains("This code is not valid"), "{html}");
    }
    // Then the address waits, even with the right code.
    let r = from("192.0.2.1", &user_code).await.unwrap();
    assert_eq!(r.status(), 429);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=12).contains(&wait), "{wait}");
    assert!(r.text().await.unwrap().contains("Too many wrong codes"));
    // Another address is not concerned.
    let r = from("198.51.100.7", &user_code).await.unwrap();
    assert_eq!(r.status(), 302);
    // In French too.
    let r = browser
        .http
        .post(bridge.url("/device"))
        .header("X-Forwarded-For", "203.0.113.5")
        .header("Accept-Language", "fr")
        .form(&[("user_code", "BBBB-BBBB")])
        .send()
        .await
        .unwrap();
    let html = r.text().await.unwrap();
    assert!(
        html.contains("<html lang=\"fr\">") && html.contains("Ce code n’est pas valide"),
        "{html}"
    );
}

async fn a_code_entered_too_many_times_locks_and_its_device_is_denied(setup: Setup) {
    let bridge = Bridge::start(with_devices(setup)).await;
    let started = start(&bridge, Device::Cli, "openid").await;
    let user_code = s(&started, "user_code");
    for _ in 0..5 {
        let r = enter_code(&bridge, &Browser::new(), &user_code).await;
        assert_eq!(r.status(), 302);
    }
    let r = enter_code(&bridge, &Browser::new(), &user_code).await;
    assert_eq!(r.status(), 410);
    assert!(r.text().await.unwrap().contains("entered too many times"));
    let (error, description) = poll_error(&bridge, Device::Cli, &s(&started, "device_code")).await;
    assert_eq!(error, "access_denied");
    assert!(description.contains("too many times"), "{description}");
}

async fn the_confirmation_is_shown_even_with_a_session_and_answered_only_from_its_browser(
    setup: Setup,
) {
    let bridge = Bridge::start(with_devices(setup)).await;
    let browser = Browser::new();
    let signed_in = sign_in_and_redeem(&bridge, &browser, ClientAuth::Basic, "openid", ADA).await;
    let started = start(&bridge, Device::Cli, "openid").await;
    // The session is reused (no trip to Slack) but the person must still
    // confirm: no device code is approved silently.
    let html = confirmation(enter_code(&bridge, &browser, &s(&started, "user_code")).await).await;
    assert!(
        html.contains("Ada Lovelace") && html.contains(CLI_NAME),
        "{html}"
    );
    let (error, _) = poll_error(&bridge, Device::Cli, &s(&started, "device_code")).await;
    assert_eq!(error, "authorization_pending");

    // Another browser (no session, or its own) cannot answer the page.
    let r = answer(&bridge, &Browser::new(), &html, "approve").await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("another browser"));
    let grace = Browser::new();
    sign_in_and_redeem(&bridge, &grace, ClientAuth::Basic, "openid", GRACE).await;
    assert_eq!(
        answer(&bridge, &grace, &html, "approve").await.status(),
        400
    );
    let (error, _) = poll_error(&bridge, Device::Cli, &s(&started, "device_code")).await;
    assert_eq!(
        error, "slow_down",
        "still waiting (and polled again at once)"
    );

    approve(&bridge, &browser, &html).await;
    let tokens = poll_tokens(&bridge, Device::Cli, &s(&started, "device_code")).await;
    let (device, web) = (id_claims(&tokens), id_claims(&signed_in));
    assert_eq!(device["sub"], web["sub"]);
    assert_eq!(
        device["auth_time"], web["auth_time"],
        "the session's Slack login"
    );
}

async fn another_slack_account_can_be_chosen_from_the_confirmation(setup: Setup) {
    let bridge = Bridge::start(with_devices(setup)).await;
    let browser = Browser::new();
    sign_in_and_redeem(&bridge, &browser, ClientAuth::Basic, "openid", ADA).await;
    let started = start(&bridge, Device::Cli, "openid").await;
    let user_code = s(&started, "user_code");
    let html = confirmation(enter_code(&bridge, &browser, &user_code).await).await;
    assert!(html.contains("Use another Slack account"));
    let r = enter(
        &bridge,
        &browser,
        &[("user_code", &user_code), ("login", "1")],
    )
    .await;
    assert_eq!(r.status(), 302);
    let callback = browser.slack_decide(&location(&r), GRACE).await;
    let html = confirmation(browser.get(callback.as_str()).await).await;
    assert!(html.contains("Grace Hopper"), "{html}");
    approve(&bridge, &browser, &html).await;
    let tokens = poll_tokens(&bridge, Device::Cli, &s(&started, "device_code")).await;
    assert_eq!(id_claims(&tokens)["sub"], "T0000000002:U0000000002");
}

async fn groups_are_in_the_tokens_when_asked_and_slack_decides_who_may_approve(setup: Setup) {
    let mut setup = with_env(
        with_devices(setup),
        &[("BRIDGE_UPSTREAM__DIRECTORY_TTL_SECS", "1")],
    );
    setup.directory = true;
    let bridge = Bridge::start(setup).await;

    let started = start(&bridge, Device::Cli, "openid groups").await;
    approve_as(&bridge, &s(&started, "user_code"), ADA).await;
    let tokens = poll_tokens(&bridge, Device::Cli, &s(&started, "device_code")).await;
    assert_eq!(tokens["scope"], "openid groups");
    assert_eq!(
        id_claims(&tokens)["groups"],
        serde_json::json!(["admins", "engineering"])
    );

    // A guest is refused when back from Slack, before any confirmation.
    let started = start(&bridge, Device::Cli, "openid").await;
    let r = enter_and_sign_in(&bridge, &Browser::new(), &s(&started, "user_code"), MALLORY).await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("guests are not admitted"));

    // Deactivated between the page and the answer: Slack's no is the
    // device's answer too.
    let started = start(&bridge, Device::Cli, "openid").await;
    let browser = Browser::new();
    let html =
        confirmation(enter_and_sign_in(&bridge, &browser, &s(&started, "user_code"), ADA).await)
            .await;
    bridge.standin.control.set_user_deleted(ADA, true);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let r = answer(&bridge, &browser, &html, "approve").await;
    assert_eq!(r.status(), 403);
    let (error, description) = poll_error(&bridge, Device::Cli, &s(&started, "device_code")).await;
    assert_eq!(error, "access_denied");
    assert!(description.contains("deactivated"), "{description}");
}

async fn a_deactivation_in_slack_ends_what_a_device_holds(mut setup: Setup) {
    setup.events = true;
    let bridge = Bridge::start(with_devices(setup)).await;
    let started = start(&bridge, Device::Cli, "openid offline_access").await;
    approve_as(&bridge, &s(&started, "user_code"), ADA).await;
    let tokens = poll_tokens(&bridge, Device::Cli, &s(&started, "device_code")).await;
    let access = s(&tokens, "access_token");
    assert_eq!(userinfo(&bridge, &access).await.status(), 200);

    let control = &bridge.standin.control;
    control.set_user_deleted(ADA, true);
    let ada = StandinUser::fixtures()
        .into_iter()
        .find(|u| u.user_id == ADA)
        .unwrap();
    let r = events::send_event(
        &bridge.url("/slack/events"),
        SIGNING_SECRET,
        &user_change_event(control, &ada),
        Signature::Good,
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    // The family was in Ada's index: its tokens end with her.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while userinfo(&bridge, &access).await.status() != 401 {
        assert!(
            std::time::Instant::now() < deadline,
            "the access token still works"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = device_post(
        &bridge,
        "/token",
        Device::Cli,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &s(&tokens, "refresh_token")),
        ],
    )
    .await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "{body}");
}

async fn the_verification_pages_speak_french_and_carry_the_security_headers() {
    let bridge = Bridge::start(with_devices(Setup::default())).await;
    let r = Browser::new()
        .http
        .get(bridge.url("/device"))
        .header("Accept-Language", "fr-FR, en;q=0.5")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let headers = r.headers().clone();
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["x-frame-options"], "DENY");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(
        csp.contains(&format!("form-action 'self' {}", bridge.standin.base_url)),
        "the code form may lead to Slack: {csp}"
    );
    let html = r.text().await.unwrap();
    assert!(html.contains("<html lang=\"fr\">"), "{html}");
    assert!(
        html.contains("Saisissez le code affiché par votre appareil"),
        "{html}"
    );
}

/// Every device-flow operation touches one key: the same flows on a
/// three-master Redis Cluster.
#[tokio::test(flavor = "multi_thread")]
async fn the_device_flow_runs_on_a_redis_cluster() {
    let cluster = RedisCluster::start();
    let setup = || Setup {
        redis_cluster: Some(cluster.urls.clone()),
        ..Default::default()
    };
    a_device_gets_tokens_once_the_person_approves_and_only_once(setup()).await;
    a_person_who_denies_leaves_the_device_with_access_denied(setup()).await;
    a_code_entered_too_many_times_locks_and_its_device_is_denied(setup()).await;
    polling_faster_than_the_interval_is_slow_down_and_the_interval_grows(setup()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn device_authorizations_are_limited_to_twenty_at_once_per_address() {
    device_authorizations_are_limited_per_address().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn discovery_names_the_device_endpoint_and_grant_type() {
    discovery_names_the_device_endpoint_and_grant().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_verification_page_speaks_french_with_the_security_headers() {
    the_verification_pages_speak_french_and_carry_the_security_headers().await;
}

on_both_stores!(
    a_device_gets_tokens_once_the_person_approves_and_only_once,
    polling_faster_than_the_interval_is_slow_down_and_the_interval_grows,
    a_device_code_past_its_lifetime_is_expired_token,
    a_person_who_denies_leaves_the_device_with_access_denied,
    a_client_without_the_grant_is_unauthorized_at_both_endpoints,
    user_codes_are_accepted_in_any_case_with_or_without_the_dash,
    a_wrong_code_says_so_and_guessing_is_limited_per_address,
    a_code_entered_too_many_times_locks_and_its_device_is_denied,
    the_confirmation_is_shown_even_with_a_session_and_answered_only_from_its_browser,
    another_slack_account_can_be_chosen_from_the_confirmation,
    groups_are_in_the_tokens_when_asked_and_slack_decides_who_may_approve,
    a_deactivation_in_slack_ends_what_a_device_holds,
);
