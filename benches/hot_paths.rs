//! Criterion micro-benchmarks of the hot paths: ID-token signing per
//! algorithm, serving discovery and the JWKS from their cached bytes, and
//! the memory store's operations.
//!
//! `cargo bench --bench hot_paths` (add a filter such as `sign` to run some).

use std::hint::black_box;
use std::time::Duration;

use actix_web::test::TestRequest;
use criterion::{Criterion, criterion_group, criterion_main};
use openidconnect::IssuerUrl;
use slack_oidc_bridge::keys::{Algorithm, SigningKey};
use slack_oidc_bridge::provider::claims::{IdTokenRequest, Subject, sign_id_token};
use slack_oidc_bridge::provider::discovery;
use slack_oidc_bridge::store::memory::MemoryStore;
use slack_oidc_bridge::store::{Namespace, Store};
use slack_oidc_bridge::upstream::SlackIdentity;
use slack_oidc_bridge::web::cached::CachedJson;

const ISSUER: &str = "https://sso.example.com";

fn identity() -> SlackIdentity {
    SlackIdentity {
        user_id: "U0000000001".into(),
        team_id: "T0000000001".into(),
        enterprise_id: None,
        email: Some("ada@example.com".into()),
        email_verified: Some(true),
        name: Some("Ada Lovelace".into()),
        given_name: Some("Ada".into()),
        family_name: Some("Lovelace".into()),
        picture: Some("https://avatars.example.com/ada_512.png".into()),
        locale: Some("en-GB".into()),
        team_name: Some("Example Workspace".into()),
        team_domain: Some("example-workspace".into()),
        groups: None,
    }
}

fn signing(c: &mut Criterion) {
    let issuer = IssuerUrl::new(ISSUER.into()).unwrap();
    let identity = identity();
    let scopes: Vec<String> = ["openid", "email", "profile"].map(String::from).to_vec();
    let mut group = c.benchmark_group("sign");
    for alg in Algorithm::ALL {
        let (key, _) = SigningKey::generate(alg).unwrap();
        // The raw signature over an ID token's worth of signing input.
        let input = vec![b'a'; 620];
        group.bench_function(format!("{alg}/raw"), |b| {
            b.iter(|| key.sign_bytes(black_box(&input)).unwrap())
        });
        // The whole ID token: claims, at_hash, JSON, base64url, signature.
        group.bench_function(format!("{alg}/id_token"), |b| {
            b.iter(|| {
                sign_id_token(
                    &key,
                    &identity,
                    &IdTokenRequest {
                        issuer: &issuer,
                        client_id: "cocoom",
                        subject: Subject {
                            sub: "T0001:U0001",
                            pairwise: false,
                        },
                        scopes: &scopes,
                        nonce: Some("n-0S6_WzA2Mj"),
                        auth_time: 1_700_000_000,
                        access_token: "kLd1yUw0mAqPKr8x3fT2n5vQ9sG7hJ4bZcE6iO1pRwY",
                        lifetime_secs: 300,
                        sid: None,
                    },
                )
                .unwrap()
            })
        });
    }
    group.finish();
}

fn documents(c: &mut Criterion) {
    let discovery = discovery::metadata(ISSUER, &Algorithm::ALL, true, false);
    let keys: Vec<_> = Algorithm::ALL
        .iter()
        .map(|&alg| SigningKey::generate(alg).unwrap().0.public_jwk())
        .collect();
    let jwks = CachedJson::new(&jsonwebtoken::jwk::JwkSet { keys }, 300);
    let plain = TestRequest::get().to_http_request();
    let etag = jwks.respond(&plain).headers().get("etag").unwrap().clone();
    let revalidate = TestRequest::get()
        .insert_header(("if-none-match", etag))
        .to_http_request();

    let mut group = c.benchmark_group("serve");
    group.bench_function("discovery", |b| {
        b.iter(|| discovery.respond(black_box(&plain)))
    });
    group.bench_function("jwks", |b| b.iter(|| jwks.respond(black_box(&plain))));
    group.bench_function("jwks/if-none-match", |b| {
        b.iter(|| jwks.respond(black_box(&revalidate)))
    });
    group.finish();
}

fn memory_store(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let store = MemoryStore::new(1_000_000);
    let ttl = Duration::from_secs(600);
    // A typical record: a refresh grant is 500-700 bytes of JSON.
    let value = vec![b'x'; 600];
    // Keys as the records module makes them: base64url SHA-256, 43 chars.
    let keys: Vec<String> = (0..10_000).map(|i| format!("{i:0>43}")).collect();
    runtime.block_on(async {
        for k in &keys {
            store
                .put(Namespace::RefreshToken, k, &value, ttl)
                .await
                .unwrap();
        }
    });

    let mut group = c.benchmark_group("memory_store");
    let i = std::cell::Cell::new(0usize);
    let next = || {
        i.set((i.get() + 1) % keys.len());
        keys[i.get()].as_str()
    };
    group.bench_function("put", |b| {
        b.to_async(&runtime)
            .iter(|| store.put(Namespace::AccessToken, "fixed-key", &value, ttl))
    });
    group.bench_function("get", |b| {
        b.to_async(&runtime)
            .iter(|| store.get(Namespace::RefreshToken, next()))
    });
    group.bench_function("swap", |b| {
        b.to_async(&runtime)
            .iter(|| store.swap(Namespace::RefreshToken, next(), &value, ttl))
    });
    // take then put back, so the map keeps its size.
    group.bench_function("take+put", |b| {
        b.to_async(&runtime).iter(|| async {
            let k = format!("{:0>43}", 42);
            let v = store.take(Namespace::RefreshToken, &k).await.unwrap();
            store
                .put(
                    Namespace::RefreshToken,
                    &k,
                    v.as_deref().unwrap_or(&value),
                    ttl,
                )
                .await
                .unwrap();
        })
    });
    group.finish();
}

criterion_group!(benches, signing, documents, memory_store);
criterion_main!(benches);
