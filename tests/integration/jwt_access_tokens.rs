//! JWT access tokens (RFC 9068) for applications registered with
//! `access_token_format = "jwt"`: typed `at+jwt`, signed like the client's
//! ID tokens, verifiable offline against the JWKS, and still revocable (the
//! bridge's own userinfo and introspection consult its records). On the
//! memory store and on Redis.

use crate::common;

use common::bridge::{BASIC, Bridge, REDIRECT_URI, Setup};
use common::browser::{
    Browser, ClientAuth, id_claims, sign_in_and_redeem, token_request, verify_id_token,
};
use serde_json::Value;

const JWT_CLIENT: (&str, &str) = ("app-jwt", "jwt-secret-0123456789abcdef0123456789abcd");
const ADA: &str = "U0000000001";

fn with_jwt_client(mut setup: Setup) -> Setup {
    setup.extra_toml.push_str(&format!(
        r#"
[[clients]]
client_id = "{}"
client_secret = "{}"
redirect_uris = ["{REDIRECT_URI}"]
grant_types = ["authorization_code", "refresh_token"]
access_token_format = "jwt"
"#,
        JWT_CLIENT.0, JWT_CLIENT.1
    ));
    setup
}

const AUTH: ClientAuth = ClientAuth::Other(JWT_CLIENT.0, JWT_CLIENT.1);

async fn userinfo_status(bridge: &Bridge, token: &str) -> u16 {
    reqwest::Client::new()
        .get(bridge.url("/userinfo"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn back_channel(bridge: &Bridge, path: &str, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(bridge.url(path))
        .basic_auth(JWT_CLIENT.0, Some(JWT_CLIENT.1))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
}

async fn introspect(bridge: &Bridge, token: &str) -> Value {
    back_channel(bridge, "/introspect", token)
        .await
        .json()
        .await
        .unwrap()
}

/// The access token's header and its claims, verified against the JWKS.
async fn verified_access_token(bridge: &Bridge, token: &str) -> (jsonwebtoken::Header, Value) {
    let header = jsonwebtoken::decode_header(token).expect("a JWS");
    let claims = verify_id_token(bridge, token, JWT_CLIENT.0).await;
    (header, claims)
}

async fn a_client_registered_for_jwt_access_tokens_gets_rfc9068_tokens(setup: Setup) {
    let bridge = Bridge::start(with_jwt_client(setup)).await;
    let tokens = sign_in_and_redeem(
        &bridge,
        &Browser::new(),
        AUTH,
        "openid email offline_access",
        ADA,
    )
    .await;
    let access = tokens["access_token"].as_str().unwrap();
    let (header, claims) = verified_access_token(&bridge, access).await;
    assert_eq!(header.typ.as_deref(), Some("at+jwt"), "RFC 9068 §2.1");
    let id = id_claims(&tokens);
    assert_eq!(claims["sub"], id["sub"]);
    assert_eq!(claims["iss"], bridge.base.as_str());
    assert_eq!(claims["client_id"], JWT_CLIENT.0);
    assert_eq!(claims["aud"], JWT_CLIENT.0);
    assert_eq!(claims["scope"], tokens["scope"]);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        tokens["expires_in"].as_i64().unwrap()
    );
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 32));
    assert_eq!(tokens["token_type"], "Bearer");
    // The bridge's own endpoints accept it like any access token.
    assert_eq!(userinfo_status(&bridge, access).await, 200);
    let described = introspect(&bridge, access).await;
    assert_eq!(described["active"], true, "{described}");
    assert_eq!(described["sub"], id["sub"]);

    // A refresh gives a new JWT access token, with its own jti.
    let r = token_request(
        &bridge,
        AUTH,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    let next: Value = r.json().await.unwrap();
    let next_access = next["access_token"].as_str().unwrap();
    let (next_header, next_claims) = verified_access_token(&bridge, next_access).await;
    assert_eq!(next_header.typ.as_deref(), Some("at+jwt"));
    assert_ne!(next_claims["jti"], claims["jti"]);
    assert_eq!(userinfo_status(&bridge, next_access).await, 200);
}

async fn a_revoked_jwt_access_token_is_refused_by_the_bridge(setup: Setup) {
    let bridge = Bridge::start(with_jwt_client(setup)).await;
    let tokens = sign_in_and_redeem(&bridge, &Browser::new(), AUTH, "openid", ADA).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(userinfo_status(&bridge, access).await, 200);
    assert_eq!(back_channel(&bridge, "/revoke", access).await.status(), 200);
    assert_eq!(userinfo_status(&bridge, access).await, 401);
    assert_eq!(introspect(&bridge, access).await["active"], false);
    // Its signature still verifies: an offline check cannot know; resource
    // servers that must honour revocation ask introspection.
    verified_access_token(&bridge, access).await;
}

async fn other_clients_keep_opaque_access_tokens(setup: Setup) {
    let bridge = Bridge::start(with_jwt_client(setup)).await;
    let tokens =
        sign_in_and_redeem(&bridge, &Browser::new(), ClientAuth::Basic, "openid", ADA).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert!(
        !access.contains('.'),
        "{} has an opaque token: {access}",
        BASIC.0
    );
    assert_eq!(access.len(), 43);
}

crate::on_both_stores!(
    a_client_registered_for_jwt_access_tokens_gets_rfc9068_tokens,
    a_revoked_jwt_access_token_is_refused_by_the_bridge,
    other_clients_keep_opaque_access_tokens,
);
