//! The Redis backend, for several bridge instances sharing one store, on one
//! Redis server or on a Redis Cluster (`store.redis_cluster`).
//!
//! - **Lazy connect.** [`RedisStore::new`] and [`RedisStore::cluster`] only
//!   parse the URLs: the bridge must start (and report "not ready" on
//!   `/readyz`) while Redis is down. The connection is opened by the first
//!   call and re-opened by a later call after it failed, so the store heals
//!   without being rebuilt.
//! - **Bounded calls.** Every operation, a connect attempt included, is cut
//!   off after `timeout`: a down, unreachable or frozen Redis becomes
//!   [`StoreError::Unavailable`] (a quick 503), never a request that hangs.
//! - **One key per command.** No `MULTI` or multi-key commands; the two Lua
//!   scripts (`take`, and undoing a late `swap`) touch the one key they are
//!   given, so every command is valid on Redis Cluster (no `CROSSSLOT`): the
//!   cluster client routes each to the master of that key's slot and follows
//!   `MOVED`/`ASK` redirections. Only the connection type differs.
//! - **Nothing lost to a timeout.** A single-use read or a swap that reaches
//!   a frozen Redis and runs after the caller gave up (and answered 503) is
//!   undone when its late answer arrives, so the retry the 503 invites works.

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster::{ClusterClient, ClusterClientBuilder};
use ::redis::cluster_async::ClusterConnection;
use ::redis::{Client, Cmd, FromRedisValue, Pipeline, RedisError, RedisFuture, Value};
use async_trait::async_trait;

use super::{IndexWrite, Namespace, Store, StoreError, StoreResult};
use crate::config::StoreConfig;

/// How long a call that timed out still waits for its answer, to undo it.
const LATE_ANSWER_WAIT: Duration = Duration::from_secs(300);

/// GET, PTTL and DEL in one step: the value and how long it had left.
const TAKE_SCRIPT: &str = "local v = redis.call('GET', KEYS[1]) \
    if not v then return false end \
    local t = redis.call('PTTL', KEYS[1]) \
    redis.call('DEL', KEYS[1]) \
    return {v, t}";

/// Puts back the value a late swap replaced (ARGV[2], TTL ARGV[3] ms; none
/// when ARGV[3] is 0), only while the key still holds what the swap wrote.
const UNDO_SWAP_SCRIPT: &str = "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end \
    if tonumber(ARGV[3]) == 0 then redis.call('DEL', KEYS[1]) \
    else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end \
    return 1";

/// Redis refuses expiry times that overflow its clock; no real TTL comes near.
const MAX_TTL_MS: u64 = i64::MAX as u64 / 4;

/// How many times the cluster client re-sends a command after a redirection
/// (`MOVED`, `ASK`) or a reconnect; the store's timeout bounds them all.
const CLUSTER_RETRIES: u32 = 3;

/// Trust only `ca_pem` for the server's certificate; no client certificate.
fn own_ca(ca_pem: Vec<u8>) -> ::redis::TlsCertificates {
    ::redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(ca_pem),
    }
}

/// Compare-and-delete: the lock's holder alone releases it.
const UNLOCK: &str = r#"
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("DEL", KEYS[1])
end
return 0
"#;

/// One connection handle, to one server or to a cluster; cheap to clone.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// How connections are made: a single server's client, or a cluster's.
enum Connector {
    Single(Box<Client>),
    Cluster(Box<ClusterClients>),
}

/// One cluster client with a response timeout and one without, for calls
/// that may be undone.
struct ClusterClients {
    bounded: ClusterClient,
    unbounded: ClusterClient,
    /// Serializes connecting, so a burst of first calls opens one cluster
    /// connection, not one each.
    connecting: tokio::sync::Mutex<()>,
}

