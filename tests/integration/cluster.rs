//! The Redis backend on a three-master Redis Cluster started by the test on
//! loopback ports: the shared conformance suite, the key rotation lock, a
//! sign-in and a refresh through the real binary, and bounded failure while
//! the cluster is away.

use crate::common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::bridge::{Bridge, REFRESH, Setup};
use common::browser::{Browser, ClientAuth, id_claims, sign_in_and_redeem, token_request};
use common::redis_cluster::RedisCluster;
use slack_oidc_bridge::keys::RedisLock;
use slack_oidc_bridge::store::conformance::run_all;
use slack_oidc_bridge::store::redis::RedisStore;
use slack_oidc_bridge::store::{Namespace, Store, StoreError};

const ADA: &str = "U0000000001";

fn unique_prefix() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "cluster{}-{}:",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_store_passes_the_conformance_suite() {
    let cluster = RedisCluster::start();
    // One seed is enough: the client discovers the other masters.
    let seeds = vec![cluster.urls[0].clone()];
    run_all(|| {
        let seeds = seeds.clone();
        async move { RedisStore::cluster(&seeds, &unique_prefix(), Duration::from_secs(2)).unwrap() }
    })
    .await;
    let per_node = cluster.keys_per_node();
    assert!(
        per_node.iter().filter(|&&n| n > 0).count() >= 2,
        "keys spread over the masters by slot: {per_node:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_store_operation_reaches_keys_on_every_master() {
    let cluster = RedisCluster::start();
    let store =
        RedisStore::cluster(&cluster.urls, &unique_prefix(), Duration::from_secs(2)).unwrap();
    assert!(store.is_cluster());
    let ttl = Duration::from_secs(60);
    // Enough keys that every master owns some (16384 slots in 3 ranges).
    let keys: Vec<String> = (0..60).map(|i| format!("key-{i}")).collect();
    for k in &keys {
        store
            .put(Namespace::Code, k, k.as_bytes(), ttl)
            .await
            .unwrap();
    }
    let per_node = cluster.keys_per_node();
    assert!(
        per_node.iter().all(|&n| n > 0),
        "every master holds keys: {per_node:?}"
    );
    for k in &keys {
        let old = store
            .swap(Namespace::Code, k, b"swapped", ttl)
            .await
            .unwrap();
        assert_eq!(old.as_deref(), Some(k.as_bytes()));
        assert!(!store.put_new(Namespace::Code, k, b"no", ttl).await.unwrap());
        assert_eq!(
            store.take(Namespace::Code, k).await.unwrap().as_deref(),
            Some(&b"swapped"[..])
        );
        assert_eq!(store.get(Namespace::Code, k).await.unwrap(), None);
        assert!(!store.delete(Namespace::Code, k).await.unwrap());
    }
    assert_eq!(
        cluster.keys_per_node().iter().sum::<u64>(),
        0,
        "everything taken"
    );
    store.ping().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_rotation_lock_is_held_by_one_instance_at_a_time_on_the_cluster() {
    let cluster = RedisCluster::start();
    // One seed: the lock's key lands on any master and must be routed there.
    let seeds = vec![cluster.urls[0].clone()];
    for _ in 0..6 {
        let prefix = unique_prefix();
        let lock = || {
            RedisLock::new(RedisStore::cluster(&seeds, &prefix, Duration::from_secs(2)).unwrap())
        };
        let (a, b) = (lock(), lock());
        let held = a.try_acquire().await.unwrap().expect("the lock is free");
        assert!(b.try_acquire().await.unwrap().is_none(), "{prefix}");
        held.release().await;
        let again = b.try_acquire().await.unwrap().expect("released");
        assert!(a.try_acquire().await.unwrap().is_none(), "{prefix}");
        again.release().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_store_is_built_without_the_cluster_and_gives_up_in_bounded_time() {
    let timeout = Duration::from_millis(400);
    // Nothing listens on port 1; building the store must not care.
    let store = RedisStore::cluster(&["redis://127.0.0.1:1".to_string()], "p:", timeout).unwrap();
    for _ in 0..2 {
        let started = Instant::now();
        let result = store.take(Namespace::Code, "k").await;
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "{result:?}"
        );
        assert!(
            started.elapsed() < timeout + Duration::from_secs(2),
            "took {:?}",
            started.elapsed()
        );
        let started = Instant::now();
        assert!(matches!(
            store.ping().await,
            Err(StoreError::Unavailable(_))
        ));
        assert!(
            started.elapsed() < timeout + Duration::from_secs(2),
            "took {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sign_in_and_a_refresh_through_the_real_binary_on_the_cluster() {
    let cluster = RedisCluster::start();
    let bridge = Bridge::start(Setup {
        redis_cluster: Some(cluster.urls.clone()),
        ..Default::default()
    })
    .await;
    let ready = reqwest::get(bridge.url("/readyz")).await.unwrap();
    assert_eq!(
        ready.status(),
        200,
        "ready on the cluster: {}",
        bridge.log()
    );

    let owner = ClientAuth::Other(REFRESH.0, REFRESH.1);
    let first = sign_in_and_redeem(
        &bridge,
        &Browser::new(),
        owner,
        "openid email offline_access",
        ADA,
    )
    .await;
    assert_eq!(id_claims(&first)["https://slack.com/user_id"], ADA);
    let refreshed = token_request(
        &bridge,
        owner,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", first["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(refreshed.status(), 200);
    let second: serde_json::Value = refreshed.json().await.unwrap();
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    assert_eq!(id_claims(&second)["sub"], id_claims(&first)["sub"]);

    let userinfo = reqwest::Client::new()
        .get(bridge.url("/userinfo"))
        .bearer_auth(second["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(userinfo.status(), 200);
    // Reuse is still detected: the tombstone lives in its own slot.
    let reused = token_request(
        &bridge,
        owner,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", first["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(reused.status(), 400);
    let stored: u64 = cluster.keys_per_node().iter().sum();
    assert!(stored > 0, "the bridge's records are in the cluster");
    assert!(!bridge.log().contains("CROSSSLOT"), "{}", bridge.log());
}
