//! The happy paths: discovery, keys, the code flow, rotation, PKCE.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::Value;

use super::*;
use crate::upstream::standin::{ClientAuthMethod, id_token::at_hash};

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
async fn api_json_escapes_slashes_like_slack() {
    let h = spawn().await;
    let c = client();
    let t = exchange(
        &h,
        &c,
        APP,
        &code(&h, &c, &params(APP), "U0000000001").await,
    )
    .await;
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
    let t = exchange(
        &h,
        &c,
        APP,
        &code(&h, &c, &params(APP), "W0000000003").await,
    )
    .await;
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
    let t = exchange(
        &h,
        &c,
        APP,
        &code(&h, &c, &params(APP), "U0000000004").await,
    )
    .await;
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
async fn rotation_app_refreshes_without_id_token_and_old_refresh_token_fails() {
    let h = spawn().await;
    let c = client();
    let t = exchange(
        &h,
        &c,
        ROT,
        &code(&h, &c, &params(ROT), "U0000000001").await,
    )
    .await;
    assert_eq!(t["ok"], true);
    assert!(
        t["access_token"]
            .as_str()
            .unwrap()
            .starts_with("xoxe.xoxp-1-")
    );
    assert!(t["id_token"].is_string());
    assert_eq!(t["state"], "st-123");
    assert_eq!(t["expires_in"], 43200);
    let first = t["refresh_token"].as_str().unwrap();
    assert!(first.starts_with("xoxe-1-"));

    let refresh = |rt: String| {
        let (h, c) = (&h, &c);
        async move {
            let form = [
                ("grant_type", "refresh_token"),
                ("client_id", ROT),
                ("client_secret", SECRET),
                ("refresh_token", rt.as_str()),
            ];
            token(h, c, &form).await
        }
    };
    let (status, r) = refresh(first.to_owned()).await;
    assert_eq!(status, 200);
    assert_eq!(r["ok"], true);
    assert!(r.get("id_token").is_none() && r.get("state").is_none());
    assert!(
        r["access_token"]
            .as_str()
            .unwrap()
            .starts_with("xoxe.xoxp-1-")
    );
    assert_ne!(r["access_token"], t["access_token"]);
    assert_eq!(r["expires_in"], 43200);
    let second = r["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    // The refreshed access token works.
    assert_eq!(
        userinfo(&h, &c, r["access_token"].as_str().unwrap()).await["ok"],
        true
    );

    let (status, again) = refresh(first.to_owned()).await;
    assert_eq!(status, 200);
    assert_eq!(
        again,
        serde_json::json!({"ok": false, "error": "invalid_refresh_token"})
    );
    assert_eq!(refresh(second).await.1["ok"], true);
    h.stop().await;
}

#[tokio::test]
async fn basic_auth_and_json_body_are_accepted() {
    let h = spawn().await;
    let c = client();
    let code1 = code(&h, &c, &params(APP), "U0000000001").await;
    let resp = c
        .post(format!("{}/api/openid.connect.token", h.base_url))
        .header(
            "Authorization",
            format!("Basic {}", STANDARD.encode(format!("{APP}:{SECRET}"))),
        )
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code1),
            ("redirect_uri", REDIRECT),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap()["ok"], true);

    let code2 = code(&h, &c, &params(APP), "U0000000002").await;
    let resp = c
        .post(format!("{}/api/openid.connect.token", h.base_url))
        .json(&serde_json::json!({"client_id": APP, "client_secret": SECRET, "code": code2, "redirect_uri": REDIRECT}))
        .send()
        .await
        .unwrap();
    let t: Value = resp.json().await.unwrap();
    assert_eq!(t["ok"], true, "{t}");

    let rec = h.control.token_requests();
    assert_eq!(rec[0].client_auth, ClientAuthMethod::Basic);
    assert_eq!(rec[1].client_auth, ClientAuthMethod::Post);
    assert_eq!(rec[1].grant_type, None);
    assert_eq!(rec[1].content_type.as_deref(), Some("application/json"));
    h.stop().await;
}

#[tokio::test]
async fn pkce_s256_verifier_is_required_and_checked() {
    let h = spawn().await;
    let c = client();
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let p = with(
        with(params(APP), "code_challenge", Some(challenge)),
        "code_challenge_method",
        Some("S256"),
    );
    let form = |code: &str, v: Option<&str>| {
        let mut f = vec![
            ("client_id", APP.to_owned()),
            ("client_secret", SECRET.into()),
            ("code", code.into()),
            ("redirect_uri", REDIRECT.into()),
        ];
        if let Some(v) = v {
            f.push(("code_verifier", v.into()));
        }
        f
    };
    let send = |f: Vec<(&'static str, String)>| {
        let c = &c;
        let url = format!("{}/api/openid.connect.token", h.base_url);
        async move {
            c.post(url)
                .form(&f)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let missing = send(form(&code(&h, &c, &p, "U0000000001").await, None)).await;
    assert_eq!(missing["error"], "invalid_grant");
    let wrong = send(form(
        &code(&h, &c, &p, "U0000000001").await,
        Some(&verifier.replace('d', "e")),
    ))
    .await;
    assert_eq!(wrong["error"], "invalid_grant");
    let right = send(form(&code(&h, &c, &p, "U0000000001").await, Some(verifier))).await;
    assert_eq!(right["ok"], true, "{right}");
    assert!(h.control.token_requests()[2].code_verifier_present);
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
    let t = exchange(
        &h,
        &c,
        APP,
        &code(&h, &c, &params(APP), "U0000000001").await,
    )
    .await;
    verify(&h, &c, t["id_token"].as_str().unwrap(), APP)
        .await
        .expect("signed with the new key");
    h.stop().await;
}
