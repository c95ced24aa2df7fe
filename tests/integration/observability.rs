//! What operators see, through the real binary: request ids, `/healthz` and
//! `/readyz`, Prometheus metrics, and logs that never carry a secret (in the
//! human and the JSON format).

use crate::common;
use common::metric;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::cookie::{CookieStore, Jar};
use slack_oidc_bridge::upstream::standin::{
    self, DEV_BOT_TOKEN, StandinApp, StandinGroup, StandinOptions, StandinUser, TokenFault,
};

use common::bridge::{
    BASIC, Bridge, POST_LOGOUT_URI, REDIRECT_URI, REFRESH, Setup, UPSTREAM_CLIENT_ID,
    UPSTREAM_SECRET, free_port,
};
use common::browser::{
    Browser, ClientAuth, auth_params, client_request, location, param, pkce, redeem, token_request,
};

const ADA: &str = "U0000000001";
/// Member of T0000000002, outside the allowed workspace of some tests.
const OUTSIDER: &str = "U0000000002";
const OWNER: ClientAuth = ClientAuth::Other(REFRESH.0, REFRESH.1);

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A value that looks like a secret and appears nowhere by chance.
fn unique(prefix: &str) -> String {
    let mut b = [0u8; 12];
    aws_lc_rs::rand::fill(&mut b).unwrap();
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{prefix}-{hex}")
}

fn request_id(r: &reqwest::Response) -> String {
    r.headers()
        .get("x-request-id")
        .expect("every answer carries X-Request-Id")
        .to_str()
        .unwrap()
        .to_string()
}

async fn metrics_text(bridge: &Bridge) -> String {
    let r = reqwest::get(bridge.url("/metrics")).await.unwrap();
    assert_eq!(r.status(), 200);
    let content_type = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "Prometheus text format: {content_type}"
    );
    r.text().await.unwrap()
}

// ---------------------------------------------------------------- request ids

