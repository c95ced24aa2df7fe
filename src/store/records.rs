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
use crate::upstream::SlackIdentity;

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

/// An authorization request waiting for the person to come back from Slack.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingLogin {
    pub client_id: String,
    pub redirect_uri: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub scopes: Vec<String>,
    pub code_challenge: Option<String>,
    /// Nonce sent to Slack; checked in Slack's ID token.
    pub upstream_nonce: String,
    pub upstream_pkce_verifier: Option<String>,
    /// Hash of the browser cookie: a callback from another browser is refused.
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
}

/// What an access token grants (read by userinfo).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessGrant {
    pub client_id: String,
    pub scopes: Vec<String>,
    pub identity: SlackIdentity,
    pub expires_at: i64,
}

/// A redeemed code remembers the access token it produced, so a replay can
/// revoke it (RFC 6749 §4.1.2).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UsedCode {
    pub client_id: String,
    pub access_token_hash: String,
}

/// The records the endpoints read and write, over any backend.
#[derive(Clone)]
pub struct Records {
    store: DynStore,
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records serialize")
}

fn decode<T: DeserializeOwned>(bytes: Option<Vec<u8>>) -> StoreResult<Option<T>> {
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

    pub async fn put_login(
        &self,
        state: &str,
        login: &PendingLogin,
        ttl: Duration,
    ) -> StoreResult<()> {
        self.store
            .put(Namespace::Login, &secret_hash(state), &encode(login), ttl)
            .await
    }

    pub async fn take_login(&self, state: &str) -> StoreResult<Option<PendingLogin>> {
        decode(
            self.store
                .take(Namespace::Login, &secret_hash(state))
                .await?,
        )
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

    pub async fn revoke_access_token_hash(&self, hash: &str) -> StoreResult<bool> {
        self.store.delete(Namespace::AccessToken, hash).await
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
