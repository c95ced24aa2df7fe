//! The life of a key: `next` → `active` → `retired` → removed, or `revoked`
//! at any point. Every transition is a pure change of a [`KeyFile`] at a given
//! time, so the rules are tested without clocks or files.
//!
//! The two timing rules:
//! - a key signs only once it has been published for `publish_delay`: the
//!   time running servers take to notice the file (`reload_interval_secs`)
//!   plus the time applications may cache the JWKS (`jwks_cache_secs`);
//! - a retired key stays published for `retention`: the ID-token lifetime
//!   plus the time servers take to stop signing with it.

use std::path::PathBuf;

use super::file::{KeyFile, KeyRecord, KeyState};
use super::signer::Algorithm;
use crate::config::Config;

/// The key settings a running server or the CLI acts on.
#[derive(Debug, Clone)]
pub struct Policy {
    pub dir: PathBuf,
    /// Algorithms that have an active key and that clients may ask for.
    pub algorithms: Vec<Algorithm>,
    pub jwks_cache_secs: u32,
    pub reload_interval_secs: u64,
    /// `None`: rotation only by `keys rotate`.
    pub rotation_period_secs: Option<i64>,
    pub id_token_ttl_secs: u64,
}

impl Policy {
    pub fn from_config(config: &Config) -> Policy {
        let k = &config.keys;
        Policy {
            dir: k.dir.clone(),
            algorithms: k.algorithms.clone(),
            jwks_cache_secs: k.jwks_cache_secs,
            reload_interval_secs: k.reload_interval_secs,
            rotation_period_secs: (k.rotation_period_days > 0)
                .then(|| i64::from(k.rotation_period_days) * 86_400),
            id_token_ttl_secs: config.tokens.id_token_ttl_secs,
        }
    }

    /// How long a key must have been in the file before it may sign.
    pub fn publish_delay(&self) -> i64 {
        i64::from(self.jwks_cache_secs) + self.reload_interval_secs as i64
    }

    /// How long a retired key stays published.
    pub fn retention(&self) -> i64 {
        self.id_token_ttl_secs as i64 + self.reload_interval_secs as i64
    }

    /// What happens to the key next, and when.
    pub fn next_step(&self, k: &KeyRecord) -> NextStep {
        match k.state {
            KeyState::Next => NextStep::MaySign {
                from: self.ready_at(k),
            },
            KeyState::Active => NextStep::Retires {
                at: self
                    .rotation_period_secs
                    .map(|p| k.activated_at.unwrap_or(k.created_at) + p),
            },
            KeyState::Retired => NextStep::Removable {
                from: self.removable_at(k),
            },
            KeyState::Revoked => NextStep::Nothing,
        }
    }

    fn removable_at(&self, k: &KeyRecord) -> i64 {
        k.retired_at.unwrap_or(k.created_at) + self.retention()
    }

    fn ready_at(&self, k: &KeyRecord) -> i64 {
        k.created_at + self.publish_delay()
    }
}

/// When a key will move on (for `keys list`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    /// A `next` key: `keys rotate` may make it sign from then on.
    MaySign { from: i64 },
    /// An active key: retired by the automatic rotation at `at`, or by hand.
    Retires { at: Option<i64> },
    /// A retired key: `keys prune` removes it from then on.
    Removable { from: i64 },
    /// A revoked key stays as a record.
    Nothing,
}

/// A `next` key that may not sign yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wait {
    pub alg: Algorithm,
    pub kid: String,
    pub published_at: i64,
    pub ready_at: i64,
    /// It was created by this very call, because there was none.
    pub published_now: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    Done {
        /// (algorithm, kid) of each key that now signs.
        activated: Vec<(Algorithm, String)>,
        retired: Vec<String>,
        /// `next` keys published by this rotation.
        published: Vec<String>,
    },
    /// Nothing was promoted; the file may have gained `next` keys (see
    /// [`Wait::published_now`]), so that the wait starts now.
    Refused { waits: Vec<Wait> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub kid: String,
    pub alg: Algorithm,
    pub was: KeyState,
    /// The key that signs for `alg` instead, and when it was published.
    pub replacement: Option<(String, i64)>,
}

impl KeyFile {
    pub fn missing_algorithms(&self, algorithms: &[Algorithm]) -> Vec<Algorithm> {
        algorithms
            .iter()
            .copied()
            .filter(|a| self.find(*a, KeyState::Active).is_none())
            .collect()
    }

