//! The suite every [`Store`] backend must pass. Public (not `cfg(test)`)
//! because the Redis backend runs it from an integration test against a real
//! server.
//!
//! Each check gets a fresh store from the factory, so checks never see each
//! other's data. A failing check panics with its name.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::{Namespace, Store, StoreResult};

type CheckResult = Result<(), String>;

/// Long enough that a check never races expiry by accident.
const LONG: Duration = Duration::from_secs(60);
/// Short TTL for the expiry checks: whole seconds, as Redis timing is coarse.
const SHORT: Duration = Duration::from_secs(1);
/// How long the expiry checks wait for `SHORT` to pass.
const PAST_SHORT: Duration = Duration::from_millis(1200);
const CONCURRENT_TAKES: usize = 32;

const ALL_NAMESPACES: [Namespace; 18] = [
    Namespace::Login,
    Namespace::Code,
    Namespace::UsedCode,
    Namespace::AccessToken,
    Namespace::Session,
    Namespace::RefreshToken,
    Namespace::Family,
    Namespace::Consent,
    Namespace::Interaction,
    Namespace::Person,
    Namespace::Directory,
    Namespace::Backoff,
    Namespace::Event,
    Namespace::PushedRequest,
    Namespace::DeviceCode,
    Namespace::UserCode,
    Namespace::DevicePoll,
    Namespace::Jti,
];

/// Runs every check, each on a fresh store from `make`; panics naming the
/// first check that fails. The checks that wait for a TTL run side by side,
/// so the suite takes about 1.5 s plus the backend's round trips.
pub async fn run_all<S, F, Fut>(make: F)
where
    S: Store,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    macro_rules! check {
        ($name:ident) => {
            check(stringify!($name), &make, $name)
        };
    }

    check!(put_then_get_returns_the_value).await;
    check!(get_of_a_missing_key_is_none).await;
    check!(namespaces_are_separate_key_spaces).await;
    check!(put_overwrites).await;
    check!(put_new_refuses_an_existing_key_and_keeps_the_old_value).await;
    check!(put_new_accepts_a_missing_key).await;
    check!(take_returns_the_value_once).await;
    check!(concurrent_takes_of_one_key_give_it_to_exactly_one).await;
    check!(delete_reports_whether_the_key_existed).await;
    check!(swap_returns_the_previous_value_and_writes_the_new_one).await;
    check!(concurrent_swaps_of_one_key_hand_the_original_to_exactly_one).await;
    check!(replace_writes_only_over_a_live_record_and_returns_it).await;
    check!(concurrent_replaces_each_see_the_value_they_overwrote).await;
    check!(binary_values_round_trip).await;
    check!(long_keys_and_keys_with_separators_work).await;
    check!(ping_answers).await;
    check!(an_index_holds_each_member_with_its_latest_value).await;
    check!(removing_index_members_keeps_the_others).await;
    check!(indexes_are_separate_from_plain_records).await;
    tokio::join!(
        check!(an_index_lives_as_long_as_its_longest_member),
        check!(entries_expire_after_their_ttl),
        check!(expired_keys_cannot_be_taken_read_or_deleted),
        check!(put_new_accepts_an_expired_key),
        check!(replace_does_not_revive_an_expired_key),
    );
}

async fn check<S, F, Fut, C, CFut>(name: &str, make: &F, body: C)
where
    S: Store,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
    C: FnOnce(Arc<S>) -> CFut,
    CFut: Future<Output = CheckResult>,
{
    let store = Arc::new(make().await);
    if let Err(message) = body(store).await {
        panic!("store conformance check `{name}` failed: {message}");
    }
}

/// Turns a store error into a check failure that names the operation.
trait OrFail<T> {
    fn or_fail(self, op: &str) -> Result<T, String>;
}

impl<T> OrFail<T> for StoreResult<T> {
    fn or_fail(self, op: &str) -> Result<T, String> {
        self.map_err(|e| format!("{op} returned an error: {e}"))
    }
}

