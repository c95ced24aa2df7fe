//! Token rotation, client authentication methods and PKCE.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use super::*;
use crate::upstream::standin::ClientAuthMethod;

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
