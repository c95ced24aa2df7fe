//! Single sign-on: the session a Slack login leaves in the browser, and how
//! prompt, max_age, id_token_hint and consent use it. Every scenario runs on
//! the memory store and on Redis.

use crate::common;

use std::time::Duration;

use common::bridge::{Bridge, CONSENT, Setup};
use common::browser::{
    Browser, ClientAuth, auth_params, id_claims, location, param, redeem, sign_in_and_redeem,
};

const ADA: &str = "U0000000001";
const GRACE: &str = "U0000000002";

/// Authorize for `client` with extra parameters; returns the raw response.
async fn authorize(
    bridge: &Bridge,
    browser: &Browser,
    client: &str,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut params = auth_params(client, "st", "n");
    params.extend_from_slice(extra);
    browser.authorize(bridge, &params).await
}

/// The code when the bridge answered straight back to the application.
fn code_without_slack(bridge: &Bridge, r: &reqwest::Response) -> String {
    assert_eq!(r.status(), 302);
    let back = location(r);
    assert!(
        !back.as_str().starts_with(&bridge.standin.base_url),
        "went to Slack: {back}"
    );
    param(&back, "code").unwrap_or_else(|| panic!("no code: {back}"))
}

fn error_of(r: &reqwest::Response) -> Option<String> {
    param(&location(r), "error")
}

async fn a_second_application_signs_in_without_a_trip_to_slack(setup: Setup) {
    let bridge = Bridge::start(setup).await;
    let browser = Browser::new();
    let first = sign_in_and_redeem(&bridge, &browser, ClientAuth::Basic, "openid email", ADA).await;
    let r = authorize(&bridge, &browser, "app-post", &[]).await;
    let code = code_without_slack(&bridge, &r);
    let second: serde_json::Value = redeem(&bridge, ClientAuth::Post, &code, None)
        .await
        .json()
        .await
        .unwrap();
    let (a, b) = (id_claims(&first), id_claims(&second));
    assert_eq!(a["sub"], b["sub"]);
    assert_eq!(
        a["auth_time"], b["auth_time"],
        "auth_time is the time of the Slack login"
    );
    assert_eq!(b["aud"], serde_json::json!(["app-post"]));
}

