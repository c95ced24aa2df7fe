//! Requests the bridge must refuse, and how: an error page where no redirect
//! is safe, an error redirect with state and iss otherwise, and RFC 6749 §5.2
//! JSON at the token endpoint.

use crate::common;

use common::bridge::{BASIC, Bridge, REDIRECT_URI, Setup};
use common::browser::{
    Browser, ClientAuth, auth_params, location, param, pkce, redeem, token_request,
};
use url::Url;

fn with(
    mut params: Vec<(&'static str, &'static str)>,
    key: &'static str,
    value: Option<&'static str>,
) -> Vec<(&'static str, &'static str)> {
    params.retain(|(k, _)| *k != key);
    if let Some(v) = value {
        params.push((key, v));
    }
    params
}

fn base() -> Vec<(&'static str, &'static str)> {
    auth_params("app-basic", "st", "n")
}

/// An error page: 4xx HTML, no Location anywhere.
async fn assert_error_page(r: reqwest::Response) -> String {
    assert!(r.status().is_client_error(), "{}", r.status());
    assert!(r.headers().get("location").is_none(), "must not redirect");
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    r.text().await.unwrap()
}

fn assert_error_redirect(r: &reqwest::Response, error: &str) -> Url {
    assert_eq!(r.status(), 302);
    let back = location(r);
    assert!(back.as_str().starts_with(REDIRECT_URI), "{back}");
    assert_eq!(param(&back, "error").as_deref(), Some(error), "{back}");
    assert_eq!(param(&back, "state").as_deref(), Some("st"));
    assert!(param(&back, "iss").is_some());
    assert!(param(&back, "code").is_none());
    back
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_client_gets_an_error_page() {
    let bridge = Bridge::start(Setup::default()).await;
    let r = Browser::new()
        .authorize(&bridge, &with(base(), "client_id", Some("nobody")))
        .await;
    assert_error_page(r).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redirect_uri_not_registered_exactly_gets_an_error_page() {
    let bridge = Bridge::start(Setup::default()).await;
    let browser = Browser::new();
    for near in [
        "http://127.0.0.1:9/cb/",
        "http://127.0.0.1:9/CB",
        "HTTP://127.0.0.1:9/cb",
        "http://127.0.0.1:90/cb",
        "http://127.0.0.1:9/cb?extra=1",
        "http://127.0.0.1:9/cb#frag",
        "http://127.0.0.1:9/cb/../cb",
        "https://evil.example/cb",
    ] {
        let r = browser
            .authorize(&bridge, &with(base(), "redirect_uri", Some(near)))
            .await;
        assert_error_page(r).await;
    }
    let r = browser
        .authorize(&bridge, &with(base(), "redirect_uri", None))
        .await;
    assert_error_page(r).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn markup_in_request_values_is_escaped_on_the_error_page() {
    let bridge = Bridge::start(Setup::default()).await;
    let r = Browser::new()
        .authorize(
            &bridge,
            &with(base(), "client_id", Some("<script>x</script>")),
        )
        .await;
    let html = assert_error_page(r).await;
    assert!(!html.contains("<script>"), "{html}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_authorization_requests_redirect_with_the_right_error() {
    let bridge = Bridge::start(Setup::default()).await;
    let browser = Browser::new();
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (with(base(), "response_type", None), "invalid_request"),
        (
            with(base(), "response_type", Some("token")),
            "unsupported_response_type",
        ),
        (
            with(base(), "response_type", Some("id_token")),
            "unsupported_response_type",
        ),
        (
            with(base(), "scope", Some("email profile")),
            "invalid_scope",
        ),
        (with(base(), "scope", None), "invalid_scope"),
        (with(base(), "prompt", Some("none")), "login_required"),
        (
            with(base(), "prompt", Some("none login")),
            "invalid_request",
        ),
        (with(base(), "prompt", Some("bogus")), "invalid_request"),
        (with(base(), "max_age", Some("-1")), "invalid_request"),
        (
            with(base(), "request", Some("eyJhbGciOiJub25lIn0.e30.")),
            "request_not_supported",
        ),
        (
            with(base(), "request_uri", Some("https://rp.example/req")),
            "request_uri_not_supported",
        ),
        (
            with(base(), "response_mode", Some("fragment")),
            "invalid_request",
        ),
        (
            with(base(), "code_challenge_method", Some("S256")),
            "invalid_request",
        ),
        (
            with(
                with(
                    base(),
                    "code_challenge",
                    Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
                ),
                "code_challenge_method",
                Some("plain"),
            ),
            "invalid_request",
        ),
        (
            with(
                base(),
                "code_challenge",
                Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
            ),
            "invalid_request",
        ),
        (
            with(
                with(base(), "code_challenge", Some("short")),
                "code_challenge_method",
                Some("S256"),
            ),
            "invalid_request",
        ),
    ];
    for (params, error) in cases {
        let r = browser.authorize(&bridge, &params).await;
        assert_error_redirect(&r, error);
    }
    let public = with(auth_params("app-public", "st", "n"), "x", None);
    assert_error_redirect(
        &browser.authorize(&bridge, &public).await,
        "invalid_request",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repeated_parameter_is_refused() {
    let bridge = Bridge::start(Setup::default()).await;
    let browser = Browser::new();
    let mut params = base();
    params.push(("scope", "openid"));
    assert_error_redirect(
        &browser.authorize(&bridge, &params).await,
        "invalid_request",
    );
    let mut params = base();
    params.push(("redirect_uri", "https://evil.example/cb"));
    assert_error_page(browser.authorize(&bridge, &params).await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_parameters_and_optional_ones_are_accepted() {
    let bridge = Bridge::start(Setup::default()).await;
    let mut params = base();
    params.extend([
        ("extra", "foobar"),
        ("display", "popup"),
        ("ui_locales", "fr-CA fr en"),
        ("claims_locales", "fr"),
        ("login_hint", "ada@example.com"),
        ("acr_values", "1 2"),
        ("max_age", "10000"),
        ("prompt", "login consent"),
    ]);
    let back = Browser::new()
        .sign_in(&bridge, &params, "U0000000001")
        .await;
    assert!(param(&back, "code").is_some(), "{back}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_or_replayed_code_is_invalid_grant_and_replay_revokes_the_first_token() {
    let bridge = Bridge::start(Setup::default()).await;
    let r = redeem(&bridge, ClientAuth::Basic, "made-up-code", None).await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_grant"
    );

    let back = Browser::new()
        .sign_in(&bridge, &base(), "U0000000001")
        .await;
    let code = param(&back, "code").unwrap();
    let first: serde_json::Value = redeem(&bridge, ClientAuth::Basic, &code, None)
        .await
        .json()
        .await
        .unwrap();
    let access = first["access_token"].as_str().unwrap();
    let userinfo = || {
        reqwest::Client::new()
            .get(bridge.url("/userinfo"))
            .bearer_auth(access)
            .send()
    };
    assert_eq!(userinfo().await.unwrap().status(), 200);

    let again = redeem(&bridge, ClientAuth::Basic, &code, None).await;
    assert_eq!(again.status(), 400);
    assert_eq!(again.headers()["cache-control"], "no-store");
    assert_eq!(
        again.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    let after = userinfo().await.unwrap();
    assert_eq!(
        after.status(),
        401,
        "the replay revoked the first access token"
    );
    assert!(
        after.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pkce_verifier_that_does_not_match_is_invalid_grant() {
    let bridge = Bridge::start(Setup::default()).await;
    let (_, challenge) = pkce();
    let (other_verifier, _) = pkce();
    let mut params = auth_params("app-public", "st", "n");
    params.push(("code_challenge", &challenge));
    params.push(("code_challenge_method", "S256"));
    let back = Browser::new()
        .sign_in(&bridge, &params, "U0000000001")
        .await;
    let code = param(&back, "code").unwrap();
    let r = redeem(&bridge, ClientAuth::Public, &code, Some(&other_verifier)).await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_grant"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_verifier_and_a_verifier_without_challenge_are_invalid_grant() {
    let bridge = Bridge::start(Setup::default()).await;
    let (verifier, challenge) = pkce();
    let mut params = base();
    params.push(("code_challenge", &challenge));
    params.push(("code_challenge_method", "S256"));
    let back = Browser::new()
        .sign_in(&bridge, &params, "U0000000001")
        .await;
    let r = redeem(
        &bridge,
        ClientAuth::Basic,
        &param(&back, "code").unwrap(),
        None,
    )
    .await;
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_grant"
    );

    let back = Browser::new()
        .sign_in(&bridge, &base(), "U0000000001")
        .await;
    let r = redeem(
        &bridge,
        ClientAuth::Basic,
        &param(&back, "code").unwrap(),
        Some(&verifier),
    )
    .await;
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_grant"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redirect_uri_that_differs_at_the_token_endpoint_is_invalid_grant() {
    let bridge = Bridge::start(Setup::default()).await;
    let back = Browser::new()
        .sign_in(&bridge, &base(), "U0000000001")
        .await;
    let code = param(&back, "code").unwrap();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", "http://127.0.0.1:9/cb/"),
    ];
    let r = token_request(&bridge, ClientAuth::Basic, &form).await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_grant"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_code_redeemed_by_another_client_is_invalid_grant() {
    let bridge = Bridge::start(Setup::default()).await;
    let back = Browser::new()
        .sign_in(&bridge, &base(), "U0000000001")
        .await;
    let r = redeem(
        &bridge,
        ClientAuth::Post,
        &param(&back, "code").unwrap(),
        None,
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_grant"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_client_authentication_is_401_invalid_client() {
    let bridge = Bridge::start(Setup::default()).await;
    let http = reqwest::Client::new();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", "x"),
        ("redirect_uri", REDIRECT_URI),
    ];
    let wrong_secret = http
        .post(bridge.url("/token"))
        .basic_auth(BASIC.0, Some("wrong"))
        .form(&form)
        .send()
        .await
        .unwrap();
    let wrong_method = http
        .post(bridge.url("/token"))
        .form(
            &[
                form.as_slice(),
                &[("client_id", BASIC.0), ("client_secret", BASIC.1)],
            ]
            .concat(),
        )
        .send()
        .await
        .unwrap();
    let unknown = http
        .post(bridge.url("/token"))
        .basic_auth("nobody", Some("x"))
        .form(&form)
        .send()
        .await
        .unwrap();
    for r in [wrong_secret, wrong_method, unknown] {
        assert_eq!(r.status(), 401);
        assert!(
            r.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Basic")
        );
        assert_eq!(
            r.json::<serde_json::Value>().await.unwrap()["error"],
            "invalid_client"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_token_requests_are_invalid_request_or_unsupported_grant_type() {
    let bridge = Bridge::start(Setup::default()).await;
    let r = token_request(
        &bridge,
        ClientAuth::Basic,
        &[("grant_type", "password"), ("username", "a")],
    )
    .await;
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"],
        "unsupported_grant_type"
    );
    let r = token_request(&bridge, ClientAuth::Basic, &[("code", "x")]).await;
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_request"
    );
    let r = token_request(
        &bridge,
        ClientAuth::Basic,
        &[
            ("grant_type", "authorization_code"),
            ("grant_type", "authorization_code"),
        ],
    )
    .await;
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_request"
    );
    let r = reqwest::Client::new()
        .post(bridge.url("/token"))
        .basic_auth(BASIC.0, Some(BASIC.1))
        .json(&serde_json::json!({"grant_type": "authorization_code"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_or_replayed_state_at_the_callback_gets_an_error_page() {
    let bridge = Bridge::start(Setup::default()).await;
    let browser = Browser::new();
    let slack = browser.to_slack(&bridge, &base()).await;
    let callback = browser.slack_decide(&slack, "U0000000001").await;
    let mut tampered = callback.clone();
    let pairs: Vec<(String, String)> = callback
        .query_pairs()
        .map(|(k, v)| {
            if k == "state" {
                (k.into_owned(), format!("{v}x"))
            } else {
                (k.into_owned(), v.into_owned())
            }
        })
        .collect();
    tampered.query_pairs_mut().clear().extend_pairs(pairs);
    assert_error_page(browser.get(tampered.as_str()).await).await;

    let ok = browser.get(callback.as_str()).await;
    assert_eq!(ok.status(), 302, "the real state still works once");
    assert_error_page(browser.get(callback.as_str()).await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_callback_in_another_browser_is_refused() {
    let bridge = Bridge::start(Setup::default()).await;
    let victim = Browser::new();
    let slack = victim.to_slack(&bridge, &base()).await;
    let callback = victim.slack_decide(&slack, "U0000000001").await;
    let attacker = Browser::new();
    assert_error_page(attacker.get(callback.as_str()).await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn userinfo_refuses_missing_and_invalid_tokens() {
    let bridge = Bridge::start(Setup::default()).await;
    let http = reqwest::Client::new();
    let none = http.get(bridge.url("/userinfo")).send().await.unwrap();
    assert_eq!(none.status(), 401);
    // RFC 6750 §3 and RFC 9449 §7.1: both schemes, no error without a token.
    assert_eq!(
        none.headers()["www-authenticate"],
        "Bearer, DPoP algs=\"RS256 PS256 ES256 EdDSA\""
    );
    let bad = http
        .get(bridge.url("/userinfo"))
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    assert!(
        bad.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"invalid_token\"")
    );
}
