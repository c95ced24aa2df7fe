//! The Redis backend, for several bridge instances sharing one store.
//!
//! - **Lazy connect.** [`RedisStore::new`] only parses the URL: the bridge must
//!   start (and report "not ready" on `/readyz`) while Redis is down. The
//!   connection is opened by the first call and re-opened by a later call
//!   after it failed, so the store heals without being rebuilt.
//! - **Bounded calls.** Every operation, a connect attempt included, is cut
//!   off after `timeout`: a down, unreachable or frozen Redis becomes
//!   [`StoreError::Unavailable`] (a quick 503), never a request that hangs.
//! - **One key per command.** No `MULTI`, Lua or multi-key commands, and
//!   `take` is a single `GETDEL`, so every command is also valid on Redis
//!   Cluster (no `CROSSSLOT`); only the connection type would change there.

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, Cmd, FromRedisValue, RedisError, Value};
use async_trait::async_trait;

use super::{Namespace, Store, StoreError, StoreResult};

/// Redis refuses expiry times that overflow its clock; no real TTL comes near.
const MAX_TTL_MS: u64 = i64::MAX as u64 / 4;

pub struct RedisStore {
    client: Client,
    key_prefix: String,
    timeout: Duration,
    /// Created on first use. It reconnects by itself after I/O errors; after
    /// any other error it is dropped so the next call starts from scratch.
    manager: Mutex<Option<ConnectionManager>>,
}

impl RedisStore {
    /// Parses `url` without connecting. `key_prefix` is prepended verbatim to
    /// every key (e.g. `"sob:"`); `timeout` bounds every call.
    pub fn new(url: &str, key_prefix: &str, timeout: Duration) -> Result<RedisStore, StoreError> {
        // The parser's messages never echo the URL, so no password can leak.
        let client = Client::open(url)
            .map_err(|e| StoreError::Unavailable(format!("invalid Redis URL: {e}")))?;
        Ok(RedisStore {
            client,
            key_prefix: key_prefix.to_string(),
            timeout,
            manager: Mutex::new(None),
        })
    }

