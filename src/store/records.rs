//! Typed records over the raw [`Store`](super::Store). Codes, tokens, states
//! and cookies are stored under the SHA-256 of their value: a store dump yields
//! nothing that can be replayed.

use std::time::Duration;

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{DynStore, Namespace, StoreError, StoreResult};
use crate::identity::SlackIdentity;

/// A fresh random value (256 bits), base64url: codes, tokens, states, cookies.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system random source works");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The key under which a secret is stored.
pub fn secret_hash(secret: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, secret.as_bytes()).as_ref())
}

/// The application's authorization request, once validated: what a code
/// will be bound to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub scopes: Vec<String>,
    pub code_challenge: Option<String>,
    /// `prompt=consent` was asked.
    #[serde(default)]
    pub prompt_consent: bool,
    /// The language `ui_locales` chose for our pages (`en`, `fr`), kept so
    /// the pages after Slack speak it too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ui_locale: Option<String>,
    /// The DPoP key the code is bound to (RFC 9449 §10): `dpop_jkt`, or
    /// the key of the proof that came with the pushed request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<String>,
}

/// An authorization request waiting for the person to come back from Slack.
/// Not stored: it travels sealed in Slack's `state` (see `keys::sealing`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingLogin {
    pub request: ClientRequest,
    /// Nonce sent to Slack; checked in Slack's ID token.
    pub upstream_nonce: String,
    pub upstream_pkce_verifier: Option<String>,
    /// Hash of the browser cookie: a callback from another browser is refused.
    pub browser_hash: String,
    /// Unix seconds after which the callback is refused.
    pub expires_at: i64,
    /// A device sign-in (RFC 8628): the normalized user code the person
    /// entered; the callback then shows the device confirmation instead of
    /// redirecting to the application (`request` names no redirect URI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

/// A consent page waiting for the person's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingConsent {
    pub request: ClientRequest,
    pub identity: SlackIdentity,
    pub auth_time: i64,
    pub sid: Option<String>,
    /// Slack's access token sealed under the interaction token.
    pub upstream_token: Option<String>,
    pub browser_hash: String,
}

/// A logout confirmation page waiting for the person's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingLogout {
    pub browser_hash: String,
}

/// What an authorization code stands for until it is redeemed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CodeGrant {
    pub client_id: String,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub identity: SlackIdentity,
    pub auth_time: i64,
    /// The SSO session's public id (`sid`).
    #[serde(default)]
    pub sid: Option<String>,
    /// Slack's access token, sealed under the code (see `seal`), for refreshing
    /// claims later.
    #[serde(default)]
    pub upstream_token: Option<String>,
    /// When the code was issued (Unix milliseconds): a person signed out
    /// everywhere after that gets no tokens for it.
    #[serde(default)]
    pub issued_at_ms: i64,
    /// Redeemed only with a DPoP proof by this key (RFC 9449 §10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<String>,
}

/// What an access token grants (read by userinfo and introspection).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessGrant {
    pub client_id: String,
    pub scopes: Vec<String>,
    pub identity: SlackIdentity,
    pub expires_at: i64,
    #[serde(default)]
    pub issued_at: i64,
    /// The login it descends from; the token dies with its family.
    #[serde(default)]
    pub family_id: String,
    /// The key that signed the ID token issued with it: revoking that key
    /// (`keys revoke`) ends this token too.
    #[serde(default)]
    pub kid: String,
    /// The thumbprint of the DPoP key it is bound to (RFC 9449): presented
    /// only with a proof by that key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jkt: Option<String>,
}

/// A redeemed code remembers its family, so a replay revokes every token
/// issued from the first redemption (RFC 6749 §4.1.2).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UsedCode {
    pub client_id: String,
    pub family_id: String,
}

/// Everything issued from one login is a family: it lives while this record
/// does. Revoking a family is deleting it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Family {
    pub client_id: String,
    pub sub: String,
    pub expires_at: i64,
}

