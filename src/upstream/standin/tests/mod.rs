//! End-to-end tests: a real stand-in on 127.0.0.1, driven over HTTP.

mod directory;
mod discovery;
mod errors;
mod events;
mod faults;
mod flow;
mod grants;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use super::{
    DEV_BOT_TOKEN, StandinApp, StandinGroup, StandinHandle, StandinOptions, StandinUser, start,
};

/// A distributed app without token rotation.
pub const APP: &str = "1111111111.2222222222222";
/// An app with token rotation.
pub const ROT: &str = "3333333333.4444444444444";
/// An app that is not distributed.
pub const SOLO: &str = "5555555555.6666666666666";
pub const SECRET: &str = "0123456789abcdef0123456789abcdef";
/// Never fetched: redirects are not followed.
pub const REDIRECT: &str = "http://127.0.0.1:9/callback";

pub fn apps() -> Vec<StandinApp> {
    let app = |id: &str, distributed, rotation| StandinApp {
        client_id: id.into(),
        client_secret: SECRET.into(),
        redirect_urls: vec![REDIRECT.into(), "http://127.0.0.1:9/other?tenant=a".into()],
        distributed,
        rotation,
    };
    vec![
        app(APP, true, false),
        app(ROT, true, true),
        app(SOLO, false, false),
    ]
}

pub async fn spawn() -> StandinHandle {
    spawn_with(false).await
}

pub async fn spawn_with(exact_slack_mode: bool) -> StandinHandle {
    start(options(exact_slack_mode))
        .await
        .expect("stand-in starts")
}

/// The options `spawn_with` uses, for tests that change one of them.
pub fn options(exact_slack_mode: bool) -> StandinOptions {
    StandinOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        apps: apps(),
        users: StandinUser::fixtures(),
        exact_slack_mode,
        groups: StandinGroup::fixtures(),
        bot_token: Some(DEV_BOT_TOKEN.into()),
        events: None,
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap()
}

/// Authorize parameters for `client_id` with the usual redirect and scopes.
pub fn params(client_id: &str) -> Vec<(String, String)> {
    [
        ("response_type", "code"),
        ("client_id", client_id),
        ("scope", "openid profile email"),
        ("redirect_uri", REDIRECT),
        ("state", "st-123"),
        ("nonce", "n-0S6_WzA2Mj"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

pub fn with(mut p: Vec<(String, String)>, key: &str, value: Option<&str>) -> Vec<(String, String)> {
    p.retain(|(k, _)| k != key);
    if let Some(v) = value {
        p.push((key.into(), v.into()));
    }
    p
}

/// Shows the picker, then posts the choice; returns the 302 Location.
pub async fn choose(
    h: &StandinHandle,
    c: &reqwest::Client,
    p: &[(String, String)],
    user: &str,
) -> url::Url {
    let page = c.get(authorize_url(h, p)).send().await.unwrap();
    assert_eq!(page.status(), 200, "picker page");
    let html = page.text().await.unwrap();
    assert!(html.contains("action=\"/openid/connect/authorize/decide\""));
    assert!(
        html.contains(&format!("value=\"{user}\"")),
        "the picker offers {user}"
    );
    let mut form = p.to_vec();
    form.push(("user".into(), user.into()));
    let resp = c
        .post(format!("{}/openid/connect/authorize/decide", h.base_url))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302, "decide redirects");
    url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap()
}

/// The authorize URL with these parameters (reqwest has no `query` here).
pub fn authorize_url(h: &StandinHandle, p: &[(String, String)]) -> url::Url {
    url::Url::parse_with_params(&format!("{}/openid/connect/authorize", h.base_url), p).unwrap()
}

pub fn query(url: &url::Url, key: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// Runs the browser part of a flow and returns the code.
pub async fn code(
    h: &StandinHandle,
    c: &reqwest::Client,
    p: &[(String, String)],
    user: &str,
) -> String {
    let loc = choose(h, c, p, user).await;
    query(&loc, "code").expect("a code in the redirect")
}

/// A token request with `client_secret_post`.
pub async fn token(
    h: &StandinHandle,
    c: &reqwest::Client,
    form: &[(&str, &str)],
) -> (reqwest::StatusCode, Value) {
    let resp = c
        .post(format!("{}/api/openid.connect.token", h.base_url))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert_eq!(ct, "application/json; charset=utf-8");
    (status, resp.json().await.unwrap())
}

pub async fn exchange(
    h: &StandinHandle,
    c: &reqwest::Client,
    client_id: &str,
    code: &str,
) -> Value {
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", client_id),
        ("client_secret", SECRET),
        ("code", code),
        ("redirect_uri", REDIRECT),
    ];
    token(h, c, &form).await.1
}

/// A whole sign-in of `user` to `APP`: its token answer.
pub async fn sign_in(h: &StandinHandle, c: &reqwest::Client, user: &str) -> Value {
    exchange(h, c, APP, &code(h, c, &params(APP), user).await).await
}

/// Verifies an ID token against the served JWKS and returns its claims.
pub async fn verify(
    h: &StandinHandle,
    c: &reqwest::Client,
    id_token: &str,
    aud: &str,
) -> jsonwebtoken::errors::Result<Value> {
    let header = jsonwebtoken::decode_header(id_token)?;
    let jwks: Value = c
        .get(format!("{}/openid/connect/keys", h.base_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kid = header.kid.expect("a kid");
    let Some(jwk) = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
    else {
        return Err(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat.into());
    };
    let key =
        DecodingKey::from_rsa_components(jwk["n"].as_str().unwrap(), jwk["e"].as_str().unwrap())?;
    let mut v = Validation::new(Algorithm::RS256);
    v.set_audience(&[aud]);
    v.set_issuer(&[h.base_url.as_str()]);
    v.leeway = 0;
    Ok(jsonwebtoken::decode::<Value>(id_token, &key, &v)?.claims)
}

pub async fn userinfo(h: &StandinHandle, c: &reqwest::Client, access_token: &str) -> Value {
    let resp = c
        .post(format!("{}/api/openid.connect.userInfo", h.base_url))
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}