pub struct RedisStore {
    connector: Connector,
    key_prefix: String,
    timeout: Duration,
    /// Created on first use. A single-server manager reconnects by itself
    /// after I/O errors, a cluster connection re-resolves its nodes; after
    /// any other error the handle is dropped so the next call starts from
    /// scratch.
    manager: Mutex<Option<Conn>>,
    /// A second connection without a response timeout, for calls that may
    /// have to be undone: it keeps waiting for a late answer after the caller
    /// gave up, so the answer can be acted on.
    undoable: Mutex<Option<Conn>>,
}

/// Which of the two connections a call uses.
#[derive(Clone, Copy)]
enum Line {
    /// Responses bounded by the timeout.
    Bounded,
    /// No response timeout: late answers still arrive (see `run_undoable`).
    Undoable,
}

impl RedisStore {
    /// One Redis server. Parses `url` without connecting. `key_prefix` is
    /// prepended verbatim to every key (e.g. `"sob:"`); `timeout` bounds
    /// every call.
    pub fn new(url: &str, key_prefix: &str, timeout: Duration) -> Result<RedisStore, StoreError> {
        Self::new_with_ca(url, None, key_prefix, timeout)
    }

    /// Like [`new`](Self::new); a `rediss://` server's certificate must
    /// chain to `ca_pem` when given (to the system's roots otherwise).
    pub fn new_with_ca(
        url: &str,
        ca_pem: Option<Vec<u8>>,
        key_prefix: &str,
        timeout: Duration,
    ) -> Result<RedisStore, StoreError> {
        // The parser's messages never echo the URL, so no password can leak.
        let client = match ca_pem {
            Some(ca) => Client::build_with_tls(url, own_ca(ca)),
            None => Client::open(url),
        }
        .map_err(|e| StoreError::Unavailable(format!("invalid Redis URL: {e}")))?;
        Ok(Self::with(
            Connector::Single(Box::new(client)),
            key_prefix,
            timeout,
        ))
    }

    /// A Redis Cluster reached through `seeds` (any of its nodes; the others
    /// are discovered). Parses the URLs without connecting.
    pub fn cluster(
        seeds: &[String],
        key_prefix: &str,
        timeout: Duration,
    ) -> Result<RedisStore, StoreError> {
        Self::cluster_with_ca(seeds, None, key_prefix, timeout)
    }

    /// Like [`cluster`](Self::cluster), with the CA of `rediss://` nodes.
    pub fn cluster_with_ca(
        seeds: &[String],
        ca_pem: Option<Vec<u8>>,
        key_prefix: &str,
        timeout: Duration,
    ) -> Result<RedisStore, StoreError> {
        if seeds.is_empty() {
            return Err(StoreError::Unavailable(
                "a Redis Cluster needs at least one node URL".into(),
            ));
        }
        let invalid = |e: RedisError| StoreError::Unavailable(format!("invalid Redis URL: {e}"));
        let builder = || {
            let builder = ClusterClientBuilder::new(seeds.iter().map(String::as_str))
                .connection_timeout(timeout)
                .retries(CLUSTER_RETRIES)
                .min_retry_wait(10)
                .max_retry_wait(timeout.as_millis().clamp(10, 500) as u64);
            match &ca_pem {
                Some(ca) => builder.certs(own_ca(ca.clone())),
                None => builder,
            }
        };
        let bounded = builder()
            .response_timeout(timeout)
            .build()
            .map_err(invalid)?;
        let unbounded = builder().build().map_err(invalid)?;
        Ok(Self::with(
            Connector::Cluster(Box::new(ClusterClients {
                bounded,
                unbounded,
                connecting: tokio::sync::Mutex::new(()),
            })),
            key_prefix,
            timeout,
        ))
    }

