//! Pushed authorization requests (RFC 9126): the application pushes its
//! request, authenticated, and sends the browser with the `request_uri`
//! alone; the request is checked when pushed, used once, only by the client
//! that pushed it, and can be made the rule per client or for all. On the
//! memory store and on Redis.

use crate::common;

use common::bridge::{BASIC, Bridge, POST, REDIRECT_URI, Setup};
use common::browser::{Browser, ClientAuth, auth_params, id_claims, location, param, redeem};
use serde_json::Value;

const ADA: &str = "U0000000001";

async fn push(
    bridge: &Bridge,
    (id, secret): (&str, &str),
    params: &[(&str, &str)],
) -> reqwest::Response {
    reqwest::Client::new()
        .post(bridge.url("/par"))
        .basic_auth(id, Some(secret))
        .form(params)
        .send()
        .await
        .unwrap()
}

async fn pushed_request_uri(bridge: &Bridge, params: &[(&str, &str)]) -> String {
    let r = push(bridge, BASIC, params).await;
    assert_eq!(r.status(), 201, "RFC 9126 §2.2");
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["expires_in"], 60);
    let uri = body["request_uri"].as_str().unwrap().to_string();
    assert!(
        uri.starts_with("urn:ietf:params:oauth:request_uri:"),
        "{uri}"
    );
    uri
}

async fn error_of(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    (
        status,
        body["error"].as_str().unwrap_or_default().to_string(),
    )
}

async fn a_pushed_request_signs_the_person_in_with_what_was_pushed(setup: Setup) {
    let bridge = Bridge::start(setup).await;
    let uri = pushed_request_uri(
        &bridge,
        &auth_params(BASIC.0, "pushed-state", "pushed-nonce"),
    )
    .await;
    // The browser carries only the client id and the request_uri.
    let back = Browser::new()
        .sign_in(
            &bridge,
            &[("client_id", BASIC.0), ("request_uri", &uri)],
            ADA,
        )
        .await;
    assert!(back.as_str().starts_with(REDIRECT_URI), "{back}");
    assert_eq!(param(&back, "state").as_deref(), Some("pushed-state"));
    let code = param(&back, "code").expect("a code");
    let r = redeem(&bridge, ClientAuth::Basic, &code, None).await;
    assert_eq!(r.status(), 200);
    let tokens: Value = r.json().await.unwrap();
    assert_eq!(id_claims(&tokens)["nonce"], "pushed-nonce");
}

async fn a_request_uri_is_used_once_and_only_by_its_client(setup: Setup) {
    let bridge = Bridge::start(setup).await;
    let uri = pushed_request_uri(&bridge, &auth_params(BASIC.0, "st", "n")).await;
    // Another client cannot use it, and the attempt uses it up.
    let r = Browser::new()
        .authorize(&bridge, &[("client_id", POST.0), ("request_uri", &uri)])
        .await;
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none(), "an error page");
    assert!(r.text().await.unwrap().contains("invalid_request_uri"));
    let r = Browser::new()
        .authorize(&bridge, &[("client_id", BASIC.0), ("request_uri", &uri)])
        .await;
    assert_eq!(r.status(), 400, "used once");

    let uri = pushed_request_uri(&bridge, &auth_params(BASIC.0, "st", "n")).await;
    let first = Browser::new()
        .authorize(&bridge, &[("client_id", BASIC.0), ("request_uri", &uri)])
        .await;
    assert_eq!(first.status(), 302, "on to Slack");
    let again = Browser::new()
        .authorize(&bridge, &[("client_id", BASIC.0), ("request_uri", &uri)])
        .await;
    assert_eq!(again.status(), 400, "a replayed request_uri");
}