    fn key(&self, ns: Namespace, key: &str) -> String {
        format!("{}{}:{}", self.key_prefix, ns.as_str(), key)
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<ConnectionManager>> {
        // The slot holds a clonable handle and is only ever replaced whole.
        self.manager.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The shared connection manager, created (not connected) on first use.
    /// Must run inside the Tokio runtime, which is why `new` does not do it.
    fn manager(&self) -> Result<ConnectionManager, RedisError> {
        let mut slot = self.slot();
        if let Some(manager) = slot.as_ref() {
            return Ok(manager.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            // Fail fast while Redis is down; the next call tries again.
            .set_number_of_retries(0);
        let manager = ConnectionManager::new_lazy_with_config(self.client.clone(), config)?;
        *slot = Some(manager.clone());
        Ok(manager)
    }

    async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, RedisError> {
        let mut manager = self.manager()?;
        match cmd.query_async(&mut manager).await {
            // The manager answers with the outcome of its last connect attempt,
            // made right after the previous failure: while Redis was down that
            // is a refusal, so the first call after Redis returns would fail
            // too. This failure has started a fresh attempt, which the retry
            // waits for. A refused connect means the command was never sent,
            // so retrying is safe even for GETDEL.
            Err(e) if e.is_connection_refusal() => cmd.query_async(&mut manager).await,
            result => result,
        }
    }

    /// Runs one command within the timeout; every failure is `Unavailable`.
    async fn run<T: FromRedisValue>(&self, cmd: &Cmd) -> StoreResult<T> {
        match tokio::time::timeout(self.timeout, self.query(cmd)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                if !e.is_io_error() {
                    // The manager only reconnects after I/O errors; after e.g. a
                    // refused AUTH it would return the same error forever.
                    *self.slot() = None;
                }
                Err(StoreError::Unavailable(format!("Redis: {e}")))
            }
            Err(_) => Err(StoreError::Unavailable(format!(
                "Redis did not answer within {} ms",
                self.timeout.as_millis()
            ))),
        }
    }

    fn set(&self, ns: Namespace, key: &str, value: &[u8], ttl: Duration) -> Cmd {
        let mut cmd = ::redis::cmd("SET");
        cmd.arg(self.key(ns, key))
            .arg(value)
            .arg("PX")
            .arg(ttl_millis(ttl));
        cmd
    }

    fn on_key(&self, command: &str, ns: Namespace, key: &str) -> Cmd {
        let mut cmd = ::redis::cmd(command);
        cmd.arg(self.key(ns, key));
        cmd
    }
}

/// Whole milliseconds for `PX`: rounded up so nothing expires early, and at
/// least 1 because Redis rejects `PX 0`.
fn ttl_millis(ttl: Duration) -> u64 {
    let ms = ttl.as_nanos().div_ceil(1_000_000).max(1);
    u64::try_from(ms).unwrap_or(u64::MAX).min(MAX_TTL_MS)
}

impl fmt::Debug for RedisStore {
    // Leaves out the client, whose connection info holds the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("key_prefix", &self.key_prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn put(&self, ns: Namespace, key: &str, value: &[u8], ttl: Duration) -> StoreResult<()> {
        self.run(&self.set(ns, key, value, ttl)).await
    }

    async fn put_new(
        &self,
        ns: Namespace,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> StoreResult<bool> {
        let mut cmd = self.set(ns, key, value, ttl);
        cmd.arg("NX");
        // `SET … NX` answers OK when it wrote and nil when the key existed.
        let reply: Value = self.run(&cmd).await?;
        Ok(!matches!(reply, Value::Nil))
    }

    async fn swap(
        &self,
        ns: Namespace,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> StoreResult<Option<Vec<u8>>> {
        // `SET … GET` (Redis >= 6.2) writes and returns the old value atomically.
        let mut cmd = self.set(ns, key, value, ttl);
        cmd.arg("GET");
        self.run(&cmd).await
    }

    async fn get(&self, ns: Namespace, key: &str) -> StoreResult<Option<Vec<u8>>> {
        self.run(&self.on_key("GET", ns, key)).await
    }

    async fn take(&self, ns: Namespace, key: &str) -> StoreResult<Option<Vec<u8>>> {
        // GETDEL (Redis >= 6.2) reads and deletes in one atomic command.
        self.run(&self.on_key("GETDEL", ns, key)).await
    }

    async fn delete(&self, ns: Namespace, key: &str) -> StoreResult<bool> {
        let removed: u64 = self.run(&self.on_key("DEL", ns, key)).await?;
        Ok(removed > 0)
    }

    async fn ping(&self) -> StoreResult<()> {
        self.run(&::redis::cmd("PING")).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    const TIMEOUT: Duration = Duration::from_millis(300);
    /// Generous: these tests prove "does not hang", not a latency target.
    const MARGIN: Duration = Duration::from_secs(2);

    #[test]
    fn keys_are_prefix_namespace_and_key() {
        let store = RedisStore::new("redis://127.0.0.1:6379/0", "sob:", TIMEOUT).unwrap();
        assert_eq!(store.key(Namespace::Code, "abc"), "sob:code:abc");
        assert_eq!(store.key(Namespace::AccessToken, "a:{b}"), "sob:at:a:{b}");
    }

    #[test]
    fn ttls_are_whole_milliseconds_rounded_up() {
        assert_eq!(ttl_millis(Duration::ZERO), 1);
        assert_eq!(ttl_millis(Duration::from_nanos(1)), 1);
        assert_eq!(ttl_millis(Duration::from_micros(1500)), 2);
        assert_eq!(ttl_millis(Duration::from_secs(90)), 90_000);
        assert_eq!(ttl_millis(Duration::MAX), MAX_TTL_MS);
    }

    #[test]
    fn a_bad_url_is_an_error_that_does_not_echo_the_password() {
        for url in [
            "not a url",
            "http://127.0.0.1:6379",
            "redis://user:hunter2@host:notaport/0",
        ] {
            match RedisStore::new(url, "p:", TIMEOUT) {
                Err(StoreError::Unavailable(msg)) => assert!(!msg.contains("hunter2"), "{msg}"),
                other => panic!("{url}: expected an error, got {other:?}"),
            }
        }
    }

    #[test]
    fn debug_output_leaves_out_the_password() {
        let store = RedisStore::new("redis://user:hunter2@127.0.0.1:6379", "p:", TIMEOUT).unwrap();
        assert!(!format!("{store:?}").contains("hunter2"));
    }

    #[tokio::test]
    async fn an_unreachable_redis_is_unavailable_within_the_timeout() {
        // Port 1 refuses connections; `new` must not care.
        let store = RedisStore::new("redis://127.0.0.1:1", "p:", TIMEOUT).unwrap();
        for _ in 0..2 {
            let started = Instant::now();
            let result = store.get(Namespace::Code, "k").await;
            assert!(
                matches!(result, Err(StoreError::Unavailable(_))),
                "{result:?}"
            );
            assert!(
                started.elapsed() < TIMEOUT + MARGIN,
                "took {:?}",
                started.elapsed()
            );
        }
        assert!(matches!(
            store.ping().await,
            Err(StoreError::Unavailable(_))
        ));
    }
}
