//! The code flow through the user picker, and the claims it yields.

use serde_json::Value;

use super::*;
use crate::upstream::standin::{ClientAuthMethod, id_token::at_hash};

#[tokio::test]
async fn full_code_flow_yields_verifiable_id_token_and_userinfo() {
    let h = spawn().await;
    let c = client();
    let loc = choose(&h, &c, &params(APP), "U0000000001").await;
    assert!(loc.as_str().starts_with(REDIRECT));
    assert_eq!(query(&loc, "state").as_deref(), Some("st-123"));
    let code = query(&loc, "code").unwrap();
    let parts: Vec<&str> = code.split('.').collect();
    assert_eq!(parts.len(), 3);
    assert!(
        parts[0]
            .chars()
            .chain(parts[1].chars())
            .all(|c| c.is_ascii_digit())
    );
    assert!(parts[2].len() == 64 && parts[2].chars().all(|c| c.is_ascii_hexdigit()));

    let resp = c
        .post(format!("{}/api/openid.connect.token", h.base_url))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", APP),
            ("client_secret", SECRET),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ])
        .send()
        .await
        .unwrap();
    let raw = resp.text().await.unwrap();
    assert!(
        raw.starts_with(r#"{"ok":true,"access_token":"xoxp-"#),
        "{raw}"
    );
    let t: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(t["token_type"], "Bearer");
    assert!(t.get("refresh_token").is_none() && t.get("expires_in").is_none());
    let access = t["access_token"].as_str().unwrap();

    let claims = verify(&h, &c, t["id_token"].as_str().unwrap(), APP)
        .await
        .expect("ID token verifies");
    assert_eq!(claims["sub"], "U0000000001");
    assert_eq!(claims["nonce"], "n-0S6_WzA2Mj");
    assert_eq!(claims["at_hash"], at_hash(access));
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        300
    );
    assert_eq!(claims["auth_time"], claims["iat"]);
    assert_eq!(claims["https://slack.com/team_id"], "T0000000001");
    assert_eq!(claims["https://slack.com/user_id"], "U0000000001");
    assert!(claims.get("https://slack.com/enterprise_id").is_none());
    assert_eq!(claims["email"], "ada@example.com");
    assert_eq!(claims["email_verified"], true);
    assert_eq!(claims["name"], "Ada Lovelace");
    assert_eq!(claims["https://slack.com/team_domain"], "example-workspace");
    let header = jsonwebtoken::decode_header(t["id_token"].as_str().unwrap()).unwrap();
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    assert_eq!(header.kid, Some(h.control.current_kid()));

    let u = userinfo(&h, &c, access).await;
    assert_eq!(u["ok"], true);
    assert_eq!(u["sub"], "U0000000001");
    assert_eq!(u["https://slack.com/user_id"], "U0000000001");
    assert_eq!(u["email"], "ada@example.com");
    assert_eq!(u["given_name"], "Ada");
    assert_eq!(u["locale"], "en-US");
    assert!(
        u["https://slack.com/user_image_192"]
            .as_str()
            .unwrap()
            .ends_with("_192.png")
    );
    assert!(u.get("https://slack.com/enterprise_name").is_none());
    // GET works too.
    let got: Value = c
        .get(format!("{}/api/openid.connect.userInfo", h.base_url))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got, u);

    let rec = h.control.token_requests();
    assert_eq!(rec.len(), 1);
    assert_eq!(rec[0].grant_type.as_deref(), Some("authorization_code"));
    assert_eq!(rec[0].client_auth, ClientAuthMethod::Post);
    assert_eq!(rec[0].redirect_uri.as_deref(), Some(REDIRECT));
    assert!(!rec[0].code_verifier_present);
    h.stop().await;
}

#[tokio::test]
async fn flow_without_nonce_yields_empty_nonce_claim() {
    let h = spawn().await;
    let c = client();
    let p = with(params(APP), "nonce", None);
    let t = exchange(&h, &c, APP, &code(&h, &c, &p, "U0000000001").await).await;
    let claims = verify(&h, &c, t["id_token"].as_str().unwrap(), APP)
        .await
        .unwrap();
    assert_eq!(claims["nonce"], "");
    h.stop().await;
}

