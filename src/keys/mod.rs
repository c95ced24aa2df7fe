//! The signing key set: stored in one file, published as a JWKS, and used to
//! sign ID tokens with key pairs that are parsed once and cached.
//!
//! Every key is in one state: `next` (published, not yet signing), `active`
//! (signing; one per algorithm), `retired` (published so tokens it signed
//! still verify), or `revoked` (gone from the JWKS at once). A key is created
//! as `next` and published for a JWKS cache lifetime before it ever signs
//! (the rules are in `lifecycle.rs`). Running servers follow the file
//! without restart ([`follow`]); the CLI changes it ([`admin`]).

pub mod admin;
mod file;
pub mod follow;
mod lifecycle;
mod rotation_lock;
pub mod sealing;
mod signer;
mod verify;

pub use file::{KeyFile, KeyFileError, KeyRecord, KeyState, UpdateError, Updated, now};
pub use lifecycle::{NextStep, Policy, Revocation, Rotation, Wait};
pub use rotation_lock::RedisLock;
pub use signer::{Algorithm, SigningKey};

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use crate::web::cached::CachedJson;

/// The keys a running server uses: one signer per algorithm and the
/// published JWKS, serialized once.
pub struct LoadedKeys {
    signers: Vec<Arc<SigningKey>>,
    /// AEAD keys of the active keys; the first seals.
    sealers: Vec<sealing::Sealer>,
    pub published: Vec<Arc<SigningKey>>,
    /// The file as loaded, without private keys: states and dates.
    records: KeyFile,
    pub jwks: CachedJson,
}

impl LoadedKeys {
    /// Parses every key of `file`; fails if a configured algorithm has no
    /// active key.
    pub fn build(file: &KeyFile, path: &Path, policy: &Policy) -> Result<LoadedKeys, KeyFileError> {
        let mut signers = Vec::new();
        let mut published = Vec::new();
        let mut sealers = Vec::new();
        for record in &file.keys {
            let key = record
                .to_signing_key()
                .map_err(|m| KeyFileError::invalid(path, format!("key {}: {m}", record.kid)))?;
            let Some(key) = key else { continue };
            let key = Arc::new(key);
            if record.state == KeyState::Active {
                signers.push(key.clone());
                sealers.extend(record.sealer());
            }
            published.push(key);
        }
        for alg in &policy.algorithms {
            if !signers.iter().any(|s| s.alg() == *alg) {
                return Err(KeyFileError::invalid(
                    path,
                    format!("no {alg} key is \"active\", but keys.algorithms lists {alg}"),
                ));
            }
        }
        let jwks = jsonwebtoken::jwk::JwkSet {
            keys: published.iter().map(|k| k.public_jwk()).collect(),
        };
        // The first configured algorithm's active key seals.
        if let Some(first) = policy.algorithms.first()
            && let Some(i) = file
                .keys
                .iter()
                .filter(|r| r.state == KeyState::Active)
                .position(|r| r.alg == *first)
        {
            sealers.swap(0, i);
        }
        Ok(LoadedKeys {
            signers,
            sealers,
            published,
            records: KeyFile {
                keys: file.keys.iter().map(KeyRecord::public_view).collect(),
            },
            jwks: CachedJson::new(&jwks, policy.jwks_cache_secs),
        })
    }

    /// The key that signs ID tokens with `alg` (a client's
    /// `id_token_signed_response_alg`).
    pub fn signer_for(&self, alg: Algorithm) -> Option<&Arc<SigningKey>> {
        self.signers.iter().find(|s| s.alg() == alg)
    }

    /// Seals data for a later request (see [`sealing`]).
    pub fn seal(&self, purpose: &str, plaintext: &[u8]) -> String {
        self.sealers
            .first()
            .expect("an active key exists for every configured algorithm")
            .seal(purpose, plaintext)
    }

    /// Opens what [`seal`](Self::seal) sealed under a still active key.
    pub fn open(&self, purpose: &str, sealed: &str) -> Result<Vec<u8>, sealing::Unsealed> {
        sealing::open(&self.sealers, purpose, sealed)
    }

    /// Whether tokens issued with key `kid` must be refused. Tokens whose key
    /// was pruned had expired anyway; revoked keys stay recorded.
    pub fn is_revoked(&self, kid: &str) -> bool {
        self.records
            .keys
            .iter()
            .any(|k| k.kid == kid && k.state == KeyState::Revoked)
    }

    /// States and dates of every key (no private keys).
    pub fn records(&self) -> &KeyFile {
        &self.records
    }
}

