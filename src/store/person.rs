//! The index from a Slack person (our `sub`) to their live SSO sessions and
//! token families, so that Slack (an event) or an admin (the CLI) can sign
//! the person out everywhere. Members name records only by the hash they are
//! stored under: the index holds nothing that can be replayed.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::records::{Records, Session, encode, secret_hash};
use super::{Namespace, StoreResult};

/// What one index member stands for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Held {
    Session,
    Family,
}

/// One live session or token family of a person, as the index remembers it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PersonEntry {
    pub held: Held,
    /// The application (families only; a session's are in its record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The session's public id (`sid`), for logout tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    pub created_at: i64,
    pub last_used_at: i64,
    pub expires_at: i64,
}

/// What ending a person's sessions and families found.
#[derive(Debug, Default)]
pub struct Ended {
    /// The sessions that were live (their clients get logout tokens).
    pub sessions: Vec<Session>,
    /// The families that were live.
    pub families: Vec<PersonEntry>,
}

/// The index member that records when the person was last signed out
/// everywhere.
const SIGNED_OUT: &str = "signed_out_at";
/// A person's index is pruned of expired members each time it reaches a
/// multiple of this many (from twice this on).
const PRUNE_EVERY: usize = 32;
/// The longest a code can live (`tokens.code_ttl_secs` is at most 600).
const CODE_LIFETIME_BOUND: Duration = Duration::from_secs(600);

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn ttl_until(expires_at: i64) -> Duration {
    Duration::from_secs((expires_at - now()).max(1) as u64)
}

impl Records {
    /// Records a session (by its cookie) in its person's index.
    pub async fn index_session(
        &self,
        subject: &str,
        cookie: &str,
        entry: &PersonEntry,
    ) -> StoreResult<()> {
        let member = format!("s:{}", secret_hash(cookie));
        self.index_entry(subject, &member, entry).await.map(|_| ())
    }

    /// Records a token family in its person's index (again on each refresh,
    /// which moves its `last_used_at`). Returns when the person was last
    /// signed out everywhere (Unix milliseconds), read in the same step: a
    /// code issued before that must not start a family.
    pub async fn index_family(
        &self,
        subject: &str,
        family_id: &str,
        entry: &PersonEntry,
    ) -> StoreResult<Option<i64>> {
        let member = format!("f:{}", secret_hash(family_id));
        let out = self.index_entry(subject, &member, entry).await?;
        Ok(out
            .and_then(|v| String::from_utf8(v).ok())
            .and_then(|v| v.parse().ok()))
    }

    async fn index_entry(
        &self,
        subject: &str,
        member: &str,
        entry: &PersonEntry,
    ) -> StoreResult<Option<Vec<u8>>> {
        let value = encode(entry);
        let written = self
            .store()
            .index_set(
                Namespace::Person,
                &secret_hash(subject),
                member,
                &value,
                ttl_until(entry.expires_at),
                Some(SIGNED_OUT),
            )
            .await?;
        // Expired members are dropped now and then, not at every write: a
        // person's index is read whole to prune it.
        if written.members >= 2 * PRUNE_EVERY && written.members % PRUNE_EVERY == 0 {
            self.person_entries(subject).await?;
        }
        Ok(written.watched)
    }

    /// The person's live entries (member, entry); expired and unreadable
    /// members are removed on the way.
    pub async fn person_entries(&self, subject: &str) -> StoreResult<Vec<(String, PersonEntry)>> {
        let key = secret_hash(subject);
        let members = self.store().index_read(Namespace::Person, &key).await?;
        let now = now();
        let mut live = Vec::new();
        let mut dead = Vec::new();
        for (member, bytes) in members {
            if member == SIGNED_OUT {
                continue;
            }
            match serde_json::from_slice::<PersonEntry>(&bytes) {
                Ok(entry) if entry.expires_at > now => live.push((member, entry)),
                _ => dead.push(member),
            }
        }
        if !dead.is_empty() {
            self.store()
                .index_remove(Namespace::Person, &key, &dead)
                .await?;
        }
        live.sort_by_key(|(_, e)| e.created_at);
        Ok(live)
    }

