//! Refusals: Slack's error pages and its HTTP-200 `ok:false` answers.

use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::upstream::standin::StandinError;

fn err(code: &str) -> Value {
    json!({"ok": false, "error": code})
}

fn good_form(code: &str) -> Vec<(&'static str, String)> {
    vec![
        ("grant_type", "authorization_code".into()),
        ("client_id", APP.into()),
        ("client_secret", SECRET.into()),
        ("code", code.into()),
        ("redirect_uri", REDIRECT.into()),
    ]
}

async fn post_token(
    h: &StandinHandle,
    c: &reqwest::Client,
    form: &[(&str, String)],
) -> (reqwest::StatusCode, Value) {
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    token(h, c, &pairs).await
}

fn replace(
    form: &[(&'static str, String)],
    key: &'static str,
    value: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut f: Vec<_> = form.iter().filter(|(k, _)| *k != key).cloned().collect();
    if let Some(v) = value {
        f.push((key, v.into()));
    }
    f
}

#[tokio::test]
async fn replayed_code_is_invalid_code() {
    let h = spawn().await;
    let c = client();
    let code = code(&h, &c, &params(APP), "U0000000001").await;
    assert_eq!(exchange(&h, &c, APP, &code).await["ok"], true);
    let (status, again) = post_token(&h, &c, &good_form(&code)).await;
    assert_eq!(status, 200);
    assert_eq!(again, err("invalid_code"));
    h.stop().await;
}

#[tokio::test]
async fn expired_unknown_missing_and_foreign_codes_are_invalid_code() {
    let h = spawn().await;
    let c = client();
    let form = good_form(&code(&h, &c, &params(APP), "U0000000001").await);
    h.control.store.age_codes(Duration::from_secs(601));
    assert_eq!(post_token(&h, &c, &form).await.1, err("invalid_code"));

    let unknown = replace(&form, "code", Some("1.2.deadbeef"));
    assert_eq!(post_token(&h, &c, &unknown).await.1, err("invalid_code"));
    assert_eq!(
        post_token(&h, &c, &replace(&form, "code", None)).await.1,
        err("invalid_code")
    );

    // A code issued to ROT, presented by APP.
    let foreign = replace(
        &form,
        "code",
        Some(&code(&h, &c, &params(ROT), "U0000000001").await),
    );
    assert_eq!(post_token(&h, &c, &foreign).await.1, err("invalid_code"));
    h.stop().await;
}

#[tokio::test]
async fn wrong_secret_is_bad_client_secret_with_http_200() {
    let h = spawn().await;
    let c = client();
    let form = good_form(&code(&h, &c, &params(APP), "U0000000001").await);
    let (status, body) = post_token(&h, &c, &replace(&form, "client_secret", Some("nope"))).await;
    assert_eq!(status, 200);
    assert_eq!(body, err("bad_client_secret"));
    assert_eq!(
        post_token(&h, &c, &replace(&form, "client_secret", None))
            .await
            .1,
        err("bad_client_secret")
    );
    // The code was not spent by the failed attempts.
    assert_eq!(post_token(&h, &c, &form).await.1["ok"], true);
    h.stop().await;
}

#[tokio::test]
async fn token_errors_follow_slack_check_order() {
    let h = spawn().await;
    let c = client();
    let url = format!("{}/api/openid.connect.token", h.base_url);
    let plain = c
        .post(&url)
        .header("Content-Type", "text/xml")
        .body("<x/>")
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 200);
    assert_eq!(
        plain.json::<Value>().await.unwrap(),
        err("invalid_post_type")
    );

    let form = good_form(&code(&h, &c, &params(APP), "U0000000001").await);
    let bad_everything = replace(
        &replace(&form, "grant_type", Some("password")),
        "client_id",
        Some("x"),
    );
    assert_eq!(
        post_token(&h, &c, &bad_everything).await.1,
        err("invalid_grant_type")
    );
    let bad_client = replace(
        &replace(&form, "client_id", Some("9.9")),
        "client_secret",
        Some("x"),
    );
    assert_eq!(
        post_token(&h, &c, &bad_client).await.1,
        err("invalid_client_id")
    );
    assert_eq!(
        post_token(&h, &c, &replace(&form, "client_id", None))
            .await
            .1,
        err("invalid_client_id")
    );
    let other_redirect = replace(&form, "redirect_uri", Some("http://127.0.0.1:9/callback/x"));
    assert_eq!(
        post_token(&h, &c, &other_redirect).await.1,
        err("bad_redirect_uri")
    );
    // The code is single-use even when the exchange failed after it was accepted.
    assert_eq!(post_token(&h, &c, &form).await.1, err("invalid_code"));

    let form = good_form(&code(&h, &c, &params(APP), "U0000000001").await);
    assert_eq!(
        post_token(&h, &c, &replace(&form, "redirect_uri", None))
            .await
            .1,
        err("bad_redirect_uri")
    );

    let refresh = [
        ("grant_type", "refresh_token".to_owned()),
        ("client_id", APP.into()),
        ("client_secret", SECRET.into()),
    ];
    assert_eq!(
        post_token(&h, &c, &refresh).await.1,
        err("invalid_refresh_token")
    );
    h.stop().await;
}

#[tokio::test]
async fn refuses_non_loopback_listen_address() {
    for addr in ["0.0.0.0:0", "192.0.2.1:0", "[::]:0"] {
        let result = start(StandinOptions {
            listen: addr.parse().unwrap(),
            apps: apps(),
            users: StandinUser::fixtures(),
            exact_slack_mode: false,
            groups: StandinGroup::fixtures(),
            bot_token: Some(DEV_BOT_TOKEN.into()),
            events: None,
        })
        .await;
        assert!(
            matches!(result, Err(StandinError::NotLoopback(_))),
            "{addr}"
        );
    }
}

#[tokio::test]
async fn hostile_redirect_uri_is_html_escaped_on_error_page() {
    let h = spawn().await;
    let c = client();
    let hostile = "http://evil.example/\"><script>alert('x')</script>&";
    let resp = c
        .get(authorize_url(
            &h,
            &with(params(APP), "redirect_uri", Some(hostile)),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.headers().get("location").is_none());
    assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
    let html = resp.text().await.unwrap();
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains(
        "redirect_uri did not match any configured URIs. Passed URI: \
         http://evil.example/&quot;&gt;&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&amp;"
    ));
    // The picker escapes echoed parameters too.
    let p = with(
        params(APP),
        "state",
        Some("\"><img src=x onerror=alert(1)>"),
    );
    let page = c
        .get(authorize_url(&h, &p))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains("<img"));
    assert!(page.contains("value=\"&quot;&gt;&lt;img src=x onerror=alert(1)&gt;\""));
    h.stop().await;
}

