//! The fault switches, and that they do not disturb the flow once cleared.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::*;
use crate::upstream::standin::{IdTokenFault, TokenFault, UserinfoFault};

async fn raw_exchange(h: &StandinHandle, c: &reqwest::Client, code: &str) -> reqwest::Response {
    c.post(format!("{}/api/openid.connect.token", h.base_url))
        .form(&[
            ("client_id", APP),
            ("client_secret", SECRET),
            ("code", code),
            ("redirect_uri", REDIRECT),
        ])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn token_fault_rate_limited_answers_429_with_retry_after_and_keeps_the_code() {
    let h = spawn().await;
    let c = client();
    let code = code(&h, &c, &params(APP), "U0000000001").await;
    h.control.set_token_fault(Some(TokenFault::RateLimited {
        retry_after_secs: 7,
    }));
    for _ in 0..2 {
        let resp = raw_exchange(&h, &c, &code).await;
        assert_eq!(resp.status(), 429);
        assert_eq!(resp.headers()["retry-after"], "7");
        assert_eq!(
            resp.headers()["content-type"],
            "application/json; charset=utf-8"
        );
        assert_eq!(
            resp.json::<Value>().await.unwrap(),
            json!({"ok": false, "error": "ratelimited"})
        );
    }
    h.control.set_token_fault(None);
    assert_eq!(
        raw_exchange(&h, &c, &code)
            .await
            .json::<Value>()
            .await
            .unwrap()["ok"],
        true
    );
    assert_eq!(
        h.control.token_requests().len(),
        3,
        "faulted requests are recorded too"
    );
    h.stop().await;
}

#[tokio::test]
async fn token_fault_internal_error_answers_200_ok_false() {
    let h = spawn().await;
    let c = client();
    let code = code(&h, &c, &params(APP), "U0000000001").await;
    h.control.set_token_fault(Some(TokenFault::InternalError));
    let resp = raw_exchange(&h, &c, &code).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"ok": false, "error": "internal_error"})
    );
    h.stop().await;
}

#[tokio::test]
async fn token_fault_non_json_404_answers_html() {
    let h = spawn().await;
    let c = client();
    let code = code(&h, &c, &params(APP), "U0000000001").await;
    h.control.set_token_fault(Some(TokenFault::NonJson404));
    let resp = raw_exchange(&h, &c, &code).await;
    assert_eq!(resp.status(), 404);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let body = resp.text().await.unwrap();
    assert!(body.starts_with("<!DOCTYPE html>"));
    assert!(serde_json::from_str::<Value>(&body).is_err());
    h.stop().await;
}

#[tokio::test]
async fn token_fault_error_code_answers_that_code() {
    let h = spawn().await;
    let c = client();
    let code = code(&h, &c, &params(APP), "U0000000001").await;
    h.control
        .set_token_fault(Some(TokenFault::ErrorCode("invalid_code".into())));
    let resp = raw_exchange(&h, &c, &code).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"ok": false, "error": "invalid_code"})
    );
    h.stop().await;
}

#[tokio::test]
async fn token_fault_slow_delays_then_succeeds() {
    let h = spawn().await;
    let c = client();
    let code = code(&h, &c, &params(APP), "U0000000001").await;
    h.control
        .set_token_fault(Some(TokenFault::Slow(Duration::from_millis(400))));
    let started = Instant::now();
    let t: Value = raw_exchange(&h, &c, &code).await.json().await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(t["ok"], true);
    h.stop().await;
}

#[tokio::test]
async fn userinfo_faults_answer_html_404_error_code_or_slowly() {
    let h = spawn().await;
    let c = client();
    let t = sign_in(&h, &c, "U0000000001").await;
    let access = t["access_token"].as_str().unwrap();
    let get = || {
        c.get(format!("{}/api/openid.connect.userInfo", h.base_url))
            .bearer_auth(access)
            .send()
    };

    h.control
        .set_userinfo_fault(Some(UserinfoFault::NonJson404));
    let resp = get().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );

    h.control
        .set_userinfo_fault(Some(UserinfoFault::ErrorCode("account_inactive".into())));
    let resp = get().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"ok": false, "error": "account_inactive"})
    );

    h.control
        .set_userinfo_fault(Some(UserinfoFault::Slow(Duration::from_millis(300))));
    let started = Instant::now();
    assert_eq!(
        get().await.unwrap().json::<Value>().await.unwrap()["ok"],
        true
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
    h.stop().await;
}