    /// Ends every session and token family of the person: sessions are taken
    /// (so their clients can be told), families deleted (every token of
    /// theirs dies with them). Each member leaves the index once its record
    /// is gone, so a failure half-way leaves the rest to a retry.
    pub async fn end_person(&self, subject: &str) -> StoreResult<Ended> {
        let key = secret_hash(subject);
        // First: codes issued until now start no family (see `index_family`).
        let at = chrono::Utc::now().timestamp_millis().to_string();
        self.store()
            .index_set(
                Namespace::Person,
                &key,
                SIGNED_OUT,
                at.as_bytes(),
                CODE_LIFETIME_BOUND,
                None,
            )
            .await?;
        let mut ended = Ended::default();
        for (member, entry) in self.person_entries(subject).await? {
            let (kind, hash) = member.split_once(':').unwrap_or_default();
            if kind == "s" {
                let taken = self.take_hashed::<Session>(Namespace::Session, hash);
                ended.sessions.extend(taken.await?);
            } else if kind == "f" && self.store().delete(Namespace::Family, hash).await? {
                ended.families.push(entry);
            }
            self.store()
                .index_remove(Namespace::Person, &key, &[member])
                .await?;
        }
        Ok(ended)
    }

    /// Deletes the family stored under `hash` (from an index); whether it was
    /// alive.
    pub async fn delete_family_by_hash(&self, hash: &str) -> StoreResult<bool> {
        self.store().delete(Namespace::Family, hash).await
    }

    /// Whether the family stored under `hash` (from an index) is alive.
    pub async fn family_alive_by_hash(&self, hash: &str) -> StoreResult<bool> {
        Ok(self.store().get(Namespace::Family, hash).await?.is_some())
    }

    /// A session record by the hash it is stored under.
    pub async fn session_by_hash(&self, hash: &str) -> StoreResult<Option<Session>> {
        self.get_hashed(Namespace::Session, hash).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::Store;
    use crate::store::memory::MemoryStore;

    fn entry(expires_at: i64) -> PersonEntry {
        PersonEntry {
            held: Held::Family,
            client_id: Some("app".into()),
            sid: None,
            created_at: now(),
            last_used_at: now(),
            expires_at,
        }
    }

    #[tokio::test]
    async fn expired_members_are_pruned_as_the_index_grows_not_at_every_write() {
        let store = Arc::new(MemoryStore::new(10_000));
        let records = Records::new(store.clone());
        let key = secret_hash("T1:U1");
        // Members whose records have expired (the index itself lives on).
        for i in 0..(2 * PRUNE_EVERY - 2) {
            records
                .index_family("T1:U1", &format!("old-{i}"), &entry(now() - 10))
                .await
                .unwrap();
        }
        let held = |store: Arc<MemoryStore>| {
            let key = key.clone();
            async move {
                store
                    .index_read(Namespace::Person, &key)
                    .await
                    .unwrap()
                    .len()
            }
        };
        assert_eq!(
            held(store.clone()).await,
            2 * PRUNE_EVERY - 2,
            "not pruned yet"
        );
        records
            .index_family("T1:U1", "live-1", &entry(now() + 600))
            .await
            .unwrap();
        records
            .index_family("T1:U1", "live-2", &entry(now() + 600))
            .await
            .unwrap();
        assert_eq!(held(store.clone()).await, 2, "pruned at the threshold");
        let live = records.person_entries("T1:U1").await.unwrap();
        assert_eq!(live.len(), 2);
    }

    #[tokio::test]
    async fn a_sign_out_everywhere_is_remembered_beside_the_entries() {
        let store = Arc::new(MemoryStore::new(10_000));
        let records = Records::new(store);
        let before = chrono::Utc::now().timestamp_millis();
        records.end_person("T1:U1").await.unwrap();
        let out = records
            .index_family("T1:U1", "f", &entry(now() + 600))
            .await
            .unwrap()
            .expect("the sign-out time");
        assert!(out >= before);
        assert_eq!(records.person_entries("T1:U1").await.unwrap().len(), 1);
    }
}