#[tokio::test(flavor = "multi_thread")]
async fn every_answer_carries_a_request_id_reusing_only_sane_incoming_ones() {
    let bridge = Bridge::start(Setup::default()).await;
    let http = reqwest::Client::new();

    let r = http.get(bridge.url("/healthz")).send().await.unwrap();
    let generated = request_id(&r);
    assert_eq!(generated.len(), 16, "{generated}");
    let again = request_id(&http.get(bridge.url("/healthz")).send().await.unwrap());
    assert_ne!(generated, again, "a fresh id per request");

    let r = http
        .get(bridge.url("/healthz"))
        .header("x-request-id", "lb-7f3a.9:x_y")
        .send()
        .await
        .unwrap();
    assert_eq!(request_id(&r), "lb-7f3a.9:x_y", "a sane id is echoed");

    for insane in ["has spaces", "quote\"s", &"a".repeat(65), "semi;colon"] {
        let r = http
            .get(bridge.url("/healthz"))
            .header("x-request-id", insane)
            .send()
            .await
            .unwrap();
        let id = request_id(&r);
        assert_ne!(id, insane);
        assert_eq!(id.len(), 16, "replaced by a generated id: {id}");
    }

    let r = http.get(bridge.url("/no/such/page")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(request_id(&r).len(), 16, "unmatched paths too");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_error_page_reference_is_the_request_id_and_the_log_names_it() {
    let bridge = Bridge::start(Setup::default()).await;
    let http = reqwest::Client::new();
    let r = http
        .get(bridge.url("/authorize?client_id=nobody&response_type=code"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let id = request_id(&r);
    let html = r.text().await.unwrap();
    assert!(
        html.contains(&format!("<code>{id}</code>")),
        "the page shows the request id {id} as its reference:\n{html}"
    );

    // An incoming id is the reference too, so a proxy's id leads to our page.
    let r = http
        .get(bridge.url("/callback?state=forged&code=x"))
        .header("x-request-id", "edge-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("<code>edge-42</code>"));

    let log = bridge.log();
    for wanted in [id.as_str(), "edge-42"] {
        let lines: Vec<&str> = log.lines().filter(|l| l.contains(wanted)).collect();
        assert!(
            lines.len() >= 2,
            "the warning and the request line both carry {wanted}:\n{log}"
        );
        assert!(
            lines.iter().any(|l| l.contains("WARN")),
            "the error's warning carries {wanted}:\n{log}"
        );
    }
}

// ------------------------------------------------------------ health, readiness

#[tokio::test(flavor = "multi_thread")]
async fn readyz_waits_for_slack_discovery_and_loads_it_itself_when_slack_appears() {
    // Slack's address has nobody listening when the bridge starts.
    let slack_port = free_port();
    let slack_url = format!("http://127.0.0.1:{slack_port}");
    let bridge = Bridge::start(Setup {
        env: env(&[("BRIDGE_UPSTREAM__ISSUER", &slack_url)]),
        ..Setup::default()
    })
    .await;
    let healthz = reqwest::get(bridge.url("/healthz")).await.unwrap();
    assert_eq!(healthz.status(), 200, "alive without Slack");
    let r = reqwest::get(bridge.url("/readyz")).await.unwrap();
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], "unavailable", "{body}");
    assert!(body["upstream"].is_string(), "names Slack: {body}");
    assert!(body.get("store").is_none(), "the store is fine: {body}");

    // Slack comes up; /readyz itself loads discovery (nobody signs in).
    let late_slack = standin::start(StandinOptions {
        listen: SocketAddr::from((Ipv4Addr::LOCALHOST, slack_port)),
        apps: vec![StandinApp {
            client_id: UPSTREAM_CLIENT_ID.into(),
            client_secret: UPSTREAM_SECRET.into(),
            redirect_urls: vec![bridge.url("/callback")],
            distributed: true,
            rotation: false,
        }],
        users: StandinUser::fixtures(),
        exact_slack_mode: false,
        groups: StandinGroup::fixtures(),
        bot_token: Some(DEV_BOT_TOKEN.into()),
        events: None,
    })
    .await
    .expect("the late stand-in starts on the reserved port");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = reqwest::get(bridge.url("/readyz")).await.unwrap();
        if r.status() == 200 {
            let body: serde_json::Value = r.json().await.unwrap();
            assert_eq!(body["status"], "ready");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz never became ready; log:\n{}",
            bridge.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let text = metrics_text(&bridge).await;
    assert!(
        metric(
            &text,
            "bridge_upstream_errors_total",
            &[("call", "discovery")]
        ) >= 1.0,
        "the failed discovery attempts are counted:\n{text}"
    );
    late_slack.stop().await;
}

// -------------------------------------------------------------------- metrics

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_requests_sign_ins_refusals_tokens_and_slack_calls() {
    let bridge = Bridge::start(Setup {
        allowed_team_ids: vec!["T0000000001".into()],
        ..Setup::default()
    })
    .await;

    // Completed, then redeemed and refreshed.
    let browser = Browser::new();
    let mut params = auth_params(REFRESH.0, "st", "n");
    params.retain(|(k, _)| *k != "scope");
    params.push(("scope", "openid offline_access"));
    let back = browser.sign_in(&bridge, &params, ADA).await;
    let code = param(&back, "code").expect("a code");
    let r = redeem(&bridge, OWNER, &code, None).await;
    assert_eq!(r.status(), 200);
    let tokens: serde_json::Value = r.json().await.unwrap();
    let r = token_request(
        &bridge,
        OWNER,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);

    // Refused: another workspace, cancelled at Slack, a forged callback, an
    // unknown client, Slack's token endpoint failing.
    let outsider = Browser::new()
        .sign_in(&bridge, &auth_params(BASIC.0, "st", "n"), OUTSIDER)
        .await;
    assert_eq!(param(&outsider, "error").as_deref(), Some("access_denied"));
    let cancelled = Browser::new()
        .sign_in(&bridge, &auth_params(BASIC.0, "st", "n"), "deny")
        .await;
    assert_eq!(param(&cancelled, "error").as_deref(), Some("access_denied"));
    let forged = reqwest::get(bridge.url("/callback?state=forged&code=x"))
        .await
        .unwrap();
    assert_eq!(forged.status(), 400);
    let unknown = Browser::new()
        .authorize(&bridge, &auth_params("no-such-app", "st", "n"))
        .await;
    assert_eq!(unknown.status(), 400);
    bridge
        .standin
        .control
        .set_token_fault(Some(TokenFault::ErrorCode("invalid_code".into())));
    let failed = Browser::new()
        .sign_in(&bridge, &auth_params(BASIC.0, "st", "n"), ADA)
        .await;
    assert_eq!(param(&failed, "error").as_deref(), Some("server_error"));
    bridge.standin.control.set_token_fault(None);

    // A raw path never becomes a label.
    let r = reqwest::get(bridge.url("/users/some-private-path-9d1e"))
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    let text = metrics_text(&bridge).await;
    let m = |name: &str, labels: &[(&str, &str)]| metric(&text, name, labels);
    assert_eq!(
        m(
            "bridge_sign_ins_completed_total",
            &[("client_id", REFRESH.0)]
        ),
        1.0,
        "{text}"
    );
    for (reason, n) in [
        ("workspace_not_allowed", 1.0),
        ("user_cancelled", 1.0),
        ("bad_state", 1.0),
        ("invalid_request", 1.0),
        ("upstream_error", 1.0),
        ("store_full", 0.0),
        ("rate_limited", 0.0),
    ] {
        assert_eq!(
            m("bridge_sign_ins_refused_total", &[("reason", reason)]),
            n,
            "{reason}:\n{text}"
        );
    }
    assert_eq!(
        m(
            "bridge_tokens_issued_total",
            &[("grant_type", "authorization_code")]
        ),
        1.0
    );
    assert_eq!(
        m(
            "bridge_tokens_issued_total",
            &[("grant_type", "refresh_token")]
        ),
        1.0
    );
    assert_eq!(
        m(
            "bridge_http_requests_total",
            &[("route", "/token"), ("method", "POST"), ("status", "200")]
        ),
        2.0
    );
    assert_eq!(
        m(
            "bridge_http_requests_total",
            &[("route", "/callback"), ("method", "GET"), ("status", "400")]
        ),
        1.0
    );
    assert_eq!(
        m(
            "bridge_http_requests_total",
            &[("route", "/authorize"), ("status", "302")]
        ),
        4.0,
        "four sign-ins went to Slack:\n{text}"
    );
    assert_eq!(
        m(
            "bridge_http_requests_total",
            &[("route", "unmatched"), ("status", "404")]
        ),
        1.0
    );
    assert!(
        !text.contains("some-private-path"),
        "raw paths are not labels"
    );
    assert!(
        m(
            "bridge_http_request_duration_seconds_count",
            &[("route", "/token"), ("status", "200")]
        ) == 2.0,
        "latency is recorded per route:\n{text}"
    );
    assert!(text.contains("bridge_http_request_duration_seconds_bucket{"));
    for call in ["discovery", "jwks", "token"] {
        assert!(
            m(
                "bridge_upstream_request_duration_seconds_count",
                &[("call", call), ("outcome", "ok")]
            ) >= 1.0,
            "Slack's {call} call is timed:\n{text}"
        );
    }
    assert_eq!(
        m(
            "bridge_upstream_request_duration_seconds_count",
            &[("call", "userinfo"), ("outcome", "ok")]
        ),
        0.0,
        "Slack's ID token carried every claim: no userInfo call:\n{text}"
    );
    assert_eq!(
        m(
            "bridge_upstream_errors_total",
            &[("call", "token"), ("kind", "slack_error")]
        ),
        1.0,
        "{text}"
    );
}

// ----------------------------------------------------------------------- logs

/// A browser whose cookies the test can read.
fn browser_with_jar() -> (Browser, Arc<Jar>) {
    let jar = Arc::new(Jar::default());
    let http = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    (Browser { http }, jar)
}

fn cookie_values(jar: &Jar, url: &str) -> Vec<String> {
    let url = url::Url::parse(url).unwrap();
    let Some(header) = jar.cookies(&url) else {
        return Vec::new();
    };
    header
        .to_str()
        .unwrap()
        .split(';')
        .filter_map(|pair| pair.trim().split_once('=').map(|(_, v)| v.to_string()))
        .collect()
}

fn s(v: &serde_json::Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {v}"))
        .to_string()
}

/// Sign-in with PKCE, redemption, refresh, userinfo, introspection, a few
/// refused requests, and logout, for the refresh client. Returns every
/// secret value the flows handled.
async fn complete_flows(bridge: &Bridge) -> Vec<(&'static str, String)> {
    let (browser, jar) = browser_with_jar();
    let app_state = unique("app-state");
    let app_nonce = unique("app-nonce");
    let (verifier, challenge) = pkce();
    let mut params = auth_params(REFRESH.0, &app_state, &app_nonce);
    params.retain(|(k, _)| *k != "scope");
    params.push(("scope", "openid email profile offline_access"));
    params.push(("code_challenge", &challenge));
    params.push(("code_challenge_method", "S256"));

    let slack = browser.to_slack(bridge, &params).await;
    let upstream_state = param(&slack, "state").expect("a state for Slack");
    let upstream_nonce = param(&slack, "nonce").expect("a nonce for Slack");
    let callback = browser.slack_decide(&slack, ADA).await;
    let slack_code = param(&callback, "code").expect("Slack's code");
    let r = browser.get(callback.as_str()).await;
    assert_eq!(r.status(), 302);
    let back = location(&r);
    let code = param(&back, "code").expect("our code");
    let cookies = cookie_values(&jar, &bridge.base);
    assert_eq!(cookies.len(), 2, "browser binding and session cookies");

    let r = redeem(bridge, OWNER, &code, Some(&verifier)).await;
    assert_eq!(r.status(), 200);
    let first: serde_json::Value = r.json().await.unwrap();

    let r = token_request(
        bridge,
        OWNER,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &s(&first, "refresh_token")),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    let second: serde_json::Value = r.json().await.unwrap();

    let http = reqwest::Client::new();
    let r = http
        .get(bridge.url("/userinfo"))
        .bearer_auth(s(&second, "access_token"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .post(bridge.url("/userinfo"))
        .form(&[("access_token", s(&second, "access_token"))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .get(bridge.url("/userinfo"))
        .bearer_auth(s(&first, "access_token"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "the first access token lives until it expires"
    );
    let r = client_request(
        bridge,
        "/introspect",
        OWNER,
        &[("token", &s(&second, "refresh_token"))],
    )
    .await;
    assert_eq!(r.status(), 200);

    // Refused requests log their refusal; their secrets must not follow.
    let r = redeem(bridge, OWNER, &code, Some(&verifier)).await;
    assert_eq!(r.status(), 400, "a replayed code is refused (and logged)");
    let wrong_secret = unique("wrong-client-secret-0123456789abcdef");
    let r = token_request(
        bridge,
        ClientAuth::Other(REFRESH.0, Box::leak(wrong_secret.clone().into_boxed_str())),
        &[("grant_type", "refresh_token"), ("refresh_token", "x")],
    )
    .await;
    assert_eq!(r.status(), 401);
    let bogus_refresh = unique("bogus-refresh-token");
    let r = token_request(
        bridge,
        OWNER,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &bogus_refresh),
        ],
    )
    .await;
    assert_eq!(r.status(), 400);
    let r = browser
        .get(&bridge.url(&format!(
            "/callback?state={upstream_state}&code={slack_code}"
        )))
        .await;
    assert_eq!(r.status(), 400, "a replayed callback is refused");

    let mut url = url::Url::parse(&bridge.url("/logout")).unwrap();
    url.query_pairs_mut()
        .append_pair("id_token_hint", &s(&second, "id_token"))
        .append_pair("post_logout_redirect_uri", POST_LOGOUT_URI)
        .append_pair("state", &app_state);
    let r = browser.get(url.as_str()).await;
    assert_eq!(r.status(), 302, "signed out back to the application");

    let mut secrets = vec![
        ("app state", app_state),
        ("app nonce", app_nonce),
        ("PKCE verifier", verifier),
        ("upstream state", upstream_state),
        ("upstream nonce", upstream_nonce),
        ("Slack's code", slack_code),
        ("our code", code),
        ("first access token", s(&first, "access_token")),
        ("first refresh token", s(&first, "refresh_token")),
        ("first ID token", s(&first, "id_token")),
        ("second access token", s(&second, "access_token")),
        ("second refresh token", s(&second, "refresh_token")),
        ("second ID token", s(&second, "id_token")),
        ("client secret", REFRESH.1.to_string()),
        ("another client's secret", BASIC.1.to_string()),
        ("wrong client secret", wrong_secret),
        ("bogus refresh token", bogus_refresh),
        ("upstream secret", UPSTREAM_SECRET.to_string()),
    ];
    for value in cookies {
        secrets.push(("cookie value", value));
    }
    secrets
}

fn assert_no_secret_in(log: &str, secrets: &[(&str, String)]) {
    assert!(!log.is_empty());
    for (what, value) in secrets {
        assert!(value.len() >= 16, "{what} is too short to test: {value}");
        // ID tokens are long: their signature part alone must not leak either.
        let pieces: Vec<&str> = if value.matches('.').count() == 2 {
            value.split('.').collect()
        } else {
            vec![value.as_str()]
        };
        for piece in pieces {
            if let Some(line) = log.lines().find(|l| l.contains(piece)) {
                panic!("the log carries the {what}: {line}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_reaches_the_log_even_at_debug_level() {
    let bridge = Bridge::start(Setup {
        env: env(&[("RUST_LOG", "debug")]),
        ..Setup::default()
    })
    .await;
    let secrets = complete_flows(&bridge).await;
    let log = bridge.log();
    assert!(
        log.contains("DEBUG"),
        "RUST_LOG=debug took effect (debug lines exist):\n{log}"
    );
    assert!(log.contains("request_id="), "spans carry the request id");
    assert_no_secret_in(&log, &secrets);
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_are_one_object_per_line_with_the_request_id_of_each_request() {
    let bridge = Bridge::start(Setup {
        env: env(&[("BRIDGE_LOG__FORMAT", "json"), ("RUST_LOG", "debug")]),
        ..Setup::default()
    })
    .await;
    let secrets = complete_flows(&bridge).await;
    let r = reqwest::Client::new()
        .get(bridge.url("/authorize?client_id=nobody"))
        .header("x-request-id", "json-check-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let log = bridge.log();
    assert_no_secret_in(&log, &secrets);
    let mut in_requests = 0;
    let mut ours = Vec::new();
    for line in log.lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(value["level"].is_string(), "{line}");
        assert!(value["timestamp"].is_string(), "{line}");
        // Lines written while a request is served are inside its span; only
        // startup and background lines (key file, warm-up) are outside.
        let request_spans: Vec<&serde_json::Value> = value["spans"]
            .as_array()
            .map(|spans| spans.iter().filter(|s| s["name"] == "request").collect())
            .unwrap_or_default();
        if let Some(span) = request_spans.first() {
            in_requests += 1;
            let id = span["request_id"]
                .as_str()
                .unwrap_or_else(|| panic!("a request span without request_id: {line}"));
            assert!(!id.is_empty());
            if id == "json-check-1" {
                ours.push(value.clone());
            }
        }
    }
    assert!(
        in_requests >= 20,
        "the flows logged inside request spans:\n{log}"
    );
    assert!(
        ours.iter()
            .any(|l| l["fields"]["message"] == "request" && l["fields"]["status"] == 400),
        "the request line of json-check-1: {ours:?}"
    );
    assert!(
        ours.iter().any(|l| l["level"] == "WARN"),
        "the error page's warning carries json-check-1: {ours:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_request_line_names_the_route_and_status_but_never_the_query() {
    let bridge = Bridge::start(Setup::default()).await;
    let secret_state = unique("query-state");
    let r = Browser::new()
        .authorize(
            &bridge,
            &[
                ("response_type", "code"),
                ("client_id", BASIC.0),
                ("redirect_uri", REDIRECT_URI),
                ("scope", "openid"),
                ("state", &secret_state),
            ],
        )
        .await;
    assert_eq!(r.status(), 302);
    let id = request_id(&r);
    let log = bridge.log();
    let line = log
        .lines()
        .find(|l| l.contains(&id) && l.contains("request") && l.contains("status=302"))
        .unwrap_or_else(|| panic!("no request line for {id}:\n{log}"));
    assert!(line.contains("route=\"/authorize\""), "{line}");
    assert!(!log.contains(&secret_state), "the query is never logged");
}