macro_rules! ensure_eq {
    ($actual:expr, $expected:expr, $what:expr) => {{
        let (actual, expected) = (&$actual, &$expected);
        if actual != expected {
            return Err(format!(
                "{}: expected {:?}, got {:?}",
                $what, expected, actual
            ));
        }
    }};
}

fn some(value: &[u8]) -> Option<Vec<u8>> {
    Some(value.to_vec())
}

async fn put_then_get_returns_the_value<S: Store>(store: Arc<S>) -> CheckResult {
    store
        .put(Namespace::Session, "k", b"value", LONG)
        .await
        .or_fail("put")?;
    let got = store.get(Namespace::Session, "k").await.or_fail("get")?;
    ensure_eq!(got, some(b"value"), "get after put");
    Ok(())
}

async fn get_of_a_missing_key_is_none<S: Store>(store: Arc<S>) -> CheckResult {
    let got = store
        .get(Namespace::Session, "missing")
        .await
        .or_fail("get")?;
    ensure_eq!(got, None, "get of a missing key");
    Ok(())
}

async fn namespaces_are_separate_key_spaces<S: Store>(store: Arc<S>) -> CheckResult {
    for ns in ALL_NAMESPACES {
        store
            .put(ns, "same", ns.as_str().as_bytes(), LONG)
            .await
            .or_fail("put")?;
    }
    for ns in ALL_NAMESPACES {
        let got = store.get(ns, "same").await.or_fail("get")?;
        ensure_eq!(got, some(ns.as_str().as_bytes()), format!("get in {ns:?}"));
    }
    let taken = store.take(Namespace::Code, "same").await.or_fail("take")?;
    ensure_eq!(taken, some(b"code"), "take in Code");
    let token = store
        .get(Namespace::AccessToken, "same")
        .await
        .or_fail("get")?;
    ensure_eq!(
        token,
        some(b"at"),
        "AccessToken entry after taking the Code entry"
    );
    let deleted = store
        .delete(Namespace::AccessToken, "same")
        .await
        .or_fail("delete")?;
    ensure_eq!(deleted, true, "delete in AccessToken");
    let session = store.get(Namespace::Session, "same").await.or_fail("get")?;
    ensure_eq!(
        session,
        some(b"session"),
        "Session entry after deleting the AccessToken entry"
    );
    Ok(())
}

async fn put_overwrites<S: Store>(store: Arc<S>) -> CheckResult {
    store
        .put(Namespace::Login, "k", b"old", LONG)
        .await
        .or_fail("put")?;
    store
        .put(Namespace::Login, "k", b"new", LONG)
        .await
        .or_fail("second put")?;
    let got = store.get(Namespace::Login, "k").await.or_fail("get")?;
    ensure_eq!(got, some(b"new"), "get after overwriting");
    Ok(())
}

async fn put_new_refuses_an_existing_key_and_keeps_the_old_value<S: Store>(
    store: Arc<S>,
) -> CheckResult {
    store
        .put(Namespace::UsedCode, "k", b"first", LONG)
        .await
        .or_fail("put")?;
    let written = store
        .put_new(Namespace::UsedCode, "k", b"second", LONG)
        .await
        .or_fail("put_new")?;
    ensure_eq!(written, false, "put_new over a live key");
    let got = store.get(Namespace::UsedCode, "k").await.or_fail("get")?;
    ensure_eq!(got, some(b"first"), "value after a refused put_new");
    Ok(())
}

async fn put_new_accepts_a_missing_key<S: Store>(store: Arc<S>) -> CheckResult {
    let written = store
        .put_new(Namespace::UsedCode, "k", b"v", LONG)
        .await
        .or_fail("put_new")?;
    ensure_eq!(written, true, "put_new of a missing key");
    let got = store.get(Namespace::UsedCode, "k").await.or_fail("get")?;
    ensure_eq!(got, some(b"v"), "get after put_new");
    Ok(())
}