#[tokio::test]
async fn grid_user_gets_enterprise_claims() {
    let h = spawn().await;
    let c = client();
    let t = sign_in(&h, &c, "W0000000003").await;
    let claims = verify(&h, &c, t["id_token"].as_str().unwrap(), APP)
        .await
        .unwrap();
    assert_eq!(claims["sub"], "W0000000003");
    assert_eq!(claims["https://slack.com/enterprise_id"], "E0000000001");
    let u = userinfo(&h, &c, t["access_token"].as_str().unwrap()).await;
    assert_eq!(u["https://slack.com/enterprise_id"], "E0000000001");
    assert_eq!(u["https://slack.com/enterprise_name"], "Example Org");
    assert_eq!(u["https://slack.com/enterprise_domain"], "example-org");
    assert_eq!(u["https://slack.com/team_id"], "T0000000003");
    h.stop().await;
}

#[tokio::test]
async fn user_without_email_gets_no_email_claims() {
    let h = spawn().await;
    let c = client();
    let t = sign_in(&h, &c, "U0000000004").await;
    let claims = verify(&h, &c, t["id_token"].as_str().unwrap(), APP)
        .await
        .unwrap();
    assert!(claims.get("email").is_none() && claims.get("email_verified").is_none());
    assert_eq!(claims["name"], "Alan Turing");
    let u = userinfo(&h, &c, t["access_token"].as_str().unwrap()).await;
    assert!(u.get("email").is_none());
    h.stop().await;
}

#[tokio::test]
async fn openid_only_scope_omits_profile_and_email_claims() {
    let h = spawn().await;
    let c = client();
    let p = with(params(APP), "scope", Some("openid"));
    let t = exchange(&h, &c, APP, &code(&h, &c, &p, "U0000000001").await).await;
    let claims = verify(&h, &c, t["id_token"].as_str().unwrap(), APP)
        .await
        .unwrap();
    let mut names: Vec<&str> = claims
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    names.sort();
    let mut expected = [
        "at_hash",
        "aud",
        "auth_time",
        "exp",
        "iat",
        "iss",
        "nonce",
        "sub",
    ]
    .to_vec();
    expected.extend(["https://slack.com/team_id", "https://slack.com/user_id"]);
    expected.sort();
    assert_eq!(names, expected);
    let u = userinfo(&h, &c, t["access_token"].as_str().unwrap()).await;
    assert!(u.get("email").is_none() && u.get("name").is_none());
    assert_eq!(u["sub"], "U0000000001");
    h.stop().await;
}

#[tokio::test]
async fn cancel_redirects_with_access_denied_and_state() {
    let h = spawn().await;
    let c = client();
    let loc = choose(&h, &c, &params(APP), "deny").await;
    assert_eq!(query(&loc, "error").as_deref(), Some("access_denied"));
    assert_eq!(query(&loc, "state").as_deref(), Some("st-123"));
    assert!(query(&loc, "code").is_none());
    h.stop().await;
}

#[tokio::test]
async fn state_is_omitted_when_none_sent_and_registered_query_is_kept() {
    let h = spawn().await;
    let c = client();
    let p = with(
        with(params(APP), "state", None),
        "redirect_uri",
        Some("http://127.0.0.1:9/other?tenant=a"),
    );
    let loc = choose(&h, &c, &p, "U0000000001").await;
    assert_eq!(query(&loc, "tenant").as_deref(), Some("a"));
    assert!(query(&loc, "code").is_some());
    assert!(query(&loc, "state").is_none());
    // A subpath of a registered URL is accepted, and no redirect_uri means the first one.
    let p = with(
        params(APP),
        "redirect_uri",
        Some("http://127.0.0.1:9/callback/deeper"),
    );
    assert_eq!(
        choose(&h, &c, &p, "U0000000001").await.path(),
        "/callback/deeper"
    );
    let p = with(params(APP), "redirect_uri", None);
    let loc = choose(&h, &c, &p, "U0000000001").await;
    assert!(loc.as_str().starts_with(REDIRECT));
    let form = [
        ("client_id", APP),
        ("client_secret", SECRET),
        ("code", &query(&loc, "code").unwrap()),
    ];
    assert_eq!(token(&h, &c, &form).await.1["ok"], true);
    h.stop().await;
}
