//! The Redis backend over TLS (`rediss://`) to a `redis-server` that speaks
//! TLS only, with a certificate from an authority the test made: the
//! conformance suite, a refused certificate, and a sign-in and a refresh
//! through the real binary configured with `store.redis_ca_file`.

use crate::common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::bridge::{Bridge, REFRESH, Setup};
use common::browser::{Browser, ClientAuth, id_claims, sign_in_and_redeem, token_request};
use common::redis_server::{RedisServer, TlsFiles};
use slack_oidc_bridge::store::conformance::run_all;
use slack_oidc_bridge::store::redis::RedisStore;
use slack_oidc_bridge::store::{Store, StoreError};

const ADA: &str = "U0000000001";
const TIMEOUT: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_over_tls_passes_the_conformance_suite() {
    let server = RedisServer::start_tls(TlsFiles::generate());
    let ca = server.tls().ca_pem.clone().into_bytes();
    let url = server.url.clone();
    let next = AtomicU64::new(0);
    run_all(|| {
        // Each check starts from an empty key space.
        let prefix = format!("tls{}:", next.fetch_add(1, Ordering::Relaxed));
        let (url, ca) = (url.clone(), ca.clone());
        async move { RedisStore::new_with_ca(&url, Some(ca), &prefix, TIMEOUT).unwrap() }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_authority_is_refused_within_the_timeout() {
    let server = RedisServer::start_tls(TlsFiles::generate());
    let stranger = TlsFiles::generate();
    let store = RedisStore::new_with_ca(
        &server.url,
        Some(stranger.ca_pem.into_bytes()),
        "tls:",
        TIMEOUT,
    )
    .unwrap();
    let started = Instant::now();
    let e = store.ping().await.unwrap_err();
    assert!(started.elapsed() < TIMEOUT + Duration::from_secs(1));
    let StoreError::Unavailable(message) = e else {
        panic!("{e:?}")
    };
    assert!(
        message.to_lowercase().contains("certificate"),
        "says why: {message}"
    );
    // Plain TCP to a TLS port is no way around it either.
    let plain = RedisStore::new(
        &server.url.replace("rediss://", "redis://"),
        "tls:",
        TIMEOUT,
    )
    .unwrap();
    assert!(plain.ping().await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sign_in_and_a_refresh_through_the_real_binary_over_tls() {
    let server = RedisServer::start_tls(TlsFiles::generate());
    let bridge = Bridge::start(Setup {
        redis_url: Some(server.url.clone()),
        env: vec![(
            "BRIDGE_STORE__REDIS_CA_FILE".into(),
            server.tls().ca_path().display().to_string(),
        )],
        ..Default::default()
    })
    .await;
    let ready = reqwest::get(bridge.url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200, "ready over TLS: {}", bridge.log());

    let owner = ClientAuth::Other(REFRESH.0, REFRESH.1);
    let first = sign_in_and_redeem(
        &bridge,
        &Browser::new(),
        owner,
        "openid offline_access",
        ADA,
    )
    .await;
    let refreshed = token_request(
        &bridge,
        owner,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", first["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(refreshed.status(), 200, "{}", bridge.log());
    let second: serde_json::Value = refreshed.json().await.unwrap();
    assert_eq!(id_claims(&second)["sub"], id_claims(&first)["sub"]);
}