async fn prompt_none_is_silent_with_a_session_and_login_required_without(setup: Setup) {
    let bridge = Bridge::start(setup).await;
    let browser = Browser::new();
    let r = authorize(&bridge, &browser, "app-basic", &[("prompt", "none")]).await;
    assert_eq!(error_of(&r).as_deref(), Some("login_required"));
    let first = sign_in_and_redeem(&bridge, &browser, ClientAuth::Basic, "openid", ADA).await;
    let r = authorize(&bridge, &browser, "app-basic", &[("prompt", "none")]).await;
    let code = code_without_slack(&bridge, &r);
    let again: serde_json::Value = redeem(&bridge, ClientAuth::Basic, &code, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(id_claims(&first)["sub"], id_claims(&again)["sub"]);
    assert_eq!(
        id_claims(&first)["auth_time"],
        id_claims(&again)["auth_time"]
    );
}

async fn prompt_login_forces_slack_and_advances_auth_time(setup: Setup) {
    let bridge = Bridge::start(setup).await;
    let browser = Browser::new();
    let first = sign_in_and_redeem(&bridge, &browser, ClientAuth::Basic, "openid", ADA).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut params = auth_params("app-basic", "st", "n");
    params.push(("prompt", "login"));
    let back = browser.sign_in(&bridge, &params, ADA).await;
    let second: serde_json::Value = redeem(
        &bridge,
        ClientAuth::Basic,
        &param(&back, "code").unwrap(),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(id_claims(&second)["auth_time"].as_i64() > id_claims(&first)["auth_time"].as_i64());
}

async fn max_age_forces_a_new_slack_login_once_the_session_is_older(setup: Setup) {
    let bridge = Bridge::start(setup).await;
    let browser = Browser::new();
    let first = sign_in_and_redeem(&bridge, &browser, ClientAuth::Basic, "openid", ADA).await;
    let r = authorize(&bridge, &browser, "app-basic", &[("max_age", "10000")]).await;
    let code = code_without_slack(&bridge, &r);
    let kept: serde_json::Value = redeem(&bridge, ClientAuth::Basic, &code, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        id_claims(&kept)["auth_time"],
        id_claims(&first)["auth_time"]
    );

    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut params = auth_params("app-basic", "st", "n");
    params.push(("max_age", "1"));
    let back = browser.sign_in(&bridge, &params, ADA).await; // asserts the trip to Slack
    let fresh: serde_json::Value = redeem(
        &bridge,
        ClientAuth::Basic,
        &param(&back, "code").unwrap(),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    let auth_time = id_claims(&fresh)["auth_time"]
        .as_i64()
        .expect("auth_time is present");
    assert!(auth_time > id_claims(&first)["auth_time"].as_i64().unwrap());
    assert!((chrono_now() - auth_time).abs() < 30, "auth_time is recent");
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn id_token_hint_of_the_session_user_is_silent_and_of_another_user_is_login_required(
    setup: Setup,
) {
    let bridge = Bridge::start(setup).await;
    let ada_browser = Browser::new();
    let ada = sign_in_and_redeem(&bridge, &ada_browser, ClientAuth::Basic, "openid", ADA).await;
    let grace =
        sign_in_and_redeem(&bridge, &Browser::new(), ClientAuth::Basic, "openid", GRACE).await;
    let ada_hint = ada["id_token"].as_str().unwrap();
    let grace_hint = grace["id_token"].as_str().unwrap();

    let r = authorize(
        &bridge,
        &ada_browser,
        "app-basic",
        &[("prompt", "none"), ("id_token_hint", ada_hint)],
    )
    .await;
    let code = code_without_slack(&bridge, &r);
    let again: serde_json::Value = redeem(&bridge, ClientAuth::Basic, &code, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(id_claims(&again)["sub"], id_claims(&ada)["sub"]);

    let r = authorize(
        &bridge,
        &ada_browser,
        "app-basic",
        &[("prompt", "none"), ("id_token_hint", grace_hint)],
    )
    .await;
    assert_eq!(error_of(&r).as_deref(), Some("login_required"));

    let forged = format!("{}x", &ada_hint[..ada_hint.len() - 1]);
    let r = authorize(
        &bridge,
        &ada_browser,
        "app-basic",
        &[("prompt", "none"), ("id_token_hint", &forged)],
    )
    .await;
    assert_eq!(error_of(&r).as_deref(), Some("invalid_request"));
}

async fn a_client_requiring_consent_asks_once_and_again_on_prompt_consent(setup: Setup) {
    let bridge = Bridge::start(setup).await;
    let browser = Browser::new();
    let auth = ClientAuth::Other(CONSENT.0, CONSENT.1);
    let slack = browser
        .to_slack(&bridge, &auth_params(CONSENT.0, "st", "n"))
        .await;
    let callback = browser.slack_decide(&slack, ADA).await;
    let page = browser.get(callback.as_str()).await;
    assert_eq!(page.status(), 200, "the consent page, not a redirect");
    let html = page.text().await.unwrap();
    assert!(
        html.contains("Consent-Requiring App") && html.contains("Allow"),
        "{html}"
    );
    let back = answer_consent(&bridge, &browser, &html, "allow").await;
    let code = param(&back, "code").expect("a code after Allow");
    assert_eq!(redeem(&bridge, auth, &code, None).await.status(), 200);

    // Consent given: the next sign-in goes straight back.
    let r = authorize(&bridge, &browser, CONSENT.0, &[]).await;
    code_without_slack(&bridge, &r);
    // prompt=none works too, prompt=consent asks again, and Cancel is access_denied.
    let r = authorize(&bridge, &browser, CONSENT.0, &[("prompt", "none")]).await;
    code_without_slack(&bridge, &r);
    let r = authorize(&bridge, &browser, CONSENT.0, &[("prompt", "consent")]).await;
    assert_eq!(r.status(), 200);
    let back = answer_consent(&bridge, &browser, &r.text().await.unwrap(), "deny").await;
    assert_eq!(param(&back, "error").as_deref(), Some("access_denied"));
    assert_eq!(param(&back, "state").as_deref(), Some("st"));

    // A trusted client never shows the page, even with prompt=consent.
    let r = authorize(&bridge, &browser, "app-basic", &[("prompt", "consent")]).await;
    code_without_slack(&bridge, &r);
}

async fn prompt_none_is_consent_required_when_consent_is_missing(setup: Setup) {
    let bridge = Bridge::start(setup).await;
    let browser = Browser::new();
    sign_in_and_redeem(&bridge, &browser, ClientAuth::Basic, "openid", ADA).await;
    let r = authorize(&bridge, &browser, CONSENT.0, &[("prompt", "none")]).await;
    assert_eq!(error_of(&r).as_deref(), Some("consent_required"));
}

async fn a_consent_form_from_another_browser_is_refused(setup: Setup) {
    let bridge = Bridge::start(setup).await;
    let browser = Browser::new();
    sign_in_and_redeem(&bridge, &browser, ClientAuth::Basic, "openid", ADA).await;
    let r = authorize(&bridge, &browser, CONSENT.0, &[]).await;
    let html = r.text().await.unwrap();
    let other = Browser::new();
    let token = hidden_value(&html, "interaction");
    let r = other
        .http
        .post(bridge.url("/consent"))
        .form(&[("interaction", token.as_str()), ("decision", "allow")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
}

async fn the_session_cookie_is_http_only_and_same_site_lax(setup: Setup) {
    let bridge = Bridge::start(setup).await;
    let browser = Browser::new();
    let slack = browser
        .to_slack(&bridge, &auth_params("app-basic", "st", "n"))
        .await;
    let callback = browser.slack_decide(&slack, ADA).await;
    let r = browser.get(callback.as_str()).await;
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("bridge_session="))
        .expect("a session cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Secure"),
        "http issuer: no Secure flag (https gets __Host- and Secure)"
    );
}

pub fn hidden_value(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_string()
}

async fn answer_consent(
    bridge: &Bridge,
    browser: &Browser,
    html: &str,
    decision: &str,
) -> url::Url {
    let token = hidden_value(html, "interaction");
    let r = browser
        .http
        .post(bridge.url("/consent"))
        .form(&[("interaction", token.as_str()), ("decision", decision)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    location(&r)
}

on_both_stores!(
    a_second_application_signs_in_without_a_trip_to_slack,
    prompt_none_is_silent_with_a_session_and_login_required_without,
    prompt_login_forces_slack_and_advances_auth_time,
    max_age_forces_a_new_slack_login_once_the_session_is_older,
    id_token_hint_of_the_session_user_is_silent_and_of_another_user_is_login_required,
    a_client_requiring_consent_asks_once_and_again_on_prompt_consent,
    prompt_none_is_consent_required_when_consent_is_missing,
    a_consent_form_from_another_browser_is_refused,
    the_session_cookie_is_http_only_and_same_site_lax,
);
