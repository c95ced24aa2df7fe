//! Refresh tokens with rotation and theft detection, code replay, revocation
//! (RFC 7009) and introspection (RFC 7662). Every scenario runs on the memory
//! store and on Redis.

use crate::common;

use common::bridge::{BASIC, Bridge, REFRESH, REFRESH2, Setup};
use common::browser::{
    Browser, ClientAuth, client_request, id_claims, param, redeem, sign_in_and_redeem,
    token_request,
};

const ADA: &str = "U0000000001";
const OWNER: ClientAuth = ClientAuth::Other(REFRESH.0, REFRESH.1);
const OTHER: ClientAuth = ClientAuth::Other(REFRESH2.0, REFRESH2.1);

async fn offline_login(bridge: &Bridge, browser: &Browser) -> serde_json::Value {
    sign_in_and_redeem(bridge, browser, OWNER, "openid email offline_access", ADA).await
}

async fn refresh(bridge: &Bridge, auth: ClientAuth, token: &str) -> reqwest::Response {
    token_request(
        bridge,
        auth,
        &[("grant_type", "refresh_token"), ("refresh_token", token)],
    )
    .await
}

async fn error(r: reqwest::Response) -> String {
    assert_eq!(r.status(), 400);
    r.json::<serde_json::Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn userinfo_status(bridge: &Bridge, access_token: &str) -> u16 {
    reqwest::Client::new()
        .get(bridge.url("/userinfo"))
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn s<'a>(v: &'a serde_json::Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("no {key} in {v}"))
}

