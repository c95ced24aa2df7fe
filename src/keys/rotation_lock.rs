//! The lock that lets exactly one of several instances run the automatic
//! rotation: `SET key token NX PX ttl` in the Redis the store already uses,
//! released by a compare-and-delete script. The key file's own writers' lock
//! (and the re-check under it) still keeps a second rotation from happening if
//! Redis loses the lock; this one keeps instances from even trying at once,
//! and works where the key directory is a network share without reliable
//! file locks.
//!
//! One key per command (the script too), so it also runs on Redis Cluster.

use std::time::Duration;

use anyhow::Context;
use redis::aio::MultiplexedConnection;

use crate::config::{Config, StoreBackend};

/// Longer than any rotation (which takes well under a second); a crashed
/// holder delays the next attempt by at most this.
const HOLD: Duration = Duration::from_secs(60);

const RELEASE: &str = r#"
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("DEL", KEYS[1])
end
return 0
"#;

pub struct RedisLock {
    client: redis::Client,
    key: String,
    timeout: Duration,
}

impl std::fmt::Debug for RedisLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The client holds the URL, which may hold a password.
        f.debug_struct("RedisLock").field("key", &self.key).finish()
    }
}

/// A held lock; call [`RedisLockGuard::release`] when done (otherwise it
/// expires after a minute).
pub struct RedisLockGuard {
    connection: MultiplexedConnection,
    key: String,
    token: String,
    timeout: Duration,
}

impl RedisLock {
    /// Parses `url` without connecting.
    pub fn new(url: &str, key_prefix: &str, timeout: Duration) -> anyhow::Result<RedisLock> {
        Ok(RedisLock {
            client: redis::Client::open(url).context("store.redis_url")?,
            key: format!("{key_prefix}keys:rotation-lock"),
            timeout,
        })
    }

    /// The lock when the store is Redis (several instances); `None` with
    /// the memory store, which serves one instance only.
    pub fn from_config(config: &Config) -> anyhow::Result<Option<RedisLock>> {
        match config.store.backend {
            StoreBackend::Redis => Ok(Some(Self::new(
                &config.store.redis_url,
                &config.store.key_prefix,
                config.store.timeout(),
            )?)),
            StoreBackend::Memory => Ok(None),
        }
    }

    /// `Ok(None)`: another instance holds it.
    pub async fn try_acquire(&self) -> Result<Option<RedisLockGuard>, String> {
        let attempt = async {
            let mut connection = self.client.get_multiplexed_async_connection().await?;
            let token = crate::store::records::random_secret();
            let set: Option<String> = redis::cmd("SET")
                .arg(&self.key)
                .arg(&token)
                .arg("NX")
                .arg("PX")
                .arg(HOLD.as_millis() as u64)
                .query_async(&mut connection)
                .await?;
            Ok::<_, redis::RedisError>(set.map(|_| RedisLockGuard {
                connection,
                key: self.key.clone(),
                token,
                timeout: self.timeout,
            }))
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(Ok(guard)) => Ok(guard),
            Ok(Err(e)) => Err(format!("Redis: {e}")),
            Err(_) => Err(format!(
                "Redis did not answer within {} ms",
                self.timeout.as_millis()
            )),
        }
    }
}

impl RedisLockGuard {
    /// Deletes the lock if it is still ours (it may have expired and been
    /// taken by another instance meanwhile).
    pub async fn release(mut self) {
        let script = redis::Script::new(RELEASE);
        let mut invocation = script.key(&self.key);
        invocation.arg(&self.token);
        let released = tokio::time::timeout(
            self.timeout,
            invocation.invoke_async::<i64>(&mut self.connection),
        )
        .await;
        if !matches!(released, Ok(Ok(_))) {
            tracing::warn!(
                "the key rotation lock could not be released; it expires within a minute"
            );
        }
    }
}
