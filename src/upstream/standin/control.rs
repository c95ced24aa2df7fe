//! Test controls: fault switches, key rotation, the directory (user flags and
//! groups) and what the stand-in saw.
//!
//! Faults are sticky: once set they apply to every request until cleared with
//! `None`, so a test can watch a client retry.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::http::Obj;
use super::keys::{SigningKey, jwks_json};
use super::state::Store;
use super::{StandinGroup, StandinUser};

/// Slack's Web API method names, as counted by `Control::calls`.
pub(crate) const TOKEN_METHOD: &str = "openid.connect.token";
pub(crate) const USERINFO_METHOD: &str = "openid.connect.userInfo";
pub(crate) const USERS_INFO_METHOD: &str = "users.info";
pub(crate) const USERGROUPS_LIST_METHOD: &str = "usergroups.list";

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
    /// HTTP 429, `Retry-After`, `{"ok":false,"error":"ratelimited"}`.
    RateLimited {
        retry_after_secs: u64,
    },
    NonJson404,
    ErrorCode(String),
    Slow(Duration),
}

/// The directory methods of the Web API (bot token).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DirectoryMethod {
    UsersInfo,
    UsergroupsList,
}

impl DirectoryMethod {
    /// Slack's method name, e.g. `users.info`.
    pub fn name(self) -> &'static str {
        match self {
            DirectoryMethod::UsersInfo => USERS_INFO_METHOD,
            DirectoryMethod::UsergroupsList => USERGROUPS_LIST_METHOD,
        }
    }
}

/// Failures of `users.info` and `usergroups.list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectoryFault {
    /// HTTP 429, `Retry-After`, `{"ok":false,"error":"ratelimited"}`.
    RateLimited { retry_after_secs: u64 },
    /// HTTP 200 `{"ok":false,"error":<code>}`, e.g. `internal_error`.
    ErrorCode(String),
    /// HTTP 404 with an HTML body.
    NonJson404,
    /// Waits this long, then answers normally.
    Slow(Duration),
}

/// What kind of member a user is, for `Control::set_user_guest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestKind {
    /// A full member (neither `is_restricted` nor `is_ultra_restricted`).
    Member,
    /// A multi-channel guest (`is_restricted`).
    MultiChannel,
    /// A single-channel guest (`is_ultra_restricted`).
    SingleChannel,
}

/// The changing directory facts of one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UserFlags {
    pub deleted: bool,
    pub is_bot: bool,
    pub is_restricted: bool,
    pub is_ultra_restricted: bool,
    /// Unix seconds of the last change (`updated` in `users.info`).
    pub updated: i64,
}

impl UserFlags {
    /// The user's fixture values, last updated at `now`.
    pub fn of(user: &StandinUser, now: i64) -> Self {
        Self {
            deleted: user.deleted,
            is_bot: user.is_bot,
            is_restricted: user.is_restricted,
            is_ultra_restricted: user.is_ultra_restricted,
            updated: now,
        }
    }
}

/// A group with the dates Slack keeps for it.
#[derive(Debug, Clone)]
pub(crate) struct GroupRecord {
    pub group: StandinGroup,
    pub date_create: i64,
    pub date_update: i64,
}

#[derive(Default)]
struct Directory {
    users: HashMap<String, UserFlags>,
    groups: Vec<GroupRecord>,
}

