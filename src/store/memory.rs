//! The embedded store for a single instance: a map with a TTL on every entry
//! and a hard cap (`store.memory_max_entries`). Nothing an unauthenticated
//! request does is stored, so only signed-in activity can reach the cap.
//! What happens there depends on the kind of record:
//! - expired entries are swept first;
//! - then entries that can be had again give way, the one expiring soonest
//!   first: Slack's cached answers and back-offs (Slack is asked again), and
//!   the markers of handled events and used upstream states (Slack's codes
//!   are single use and its events idempotent here, so losing one early
//!   costs a repeat, not a hole);
//! - records of signed-in people (sessions, codes, tokens, families,
//!   consents, pages waiting for an answer) are never evicted: when nothing
//!   else is left the write is refused (`StoreError::Full`, answered 503), so
//!   nobody who is signed in is ever signed out by the cap.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{IndexWrite, Namespace, Store, StoreError, StoreResult};

type Key = (Namespace, String);

struct Entry {
    value: Vec<u8>,
    expires: Instant,
}

/// A small map with one lifetime for the whole (like a Redis hash).
struct Index {
    members: HashMap<String, Vec<u8>>,
    expires: Instant,
}

/// Entries that can be had again (see the module's documentation).
fn is_replaceable(ns: Namespace) -> bool {
    matches!(
        ns,
        Namespace::Directory | Namespace::Backoff | Namespace::Event | Namespace::Login
    )
}

pub struct MemoryStore {
    entries: Mutex<HashMap<Key, Entry>>,
    /// Indexes name records that are already counted against the cap (a
    /// person's sessions and families), so they do not count again.
    indexes: Mutex<HashMap<Key, Index>>,
    max_entries: usize,
}

