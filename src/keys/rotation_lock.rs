//! The lock that lets exactly one of several instances run the automatic
//! rotation: `SET key token NX PX ttl` in the Redis the store already uses
//! (one server or a cluster, through the store's own connections), released
//! by a compare-and-delete script. The key file's own writers' lock (and the
//! re-check under it) still keeps a second rotation from happening if Redis
//! loses the lock; this one keeps instances from even trying at once, and
//! works where the key directory is a network share without reliable file
//! locks.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::config::{Config, StoreBackend};
use crate::store::redis::RedisStore;

/// Longer than any rotation (which takes well under a second); a crashed
/// holder delays the next attempt by at most this.
const HOLD: Duration = Duration::from_secs(60);
const NAME: &str = "keys:rotation-lock";

pub struct RedisLock {
    redis: Arc<RedisStore>,
}

impl std::fmt::Debug for RedisLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The store holds the URL, which may hold a password.
        f.debug_struct("RedisLock").field("name", &NAME).finish()
    }
}

/// A held lock; call [`RedisLockGuard::release`] when done (otherwise it
/// expires after a minute).
pub struct RedisLockGuard {
    redis: Arc<RedisStore>,
    token: String,
}

impl RedisLock {
    /// The lock in `redis` (which connects on first use).
    pub fn new(redis: RedisStore) -> RedisLock {
        RedisLock {
            redis: Arc::new(redis),
        }
    }

    /// The lock when the store is Redis (several instances); `None` with
    /// the memory store, which serves one instance only.
    pub fn from_config(config: &Config) -> anyhow::Result<Option<RedisLock>> {
        match config.store.backend {
            StoreBackend::Redis => Ok(Some(Self::new(
                RedisStore::from_config(&config.store).context("store.redis_url")?,
            ))),
            StoreBackend::Memory => Ok(None),
        }
    }

    /// `Ok(None)`: another instance holds it.
    pub async fn try_acquire(&self) -> Result<Option<RedisLockGuard>, String> {
        let token = crate::store::records::random_secret();
        match self.redis.try_lock(NAME, &token, HOLD).await {
            Ok(true) => Ok(Some(RedisLockGuard {
                redis: self.redis.clone(),
                token,
            })),
            Ok(false) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }
}

impl RedisLockGuard {
    /// Deletes the lock if it is still ours.
    pub async fn release(self) {
        if self.redis.unlock(NAME, &self.token).await.is_err() {
            tracing::warn!(
                "the key rotation lock could not be released; it expires within a minute"
            );
        }
    }
}
