//! Bounded resources, through the real binary: rate limits per address and
//! per client (429 with Retry-After), sign-ins that are never finished
//! (they write nothing, so they fill no store), and size limits on bodies,
//! URIs, headers and parameters (4xx, never 500).

use crate::common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use common::bridge::{BASIC, Bridge, POST, Setup};
use common::browser::{Browser, ClientAuth, auth_params, sign_in_and_redeem, token_request};

const ADA: &str = "U0000000001";

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A client whose connections come from `source` (another loopback address).
fn http_from(source: Ipv4Addr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(source))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn authorize_url(bridge: &Bridge, client_id: &str) -> String {
    let mut url = url::Url::parse(&bridge.url("/authorize")).unwrap();
    url.query_pairs_mut()
        .extend_pairs(auth_params(client_id, "st", "n"));
    url.into()
}

/// 429 with a Retry-After of whole seconds within the limit's refill time.
fn assert_limited(r: &reqwest::Response, what: &str) {
    assert_eq!(r.status(), 429, "{what}");
    let retry_after: u64 = r
        .headers()
        .get("retry-after")
        .unwrap_or_else(|| panic!("{what}: no Retry-After"))
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&retry_after), "{what}: {retry_after}");
}

// ---------------------------------------------------------------- rate limits

#[tokio::test(flavor = "multi_thread")]
async fn authorize_per_address_answers_429_after_the_burst_and_spares_other_addresses() {
    let bridge = Bridge::start(Setup {
        env: env(&[
            ("BRIDGE_LIMITS__AUTHORIZE_PER_ADDRESS__PER_MINUTE", "1"),
            ("BRIDGE_LIMITS__AUTHORIZE_PER_ADDRESS__BURST", "3"),
        ]),
        ..Setup::default()
    })
    .await;
    let first = http_from(Ipv4Addr::new(127, 0, 0, 1));
    for i in 0..3 {
        let r = first
            .get(authorize_url(&bridge, BASIC.0))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 302, "request {i} of the burst goes to Slack");
    }
    let r = first
        .get(authorize_url(&bridge, BASIC.0))
        .send()
        .await
        .unwrap();
    assert_limited(&r, "the fourth request from 127.0.0.1");
    assert!(r.headers().get("location").is_none(), "a page, no redirect");
    assert!(
        r.text().await.unwrap().contains("temporarily_unavailable"),
        "the page names the error"
    );

    // X-Forwarded-For is not trusted by default: it cannot escape the limit.
    let r = first
        .get(authorize_url(&bridge, BASIC.0))
        .header("x-forwarded-for", "198.51.100.99")
        .send()
        .await
        .unwrap();
    assert_limited(&r, "a spoofed X-Forwarded-For");

    // Another address, and another endpoint, are unaffected.
    let second = http_from(Ipv4Addr::new(127, 0, 0, 2));
    let r = second
        .get(authorize_url(&bridge, BASIC.0))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "127.0.0.2 has its own budget");
    let r = first.get(bridge.url("/jwks")).send().await.unwrap();
    assert_eq!(r.status(), 200);

    let text = bridge.metrics().await;
    assert!(
        text.contains("bridge_rate_limited_total{endpoint=\"authorize\",limit=\"address\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("bridge_sign_ins_refused_total{reason=\"rate_limited\"} 2"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn behind_a_trusted_proxy_the_last_forwarded_address_is_limited() {
    let bridge = Bridge::start(Setup {
        env: env(&[
            ("BRIDGE_LIMITS__TRUST_FORWARDED_FOR", "true"),
            ("BRIDGE_LIMITS__AUTHORIZE_PER_ADDRESS__PER_MINUTE", "1"),
            ("BRIDGE_LIMITS__AUTHORIZE_PER_ADDRESS__BURST", "2"),
        ]),
        ..Setup::default()
    })
    .await;
    let proxy = http_from(Ipv4Addr::LOCALHOST);
    let from = |client: &'static str| {
        proxy
            .get(authorize_url(&bridge, BASIC.0))
            // The first entry is whatever the person's browser claimed; the
            // proxy appended the real address last.
            .header("x-forwarded-for", format!("10.9.9.9, {client}"))
            .send()
    };
    for _ in 0..2 {
        assert_eq!(from("198.51.100.7").await.unwrap().status(), 302);
    }
    assert_limited(
        &from("198.51.100.7").await.unwrap(),
        "the third from 198.51.100.7",
    );
    assert_eq!(
        from("198.51.100.8").await.unwrap().status(),
        302,
        "another person behind the same proxy"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn per_client_limits_spare_other_clients_and_count_only_authenticated_requests() {
    let bridge = Bridge::start(Setup {
        env: env(&[
            ("BRIDGE_LIMITS__AUTHORIZE_PER_CLIENT__PER_MINUTE", "1"),
            ("BRIDGE_LIMITS__AUTHORIZE_PER_CLIENT__BURST", "2"),
            ("BRIDGE_LIMITS__TOKEN_PER_CLIENT__PER_MINUTE", "1"),
            ("BRIDGE_LIMITS__TOKEN_PER_CLIENT__BURST", "2"),
        ]),
        ..Setup::default()
    })
    .await;

    // Authorization endpoint: app-basic's budget, then app-post's.
    let browser = Browser::new();
    for _ in 0..2 {
        let r = browser
            .authorize(&bridge, &auth_params(BASIC.0, "st", "n"))
            .await;
        assert_eq!(r.status(), 302);
    }
    let r = browser
        .authorize(&bridge, &auth_params(BASIC.0, "st", "n"))
        .await;
    assert_limited(&r, "app-basic's third sign-in start");
    let r = browser
        .authorize(&bridge, &auth_params(POST.0, "st", "n"))
        .await;
    assert_eq!(r.status(), 302, "app-post is unaffected");
    // An unknown client id is refused before any limit (it never becomes a key).
    for _ in 0..3 {
        let r = browser
            .authorize(&bridge, &auth_params("nobody", "st", "n"))
            .await;
        assert_eq!(r.status(), 400);
    }

    // Token endpoint: wrong secrets do not spend app-basic's budget.
    for _ in 0..5 {
        let r = token_request(
            &bridge,
            ClientAuth::Other(BASIC.0, "wrong-secret-0123456789abcdef0123456789"),
            &[("grant_type", "authorization_code"), ("code", "x")],
        )
        .await;
        assert_eq!(r.status(), 401);
    }
    let bogus = [
        ("grant_type", "authorization_code"),
        ("code", "no-such-code"),
        ("redirect_uri", common::bridge::REDIRECT_URI),
    ];
    for _ in 0..2 {
        let r = token_request(&bridge, ClientAuth::Basic, &bogus).await;
        assert_eq!(
            r.status(),
            400,
            "authenticated, counted, refused on its merits"
        );
    }
    let r = token_request(&bridge, ClientAuth::Basic, &bogus).await;
    assert_limited(&r, "app-basic's third token request");
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    let r = token_request(&bridge, ClientAuth::Post, &bogus).await;
    assert_eq!(r.status(), 400, "app-post is unaffected");

    let text = bridge.metrics().await;
    assert!(
        text.contains("bridge_rate_limited_total{endpoint=\"token\",limit=\"client\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("bridge_rate_limited_total{endpoint=\"authorize\",limit=\"client\"} 1"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn token_per_address_answers_429_and_spares_other_addresses() {
    let bridge = Bridge::start(Setup {
        env: env(&[
            ("BRIDGE_LIMITS__TOKEN_PER_ADDRESS__PER_MINUTE", "1"),
            ("BRIDGE_LIMITS__TOKEN_PER_ADDRESS__BURST", "2"),
        ]),
        ..Setup::default()
    })
    .await;
    let post = |http: &reqwest::Client| {
        http.post(bridge.url("/token"))
            .form(&[("grant_type", "authorization_code"), ("code", "x")])
            .send()
    };
    let first = http_from(Ipv4Addr::new(127, 0, 0, 1));
    for _ in 0..2 {
        assert_eq!(post(&first).await.unwrap().status(), 401, "no client");
    }
    let r = post(&first).await.unwrap();
    assert_limited(&r, "the third token request from 127.0.0.1");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    let second = http_from(Ipv4Addr::new(127, 0, 0, 3));
    assert_eq!(post(&second).await.unwrap().status(), 401);
}

// -------------------------------------------------------------- store capacity

/// `count` sign-ins that go to Slack and never come back, `parallel` at a
/// time, each from a fresh browser; every one must be sent on to Slack.
async fn abandon_sign_ins(bridge: &Bridge, count: usize, parallel: usize) {
    let per_task = count / parallel;
    let tasks: Vec<_> = (0..parallel)
        .map(|_| {
            let base = bridge.base.clone();
            tokio::spawn(async move {
                let http = reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .unwrap();
                let mut url = url::Url::parse(&format!("{base}/authorize")).unwrap();
                url.query_pairs_mut()
                    .extend_pairs(auth_params(BASIC.0, "st", "n"));
                for _ in 0..per_task {
                    let r = http.get(url.as_str()).send().await.unwrap();
                    assert_eq!(r.status(), 302, "an abandoned sign-in is sent to Slack");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

fn no_authorize_limits() -> Vec<(String, String)> {
    env(&[
        ("BRIDGE_LIMITS__AUTHORIZE_PER_ADDRESS__PER_MINUTE", "0"),
        ("BRIDGE_LIMITS__AUTHORIZE_PER_CLIENT__PER_MINUTE", "0"),
    ])
}

#[tokio::test(flavor = "multi_thread")]
async fn abandoned_sign_ins_fill_nothing_so_sign_ins_and_refreshes_keep_working() {
    let mut vars = no_authorize_limits();
    vars.extend(env(&[("BRIDGE_STORE__MEMORY_MAX_ENTRIES", "200")]));
    let bridge = Bridge::start(Setup {
        env: vars,
        ..Setup::default()
    })
    .await;
    let refresh_client = ClientAuth::Other(common::bridge::REFRESH.0, common::bridge::REFRESH.1);
    let ada = Browser::new();
    let before = sign_in_and_redeem(
        &bridge,
        &ada,
        refresh_client,
        "openid email offline_access",
        ADA,
    )
    .await;

    abandon_sign_ins(&bridge, 2000, 8).await;

    // Nobody is locked out: a refresh, and a new sign-in at Slack.
    let refreshed = token_request(
        &bridge,
        refresh_client,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", before["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(refreshed.status(), 200);
    let fresh =
        sign_in_and_redeem(&bridge, &Browser::new(), ClientAuth::Basic, "openid", ADA).await;
    assert!(fresh["id_token"].is_string());
    let text = bridge.metrics().await;
    assert!(
        !text.contains("kind=\"full\""),
        "the store never reached its cap: {text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn on_redis_abandoned_and_refused_sign_ins_add_no_keys() {
    let server = common::redis_server::RedisServer::start();
    let bridge = Bridge::start(Setup {
        redis_url: Some(server.url.clone()),
        env: no_authorize_limits(),
        ..Setup::default()
    })
    .await;
    sign_in_and_redeem(&bridge, &Browser::new(), ClientAuth::Basic, "openid", ADA).await;
    let redis = ::redis::Client::open(server.url.as_str()).unwrap();
    let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
    let keys = |conn: &mut ::redis::aio::MultiplexedConnection| {
        let mut conn = conn.clone();
        async move {
            ::redis::cmd("DBSIZE")
                .query_async::<i64>(&mut conn)
                .await
                .unwrap()
        }
    };
    let before = keys(&mut conn).await;
    abandon_sign_ins(&bridge, 400, 4).await;
    // Refused: an unknown client, an unregistered redirect URI.
    let browser = Browser::new();
    let mut unknown = auth_params(BASIC.0, "st", "n");
    unknown.retain(|(k, _)| *k != "client_id");
    unknown.push(("client_id", "nobody"));
    assert_eq!(browser.authorize(&bridge, &unknown).await.status(), 400);
    let mut elsewhere = auth_params(BASIC.0, "st", "n");
    elsewhere.retain(|(k, _)| *k != "redirect_uri");
    elsewhere.push(("redirect_uri", "https://evil.example/cb"));
    assert_eq!(browser.authorize(&bridge, &elsewhere).await.status(), 400);
    assert_eq!(
        keys(&mut conn).await,
        before,
        "abandoned and refused sign-ins wrote nothing"
    );
    drop(server);
}

// ---------------------------------------------------------------- size limits

/// Sends raw bytes to the bridge and returns the status of its answer.
async fn raw_status(bridge: &Bridge, request: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(bridge.base.trim_start_matches("http://"))
        .await
        .unwrap();
    // The server may answer and close before it has read everything.
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let head = String::from_utf8_lossy(&answer);
    head.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {head:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_bodies_uris_headers_and_parameters_get_a_4xx() {
    let bridge = Bridge::start(Setup::default()).await;
    let http = reqwest::Client::new();

    let big_body = format!("grant_type=authorization_code&code={}", "a".repeat(70_000));
    let r = http
        .post(bridge.url("/token"))
        .basic_auth(BASIC.0, Some(BASIC.1))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(big_body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413, "a body over 64 KiB");

    // The same without a Content-Length (chunked): cut off while reading.
    let mut raw = format!(
        "POST /token HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        bridge.base.trim_start_matches("http://")
    )
    .into_bytes();
    for chunk in big_body.as_bytes().chunks(8192) {
        raw.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        raw.extend_from_slice(chunk);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(
        raw_status(&bridge, &raw).await,
        413,
        "a chunked body over 64 KiB"
    );

    let long_uri = format!(
        "{}&pad={}",
        authorize_url(&bridge, BASIC.0),
        "p".repeat(9000)
    );
    let r = http.get(long_uri).send().await.unwrap();
    assert_eq!(r.status(), 414, "a URI over 8 KiB");

    let r = http
        .get(bridge.url("/healthz"))
        .header("x-padding", "h".repeat(40_000))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 431, "headers over 32 KiB");

    let long_value = "v".repeat(5000);
    let r = token_request(
        &bridge,
        ClientAuth::Basic,
        &[("grant_type", "authorization_code"), ("code", &long_value)],
    )
    .await;
    assert_eq!(r.status(), 400, "a parameter over 4096 bytes");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");

    let many: String = (0..100).map(|i| format!("p{i}=x&")).collect();
    let r = http
        .post(bridge.url("/token"))
        .basic_auth(BASIC.0, Some(BASIC.1))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(many)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "too many parameters");

    // The server is fine afterwards.
    let r = http.get(bridge.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}