/// The key set of a running server. Reads are an `Arc` clone under a read
/// lock; a reload swaps in a whole new set at once.
pub struct KeyStore {
    policy: Policy,
    path: PathBuf,
    current: RwLock<Arc<LoadedKeys>>,
    /// SHA-256 of the file content last loaded: unchanged content is not
    /// parsed again. Content, not mtime: two writes within the file system's
    /// timestamp granularity must not be missed.
    loaded_digest: Mutex<Vec<u8>>,
}

impl KeyStore {
    /// Loads the key file, creating the set (or the keys of a newly
    /// configured algorithm) when needed.
    pub fn open(policy: Policy) -> Result<KeyStore, KeyFileError> {
        let (_, created) = KeyFile::load_or_create(&policy.dir, &policy.algorithms)?;
        for alg in created {
            tracing::info!(%alg, "created the first signing keys for an algorithm");
        }
        let path = KeyFile::path_in(&policy.dir);
        warn_if_readable_by_others(&path);
        let bytes = std::fs::read(&path).map_err(KeyFileError::io(&path))?;
        let loaded = Self::build(&bytes, &path, &policy)?;
        Ok(KeyStore {
            current: RwLock::new(Arc::new(loaded)),
            loaded_digest: Mutex::new(digest(&bytes)),
            policy,
            path,
        })
    }

    fn build(bytes: &[u8], path: &Path, policy: &Policy) -> Result<LoadedKeys, KeyFileError> {
        LoadedKeys::build(&KeyFile::parse(bytes, path)?, path, policy)
    }

    pub fn current(&self) -> Arc<LoadedKeys> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Rereads the key file and, if its content changed and is usable,
    /// serves it from now on. Returns whether the keys changed. On error the
    /// previous keys stay in service.
    pub fn reload(&self) -> Result<bool, KeyFileError> {
        let bytes = std::fs::read(&self.path).map_err(KeyFileError::io(&self.path))?;
        let d = digest(&bytes);
        if *self.loaded_digest.lock().unwrap_or_else(|p| p.into_inner()) == d {
            return Ok(false);
        }
        let loaded = Self::build(&bytes, &self.path, &self.policy)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(loaded);
        *self.loaded_digest.lock().unwrap_or_else(|p| p.into_inner()) = d;
        Ok(true)
    }
}

