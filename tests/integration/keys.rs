//! Signing key lifecycle, end to end: the real server, the `keys` commands of
//! the real binary, and an independent library (jsonwebtoken) verifying what
//! applications receive against the JWKS they would fetch.

use crate::common;

use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::bridge::{Bridge, Setup};
use common::browser::{Browser, ClientAuth, auth_params, param, pkce, redeem};
use common::redis_server::RedisServer;
use slack_oidc_bridge::keys::follow::{AutoRotation, rotate_once};
use slack_oidc_bridge::keys::{
    Algorithm, KeyFile, KeyState, KeyStore, Policy, RedisLock, Rotation,
};
use slack_oidc_bridge::store::redis::RedisStore;

/// How long a server may take to follow the key file in these tests.
const FOLLOW_WITHIN: Duration = Duration::from_secs(15);

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut all = vec![("BRIDGE_KEYS__RELOAD_INTERVAL_SECS", "1")];
    all.extend_from_slice(pairs);
    all.into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn start(env: &[(String, String)]) -> Bridge {
    Bridge::start(Setup {
        env: env.to_vec(),
        ..Setup::default()
    })
    .await
}

/// Runs `slack-oidc-bridge keys ARGS --config` with the bridge's config and
/// the same environment overrides the server got.
fn keys_cli(bridge: &Bridge, env: &[(String, String)], args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slack-oidc-bridge"));
    cmd.arg("keys")
        .args(args)
        .arg("--config")
        .arg(&bridge.config_path)
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the CLI runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "the command failed: {}{}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// `keys list --json`, as (kid, state) pairs.
fn listed(bridge: &Bridge, env: &[(String, String)]) -> Vec<(String, String)> {
    let rows: serde_json::Value =
        serde_json::from_str(&ok(keys_cli(bridge, env, &["list", "--json"]))).unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["kid"].as_str().unwrap().to_string(),
                r["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn kid_in_state(rows: &[(String, String)], state: &str) -> String {
    rows.iter()
        .find(|(_, s)| s == state)
        .unwrap_or_else(|| panic!("no {state} key in {rows:?}"))
        .0
        .clone()
}

async fn jwks(bridge: &Bridge) -> jsonwebtoken::jwk::JwkSet {
    reqwest::get(bridge.url("/jwks"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn jwks_kids(bridge: &Bridge) -> Vec<String> {
    jwks(bridge)
        .await
        .keys
        .into_iter()
        .filter_map(|k| k.common.key_id)
        .collect()
}

/// Polls the JWKS until `done` holds; panics after [`FOLLOW_WITHIN`].
async fn wait_for_jwks(bridge: &Bridge, what: &str, done: impl Fn(&[String]) -> bool) {
    let deadline = Instant::now() + FOLLOW_WITHIN;
    loop {
        let kids = jwks_kids(bridge).await;
        if done(&kids) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the JWKS did not change ({what}) within {FOLLOW_WITHIN:?}: {kids:?}\n{}",
            bridge.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A complete sign-in through `auth`'s client: (ID token, access token).
async fn tokens(bridge: &Bridge, auth: ClientAuth) -> (String, String) {
    let (verifier, challenge) = pkce();
    let mut params = auth_params(auth.client_id(), "s", "n");
    params.push(("code_challenge", &challenge));
    params.push(("code_challenge_method", "S256"));
    let back = Browser::new().sign_in(bridge, &params, "U0000000001").await;
    let code = param(&back, "code").expect("a code");
    let r = redeem(bridge, auth, &code, Some(&verifier)).await;
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    (
        body["id_token"].as_str().unwrap().to_string(),
        body["access_token"].as_str().unwrap().to_string(),
    )
}

async fn id_token(bridge: &Bridge) -> String {
    tokens(bridge, ClientAuth::Basic).await.0
}

fn header(jwt: &str) -> jsonwebtoken::Header {
    jsonwebtoken::decode_header(jwt).unwrap()
}

fn kid_of(jwt: &str) -> String {
    header(jwt).kid.expect("the ID token names its key")
}

/// Verifies an ID token with jsonwebtoken against the JWKS served now.
async fn verify(bridge: &Bridge, jwt: &str, audience: &str) -> Result<serde_json::Value, String> {
    let set = jwks(bridge).await;
    let h = header(jwt);
    let kid = h.kid.ok_or("no kid")?;
    let jwk = set.find(&kid).ok_or(format!("{kid} is not in the JWKS"))?;
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut validation = jsonwebtoken::Validation::new(h.alg);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[bridge.base.as_str()]);
    jsonwebtoken::decode::<serde_json::Value>(jwt, &key, &validation)
        .map(|d| d.claims)
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_signed_before_a_rotation_still_verifies_against_the_jwks_after_it() {
    let env = env(&[]);
    let bridge = start(&env).await;
    let before = id_token(&bridge).await;
    let old_kid = kid_of(&before);

    let out = ok(keys_cli(&bridge, &env, &["rotate", "--now"]));
    assert!(out.contains("rotated"), "{out}");
    let rows = listed(&bridge, &env);
    let (new_active, new_next) = (kid_in_state(&rows, "active"), kid_in_state(&rows, "next"));
    wait_for_jwks(&bridge, "fresh next key published", |k| {
        k.contains(&new_next)
    })
    .await;

    let after = id_token(&bridge).await;
    assert_eq!(kid_of(&after), new_active, "the promoted key signs");
    assert_ne!(kid_of(&after), old_kid);
    let claims = verify(&bridge, &before, "app-basic")
        .await
        .expect("the token signed before the rotation verifies");
    assert_eq!(claims["sub"], "T0000000001:U0000000001");
    verify(&bridge, &after, "app-basic").await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_jwks_during_the_publish_window_holds_both_the_signing_and_the_next_key() {
    let env = env(&[]);
    let bridge = start(&env).await;
    let rows = listed(&bridge, &env);
    let (active, next) = (kid_in_state(&rows, "active"), kid_in_state(&rows, "next"));
    let kids = jwks_kids(&bridge).await;
    assert!(kids.contains(&active) && kids.contains(&next), "{kids:?}");
    assert_eq!(kids.len(), 2);
    assert_eq!(
        kid_of(&id_token(&bridge).await),
        active,
        "only the active key signs"
    );

    ok(keys_cli(&bridge, &env, &["rotate", "--now"]));
    let rows = listed(&bridge, &env);
    let fresh = kid_in_state(&rows, "next");
    wait_for_jwks(&bridge, "fresh next key published", |k| k.contains(&fresh)).await;
    let kids = jwks_kids(&bridge).await;
    for kid in [&active, &next, &fresh] {
        assert!(kids.contains(kid), "retired, active and next: {kids:?}");
    }
    assert_eq!(kid_of(&id_token(&bridge).await), next);
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_rotate_refuses_without_now_while_the_next_key_is_younger_than_the_jwks_cache() {
    // Default jwks_cache_secs (300): the next key created at start is too new.
    let env = env(&[]);
    let bridge = start(&env).await;
    let rows = listed(&bridge, &env);

    let refused = keys_cli(&bridge, &env, &["rotate"]);
    assert!(!refused.status.success());
    let message = stderr(&refused);
    assert!(message.contains("refused"), "{message}");
    assert!(message.contains("--now"), "{message}");
    assert!(message.contains("jwks_cache_secs = 300"), "{message}");
    assert!(message.contains(&kid_in_state(&rows, "next")), "{message}");
    assert_eq!(
        listed(&bridge, &env),
        rows,
        "a refused rotation changes nothing"
    );

    ok(keys_cli(&bridge, &env, &["rotate", "--now"]));
    assert_eq!(
        kid_in_state(&listed(&bridge, &env), "active"),
        kid_in_state(&rows, "next"),
        "--now accepts the risk"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_key_leaves_the_jwks_and_the_next_token_has_a_new_kid() {
    let env = env(&[]);
    let bridge = start(&env).await;
    let before = id_token(&bridge).await;
    let compromised = kid_of(&before);

    let out = ok(keys_cli(&bridge, &env, &["revoke", &compromised]));
    assert!(out.contains(&format!("revoked {compromised}")), "{out}");
    wait_for_jwks(&bridge, "revoked key removed", |k| {
        !k.contains(&compromised)
    })
    .await;

    let after = id_token(&bridge).await;
    assert_ne!(kid_of(&after), compromised);
    verify(&bridge, &after, "app-basic").await.unwrap();
    let e = verify(&bridge, &before, "app-basic").await.unwrap_err();
    assert!(e.contains("not in the JWKS"), "{e}");
    let rows = listed(&bridge, &env);
    assert!(
        rows.contains(&(compromised.clone(), "revoked".into())),
        "{rows:?}"
    );
    let file = std::fs::read_to_string(bridge.dir.path().join("keys/keyset.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&file).unwrap();
    let record = json["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == compromised.as_str())
        .unwrap();
    assert!(record.get("pkcs8").is_none(), "the private key is erased");
}

#[tokio::test(flavor = "multi_thread")]
async fn access_and_refresh_tokens_issued_under_a_revoked_key_stop_working() {
    use common::bridge::REFRESH;
    use common::browser::{Browser, client_request, sign_in_and_redeem};
    let env = env(&[]);
    let bridge = start(&env).await;
    let owner = ClientAuth::Other(REFRESH.0, REFRESH.1);
    let tokens = sign_in_and_redeem(
        &bridge,
        &Browser::new(),
        owner,
        "openid offline_access",
        "U0000000001",
    )
    .await;
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let userinfo = || {
        reqwest::Client::new()
            .get(bridge.url("/userinfo"))
            .bearer_auth(access)
            .send()
    };
    assert_eq!(userinfo().await.unwrap().status(), 200);

    let compromised = kid_of(tokens["id_token"].as_str().unwrap());
    ok(keys_cli(&bridge, &env, &["revoke", &compromised]));
    wait_for_jwks(&bridge, "revoked key removed", |k| {
        !k.contains(&compromised)
    })
    .await;

    assert_eq!(userinfo().await.unwrap().status(), 401);
    let r = client_request(
        &bridge,
        "/token",
        owner,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    )
    .await;
    assert_eq!(r.status(), 400);
    let r = client_request(&bridge, "/introspect", owner, &[("token", access)]).await;
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"active": false})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn es256_and_eddsa_clients_get_id_tokens_that_jsonwebtoken_verifies_against_the_jwks() {
    let env = env(&[
        ("BRIDGE_KEYS__ALGORITHMS", r#"["RS256", "ES256", "EdDSA"]"#),
        ("BRIDGE_CLIENTS__0__ID_TOKEN_SIGNED_RESPONSE_ALG", "ES256"),
        ("BRIDGE_CLIENTS__1__ID_TOKEN_SIGNED_RESPONSE_ALG", "EdDSA"),
    ]);
    let bridge = start(&env).await;
    let discovery: serde_json::Value =
        reqwest::get(bridge.url("/.well-known/openid-configuration"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(
        discovery["id_token_signing_alg_values_supported"],
        serde_json::json!(["RS256", "ES256", "EdDSA"])
    );

    for (auth, alg) in [
        (ClientAuth::Basic, jsonwebtoken::Algorithm::ES256),
        (ClientAuth::Post, jsonwebtoken::Algorithm::EdDSA),
        (ClientAuth::Public, jsonwebtoken::Algorithm::RS256),
    ] {
        let (id_token, access_token) = tokens(&bridge, auth).await;
        assert_eq!(header(&id_token).alg, alg, "{}", auth.client_id());
        let claims = verify(&bridge, &id_token, auth.client_id())
            .await
            .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        // at_hash uses the hash of the algorithm: SHA-512 for Ed25519.
        let hash = match alg {
            jsonwebtoken::Algorithm::EdDSA => &aws_lc_rs::digest::SHA512,
            _ => &aws_lc_rs::digest::SHA256,
        };
        let d = aws_lc_rs::digest::digest(hash, access_token.as_bytes());
        let half = URL_SAFE_NO_PAD.encode(&d.as_ref()[..d.as_ref().len() / 2]);
        assert_eq!(claims["at_hash"], half.as_str(), "{alg:?}");
    }
    let set = jwks(&bridge).await;
    assert_eq!(set.keys.len(), 6, "an active and a next key per algorithm");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_server_process_follows_a_rotation_made_by_the_cli_without_restart() {
    let env_a = env(&[]);
    let a = start(&env_a).await;
    let shared = a.dir.path().join("keys");
    let env_b = env(&[("BRIDGE_KEYS__DIR", shared.to_str().unwrap())]);
    let b = start(&env_b).await;
    assert_eq!(jwks_kids(&a).await, jwks_kids(&b).await, "one key set");

    ok(keys_cli(&a, &env_a, &["rotate", "--now"]));
    let rows = listed(&a, &env_a);
    let (active, fresh) = (kid_in_state(&rows, "active"), kid_in_state(&rows, "next"));
    for server in [&a, &b] {
        wait_for_jwks(server, "rotation followed", |k| k.contains(&fresh)).await;
    }
    assert_eq!(kid_of(&id_token(&b).await), active);
    assert_eq!(kid_of(&id_token(&a).await), active);
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_makes_a_running_server_reread_the_key_file_at_once() {
    // Polling alone would take an hour.
    let env = env(&[("BRIDGE_KEYS__RELOAD_INTERVAL_SECS", "3600")]);
    let bridge = start(&env).await;
    let before = jwks_kids(&bridge).await;
    ok(keys_cli(&bridge, &env, &["rotate", "--now"]));
    let fresh = kid_in_state(&listed(&bridge, &env), "next");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(jwks_kids(&bridge).await, before, "not polled yet");

    let status = Command::new("kill")
        .args(["-HUP", &bridge.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    wait_for_jwks(&bridge, "reread on SIGHUP", |k| k.contains(&fresh)).await;
    let health = reqwest::get(bridge.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200, "SIGHUP does not stop the server");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_truncated_key_file_stops_startup_with_an_error_naming_the_file() {
    let env = env(&[]);
    let bridge = start(&env).await;
    let kids = jwks_kids(&bridge).await;
    let path = bridge.dir.path().join("keys/keyset.json");
    let text = std::fs::read(&path).unwrap();
    std::fs::write(&path, &text[..text.len() / 2]).unwrap();

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slack-oidc-bridge"));
    cmd.arg("serve")
        .arg("--config")
        .arg(&bridge.config_path)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    for (k, v) in &env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the server started on a truncated key file");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let message = stderr(&out);
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("not a valid key set"), "{message}");

    // The server already running keeps its keys and says why.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(jwks_kids(&bridge).await, kids);
    assert!(
        bridge.log().contains("the key file cannot be used"),
        "{}",
        bridge.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_jwks_max_age_is_the_cache_lifetime_setting() {
    let env = env(&[("BRIDGE_KEYS__JWKS_CACHE_SECS", "42")]);
    let bridge = start(&env).await;
    let r = reqwest::get(bridge.url("/jwks")).await.unwrap();
    assert_eq!(r.headers()["cache-control"], "public, max-age=42");
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_list_prints_a_table_for_people_and_json_for_scripts() {
    let env = env(&[]);
    let bridge = start(&env).await;
    let table = ok(keys_cli(&bridge, &env, &["list"]));
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("KID") && lines[0].contains("NEXT"),
        "{table}"
    );
    assert_eq!(lines.len(), 3, "{table}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("active") && l.contains("signs until `keys rotate`")),
        "{table}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("next") && l.contains("may sign from")),
        "{table}"
    );

    let rows: serde_json::Value =
        serde_json::from_str(&ok(keys_cli(&bridge, &env, &["list", "--json"]))).unwrap();
    let next = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["state"] == "next")
        .unwrap();
    assert_eq!(next["alg"], "RS256");
    assert_eq!(next["next_step"], "may_sign");
    assert_eq!(
        next["next_step_at"].as_i64().unwrap(),
        next["created_at"].as_i64().unwrap() + 300 + 1,
        "cache lifetime plus reload interval"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_prune_removes_a_retired_key_once_its_id_tokens_have_expired() {
    let env = env(&[("BRIDGE_TOKENS__ID_TOKEN_TTL_SECS", "1")]);
    let bridge = start(&env).await;
    let old = kid_in_state(&listed(&bridge, &env), "active");
    ok(keys_cli(&bridge, &env, &["rotate", "--now"]));

    let out = ok(keys_cli(&bridge, &env, &["prune"]));
    assert!(out.contains("no retired key"), "{out}");
    assert!(listed(&bridge, &env).contains(&(old.clone(), "retired".into())));

    // Retention: ID-token lifetime (1 s) plus the reload interval (1 s).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let out = ok(keys_cli(&bridge, &env, &["prune"]));
    assert!(out.contains(&old), "{out}");
    assert!(!listed(&bridge, &env).iter().any(|(k, _)| k == &old));
    wait_for_jwks(&bridge, "pruned key removed", |k| !k.contains(&old)).await;
}

/// Two instances sharing a key directory and a Redis: the one holding the
/// Redis lock rotates, the other does nothing, and the re-check under the
/// file lock keeps an instance with a stale view from rotating twice.
#[tokio::test(flavor = "multi_thread")]
async fn with_several_instances_exactly_one_runs_the_automatic_rotation() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let policy = Policy {
        dir: dir.path().to_path_buf(),
        algorithms: vec![Algorithm::Rs256],
        jwks_cache_secs: 300,
        reload_interval_secs: 5,
        rotation_period_secs: Some(86_400),
        id_token_ttl_secs: 3600,
    };
    let a = Arc::new(KeyStore::open(policy.clone()).unwrap());
    let b = Arc::new(KeyStore::open(policy.clone()).unwrap());
    let lock =
        || RedisLock::new(RedisStore::new(&redis.url, "t:", Duration::from_secs(2)).unwrap());
    let (lock_a, lock_b) = (lock(), lock());
    let count = |state| {
        KeyFile::load(&KeyFile::path_in(dir.path()))
            .unwrap()
            .count(Algorithm::Rs256, state)
    };
    let in_two_days = slack_oidc_bridge::keys::now() + 2 * 86_400;

    // While "another instance" holds the lock, b does nothing.
    let held = lock_a
        .try_acquire()
        .await
        .unwrap()
        .expect("the lock is free");
    assert!(matches!(
        rotate_once(&b, Some(&lock_b), in_two_days).await,
        AutoRotation::LockedElsewhere
    ));
    assert_eq!(count(KeyState::Retired), 0);
    held.release().await;

    let r = rotate_once(&b, Some(&lock_b), in_two_days).await;
    assert!(
        matches!(
            &r,
            AutoRotation::Done {
                rotation: Some(Rotation::Done { .. }),
                ..
            }
        ),
        "{r:?}"
    );
    assert_eq!(count(KeyState::Retired), 1);
    // a still sees the old set (it has not reread the file) and thinks
    // rotation is due; under the locks it finds it done.
    let r = rotate_once(&a, Some(&lock_a), in_two_days).await;
    assert!(
        matches!(&r, AutoRotation::Done { rotation: None, .. }),
        "{r:?}"
    );
    assert_eq!(count(KeyState::Retired), 1, "rotated once");
    let signer = |s: &KeyStore| {
        s.current()
            .signer_for(Algorithm::Rs256)
            .unwrap()
            .kid()
            .to_string()
    };
    assert_eq!(signer(&a), signer(&b), "both follow the file");

    // Both at once, two days later: still exactly one rotation.
    let next = KeyFile::load(&KeyFile::path_in(dir.path()))
        .unwrap()
        .find(Algorithm::Rs256, KeyState::Next)
        .unwrap()
        .kid
        .clone();
    let later = in_two_days + 2 * 86_400;
    let (ra, rb) = tokio::join!(
        rotate_once(&a, Some(&lock_a), later),
        rotate_once(&b, Some(&lock_b), later)
    );
    let rotated = [&ra, &rb]
        .iter()
        .filter(|r| {
            matches!(
                r,
                AutoRotation::Done {
                    rotation: Some(Rotation::Done { .. }),
                    ..
                }
            )
        })
        .count();
    assert_eq!(rotated, 1, "{ra:?} {rb:?}");
    let file = KeyFile::load(&KeyFile::path_in(dir.path())).unwrap();
    assert_eq!(
        file.find(Algorithm::Rs256, KeyState::Active).unwrap().kid,
        next
    );
    // The first retired key had outlived its tokens: pruned on the way.
    assert_eq!(count(KeyState::Retired), 1);
}
