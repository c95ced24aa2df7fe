//! The signing key set: stored in one file, published as a JWKS, and used to
//! sign ID tokens with a key pair that is parsed once and cached.
//!
//! Every key is in one state: `next` (published, not yet signing), `active`
//! (signing), `retired` (published so tokens it signed still verify). A key is
//! created as `next` and published before it ever signs.

mod file;
mod signer;
mod verify;

pub use file::{KeyFile, KeyFileError, KeyRecord, KeyState};
pub use signer::{Algorithm, SigningKey};

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::web::cached::CachedJson;

/// The keys a running server uses: the active signer and the published JWKS.
pub struct LoadedKeys {
    pub active: Arc<SigningKey>,
    pub published: Vec<Arc<SigningKey>>,
    pub jwks: CachedJson,
}

impl LoadedKeys {
    pub fn from_file(file: &KeyFile, path: &Path) -> Result<LoadedKeys, KeyFileError> {
        let mut published = Vec::new();
        let mut active = None;
        for record in &file.keys {
            let key = Arc::new(record.to_signing_key().map_err(|m| KeyFileError::Invalid {
                path: path.to_path_buf(),
                message: format!("key {}: {m}", record.kid),
            })?);
            if record.state == KeyState::Active && active.is_none() {
                active = Some(key.clone());
            }
            published.push(key);
        }
        let active = active.ok_or_else(|| KeyFileError::Invalid {
            path: path.to_path_buf(),
            message: "no key is in state \"active\"".into(),
        })?;
        let jwks = jsonwebtoken::jwk::JwkSet {
            keys: published.iter().map(|k| k.public_jwk()).collect(),
        };
        let jwks = CachedJson::new(&jwks, 300);
        Ok(LoadedKeys {
            active,
            published,
            jwks,
        })
    }
}

/// The key set of a running server. Reads are lock-free in practice (an `Arc`
/// clone under a read lock); `reload` swaps in a new set at once.
pub struct KeyStore {
    path: PathBuf,
    current: RwLock<Arc<LoadedKeys>>,
}

impl KeyStore {
    /// Loads the key file in `dir`, creating a first key set when there is none.
    pub fn open(dir: &Path) -> Result<KeyStore, KeyFileError> {
        let file = KeyFile::load_or_create(dir)?;
        let path = KeyFile::path_in(dir);
        let loaded = LoadedKeys::from_file(&file, &path)?;
        Ok(KeyStore {
            path,
            current: RwLock::new(Arc::new(loaded)),
        })
    }

    pub fn current(&self) -> Arc<LoadedKeys> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Rereads the key file (after a rotation by the CLI).
    pub fn reload(&self) -> Result<(), KeyFileError> {
        let file = KeyFile::load(&self.path)?;
        let loaded = LoadedKeys::from_file(&file, &self.path)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(loaded);
        Ok(())
    }
}