async fn a_pushed_request_is_checked_when_pushed(setup: Setup) {
    let bridge = Bridge::start(setup).await;
    let mut bad_redirect = auth_params(BASIC.0, "st", "n");
    bad_redirect.retain(|(k, _)| *k != "redirect_uri");
    bad_redirect.push(("redirect_uri", "https://evil.example/cb"));
    assert_eq!(
        error_of(push(&bridge, BASIC, &bad_redirect).await).await,
        (400, "invalid_request".into())
    );
    let mut no_openid = auth_params(BASIC.0, "st", "n");
    no_openid.retain(|(k, _)| *k != "scope");
    no_openid.push(("scope", "email"));
    assert_eq!(
        error_of(push(&bridge, BASIC, &no_openid).await).await,
        (400, "invalid_scope".into())
    );
    let mut with_uri = auth_params(BASIC.0, "st", "n");
    with_uri.push(("request_uri", "urn:ietf:params:oauth:request_uri:x"));
    assert_eq!(
        error_of(push(&bridge, BASIC, &with_uri).await).await,
        (400, "invalid_request".into())
    );
    // Authenticated as at the token endpoint, and as the client it names.
    assert_eq!(
        error_of(
            push(
                &bridge,
                (BASIC.0, "wrong-secret-0123456789abcdef0123456"),
                &auth_params(BASIC.0, "st", "n")
            )
            .await
        )
        .await,
        (401, "invalid_client".into())
    );
    assert_eq!(
        error_of(push(&bridge, POST, &auth_params(BASIC.0, "st", "n")).await)
            .await
            .0,
        400,
        "pushed for another client"
    );
}

async fn a_client_that_requires_par_is_refused_a_plain_request(mut setup: Setup) {
    // The harness's first client is app-basic.
    setup.env.push((
        "BRIDGE_CLIENTS__0__REQUIRE_PUSHED_AUTHORIZATION_REQUESTS".into(),
        "true".into(),
    ));
    let bridge = Bridge::start(setup).await;
    let r = Browser::new()
        .authorize(&bridge, &auth_params(BASIC.0, "st", "n"))
        .await;
    let back = location(&r);
    assert_eq!(
        param(&back, "error").as_deref(),
        Some("invalid_request"),
        "{back}"
    );
    assert_eq!(param(&back, "state").as_deref(), Some("st"));
    // Other clients are not concerned; its pushed requests work.
    let r = Browser::new()
        .authorize(&bridge, &auth_params(POST.0, "st", "n"))
        .await;
    assert!(location(&r).as_str().starts_with(&bridge.standin.base_url));
    let uri = pushed_request_uri(&bridge, &auth_params(BASIC.0, "st", "n")).await;
    let r = Browser::new()
        .authorize(&bridge, &[("client_id", BASIC.0), ("request_uri", &uri)])
        .await;
    assert!(location(&r).as_str().starts_with(&bridge.standin.base_url));
}

async fn discovery_names_the_endpoint_and_the_global_rule(mut setup: Setup) {
    let bridge = Bridge::start(setup.clone()).await;
    let doc: Value = reqwest::get(bridge.url("/.well-known/openid-configuration"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        doc["pushed_authorization_request_endpoint"],
        bridge.url("/par")
    );
    assert_eq!(doc["require_pushed_authorization_requests"], false);
    drop(bridge);

    setup.env.push((
        "BRIDGE_REQUIRE_PUSHED_AUTHORIZATION_REQUESTS".into(),
        "true".into(),
    ));
    let bridge = Bridge::start(setup).await;
    let doc: Value = reqwest::get(bridge.url("/.well-known/openid-configuration"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["require_pushed_authorization_requests"], true);
    let r = Browser::new()
        .authorize(&bridge, &auth_params(POST.0, "st", "n"))
        .await;
    assert_eq!(
        param(&location(&r), "error").as_deref(),
        Some("invalid_request")
    );
}

crate::on_both_stores!(
    a_pushed_request_signs_the_person_in_with_what_was_pushed,
    a_request_uri_is_used_once_and_only_by_its_client,
    a_pushed_request_is_checked_when_pushed,
    a_client_that_requires_par_is_refused_a_plain_request,
    discovery_names_the_endpoint_and_the_global_rule,
);
