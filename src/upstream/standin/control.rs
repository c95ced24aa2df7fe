//! Test controls: fault switches, key rotation and what the stand-in saw.
//!
//! Faults are sticky: once set they apply to every request until cleared with
//! `None`, so a test can watch a client retry.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::http::Obj;
use super::keys::{SigningKey, jwks_json};
use super::state::Store;

/// Failures of the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenFault {
    /// HTTP 429, `Retry-After`, `{"ok":false,"error":"ratelimited"}`.
    RateLimited { retry_after_secs: u64 },
    /// HTTP 200 `{"ok":false,"error":"internal_error"}`.
    InternalError,
    /// HTTP 404 with an HTML body.
    NonJson404,
    /// HTTP 200 `{"ok":false,"error":<code>}`, e.g. `invalid_code`.
    ErrorCode(String),
    /// Waits this long, then answers normally.
    Slow(Duration),
}

/// Failures of the userInfo endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserinfoFault {
    NonJson404,
    ErrorCode(String),
    Slow(Duration),
}

/// Defects planted in otherwise successful ID tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdTokenFault {
    /// Signed by a key that is not in the JWKS, under the published `kid`.
    BadSignature,
    WrongAudience,
    Expired,
    WrongNonce,
    WrongIssuer,
    /// Signed with a fresh key whose `kid` the JWKS serves only from the next
    /// fetch on, as when Slack rotates its key.
    UnknownKid,
    MissingAtHash,
}

/// How a token request authenticated its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthMethod {
    /// HTTP Basic (`client_secret_basic`).
    Basic,
    /// Body fields (`client_secret_post`).
    Post,
    /// No secret at all.
    None,
}

/// One request to the token endpoint, as received (before any fault).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequestRecord {
    pub grant_type: Option<String>,
    pub client_auth: ClientAuthMethod,
    pub redirect_uri: Option<String>,
    pub code_verifier_present: bool,
    /// The Content-Type's mime type, if any.
    pub content_type: Option<String>,
}

#[derive(Default)]
struct Faults {
    token: Option<TokenFault>,
    userinfo: Option<UserinfoFault>,
    id_token: Option<IdTokenFault>,
}

/// The keys: `published` is what the JWKS serves, `current` signs normal
/// tokens, `pending` were used by `UnknownKid` and get published at the next
/// JWKS fetch; `rogue` forges `BadSignature` tokens.
struct KeyRing {
    current: Arc<SigningKey>,
    published: Vec<Arc<SigningKey>>,
    pending: Vec<Arc<SigningKey>>,
    rogue: Option<Arc<SigningKey>>,
}

/// Shared, interior-mutable state of a running stand-in.
pub struct Control {
    faults: Mutex<Faults>,
    keys: Mutex<KeyRing>,
    jwks_fetches: AtomicUsize,
    token_requests: Mutex<Vec<TokenRequestRecord>>,
    pub(crate) store: Store,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("current_kid", &self.current_kid())
            .field("jwks_fetches", &self.jwks_fetches())
            .finish_non_exhaustive()
    }
}

/// Poisoning only means another handler panicked; the data is still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Control {
    pub(crate) fn new(key: SigningKey) -> Self {
        let key = Arc::new(key);
        Self {
            faults: Mutex::default(),
            keys: Mutex::new(KeyRing {
                current: key.clone(),
                published: vec![key],
                pending: Vec::new(),
                rogue: None,
            }),
            jwks_fetches: AtomicUsize::new(0),
            token_requests: Mutex::default(),
            store: Store::default(),
        }
    }

    pub fn set_token_fault(&self, f: Option<TokenFault>) {
        lock(&self.faults).token = f;
    }

    pub fn set_userinfo_fault(&self, f: Option<UserinfoFault>) {
        lock(&self.faults).userinfo = f;
    }

    pub fn set_id_token_fault(&self, f: Option<IdTokenFault>) {
        lock(&self.faults).id_token = f;
    }

    /// Replaces the signing key; the JWKS serves only the new key from now on.
    pub fn rotate_key(&self) {
        let key = Arc::new(SigningKey::generate().expect("RSA key generation"));
        let mut ring = lock(&self.keys);
        ring.current = key.clone();
        ring.published = vec![key];
        ring.pending.clear();
    }

    /// How many times the JWKS was served.
    pub fn jwks_fetches(&self) -> usize {
        self.jwks_fetches.load(Ordering::SeqCst)
    }

    /// Every token request received so far, oldest first.
    pub fn token_requests(&self) -> Vec<TokenRequestRecord> {
        lock(&self.token_requests).clone()
    }

    /// Makes every access token issued so far expired (for `token_expired`).
    pub fn expire_access_tokens(&self) {
        self.store.expire_access_tokens();
    }

    /// The `kid` new ID tokens are signed with (absent faults).
    pub fn current_kid(&self) -> String {
        lock(&self.keys).current.kid.clone()
    }

    pub(crate) fn token_fault(&self) -> Option<TokenFault> {
        lock(&self.faults).token.clone()
    }

    pub(crate) fn userinfo_fault(&self) -> Option<UserinfoFault> {
        lock(&self.faults).userinfo.clone()
    }

    pub(crate) fn id_token_fault(&self) -> Option<IdTokenFault> {
        lock(&self.faults).id_token.clone()
    }

    pub(crate) fn record_token_request(&self, r: TokenRequestRecord) {
        lock(&self.token_requests).push(r);
    }

    /// The JWKS body; publishes keys that `UnknownKid` tokens were signed with.
    pub(crate) fn serve_jwks(&self) -> String {
        self.jwks_fetches.fetch_add(1, Ordering::SeqCst);
        let mut ring = lock(&self.keys);
        if !ring.pending.is_empty() {
            let pending = std::mem::take(&mut ring.pending);
            ring.current = pending.last().expect("non-empty").clone();
            ring.published = pending;
        }
        jwks_json(&ring.published)
    }

    /// Signs ID token claims, honouring the key-related faults.
    pub(crate) fn sign_id_token(&self, claims: &Obj, fault: Option<&IdTokenFault>) -> String {
        match fault {
            Some(IdTokenFault::BadSignature) => {
                let (rogue, kid) = {
                    let mut ring = lock(&self.keys);
                    if ring.rogue.is_none() {
                        ring.rogue = Some(Arc::new(
                            SigningKey::generate().expect("RSA key generation"),
                        ));
                    }
                    (
                        ring.rogue.clone().expect("just set"),
                        ring.current.kid.clone(),
                    )
                };
                rogue.sign(&kid, claims)
            }
            Some(IdTokenFault::UnknownKid) => {
                // Generated outside the lock: RSA key generation takes a while.
                let fresh = Arc::new(SigningKey::generate().expect("RSA key generation"));
                lock(&self.keys).pending.push(fresh.clone());
                fresh.sign(&fresh.kid, claims)
            }
            _ => {
                let key = lock(&self.keys).current.clone();
                key.sign(&key.kid, claims)
            }
        }
    }
}
