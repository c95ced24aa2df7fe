//! `private_key_jwt` client authentication (OIDC Core §9, RFC 7523): an
//! application signs a short JWT with its private key instead of sending a
//! secret. Keys registered inline (`jwks`) or published at a `jwks_uri`
//! (fetched, cached, refetched on a new `kid`, standing in when the URL
//! fails); every algorithm (ES256, EdDSA, RS256, PS256) through a real
//! relying-party library; every endpoint that authenticates clients; the
//! assertions that must be refused; single use of `jti` on both stores; the
//! config refusals of check-config and discovery.

use crate::common;

use std::time::{Duration, Instant};

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::bridge::{BASIC, Bridge, POST, REDIRECT_URI, Setup, config_text, free_port};
use common::browser::{Browser, auth_params, param};
use common::json_server::JsonServer;
use common::jws::{Key, now, random_id};
use common::rp::{DiscoveredClient, discover, library_http};
use openidconnect::core::{CoreAuthenticationFlow, CoreClient};
use openidconnect::{
    AuthType, AuthorizationCode, ClientId, CsrfToken, Nonce, PkceCodeChallenge, RedirectUrl,
    TokenResponse,
};
use serde_json::{Value, json};

const ADA: &str = "U0000000001";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
const KEY_FETCHES: &str = "bridge_client_key_fetches_total";

// ------------------------------------------------------------------ keys

/// Client assertions (RFC 7523) by a client's key.
trait Assertions {
    /// The usual header: this key's alg and kid.
    fn header(&self) -> Value;
    /// A valid assertion of `client` for the audience `aud`.
    fn assertion(&self, client: &str, aud: impl Into<Value>) -> String;
}

impl Assertions for Key {
    fn header(&self) -> Value {
        json!({"alg": self.alg, "kid": self.kid, "typ": "JWT"})
    }

    fn assertion(&self, client: &str, aud: impl Into<Value>) -> String {
        self.sign(&self.header(), &claims(client, aud))
    }
}

/// The claims of a valid assertion: two minutes to live, a fresh `jti`.
fn claims(client: &str, aud: impl Into<Value>) -> Value {
    json!({
        "iss": client,
        "sub": client,
        "aud": aud.into(),
        "iat": now(),
        "exp": now() + 120,
        "jti": random_id(),
    })
}

/// `base` with `changes` applied; a null removes the claim.
fn changed(mut base: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            base.as_object_mut().unwrap().remove(k);
        } else {
            base[k] = v.clone();
        }
    }
    base
}

// ------------------------------------------------------------------ config

/// A JSON value written as a TOML inline value.
fn toml_inline(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let members: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{} = {}", serde_json::to_string(k).unwrap(), toml_inline(v)))
                .collect();
            format!("{{ {} }}", members.join(", "))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(toml_inline).collect();
            format!("[{}]", items.join(", "))
        }
        other => other.to_string(),
    }
}

/// `jwks = { keys = [...] }` for a client's table.
fn inline_keys(keys: &[Value]) -> String {
    format!("jwks = {}", toml_inline(&json!({ "keys": keys })))
}

fn jwks_uri(server: &JsonServer) -> String {
    format!("jwks_uri = \"{}\"", server.url)
}

/// A `[[clients]]` table of a `private_key_jwt` client; `more`: its keys
/// and any other setting.
fn keyed_client(client_id: &str, more: &str) -> String {
    format!(
        r#"
[[clients]]
client_id = "{client_id}"
redirect_uris = ["{REDIRECT_URI}"]
token_endpoint_auth_method = "private_key_jwt"
{more}
"#
    )
}

fn with_clients(tables: &[String]) -> Setup {
    Setup {
        extra_toml: tables.concat(),
        ..Setup::default()
    }
}

// ------------------------------------------------------------------ requests

/// POSTs `form` to `path` with the assertion as the client's credential.
async fn with_assertion(
    bridge: &Bridge,
    path: &str,
    assertion: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    post_assertion(&bridge.url(path), assertion, form).await
}

async fn post_assertion(url: &str, assertion: &str, form: &[(&str, &str)]) -> reqwest::Response {
    let mut form = form.to_vec();
    form.push(("client_assertion_type", JWT_BEARER));
    form.push(("client_assertion", assertion));
    reqwest::Client::new()
        .post(url)
        .form(&form)
        .send()
        .await
        .unwrap()
}

/// A code exchange with an unknown code: a client that authenticated gets
/// `invalid_grant`, one that did not `invalid_client`. Nothing is used up.
const BOGUS_CODE: [(&str, &str); 3] = [
    ("grant_type", "authorization_code"),
    ("code", "no-such-code"),
    ("redirect_uri", REDIRECT_URI),
];

/// Status and `error` of an answer.
async fn outcome(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let error = body["error"].as_str().unwrap_or_default().to_string();
    (status, error)
}

fn authenticated() -> (u16, String) {
    (400, "invalid_grant".into())
}

fn invalid_client() -> (u16, String) {
    (401, "invalid_client".into())
}