/// A single sign-on session, keyed by the hash of the browser's cookie.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    /// Public id (`sid` claim); not the cookie.
    pub sid: String,
    pub identity: SlackIdentity,
    /// Time of the Slack login.
    pub auth_time: i64,
    pub created_at: i64,
    /// Clients this session signed into (for back-channel logout).
    pub clients: Vec<String>,
    /// Last time an application signed in through it.
    #[serde(default)]
    pub last_used_at: i64,
    /// Slack's tokens, sealed under the session cookie, so sign-ins that
    /// reuse the session can still check the person with Slack later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_token: Option<String>,
}

/// A refresh token: live until used once, then a tombstone that remembers
/// its successor (sealed under the old token) for reuse detection.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum RefreshRecord {
    Live(Box<RefreshGrant>),
    Rotated(RotatedRefresh),
}

impl RefreshRecord {
    pub fn client_id(&self) -> &str {
        match self {
            RefreshRecord::Live(g) => &g.client_id,
            RefreshRecord::Rotated(r) => &r.client_id,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshGrant {
    pub client_id: String,
    pub scopes: Vec<String>,
    pub identity: SlackIdentity,
    pub auth_time: i64,
    pub family_id: String,
    /// The family's absolute end: no successor outlives it.
    pub family_expires_at: i64,
    /// When the family began (the code's redemption).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_created_at: Option<i64>,
    pub sid: Option<String>,
    pub issued_at: i64,
    /// The key that signed the ID token issued with it (see `AccessGrant::kid`).
    #[serde(default)]
    pub kid: String,
    /// Slack's access token sealed under this refresh token.
    pub upstream_token: Option<String>,
    /// When Slack's userInfo last confirmed the identity (Unix seconds):
    /// within `directory_ttl_secs` of it a refresh need not ask again.
    #[serde(default)]
    pub checked_at: i64,
    /// When the family's use was last written to the person's index.
    #[serde(default)]
    pub indexed_at: i64,
    /// A public client's refresh token issued with a DPoP proof is bound to
    /// its key (RFC 9449 §5): the thumbprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jkt: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RotatedRefresh {
    pub client_id: String,
    pub family_id: String,
    pub rotated_at: i64,
    /// The token response that replaced it, sealed under the old token.
    pub successor: Option<String>,
}

/// A person's consent to a client for a set of scopes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Consent {
    pub scopes: Vec<String>,
}

/// The records the endpoints read and write, over any backend.
#[derive(Clone)]
pub struct Records {
    store: DynStore,
}

/// A record as stored (JSON).
pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records serialize")
}

/// A stored record read back; what does not decode is `Corrupt`.
pub(crate) fn decode<T: DeserializeOwned>(bytes: Option<Vec<u8>>) -> StoreResult<Option<T>> {
    bytes
        .map(|b| serde_json::from_slice(&b).map_err(|e| StoreError::Corrupt(e.to_string())))
        .transpose()
}

impl Records {
    pub fn new(store: DynStore) -> Records {
        Records { store }
    }

    pub fn store(&self) -> &DynStore {
        &self.store
    }

    /// Whether Slack already answered the callback of this upstream `state`.
    pub async fn state_used(&self, state: &str) -> StoreResult<bool> {
        Ok(self
            .store
            .get(Namespace::Login, &secret_hash(state))
            .await?
            .is_some())
    }

    /// Records that Slack answered the callback of this upstream `state`
    /// (until it would expire anyway); false when it already had.
    pub async fn mark_state_used(&self, state: &str, ttl: Duration) -> StoreResult<bool> {
        self.store
            .put_new(Namespace::Login, &secret_hash(state), b"1", ttl)
            .await
    }

    pub async fn put_code(&self, code: &str, grant: &CodeGrant, ttl: Duration) -> StoreResult<()> {
        self.store
            .put(Namespace::Code, &secret_hash(code), &encode(grant), ttl)
            .await
    }

    pub async fn take_code(&self, code: &str) -> StoreResult<Option<CodeGrant>> {
        decode(self.store.take(Namespace::Code, &secret_hash(code)).await?)
    }

