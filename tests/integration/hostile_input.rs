//! Generated hostile requests (proptest) against the bridge's own app, in
//! process: authorize, callback, token and the other back-channel endpoints.
//! Whatever arrives, the answer is a clean 4xx (or the normal answer), never a
//! 5xx or a panic; a redirect goes only to a registered URI or to Slack;
//! `state` comes back exactly and alone; no page carries request markup.

use std::collections::BTreeSet;

use actix_web::test::TestRequest;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use proptest::prelude::*;
use url::Url;

use crate::common;
use common::bridge::{BASIC, POST, PUBLIC, REDIRECT_URI, REFRESH};
use common::in_process::{Answer, Context, run_cases};

const CASES: u32 = 300;

/// Values built to break things: markup, header injection, parameter
/// smuggling, NUL, bidi overrides, long and non-ASCII text.
fn nasty() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("<script>alert(1)</script>".to_string()),
        Just("\"><img src=x onerror=alert(1)>".to_string()),
        Just("x\r\nSet-Cookie: stolen=1".to_string()),
        Just("a&code=forged&state=other".to_string()),
        Just("#fragment?x=1".to_string()),
        Just("\u{0}\u{202e}".to_string()),
        Just("//evil.example/cb".to_string()),
        Just("javascript:alert(1)".to_string()),
        Just("%FF%FE".to_string()),
        Just("é".repeat(3000)),
        ".{0,80}",
        "[ -~]{0,40}",
    ]
}

/// A redirect URI that is almost the registered one, or nothing like it.
fn redirect_uri() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just(REDIRECT_URI.to_string()),
        1 => prop::sample::select(vec![
            "http://127.0.0.1:9/cb/",
            "http://127.0.0.1:9/CB",
            "HTTP://127.0.0.1:9/cb",
            "http://127.0.0.1:90/cb",
            "http://127.0.0.1:9/cb?x=1",
            "http://127.0.0.1:9/cb#f",
            "http://127.0.0.1:9/cb/../cb",
            "http://127.0.0.1:9@evil.example/cb",
            "http://evil.example/cb",
            "//evil.example",
        ])
        .prop_map(str::to_string),
        1 => nasty(),
    ]
}

fn authorize_param() -> impl Strategy<Value = (String, String)> {
    prop_oneof![
        named(
            "client_id",
            pick(&["app-basic", "app-public", "app-refresh", "nobody"])
        ),
        named("redirect_uri", redirect_uri()),
        named(
            "response_type",
            pick(&["code", "token", "code id_token", "none"])
        ),
        named(
            "scope",
            pick(&[
                "openid",
                "openid email profile",
                "email",
                "openid offline_access"
            ])
        ),
        named("state", nasty()),
        named("nonce", nasty()),
        named(
            "prompt",
            pick(&["none", "login", "consent", "select_account", "none login"])
        ),
        named(
            "max_age",
            pick(&["0", "-1", "60", "1e3", "99999999999999999999999"])
        ),
        named(
            "code_challenge",
            pick(&["E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "short"])
        ),
        named("code_challenge_method", pick(&["S256", "plain", "s256"])),
        named("id_token_hint", pick(&["e30.e30.e30", "a.b.c", "x"])),
        named("response_mode", pick(&["query", "fragment", "form_post"])),
        named("ui_locales", pick(&["fr", "en fr", "de-CH"])),
        named("request", pick(&["e30.e30."])),
        named("request_uri", pick(&["https://evil.example/r"])),
        named("claims", pick(&["{\"userinfo\":{\"email\":null}}", "{"])),
        (nasty(), nasty()).boxed(),
    ]
}

/// One of the values a parameter takes, or a nasty one.
fn pick(values: &'static [&'static str]) -> BoxedStrategy<String> {
    prop_oneof![
        3 => prop::sample::select(values).prop_map(str::to_string),
        1 => nasty(),
    ]
    .boxed()
}

fn named(
    name: &'static str,
    values: impl Strategy<Value = String> + 'static,
) -> BoxedStrategy<(String, String)> {
    values.prop_map(move |v| (name.to_string(), v)).boxed()
}

/// How the pairs are put on the wire: well encoded, or with raw percent
/// escapes of arbitrary bytes (invalid UTF-8 among them).
#[derive(Debug, Clone)]
enum Wire {
    Encoded,
    RawBytes(Vec<u8>),
}

fn wire() -> impl Strategy<Value = Wire> {
    prop_oneof![
        5 => Just(Wire::Encoded),
        1 => prop::collection::vec(any::<u8>(), 1..12).prop_map(Wire::RawBytes),
    ]
}

/// Encoded pairs, cut to fit in a URI the HTTP types accept (64 KiB); the
/// bridge's own limit (8 KiB) is far below, so a cut case is still refused.
fn encode(pairs: &[(String, String)], wire: &Wire) -> String {
    let mut kept = Vec::new();
    let mut size = 0;
    for pair in pairs {
        size += serde_urlencoded::to_string([pair]).unwrap().len() + 1;
        if size > 48 * 1024 {
            break;
        }
        kept.push(pair.clone());
    }
    let mut text = serde_urlencoded::to_string(&kept).unwrap();
    if let Wire::RawBytes(bytes) = wire {
        let escaped: String = bytes.iter().map(|b| format!("%{b:02X}")).collect();
        text.push_str(&format!("&raw={escaped}&{escaped}=v"));
    }
    text
}

/// A valid request whose pairs are then replaced, added to or repeated.
fn authorize_request() -> impl Strategy<Value = (Vec<(String, String)>, Wire, bool, [u8; 3])> {
    (
        prop::collection::vec(authorize_param(), 0..8),
        any::<bool>(),
        wire(),
        any::<bool>(),
        any::<[u8; 3]>(),
    )
        .prop_map(|(changes, start_valid, wire, post, peer)| {
            let mut pairs: Vec<(String, String)> = if start_valid {
                [
                    ("client_id", BASIC.0),
                    ("redirect_uri", REDIRECT_URI),
                    ("response_type", "code"),
                    ("scope", "openid"),
                    ("state", "st"),
                ]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
            } else {
                Vec::new()
            };
            for (k, v) in changes {
                // Half replace a value, half add (which may repeat a name).
                match pairs.iter_mut().find(|(name, _)| *name == k) {
                    Some(pair) if v.len() % 2 == 0 => pair.1 = v,
                    _ => pairs.push((k, v)),
                }
            }
            (pairs, wire, post, peer)
        })
}

/// Every generated request comes from its own loopback address, so that the
/// per-address rate limit does not turn the run into a run of 429s.
fn from(peer: [u8; 3]) -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, peer[0], peer[1], peer[2]], 40000))
}