    /// Gives every configured algorithm an active and a next key. A new
    /// algorithm's first key signs at once, as on a first start: no
    /// application can hold a cached JWKS that should have had it.
    pub fn ensure_algorithms(
        &mut self,
        algorithms: &[Algorithm],
        now: i64,
    ) -> Result<Vec<Algorithm>, String> {
        let created = self.missing_algorithms(algorithms);
        for &alg in &created {
            self.keys
                .push(KeyRecord::generate(alg, KeyState::Active, now)?);
        }
        for &alg in algorithms {
            if self.find(alg, KeyState::Next).is_none() {
                self.keys
                    .push(KeyRecord::generate(alg, KeyState::Next, now)?);
            }
        }
        Ok(created)
    }

    /// `next` becomes `active`, `active` becomes `retired` and a fresh `next`
    /// is published, for each of `algorithms`. Unless `force`, refuses (and
    /// promotes nothing) while any of those `next` keys is younger than the
    /// publish delay. With `retire_others`, keys of algorithms no longer
    /// configured stop signing too.
    pub fn rotate(
        &mut self,
        policy: &Policy,
        algorithms: &[Algorithm],
        retire_others: bool,
        force: bool,
        now: i64,
    ) -> Result<Rotation, String> {
        let mut waits = Vec::new();
        for &alg in algorithms {
            let published_now = self.find(alg, KeyState::Next).is_none();
            if published_now {
                self.keys
                    .push(KeyRecord::generate(alg, KeyState::Next, now)?);
            }
            let next = self.find(alg, KeyState::Next).expect("just ensured");
            if now < policy.ready_at(next) {
                waits.push(Wait {
                    alg,
                    kid: next.kid.clone(),
                    published_at: next.created_at,
                    ready_at: policy.ready_at(next),
                    published_now,
                });
            }
        }
        if !force && !waits.is_empty() {
            return Ok(Rotation::Refused { waits });
        }
        // Generate first: a failure here leaves the set unchanged.
        let mut fresh = Vec::new();
        for &alg in algorithms {
            fresh.push(KeyRecord::generate(alg, KeyState::Next, now)?);
        }
        let (mut activated, mut retired) = (Vec::new(), Vec::new());
        for k in &mut self.keys {
            let configured = algorithms.contains(&k.alg);
            match k.state {
                KeyState::Active if configured || retire_others => {
                    k.state = KeyState::Retired;
                    k.retired_at = Some(now);
                    retired.push(k.kid.clone());
                }
                KeyState::Next if configured => {
                    k.state = KeyState::Active;
                    k.activated_at = Some(now);
                    activated.push((k.alg, k.kid.clone()));
                }
                _ => {}
            }
        }
        if retire_others {
            // Never signed, so nothing needs them.
            self.keys
                .retain(|k| k.state != KeyState::Next || algorithms.contains(&k.alg));
        }
        let published = fresh.iter().map(|k| k.kid.clone()).collect();
        self.keys.extend(fresh);
        Ok(Rotation::Done {
            activated,
            retired,
            published,
        })
    }

    /// Takes a compromised key out at once: it leaves the JWKS, its private
    /// half is erased, and if it was signing the published `next` key takes
    /// over immediately (a compromise outweighs the publish delay).
    pub fn revoke(&mut self, policy: &Policy, kid: &str, now: i64) -> Result<Revocation, String> {
        let i = self
            .keys
            .iter()
            .position(|k| k.kid == kid)
            .ok_or_else(|| format!("there is no key {kid} (`keys list` shows them)"))?;
        let (alg, was) = (self.keys[i].alg, self.keys[i].state);
        if was == KeyState::Revoked {
            return Err(format!("key {kid} is already revoked"));
        }
        let configured = policy.algorithms.contains(&alg);
        // Generate first: a failure here leaves the set unchanged.
        let replacement = match (was, configured) {
            (KeyState::Active, true) if self.find(alg, KeyState::Next).is_none() => {
                Some(KeyRecord::generate(alg, KeyState::Active, now)?)
            }
            _ => None,
        };
        let fresh_next = match (was, configured) {
            (KeyState::Active | KeyState::Next, true) => {
                Some(KeyRecord::generate(alg, KeyState::Next, now)?)
            }
            _ => None,
        };
        self.keys[i].revoke(now);
        let mut signs_now = None;
        if was == KeyState::Active && configured {
            match replacement {
                Some(r) => {
                    signs_now = Some((r.kid.clone(), r.created_at));
                    self.keys.push(r);
                }
                None => {
                    let next = self
                        .keys
                        .iter_mut()
                        .find(|k| k.alg == alg && k.state == KeyState::Next)
                        .expect("checked above");
                    next.state = KeyState::Active;
                    next.activated_at = Some(now);
                    signs_now = Some((next.kid.clone(), next.created_at));
                }
            }
        }
        self.keys.extend(fresh_next);
        Ok(Revocation {
            kid: kid.to_string(),
            alg,
            was,
            replacement: signs_now,
        })
    }