/// The assertion presented at the token endpoint with an unknown code.
async fn at_token(bridge: &Bridge, assertion: &str) -> (u16, String) {
    outcome(with_assertion(bridge, "/token", assertion, &BOGUS_CODE).await).await
}

async fn key_fetches(bridge: &Bridge, client_id: &str, outcome: &str) -> f64 {
    common::metric(
        &bridge.metrics().await,
        KEY_FETCHES,
        &[("client_id", client_id), ("outcome", outcome)],
    )
}

/// Signs Ada in and returns the code (no PKCE: a confidential client).
async fn code_for(bridge: &Bridge, client_id: &str) -> String {
    let back = Browser::new()
        .sign_in(bridge, &auth_params(client_id, "st", "n"), ADA)
        .await;
    param(&back, "code").unwrap_or_else(|| panic!("no code: {back}"))
}

async fn redeem_with(bridge: &Bridge, code: &str, assertion: &str) -> reqwest::Response {
    with_assertion(
        bridge,
        "/token",
        assertion,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT_URI),
        ],
    )
    .await
}

// ------------------------------------------------------------------ the library

/// A whole sign-in through `openidconnect`, whose code exchange carries the
/// assertion `sign` makes for the token endpoint's URL; the library checks
/// the ID token (signature, issuer, audience, nonce).
async fn library_sign_in(bridge: &Bridge, client_id: &str, sign: impl Fn(&str) -> String) {
    let metadata = discover(bridge).await;
    let token_endpoint = metadata
        .token_endpoint()
        .expect("a token endpoint")
        .to_string();
    let client: DiscoveredClient =
        CoreClient::from_provider_metadata(metadata, ClientId::new(client_id.to_string()), None)
            .set_redirect_uri(RedirectUrl::new(REDIRECT_URI.to_string()).unwrap())
            .set_auth_type(AuthType::RequestBody);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (authorize_url, csrf, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge)
        .url();

    let browser = Browser::new();
    let r = browser.get(authorize_url.as_str()).await;
    assert_eq!(r.status(), 302, "{client_id}: {:?}", r.text().await);
    let slack = common::browser::location(&r);
    let callback = browser.slack_decide(&slack, ADA).await;
    let r = browser.get(callback.as_str()).await;
    assert_eq!(r.status(), 302, "{client_id}: {:?}", r.text().await);
    let back = common::browser::location(&r);
    assert_eq!(
        param(&back, "state").as_deref(),
        Some(csrf.secret().as_str())
    );
    let code = param(&back, "code").expect("a code");

    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .expect("discovery gave a token endpoint")
        .set_pkce_verifier(verifier)
        .add_extra_param("client_assertion_type", JWT_BEARER)
        .add_extra_param("client_assertion", sign(&token_endpoint))
        .request_async(&library_http())
        .await
        .unwrap_or_else(|e| panic!("{client_id}: the code exchange fails: {e:?}"));
    let id_token = tokens.id_token().expect("an id_token");
    let claims = id_token
        .claims(&client.id_token_verifier(), &nonce)
        .unwrap_or_else(|e| panic!("{client_id}: the library rejects the ID token: {e:?}"));
    assert_eq!(claims.subject().as_str(), "T0000000001:U0000000001");
    assert_eq!(
        claims
            .audiences()
            .iter()
            .map(|a| a.as_str())
            .collect::<Vec<_>>(),
        vec![client_id]
    );
}

// ------------------------------------------------------------------ tests

