//! Native applications (RFC 8252) and single-page applications (CORS),
//! against the real binary.
//!
//! - A public client's loopback redirect URI (`http://127.0.0.1/…`,
//!   `http://[::1]/…`) matches on any port at the authorization endpoint;
//!   the token endpoint wants the very URI the code was sent to. Everything
//!   else stays exact: paths, queries, https, `localhost`, other addresses,
//!   confidential clients, post-logout redirect URIs.
//! - Token, userinfo and revocation answer with CORS headers for the origins
//!   of the registered clients (their redirect URIs' origins and
//!   `allowed_cors_origins`), only the client's own once it is known, errors
//!   included; preflights get 204 with methods, headers and a max-age;
//!   introspection has no CORS; discovery and the JWKS are readable from any
//!   origin.

use crate::common;

use common::bridge::{BASIC, Bridge, REDIRECT_URI, Setup};
use common::browser::{Browser, location, param, pkce};
use reqwest::header::HeaderMap;
use url::Url;

const ADA: &str = "U0000000001";

/// A native application (public, loopback redirect URIs on IPv4 and IPv6, a
/// `localhost` one with a port); a single-page application with an extra
/// CORS origin; and another single-page application.
const CLIENTS: &str = r#"
[[clients]]
client_id = "native"
redirect_uris = ["http://127.0.0.1/callback", "http://[::1]/callback", "http://localhost:8400/cb"]
post_logout_redirect_uris = ["http://127.0.0.1/bye"]
token_endpoint_auth_method = "none"

[[clients]]
client_id = "spa"
redirect_uris = ["https://spa.example/app/cb"]
token_endpoint_auth_method = "none"
allowed_cors_origins = ["https://static.spa.example"]

[[clients]]
client_id = "other-spa"
redirect_uris = ["https://other.example/cb"]
token_endpoint_auth_method = "none"
"#;

const SPA_ORIGIN: &str = "https://spa.example";
const SPA_EXTRA_ORIGIN: &str = "https://static.spa.example";
const OTHER_SPA_ORIGIN: &str = "https://other.example";
const NOBODY_S_ORIGIN: &str = "https://evil.example";

async fn bridge() -> Bridge {
    Bridge::start(Setup {
        extra_toml: CLIENTS.into(),
        ..Setup::default()
    })
    .await
}

fn authorize_params<'a>(
    client_id: &'a str,
    redirect_uri: &'a str,
    challenge: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect_uri),
        ("scope", "openid email profile"),
        ("state", "st"),
        ("nonce", "n"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ]
}

/// A whole sign-in of a public client with PKCE: where the bridge sent the
/// browser back, and the PKCE verifier.
async fn sign_in(bridge: &Bridge, client_id: &str, redirect_uri: &str) -> (Url, String) {
    let (verifier, challenge) = pkce();
    let back = Browser::new()
        .sign_in(
            bridge,
            &authorize_params(client_id, redirect_uri, &challenge),
            ADA,
        )
        .await;
    (back, verifier)
}

/// POST a form to `path`, from a script of `origin` when given.
async fn post(
    bridge: &Bridge,
    path: &str,
    origin: Option<&str>,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = reqwest::Client::new().post(bridge.url(path)).form(form);
    if let Some(origin) = origin {
        req = req.header("Origin", origin);
    }
    req.send().await.unwrap()
}

async fn redeem(
    bridge: &Bridge,
    origin: Option<&str>,
    client_id: &str,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> reqwest::Response {
    post(
        bridge,
        "/token",
        origin,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", client_id),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ],
    )
    .await
}

async fn userinfo(bridge: &Bridge, origin: &str, access_token: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .get(bridge.url("/userinfo"))
        .header("Origin", origin);
    if let Some(token) = access_token {
        req = req.bearer_auth(token);
    }
    req.send().await.unwrap()
}

/// A CORS preflight: `OPTIONS path` from `origin` announcing `method`.
async fn preflight(bridge: &Bridge, path: &str, origin: &str, method: &str) -> reqwest::Response {
    reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, bridge.url(path))
        .header("Origin", origin)
        .header("Access-Control-Request-Method", method)
        .header(
            "Access-Control-Request-Headers",
            "authorization,content-type,dpop",
        )
        .send()
        .await
        .unwrap()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Every `Access-Control-*` header of an answer.
fn cors_headers(headers: &HeaderMap) -> Vec<String> {
    headers
        .keys()
        .map(|k| k.as_str().to_string())
        .filter(|k| k.starts_with("access-control-"))
        .collect()
}

/// The answer is readable by a script of `origin`, and only of it.
fn assert_readable_from(headers: &HeaderMap, origin: &str) {
    assert_eq!(
        header(headers, "access-control-allow-origin"),
        Some(origin),
        "{headers:?}"
    );
    assert!(
        header(headers, "access-control-allow-credentials").is_none(),
        "no cookies here, so no credentials: {headers:?}"
    );
    assert!(varies_by_origin(headers), "{headers:?}");
}

fn varies_by_origin(headers: &HeaderMap) -> bool {
    headers
        .get_all("vary")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.trim().eq_ignore_ascii_case("origin"))
}