fn digest(bytes: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes)
        .as_ref()
        .to_vec()
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(path = %path.display(), "the key file is readable by other users: chmod 600 it");
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(dir: &Path, algorithms: &[Algorithm]) -> Policy {
        Policy {
            dir: dir.to_path_buf(),
            algorithms: algorithms.to_vec(),
            jwks_cache_secs: 120,
            reload_interval_secs: 5,
            rotation_period_secs: None,
            id_token_ttl_secs: 3600,
        }
    }

    fn jwks_kids(keys: &LoadedKeys) -> Vec<String> {
        let v: serde_json::Value = serde_json::from_slice(keys.jwks.body()).unwrap();
        v["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn each_configured_algorithm_has_a_signer_and_every_key_is_published() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open(policy(dir.path(), &Algorithm::ALL)).unwrap();
        let keys = store.current();
        for alg in Algorithm::ALL {
            assert_eq!(keys.signer_for(alg).unwrap().alg(), alg);
        }
        assert_eq!(
            jwks_kids(&keys).len(),
            6,
            "an active and a next key per algorithm"
        );
    }

    #[test]
    fn an_unconfigured_algorithm_has_no_signer() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open(policy(dir.path(), &[Algorithm::Rs256])).unwrap();
        assert!(store.current().signer_for(Algorithm::EdDsa).is_none());
    }

    #[test]
    fn reload_picks_up_a_rotation_and_skips_unchanged_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = policy(dir.path(), &[Algorithm::Rs256]);
        let store = KeyStore::open(p.clone()).unwrap();
        assert!(!store.reload().unwrap(), "nothing changed");
        let before = store
            .current()
            .signer_for(Algorithm::Rs256)
            .unwrap()
            .kid()
            .to_string();
        let done = KeyFile::update(&p.dir, &p.algorithms, |f| {
            f.rotate(&p, &p.algorithms, true, true, now())
        })
        .unwrap();
        assert!(store.reload().unwrap());
        let keys = store.current();
        let after = keys.signer_for(Algorithm::Rs256).unwrap().kid();
        assert_ne!(after, before);
        assert_eq!(
            after,
            done.file
                .find(Algorithm::Rs256, KeyState::Active)
                .unwrap()
                .kid
        );
        assert!(
            jwks_kids(&keys).contains(&before),
            "the retired key stays published"
        );
    }

    #[test]
    fn a_broken_file_on_reload_keeps_the_previous_keys_in_service() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open(policy(dir.path(), &[Algorithm::Rs256])).unwrap();
        let before = store.current().jwks.body().clone();
        std::fs::write(KeyFile::path_in(dir.path()), b"{\"keys\": [").unwrap();
        let e = store.reload().unwrap_err().to_string();
        assert!(e.contains("keyset.json"), "{e}");
        assert_eq!(store.current().jwks.body(), &before);
    }

    #[test]
    fn a_revoked_key_leaves_the_jwks_and_is_reported_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let p = policy(dir.path(), &[Algorithm::Rs256]);
        let store = KeyStore::open(p.clone()).unwrap();
        let old = store
            .current()
            .signer_for(Algorithm::Rs256)
            .unwrap()
            .kid()
            .to_string();
        KeyFile::update(&p.dir, &p.algorithms, |f| f.revoke(&p, &old, now())).unwrap();
        store.reload().unwrap();
        let keys = store.current();
        assert!(!jwks_kids(&keys).contains(&old));
        assert!(keys.is_revoked(&old));
        assert_ne!(keys.signer_for(Algorithm::Rs256).unwrap().kid(), old);
        assert!(!keys.is_revoked(keys.signer_for(Algorithm::Rs256).unwrap().kid()));
    }

    #[test]
    fn the_jwks_max_age_is_the_cache_lifetime_setting() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open(policy(dir.path(), &[Algorithm::Rs256])).unwrap();
        let req = actix_web::test::TestRequest::default().to_http_request();
        let response = store.current().jwks.respond(&req);
        assert_eq!(
            response.headers().get("cache-control").unwrap(),
            "public, max-age=120"
        );
    }

    /// openidconnect (the RP side of the same library) parses our JWKS and
    /// verifies our ID tokens, `at_hash` included, for every algorithm.
    #[test]
    fn openidconnect_verifies_id_tokens_and_at_hash_for_every_algorithm() {
        use openidconnect::core::{
            CoreGenderClaim, CoreIdToken, CoreIdTokenClaims, CoreIdTokenVerifier,
            CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm,
        };
        use openidconnect::{
            AccessToken, Audience, ClientId, EmptyAdditionalClaims, IdToken, IssuerUrl, Nonce,
            StandardClaims, SubjectIdentifier,
        };
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open(policy(dir.path(), &Algorithm::ALL)).unwrap();
        let keys = store.current();
        let jwks: CoreJsonWebKeySet = serde_json::from_slice(keys.jwks.body()).unwrap();
        let issuer = IssuerUrl::new("https://sso.example.com".into()).unwrap();
        let access = AccessToken::new("an-access-token".into());
        for alg in Algorithm::ALL {
            let key = keys.signer_for(alg).unwrap();
            let claims = CoreIdTokenClaims::new(
                issuer.clone(),
                vec![Audience::new("app".into())],
                chrono::Utc::now() + chrono::Duration::seconds(60),
                chrono::Utc::now(),
                StandardClaims::<CoreGenderClaim>::new(SubjectIdentifier::new("s".into())),
                EmptyAdditionalClaims {},
            )
            .set_nonce(Some(Nonce::new("n".into())));
            let token: CoreIdToken = IdToken::<_, _, CoreJweContentEncryptionAlgorithm, _>::new(
                claims,
                key.as_ref(),
                alg.jws(),
                Some(&access),
                None,
            )
            .unwrap();
            let text = token.to_string();
            let header: serde_json::Value = serde_json::from_slice(
                &base64::Engine::decode(
                    &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                    text.split('.').next().unwrap(),
                )
                .unwrap(),
            )
            .unwrap();
            assert_eq!(header["alg"], alg.as_str());
            assert_eq!(header["kid"], key.kid());
            let verifier = CoreIdTokenVerifier::new_public_client(
                ClientId::new("app".into()),
                issuer.clone(),
                jwks.clone(),
            )
            .set_allowed_algs(vec![alg.jws()]);
            let parsed: CoreIdToken = text.parse().unwrap();
            let verified = parsed
                .claims(&verifier, &Nonce::new("n".into()))
                .unwrap_or_else(|e| panic!("{alg}: {e}"));
            // OIDC Core §3.1.3.6: left half of the hash that goes with `alg`
            // (SHA-512 for Ed25519), computed here independently.
            let hash = match alg {
                Algorithm::EdDsa => &aws_lc_rs::digest::SHA512,
                _ => &aws_lc_rs::digest::SHA256,
            };
            let full = aws_lc_rs::digest::digest(hash, access.secret().as_bytes());
            let half = &full.as_ref()[..full.as_ref().len() / 2];
            let expected =
                base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, half);
            assert_eq!(
                verified.access_token_hash().map(|h| h.to_string()),
                Some(expected),
                "{alg}"
            );
        }
    }
}