async fn take_returns_the_value_once<S: Store>(store: Arc<S>) -> CheckResult {
    store
        .put(Namespace::Code, "k", b"code", LONG)
        .await
        .or_fail("put")?;
    let first = store.take(Namespace::Code, "k").await.or_fail("take")?;
    ensure_eq!(first, some(b"code"), "first take");
    let second = store
        .take(Namespace::Code, "k")
        .await
        .or_fail("second take")?;
    ensure_eq!(second, None, "second take");
    let after = store.get(Namespace::Code, "k").await.or_fail("get")?;
    ensure_eq!(after, None, "get after take");
    let missing = store
        .take(Namespace::Code, "missing")
        .await
        .or_fail("take")?;
    ensure_eq!(missing, None, "take of a missing key");
    Ok(())
}

async fn concurrent_takes_of_one_key_give_it_to_exactly_one<S: Store>(
    store: Arc<S>,
) -> CheckResult {
    for round in 0..3 {
        let key = format!("contended-{round}");
        store
            .put(Namespace::Code, &key, b"once", LONG)
            .await
            .or_fail("put")?;
        let barrier = Arc::new(tokio::sync::Barrier::new(CONCURRENT_TAKES));
        let takers: Vec<_> = (0..CONCURRENT_TAKES)
            .map(|_| {
                let (store, barrier, key) = (store.clone(), barrier.clone(), key.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    store.take(Namespace::Code, &key).await
                })
            })
            .collect();
        let mut winners = 0;
        for taker in takers {
            let taken = taker
                .await
                .map_err(|e| format!("a take task failed: {e}"))?;
            if let Some(value) = taken.or_fail("take")? {
                ensure_eq!(value, b"once".to_vec(), "value seen by a concurrent take");
                winners += 1;
            }
        }
        ensure_eq!(
            winners,
            1,
            format!("takes that got the value ({CONCURRENT_TAKES} tried)")
        );
    }
    Ok(())
}

async fn delete_reports_whether_the_key_existed<S: Store>(store: Arc<S>) -> CheckResult {
    store
        .put(Namespace::Family, "k", b"v", LONG)
        .await
        .or_fail("put")?;
    let first = store
        .delete(Namespace::Family, "k")
        .await
        .or_fail("delete")?;
    ensure_eq!(first, true, "delete of a live key");
    let second = store
        .delete(Namespace::Family, "k")
        .await
        .or_fail("second delete")?;
    ensure_eq!(second, false, "second delete");
    let got = store.get(Namespace::Family, "k").await.or_fail("get")?;
    ensure_eq!(got, None, "get after delete");
    Ok(())
}

async fn binary_values_round_trip<S: Store>(store: Arc<S>) -> CheckResult {
    let every_byte: Vec<u8> = (0..=255).collect();
    let values: [(&str, &[u8]); 3] = [
        ("every-byte", every_byte.as_slice()),
        ("empty", b""),
        ("crlf", b"\r\n$-1\r\n*0\r\n\0"),
    ];
    for (key, value) in values {
        store
            .put(Namespace::RefreshToken, key, value, LONG)
            .await
            .or_fail("put")?;
    }
    for (key, value) in values {
        let got = store
            .get(Namespace::RefreshToken, key)
            .await
            .or_fail("get")?;
        ensure_eq!(got, some(value), format!("get of the {key} value"));
        let taken = store
            .take(Namespace::RefreshToken, key)
            .await
            .or_fail("take")?;
        ensure_eq!(taken, some(value), format!("take of the {key} value"));
    }
    Ok(())
}

async fn long_keys_and_keys_with_separators_work<S: Store>(store: Arc<S>) -> CheckResult {
    let keys = [
        "0123456789abcdef".repeat(4),
        "0123456789abcdef".repeat(64),
        "a:b::c:".to_string(),
        "{tag}:x{y}".to_string(),
        "sp ace\ttab\u{e9}".to_string(),
    ];
    for (i, key) in keys.iter().enumerate() {
        store
            .put(Namespace::AccessToken, key, &[i as u8], LONG)
            .await
            .or_fail("put")?;
    }
    for (i, key) in keys.iter().enumerate() {
        let got = store
            .get(Namespace::AccessToken, key)
            .await
            .or_fail("get")?;
        ensure_eq!(got, Some(vec![i as u8]), format!("get of key {key:?}"));
    }
    // A key that merely extends another must not alias it.
    let prefix_only = store
        .get(Namespace::AccessToken, "a:b")
        .await
        .or_fail("get")?;
    ensure_eq!(prefix_only, None, "get of a prefix of a stored key");
    Ok(())
}