fn assert_no_cors(headers: &HeaderMap) {
    assert_eq!(cors_headers(headers), Vec::<String>::new(), "{headers:?}");
}

async fn error_of(r: reqwest::Response) -> String {
    let body: serde_json::Value = r.json().await.unwrap();
    body["error"].as_str().unwrap_or_default().to_string()
}

/// The authorization endpoint refuses the redirect URI with its own page: a
/// 400, and no redirect anywhere.
async fn assert_redirect_uri_refused(bridge: &Bridge, client_id: &str, redirect_uri: &str) {
    let (_, challenge) = pkce();
    let r = Browser::new()
        .authorize(
            bridge,
            &authorize_params(client_id, redirect_uri, &challenge),
        )
        .await;
    assert_eq!(r.status(), 400, "{redirect_uri}");
    assert!(r.headers().get("location").is_none(), "{redirect_uri}");
    let page = r.text().await.unwrap();
    assert!(
        page.contains("(redirect_uri) is not registered"),
        "{redirect_uri}: {page}"
    );
}

/// The authorization endpoint accepts it and sends the browser to Slack.
async fn assert_redirect_uri_accepted(bridge: &Bridge, client_id: &str, redirect_uri: &str) {
    let (_, challenge) = pkce();
    Browser::new()
        .to_slack(
            bridge,
            &authorize_params(client_id, redirect_uri, &challenge),
        )
        .await;
}

// ------------------------------------------------------- native applications