/// Gets an ID token while `fault` is set, and its unverified claims.
async fn faulty_token(
    h: &StandinHandle,
    c: &reqwest::Client,
    fault: IdTokenFault,
) -> (String, Value, String) {
    h.control.set_id_token_fault(Some(fault));
    let t = exchange(h, c, APP, &code(h, c, &params(APP), "U0000000001").await).await;
    h.control.set_id_token_fault(None);
    let id_token = t["id_token"].as_str().unwrap().to_owned();
    use base64::Engine;
    let payload = id_token.split('.').nth(1).unwrap();
    let claims = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    (
        id_token,
        claims,
        t["access_token"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn id_token_faults_break_exactly_one_property() {
    use jsonwebtoken::errors::ErrorKind;
    let h = spawn().await;
    let c = client();
    let kid = h.control.current_kid();

    let (tok, _, _) = faulty_token(&h, &c, IdTokenFault::BadSignature).await;
    assert_eq!(
        jsonwebtoken::decode_header(&tok).unwrap().kid.as_deref(),
        Some(kid.as_str())
    );
    assert!(matches!(
        verify(&h, &c, &tok, APP).await.unwrap_err().kind(),
        ErrorKind::InvalidSignature
    ));

    let (tok, _, _) = faulty_token(&h, &c, IdTokenFault::WrongAudience).await;
    assert!(matches!(
        verify(&h, &c, &tok, APP).await.unwrap_err().kind(),
        ErrorKind::InvalidAudience
    ));

    let (tok, claims, _) = faulty_token(&h, &c, IdTokenFault::Expired).await;
    assert!(matches!(
        verify(&h, &c, &tok, APP).await.unwrap_err().kind(),
        ErrorKind::ExpiredSignature
    ));
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        300
    );

    let (tok, _, _) = faulty_token(&h, &c, IdTokenFault::WrongIssuer).await;
    assert!(matches!(
        verify(&h, &c, &tok, APP).await.unwrap_err().kind(),
        ErrorKind::InvalidIssuer
    ));

    let (tok, claims, _) = faulty_token(&h, &c, IdTokenFault::WrongNonce).await;
    assert!(verify(&h, &c, &tok, APP).await.is_ok());
    assert!(
        claims["nonce"]
            .as_str()
            .is_some_and(|n| !n.is_empty() && n != "n-0S6_WzA2Mj")
    );

    let (tok, claims, _) = faulty_token(&h, &c, IdTokenFault::MissingAtHash).await;
    assert!(verify(&h, &c, &tok, APP).await.is_ok());
    assert!(claims.get("at_hash").is_none());

    // Cleared faults give a clean token again.
    let t = sign_in(&h, &c, "U0000000001").await;
    assert!(
        verify(&h, &c, t["id_token"].as_str().unwrap(), APP)
            .await
            .is_ok()
    );
    h.stop().await;
}

#[tokio::test]
async fn unknown_kid_is_published_at_the_next_jwks_fetch() {
    let h = spawn().await;
    let c = client();
    let jwks_url = format!("{}/openid/connect/keys", h.base_url);
    let kids = |v: Value| -> Vec<String> {
        v["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    };
    let before = kids(c.get(&jwks_url).send().await.unwrap().json().await.unwrap());
    let (tok, _, _) = faulty_token(&h, &c, IdTokenFault::UnknownKid).await;
    let kid = jsonwebtoken::decode_header(&tok).unwrap().kid.unwrap();
    assert!(!before.contains(&kid));
    assert_eq!(h.control.jwks_fetches(), 1);

    // The next fetch (inside verify) publishes the new key, which verifies the token.
    verify(&h, &c, &tok, APP)
        .await
        .expect("the refetched JWKS has the new key");
    assert_eq!(h.control.jwks_fetches(), 2);
    let after = kids(c.get(&jwks_url).send().await.unwrap().json().await.unwrap());
    assert_eq!(after, vec![kid.clone()]);
    // The new key is now the signing key.
    assert_eq!(h.control.current_kid(), kid);
    h.stop().await;
}
