//! Persistence behind one small trait: the memory and Redis backends both
//! implement [`Store`], and both must pass the suite in [`conformance`].
//!
//! The trait is a namespaced key/value store with a TTL on every entry and an
//! atomic single-use read (`take`). Typed records and hashing of secrets live in
//! [`records`], above the trait, so no backend ever sees a raw code or token.

pub mod conformance;
pub mod memory;
pub mod person;
pub mod records;
pub mod redis;
pub mod seal;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

/// What kind of record a key names. Each kind is its own key space, so a code
/// can never be read back as a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Namespace {
    /// An upstream `state` whose callback Slack already answered (the
    /// pending login itself travels sealed in the state), keyed by its hash.
    Login,
    /// Authorization code, keyed by its SHA-256 hash.
    Code,
    /// Redeemed authorization code (for replay detection), keyed by its hash.
    UsedCode,
    /// Access token, keyed by its SHA-256 hash.
    AccessToken,
    /// Single sign-on session, keyed by the hash of the session cookie.
    Session,
    /// Refresh token, keyed by its SHA-256 hash.
    RefreshToken,
    /// Token family (everything descended from one login), keyed by family id.
    Family,
    /// A person's consent to a client, keyed by a hash of client and subject.
    Consent,
    /// A page waiting for the person's answer (consent, logout confirmation),
    /// keyed by the hash of its one-time token.
    Interaction,
    /// A Slack person's live sessions and token families (an index), keyed
    /// by the hash of their subject.
    Person,
    /// Slack's last answers about people and workspaces (directory,
    /// userInfo, user groups), reused within their TTL.
    Directory,
    /// A Slack method that answered 429: no call until the time it names.
    Backoff,
    /// A Slack event already handled, keyed by its `event_id`.
    Event,
    /// A pushed authorization request (RFC 9126), keyed by the hash of its
    /// `request_uri`.
    PushedRequest,
    /// A device authorization (RFC 8628) and the answer given to it, keyed
    /// by the hash of its device code.
    DeviceCode,
    /// The user code of a device authorization, keyed by the hash of its
    /// normalized form; names the device code's record by its hash.
    UserCode,
    /// When a device code was last polled and its polling interval, keyed
    /// like its [`Namespace::DeviceCode`] record.
    DevicePoll,
    /// The `jti` of a client assertion or a DPoP proof, kept while the JWT
    /// could be replayed, keyed by a hash of who signed it and the `jti`.
    Jti,
}

impl Namespace {
    pub fn as_str(self) -> &'static str {
        match self {
            Namespace::Login => "login",
            Namespace::Code => "code",
            Namespace::UsedCode => "usedcode",
            Namespace::AccessToken => "at",
            Namespace::Session => "session",
            Namespace::RefreshToken => "rt",
            Namespace::Family => "family",
            Namespace::Consent => "consent",
            Namespace::Interaction => "interaction",
            Namespace::Person => "person",
            Namespace::Directory => "dir",
            Namespace::Backoff => "backoff",
            Namespace::Event => "event",
            Namespace::PushedRequest => "par",
            Namespace::DeviceCode => "device",
            Namespace::UserCode => "usercode",
            Namespace::DevicePoll => "devicepoll",
            Namespace::Jti => "jti",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend did not answer in time or could not be reached.
    #[error("the session store is unavailable: {0}")]
    Unavailable(String),
    /// The memory store is at its configured cap; nothing live was evicted.
    #[error("the session store is full")]
    Full,
    /// A stored value could not be decoded (written by an incompatible version?).
    #[error("a stored record could not be decoded: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// What [`Store::index_set`] read in the step that wrote.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IndexWrite {
    /// The value of the watched member, if it is there.
    pub watched: Option<Vec<u8>>,
    /// How many members the index holds now.
    pub members: usize,
}

/// The contract every backend fulfils. Every entry has a TTL; `take` is atomic:
/// of two concurrent takes of one key, exactly one sees the value.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Writes (or overwrites) `key` with a time to live.
    async fn put(&self, ns: Namespace, key: &str, value: &[u8], ttl: Duration) -> StoreResult<()>;
    /// Writes `key` only if it does not exist; returns whether it was written.
    async fn put_new(
        &self,
        ns: Namespace,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> StoreResult<bool>;
    async fn get(&self, ns: Namespace, key: &str) -> StoreResult<Option<Vec<u8>>>;
    /// Writes `key` and returns what it held before, in one atomic step: of
    /// two concurrent swaps, exactly one sees the original value.
    async fn swap(
        &self,
        ns: Namespace,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> StoreResult<Option<Vec<u8>>>;
    /// Writes `key` only over a live record (never re-creating one that
    /// expired or was deleted) and returns the value it replaced, in one
    /// atomic step; `None`: nothing was there and nothing was written.
    async fn replace(
        &self,
        ns: Namespace,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> StoreResult<Option<Vec<u8>>>;
    /// Reads and deletes `key` in one atomic step.
    async fn take(&self, ns: Namespace, key: &str) -> StoreResult<Option<Vec<u8>>>;
    /// Deletes `key`; returns whether it existed.
    async fn delete(&self, ns: Namespace, key: &str) -> StoreResult<bool>;
    /// Answers when the backend is reachable (for `/readyz`).
    async fn ping(&self) -> StoreResult<()>;

    /// Sets `member` of the index at `key` to `value`, in one atomic step;
    /// the index then lives at least `ttl` (a shorter `ttl` never cuts the
    /// life of what it already holds). Returns, from the same step, the
    /// value of member `watch` and how many members the index holds. An
    /// index is a small map: a person's sessions and token families.
    async fn index_set(
        &self,
        ns: Namespace,
        key: &str,
        member: &str,
        value: &[u8],
        ttl: Duration,
        watch: Option<&str>,
    ) -> StoreResult<IndexWrite>;
    /// Every member of the index with its value (empty when there is none).
    async fn index_read(&self, ns: Namespace, key: &str) -> StoreResult<Vec<(String, Vec<u8>)>>;
    /// Removes members from the index (members that are absent are ignored).
    async fn index_remove(&self, ns: Namespace, key: &str, members: &[String]) -> StoreResult<()>;
}

pub type DynStore = Arc<dyn Store>;