    pub async fn put_used_code(
        &self,
        code: &str,
        used: &UsedCode,
        ttl: Duration,
    ) -> StoreResult<()> {
        self.store
            .put(Namespace::UsedCode, &secret_hash(code), &encode(used), ttl)
            .await
    }

    pub async fn take_used_code(&self, code: &str) -> StoreResult<Option<UsedCode>> {
        decode(
            self.store
                .take(Namespace::UsedCode, &secret_hash(code))
                .await?,
        )
    }

    pub async fn put_access_token(
        &self,
        token: &str,
        grant: &AccessGrant,
        ttl: Duration,
    ) -> StoreResult<()> {
        self.store
            .put(
                Namespace::AccessToken,
                &secret_hash(token),
                &encode(grant),
                ttl,
            )
            .await
    }

    pub async fn get_access_token(&self, token: &str) -> StoreResult<Option<AccessGrant>> {
        decode(
            self.store
                .get(Namespace::AccessToken, &secret_hash(token))
                .await?,
        )
    }

    pub async fn put<T: Serialize>(
        &self,
        ns: Namespace,
        secret: &str,
        value: &T,
        ttl: Duration,
    ) -> StoreResult<()> {
        self.store
            .put(ns, &secret_hash(secret), &encode(value), ttl)
            .await
    }

    pub async fn get<T: DeserializeOwned>(
        &self,
        ns: Namespace,
        secret: &str,
    ) -> StoreResult<Option<T>> {
        decode(self.store.get(ns, &secret_hash(secret)).await?)
    }

    pub async fn take<T: DeserializeOwned>(
        &self,
        ns: Namespace,
        secret: &str,
    ) -> StoreResult<Option<T>> {
        decode(self.store.take(ns, &secret_hash(secret)).await?)
    }

    /// Writes `value` and returns the previous record, atomically.
    pub async fn swap<T: Serialize, U: DeserializeOwned>(
        &self,
        ns: Namespace,
        secret: &str,
        value: &T,
        ttl: Duration,
    ) -> StoreResult<Option<U>> {
        decode(
            self.store
                .swap(ns, &secret_hash(secret), &encode(value), ttl)
                .await?,
        )
    }

    /// Writes `value` only over a live record and returns the one replaced.
    pub async fn replace<T: Serialize + DeserializeOwned>(
        &self,
        ns: Namespace,
        secret: &str,
        value: &T,
        ttl: Duration,
    ) -> StoreResult<Option<T>> {
        decode(
            self.store
                .replace(ns, &secret_hash(secret), &encode(value), ttl)
                .await?,
        )
    }

    /// Reads a record by the hash it is stored under (from an index).
    pub async fn get_hashed<T: DeserializeOwned>(
        &self,
        ns: Namespace,
        hash: &str,
    ) -> StoreResult<Option<T>> {
        decode(self.store.get(ns, hash).await?)
    }

    /// Takes a record by the hash it is stored under (from an index).
    pub async fn take_hashed<T: DeserializeOwned>(
        &self,
        ns: Namespace,
        hash: &str,
    ) -> StoreResult<Option<T>> {
        decode(self.store.take(ns, hash).await?)
    }

    pub async fn delete(&self, ns: Namespace, secret: &str) -> StoreResult<bool> {
        self.store.delete(ns, &secret_hash(secret)).await
    }

    /// True while the family (login) has not been revoked or expired.
    pub async fn family_alive(&self, family_id: &str) -> StoreResult<bool> {
        Ok(self
            .store
            .get(Namespace::Family, &secret_hash(family_id))
            .await?
            .is_some())
    }

    /// Revokes every token descended from one login.
    pub async fn revoke_family(&self, family_id: &str) -> StoreResult<bool> {
        self.delete(Namespace::Family, family_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_256_bit_and_distinct() {
        let (a, b) = (random_secret(), random_secret());
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len(), 32);
        assert_ne!(a, b);
    }

    #[test]
    fn the_stored_key_is_not_the_secret() {
        let s = random_secret();
        assert_ne!(secret_hash(&s), s);
        assert_eq!(secret_hash(&s), secret_hash(&s));
    }
}
