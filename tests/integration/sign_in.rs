//! Complete sign-ins through the real server and the Slack stand-in, for each
//! client type, on the memory store and on Redis.

use crate::common;

use common::bridge::{Bridge, Setup};
use common::browser::{
    Browser, ClientAuth, auth_params, jwt_claims, param, pkce, redeem, verify_id_token,
};
use common::redis_server::RedisServer;

/// Signs Ada in through `auth`'s client and checks every artefact.
async fn full_flow(bridge: &Bridge, auth: ClientAuth) {
    let browser = Browser::new();
    let (verifier, challenge) = pkce();
    let mut params = auth_params(auth.client_id(), "state-1", "nonce-1");
    params.push(("code_challenge", &challenge));
    params.push(("code_challenge_method", "S256"));
    let back = browser.sign_in(bridge, &params, "U0000000001").await;
    assert_eq!(param(&back, "state").as_deref(), Some("state-1"));
    assert_eq!(
        param(&back, "iss").as_deref(),
        Some(bridge.base.as_str()),
        "RFC 9207 iss"
    );
    let code = param(&back, "code").expect("a code");

    let r = redeem(bridge, auth, &code, Some(&verifier)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "openid email profile");
    assert!(body["expires_in"].as_u64().unwrap() > 0);
    let access_token = body["access_token"].as_str().unwrap();
    let id_token = body["id_token"].as_str().unwrap();

    let claims = verify_id_token(bridge, id_token, auth.client_id()).await;
    assert_eq!(claims["nonce"], "nonce-1");
    assert_eq!(claims["azp"], auth.client_id());
    assert_eq!(claims["sub"], "T0000000001:U0000000001");
    assert_eq!(claims["email"], "ada@example.com");
    assert_eq!(claims["email_verified"], true);
    assert_eq!(claims["name"], "Ada Lovelace");
    assert_eq!(claims["https://slack.com/team_id"], "T0000000001");
    assert_eq!(claims["https://slack.com/user_id"], "U0000000001");
    assert_eq!(claims["https://slack.com/team_name"], "Example Workspace");
    assert!(claims["auth_time"].as_i64().is_some());
    let at_hash = {
        use base64::Engine;
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, access_token.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&d.as_ref()[..16])
    };
    assert_eq!(claims["at_hash"], at_hash.as_str());

    let http = reqwest::Client::new();
    let info: serde_json::Value = http
        .get(bridge.url("/userinfo"))
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["sub"], claims["sub"]);
    assert_eq!(info["email"], "ada@example.com");
    let by_body = http
        .post(bridge.url("/userinfo"))
        .form(&[("access_token", access_token)])
        .send()
        .await
        .unwrap();
    assert_eq!(by_body.status(), 200, "token in a POST body");
    // Media types are case-insensitive (RFC 9110 §8.3.1).
    let by_body = http
        .post(bridge.url("/userinfo"))
        .header(
            "content-type",
            "Application/X-WWW-Form-Urlencoded; charset=UTF-8",
        )
        .body(format!("access_token={access_token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        by_body.status(),
        200,
        "token in a POST body, type in capitals"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn each_client_type_signs_in_on_the_memory_store() {
    let bridge = Bridge::start(Setup::default()).await;
    for auth in [ClientAuth::Basic, ClientAuth::Post, ClientAuth::Public] {
        full_flow(&bridge, auth).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_client_type_signs_in_on_redis() {
    let redis = RedisServer::start();
    let bridge = Bridge::start(Setup {
        redis_url: Some(redis.url.clone()),
        ..Setup::default()
    })
    .await;
    for auth in [ClientAuth::Basic, ClientAuth::Post, ClientAuth::Public] {
        full_flow(&bridge, auth).await;
    }
    let ready = reqwest::get(bridge.url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_confidential_client_may_skip_pkce() {
    let bridge = Bridge::start(Setup::default()).await;
    let back = Browser::new()
        .sign_in(&bridge, &auth_params("app-basic", "s", "n"), "U0000000001")
        .await;
    let r = redeem(
        &bridge,
        ClientAuth::Basic,
        &param(&back, "code").unwrap(),
        None,
    )
    .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sign_in_without_nonce_succeeds_and_the_id_token_has_none() {
    let bridge = Bridge::start(Setup::default()).await;
    let params: Vec<_> = auth_params("app-basic", "s", "n")
        .into_iter()
        .filter(|(k, _)| *k != "nonce")
        .collect();
    let back = Browser::new()
        .sign_in(&bridge, &params, "U0000000001")
        .await;
    let body: serde_json::Value = redeem(
        &bridge,
        ClientAuth::Basic,
        &param(&back, "code").unwrap(),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    let claims = jwt_claims(body["id_token"].as_str().unwrap());
    assert!(
        claims.get("nonce").is_none(),
        "no nonce claim when none was sent: {claims}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn scopes_filter_the_claims() {
    let bridge = Bridge::start(Setup::default()).await;
    let mut params = auth_params("app-basic", "s", "n");
    params.retain(|(k, _)| *k != "scope");
    params.push(("scope", "openid"));
    let back = Browser::new()
        .sign_in(&bridge, &params, "U0000000001")
        .await;
    let body: serde_json::Value = redeem(
        &bridge,
        ClientAuth::Basic,
        &param(&back, "code").unwrap(),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(body["scope"], "openid");
    let claims = jwt_claims(body["id_token"].as_str().unwrap());
    assert!(
        claims.get("email").is_none() && claims.get("name").is_none(),
        "{claims}"
    );
    let info: serde_json::Value = reqwest::Client::new()
        .get(bridge.url("/userinfo"))
        .bearer_auth(body["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        info.get("email").is_none() && info.get("name").is_none(),
        "{info}"
    );
    assert_eq!(info["sub"], claims["sub"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_user_id_in_two_workspaces_has_two_subjects_and_grid_users_are_keyed_by_enterprise()
 {
    let bridge = Bridge::start(Setup::default()).await;
    let mut subs = Vec::new();
    for user in ["U0000000001", "U0000000002", "W0000000003"] {
        let back = Browser::new()
            .sign_in(&bridge, &auth_params("app-basic", "s", "n"), user)
            .await;
        let body: serde_json::Value = redeem(
            &bridge,
            ClientAuth::Basic,
            &param(&back, "code").unwrap(),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
        subs.push(jwt_claims(body["id_token"].as_str().unwrap()));
    }
    assert_eq!(subs[1]["sub"], "T0000000002:U0000000002");
    assert_eq!(subs[2]["sub"], "E0000000001:W0000000003");
    assert_eq!(subs[2]["https://slack.com/enterprise_id"], "E0000000001");
}

#[tokio::test(flavor = "multi_thread")]
async fn authorization_by_post_works() {
    let bridge = Bridge::start(Setup::default()).await;
    let browser = Browser::new();
    let r = browser
        .http
        .post(bridge.url("/authorize"))
        .form(&auth_params("app-basic", "s", "n"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let slack = common::browser::location(&r);
    let callback = browser.slack_decide(&slack, "U0000000001").await;
    let back = common::browser::location(&browser.get(callback.as_str()).await);
    assert!(param(&back, "code").is_some(), "{back}");
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_pkce_is_sent_to_slack_when_enabled() {
    let bridge = Bridge::start(Setup {
        upstream_pkce: true,
        ..Setup::default()
    })
    .await;
    let browser = Browser::new();
    let slack = browser
        .to_slack(&bridge, &auth_params("app-basic", "s", "n"))
        .await;
    assert_eq!(
        param(&slack, "code_challenge_method").as_deref(),
        Some("S256")
    );
    let callback = browser.slack_decide(&slack, "U0000000001").await;
    let back = common::browser::location(&browser.get(callback.as_str()).await);
    assert!(param(&back, "code").is_some(), "{back}");
    assert!(
        bridge
            .standin
            .control
            .token_requests()
            .iter()
            .any(|r| r.code_verifier_present)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn discovery_and_jwks_are_cacheable_and_complete() {
    let bridge = Bridge::start(Setup::default()).await;
    let r = reqwest::get(bridge.url("/.well-known/openid-configuration"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    assert!(
        r.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age")
    );
    let doc: serde_json::Value = r.json().await.unwrap();
    assert_eq!(doc["issuer"], bridge.base.as_str());
    assert_eq!(doc["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(
        doc["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
    for key in [
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "jwks_uri",
        "scopes_supported",
        "grant_types_supported",
        "subject_types_supported",
        "id_token_signing_alg_values_supported",
        "token_endpoint_auth_methods_supported",
        "claims_supported",
    ] {
        assert!(doc.get(key).is_some(), "discovery lacks {key}");
    }
    let again = reqwest::Client::new()
        .get(bridge.url("/.well-known/openid-configuration"))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);

    let jwks: serde_json::Value = reqwest::get(bridge.url("/jwks"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert!(keys.len() >= 2, "the next key is published before it signs");
    for k in keys {
        assert_eq!(k["use"], "sig");
        assert_eq!(k["alg"], "RS256");
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(k.clone()).unwrap();
        assert_eq!(
            k["kid"],
            jwk.thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)
                .unwrap()
                .as_str(),
            "RFC 7638 kid"
        );
    }
}

/// Slack's userInfo (Tier 3) is asked at sign-in only when Slack's ID token
/// lacks a claim the configured scopes give: Ada's token carries them all;
/// Alan has no email address, so the bridge asks userInfo for it.
#[tokio::test(flavor = "multi_thread")]
async fn userinfo_is_called_at_sign_in_only_when_the_id_token_lacks_a_claim() {
    let bridge = Bridge::start(Setup::default()).await;
    let control = &bridge.standin.control;
    let userinfo = || control.calls("openid.connect.userInfo");
    let tokens = common::browser::sign_in_and_redeem(
        &bridge,
        &Browser::new(),
        ClientAuth::Basic,
        "openid email profile",
        "U0000000001",
    )
    .await;
    assert_eq!(userinfo(), 0, "the ID token carried every claim");
    let claims = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(claims["email"], "ada@example.com");
    assert_eq!(claims["name"], "Ada Lovelace");
    assert_eq!(claims["https://slack.com/team_name"], "Example Workspace");

    common::browser::sign_in_and_redeem(
        &bridge,
        &Browser::new(),
        ClientAuth::Basic,
        "openid email",
        "U0000000004",
    )
    .await;
    assert_eq!(
        userinfo(),
        1,
        "no email in the ID token: userInfo was asked"
    );
}