#[tokio::test(flavor = "multi_thread")]
async fn an_es256_assertion_with_inline_keys_authenticates_the_librarys_code_exchange() {
    let key = Key::es256().with_kid("es-1");
    let bridge = Bridge::start(with_clients(&[keyed_client(
        "rp-es256",
        &inline_keys(&[key.jwk()]),
    )]))
    .await;
    library_sign_in(&bridge, "rp-es256", |aud| key.assertion("rp-es256", aud)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn eddsa_keys_at_a_jwks_uri_and_rsa_keys_with_rs256_or_ps256_authenticate_code_exchanges() {
    let ed = Key::ed25519().with_kid("ed-1");
    let rsa = Key::rsa("RS256").with_kid("rsa-1");
    let published = JsonServer::start(json!({ "keys": [ed.jwk()] })).await;
    let bridge = Bridge::start(with_clients(&[
        keyed_client("rp-eddsa", &jwks_uri(&published)),
        keyed_client("rp-rsa", &inline_keys(&[rsa.jwk()])),
    ]))
    .await;
    assert_eq!(published.gets(), 0, "fetched when first needed");

    library_sign_in(&bridge, "rp-eddsa", |aud| ed.assertion("rp-eddsa", aud)).await;
    assert_eq!(published.gets(), 1);
    // aud may also be the issuer itself.
    library_sign_in(&bridge, "rp-eddsa", |_| {
        ed.assertion("rp-eddsa", bridge.base.as_str())
    })
    .await;
    assert_eq!(published.gets(), 1, "the keys are cached");

    // One RSA key, either padding; aud as an array.
    library_sign_in(&bridge, "rp-rsa", |aud| {
        rsa.assertion("rp-rsa", json!([aud]))
    })
    .await;
    library_sign_in(&bridge, "rp-rsa", |aud| {
        let header = json!({"alg": "PS256", "kid": "rsa-1"});
        rsa.sign(&header, &claims("rp-rsa", aud))
    })
    .await;
    assert_eq!(key_fetches(&bridge, "rp-eddsa", "ok").await, 1.0);
}

async fn a_replayed_assertion_is_refused(mut setup: Setup) {
    let key = Key::es256().with_kid("replay-1");
    setup
        .extra_toml
        .push_str(&keyed_client("rp-replay", &inline_keys(&[key.jwk()])));
    let bridge = Bridge::start(setup).await;
    let token_url = bridge.url("/token");

    let first = key.assertion("rp-replay", token_url.as_str());
    let code = code_for(&bridge, "rp-replay").await;
    let r = redeem_with(&bridge, &code, &first).await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);

    // A stolen assertion is useless for another code...
    let code = code_for(&bridge, "rp-replay").await;
    assert_eq!(
        outcome(redeem_with(&bridge, &code, &first).await).await,
        invalid_client(),
        "the same assertion again"
    );
    // ... and so is its jti under a new signature and a later exp ...
    let jti = jwt_claim(&first, "jti");
    let again = key.sign(
        &key.header(),
        &changed(
            claims("rp-replay", token_url.as_str()),
            json!({"jti": jti, "exp": now() + 300}),
        ),
    );
    assert_eq!(
        outcome(redeem_with(&bridge, &code, &again).await).await,
        invalid_client(),
        "the same jti in a new assertion"
    );
    // ... or at another endpoint.
    let r = with_assertion(&bridge, "/introspect", &first, &[("token", "x")]).await;
    assert_eq!(outcome(r).await, invalid_client(), "at /introspect");
    // The refusals did not use the code up: a fresh assertion redeems it.
    let fresh = key.assertion("rp-replay", token_url.as_str());
    let r = redeem_with(&bridge, &code, &fresh).await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);

    // Sent several times at once, an assertion still authenticates once.
    let racing = key.assertion("rp-replay", token_url.as_str());
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let (url, racing) = (token_url.clone(), racing.clone());
            tokio::spawn(
                async move { outcome(post_assertion(&url, &racing, &BOGUS_CODE).await).await },
            )
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers.sort();
    let mut expected = vec![invalid_client(); 5];
    expected.insert(0, authenticated());
    assert_eq!(answers, expected, "exactly one of the concurrent uses");
}

fn jwt_claim(jwt: &str, name: &str) -> Value {
    common::browser::jwt_claims(jwt)[name].clone()
}

crate::on_both_stores!(a_replayed_assertion_is_refused);

