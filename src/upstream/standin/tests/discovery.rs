//! Discovery, the JWKS and the shape of Slack's JSON.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use super::*;

#[tokio::test]
async fn discovery_urls_derive_from_base_url() {
    let h = spawn().await;
    let c = client();
    let resp = c
        .get(format!("{}/.well-known/openid-configuration", h.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    let d: Value = resp.json().await.unwrap();
    let b = &h.base_url;
    assert!(b.starts_with("http://127.0.0.1:") && !b.ends_with('/'));
    assert_eq!(d["issuer"], b.as_str());
    assert_eq!(
        d["authorization_endpoint"],
        format!("{b}/openid/connect/authorize")
    );
    assert_eq!(d["token_endpoint"], format!("{b}/api/openid.connect.token"));
    assert_eq!(
        d["userinfo_endpoint"],
        format!("{b}/api/openid.connect.userInfo")
    );
    assert_eq!(d["jwks_uri"], format!("{b}/openid/connect/keys"));
    assert_eq!(d["response_modes_supported"], serde_json::json!(["query"]));
    assert_eq!(
        d["grant_types_supported"],
        serde_json::json!(["authorization_code"])
    );
    assert!(d.get("code_challenge_methods_supported").is_none());
    h.stop().await;
}

#[actix_web::test]
async fn exact_slack_mode_serves_slack_discovery_and_issuer() {
    let h = spawn_with(true).await;
    let c = client();
    let body = c
        .get(format!("{}/.well-known/openid-configuration", h.base_url))
        .send()
        .await
        .unwrap();
    let body = body.text().await.unwrap();
    assert!(body.starts_with(r#"{"issuer":"https://slack.com","authorization_endpoint":"https://slack.com/openid/connect/authorize""#));
    assert!(body.ends_with(
        r#""token_endpoint_auth_methods_supported":["client_secret_post","client_secret_basic"]}"#
    ));

    let code = code(&h, &c, &params(APP), "U0000000001").await;
    let t = exchange(&h, &c, APP, &code).await;
    let payload = t["id_token"]
        .as_str()
        .unwrap()
        .split('.')
        .nth(1)
        .unwrap()
        .to_owned();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!(claims["iss"], "https://slack.com");
    h.stop().await;
}

#[tokio::test]
async fn jwks_serves_one_rs256_key_without_use_and_counts_fetches() {
    let h = spawn().await;
    let c = client();
    let resp = c
        .get(format!("{}/openid/connect/keys", h.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    let body = resp.text().await.unwrap();
    assert!(
        body.starts_with(r#"{"keys":[{"e":"AQAB","n":""#),
        "Slack's field order: {body}"
    );
    let jwks: Value = serde_json::from_str(&body).unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let k = keys[0].as_object().unwrap();
    let mut names: Vec<&str> = k.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(names, ["alg", "e", "kid", "kty", "n"]);
    assert_eq!(k["alg"], "RS256");
    assert!(k["kid"].as_str().unwrap().starts_with("mock-"));
    assert_eq!(
        URL_SAFE_NO_PAD
            .decode(k["n"].as_str().unwrap())
            .unwrap()
            .len(),
        256,
        "RSA-2048"
    );
    assert_eq!(h.control.jwks_fetches(), 1);
    h.stop().await;
}

#[tokio::test]
async fn api_json_escapes_slashes_like_slack() {
    let h = spawn().await;
    let c = client();
    let t = sign_in(&h, &c, "U0000000001").await;
    let raw = c
        .post(format!("{}/api/openid.connect.userInfo", h.base_url))
        .bearer_auth(t["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        raw.contains(r#""https:\/\/slack.com\/user_id":"U0000000001""#),
        "{raw}"
    );
    h.stop().await;
}

#[tokio::test]
async fn rotate_key_serves_only_the_new_key() {
    let h = spawn().await;
    let c = client();
    let old = h.control.current_kid();
    h.control.rotate_key();
    let new = h.control.current_kid();
    assert_ne!(old, new);
    let jwks: Value = c
        .get(format!("{}/openid/connect/keys", h.base_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    assert_eq!(jwks["keys"][0]["kid"], new.as_str());
    let t = sign_in(&h, &c, "U0000000001").await;
    verify(&h, &c, t["id_token"].as_str().unwrap(), APP)
        .await
        .expect("signed with the new key");
    h.stop().await;
}
