//! The Redis backend against a real, throwaway redis-server: the shared
//! conformance suite, then the faults the bridge must survive (Redis down,
//! back again, frozen) without hanging and without being rebuilt.

use crate::common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::redis_server::RedisServer;
use slack_oidc_bridge::store::conformance::run_all;
use slack_oidc_bridge::store::redis::RedisStore;
use slack_oidc_bridge::store::{Namespace, Store, StoreError};

const TIMEOUT: Duration = Duration::from_millis(400);
/// Generous on purpose: these tests prove "gives up instead of hanging", not
/// a latency target.
const MARGIN: Duration = Duration::from_secs(2);
const TTL: Duration = Duration::from_secs(60);

fn unique_prefix() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "test{}-{}:",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn store_for(server: &RedisServer) -> RedisStore {
    RedisStore::new(&server.url, &unique_prefix(), TIMEOUT).expect("valid URL")
}

/// Runs `get` and checks it gives up with `Unavailable` in bounded time.
async fn assert_unavailable_quickly(store: &RedisStore, what: &str) {
    let started = Instant::now();
    let result = store.get(Namespace::Session, "k").await;
    let took = started.elapsed();
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{what}: got {result:?}"
    );
    assert!(took < TIMEOUT + MARGIN, "{what}: took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_passes_the_conformance_suite() {
    let server = RedisServer::start();
    let url = server.url.clone();
    run_all(|| {
        let url = url.clone();
        async move { RedisStore::new(&url, &unique_prefix(), Duration::from_secs(2)).unwrap() }
    })
    .await;
}

#[tokio::test]
async fn redis_store_answers_unavailable_quickly_when_redis_is_down() {
    let mut server = RedisServer::start();
    let store = store_for(&server);
    store.put(Namespace::Session, "k", b"v", TTL).await.unwrap();

    server.stop();
    assert_unavailable_quickly(&store, "first call after stop").await;
    assert_unavailable_quickly(&store, "second call after stop").await;
    let ping = store.ping().await;
    assert!(
        matches!(ping, Err(StoreError::Unavailable(_))),
        "ping: {ping:?}"
    );
}

// Multi-threaded, as in the bridge: background reconnect attempts then run
// (and fail) while Redis is down instead of waiting for the test to yield.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_recovers_when_redis_comes_back_without_a_new_store() {
    let mut server = RedisServer::start();
    let store = store_for(&server);
    store.put(Namespace::Session, "k", b"v", TTL).await.unwrap();

    server.stop();
    assert_unavailable_quickly(&store, "call while Redis is down").await;
    assert_unavailable_quickly(&store, "another call while Redis is down").await;
    // Give the reconnect those calls started time to fail too.
    tokio::time::sleep(Duration::from_millis(200)).await;

    server.restart();
    // The restarted server is empty; the first call must already get through.
    assert_eq!(store.get(Namespace::Session, "k").await.unwrap(), None);
    store
        .put(Namespace::Session, "k", b"again", TTL)
        .await
        .unwrap();
    assert_eq!(
        store
            .take(Namespace::Session, "k")
            .await
            .unwrap()
            .as_deref(),
        Some(&b"again"[..])
    );
    store.ping().await.unwrap();
}

#[tokio::test]
async fn redis_store_gives_up_on_a_frozen_redis_within_the_timeout() {
    let server = RedisServer::start();
    let store = store_for(&server);
    store.put(Namespace::Session, "a", b"1", TTL).await.unwrap();
    store.put(Namespace::Session, "b", b"2", TTL).await.unwrap();

    server.pause();
    assert_unavailable_quickly(&store, "call on an open connection").await;
    assert_unavailable_quickly(&store, "second call on an open connection").await;
    // A store that has never connected must not hang in the connect either.
    let fresh = store_for(&server);
    assert_unavailable_quickly(&fresh, "first call of a new store").await;

    server.resume();
    // Late replies to the abandoned calls must not be mistaken for these.
    assert_eq!(
        store.get(Namespace::Session, "a").await.unwrap().as_deref(),
        Some(&b"1"[..])
    );
    assert_eq!(
        store.get(Namespace::Session, "b").await.unwrap().as_deref(),
        Some(&b"2"[..])
    );
    fresh.ping().await.unwrap();
}