#[tokio::test(flavor = "multi_thread")]
async fn assertions_that_do_not_hold_are_refused() {
    let key = Key::es256().with_kid("ec-1");
    let other = Key::es256().with_kid("other-1");
    let pinned_ec = Key::es256().with_kid("pin-ec");
    let pinned_ed = Key::ed25519().with_kid("pin-ed");
    let stranger = Key::es256().with_kid("ec-1");
    let stranger_ed = Key::ed25519().with_kid("ec-1");
    let bridge = Bridge::start(with_clients(&[
        keyed_client("rp-keyed", &inline_keys(&[key.jwk()])),
        keyed_client("rp-other", &inline_keys(&[other.jwk()])),
        keyed_client(
            "rp-pinned",
            &format!(
                "{}\ntoken_endpoint_auth_signing_alg = \"ES256\"",
                inline_keys(&[pinned_ec.jwk(), pinned_ed.jwk()])
            ),
        ),
    ]))
    .await;
    let issuer = bridge.base.clone();
    let token_url = bridge.url("/token");
    let valid = || claims("rp-keyed", token_url.as_str());
    let signed = |changes: Value| key.sign(&key.header(), &changed(valid(), changes));

    // The controls: each client gets past authentication.
    assert_eq!(
        at_token(&bridge, &key.assertion("rp-keyed", issuer.as_str())).await,
        authenticated()
    );
    assert_eq!(
        at_token(&bridge, &pinned_ec.assertion("rp-pinned", issuer.as_str())).await,
        authenticated()
    );
    let no_kid = key.sign(&json!({"alg": "ES256"}), &valid());
    assert_eq!(
        at_token(&bridge, &no_kid).await,
        authenticated(),
        "no kid: each key tried"
    );
    // Clock skew within the 30 s leeway, and the longest lifetime, pass.
    for (why, changes) in [
        ("exp just past", json!({"exp": now() - 10})),
        (
            "nbf and iat just ahead",
            json!({"nbf": now() + 20, "iat": now() + 20}),
        ),
        ("exp 600 s ahead", json!({"exp": now() + 600})),
    ] {
        assert_eq!(
            at_token(&bridge, &signed(changes)).await,
            authenticated(),
            "{why}"
        );
    }

    let hs256 = {
        // The classic confusion: the public key as an HMAC secret.
        let header = json!({"alg": "HS256", "kid": "ec-1"});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(valid().to_string())
        );
        let secret = hmac::Key::new(hmac::HMAC_SHA256, key.jwk().to_string().as_bytes());
        let tag = hmac::sign(&secret, input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    };
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({"alg": "none"}).to_string()),
        URL_SAFE_NO_PAD.encode(valid().to_string())
    );
    let tampered = {
        let good = signed(json!({}));
        let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
        parts[1] =
            URL_SAFE_NO_PAD.encode(changed(valid(), json!({"exp": now() + 500})).to_string());
        parts.join(".")
    };
    let rows: Vec<(&str, String)> = vec![
        (
            "iss naming another client",
            key.sign(
                &key.header(),
                &changed(valid(), json!({"iss": "rp-other", "sub": "rp-other"})),
            ),
        ),
        (
            "iss unknown",
            signed(json!({"iss": "nobody", "sub": "nobody"})),
        ),
        ("iss missing", signed(json!({"iss": null}))),
        ("sub another client", signed(json!({"sub": "rp-other"}))),
        ("sub missing", signed(json!({"sub": null}))),
        (
            "aud another server",
            signed(json!({"aud": "https://elsewhere.example"})),
        ),
        (
            "aud another endpoint",
            signed(json!({"aud": bridge.url("/revoke")})),
        ),
        (
            "aud the issuer with a slash",
            signed(json!({"aud": format!("{issuer}/")})),
        ),
        (
            "aud an array of others",
            signed(json!({"aud": ["https://elsewhere.example"]})),
        ),
        ("aud missing", signed(json!({"aud": null}))),
        (
            "expired",
            signed(json!({"exp": now() - 120, "iat": now() - 300})),
        ),
        (
            "expired just past the leeway",
            signed(json!({"exp": now() - 31})),
        ),
        ("exp too far ahead", signed(json!({"exp": now() + 3600}))),
        (
            "exp just too far ahead",
            signed(json!({"exp": now() + 660})),
        ),
        ("exp missing", signed(json!({"exp": null}))),
        (
            "exp not a number",
            signed(json!({"exp": (now() + 60).to_string()})),
        ),
        ("exp the largest integer", signed(json!({"exp": i64::MAX}))),
        ("nbf in the future", signed(json!({"nbf": now() + 300}))),
        ("iat in the future", signed(json!({"iat": now() + 300}))),
        ("jti missing", signed(json!({"jti": null}))),
        ("jti empty", signed(json!({"jti": ""}))),
        (
            "signed by an unregistered key with the registered kid",
            stranger.sign(&stranger.header(), &valid()),
        ),
        (
            "signed by an unregistered key without kid",
            stranger.sign(&json!({"alg": "ES256"}), &valid()),
        ),
        (
            "a kid the client does not have",
            key.sign(&json!({"alg": "ES256", "kid": "nope"}), &valid()),
        ),
        (
            "EdDSA on the client's EC key",
            stranger_ed.sign(&json!({"alg": "EdDSA", "kid": "ec-1"}), &valid()),
        ),
        (
            "an alg other than the client's token_endpoint_auth_signing_alg",
            pinned_ed.assertion("rp-pinned", issuer.as_str()),
        ),
        (
            "a key embedded in the header (jwk)",
            stranger.sign(&json!({"alg": "ES256", "jwk": stranger.jwk()}), &valid()),
        ),
        (
            "a key set named in the header (jku)",
            stranger.sign(
                &json!({"alg": "ES256", "kid": "ec-1", "jku": "http://127.0.0.1:9/jwks"}),
                &valid(),
            ),
        ),
        ("HS256 with the public key as secret", hs256),
        ("alg none", unsigned),
        ("claims changed after signing", tampered),
        (
            "crit in the header",
            key.sign(
                &json!({"alg": "ES256", "kid": "ec-1", "crit": ["exp"]}),
                &valid(),
            ),
        ),
        (
            "for a client registered with a secret",
            key.sign(
                &key.header(),
                &changed(valid(), json!({"iss": BASIC.0, "sub": BASIC.0})),
            ),
        ),
        ("not a JWT", "not-a-jwt".to_string()),
    ];
    for (why, assertion) in &rows {
        assert_eq!(
            at_token(&bridge, assertion).await,
            invalid_client(),
            "{why}"
        );
    }

    // client_id in the body must name the assertion's client. The bridge
    // refuses a mismatch as a malformed request (as it does with Basic).
    let with_client_id = |client_id: &'static str| {
        let mut form = BOGUS_CODE.to_vec();
        form.push(("client_id", client_id));
        form
    };
    let fresh = || key.assertion("rp-keyed", token_url.as_str());
    let r = with_assertion(&bridge, "/token", &fresh(), &with_client_id("rp-other")).await;
    assert_eq!(
        outcome(r).await,
        (400, "invalid_request".into()),
        "client_id differing from iss"
    );
    let r = with_assertion(&bridge, "/token", &fresh(), &with_client_id("rp-keyed")).await;
    assert_eq!(outcome(r).await, authenticated(), "client_id matching iss");
    assert!(
        bridge.log().lines().all(|l| !l.contains("panicked")),
        "no request made the bridge panic:\n{}",
        bridge.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_private_key_jwt_client_cannot_authenticate_with_its_id_alone_or_a_secret() {
    let key = Key::es256().with_kid("k-1");
    let bridge = Bridge::start(with_clients(&[keyed_client(
        "rp-keyed",
        &inline_keys(&[key.jwk()]),
    )]))
    .await;
    let http = reqwest::Client::new();
    let secret = "a-secret-of-forty-characters-0123456789ab";
    let mut id_alone = BOGUS_CODE.to_vec();
    id_alone.push(("client_id", "rp-keyed"));
    let r = http
        .post(bridge.url("/token"))
        .form(&id_alone)
        .send()
        .await
        .unwrap();
    assert_eq!(outcome(r).await, invalid_client(), "client_id alone");
    let mut posted = id_alone.clone();
    posted.push(("client_secret", secret));
    let r = http
        .post(bridge.url("/token"))
        .form(&posted)
        .send()
        .await
        .unwrap();
    assert_eq!(outcome(r).await, invalid_client(), "client_secret_post");
    let r = http
        .post(bridge.url("/token"))
        .basic_auth("rp-keyed", Some(secret))
        .form(&BOGUS_CODE)
        .send()
        .await
        .unwrap();
    assert_eq!(outcome(r).await, invalid_client(), "client_secret_basic");
    // Nor at the pushed authorization endpoint, where a public client
    // authenticates by its id.
    let r = http
        .post(bridge.url("/par"))
        .form(&auth_params("rp-keyed", "st", "n"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        outcome(r).await,
        invalid_client(),
        "client_id alone at /par"
    );
    // Its assertion works; and a secret client cannot use an assertion.
    assert_eq!(
        at_token(&bridge, &key.assertion("rp-keyed", bridge.base.as_str())).await,
        authenticated()
    );
    let r = http
        .post(bridge.url("/token"))
        .basic_auth(POST.0, Some(POST.1))
        .form(&BOGUS_CODE)
        .send()
        .await
        .unwrap();
    assert_eq!(outcome(r).await, invalid_client(), "app-post with Basic");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_client_authenticating_endpoint_accepts_an_assertion_naming_it() {
    let key = Key::es256().with_kid("all-1");
    let bridge = Bridge::start(with_clients(&[keyed_client(
        "rp-all",
        &format!(
            "{}\ngrant_types = [\"authorization_code\", \"{DEVICE_GRANT}\"]",
            inline_keys(&[key.jwk()])
        ),
    )]))
    .await;
    let for_endpoint = |path: &str| key.assertion("rp-all", bridge.url(path));

    // PAR (RFC 9126), then the sign-in with the request_uri alone.
    let r = with_assertion(
        &bridge,
        "/par",
        &for_endpoint("/par"),
        &auth_params("rp-all", "pushed", "n"),
    )
    .await;
    assert_eq!(r.status(), 201);
    let pushed: Value = r.json().await.unwrap();
    let request_uri = pushed["request_uri"].as_str().unwrap();
    let back = Browser::new()
        .sign_in(
            &bridge,
            &[("client_id", "rp-all"), ("request_uri", request_uri)],
            ADA,
        )
        .await;
    assert_eq!(param(&back, "state").as_deref(), Some("pushed"));
    let code = param(&back, "code").expect("a code");

    // The token endpoint; aud an array holding its URL.
    let assertion = key.assertion(
        "rp-all",
        json!(["https://elsewhere.example", bridge.url("/token")]),
    );
    let r = redeem_with(&bridge, &code, &assertion).await;
    assert_eq!(r.status(), 200);
    let tokens: Value = r.json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap();

    // Introspection and revocation.
    let r = with_assertion(
        &bridge,
        "/introspect",
        &for_endpoint("/introspect"),
        &[("token", access)],
    )
    .await;
    assert_eq!(r.status(), 200);
    let about: Value = r.json().await.unwrap();
    assert_eq!(
        (about["active"].clone(), about["client_id"].clone()),
        (json!(true), json!("rp-all"))
    );
    let r = with_assertion(
        &bridge,
        "/revoke",
        &for_endpoint("/revoke"),
        &[("token", access)],
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = with_assertion(
        &bridge,
        "/introspect",
        &key.assertion("rp-all", bridge.base.as_str()),
        &[("token", access)],
    )
    .await;
    let about: Value = r.json().await.unwrap();
    assert_eq!(about["active"], false, "revoked");

    // The device authorization endpoint (RFC 8628).
    let r = with_assertion(
        &bridge,
        "/device_authorization",
        &for_endpoint("/device_authorization"),
        &[("scope", "openid")],
    )
    .await;
    assert_eq!(r.status(), 200);
    let device: Value = r.json().await.unwrap();
    assert!(
        device["device_code"].is_string() && device["user_code"].is_string(),
        "{device}"
    );

    // The token endpoint's URL is good at every endpoint.
    let r = with_assertion(
        &bridge,
        "/par",
        &for_endpoint("/token"),
        &auth_params("rp-all", "st", "n"),
    )
    .await;
    assert_eq!(r.status(), 201);
    let r = with_assertion(
        &bridge,
        "/device_authorization",
        &for_endpoint("/token"),
        &[("scope", "openid")],
    )
    .await;
    assert_eq!(r.status(), 200);

    // An assertion made for one endpoint is not good at another.
    let r = with_assertion(
        &bridge,
        "/introspect",
        &for_endpoint("/par"),
        &[("token", access)],
    )
    .await;
    assert_eq!(outcome(r).await, invalid_client());
}

/// Waits until `since` is `gap` in the past.
async fn wait_past(since: Instant, gap: Duration) {
    let left = gap.saturating_sub(since.elapsed());
    tokio::time::sleep(left).await;
}

/// The bridge refetches a client's keys at most once per 10 s.
const REFETCH_GAP: Duration = Duration::from_millis(10_500);

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_key_is_fetched_once_when_its_kid_is_first_seen() {
    let old = Key::es256().with_kid("rot-1");
    let new = Key::es256().with_kid("rot-2");
    let published = JsonServer::start(json!({ "keys": [old.jwk()] })).await;
    let bridge = Bridge::start(with_clients(&[keyed_client(
        "rp-rotating",
        &jwks_uri(&published),
    )]))
    .await;
    let aud = bridge.base.clone();

    assert_eq!(
        at_token(&bridge, &old.assertion("rp-rotating", aud.as_str())).await,
        authenticated()
    );
    let fetched = Instant::now();
    assert_eq!(published.gets(), 1);

    // The client publishes its new key next to the old one.
    published.set(json!({ "keys": [old.jwk(), new.jwk()] }));
    // Within 10 s of a fetch, a kid never seen does not fetch again.
    assert_eq!(
        at_token(&bridge, &new.assertion("rp-rotating", aud.as_str())).await,
        invalid_client()
    );
    assert_eq!(published.gets(), 1, "no refetch within 10 s of the last");

    wait_past(fetched, REFETCH_GAP).await;
    assert_eq!(
        at_token(&bridge, &new.assertion("rp-rotating", aud.as_str())).await,
        authenticated(),
        "the new kid is fetched"
    );
    assert_eq!(published.gets(), 2, "exactly one refetch");

    // A kid that is not there, repeated, fetches no more.
    for _ in 0..3 {
        let unknown = new.sign(
            &json!({"alg": "ES256", "kid": "rot-9"}),
            &claims("rp-rotating", aud.as_str()),
        );
        assert_eq!(at_token(&bridge, &unknown).await, invalid_client());
    }
    assert_eq!(
        published.gets(),
        2,
        "an unknown kid within 10 s does not refetch"
    );
    assert_eq!(
        at_token(&bridge, &old.assertion("rp-rotating", aud.as_str())).await,
        authenticated()
    );
    assert_eq!(published.gets(), 2);
    assert_eq!(key_fetches(&bridge, "rp-rotating", "ok").await, 2.0);
    assert_eq!(key_fetches(&bridge, "rp-rotating", "failed").await, 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_jwks_uri_is_503_without_keys_and_the_last_keys_stand_in_otherwise() {
    let down_key = Key::es256().with_kid("down-1");
    let cached_key = Key::es256().with_kid("cached-1");
    let down = JsonServer::start(json!({ "keys": [down_key.jwk()] })).await;
    down.fail();
    let flaky = JsonServer::start(json!({ "keys": [cached_key.jwk()] })).await;
    let huge_key = Key::es256().with_kid("huge-1");
    // Over the 64 KiB cap.
    let huge = JsonServer::start(json!({
        "keys": [huge_key.jwk()],
        "padding": "x".repeat(70 * 1024),
    }))
    .await;
    let bridge = Bridge::start(with_clients(&[
        keyed_client("rp-down", &jwks_uri(&down)),
        keyed_client("rp-cached", &jwks_uri(&flaky)),
        keyed_client("rp-huge", &jwks_uri(&huge)),
    ]))
    .await;
    let aud = bridge.base.clone();

    // Never fetched: the client cannot authenticate for now.
    let r = with_assertion(
        &bridge,
        "/token",
        &down_key.assertion("rp-down", aud.as_str()),
        &BOGUS_CODE,
    )
    .await;
    assert_eq!(outcome(r).await, (503, "temporarily_unavailable".into()));
    let refused_at = Instant::now();
    assert_eq!(key_fetches(&bridge, "rp-down", "refused").await, 1.0);
    // Back up, but the failure is remembered for the refetch gap: requests
    // that are not authenticated yet do not make a fetch each.
    down.set(json!({ "keys": [down_key.jwk()] }));
    let r = with_assertion(
        &bridge,
        "/token",
        &down_key.assertion("rp-down", aud.as_str()),
        &BOGUS_CODE,
    )
    .await;
    assert_eq!(outcome(r).await, (503, "temporarily_unavailable".into()));
    assert_eq!(down.gets(), 1, "not tried again within the gap");
    // Past it: the client can.
    wait_past(refused_at, REFETCH_GAP).await;
    assert_eq!(
        at_token(&bridge, &down_key.assertion("rp-down", aud.as_str())).await,
        authenticated()
    );
    assert_eq!(key_fetches(&bridge, "rp-down", "ok").await, 1.0);
    // A key set larger than 64 KiB is not taken.
    let r = with_assertion(
        &bridge,
        "/token",
        &huge_key.assertion("rp-huge", aud.as_str()),
        &BOGUS_CODE,
    )
    .await;
    assert_eq!(outcome(r).await, (503, "temporarily_unavailable".into()));
    assert_eq!(key_fetches(&bridge, "rp-huge", "refused").await, 1.0);

    // Fetched once, then the URL fails: the keys at hand still serve.
    assert_eq!(
        at_token(&bridge, &cached_key.assertion("rp-cached", aud.as_str())).await,
        authenticated()
    );
    let fetched = Instant::now();
    flaky.fail();
    assert_eq!(
        at_token(&bridge, &cached_key.assertion("rp-cached", aud.as_str())).await,
        authenticated()
    );
    assert_eq!(flaky.gets(), 1);
    // A new kid past the refetch gap tries the URL; it fails, and the last
    // keys stand in: a refusal of the assertion, not a 503.
    wait_past(fetched, REFETCH_GAP).await;
    let unknown = |kid: &str| {
        cached_key.sign(
            &json!({"alg": "ES256", "kid": kid}),
            &claims("rp-cached", aud.as_str()),
        )
    };
    assert_eq!(
        at_token(&bridge, &unknown("cached-2")).await,
        invalid_client()
    );
    assert_eq!(flaky.gets(), 2);
    assert_eq!(
        at_token(&bridge, &cached_key.assertion("rp-cached", aud.as_str())).await,
        authenticated()
    );
    // The failed try counts for the gap too: unknown kids do not make the
    // bridge hammer a failing URL.
    assert_eq!(
        at_token(&bridge, &unknown("cached-3")).await,
        invalid_client()
    );
    assert_eq!(
        at_token(&bridge, &unknown("cached-4")).await,
        invalid_client()
    );
    assert_eq!(flaky.gets(), 2, "no refetch within 10 s of the failed one");
    let text = bridge.metrics().await;
    let count = |outcome: &str| {
        common::metric(
            &text,
            KEY_FETCHES,
            &[("client_id", "rp-cached"), ("outcome", outcome)],
        )
    };
    assert_eq!(
        (count("ok"), count("failed"), count("refused")),
        (1.0, 1.0, 0.0)
    );
}

/// Runs check-config on the harness's config with `extra` clients appended
/// (the harness registers six: the first extra one is `clients[6]`).
fn check_config(dir: &tempfile::TempDir, extra: &str) -> (bool, String) {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let setup = Setup {
        extra_toml: extra.to_string(),
        ..Setup::default()
    };
    let path = dir.path().join("bridge.toml");
    std::fs::write(
        &path,
        config_text(&base, port, "http://127.0.0.1:9", &setup, dir),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_slack-oidc-bridge"))
        .args(["check-config", "--config", path.to_str().unwrap()])
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .output()
        .expect("the binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_refuses_unusable_private_key_jwt_settings_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let ec = Key::es256().with_kid("ec").jwk();
    let ed = Key::ed25519().with_kid("ed").jwk();
    let keys = inline_keys(&[ec.clone(), ed.clone()]);
    let (ok, stderr) = check_config(
        &dir,
        &[
            keyed_client("rp-inline", &keys),
            keyed_client("rp-remote", "jwks_uri = \"https://app.example/jwks.json\""),
            keyed_client(
                "rp-pinned",
                &format!("{keys}\ntoken_endpoint_auth_signing_alg = \"EdDSA\""),
            ),
        ]
        .concat(),
    );
    assert!(ok, "a valid config: {stderr}");

    let mut private = ed.clone();
    private["d"] = json!(URL_SAFE_NO_PAD.encode([7u8; 32]));
    // A 1024-bit modulus, and the same behind zero octets that make it 257
    // octets long.
    let small = json!({"kty": "RSA", "e": "AQAB", "n": URL_SAFE_NO_PAD.encode([0xc5u8; 128])});
    let mut padded_bytes = vec![0u8; 129];
    padded_bytes.extend([0xc5u8; 128]);
    let padded = json!({"kty": "RSA", "e": "AQAB", "n": URL_SAFE_NO_PAD.encode(&padded_bytes)});
    let empty = json!({"kty": "RSA", "e": "AQAB", "n": ""});
    // (what, the client's settings, the key named, what the message says)
    let rows: Vec<(&str, String, &str, &str)> = vec![
        (
            "both jwks and jwks_uri",
            format!("{keys}\njwks_uri = \"https://app.example/jwks.json\""),
            "clients[6].jwks",
            "not both",
        ),
        (
            "neither jwks nor jwks_uri",
            String::new(),
            "clients[6].jwks",
            "jwks_uri",
        ),
        (
            "an empty key set",
            "jwks = { keys = [] }".into(),
            "clients[6].jwks.keys",
            "at least one key",
        ),
        (
            "a private member",
            inline_keys(&[ec.clone(), private]),
            "clients[6].jwks.keys[1]",
            "\"d\"",
        ),
        (
            "a small RSA key",
            inline_keys(&[small]),
            "clients[6].jwks.keys[0]",
            "1024 bits",
        ),
        (
            "a small RSA key padded with zero octets",
            inline_keys(&[padded]),
            "clients[6].jwks.keys[0]",
            "1024 bits",
        ),
        (
            "an empty RSA modulus",
            inline_keys(&[empty]),
            "clients[6].jwks.keys[0]",
            "0 bits",
        ),
        (
            "a symmetric key",
            inline_keys(&[json!({"kty": "oct", "k": "c2VjcmV0"})]),
            "clients[6].jwks.keys[0]",
            "private member",
        ),
        (
            "an http jwks_uri on another host",
            "jwks_uri = \"http://app.example/jwks.json\"".into(),
            "clients[6].jwks_uri",
            "https",
        ),
        (
            "a client_secret",
            format!("{keys}\nclient_secret = \"a-secret-of-forty-characters-0123456789ab\""),
            "clients[6].client_secret",
            "no secret",
        ),
        (
            "an unknown signing alg",
            format!("{keys}\ntoken_endpoint_auth_signing_alg = \"HS256\""),
            "clients[6].token_endpoint_auth_signing_alg",
            "RS256, PS256, ES256, EdDSA",
        ),
    ];
    for (why, settings, key, says) in rows {
        let (ok, stderr) = check_config(&dir, &keyed_client("rp-bad", &settings));
        assert!(!ok, "{why}: refused");
        assert!(
            stderr.contains(key) && stderr.contains(says),
            "{why}: names {key} and says {says:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{why}: {stderr}");
    }

    // Keys on a client of another method are a mistake too.
    let secret_client = format!(
        r#"
[[clients]]
client_id = "rp-secret"
client_secret = "a-secret-of-forty-characters-0123456789ab"
redirect_uris = ["{REDIRECT_URI}"]
{keys}
"#
    );
    let (ok, stderr) = check_config(&dir, &secret_client);
    assert!(!ok && stderr.contains("clients[6].jwks"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn discovery_lists_private_key_jwt_and_its_signing_algs() {
    let bridge = Bridge::start(Setup::default()).await;
    let doc: Value = reqwest::get(bridge.url("/.well-known/openid-configuration"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for endpoint in [
        "token_endpoint",
        "revocation_endpoint",
        "introspection_endpoint",
    ] {
        let methods = &doc[format!("{endpoint}_auth_methods_supported")];
        assert!(
            methods
                .as_array()
                .is_some_and(|m| m.contains(&json!("private_key_jwt"))),
            "{endpoint}: {methods}"
        );
        assert_eq!(
            doc[format!("{endpoint}_auth_signing_alg_values_supported")],
            json!(["RS256", "PS256", "ES256", "EdDSA"]),
            "{endpoint}"
        );
    }
    // The library reads them too.
    let metadata = discover(&bridge).await;
    let methods = metadata
        .token_endpoint_auth_methods_supported()
        .expect("listed");
    assert!(
        methods.contains(&openidconnect::core::CoreClientAuthMethod::PrivateKeyJwt),
        "{methods:?}"
    );
}

/// A `kid` is a hint (RFC 7515 §4.1.4): it picks the key that has it, and a
/// key registered without one may still be the signer; a key registered
/// with another `kid` is not tried.
#[tokio::test(flavor = "multi_thread")]
async fn a_kid_picks_its_key_and_a_key_registered_without_one_may_still_sign() {
    let bare = Key::es256();
    let named = Key::es256().with_kid("named-1");
    let bridge = Bridge::start(with_clients(&[
        keyed_client("rp-bare", &inline_keys(&[bare.public_jwk()])),
        keyed_client("rp-named", &inline_keys(&[named.jwk()])),
    ]))
    .await;
    let aud = bridge.base.clone();
    let with_kid = |key: &Key, client: &str, kid: &str| {
        key.sign(
            &json!({"alg": "ES256", "kid": kid}),
            &claims(client, aud.as_str()),
        )
    };
    assert_eq!(
        at_token(&bridge, &with_kid(&bare, "rp-bare", "any-kid")).await,
        authenticated()
    );
    assert_eq!(
        at_token(&bridge, &with_kid(&named, "rp-named", "named-1")).await,
        authenticated()
    );
    assert_eq!(
        at_token(&bridge, &with_kid(&named, "rp-named", "other-kid")).await,
        invalid_client()
    );
}
