//! The public keys of `private_key_jwt` clients: inline in the config, or
//! fetched from the client's `jwks_uri` with a timeout and a size cap, kept
//! for [`FRESH`], and fetched again at once when an assertion names a `kid`
//! the cached set lacks (the client rotated), at most once per
//! [`REFETCH_GAP`] so unknown `kid`s cannot make the bridge hammer the URL.
//! When the URL does not answer, the last keys stand in up to [`STALE`];
//! past that, or with none, the client cannot authenticate (503), and the
//! URL is not tried again within [`REFETCH_GAP`]: assertions arrive before
//! anything is verified, so they must not turn into a fetch each.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::Jwk;
use serde_json::Value;
use url::Url;

use crate::jose;
use crate::observability::metrics;
use crate::outbound;

pub const FRESH: Duration = Duration::from_secs(300);
pub const REFETCH_GAP: Duration = Duration::from_secs(10);
pub const STALE: Duration = Duration::from_secs(3600);
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(3);
pub const MAX_BYTES: usize = 64 * 1024;

/// Where a client's public keys are.
pub enum ClientKeys {
    Inline(Arc<Vec<Jwk>>),
    Remote(Url),
}

impl ClientKeys {
    /// From a validated config (`crate::config` checked every key).
    pub fn from_config(jwks: Option<&Value>, jwks_uri: Option<&str>) -> Option<ClientKeys> {
        if let Some(uri) = jwks_uri {
            return Url::parse(uri).ok().map(ClientKeys::Remote);
        }
        let keys = jwks?
            .get("keys")?
            .as_array()?
            .iter()
            .filter_map(|k| jose::public_jwk(k).ok())
            .collect();
        Some(ClientKeys::Inline(Arc::new(keys)))
    }
}

/// Why no keys could be had.
#[derive(Debug)]
pub enum KeysError {
    /// The URL did not answer usably and no recent keys stand in.
    Unavailable(String),
}

/// What this instance knows of a client's `jwks_uri`.
struct Cached {
    /// The last keys fetched, and when.
    keys: Option<(Arc<Vec<Jwk>>, Instant)>,
    /// The last fetch, failed or not: [`REFETCH_GAP`] counts from it, so
    /// neither unknown `kid`s nor a failing URL make a fetch per request
    /// (the request is not authenticated yet when it asks).
    tried_at: Instant,
}

/// What the cache says about a request for keys.
enum Lookup {
    Use(Arc<Vec<Jwk>>),
    Fetch,
    /// Tried within [`REFETCH_GAP`] and failed, with no keys to stand in.
    Refuse,
}

/// The fetched key sets, by client id, for this instance.
pub struct KeyCache {
    http: reqwest::Client,
    cached: Mutex<HashMap<String, Cached>>,
    /// One fetch at a time per client: its concurrent assertions wait for
    /// the fetch in flight; other clients do not.
    fetching: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl KeyCache {
    pub fn new(http: reqwest::Client) -> KeyCache {
        KeyCache {
            http,
            cached: Mutex::default(),
            fetching: Mutex::default(),
        }
    }

    /// The client's keys, fresh enough and holding `kid` when the cache
    /// can have it.
    pub async fn keys(
        &self,
        client_id: &str,
        keys: &ClientKeys,
        kid: Option<&str>,
    ) -> Result<Arc<Vec<Jwk>>, KeysError> {
        let uri = match keys {
            ClientKeys::Inline(keys) => return Ok(keys.clone()),
            ClientKeys::Remote(uri) => uri,
        };
        let refused = || KeysError::Unavailable("the last fetch failed; not retried yet".into());
        match self.lookup(client_id, kid) {
            Lookup::Use(keys) => return Ok(keys),
            Lookup::Refuse => return Err(refused()),
            Lookup::Fetch => {}
        }
        let client_lock = self
            .fetching
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(client_id.to_string())
            .or_default()
            .clone();
        let _one_at_a_time = client_lock.lock().await;
        match self.lookup(client_id, kid) {
            Lookup::Use(keys) => return Ok(keys),
            Lookup::Refuse => return Err(refused()),
            Lookup::Fetch => {}
        }
        let fetched = fetch(&self.http, uri).await;
        let now = Instant::now();
        let mut cached = self.lock();
        let entry = cached.entry(client_id.to_string()).or_insert(Cached {
            keys: None,
            tried_at: now,
        });
        entry.tried_at = now;
        match fetched {
            Ok(keys) => {
                metrics::client_key_fetch(client_id, "ok");
                let keys = Arc::new(keys);
                entry.keys = Some((keys.clone(), now));
                Ok(keys)
            }
            Err(why) => {
                tracing::warn!(client_id, error = %why, "the client's jwks_uri could not be fetched");
                match &entry.keys {
                    Some((keys, fetched_at)) if fetched_at.elapsed() < STALE => {
                        metrics::client_key_fetch(client_id, "failed");
                        Ok(keys.clone())
                    }
                    _ => {
                        metrics::client_key_fetch(client_id, "refused");
                        Err(KeysError::Unavailable(why))
                    }
                }
            }
        }
    }

    /// Fresh keys holding `kid` are used; within [`REFETCH_GAP`] of the
    /// last try, the keys there are (up to [`STALE`]) or a refusal;
    /// otherwise a fetch is due.
    fn lookup(&self, client_id: &str, kid: Option<&str>) -> Lookup {
        let cached = self.lock();
        let Some(c) = cached.get(client_id) else {
            return Lookup::Fetch;
        };
        let tried_lately = c.tried_at.elapsed() < REFETCH_GAP;
        match &c.keys {
            Some((keys, fetched_at)) => {
                let age = fetched_at.elapsed();
                let has_kid = kid
                    .is_none_or(|kid| keys.iter().any(|k| k.common.key_id.as_deref() == Some(kid)));
                if (age < FRESH && has_kid) || (tried_lately && age < STALE) {
                    Lookup::Use(keys.clone())
                } else if tried_lately {
                    Lookup::Refuse
                } else {
                    Lookup::Fetch
                }
            }
            None if tried_lately => Lookup::Refuse,
            None => Lookup::Fetch,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached>> {
        self.cached.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// GETs a JWK set: 200, JSON, at most [`MAX_BYTES`], within
/// [`FETCH_TIMEOUT`], no redirects. Keys that are not usable public
/// signature keys (an encryption key, an unsupported type) are skipped.
pub async fn fetch(http: &reqwest::Client, uri: &Url) -> Result<Vec<Jwk>, String> {
    let body = outbound::fetch_json(http, uri, FETCH_TIMEOUT, MAX_BYTES).await?;
    let keys = body
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("the document is not a JWK set")?;
    let usable: Vec<Jwk> = keys
        .iter()
        .filter(|k| {
            k.get("use")
                .and_then(Value::as_str)
                .is_none_or(|u| u == "sig")
        })
        .filter_map(|k| jose::public_jwk(k).ok())
        .collect();
    if usable.is_empty() {
        return Err("the JWK set has no usable public signature key".into());
    }
    Ok(usable)
}