impl MemoryStore {
    pub fn new(max_entries: usize) -> Self {
        MemoryStore {
            entries: Mutex::new(HashMap::new()),
            indexes: Mutex::new(HashMap::new()),
            max_entries,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        // A panic while holding the lock cannot leave a half-written entry
        // (every mutation is a single map call), so poisoning is safe to ignore.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_indexes(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Index>> {
        self.indexes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops expired entries; returns how many remain.
    pub fn sweep(&self) -> usize {
        let now = Instant::now();
        self.lock_indexes().retain(|_, i| i.expires > now);
        let mut map = self.lock();
        map.retain(|_, e| e.expires > now);
        map.len()
    }

    fn insert(
        &self,
        ns: Namespace,
        key: &str,
        value: &[u8],
        ttl: Duration,
        only_new: bool,
    ) -> StoreResult<bool> {
        let now = Instant::now();
        let mut map = self.lock();
        let k = (ns, key.to_string());
        let exists = map.get(&k).is_some_and(|e| e.expires > now);
        if only_new && exists {
            return Ok(false);
        }
        if !exists {
            self.make_room(&mut map, now)?;
        }
        map.insert(
            k,
            Entry {
                value: value.to_vec(),
                expires: now + ttl,
            },
        );
        Ok(true)
    }

    /// At the cap: sweeps, then evicts the replaceable entry expiring
    /// soonest; `Full` when only records of signed-in people are left.
    fn make_room(&self, map: &mut HashMap<Key, Entry>, now: Instant) -> StoreResult<()> {
        if map.len() < self.max_entries {
            return Ok(());
        }
        map.retain(|_, e| e.expires > now);
        if map.len() < self.max_entries {
            return Ok(());
        }
        let victim = map
            .iter()
            .filter(|((ns, _), _)| is_replaceable(*ns))
            .min_by_key(|(_, e)| e.expires)
            .map(|(k, _)| k.clone());
        match victim {
            Some(k) => {
                map.remove(&k);
                Ok(())
            }
            None => Err(StoreError::Full),
        }
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn put(&self, ns: Namespace, key: &str, value: &[u8], ttl: Duration) -> StoreResult<()> {
        self.insert(ns, key, value, ttl, false).map(|_| ())
    }

    async fn put_new(
        &self,
        ns: Namespace,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> StoreResult<bool> {
        self.insert(ns, key, value, ttl, true)
    }

    async fn swap(
        &self,
        ns: Namespace,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> StoreResult<Option<Vec<u8>>> {
        let now = Instant::now();
        let mut map = self.lock();
        let k = (ns, key.to_string());
        let exists = map.get(&k).is_some_and(|e| e.expires > now);
        if !exists {
            self.make_room(&mut map, now)?;
        }
        let old = map.insert(
            k,
            Entry {
                value: value.to_vec(),
                expires: now + ttl,
            },
        );
        Ok(old.filter(|e| e.expires > now).map(|e| e.value))
    }

    async fn replace(
        &self,
        ns: Namespace,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> StoreResult<Option<Vec<u8>>> {
        let now = Instant::now();
        let mut map = self.lock();
        match map.get_mut(&(ns, key.to_string())) {
            Some(entry) if entry.expires > now => {
                entry.expires = now + ttl;
                Ok(Some(std::mem::replace(&mut entry.value, value.to_vec())))
            }
            _ => Ok(None),
        }
    }

    async fn get(&self, ns: Namespace, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let map = self.lock();
        Ok(map
            .get(&(ns, key.to_string()))
            .filter(|e| e.expires > Instant::now())
            .map(|e| e.value.clone()))
    }

    async fn take(&self, ns: Namespace, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let mut map = self.lock();
        Ok(map
            .remove(&(ns, key.to_string()))
            .filter(|e| e.expires > Instant::now())
            .map(|e| e.value))
    }

    async fn delete(&self, ns: Namespace, key: &str) -> StoreResult<bool> {
        let mut map = self.lock();
        Ok(map
            .remove(&(ns, key.to_string()))
            .is_some_and(|e| e.expires > Instant::now()))
    }

    async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }

    async fn index_set(
        &self,
        ns: Namespace,
        key: &str,
        member: &str,
        value: &[u8],
        ttl: Duration,
        watch: Option<&str>,
    ) -> StoreResult<IndexWrite> {
        let now = Instant::now();
        let mut indexes = self.lock_indexes();
        let index = indexes
            .entry((ns, key.to_string()))
            .or_insert_with(|| Index {
                members: HashMap::new(),
                expires: now,
            });
        if index.expires <= now {
            index.members.clear();
        }
        index.members.insert(member.to_string(), value.to_vec());
        index.expires = index.expires.max(now + ttl);
        Ok(IndexWrite {
            watched: watch.and_then(|w| index.members.get(w).cloned()),
            members: index.members.len(),
        })
    }

    async fn index_read(&self, ns: Namespace, key: &str) -> StoreResult<Vec<(String, Vec<u8>)>> {
        let indexes = self.lock_indexes();
        Ok(indexes
            .get(&(ns, key.to_string()))
            .filter(|i| i.expires > Instant::now())
            .map(|i| {
                i.members
                    .iter()
                    .map(|(m, v)| (m.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn index_remove(&self, ns: Namespace, key: &str, members: &[String]) -> StoreResult<()> {
        let mut indexes = self.lock_indexes();
        let k = (ns, key.to_string());
        if let Some(index) = indexes.get_mut(&k) {
            for m in members {
                index.members.remove(m);
            }
            if index.members.is_empty() {
                indexes.remove(&k);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_store_passes_the_conformance_suite() {
        crate::store::conformance::run_all(|| async { MemoryStore::new(10_000) }).await;
    }

    #[tokio::test]
    async fn at_the_cap_writes_are_refused_and_live_entries_kept() {
        let store = MemoryStore::new(2);
        let ttl = Duration::from_secs(60);
        store.put(Namespace::Session, "a", b"1", ttl).await.unwrap();
        store.put(Namespace::Session, "b", b"2", ttl).await.unwrap();
        assert!(matches!(
            store.put(Namespace::Login, "c", b"3", ttl).await,
            Err(StoreError::Full)
        ));
        assert_eq!(
            store.get(Namespace::Session, "a").await.unwrap().as_deref(),
            Some(&b"1"[..])
        );
        // Overwriting an existing key needs no new room.
        store.put(Namespace::Session, "a", b"9", ttl).await.unwrap();
    }

    #[tokio::test]
    async fn at_the_cap_cached_answers_give_way_to_records_of_signed_in_people() {
        let store = MemoryStore::new(3);
        let ttl = Duration::from_secs(60);
        store.put(Namespace::Session, "s", b"1", ttl).await.unwrap();
        store
            .put(Namespace::Directory, "soon", b"a", Duration::from_secs(5))
            .await
            .unwrap();
        store
            .put(Namespace::Directory, "late", b"b", ttl)
            .await
            .unwrap();
        store.put(Namespace::Family, "f", b"2", ttl).await.unwrap();
        assert_eq!(
            store.get(Namespace::Directory, "soon").await.unwrap(),
            None,
            "the answer expiring soonest gave way"
        );
        assert!(
            store
                .get(Namespace::Directory, "late")
                .await
                .unwrap()
                .is_some()
        );
        store.put(Namespace::Code, "c", b"3", ttl).await.unwrap();
        // Only records of signed-in people are left: refused, none evicted.
        assert!(matches!(
            store.put(Namespace::AccessToken, "t", b"4", ttl).await,
            Err(StoreError::Full)
        ));
        // A cached answer at the cap is refused too rather than evict them.
        assert!(matches!(
            store.put(Namespace::Backoff, "b", b"5", ttl).await,
            Err(StoreError::Full)
        ));
        for (ns, k) in [
            (Namespace::Session, "s"),
            (Namespace::Family, "f"),
            (Namespace::Code, "c"),
        ] {
            assert!(store.get(ns, k).await.unwrap().is_some(), "{k} kept");
        }
    }

    #[tokio::test]
    async fn expired_entries_make_room_at_the_cap() {
        let store = MemoryStore::new(1);
        store
            .put(Namespace::Login, "old", b"1", Duration::from_millis(20))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(40)).await;
        store
            .put(Namespace::Login, "new", b"2", Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(store.sweep(), 1);
    }
}
