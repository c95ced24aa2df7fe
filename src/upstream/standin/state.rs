//! In-memory records of issued codes and tokens.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Codes live ten minutes, like typical OAuth servers [inf].
pub const CODE_TTL: Duration = Duration::from_secs(600);
/// Rotating Slack tokens last 12 hours.
pub const ROTATING_TOKEN_TTL: Duration = Duration::from_secs(43_200);

/// What an authorization code stands for.
#[derive(Debug, Clone)]
pub struct CodeGrant {
    pub client_id: String,
    /// The `redirect_uri` as sent to authorize, if it was sent.
    pub redirect_uri_sent: Option<String>,
    /// The redirect actually used (the first registered one if none was sent).
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub nonce: Option<String>,
    pub state: Option<String>,
    pub user_id: String,
    /// PKCE S256 challenge, if one was sent.
    pub code_challenge: Option<String>,
    pub created_at: Instant,
    pub used: bool,
}

/// What an access token grants.
#[derive(Debug, Clone)]
pub struct AccessGrant {
    pub user_id: String,
    pub scopes: Vec<String>,
    /// None: the token never expires (no token rotation).
    pub expires_at: Option<Instant>,
    /// Revoked by `Control::revoke_user_tokens`: userInfo says `token_revoked`.
    pub revoked: bool,
}

/// A refresh token's grant; `used` once it has been exchanged.
#[derive(Debug, Clone)]
pub struct RefreshGrant {
    pub client_id: String,
    pub user_id: String,
    pub scopes: Vec<String>,
    pub used: bool,
    /// Revoked by `Control::revoke_user_tokens`: refused like a used token.
    pub revoked: bool,
}

/// Why a code was refused; the token endpoint says `invalid_code` for all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeRejection {
    Unknown,
    Used,
    Expired,
    OtherClient,
}

#[derive(Default)]
pub struct Store {
    codes: Mutex<HashMap<String, CodeGrant>>,
    access: Mutex<HashMap<String, AccessGrant>>,
    refresh: Mutex<HashMap<String, RefreshGrant>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Store {
    pub fn insert_code(&self, code: String, grant: CodeGrant) {
        let mut codes = lock(&self.codes);
        // Forget codes long past their lifetime so memory stays bounded.
        codes.retain(|_, g| g.created_at.elapsed() < CODE_TTL * 2);
        codes.insert(code, grant);
    }

    /// Consumes a code for `client_id`. A known, fresh code for the right
    /// client is marked used even if later checks fail: codes are single-use.
    pub fn redeem_code(&self, code: &str, client_id: &str) -> Result<CodeGrant, CodeRejection> {
        let mut codes = lock(&self.codes);
        let grant = codes.get_mut(code).ok_or(CodeRejection::Unknown)?;
        if grant.client_id != client_id {
            return Err(CodeRejection::OtherClient);
        }
        if grant.used {
            return Err(CodeRejection::Used);
        }
        if grant.created_at.elapsed() >= CODE_TTL {
            return Err(CodeRejection::Expired);
        }
        grant.used = true;
        Ok(grant.clone())
    }

    pub fn insert_access(&self, token: String, grant: AccessGrant) {
        lock(&self.access).insert(token, grant);
    }

    pub fn access(&self, token: &str) -> Option<AccessGrant> {
        lock(&self.access).get(token).cloned()
    }

    pub fn expire_access_tokens(&self) {
        let now = Instant::now();
        for grant in lock(&self.access).values_mut() {
            grant.expires_at = Some(now);
        }
    }

    /// Revokes every access and refresh token issued to `user_id` so far.
    pub fn revoke_user(&self, user_id: &str) {
        for grant in lock(&self.access).values_mut() {
            if grant.user_id == user_id {
                grant.revoked = true;
            }
        }
        for grant in lock(&self.refresh).values_mut() {
            if grant.user_id == user_id {
                grant.revoked = true;
            }
        }
    }

    pub fn insert_refresh(&self, token: String, grant: RefreshGrant) {
        lock(&self.refresh).insert(token, grant);
    }

    /// Consumes a refresh token of `client_id`; None if unknown or used.
    pub fn redeem_refresh(&self, token: &str, client_id: &str) -> Option<RefreshGrant> {
        let mut refresh = lock(&self.refresh);
        let grant = refresh.get_mut(token)?;
        if grant.used || grant.revoked || grant.client_id != client_id {
            return None;
        }
        grant.used = true;
        Some(grant.clone())
    }
}

#[cfg(test)]
impl Store {
    /// Moves every code's issue time into the past, to test expiry.
    pub fn age_codes(&self, by: Duration) {
        for grant in lock(&self.codes).values_mut() {
            grant.created_at = grant
                .created_at
                .checked_sub(by)
                .expect("monotonic clock far enough from zero");
        }
    }
}
