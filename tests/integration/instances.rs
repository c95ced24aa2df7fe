//! Several bridge processes on one Redis: they share the issuer, the store
//! and the key directory, so a person or an application may reach either
//! one at any step (a load balancer without sticky sessions).

use crate::common;

use std::sync::Arc;

use common::bridge::{BASIC, Bridge, POST_LOGOUT_URI, REDIRECT_URI, REFRESH, Setup, Sibling};
use common::browser::{
    Browser, ClientAuth, auth_params, id_claims, location, param, sign_in_and_redeem,
    verify_id_token,
};
use common::redis_server::RedisServer;
use reqwest::cookie::CookieStore;

const ADA: &str = "U0000000001";

/// Bridge A and a second process B on one throwaway Redis.
async fn two_instances() -> (RedisServer, Bridge, Sibling) {
    let redis = RedisServer::start();
    let a = Bridge::start(Setup {
        redis_url: Some(redis.url.clone()),
        ..Default::default()
    })
    .await;
    let b = a.start_sibling(&[]).await;
    (redis, a, b)
}

/// POST {base}/token as the client `(id, secret)` with `client_secret_basic`.
async fn token_at(
    base: &str,
    (id, secret): (&str, &str),
    form: &[(&str, &str)],
) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}/token"))
        .basic_auth(id, Some(secret))
        .form(form)
        .send()
        .await
        .unwrap()
}

async fn refresh_at(base: &str, token: &str) -> reqwest::Response {
    token_at(
        base,
        REFRESH,
        &[("grant_type", "refresh_token"), ("refresh_token", token)],
    )
    .await
}

async fn json(r: reqwest::Response) -> serde_json::Value {
    let status = r.status();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

async fn grant_error(r: reqwest::Response) -> String {
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    body["error"].as_str().unwrap().to_string()
}

fn s<'a>(v: &'a serde_json::Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("no {key} in {v}"))
}