async fn a_refresh_rotates_and_keeps_the_identity(setup: Setup) {
    let bridge = Bridge::start(setup).await;
    let first = offline_login(&bridge, &Browser::new()).await;
    let r = refresh(&bridge, OWNER, s(&first, "refresh_token")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let second: serde_json::Value = r.json().await.unwrap();
    assert_ne!(second["refresh_token"], first["refresh_token"], "rotated");
    assert_eq!(second["token_type"], "Bearer");
    let (a, b) = (id_claims(&first), id_claims(&second));
    for claim in ["iss", "sub", "aud", "auth_time"] {
        assert_eq!(
            a[claim], b[claim],
            "{claim} survives a refresh (OIDC Core §12.2)"
        );
    }
    assert!(b.get("nonce").is_none());
    assert_eq!(b["email"], "ada@example.com", "claims from Slack");
    assert_eq!(
        userinfo_status(&bridge, s(&second, "access_token")).await,
        200
    );
    let third = refresh(&bridge, OWNER, s(&second, "refresh_token")).await;
    assert_eq!(third.status(), 200, "the successor works");
}

async fn reusing_a_rotated_refresh_token_revokes_the_whole_family(setup: Setup) {
    let bridge = Bridge::start(setup).await;
    let first = offline_login(&bridge, &Browser::new()).await;
    let second: serde_json::Value = refresh(&bridge, OWNER, s(&first, "refresh_token"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        error(refresh(&bridge, OWNER, s(&first, "refresh_token")).await).await,
        "invalid_grant"
    );
    assert_eq!(
        error(refresh(&bridge, OWNER, s(&second, "refresh_token")).await).await,
        "invalid_grant",
        "the newer token dies too"
    );
    assert_eq!(
        userinfo_status(&bridge, s(&second, "access_token")).await,
        401
    );
    assert_eq!(
        userinfo_status(&bridge, s(&first, "access_token")).await,
        401
    );
}

async fn two_refresh_chains_of_one_user_live_independently(setup: Setup) {
    let bridge = Bridge::start(setup).await;
    let laptop = offline_login(&bridge, &Browser::new()).await;
    let phone = offline_login(&bridge, &Browser::new()).await;
    let laptop2: serde_json::Value = refresh(&bridge, OWNER, s(&laptop, "refresh_token"))
        .await
        .json()
        .await
        .unwrap();
    let phone2: serde_json::Value = refresh(&bridge, OWNER, s(&phone, "refresh_token"))
        .await
        .json()
        .await
        .unwrap();
    // Theft on the laptop's chain ends that chain only.
    assert_eq!(
        error(refresh(&bridge, OWNER, s(&laptop, "refresh_token")).await).await,
        "invalid_grant"
    );
    assert_eq!(
        error(refresh(&bridge, OWNER, s(&laptop2, "refresh_token")).await).await,
        "invalid_grant"
    );
    assert_eq!(
        refresh(&bridge, OWNER, s(&phone2, "refresh_token"))
            .await
            .status(),
        200
    );
}

async fn a_retry_within_the_grace_window_gets_the_same_successor(mut setup: Setup) {
    setup.refresh_grace_secs = 30;
    let bridge = Bridge::start(setup).await;
    let first = offline_login(&bridge, &Browser::new()).await;
    let a: serde_json::Value = refresh(&bridge, OWNER, s(&first, "refresh_token"))
        .await
        .json()
        .await
        .unwrap();
    let b: serde_json::Value = refresh(&bridge, OWNER, s(&first, "refresh_token"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(a["refresh_token"], b["refresh_token"], "same successor");
    assert_eq!(a["access_token"], b["access_token"]);
    assert_eq!(
        refresh(&bridge, OWNER, s(&a, "refresh_token"))
            .await
            .status(),
        200,
        "the family is not revoked"
    );
}

async fn another_clients_refresh_token_is_invalid_grant_and_revokes_nothing(setup: Setup) {
    let bridge = Bridge::start(setup).await;
    let first = offline_login(&bridge, &Browser::new()).await;
    assert_eq!(
        error(refresh(&bridge, OTHER, s(&first, "refresh_token")).await).await,
        "invalid_grant"
    );
    assert_eq!(
        refresh(&bridge, OWNER, s(&first, "refresh_token"))
            .await
            .status(),
        200,
        "the owner's token still works"
    );
}

async fn offline_access_without_the_refresh_grant_gives_no_refresh_token(setup: Setup) {
    let bridge = Bridge::start(setup).await;
    let tokens = sign_in_and_redeem(
        &bridge,
        &Browser::new(),
        ClientAuth::Basic,
        "openid offline_access",
        ADA,
    )
    .await;
    assert!(tokens.get("refresh_token").is_none(), "{tokens}");
    assert_eq!(tokens["scope"], "openid");
    let r = refresh(&bridge, ClientAuth::Basic, "anything").await;
    assert_eq!(error(r).await, "unauthorized_client");
}

async fn a_refresh_may_narrow_the_scope_but_not_widen_it(setup: Setup) {
    let bridge = Bridge::start(setup).await;
    let first = offline_login(&bridge, &Browser::new()).await;
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", s(&first, "refresh_token")),
        ("scope", "openid profile"),
    ];
    assert_eq!(
        error(token_request(&bridge, OWNER, &form).await).await,
        "invalid_scope"
    );
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", s(&first, "refresh_token")),
        ("scope", "openid"),
    ];
    let narrowed: serde_json::Value = token_request(&bridge, OWNER, &form)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(narrowed["scope"], "openid");
    assert!(id_claims(&narrowed).get("email").is_none());
    let next: serde_json::Value = refresh(&bridge, OWNER, s(&narrowed, "refresh_token"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        next["scope"], "openid email offline_access",
        "the refresh token keeps its scope (RFC 6749 §6)"
    );
}

async fn a_replayed_code_revokes_every_token_of_its_first_redemption(setup: Setup) {
    let bridge = Bridge::start(setup).await;
    let browser = Browser::new();
    let mut params = common::browser::auth_params(REFRESH.0, "st", "n");
    params.retain(|(k, _)| *k != "scope");
    params.push(("scope", "openid offline_access"));
    let back = browser.sign_in(&bridge, &params, ADA).await;
    let code = param(&back, "code").unwrap();
    let first: serde_json::Value = redeem(&bridge, OWNER, &code, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        error(redeem(&bridge, OWNER, &code, None).await).await,
        "invalid_grant"
    );
    assert_eq!(
        userinfo_status(&bridge, s(&first, "access_token")).await,
        401
    );
    assert_eq!(
        error(refresh(&bridge, OWNER, s(&first, "refresh_token")).await).await,
        "invalid_grant"
    );
}

async fn revoking_a_refresh_token_revokes_its_family(setup: Setup) {
    let bridge = Bridge::start(setup).await;
    let first = offline_login(&bridge, &Browser::new()).await;
    let r = client_request(
        &bridge,
        "/revoke",
        OWNER,
        &[
            ("token", s(&first, "refresh_token")),
            ("token_type_hint", "refresh_token"),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        error(refresh(&bridge, OWNER, s(&first, "refresh_token")).await).await,
        "invalid_grant"
    );
    assert_eq!(
        userinfo_status(&bridge, s(&first, "access_token")).await,
        401
    );
}

async fn revoking_an_access_token_ends_it_and_unknown_tokens_get_200(setup: Setup) {
    let bridge = Bridge::start(setup).await;
    let first = offline_login(&bridge, &Browser::new()).await;
    let r = client_request(
        &bridge,
        "/revoke",
        OWNER,
        &[("token", s(&first, "access_token"))],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        userinfo_status(&bridge, s(&first, "access_token")).await,
        401
    );
    assert_eq!(
        refresh(&bridge, OWNER, s(&first, "refresh_token"))
            .await
            .status(),
        200,
        "the refresh token is not touched"
    );
    let r = client_request(&bridge, "/revoke", OWNER, &[("token", "never-issued")]).await;
    assert_eq!(r.status(), 200);
    let r = client_request(
        &bridge,
        "/revoke",
        ClientAuth::Other(BASIC.0, "wrong"),
        &[("token", "x")],
    )
    .await;
    assert_eq!(r.status(), 401, "revocation is client-authenticated");
}

async fn introspection_describes_live_tokens_to_their_client_only(setup: Setup) {
    let bridge = Bridge::start(setup).await;
    let first = offline_login(&bridge, &Browser::new()).await;
    let sub = id_claims(&first)["sub"].clone();
    let look = |auth, token: String| {
        let bridge = &bridge;
        async move {
            let r = client_request(bridge, "/introspect", auth, &[("token", token.as_str())]).await;
            assert_eq!(r.status(), 200);
            r.json::<serde_json::Value>().await.unwrap()
        }
    };
    let access = look(OWNER, s(&first, "access_token").to_string()).await;
    assert_eq!(access["active"], true);
    assert_eq!(access["token_type"], "Bearer");
    assert_eq!(access["client_id"], REFRESH.0);
    assert_eq!(access["sub"], sub);
    assert_eq!(access["scope"], "openid email offline_access");
    assert!(access["exp"].as_i64().unwrap() > access["iat"].as_i64().unwrap());
    let refresh_info = look(OWNER, s(&first, "refresh_token").to_string()).await;
    assert_eq!(refresh_info["active"], true);
    assert_eq!(refresh_info["token_type"], "refresh_token");
    assert_eq!(
        look(OTHER, s(&first, "access_token").to_string()).await,
        serde_json::json!({"active": false})
    );
    assert_eq!(
        look(OWNER, "garbage".to_string()).await,
        serde_json::json!({"active": false})
    );
    client_request(
        &bridge,
        "/revoke",
        OWNER,
        &[("token", s(&first, "refresh_token"))],
    )
    .await;
    assert_eq!(
        look(OWNER, s(&first, "access_token").to_string()).await,
        serde_json::json!({"active": false})
    );
}

on_both_stores!(
    a_refresh_rotates_and_keeps_the_identity,
    reusing_a_rotated_refresh_token_revokes_the_whole_family,
    two_refresh_chains_of_one_user_live_independently,
    a_retry_within_the_grace_window_gets_the_same_successor,
    another_clients_refresh_token_is_invalid_grant_and_revokes_nothing,
    offline_access_without_the_refresh_grant_gives_no_refresh_token,
    a_refresh_may_narrow_the_scope_but_not_widen_it,
    a_replayed_code_revokes_every_token_of_its_first_redemption,
    revoking_a_refresh_token_revokes_its_family,
    revoking_an_access_token_ends_it_and_unknown_tokens_get_200,
    introspection_describes_live_tokens_to_their_client_only,
);