    /// The store `config` describes (`backend = "redis"`): one server at
    /// `redis_url`, or with `redis_cluster` a cluster whose seed nodes are
    /// `redis_url` and `redis_cluster_nodes`.
    pub fn from_config(config: &StoreConfig) -> Result<RedisStore, StoreError> {
        let ca_pem = match &config.redis_ca_file {
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                StoreError::Unavailable(format!("cannot read {}: {e}", path.display()))
            })?),
            None => None,
        };
        if config.redis_cluster {
            let seeds: Vec<String> = std::iter::once(config.redis_url.clone())
                .chain(config.redis_cluster_nodes.iter().cloned())
                .collect();
            Self::cluster_with_ca(&seeds, ca_pem, &config.key_prefix, config.timeout())
        } else {
            Self::new_with_ca(
                &config.redis_url,
                ca_pem,
                &config.key_prefix,
                config.timeout(),
            )
        }
    }

    fn with(connector: Connector, key_prefix: &str, timeout: Duration) -> RedisStore {
        RedisStore {
            connector,
            key_prefix: key_prefix.to_string(),
            timeout,
            manager: Mutex::new(None),
            undoable: Mutex::new(None),
        }
    }

    /// Takes the lock `name` for `hold` unless someone holds it: `SET NX PX`
    /// on one key, so it works on a cluster too. For work one instance at a
    /// time should do (the automatic key rotation).
    pub async fn try_lock(&self, name: &str, token: &str, hold: Duration) -> StoreResult<bool> {
        let mut cmd = ::redis::cmd("SET");
        cmd.arg(format!("{}{name}", self.key_prefix))
            .arg(token)
            .arg("NX")
            .arg("PX")
            .arg(hold.as_millis() as u64);
        let set: Option<String> = self.run(&cmd).await?;
        Ok(set.is_some())
    }

    /// Releases the lock `name` if `token` still holds it (it may have
    /// expired and been taken by another instance meanwhile).
    pub async fn unlock(&self, name: &str, token: &str) -> StoreResult<bool> {
        let mut cmd = ::redis::cmd("EVAL");
        cmd.arg(UNLOCK)
            .arg(1)
            .arg(format!("{}{name}", self.key_prefix))
            .arg(token);
        let deleted: i64 = self.run(&cmd).await?;
        Ok(deleted == 1)
    }

    /// Whether this store talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.connector, Connector::Cluster(_))
    }

    fn key(&self, ns: Namespace, key: &str) -> String {
        format!("{}{}:{}", self.key_prefix, ns.as_str(), key)
    }

    fn slot(&self, line: Line) -> std::sync::MutexGuard<'_, Option<Conn>> {
        let slot = match line {
            Line::Bounded => &self.manager,
            Line::Undoable => &self.undoable,
        };
        // The slot holds a clonable handle and is only ever replaced whole.
        slot.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops the connection of `line`, so the next call makes a new one.
    fn forget(&self, line: Line) {
        *self.slot(line) = None;
    }

    /// The shared connection of `line`, created on first use. A single
    /// server's manager is created without connecting; a cluster connection
    /// connects here (the caller's timeout bounds it). Must run inside the
    /// Tokio runtime, which is why `new` does not do it.
    async fn connection(&self, line: Line) -> Result<Conn, RedisError> {
        if let Some(conn) = self.slot(line).as_ref() {
            return Ok(conn.clone());
        }
        match &self.connector {
            Connector::Single(client) => {
                let mut slot = self.slot(line);
                if let Some(conn) = slot.as_ref() {
                    return Ok(conn.clone());
                }
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(match line {
                        Line::Bounded => Some(self.timeout),
                        Line::Undoable => None,
                    })
                    // Fail fast while Redis is down; the next call tries again.
                    .set_number_of_retries(0);
                let manager = ConnectionManager::new_lazy_with_config((**client).clone(), config)?;
                let conn = Conn::Single(manager);
                *slot = Some(conn.clone());
                Ok(conn)
            }
            Connector::Cluster(cluster) => {
                let _one_at_a_time = cluster.connecting.lock().await;
                if let Some(conn) = self.slot(line).as_ref() {
                    return Ok(conn.clone());
                }
                let client = match line {
                    Line::Bounded => &cluster.bounded,
                    Line::Undoable => &cluster.unbounded,
                };
                let conn = Conn::Cluster(client.get_async_connection().await?);
                *self.slot(line) = Some(conn.clone());
                Ok(conn)
            }
        }
    }

    async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, RedisError> {
        let mut conn = self.connection(Line::Bounded).await?;
        match cmd.query_async(&mut conn).await {
            // The manager answers with the outcome of its last connect attempt,
            // made right after the previous failure: while Redis was down that
            // is a refusal, so the first call after Redis returns would fail
            // too. This failure has started a fresh attempt, which the retry
            // waits for. A refused connect means the command was never sent,
            // so retrying is safe even for GETDEL.
            Err(e) if e.is_connection_refusal() => cmd.query_async(&mut conn).await,
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
                    self.forget(Line::Bounded);
                }
                Err(StoreError::Unavailable(format!("Redis: {e}")))
            }
            Err(_) => Err(StoreError::Unavailable(format!(
                "Redis did not answer within {} ms",
                self.timeout.as_millis()
            ))),
        }
    }

    /// Like [`run`](Self::run) for commands that consume something: the
    /// command runs in its own task, and if it completes after we gave up (a
    /// frozen Redis that wakes up), `undo` gets its answer and may name a
    /// command that puts things back, so the 503 the caller answered is
    /// honest: a retry finds the code or token where it was.
    async fn run_undoable<T, U>(&self, cmd: Cmd, undo: U) -> StoreResult<T>
    where
        T: FromRedisValue + Send + 'static,
        U: FnOnce(&T) -> Option<Cmd> + Send + 'static,
    {
        let started = Instant::now();
        let manager =
            match tokio::time::timeout(self.timeout, self.connection(Line::Undoable)).await {
                Ok(Ok(conn)) => conn,
                Ok(Err(e)) => {
                    self.forget(Line::Undoable);
                    return Err(StoreError::Unavailable(format!("Redis: {e}")));
                }
                Err(_) => {
                    return Err(StoreError::Unavailable(format!(
                        "Redis did not answer within {} ms",
                        self.timeout.as_millis()
                    )));
                }
            };
        let mut task = {
            let mut manager = manager.clone();
            tokio::spawn(async move {
                match cmd.query_async::<T>(&mut manager).await {
                    Err(e) if e.is_connection_refusal() => cmd.query_async::<T>(&mut manager).await,
                    result => result,
                }
            })
        };
        let left = self.timeout.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, &mut task).await {
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(e))) => {
                if !e.is_io_error() {
                    self.forget(Line::Undoable);
                }
                Err(StoreError::Unavailable(format!("Redis: {e}")))
            }
            Ok(Err(join)) => Err(StoreError::Unavailable(format!(
                "Redis call failed: {join}"
            ))),
            Err(_) => {
                let mut manager = manager;
                let mut task = task;
                tokio::spawn(async move {
                    // A Redis frozen for good: stop waiting after a while.
                    let late = tokio::time::timeout(LATE_ANSWER_WAIT, &mut task).await;
                    if late.is_err() {
                        task.abort();
                    }
                    if let Ok(Ok(Ok(late))) = late
                        && let Some(undo) = undo(&late)
                    {
                        let undone: Result<Value, RedisError> =
                            undo.query_async(&mut manager).await;
                        tracing::warn!(
                            undone = undone.is_ok(),
                            "a store call finished after its timeout and was undone"
                        );
                    }
                });
                Err(StoreError::Unavailable(format!(
                    "Redis did not answer within {} ms",
                    self.timeout.as_millis()
                )))
            }
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