#[tokio::test]
async fn authorize_refuses_unknown_client_bad_scope_and_response_type() {
    let h = spawn().await;
    let c = client();
    let cases = [
        (
            with(params(APP), "client_id", Some("0.0")),
            "invalid_client_id",
        ),
        (with(params(APP), "client_id", None), "invalid_client_id"),
        (
            with(
                params(APP),
                "redirect_uri",
                Some("http://127.0.0.1:9/callbackx"),
            ),
            "did not match any configured URIs",
        ),
        (
            with(params(APP), "scope", Some("profile email")),
            "invalid_scope",
        ),
        (
            with(params(APP), "scope", Some("openid,users:read")),
            "invalid_scope",
        ),
        (with(params(APP), "scope", None), "invalid_scope"),
        (
            with(params(APP), "response_type", Some("token")),
            "unsupported_response_type",
        ),
        (
            with(params(APP), "code_challenge", Some("abc")),
            "code_challenge_method",
        ),
    ];
    for (p, text) in cases {
        let resp = c.get(authorize_url(&h, &p)).send().await.unwrap();
        assert_eq!(resp.status(), 400, "{text}");
        assert!(resp.text().await.unwrap().contains(text), "{text}");
    }
    // Commas separate scopes too; team, prompt and login_hint are ignored.
    let p = with(
        with(params(APP), "scope", Some("openid,email")),
        "prompt",
        Some("consent"),
    );
    let p = with(
        with(p, "login_hint", Some("ada")),
        "team",
        Some("T0000000002"),
    );
    assert!(query(&choose(&h, &c, &p, "U0000000001").await, "code").is_some());
    h.stop().await;
}

#[tokio::test]
async fn decide_rechecks_and_refuses_unknown_users_and_foreign_teams() {
    let h = spawn().await;
    let c = client();
    let decide = format!("{}/openid/connect/authorize/decide", h.base_url);
    let post = |form: Vec<(String, String)>| c.post(&decide).form(&form).send();

    let team = with(params(SOLO), "team", Some("T0000000001"));
    let resp = post(with(team.clone(), "user", Some("U0000000002")))
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("invalid_team_for_non_distributed_app")
    );
    // The same team, or no team given, is fine.
    assert_eq!(
        post(with(team, "user", Some("U0000000004")))
            .await
            .unwrap()
            .status(),
        302
    );
    assert_eq!(
        post(with(params(SOLO), "user", Some("U0000000002")))
            .await
            .unwrap()
            .status(),
        302
    );

    assert_eq!(
        post(with(params(APP), "user", Some("U9999999999")))
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        post(with(params(APP), "user", None))
            .await
            .unwrap()
            .status(),
        400
    );
    let tampered = with(
        with(
            params(APP),
            "redirect_uri",
            Some("http://127.0.0.1:9/elsewhere"),
        ),
        "user",
        Some("U0000000001"),
    );
    let resp = post(tampered).await.unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.headers().get("location").is_none());
    h.stop().await;
}

#[tokio::test]
async fn userinfo_refuses_query_missing_unknown_and_expired_tokens() {
    let h = spawn().await;
    let c = client();
    let t = exchange(
        &h,
        &c,
        ROT,
        &code(&h, &c, &params(ROT), "U0000000001").await,
    )
    .await;
    let access = t["access_token"].as_str().unwrap();
    let url = format!("{}/api/openid.connect.userInfo", h.base_url);

    let in_query = c.get(format!("{url}?token={access}")).send().await.unwrap();
    assert_eq!(in_query.json::<Value>().await.unwrap(), err("invalid_auth"));
    let none = c.post(&url).send().await.unwrap();
    assert_eq!(none.status(), 200);
    assert_eq!(none.json::<Value>().await.unwrap(), err("not_authed"));
    assert_eq!(
        userinfo(&h, &c, "xoxp-1-2-3-unknown").await,
        err("invalid_auth")
    );

    // A token field in a form body works; the header wins over it.
    let body = c
        .post(&url)
        .form(&[("token", access)])
        .send()
        .await
        .unwrap();
    assert_eq!(body.json::<Value>().await.unwrap()["ok"], true);
    let both = c
        .post(&url)
        .bearer_auth("xoxp-bogus")
        .form(&[("token", access)])
        .send()
        .await
        .unwrap();
    assert_eq!(both.json::<Value>().await.unwrap(), err("invalid_auth"));

    h.control.expire_access_tokens();
    assert_eq!(userinfo(&h, &c, access).await, err("token_expired"));
    h.stop().await;
}