    /// Removes retired keys whose tokens have all expired; returns them.
    pub fn prune(&mut self, policy: &Policy, now: i64) -> Vec<KeyRecord> {
        let (gone, kept) = std::mem::take(&mut self.keys)
            .into_iter()
            .partition(|k| k.state == KeyState::Retired && policy.removable_at(k) <= now);
        self.keys = kept;
        gone
    }

    /// Automatic rotation is due: a configured algorithm's active key has
    /// served its period and its `next` key may sign (or is missing).
    pub fn rotation_due(&self, policy: &Policy, now: i64) -> bool {
        let Some(period) = policy.rotation_period_secs else {
            return false;
        };
        policy.algorithms.iter().any(|&alg| {
            let expired = self
                .find(alg, KeyState::Active)
                .is_some_and(|k| k.activated_at.unwrap_or(k.created_at) + period <= now);
            let ready = self
                .find(alg, KeyState::Next)
                .is_none_or(|k| policy.ready_at(k) <= now);
            expired && ready
        })
    }

    pub fn prune_due(&self, policy: &Policy, now: i64) -> bool {
        self.keys
            .iter()
            .any(|k| k.state == KeyState::Retired && policy.removable_at(k) <= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000;

    fn policy(algorithms: &[Algorithm]) -> Policy {
        Policy {
            dir: PathBuf::new(),
            algorithms: algorithms.to_vec(),
            jwks_cache_secs: 300,
            reload_interval_secs: 5,
            rotation_period_secs: None,
            id_token_ttl_secs: 3600,
        }
    }

    fn fresh(p: &Policy) -> KeyFile {
        let mut f = KeyFile::default();
        f.ensure_algorithms(&p.algorithms, T0).unwrap();
        f
    }

    fn kid(f: &KeyFile, alg: Algorithm, state: KeyState) -> String {
        f.find(alg, state).unwrap().kid.clone()
    }

    fn state_of(f: &KeyFile, kid: &str) -> Option<KeyState> {
        f.keys.iter().find(|k| k.kid == kid).map(|k| k.state)
    }

    #[test]
    fn rotation_refuses_while_the_next_key_is_younger_than_the_publish_delay() {
        let p = policy(&[Algorithm::Rs256]);
        let mut f = fresh(&p);
        let before = serde_json::to_string(&f).unwrap();
        let r = f.rotate(&p, &p.algorithms, true, false, T0 + 304).unwrap();
        let Rotation::Refused { waits } = r else {
            panic!("{r:?}")
        };
        assert_eq!(
            waits[0].ready_at,
            T0 + 305,
            "cache lifetime + reload interval"
        );
        assert!(!waits[0].published_now);
        assert_eq!(
            serde_json::to_string(&f).unwrap(),
            before,
            "nothing changed"
        );
    }

    #[test]
    fn rotation_promotes_next_retires_active_and_publishes_a_fresh_next() {
        let p = policy(&[Algorithm::Rs256]);
        let mut f = fresh(&p);
        let (old_active, old_next) = (
            kid(&f, Algorithm::Rs256, KeyState::Active),
            kid(&f, Algorithm::Rs256, KeyState::Next),
        );
        let r = f.rotate(&p, &p.algorithms, true, false, T0 + 305).unwrap();
        assert!(matches!(r, Rotation::Done { .. }), "{r:?}");
        assert_eq!(state_of(&f, &old_active), Some(KeyState::Retired));
        assert_eq!(state_of(&f, &old_next), Some(KeyState::Active));
        let new_next = f.find(Algorithm::Rs256, KeyState::Next).unwrap();
        assert_ne!(new_next.kid, old_next);
        assert_eq!(new_next.created_at, T0 + 305);
        let active = f.find(Algorithm::Rs256, KeyState::Active).unwrap();
        assert_eq!(active.activated_at, Some(T0 + 305));
    }

    #[test]
    fn rotating_without_a_next_key_publishes_one_and_says_how_long_to_wait() {
        let p = policy(&[Algorithm::Rs256]);
        let mut f = fresh(&p);
        f.keys.retain(|k| k.state != KeyState::Next);
        let active = kid(&f, Algorithm::Rs256, KeyState::Active);
        let r = f
            .rotate(&p, &p.algorithms, true, false, T0 + 10_000)
            .unwrap();
        let Rotation::Refused { waits } = r else {
            panic!("{r:?}")
        };
        assert!(waits[0].published_now);
        assert_eq!(waits[0].ready_at, T0 + 10_305);
        assert_eq!(state_of(&f, &active), Some(KeyState::Active), "still signs");
        assert_eq!(state_of(&f, &waits[0].kid), Some(KeyState::Next));
    }

    #[test]
    fn rotation_with_force_promotes_a_next_key_that_is_too_new() {
        let p = policy(&[Algorithm::Rs256]);
        let mut f = fresh(&p);
        let next = kid(&f, Algorithm::Rs256, KeyState::Next);
        let r = f.rotate(&p, &p.algorithms, true, true, T0 + 1).unwrap();
        assert!(matches!(r, Rotation::Done { .. }));
        assert_eq!(state_of(&f, &next), Some(KeyState::Active));
    }

    #[test]
    fn one_algorithm_that_is_not_ready_holds_back_the_whole_rotation() {
        let p = policy(&[Algorithm::Rs256, Algorithm::Es256]);
        let mut f = fresh(&p);
        f.keys
            .retain(|k| !(k.alg == Algorithm::Es256 && k.state == KeyState::Next));
        let rs_next = kid(&f, Algorithm::Rs256, KeyState::Next);
        let r = f.rotate(&p, &p.algorithms, true, false, T0 + 400).unwrap();
        let Rotation::Refused { waits } = r else {
            panic!("{r:?}")
        };
        assert_eq!(waits.len(), 1);
        assert_eq!(waits[0].alg, Algorithm::Es256);
        assert_eq!(state_of(&f, &rs_next), Some(KeyState::Next));
        // Rotating RS256 alone works.
        let r = f
            .rotate(&p, &[Algorithm::Rs256], false, false, T0 + 400)
            .unwrap();
        assert!(matches!(r, Rotation::Done { .. }));
        assert_eq!(state_of(&f, &rs_next), Some(KeyState::Active));
    }

    #[test]
    fn an_algorithm_dropped_from_the_config_stops_signing_at_the_next_rotation() {
        let both = policy(&[Algorithm::Rs256, Algorithm::EdDsa]);
        let mut f = fresh(&both);
        let ed_active = kid(&f, Algorithm::EdDsa, KeyState::Active);
        let rs_only = policy(&[Algorithm::Rs256]);
        f.rotate(&rs_only, &rs_only.algorithms, true, false, T0 + 400)
            .unwrap();
        assert_eq!(
            state_of(&f, &ed_active),
            Some(KeyState::Retired),
            "published until its tokens expire"
        );
        assert!(f.find(Algorithm::EdDsa, KeyState::Next).is_none());
        assert!(f.find(Algorithm::EdDsa, KeyState::Active).is_none());
    }

    #[test]
    fn revoking_the_active_key_makes_the_next_key_sign_at_once() {
        let p = policy(&[Algorithm::Rs256]);
        let mut f = fresh(&p);
        let (active, next) = (
            kid(&f, Algorithm::Rs256, KeyState::Active),
            kid(&f, Algorithm::Rs256, KeyState::Next),
        );
        let r = f.revoke(&p, &active, T0 + 1).unwrap();
        assert_eq!(r.was, KeyState::Active);
        assert_eq!(r.replacement, Some((next.clone(), T0)));
        assert_eq!(state_of(&f, &active), Some(KeyState::Revoked));
        assert_eq!(state_of(&f, &next), Some(KeyState::Active));
        assert!(
            f.find(Algorithm::Rs256, KeyState::Next).is_some(),
            "a fresh next"
        );
        let revoked = f.keys.iter().find(|k| k.kid == active).unwrap();
        assert_eq!(revoked.revoked_at, Some(T0 + 1));
        assert!(
            revoked.to_signing_key().unwrap().is_none(),
            "private key erased"
        );
    }

    #[test]
    fn revoking_the_active_key_without_a_next_key_creates_a_signing_one() {
        let p = policy(&[Algorithm::Es256]);
        let mut f = fresh(&p);
        f.keys.retain(|k| k.state != KeyState::Next);
        let active = kid(&f, Algorithm::Es256, KeyState::Active);
        let r = f.revoke(&p, &active, T0 + 1).unwrap();
        let (new, published) = r.replacement.unwrap();
        assert_eq!(published, T0 + 1);
        assert_eq!(state_of(&f, &new), Some(KeyState::Active));
        assert!(f.find(Algorithm::Es256, KeyState::Next).is_some());
    }

    #[test]
    fn revoking_the_next_key_publishes_another() {
        let p = policy(&[Algorithm::Rs256]);
        let mut f = fresh(&p);
        let (active, next) = (
            kid(&f, Algorithm::Rs256, KeyState::Active),
            kid(&f, Algorithm::Rs256, KeyState::Next),
        );
        let r = f.revoke(&p, &next, T0 + 1).unwrap();
        assert_eq!(r.replacement, None);
        assert_eq!(state_of(&f, &active), Some(KeyState::Active));
        let new_next = kid(&f, Algorithm::Rs256, KeyState::Next);
        assert_ne!(new_next, next);
    }

    #[test]
    fn revoking_an_unknown_or_revoked_key_is_an_error_that_changes_nothing() {
        let p = policy(&[Algorithm::Rs256]);
        let mut f = fresh(&p);
        assert!(
            f.revoke(&p, "nope", T0)
                .unwrap_err()
                .contains("no key nope")
        );
        let next = kid(&f, Algorithm::Rs256, KeyState::Next);
        f.revoke(&p, &next, T0).unwrap();
        let before = serde_json::to_string(&f).unwrap();
        assert!(
            f.revoke(&p, &next, T0)
                .unwrap_err()
                .contains("already revoked")
        );
        assert_eq!(serde_json::to_string(&f).unwrap(), before);
    }

    #[test]
    fn prune_removes_retired_keys_only_after_their_tokens_expired() {
        let p = policy(&[Algorithm::Rs256]);
        let mut f = fresh(&p);
        let old = kid(&f, Algorithm::Rs256, KeyState::Active);
        f.rotate(&p, &p.algorithms, true, false, T0 + 400).unwrap();
        // Retired at T0+400; tokens live 3600 s; servers may sign for 5 s more.
        assert!(!f.prune_due(&p, T0 + 400 + 3604));
        assert!(f.prune(&p, T0 + 400 + 3604).is_empty());
        assert_eq!(state_of(&f, &old), Some(KeyState::Retired));
        assert!(f.prune_due(&p, T0 + 400 + 3605));
        let gone = f.prune(&p, T0 + 400 + 3605);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].kid, old);
        assert_eq!(state_of(&f, &old), None);
        assert_eq!(f.keys.len(), 2, "active and next stay");
    }