async fn ping_answers<S: Store>(store: Arc<S>) -> CheckResult {
    store.ping().await.or_fail("ping")
}

async fn entries_expire_after_their_ttl<S: Store>(store: Arc<S>) -> CheckResult {
    store
        .put(Namespace::Login, "short", b"v", SHORT)
        .await
        .or_fail("put")?;
    store
        .put(Namespace::Login, "long", b"v", LONG)
        .await
        .or_fail("put")?;
    let fresh = store.get(Namespace::Login, "short").await.or_fail("get")?;
    ensure_eq!(fresh, some(b"v"), "get before the TTL passed");
    tokio::time::sleep(PAST_SHORT).await;
    let expired = store.get(Namespace::Login, "short").await.or_fail("get")?;
    ensure_eq!(expired, None, "get after the TTL passed");
    let live = store.get(Namespace::Login, "long").await.or_fail("get")?;
    ensure_eq!(live, some(b"v"), "get of an entry with a longer TTL");
    Ok(())
}

async fn expired_keys_cannot_be_taken_read_or_deleted<S: Store>(store: Arc<S>) -> CheckResult {
    for key in ["take", "get", "delete"] {
        store
            .put(Namespace::Code, key, b"v", SHORT)
            .await
            .or_fail("put")?;
    }
    tokio::time::sleep(PAST_SHORT).await;
    let taken = store.take(Namespace::Code, "take").await.or_fail("take")?;
    ensure_eq!(taken, None, "take of an expired key");
    let got = store.get(Namespace::Code, "get").await.or_fail("get")?;
    ensure_eq!(got, None, "get of an expired key");
    let deleted = store
        .delete(Namespace::Code, "delete")
        .await
        .or_fail("delete")?;
    ensure_eq!(deleted, false, "delete of an expired key");
    Ok(())
}

async fn put_new_accepts_an_expired_key<S: Store>(store: Arc<S>) -> CheckResult {
    let first = store
        .put_new(Namespace::UsedCode, "k", b"old", SHORT)
        .await
        .or_fail("put_new")?;
    ensure_eq!(first, true, "first put_new");
    tokio::time::sleep(PAST_SHORT).await;
    let second = store
        .put_new(Namespace::UsedCode, "k", b"new", LONG)
        .await
        .or_fail("put_new")?;
    ensure_eq!(second, true, "put_new over an expired key");
    let got = store.get(Namespace::UsedCode, "k").await.or_fail("get")?;
    ensure_eq!(got, some(b"new"), "get after put_new over an expired key");
    Ok(())
}

async fn replace_writes_only_over_a_live_record_and_returns_it<S: Store>(
    store: Arc<S>,
) -> CheckResult {
    let missing = store
        .replace(Namespace::Session, "k", b"one", LONG)
        .await
        .or_fail("replace")?;
    ensure_eq!(missing, None, "replace of a missing key");
    let got = store.get(Namespace::Session, "k").await.or_fail("get")?;
    ensure_eq!(got, None, "replace of a missing key writes nothing");
    store
        .put(Namespace::Session, "k", b"one", LONG)
        .await
        .or_fail("put")?;
    let old = store
        .replace(Namespace::Session, "k", b"two", LONG)
        .await
        .or_fail("replace")?;
    ensure_eq!(old, some(b"one"), "replace returns the old value");
    let got = store.get(Namespace::Session, "k").await.or_fail("get")?;
    ensure_eq!(got, some(b"two"), "replace writes the new value");
    store
        .delete(Namespace::Session, "k")
        .await
        .or_fail("delete")?;
    let after_delete = store
        .replace(Namespace::Session, "k", b"three", LONG)
        .await
        .or_fail("replace")?;
    ensure_eq!(after_delete, None, "replace after delete");
    let got = store.get(Namespace::Session, "k").await.or_fail("get")?;
    ensure_eq!(got, None, "replace does not re-create a deleted key");
    Ok(())
}