/// Unix seconds now.
pub(crate) fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
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
    directory: HashMap<DirectoryMethod, DirectoryFault>,
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
    directory: Mutex<Directory>,
    calls: Mutex<HashMap<String, usize>>,
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
    /// The directory starts from the users' and groups' fixture values.
    pub(crate) fn new(key: SigningKey, users: &[StandinUser], groups: Vec<StandinGroup>) -> Self {
        let now = unix_now();
        let directory = Directory {
            users: users
                .iter()
                .map(|u| (u.user_id.clone(), UserFlags::of(u, now)))
                .collect(),
            groups: groups
                .into_iter()
                .map(|group| GroupRecord {
                    group,
                    date_create: now,
                    date_update: now,
                })
                .collect(),
        };
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
            directory: Mutex::new(directory),
            calls: Mutex::default(),
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

    /// Sets or clears (`None`) the fault of one directory method.
    pub fn set_directory_fault(&self, method: DirectoryMethod, fault: Option<DirectoryFault>) {
        let mut faults = lock(&self.faults);
        match fault {
            Some(f) => faults.directory.insert(method, f),
            None => faults.directory.remove(&method),
        };
    }

    /// Deactivates (or reactivates) a user: `users.info` then says
    /// `deleted: true` and userInfo answers `account_inactive` for their
    /// tokens. Signing in at the stand-in still works, as before.
    ///
    /// # Panics
    /// If the stand-in has no user `user_id` (a typo in a test).
    pub fn set_user_deleted(&self, user_id: &str, deleted: bool) {
        self.update_user(user_id, |f| f.deleted = deleted);
    }

    /// Makes a user a full member or a guest of either kind.
    ///
    /// # Panics
    /// If the stand-in has no user `user_id`.
    pub fn set_user_guest(&self, user_id: &str, kind: GuestKind) {
        self.update_user(user_id, |f| {
            f.is_restricted = kind == GuestKind::MultiChannel;
            f.is_ultra_restricted = kind == GuestKind::SingleChannel;
        });
    }

    /// Revokes every access and refresh token issued to `user_id` so far:
    /// userInfo answers `token_revoked` and a refresh `invalid_refresh_token`.
    /// Tokens issued afterwards work.
    pub fn revoke_user_tokens(&self, user_id: &str) {
        self.store.revoke_user(user_id);
    }

    /// Replaces the members of the group with this handle.
    ///
    /// # Panics
    /// If no group has this handle.
    pub fn set_group_members(&self, handle: &str, users: &[&str]) {
        self.update_group(handle, |g| {
            g.users = users.iter().map(|u| (*u).to_owned()).collect();
        });
    }

    /// Adds a group, replacing one with the same id.
    pub fn create_group(&self, group: StandinGroup) {
        let now = unix_now();
        let mut dir = lock(&self.directory);
        dir.groups.retain(|r| r.group.id != group.id);
        dir.groups.push(GroupRecord {
            group,
            date_create: now,
            date_update: now,
        });
    }

    /// Disables the group with this handle (`date_delete` = now).
    ///
    /// # Panics
    /// If no group has this handle.
    pub fn disable_group(&self, handle: &str) {
        let now = unix_now();
        self.update_group(handle, |g| g.date_delete = now);
    }

    /// The group with this handle as it stands now.
    pub fn group(&self, handle: &str) -> Option<StandinGroup> {
        lock(&self.directory)
            .groups
            .iter()
            .find(|r| r.group.handle == handle)
            .map(|r| r.group.clone())
    }

    /// How many requests reached a Web API method, by Slack's method name
    /// (`openid.connect.token`, `openid.connect.userInfo`, `users.info`,
    /// `usergroups.list`), faulted ones included.
    pub fn calls(&self, method: &str) -> usize {
        lock(&self.calls).get(method).copied().unwrap_or(0)
    }

    /// Sets every call counter back to zero.
    pub fn reset_calls(&self) {
        lock(&self.calls).clear();
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

    pub(crate) fn directory_fault(&self, method: DirectoryMethod) -> Option<DirectoryFault> {
        lock(&self.faults).directory.get(&method).cloned()
    }

    pub(crate) fn count_call(&self, method: &str) {
        *lock(&self.calls).entry(method.to_owned()).or_default() += 1;
    }

    /// A user's current directory facts; None for an unknown user.
    pub(crate) fn user_flags(&self, user_id: &str) -> Option<UserFlags> {
        lock(&self.directory).users.get(user_id).copied()
    }

    /// Every group with its dates, in creation order.
    pub(crate) fn group_records(&self) -> Vec<GroupRecord> {
        lock(&self.directory).groups.clone()
    }

    fn update_user(&self, user_id: &str, change: impl FnOnce(&mut UserFlags)) {
        let mut dir = lock(&self.directory);
        let flags = dir
            .users
            .get_mut(user_id)
            .unwrap_or_else(|| panic!("the Slack stand-in has no user {user_id}"));
        change(flags);
        flags.updated = unix_now();
    }

    fn update_group(&self, handle: &str, change: impl FnOnce(&mut StandinGroup)) {
        let mut dir = lock(&self.directory);
        let record = dir
            .groups
            .iter_mut()
            .find(|r| r.group.handle == handle)
            .unwrap_or_else(|| panic!("the Slack stand-in has no group @{handle}"));
        change(&mut record.group);
        record.date_update = unix_now();
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