    #[test]
    fn prune_keeps_revoked_records() {
        let p = policy(&[Algorithm::Rs256]);
        let mut f = fresh(&p);
        let active = kid(&f, Algorithm::Rs256, KeyState::Active);
        f.revoke(&p, &active, T0).unwrap();
        f.prune(&p, T0 + 1_000_000);
        assert_eq!(state_of(&f, &active), Some(KeyState::Revoked));
    }

    #[test]
    fn automatic_rotation_is_due_after_the_period_once_the_next_key_is_ready() {
        let mut p = policy(&[Algorithm::Rs256]);
        let f = fresh(&p);
        assert!(!f.rotation_due(&p, T0 + 10 * 86_400), "off by default");
        p.rotation_period_secs = Some(86_400);
        assert!(!f.rotation_due(&p, T0 + 86_399));
        assert!(f.rotation_due(&p, T0 + 86_400));
        let mut young_next = f.clone();
        young_next.keys[1].created_at = T0 + 86_300;
        assert!(
            !young_next.rotation_due(&p, T0 + 86_400),
            "next not published long enough"
        );
    }

    #[test]
    fn next_step_reports_when_each_key_moves_on() {
        let mut p = policy(&[Algorithm::Rs256]);
        let mut f = fresh(&p);
        let next = f.find(Algorithm::Rs256, KeyState::Next).unwrap().clone();
        assert_eq!(p.next_step(&next), NextStep::MaySign { from: T0 + 305 });
        let active = f.find(Algorithm::Rs256, KeyState::Active).unwrap().clone();
        assert_eq!(p.next_step(&active), NextStep::Retires { at: None });
        p.rotation_period_secs = Some(86_400);
        assert_eq!(
            p.next_step(&active),
            NextStep::Retires {
                at: Some(T0 + 86_400)
            }
        );
        f.rotate(&p, &p.algorithms, true, true, T0 + 10).unwrap();
        let retired = f.find(Algorithm::Rs256, KeyState::Retired).unwrap().clone();
        assert_eq!(
            p.next_step(&retired),
            NextStep::Removable {
                from: T0 + 10 + 3605
            }
        );
    }
}
