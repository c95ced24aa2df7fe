//! The bridge on Redis when Redis is gone, killed mid-run or frozen: it
//! keeps answering quickly (503 / `temporarily_unavailable`, never a hang),
//! says it is not ready, and heals by itself when Redis is back. And what it
//! writes to Redis is never a usable code, token or state.

use crate::common;

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::bridge::{Bridge, REDIRECT_URI, Setup};
use common::browser::{
    Browser, ClientAuth, auth_params, location, param, pkce, redeem, token_request,
};
use common::redis_server::RedisServer;

/// The store timeout in the test config is 1000 ms; an answer within this
/// proves "bounded", with room for a slow machine.
const BOUND: Duration = Duration::from_secs(5);

async fn bridge_on(redis: &RedisServer) -> Bridge {
    Bridge::start(Setup {
        redis_url: Some(redis.url.clone()),
        ..Setup::default()
    })
    .await
}

/// Runs `f`, failing the test if it takes `BOUND` or longer (or hangs).
async fn within_bound<T>(what: &str, f: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let out = tokio::time::timeout(BOUND, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {BOUND:?}"));
    assert!(
        started.elapsed() < BOUND,
        "{what} took {:?}",
        started.elapsed()
    );
    out
}

async fn readyz(bridge: &Bridge) -> (u16, serde_json::Value) {
    let r = reqwest::get(bridge.url("/readyz")).await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

async fn wait_ready(bridge: &Bridge, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let (status, body) = readyz(bridge).await;
        if status == 200 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz still {status} {body} after {within:?}; log:\n{}",
            bridge.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A sign-in that is valid in every respect: only the store can make it
/// fail. Authorize stores nothing, so it still sends the person to Slack;
/// the callback then needs the store and must come back as an error
/// redirect to the application, within the bound.
async fn assert_sign_in_is_temporarily_unavailable(bridge: &Bridge) {
    let (_, challenge) = pkce();
    let mut params = auth_params("app-basic", "state-outage", "nonce-outage");
    params.push(("code_challenge", &challenge));
    params.push(("code_challenge_method", "S256"));
    let browser = Browser::new();
    let r = within_bound("GET /authorize", browser.authorize(bridge, &params)).await;
    assert_eq!(r.status(), 302, "on to Slack: authorize needs no store");
    let slack = location(&r);
    assert!(
        slack.as_str().starts_with(&bridge.standin.base_url),
        "{slack}"
    );
    let callback = browser.slack_decide(&slack, "U0000000001").await;
    let r = within_bound("GET /callback", browser.get(callback.as_str())).await;
    assert_eq!(r.status(), 302, "an error redirect, not a page");
    let back = location(&r);
    assert!(
        back.as_str().starts_with(REDIRECT_URI),
        "back to the application, not on to Slack: {back}"
    );
    assert_eq!(
        param(&back, "error").as_deref(),
        Some("temporarily_unavailable"),
        "{back}"
    );
    assert_eq!(param(&back, "state").as_deref(), Some("state-outage"));
    assert_eq!(param(&back, "iss").as_deref(), Some(bridge.base.as_str()));
    assert!(param(&back, "code").is_none());
}

/// The token endpoint cannot tell a made-up code from a real one without the
/// store, so it must say "try again", not `invalid_grant`.
async fn assert_token_is_temporarily_unavailable(bridge: &Bridge) {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", "made-up-code-0123456789abcdef0123456789abc"),
        ("redirect_uri", REDIRECT_URI),
    ];
    let r = within_bound(
        "POST /token",
        token_request(bridge, ClientAuth::Basic, &form),
    )
    .await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
}

/// A complete sign-in and redemption; returns (code, state, token body).
async fn sign_in(bridge: &Bridge, state: &str) -> (String, serde_json::Value) {
    let (verifier, challenge) = pkce();
    let mut params = auth_params("app-basic", state, "nonce-1");
    params.push(("code_challenge", &challenge));
    params.push(("code_challenge_method", "S256"));
    let back = Browser::new().sign_in(bridge, &params, "U0000000001").await;
    assert_eq!(param(&back, "state").as_deref(), Some(state));
    let code = param(&back, "code").unwrap_or_else(|| panic!("a code: {back}"));
    let r = redeem(bridge, ClientAuth::Basic, &code, Some(&verifier)).await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["id_token"].is_string(), "{body}");
    let info = reqwest::Client::new()
        .get(bridge.url("/userinfo"))
        .bearer_auth(body["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(info.status(), 200, "the access token works at userinfo");
    (code, body)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bridge_started_without_redis_answers_unavailable_and_heals_when_redis_comes() {
    let mut redis = RedisServer::start();
    redis.stop();
    let bridge = bridge_on(&redis).await;

    let healthz = reqwest::get(bridge.url("/healthz")).await.unwrap();
    assert_eq!(healthz.status(), 200, "alive even without its store");
    let (status, body) = within_bound("GET /readyz", readyz(&bridge)).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unavailable", "{body}");

    assert_sign_in_is_temporarily_unavailable(&bridge).await;
    assert_token_is_temporarily_unavailable(&bridge).await;
    // Twice: a second call while Redis is still down must not hang either.
    assert_sign_in_is_temporarily_unavailable(&bridge).await;

    redis.restart();
    wait_ready(&bridge, Duration::from_secs(5)).await;
    sign_in(&bridge, "state-after-restart").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redis_killed_mid_run_and_restarted_is_survived_without_restarting_the_bridge() {
    let mut redis = RedisServer::start();
    let bridge = bridge_on(&redis).await;
    wait_ready(&bridge, Duration::from_secs(5)).await;
    // Connections are open and in use when Redis dies.
    sign_in(&bridge, "state-before-kill").await;

    redis.stop();
    let (status, body) = within_bound("GET /readyz", readyz(&bridge)).await;
    assert_eq!(status, 503, "{body}");
    assert_sign_in_is_temporarily_unavailable(&bridge).await;
    assert_token_is_temporarily_unavailable(&bridge).await;

    // A new, empty Redis on the same address: the same bridge process.
    let pid = bridge.pid();
    redis.restart();
    wait_ready(&bridge, Duration::from_secs(5)).await;
    sign_in(&bridge, "state-after-restart").await;
    assert_eq!(bridge.pid(), pid);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_frozen_redis_makes_requests_fail_fast_and_they_succeed_after_it_thaws() {
    let redis = RedisServer::start();
    let bridge = bridge_on(&redis).await;
    wait_ready(&bridge, Duration::from_secs(5)).await;
    sign_in(&bridge, "state-before-freeze").await;

    redis.pause();
    let (status, body) = within_bound("GET /readyz", readyz(&bridge)).await;
    assert_eq!(status, 503, "{body}");
    assert_sign_in_is_temporarily_unavailable(&bridge).await;
    assert_token_is_temporarily_unavailable(&bridge).await;

    redis.resume();
    wait_ready(&bridge, Duration::from_secs(5)).await;
    sign_in(&bridge, "state-after-thaw").await;
}

/// Every key the bridge wrote, with its value (`None` if not a string).
async fn dump(redis: &RedisServer) -> Vec<(String, Option<Vec<u8>>)> {
    let client = redis::Client::open(redis.url.as_str()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut con)
        .await
        .unwrap();
    let mut out = Vec::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut con)
            .await
            .unwrap();
        let value: Option<Vec<u8>> = if kind == "string" {
            redis::cmd("GET")
                .arg(&key)
                .query_async(&mut con)
                .await
                .unwrap()
        } else {
            None
        };
        out.push((key, value));
    }
    out
}

fn assert_nowhere(dump: &[(String, Option<Vec<u8>>)], what: &str, secret: &str) {
    assert!(secret.len() >= 8, "{what} is long enough to search for");
    for (key, value) in dump {
        assert!(!key.contains(secret), "{what} in clear in the key {key}");
        if let Some(v) = value {
            let v = String::from_utf8_lossy(v);
            assert!(
                !v.contains(secret),
                "{what} in clear in the value of {key}: {v}"
            );
        }
    }
}

/// The values of the cookies a response sets.
fn cookie_values(r: &reqwest::Response) -> Vec<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next()?.split_once('='))
        .map(|(_, value)| value.trim().to_string())
        .filter(|value| !value.is_empty())
        .collect()
}

fn sha256_b64(s: &str) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        s.as_bytes(),
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_never_holds_a_code_token_or_state_in_clear() {
    let redis = RedisServer::start();
    let bridge = bridge_on(&redis).await;
    let config = std::fs::read_to_string(&bridge.config_path).unwrap();
    let prefix = config
        .lines()
        .find_map(|l| l.strip_prefix("key_prefix = \""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("the test config sets a key prefix")
        .to_string();

    // Mid-flow: nothing is stored for it (the pending login travels sealed
    // in Slack's state).
    let client_state = "client-state-0123456789";
    let (verifier, challenge) = pkce();
    let mut params = auth_params("app-basic", client_state, "nonce-1");
    params.push(("code_challenge", &challenge));
    params.push(("code_challenge_method", "S256"));
    let browser = Browser::new();
    let r = browser.authorize(&bridge, &params).await;
    assert_eq!(r.status(), 302);
    let mut cookies = cookie_values(&r);
    let slack = location(&r);
    assert!(
        slack.as_str().starts_with(&bridge.standin.base_url),
        "{slack}"
    );
    let upstream_state = param(&slack, "state").expect("a state to Slack");
    assert!(
        dump(&redis).await.is_empty(),
        "authorize wrote nothing before Slack answered"
    );

    // Then the whole sign-in and the redemption.
    let callback = browser.slack_decide(&slack, "U0000000001").await;
    let r = browser.get(callback.as_str()).await;
    assert_eq!(r.status(), 302);
    cookies.extend(cookie_values(&r));
    assert!(
        !cookies.is_empty(),
        "the bridge binds the sign-in to the browser with a cookie"
    );
    let back = location(&r);
    let code = param(&back, "code").expect("a code");
    let r = redeem(&bridge, ClientAuth::Basic, &code, Some(&verifier)).await;
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    let access_token = body["access_token"].as_str().unwrap().to_string();

    let after = dump(&redis).await;
    assert!(
        !after.is_empty() && after.iter().all(|(k, _)| k.starts_with(&prefix)),
        "every key carries the configured prefix {prefix}: {after:?}"
    );
    let keys: Vec<&str> = after.iter().map(|(k, _)| k.as_str()).collect();
    assert!(
        keys.iter()
            .any(|k| k.ends_with(&format!(":{}", sha256_b64(&access_token)))),
        "the access token is stored under its SHA-256: {keys:?}"
    );
    for (what, secret) in [
        ("the code", code.as_str()),
        ("the access token", access_token.as_str()),
        ("the client's state", client_state),
        ("Slack's state", upstream_state.as_str()),
        ("the PKCE verifier", verifier.as_str()),
    ] {
        assert_nowhere(&after, what, secret);
    }
    for field in ["id_token", "refresh_token"] {
        if let Some(value) = body[field].as_str() {
            assert_nowhere(&after, field, value);
        }
    }
    for cookie in &cookies {
        assert_nowhere(&after, "a cookie of the bridge", cookie);
    }

    // The stored record still works: userinfo reads it back.
    let info = reqwest::Client::new()
        .get(bridge.url("/userinfo"))
        .bearer_auth(&access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(info.status(), 200);
}

/// The token endpoint answers a redemption during a freeze with 503 and
/// `Retry-After`, which promises that the retry can work. But the single-use
/// read (GETDEL) it sent is still queued at the frozen Redis and runs when
/// Redis thaws, so today the code is gone and the retry gets `invalid_grant`.
#[tokio::test(flavor = "multi_thread")]
async fn a_redemption_refused_during_a_freeze_succeeds_when_retried_after_the_thaw() {
    let redis = RedisServer::start();
    let bridge = bridge_on(&redis).await;
    let (verifier, challenge) = pkce();
    let mut params = auth_params("app-basic", "state-retry", "nonce-1");
    params.push(("code_challenge", &challenge));
    params.push(("code_challenge_method", "S256"));
    let back = Browser::new()
        .sign_in(&bridge, &params, "U0000000001")
        .await;
    let code = param(&back, "code").expect("a code");

    redis.pause();
    let r = within_bound(
        "POST /token",
        redeem(&bridge, ClientAuth::Basic, &code, Some(&verifier)),
    )
    .await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    redis.resume();
    wait_ready(&bridge, Duration::from_secs(5)).await;

    let r = redeem(&bridge, ClientAuth::Basic, &code, Some(&verifier)).await;
    let status = r.status();
    let body = r.text().await.unwrap_or_default();
    assert_eq!(status, 200, "the retry the 503 invited: {body}");
}
