//! A [`Store`] wrapper that counts every call in `bridge_store_calls_total`
//! and every failed one in `bridge_store_errors_total`, whatever the backend
//! and whoever called (a counter increment per call; nothing is timed).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::metrics::{store_call, store_error};
use crate::store::{DynStore, IndexWrite, Namespace, Store, StoreResult};

pub struct MeteredStore {
    inner: DynStore,
}

impl MeteredStore {
    pub fn wrap(inner: DynStore) -> DynStore {
        Arc::new(MeteredStore { inner })
    }
}

fn counted<T>(op: &'static str, result: StoreResult<T>) -> StoreResult<T> {
    store_call(op);
    if let Err(e) = &result {
        store_error(op, e);
    }
    result
}

#[async_trait]
impl Store for MeteredStore {
    async fn put(&self, ns: Namespace, key: &str, value: &[u8], ttl: Duration) -> StoreResult<()> {
        counted("put", self.inner.put(ns, key, value, ttl).await)
    }

    async fn put_new(
        &self,
        ns: Namespace,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> StoreResult<bool> {
        counted("put_new", self.inner.put_new(ns, key, value, ttl).await)
    }

    async fn get(&self, ns: Namespace, key: &str) -> StoreResult<Option<Vec<u8>>> {
        counted("get", self.inner.get(ns, key).await)
    }

    async fn swap(
        &self,
        ns: Namespace,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> StoreResult<Option<Vec<u8>>> {
        counted("swap", self.inner.swap(ns, key, value, ttl).await)
    }

    async fn replace(
        &self,
        ns: Namespace,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> StoreResult<Option<Vec<u8>>> {
        counted("replace", self.inner.replace(ns, key, value, ttl).await)
    }

    async fn take(&self, ns: Namespace, key: &str) -> StoreResult<Option<Vec<u8>>> {
        counted("take", self.inner.take(ns, key).await)
    }

    async fn delete(&self, ns: Namespace, key: &str) -> StoreResult<bool> {
        counted("delete", self.inner.delete(ns, key).await)
    }

    async fn ping(&self) -> StoreResult<()> {
        counted("ping", self.inner.ping().await)
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
        counted(
            "index_set",
            self.inner
                .index_set(ns, key, member, value, ttl, watch)
                .await,
        )
    }

    async fn index_read(&self, ns: Namespace, key: &str) -> StoreResult<Vec<(String, Vec<u8>)>> {
        counted("index_read", self.inner.index_read(ns, key).await)
    }

    async fn index_remove(&self, ns: Namespace, key: &str, members: &[String]) -> StoreResult<()> {
        counted(
            "index_remove",
            self.inner.index_remove(ns, key, members).await,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    #[tokio::test]
    async fn the_metered_store_passes_the_conformance_suite() {
        crate::store::conformance::run_all(|| async {
            MeteredStore {
                inner: Arc::new(MemoryStore::new(10_000)),
            }
        })
        .await;
    }

    #[tokio::test]
    async fn errors_pass_through_unchanged() {
        let store = MeteredStore::wrap(Arc::new(MemoryStore::new(1)));
        let ttl = Duration::from_secs(60);
        store.put(Namespace::Session, "a", b"1", ttl).await.unwrap();
        assert!(matches!(
            store.put(Namespace::Session, "b", b"2", ttl).await,
            Err(crate::store::StoreError::Full)
        ));
    }
}
