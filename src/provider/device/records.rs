//! What the device flow keeps, over the raw store: every key is a hash (of
//! the device code, of the normalized user code), every record has a TTL,
//! and every operation touches one key (so it runs on Redis Cluster).
//!
//! - [`Namespace::DeviceCode`]: the device authorization and the answer
//!   given to it, written by the person's decision (once: whoever takes the
//!   user code decides) and by the redemption (a swap to a tombstone).
//! - [`Namespace::UserCode`]: what the verification page needs, naming the
//!   device code's record by its key; taken by the decision.
//! - [`Namespace::DevicePoll`]: the polling clock, apart, so that a poll can
//!   never overwrite a decision.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::super::session::now;
use crate::store::records::{Records, decode, encode};
use crate::store::{Namespace, StoreResult};
use crate::upstream::SlackIdentity;

/// Records outlive their expiry by this much, so that a late poll is told
/// `expired_token` (and a late visitor "expired") rather than "unknown".
pub const EXPIRED_TAIL_SECS: i64 = 300;

/// A device authorization (RFC 8628 §3.2) and where it stands.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceGrant {
    pub client_id: String,
    pub scopes: Vec<String>,
    /// Unix seconds; from then on a poll is answered `expired_token`.
    pub expires_at: i64,
    pub answer: Answer,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum Answer {
    /// Nobody has answered yet.
    Pending,
    Approved(Box<Approval>),
    /// The person said no, or Slack (the policy) did; `reason` is sent to
    /// the device as the error description.
    Denied {
        reason: String,
    },
    /// Tokens were issued: a second redemption is refused and revokes them.
    Redeemed {
        family_id: String,
    },
}

/// Who approved, as the code flow's code would carry it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Approval {
    /// As `policy::admit` admitted it (with `groups` when asked for).
    pub identity: SlackIdentity,
    pub auth_time: i64,
    /// The SSO session's public id.
    pub sid: Option<String>,
    /// Slack's tokens, sealed with the key set: the device code, the only
    /// secret of the client's, is not known when the person approves.
    pub upstream_token: Option<String>,
    /// Unix milliseconds: a person signed out everywhere after it gets no
    /// tokens for this approval.
    pub approved_at_ms: i64,
}

/// A user code, for the verification page.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserCodeRecord {
    /// The key of the device code's record.
    pub device_key: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub expires_at: i64,
    /// How many times the code was entered on the verification page.
    #[serde(default)]
    pub entries: u32,
}

/// When a device code was last polled (Unix milliseconds) and the interval
/// it must keep (seconds; grows by 5 with each `slow_down`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct PollRecord {
    pub last_ms: i64,
    pub interval: u64,
}

/// The TTL that keeps a record until `expires_at` and the tail after it.
pub fn ttl(expires_at: i64) -> Duration {
    Duration::from_secs((expires_at + EXPIRED_TAIL_SECS - now()).max(1) as u64)
}

/// The device flow's typed operations; `key`s are already hashes.
pub struct DeviceRecords<'a>(pub &'a Records);

impl DeviceRecords<'_> {
    pub async fn put_grant(&self, key: &str, grant: &DeviceGrant) -> StoreResult<()> {
        self.0
            .store()
            .put(
                Namespace::DeviceCode,
                key,
                &encode(grant),
                ttl(grant.expires_at),
            )
            .await
    }

    pub async fn grant(&self, key: &str) -> StoreResult<Option<DeviceGrant>> {
        decode(self.0.store().get(Namespace::DeviceCode, key).await?)
    }

    /// Writes the grant only over a live one; the grant it replaced.
    pub async fn replace_grant(
        &self,
        key: &str,
        grant: &DeviceGrant,
    ) -> StoreResult<Option<DeviceGrant>> {
        let store = self.0.store();
        let ttl = ttl(grant.expires_at);
        decode(
            store
                .replace(Namespace::DeviceCode, key, &encode(grant), ttl)
                .await?,
        )
    }

    /// Writes the grant and returns the one it replaced, atomically.
    pub async fn swap_grant(
        &self,
        key: &str,
        grant: &DeviceGrant,
    ) -> StoreResult<Option<DeviceGrant>> {
        let store = self.0.store();
        let ttl = ttl(grant.expires_at);
        decode(
            store
                .swap(Namespace::DeviceCode, key, &encode(grant), ttl)
                .await?,
        )
    }

    /// Writes a user code unless a live one has the same key.
    pub async fn new_user_code(&self, key: &str, record: &UserCodeRecord) -> StoreResult<bool> {
        self.0
            .store()
            .put_new(
                Namespace::UserCode,
                key,
                &encode(record),
                ttl(record.expires_at),
            )
            .await
    }

    pub async fn user_code(&self, key: &str) -> StoreResult<Option<UserCodeRecord>> {
        decode(self.0.store().get(Namespace::UserCode, key).await?)
    }

    /// Writes the record only over a live one; the record it replaced.
    pub async fn replace_user_code(
        &self,
        key: &str,
        record: &UserCodeRecord,
    ) -> StoreResult<Option<UserCodeRecord>> {
        let store = self.0.store();
        let ttl = ttl(record.expires_at);
        decode(
            store
                .replace(Namespace::UserCode, key, &encode(record), ttl)
                .await?,
        )
    }

    /// Takes the user code: of two concurrent takes exactly one gets it,
    /// and with it the right to answer for the device.
    pub async fn take_user_code(&self, key: &str) -> StoreResult<Option<UserCodeRecord>> {
        decode(self.0.store().take(Namespace::UserCode, key).await?)
    }

    pub async fn poll(&self, key: &str) -> StoreResult<Option<PollRecord>> {
        decode(self.0.store().get(Namespace::DevicePoll, key).await?)
    }

    pub async fn put_poll(&self, key: &str, poll: &PollRecord, expires_at: i64) -> StoreResult<()> {
        self.0
            .store()
            .put(Namespace::DevicePoll, key, &encode(poll), ttl(expires_at))
            .await
    }
}