/// GET {base}/authorize?…prompt=none with exactly this Cookie header; the
/// error the bridge redirects with, or `None` when it issued a code.
async fn silent_authorize(base: &str, cookie: &str) -> Option<String> {
    let mut url = url::Url::parse(&format!("{base}/authorize")).unwrap();
    let mut params = auth_params(BASIC.0, "silent", "n");
    params.push(("prompt", "none"));
    url.query_pairs_mut().extend_pairs(&params);
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(url)
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "prompt=none always redirects");
    let back = location(&r);
    assert!(back.as_str().starts_with(REDIRECT_URI), "{back}");
    match param(&back, "error") {
        Some(e) => Some(e),
        None => {
            assert!(param(&back, "code").is_some(), "{back}");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sign_in_begun_on_one_instance_finishes_on_the_other() {
    let (_redis, a, b) = two_instances().await;
    let a_jwks: serde_json::Value = reqwest::get(a.url("/jwks"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let b_jwks: serde_json::Value = reqwest::get(b.url("/jwks"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(a_jwks, b_jwks, "one key directory, one key set");

    let browser = Browser::new();
    let slack = browser
        .to_slack(&a, &auth_params(BASIC.0, "state-on-a", "nonce-on-a"))
        .await;
    let callback = browser.slack_decide(&slack, ADA).await;
    assert!(
        callback.as_str().starts_with(&a.url("/callback")),
        "Slack returns to the issuer's callback: {callback}"
    );
    // The load balancer sends the person's return to the other instance.
    let on_b = callback.as_str().replacen(&a.base, &b.base, 1);
    let r = browser.get(&on_b).await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap_or_default());
    let back = location(&r);
    assert!(back.as_str().starts_with(REDIRECT_URI), "{back}");
    assert_eq!(param(&back, "state").as_deref(), Some("state-on-a"));
    assert_eq!(param(&back, "iss").as_deref(), Some(a.base.as_str()));
    let code = param(&back, "code").expect("a code");

    // The upstream state was consumed on B: the same return fails on A.
    let replay = browser.get(callback.as_str()).await;
    assert_ne!(
        replay.status(),
        302,
        "a login state is single use across instances"
    );

    let tokens = json(
        token_at(
            &b.base,
            BASIC,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
            ],
        )
        .await,
    )
    .await;
    let claims = verify_id_token(&a, s(&tokens, "id_token"), BASIC.0).await;
    assert_eq!(
        claims["iss"],
        a.base.as_str(),
        "both instances are one issuer"
    );
    assert_eq!(claims["nonce"], "nonce-on-a");
    assert_eq!(claims["https://slack.com/user_id"], ADA);

    // The access token B issued works on A.
    let userinfo = reqwest::Client::new()
        .get(a.url("/userinfo"))
        .bearer_auth(s(&tokens, "access_token"))
        .send()
        .await
        .unwrap();
    assert_eq!(userinfo.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refresh_token_issued_by_one_instance_is_rotated_by_the_other() {
    let (_redis, a, b) = two_instances().await;
    let owner = ClientAuth::Other(REFRESH.0, REFRESH.1);
    let first = sign_in_and_redeem(
        &a,
        &Browser::new(),
        owner,
        "openid email offline_access",
        ADA,
    )
    .await;

    let second = json(refresh_at(&b.base, s(&first, "refresh_token")).await).await;
    assert_ne!(second["refresh_token"], first["refresh_token"], "rotated");
    assert_eq!(id_claims(&second)["sub"], id_claims(&first)["sub"]);
    assert_eq!(id_claims(&second)["iss"], a.base.as_str());
    // And back: A rotates what B issued.
    let third = json(refresh_at(&a.base, s(&second, "refresh_token")).await).await;

    // The token A issued and B rotated is spent on A too: reuse there is
    // theft, and it ends the whole family on both instances.
    assert_eq!(
        grant_error(refresh_at(&a.base, s(&first, "refresh_token")).await).await,
        "invalid_grant"
    );
    assert_eq!(
        grant_error(refresh_at(&b.base, s(&third, "refresh_token")).await).await,
        "invalid_grant",
        "the family died on both instances"
    );
    let userinfo = reqwest::Client::new()
        .get(b.url("/userinfo"))
        .bearer_auth(s(&third, "access_token"))
        .send()
        .await
        .unwrap();
    assert_eq!(userinfo.status(), 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_logout_on_one_instance_ends_the_session_on_both() {
    let (_redis, a, b) = two_instances().await;
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let browser = Browser {
        http: reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    };
    let tokens = sign_in_and_redeem(&a, &browser, ClientAuth::Basic, "openid", ADA).await;
    // Cookies are per host, not per port: both instances see the same ones.
    let cookie = jar
        .cookies(&url::Url::parse(&a.base).unwrap())
        .expect("the browser holds cookies")
        .to_str()
        .unwrap()
        .to_string();
    assert!(cookie.contains("bridge_session="), "{cookie}");
    assert_eq!(
        silent_authorize(&b.base, &cookie).await,
        None,
        "B knows the session A opened"
    );

    let mut url = url::Url::parse(&a.url("/logout")).unwrap();
    url.query_pairs_mut()
        .append_pair("id_token_hint", s(&tokens, "id_token"))
        .append_pair("post_logout_redirect_uri", POST_LOGOUT_URI);
    let r = browser.get(url.as_str()).await;
    assert_eq!(r.status(), 302);
    assert!(location(&r).as_str().starts_with(POST_LOGOUT_URI));

    // The old cookie, replayed as is: the session record is gone for both,
    // not merely forgotten by this browser.
    for (name, base) in [("B", &b.base), ("A", &a.base)] {
        assert_eq!(
            silent_authorize(base, &cookie).await.as_deref(),
            Some("login_required"),
            "prompt=none on {name} after the logout on A"
        );
    }
}