/// HSET one member, make the hash live at least ARGV[3] ms, and return the
/// member count and the watched member ARGV[4] (if any) (one key, so
/// Cluster-safe). `PEXPIRE … GT` would leave a new hash without a TTL.
const INDEX_SET_SCRIPT: &str = "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) \
    local ttl = redis.call('PTTL', KEYS[1]) \
    if ttl < tonumber(ARGV[3]) then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end \
    local watched = false \
    if ARGV[4] ~= '' then watched = redis.call('HGET', KEYS[1], ARGV[4]) end \
    return {redis.call('HLEN', KEYS[1]), watched}";

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
            .field("cluster", &self.is_cluster())
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
        // `SET … GET` (Redis >= 6.2) writes and returns the old value
        // atomically. Landing after a timeout, it is undone if nobody wrote
        // the key since.
        let mut cmd = self.set(ns, key, value, ttl);
        cmd.arg("GET");
        let full_key = self.key(ns, key);
        let written = value.to_vec();
        let ttl_ms = ttl_millis(ttl);
        self.run_undoable(cmd, move |late: &Option<Vec<u8>>| {
            let mut undo = ::redis::cmd("EVAL");
            undo.arg(UNDO_SWAP_SCRIPT)
                .arg(1)
                .arg(&full_key)
                .arg(&written);
            match late {
                Some(old) => undo.arg(old).arg(ttl_ms),
                None => undo.arg("").arg(0),
            };
            Some(undo)
        })
        .await
    }

    async fn replace(
        &self,
        ns: Namespace,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> StoreResult<Option<Vec<u8>>> {
        // `SET … XX GET`: only over an existing key, returning its value.
        let mut cmd = self.set(ns, key, value, ttl);
        cmd.arg("XX").arg("GET");
        self.run(&cmd).await
    }

    async fn get(&self, ns: Namespace, key: &str) -> StoreResult<Option<Vec<u8>>> {
        self.run(&self.on_key("GET", ns, key)).await
    }

    async fn take(&self, ns: Namespace, key: &str) -> StoreResult<Option<Vec<u8>>> {
        // One atomic script (one key, so Cluster-safe) that also returns the
        // remaining TTL, so a take that lands after a timeout can be undone.
        let full_key = self.key(ns, key);
        let mut cmd = ::redis::cmd("EVAL");
        cmd.arg(TAKE_SCRIPT).arg(1).arg(&full_key);
        let taken: Option<(Vec<u8>, i64)> = self
            .run_undoable(cmd, move |late: &Option<(Vec<u8>, i64)>| {
                let (value, pttl) = late.as_ref()?;
                let mut restore = ::redis::cmd("SET");
                restore
                    .arg(&full_key)
                    .arg(value)
                    .arg("PX")
                    .arg((*pttl).max(1))
                    .arg("NX");
                Some(restore)
            })
            .await?;
        Ok(taken.map(|(value, _)| value))
    }

    async fn delete(&self, ns: Namespace, key: &str) -> StoreResult<bool> {
        let removed: u64 = self.run(&self.on_key("DEL", ns, key)).await?;
        Ok(removed > 0)
    }

    async fn ping(&self) -> StoreResult<()> {
        self.run(&::redis::cmd("PING")).await
    }

    async fn index_set(
        &self,
        ns: Namespace,
        key: &str,
        member: &str,
        value: &[u8],
        ttl: Duration,
        watch: Option<&str>,
    ) -> StoreResult<IndexWrite> {
        let mut cmd = ::redis::cmd("EVAL");
        cmd.arg(INDEX_SET_SCRIPT)
            .arg(1)
            .arg(self.key(ns, key))
            .arg(member)
            .arg(value)
            .arg(ttl_millis(ttl))
            .arg(watch.unwrap_or(""));
        let (members, watched): (usize, Option<Vec<u8>>) = self.run(&cmd).await?;
        Ok(IndexWrite { watched, members })
    }

    async fn index_read(&self, ns: Namespace, key: &str) -> StoreResult<Vec<(String, Vec<u8>)>> {
        self.run(&self.on_key("HGETALL", ns, key)).await
    }

    async fn index_remove(&self, ns: Namespace, key: &str, members: &[String]) -> StoreResult<()> {
        if members.is_empty() {
            return Ok(());
        }
        let mut cmd = self.on_key("HDEL", ns, key);
        for m in members {
            cmd.arg(m);
        }
        let _: i64 = self.run(&cmd).await?;
        Ok(())
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