#[tokio::test(flavor = "multi_thread")]
async fn a_native_app_s_loopback_redirect_uri_matches_on_any_port_at_authorize_and_token() {
    let bridge = bridge().await;
    for redirect_uri in [
        "http://127.0.0.1:51004/callback",
        "http://[::1]:51005/callback",
        // As registered, without a port.
        "http://127.0.0.1/callback",
    ] {
        let (back, verifier) = sign_in(&bridge, "native", redirect_uri).await;
        // The code goes to the port the application listens on.
        assert!(
            back.as_str().starts_with(&format!("{redirect_uri}?")),
            "{back}"
        );
        assert_eq!(param(&back, "iss").as_deref(), Some(bridge.base.as_str()));
        let code = param(&back, "code").expect("a code");
        let r = redeem(&bridge, None, "native", &code, redirect_uri, &verifier).await;
        assert_eq!(r.status(), 200, "{redirect_uri}");
        let tokens: serde_json::Value = r.json().await.unwrap();
        assert!(tokens["id_token"].is_string(), "{tokens}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_token_endpoint_wants_the_very_redirect_uri_the_code_was_sent_to() {
    let bridge = bridge().await;
    for other in [
        // Another port than the one the code went to.
        "http://127.0.0.1:51005/callback",
        // The registered URI itself.
        "http://127.0.0.1/callback",
    ] {
        let (back, verifier) = sign_in(&bridge, "native", "http://127.0.0.1:51004/callback").await;
        let code = param(&back, "code").expect("a code");
        let r = redeem(&bridge, None, "native", &code, other, &verifier).await;
        assert_eq!(r.status(), 400, "{other}");
        assert_eq!(error_of(r).await, "invalid_grant", "{other}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn loopback_port_matching_changes_nothing_but_the_port() {
    let bridge = bridge().await;
    for redirect_uri in [
        "http://127.0.0.1:5000/callback/",
        "http://127.0.0.1:5000/other",
        "http://127.0.0.1:5000/callback?x=1",
        "http://[::1]:5000/other",
        "https://127.0.0.1:5000/callback",
        "http://127.0.0.2:5000/callback",
        "http://a@127.0.0.1:5000/callback",
        "http://127.0.0.1:5000@evil.example/callback",
        "http://127.0.0.1:0/callback",
        "http://127.0.0.1:65536/callback",
        "http://127.0.0.1:%35/callback",
        "http://127.0.0.1:5000/%63allback",
    ] {
        assert_redirect_uri_refused(&bridge, "native", redirect_uri).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn localhost_redirect_uris_match_only_exactly_as_registered() {
    let bridge = bridge().await;
    assert_redirect_uri_accepted(&bridge, "native", "http://localhost:8400/cb").await;
    for redirect_uri in [
        "http://localhost:8401/cb",
        "http://localhost/cb",
        "http://localhost:5000/callback",
    ] {
        assert_redirect_uri_refused(&bridge, "native", redirect_uri).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_confidential_client_s_loopback_redirect_uri_stays_exact() {
    let bridge = bridge().await;
    let (_, challenge) = pkce();
    let params = |uri| {
        vec![
            ("response_type", "code"),
            ("client_id", BASIC.0),
            ("redirect_uri", uri),
            ("scope", "openid"),
            ("state", "st"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ]
    };
    Browser::new()
        .to_slack(&bridge, &params(REDIRECT_URI))
        .await;
    // REDIRECT_URI is http://127.0.0.1:9/cb.
    for other in ["http://127.0.0.1:10/cb", "http://127.0.0.1/cb"] {
        let r = Browser::new().authorize(&bridge, &params(other)).await;
        assert_eq!(r.status(), 400, "{other}");
        assert!(r.headers().get("location").is_none(), "{other}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_native_app_s_post_logout_redirect_uri_stays_exact() {
    let bridge = bridge().await;
    let (back, verifier) = sign_in(&bridge, "native", "http://127.0.0.1:51004/callback").await;
    let code = param(&back, "code").unwrap();
    let r = redeem(
        &bridge,
        None,
        "native",
        &code,
        "http://127.0.0.1:51004/callback",
        &verifier,
    )
    .await;
    let tokens: serde_json::Value = r.json().await.unwrap();
    let id_token = tokens["id_token"].as_str().unwrap();
    let logout = |uri: &'static str| {
        let mut url = Url::parse(&bridge.url("/logout")).unwrap();
        url.query_pairs_mut()
            .append_pair("id_token_hint", id_token)
            .append_pair("post_logout_redirect_uri", uri);
        async move { Browser::new().get(url.as_str()).await }
    };
    // Another port: no redirect (the person gets the bridge's own page).
    let r = logout("http://127.0.0.1:51004/bye").await;
    assert!(r.headers().get("location").is_none(), "{:?}", r.headers());
    // Exactly as registered: back to the application.
    let r = logout("http://127.0.0.1/bye").await;
    assert_eq!(location(&r).as_str(), "http://127.0.0.1/bye");
}

// -------------------------------------------------- single-page applications

#[tokio::test(flavor = "multi_thread")]
async fn discovery_and_the_jwks_are_readable_from_any_origin() {
    let bridge = bridge().await;
    for path in ["/.well-known/openid-configuration", "/jwks"] {
        let r = reqwest::Client::new()
            .get(bridge.url(path))
            .header("Origin", NOBODY_S_ORIGIN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(
            header(r.headers(), "access-control-allow-origin"),
            Some("*"),
            "{path}"
        );
        assert!(
            header(r.headers(), "access-control-allow-credentials").is_none(),
            "{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn token_answers_are_readable_from_the_client_s_origins_errors_included() {
    let bridge = bridge().await;
    let redirect_uri = "https://spa.example/app/cb";
    let (back, verifier) = sign_in(&bridge, "spa", redirect_uri).await;
    let code = param(&back, "code").unwrap();

    let r = redeem(
        &bridge,
        Some(SPA_ORIGIN),
        "spa",
        &code,
        redirect_uri,
        &verifier,
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_readable_from(r.headers(), SPA_ORIGIN);

    // The same code again: a 400 the application must be able to read.
    let r = redeem(
        &bridge,
        Some(SPA_ORIGIN),
        "spa",
        &code,
        redirect_uri,
        &verifier,
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_readable_from(r.headers(), SPA_ORIGIN);
    assert_eq!(error_of(r).await, "invalid_grant");

    // The origin the client lists in allowed_cors_origins.
    let r = redeem(
        &bridge,
        Some(SPA_EXTRA_ORIGIN),
        "spa",
        "no-such-code",
        redirect_uri,
        &verifier,
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_readable_from(r.headers(), SPA_EXTRA_ORIGIN);

    // A malformed request, refused before the client is known.
    let r = reqwest::Client::new()
        .post(bridge.url("/token"))
        .header("Origin", SPA_ORIGIN)
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_readable_from(r.headers(), SPA_ORIGIN);
}

#[tokio::test(flavor = "multi_thread")]
async fn userinfo_answers_are_readable_from_the_token_s_client_origins_only() {
    let bridge = bridge().await;
    let redirect_uri = "https://spa.example/app/cb";
    let (back, verifier) = sign_in(&bridge, "spa", redirect_uri).await;
    let code = param(&back, "code").unwrap();
    let tokens: serde_json::Value = redeem(&bridge, None, "spa", &code, redirect_uri, &verifier)
        .await
        .json()
        .await
        .unwrap();
    let access_token = tokens["access_token"].as_str().unwrap();

    let r = userinfo(&bridge, SPA_ORIGIN, Some(access_token)).await;
    assert_eq!(r.status(), 200);
    assert_readable_from(r.headers(), SPA_ORIGIN);
    let claims: serde_json::Value = r.json().await.unwrap();
    assert_eq!(claims["name"], "Ada Lovelace");

    // The token names its client: another client's origin may not read it,
    // nor may anybody else (the old `*` is gone).
    for origin in [OTHER_SPA_ORIGIN, NOBODY_S_ORIGIN] {
        let r = userinfo(&bridge, origin, Some(access_token)).await;
        assert_eq!(r.status(), 200, "{origin}");
        assert_no_cors(r.headers());
        assert!(varies_by_origin(r.headers()), "{origin}");
    }

    // Without a (valid) token the client is unknown: a registered origin
    // may read the 401 and its WWW-Authenticate.
    for token in [None, Some("not-a-token")] {
        let r = userinfo(&bridge, OTHER_SPA_ORIGIN, token).await;
        assert_eq!(r.status(), 401);
        assert_readable_from(r.headers(), OTHER_SPA_ORIGIN);
        assert!(
            header(r.headers(), "access-control-expose-headers")
                .is_some_and(|h| h.contains("WWW-Authenticate")),
            "{:?}",
            r.headers()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn revocation_answers_are_readable_from_the_client_s_origins() {
    let bridge = bridge().await;
    let r = post(
        &bridge,
        "/revoke",
        Some(SPA_ORIGIN),
        &[("client_id", "spa"), ("token", "whatever")],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_readable_from(r.headers(), SPA_ORIGIN);
    // An error too: the token parameter is missing.
    let r = post(
        &bridge,
        "/revoke",
        Some(SPA_ORIGIN),
        &[("client_id", "spa")],
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_readable_from(r.headers(), SPA_ORIGIN);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_origin_no_client_allows_gets_no_cors_headers() {
    let bridge = bridge().await;
    for origin in [
        NOBODY_S_ORIGIN,
        "null",
        "https://spa.example:8443",
        "http://spa.example",
        "https://spa.example.evil.example",
        "http://127.0.0.1:0",
        "http://127.0.0.2:5000",
        "http://localhost:5000",
    ] {
        let r = post(
            &bridge,
            "/token",
            Some(origin),
            &[
                ("grant_type", "authorization_code"),
                ("client_id", "nobody"),
            ],
        )
        .await;
        assert_eq!(r.status(), 401, "{origin}");
        assert_no_cors(r.headers());
        assert!(varies_by_origin(r.headers()), "{origin}");
        let r = post(&bridge, "/revoke", Some(origin), &[("client_id", "spa")]).await;
        assert_no_cors(r.headers());
        let r = userinfo(&bridge, origin, None).await;
        assert_eq!(r.status(), 401, "{origin}");
        assert_no_cors(r.headers());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn another_client_s_origin_gets_no_cors_headers_once_the_client_is_authenticated() {
    let bridge = bridge().await;
    // Before the client is known (its authentication failed), every
    // registered client's origin may read the error.
    let r = post(
        &bridge,
        "/token",
        Some(OTHER_SPA_ORIGIN),
        &[
            ("grant_type", "authorization_code"),
            ("client_id", "no-such-client"),
        ],
    )
    .await;
    assert_eq!(r.status(), 401);
    assert_readable_from(r.headers(), OTHER_SPA_ORIGIN);

    // Once `spa` authenticated, only its origins.
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", "spa"),
        ("code", "no-such-code"),
        ("redirect_uri", "https://spa.example/app/cb"),
        ("code_verifier", "x"),
    ];
    let r = post(&bridge, "/token", Some(OTHER_SPA_ORIGIN), &form).await;
    assert_eq!(r.status(), 400);
    assert_no_cors(r.headers());
    assert!(varies_by_origin(r.headers()));
    let r = post(&bridge, "/token", Some(SPA_ORIGIN), &form).await;
    assert_eq!(r.status(), 400);
    assert_readable_from(r.headers(), SPA_ORIGIN);

    let revoke = [("client_id", "spa"), ("token", "whatever")];
    let r = post(&bridge, "/revoke", Some(OTHER_SPA_ORIGIN), &revoke).await;
    assert_eq!(r.status(), 200);
    assert_no_cors(r.headers());
}

#[tokio::test(flavor = "multi_thread")]
async fn introspection_answers_carry_no_cors_headers() {
    let bridge = bridge().await;
    let r = post(
        &bridge,
        "/introspect",
        Some(SPA_ORIGIN),
        &[("client_id", "spa"), ("token", "whatever")],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_no_cors(r.headers());
    let r = preflight(&bridge, "/introspect", SPA_ORIGIN, "POST").await;
    assert_ne!(r.status(), 204);
    assert_no_cors(r.headers());
}

#[tokio::test(flavor = "multi_thread")]
async fn preflights_answer_204_with_the_methods_headers_and_max_age() {
    let bridge = bridge().await;
    for (path, method, methods) in [
        ("/token", "POST", "POST"),
        ("/revoke", "POST", "POST"),
        ("/userinfo", "GET", "GET, POST"),
        ("/userinfo", "POST", "GET, POST"),
    ] {
        for origin in [SPA_ORIGIN, SPA_EXTRA_ORIGIN, OTHER_SPA_ORIGIN] {
            let r = preflight(&bridge, path, origin, method).await;
            assert_eq!(r.status(), 204, "{path} {origin}");
            let h = r.headers();
            assert_readable_from(h, origin);
            assert_eq!(
                header(h, "access-control-allow-methods"),
                Some(methods),
                "{path}"
            );
            assert_eq!(
                header(h, "access-control-allow-headers"),
                Some("Authorization, Content-Type, DPoP"),
                "{path}"
            );
            assert_eq!(header(h, "access-control-max-age"), Some("600"), "{path}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_preflight_from_an_origin_no_client_allows_gets_204_without_cors_headers() {
    let bridge = bridge().await;
    for path in ["/token", "/revoke", "/userinfo"] {
        let r = preflight(&bridge, path, NOBODY_S_ORIGIN, "POST").await;
        assert_eq!(r.status(), 204, "{path}");
        assert_no_cors(r.headers());
        assert!(varies_by_origin(r.headers()), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_public_client_s_loopback_redirect_uri_allows_its_loopback_origin_on_any_port() {
    let bridge = bridge().await;
    for origin in [
        "http://127.0.0.1:43210",
        "http://127.0.0.1",
        "http://[::1]:43210",
        // `native`'s localhost redirect URI: its exact origin.
        "http://localhost:8400",
    ] {
        let r = preflight(&bridge, "/token", origin, "POST").await;
        assert_readable_from(r.headers(), origin);
    }
    for origin in [
        "http://localhost:43210",
        "https://127.0.0.1:43210",
        "http://127.0.0.2:43210",
        "http://127.0.0.1:65536",
    ] {
        let r = preflight(&bridge, "/token", origin, "POST").await;
        assert_no_cors(r.headers());
    }
    // And a native app's token request from a loopback page on any port.
    let (back, verifier) = sign_in(&bridge, "native", "http://127.0.0.1:51004/callback").await;
    let code = param(&back, "code").unwrap();
    let r = redeem(
        &bridge,
        Some("http://127.0.0.1:51004"),
        "native",
        &code,
        "http://127.0.0.1:51004/callback",
        &verifier,
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_readable_from(r.headers(), "http://127.0.0.1:51004");
}