fn values_of(pairs: &[(String, String)], name: &str) -> Vec<String> {
    pairs
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .collect()
}

/// No page carries markup that came in with the request.
fn assert_page_is_clean(answer: &Answer) -> Result<(), TestCaseError> {
    for needle in ["<script", "<img", "onerror=", "stolen=1"] {
        prop_assert!(
            !answer.body.contains(needle),
            "{needle} reflected: {}",
            answer.body
        );
    }
    Ok(())
}

fn assert_no_server_error(answer: &Answer) -> Result<(), TestCaseError> {
    prop_assert!(answer.status < 500, "{answer:?}");
    prop_assert!(
        !answer.headers.contains_key("set-cookie")
            || answer
                .headers
                .get_all("set-cookie")
                .all(|c| !c.as_bytes().starts_with(b"stolen")),
        "{answer:?}"
    );
    Ok(())
}

/// A redirect goes to the registered URI with one state (the one sent, when
/// exactly one was sent) and our issuer, or on to Slack: nowhere else.
fn assert_redirect_is_safe(
    pairs: &[(String, String)],
    answer: &Answer,
    context: &Context,
) -> Result<(), TestCaseError> {
    let Some(location) = answer.header("location") else {
        return Ok(());
    };
    prop_assert!(
        (300..400).contains(&answer.status),
        "Location on {answer:?}"
    );
    if location.starts_with(&format!("{}/", context.slack)) {
        return Ok(());
    }
    let url = Url::parse(location).map_err(|e| TestCaseError::fail(format!("{location}: {e}")))?;
    prop_assert_eq!(
        format!("{}://{}{}", url.scheme(), url.authority(), url.path()),
        REDIRECT_URI
    );
    prop_assert!(url.fragment().is_none(), "{location}");
    let states = url
        .query_pairs()
        .filter(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .collect::<Vec<_>>();
    prop_assert!(states.len() <= 1, "{location}");
    let sent = values_of(pairs, "state");
    if let [state] = states.as_slice() {
        prop_assert!(sent.contains(state), "state {state:?} not sent: {location}");
    }
    let names: BTreeSet<String> = url.query_pairs().map(|(k, _)| k.into_owned()).collect();
    prop_assert!(
        names.contains("error") != names.contains("code"),
        "{location}"
    );
    if let Some((_, description)) = url.query_pairs().find(|(k, _)| k == "error_description") {
        assert_description_charset(&description)?;
    }
    prop_assert_eq!(
        url.query_pairs()
            .find(|(k, _)| k == "iss")
            .map(|(_, v)| v.into_owned()),
        Some(context.issuer.clone())
    );
    Ok(())
}

/// RFC 6749 §4.1.2.1 and §5.2: `error_description` is limited to
/// %x20-21 / %x23-5B / %x5D-7E, so no request value comes back raw in it.
fn assert_description_charset(description: &str) -> Result<(), TestCaseError> {
    prop_assert!(
        description
            .chars()
            .all(|c| matches!(c, '\x20'..='\x21' | '\x23'..='\x5b' | '\x5d'..='\x7e')),
        "{description:?}"
    );
    Ok(())
}

#[test]
fn generated_authorization_requests_get_a_page_or_a_safe_redirect() {
    run_cases(
        CASES,
        authorize_request(),
        |(pairs, wire, post, peer), context| {
            let encoded = encode(pairs, wire);
            let path = format!("{}/authorize", context.issuer);
            let req = if *post {
                TestRequest::post()
                    .uri(&path)
                    .insert_header(("content-type", "application/x-www-form-urlencoded"))
                    .set_payload(encoded)
            } else {
                TestRequest::get().uri(&format!("{path}?{encoded}"))
            };
            req.peer_addr(from(*peer))
        },
        |(pairs, _, _, _), answer, context| {
            assert_no_server_error(answer)?;
            assert_redirect_is_safe(pairs, answer, context)?;
            assert_page_is_clean(answer)
        },
    );
}

#[test]
fn any_state_comes_back_exactly_and_alone() {
    // prompt=none without a session: the error goes back to the client.
    run_cases(
        CASES,
        (".{1,200}", any::<[u8; 3]>()),
        |(state, peer), context| {
            let query = serde_urlencoded::to_string([
                ("client_id", PUBLIC),
                ("redirect_uri", REDIRECT_URI),
                ("response_type", "code"),
                ("scope", "openid"),
                ("prompt", "none"),
                (
                    "code_challenge",
                    "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                ),
                ("code_challenge_method", "S256"),
                ("state", state.as_str()),
            ])
            .unwrap();
            TestRequest::get()
                .uri(&format!("{}/authorize?{query}", context.issuer))
                .peer_addr(from(*peer))
        },
        |(state, _), answer, context| {
            prop_assert_eq!(answer.status, 302, "{:?}", answer);
            let pairs = vec![("state".to_string(), state.clone())];
            assert_redirect_is_safe(&pairs, answer, context)?;
            let url = Url::parse(answer.header("location").unwrap()).unwrap();
            let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
            prop_assert!(query.contains(&("error".into(), "login_required".into())));
            prop_assert!(query.contains(&("state".into(), state.clone())));
            Ok(())
        },
    );
}

#[test]
fn generated_callbacks_get_an_error_page() {
    let param = prop_oneof![
        named("state", nasty()),
        named("code", nasty()),
        named("error", nasty()),
        named("error_description", nasty()),
        (nasty(), nasty()).boxed(),
    ];
    run_cases(
        CASES,
        (prop::collection::vec(param, 0..6), wire()),
        |(pairs, wire), context| {
            TestRequest::get().uri(&format!(
                "{}/callback?{}",
                context.issuer,
                encode(pairs, wire)
            ))
        },
        |_, answer, _| {
            // No pending login matches: a page, never a redirect (or 414
            // before any page when the URI is over the limit).
            if answer.status == 414 {
                return Ok(());
            }
            prop_assert_eq!(answer.status, 400, "{:?}", answer);
            prop_assert!(answer.header("location").is_none());
            prop_assert!(
                answer
                    .header("content-type")
                    .is_some_and(|t| t.starts_with("text/html"))
            );
            assert_page_is_clean(answer)
        },
    );
}

#[derive(Debug, Clone)]
enum ClientAuth {
    None,
    Basic(String, String),
    Header(String),
}

fn client_auth() -> impl Strategy<Value = ClientAuth> {
    prop_oneof![
        Just(ClientAuth::None),
        Just(ClientAuth::Basic(BASIC.0.into(), BASIC.1.into())),
        Just(ClientAuth::Basic(REFRESH.0.into(), REFRESH.1.into())),
        (nasty(), nasty()).prop_map(|(id, secret)| ClientAuth::Basic(id, secret)),
        prop::sample::select(vec![
            "Basic !!!",
            "Basic",
            "Bearer x",
            "Basic Og==",
            "Digest x"
        ])
        .prop_map(|h| ClientAuth::Header(h.to_string())),
    ]
}

fn token_param() -> impl Strategy<Value = (String, String)> {
    let grant = prop_oneof![
        3 => prop::sample::select(vec![
            "authorization_code",
            "refresh_token",
            "client_credentials",
            "password",
            "urn:ietf:params:oauth:grant-type:device_code",
        ])
        .prop_map(str::to_string),
        1 => nasty(),
    ];
    prop_oneof![
        named("grant_type", grant),
        named("code", nasty()),
        named("refresh_token", nasty()),
        named("code_verifier", nasty()),
        named("redirect_uri", redirect_uri()),
        named("scope", nasty()),
        named("client_id", prop_oneof![Just(POST.0.to_string()), nasty()]),
        named(
            "client_secret",
            prop_oneof![Just(POST.1.to_string()), nasty()]
        ),
        named("token", nasty()),
        named("token_type_hint", nasty()),
        (nasty(), nasty()).boxed(),
    ]
}

/// The RFC 6749 §5.2 codes, and RFC 7009's for revocation.
const OAUTH_ERRORS: &[&str] = &[
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "unsupported_token_type",
    "temporarily_unavailable",
];

#[test]
fn generated_back_channel_requests_get_a_clean_oauth_error() {
    let content_type = prop::sample::select(vec![
        Some("application/x-www-form-urlencoded"),
        Some("application/x-www-form-urlencoded; charset=UTF-8"),
        Some("application/json"),
        Some("text/plain"),
        None,
    ]);
    let endpoint = prop::sample::select(vec!["/token", "/revoke", "/introspect", "/userinfo"]);
    let body = prop_oneof![
        4 => (prop::collection::vec(token_param(), 0..7), wire())
            .prop_map(|(pairs, wire)| encode(&pairs, &wire).into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..300),
    ];
    run_cases(
        CASES,
        (
            endpoint,
            client_auth(),
            content_type,
            body,
            any::<[u8; 3]>(),
        ),
        |(endpoint, auth, content_type, body, peer), context| {
            let mut req = TestRequest::post()
                .uri(&format!("{}{endpoint}", context.issuer))
                .peer_addr(from(*peer))
                .set_payload(body.clone());
            if let Some(t) = content_type {
                req = req.insert_header(("content-type", *t));
            }
            match auth {
                ClientAuth::None => req,
                ClientAuth::Basic(id, secret) => {
                    let encode =
                        |s: &str| serde_urlencoded::to_string([("", s)]).unwrap()[1..].to_string();
                    let credentials = STANDARD.encode(format!("{}:{}", encode(id), encode(secret)));
                    req.insert_header(("authorization", format!("Basic {credentials}")))
                }
                ClientAuth::Header(h) => req.insert_header(("authorization", h.as_str())),
            }
        },
        |(endpoint, _, _, _, _), answer, _| {
            assert_no_server_error(answer)?;
            // Over the body, URI or header limits: refused before any endpoint.
            if matches!(answer.status, 413 | 414 | 431) {
                return Ok(());
            }
            if *endpoint == "/userinfo" {
                // RFC 6750 §3: the error is in WWW-Authenticate.
                prop_assert!(matches!(answer.status, 400 | 401 | 403), "{answer:?}");
                let challenge = answer.header("www-authenticate").unwrap_or_default();
                prop_assert!(challenge.starts_with("Bearer"), "{answer:?}");
                return Ok(());
            }
            // RFC 7009 §2.2: the body of a successful revocation is empty.
            if (*endpoint, answer.status) == ("/revoke", 200) {
                prop_assert_eq!(answer.body.as_str(), "");
                return Ok(());
            }
            let json: serde_json::Value = serde_json::from_str(&answer.body)
                .map_err(|e| TestCaseError::fail(format!("not JSON ({e}): {answer:?}")))?;
            match (*endpoint, answer.status) {
                // An unknown token is inactive (RFC 7662 §2.2).
                ("/introspect", 200) => prop_assert_eq!(&json["active"], false),
                (_, status) => {
                    prop_assert!((400..500).contains(&status), "{answer:?}");
                    let error = json["error"].as_str().unwrap_or_default();
                    if let Some(description) = json["error_description"].as_str() {
                        assert_description_charset(description)?;
                    }
                    prop_assert!(
                        OAUTH_ERRORS.contains(&error) || error == "invalid_token",
                        "{answer:?}"
                    );
                    if status == 401 {
                        prop_assert!(answer.header("www-authenticate").is_some(), "{answer:?}");
                    }
                }
            }
            if *endpoint == "/token" {
                prop_assert_eq!(answer.header("cache-control"), Some("no-store"));
            }
            Ok(())
        },
    );
}