async fn concurrent_replaces_each_see_the_value_they_overwrote<S: Store>(
    store: Arc<S>,
) -> CheckResult {
    store
        .put(Namespace::Session, "race", b"v0", LONG)
        .await
        .or_fail("put")?;
    let barrier = Arc::new(tokio::sync::Barrier::new(8));
    let writers: Vec<_> = (1..=8)
        .map(|i| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                let value = format!("v{i}").into_bytes();
                barrier.wait().await;
                let old = store
                    .replace(Namespace::Session, "race", &value, LONG)
                    .await;
                (value, old)
            })
        })
        .collect();
    let mut results = Vec::new();
    for writer in writers {
        results.push(
            writer
                .await
                .map_err(|e| format!("a replace task failed: {e}"))?,
        );
    }
    // Each write replaced exactly one earlier value: the original and every
    // value but the last one written are each seen exactly once.
    let mut seen: Vec<Vec<u8>> = Vec::new();
    for (_, old) in &results {
        match old {
            Ok(Some(old)) => seen.push(old.clone()),
            Ok(None) => return Err("a replace of a live key wrote nothing".into()),
            Err(e) => return Err(format!("replace: {e}")),
        }
    }
    let last = store
        .get(Namespace::Session, "race")
        .await
        .or_fail("get")?
        .ok_or("the key vanished")?;
    let mut written: Vec<Vec<u8>> = results.into_iter().map(|(v, _)| v).collect();
    written.push(b"v0".to_vec());
    written.retain(|v| *v != last);
    seen.sort();
    written.sort();
    ensure_eq!(seen, written, "each value overwritten exactly once");
    Ok(())
}

async fn replace_does_not_revive_an_expired_key<S: Store>(store: Arc<S>) -> CheckResult {
    store
        .put(Namespace::Session, "expiring", b"v", SHORT)
        .await
        .or_fail("put")?;
    tokio::time::sleep(PAST_SHORT).await;
    let old = store
        .replace(Namespace::Session, "expiring", b"w", LONG)
        .await
        .or_fail("replace")?;
    ensure_eq!(old, None, "replace of an expired key");
    let got = store
        .get(Namespace::Session, "expiring")
        .await
        .or_fail("get")?;
    ensure_eq!(got, None, "replace does not revive an expired key");
    Ok(())
}

async fn swap_returns_the_previous_value_and_writes_the_new_one<S: Store>(
    store: Arc<S>,
) -> CheckResult {
    let first = store
        .swap(Namespace::RefreshToken, "k", b"one", LONG)
        .await
        .or_fail("swap")?;
    ensure_eq!(first, None, "swap of a missing key");
    let second = store
        .swap(Namespace::RefreshToken, "k", b"two", LONG)
        .await
        .or_fail("swap")?;
    ensure_eq!(second, some(b"one"), "swap returns the old value");
    let now = store
        .get(Namespace::RefreshToken, "k")
        .await
        .or_fail("get")?;
    ensure_eq!(now, some(b"two"), "swap writes the new value");
    Ok(())
}

async fn concurrent_swaps_of_one_key_hand_the_original_to_exactly_one<S: Store>(
    store: Arc<S>,
) -> CheckResult {
    store
        .put(Namespace::RefreshToken, "race", b"original", LONG)
        .await
        .or_fail("put")?;
    let mut tasks = Vec::new();
    for i in 0..16u8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .swap(Namespace::RefreshToken, "race", &[i], LONG)
                .await
        }));
    }
    let mut originals = 0;
    for task in tasks {
        let got = task
            .await
            .map_err(|e| format!("task failed: {e}"))?
            .or_fail("swap")?;
        if got.as_deref() == Some(&b"original"[..]) {
            originals += 1;
        }
    }
    ensure_eq!(originals, 1, "swaps that saw the original value");
    Ok(())
}

fn sorted(mut members: Vec<(String, Vec<u8>)>) -> Vec<(String, Vec<u8>)> {
    members.sort();
    members
}

async fn an_index_holds_each_member_with_its_latest_value<S: Store>(store: Arc<S>) -> CheckResult {
    let empty = store
        .index_read(Namespace::Person, "p")
        .await
        .or_fail("index_read")?;
    ensure_eq!(empty, Vec::<(String, Vec<u8>)>::new(), "a missing index");
    for (m, v) in [("s:1", &b"a"[..]), ("f:2", b"b"), ("s:1", b"c")] {
        store
            .index_set(Namespace::Person, "p", m, v, LONG, None)
            .await
            .or_fail("index_set")?;
    }
    let read = sorted(
        store
            .index_read(Namespace::Person, "p")
            .await
            .or_fail("index_read")?,
    );
    ensure_eq!(
        read,
        vec![
            ("f:2".to_string(), b"b".to_vec()),
            ("s:1".to_string(), b"c".to_vec())
        ],
        "members after three sets"
    );
    Ok(())
}

async fn removing_index_members_keeps_the_others<S: Store>(store: Arc<S>) -> CheckResult {
    for m in ["a", "b", "c"] {
        store
            .index_set(Namespace::Person, "p", m, b"v", LONG, None)
            .await
            .or_fail("index_set")?;
    }
    store
        .index_remove(Namespace::Person, "p", &["a".into(), "zz".into()])
        .await
        .or_fail("index_remove")?;
    store
        .index_remove(Namespace::Person, "p", &[])
        .await
        .or_fail("index_remove of nothing")?;
    let left: Vec<String> = sorted(
        store
            .index_read(Namespace::Person, "p")
            .await
            .or_fail("index_read")?,
    )
    .into_iter()
    .map(|(m, _)| m)
    .collect();
    ensure_eq!(left, vec!["b".to_string(), "c".to_string()], "members left");
    store
        .index_remove(Namespace::Person, "p", &["b".into(), "c".into()])
        .await
        .or_fail("index_remove")?;
    let none = store
        .index_read(Namespace::Person, "p")
        .await
        .or_fail("index_read")?;
    ensure_eq!(none.len(), 0, "members after removing all");
    Ok(())
}

async fn indexes_are_separate_from_plain_records<S: Store>(store: Arc<S>) -> CheckResult {
    store
        .index_set(Namespace::Person, "p", "m", b"v", LONG, None)
        .await
        .or_fail("index_set")?;
    store
        .put(Namespace::Session, "p", b"record", LONG)
        .await
        .or_fail("put")?;
    let other_ns = store
        .index_read(Namespace::Family, "p")
        .await
        .or_fail("index_read")?;
    ensure_eq!(other_ns.len(), 0, "the same key in another namespace");
    ensure_eq!(
        store.get(Namespace::Session, "p").await.or_fail("get")?,
        some(b"record"),
        "a plain record beside an index"
    );
    Ok(())
}

async fn an_index_lives_as_long_as_its_longest_member<S: Store>(store: Arc<S>) -> CheckResult {
    store
        .index_set(Namespace::Person, "long", "a", b"v", LONG, None)
        .await
        .or_fail("index_set")?;
    // A shorter TTL does not cut the index's life.
    store
        .index_set(Namespace::Person, "long", "b", b"v", SHORT, None)
        .await
        .or_fail("index_set")?;
    store
        .index_set(Namespace::Person, "short", "a", b"v", SHORT, None)
        .await
        .or_fail("index_set")?;
    tokio::time::sleep(PAST_SHORT).await;
    let long = store
        .index_read(Namespace::Person, "long")
        .await
        .or_fail("index_read")?;
    ensure_eq!(long.len(), 2, "members of the index with a long TTL");
    let short = store
        .index_read(Namespace::Person, "short")
        .await
        .or_fail("index_read")?;
    ensure_eq!(short.len(), 0, "members of an expired index");
    Ok(())
}
