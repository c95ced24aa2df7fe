//! The key file: `keyset.json` in the key directory, written atomically
//! (temporary file, then rename) with mode 0600. One file for the whole set,
//! so a rotation either happens completely or not at all.
//!
//! Writers (servers and the CLI) take an advisory lock on `keyset.lock` for
//! their read-modify-write, so a revocation can never be undone by a
//! concurrent rotation that read the file before it. Readers take no lock:
//! the rename makes every read see one whole version.
//!
//! The format only grows by optional fields: a file written by an older
//! version loads unchanged, and a file that uses no new feature (RS256 only,
//! nothing revoked) still loads in an older version.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use super::signer::{Algorithm, SigningKey};

const FILE_NAME: &str = "keyset.json";
const LOCK_NAME: &str = "keyset.lock";
/// How long a writer waits for another writer (a rotation takes well under
/// a second) before giving up with a clear error.
const LOCK_WAIT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// Published, not signing yet.
    Next,
    /// Signing (one per algorithm) and published.
    Active,
    /// Published until every token it signed has expired.
    Retired,
    /// Compromised: never published, never signs; the private key is erased.
    /// Kept so tokens issued with it can be recognised and refused.
    Revoked,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Next => "next",
            KeyState::Active => "active",
            KeyState::Retired => "retired",
            KeyState::Revoked => "revoked",
        }
    }

    pub fn is_published(self) -> bool {
        self != KeyState::Revoked
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRecord {
    pub kid: String,
    pub alg: Algorithm,
    pub state: KeyState,
    /// Unix seconds. Also when the key was first published.
    pub created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activated_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<i64>,
    /// PKCS#8 DER, base64; absent once revoked. Never logged: `Debug`
    /// leaves it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pkcs8: Option<String>,
}

impl std::fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRecord")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("state", &self.state)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

impl KeyRecord {
    pub fn generate(alg: Algorithm, state: KeyState, now: i64) -> Result<KeyRecord, String> {
        let (key, der) = SigningKey::generate(alg)?;
        Ok(KeyRecord {
            kid: key.kid().to_string(),
            alg,
            state,
            created_at: now,
            activated_at: (state == KeyState::Active).then_some(now),
            retired_at: None,
            revoked_at: None,
            pkcs8: Some(STANDARD.encode(der)),
        })
    }

    /// Parses the private key; `None` for a revoked key, which has none.
    /// The AEAD key derived from this key's private key (see `sealing`);
    /// `None` once revoked.
    pub fn sealer(&self) -> Option<super::sealing::Sealer> {
        let der = STANDARD.decode(self.pkcs8.as_deref()?).ok()?;
        Some(super::sealing::Sealer::derive(&self.kid, &der))
    }

    pub fn to_signing_key(&self) -> Result<Option<SigningKey>, String> {
        if self.state == KeyState::Revoked {
            return Ok(None);
        }
        let pkcs8 = self
            .pkcs8
            .as_deref()
            .ok_or("the private key (pkcs8) is missing")?;
        let der = STANDARD
            .decode(pkcs8)
            .map_err(|e| format!("private key is not base64: {e}"))?;
        let key = SigningKey::from_pkcs8(self.alg, &der)?;
        if key.kid() != self.kid {
            return Err(format!(
                "kid does not match the key's thumbprint ({})",
                key.kid()
            ));
        }
        Ok(Some(key))
    }

    /// Marks the key revoked and erases its private half.
    pub(super) fn revoke(&mut self, now: i64) {
        self.state = KeyState::Revoked;
        self.revoked_at = Some(now);
        self.pkcs8 = None;
    }

    /// The record without its private key, for views kept in memory.
    pub(super) fn public_view(&self) -> KeyRecord {
        KeyRecord {
            pkcs8: None,
            ..self.clone()
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    pub keys: Vec<KeyRecord>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("key file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("key file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl KeyFileError {
    /// For `map_err` on an I/O call about `path`.
    pub(super) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyFileError + '_ {
        move |source| KeyFileError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(super) fn invalid(path: &Path, message: impl Into<String>) -> KeyFileError {
        KeyFileError::Invalid {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl KeyFile {
    pub fn path_in(dir: &Path) -> PathBuf {
        dir.join(FILE_NAME)
    }

    /// Reads and checks the whole set, private keys included.
    pub fn load(path: &Path) -> Result<KeyFile, KeyFileError> {
        let bytes = std::fs::read(path).map_err(KeyFileError::io(path))?;
        let file = Self::parse(&bytes, path)?;
        file.check_keys(path)?;
        Ok(file)
    }

    /// Parses and checks the structure (not the private keys).
    pub fn parse(bytes: &[u8], path: &Path) -> Result<KeyFile, KeyFileError> {
        let file: KeyFile = serde_json::from_slice(bytes).map_err(|e| {
            KeyFileError::invalid(
                path,
                format!(
                    "not a valid key set ({e}); restore it from a backup, or move it away to \
                     start with new keys (applications must then refetch the JWKS)"
                ),
            )
        })?;
        file.check_structure()
            .map_err(|m| KeyFileError::invalid(path, m))?;
        Ok(file)
    }

    fn check_structure(&self) -> Result<(), String> {
        let mut kids = std::collections::HashSet::new();
        for k in &self.keys {
            if !kids.insert(k.kid.as_str()) {
                return Err(format!("key {} appears twice", k.kid));
            }
        }
        for alg in Algorithm::ALL {
            for state in [KeyState::Active, KeyState::Next] {
                let n = self.count(alg, state);
                if n > 1 {
                    return Err(format!(
                        "{n} {alg} keys are \"{}\"; at most one may be",
                        state.as_str()
                    ));
                }
            }
        }
        Ok(())
    }

    /// Parses every private key once, so a broken key is found now and not
    /// at the first sign-in.
    pub fn check_keys(&self, path: &Path) -> Result<(), KeyFileError> {
        for record in &self.keys {
            record
                .to_signing_key()
                .map_err(|m| KeyFileError::invalid(path, format!("key {}: {m}", record.kid)))?;
        }
        Ok(())
    }

    pub fn count(&self, alg: Algorithm, state: KeyState) -> usize {
        self.keys
            .iter()
            .filter(|k| k.alg == alg && k.state == state)
            .count()
    }

    pub fn find(&self, alg: Algorithm, state: KeyState) -> Option<&KeyRecord> {
        self.keys.iter().find(|k| k.alg == alg && k.state == state)
    }

    /// Loads the key set, creating it (or the keys of a newly configured
    /// algorithm) when needed. Only then does it lock and write, so a server
    /// whose key directory is read-only starts as long as nothing is missing.
    /// Returns the file and the algorithms whose keys were just created.
    pub fn load_or_create(
        dir: &Path,
        algorithms: &[Algorithm],
    ) -> Result<(KeyFile, Vec<Algorithm>), KeyFileError> {
        let path = Self::path_in(dir);
        if path.exists() {
            let file = Self::load(&path)?;
            if file.missing_algorithms(algorithms).is_empty() {
                return Ok((file, Vec::new()));
            }
        }
        match Self::update(dir, algorithms, |_| Ok::<_, std::convert::Infallible>(())) {
            Ok(done) => Ok((done.file, done.created)),
            Err(UpdateError::File(e)) => Err(e),
            Err(UpdateError::Change(never)) => match never {},
        }
    }

    /// Read-modify-write under the writers' lock: loads (or creates) the set,
    /// creates keys for configured algorithms that have none, applies `change`
    /// and saves. When `change` fails nothing is written, so a change that
    /// fails half-way leaves the previous set intact.
    pub fn update<T, E>(
        dir: &Path,
        algorithms: &[Algorithm],
        change: impl FnOnce(&mut KeyFile) -> Result<T, E>,
    ) -> Result<Updated<T>, UpdateError<E>> {
        let path = Self::path_in(dir);
        create_private_dir(dir)?;
        let _lock = FileLock::acquire(dir)?;
        let mut file = if path.exists() {
            Self::load(&path)?
        } else {
            KeyFile::default()
        };
        let before = serde_json::to_vec(&file).expect("key file serializes");
        let t = now();
        let created = file
            .ensure_algorithms(algorithms, t)
            .map_err(|m| KeyFileError::invalid(&path, m))?;
        let out = change(&mut file).map_err(UpdateError::Change)?;
        if serde_json::to_vec(&file).expect("key file serializes") != before {
            file.save(dir)?;
        }
        Ok(Updated {
            file,
            created,
            value: out,
        })
    }

    /// Writes the whole set atomically over the existing file.
    pub fn save(&self, dir: &Path) -> Result<(), KeyFileError> {
        let path = Self::path_in(dir);
        let tmp = self.write_temp(dir, &path)?;
        std::fs::rename(&tmp, &path).map_err(|source| {
            let _ = std::fs::remove_file(&tmp);
            KeyFileError::Io {
                path: path.clone(),
                source,
            }
        })?;
        // Make the rename itself durable before anyone relies on it.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    fn write_temp(&self, dir: &Path, target: &Path) -> Result<PathBuf, KeyFileError> {
        let mut rnd = [0u8; 8];
        let _ = aws_lc_rs::rand::fill(&mut rnd);
        let tmp = dir.join(format!(".{FILE_NAME}.{}.tmp", u64::from_le_bytes(rnd)));
        let io = |source| KeyFileError::Io {
            path: tmp.clone(),
            source,
        };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut f = options.open(&tmp).map_err(io)?;
        // An admin running the CLI as root must not leave a file the server's
        // user can no longer read: keep the previous owner when we can.
        #[cfg(unix)]
        if let Ok(meta) = std::fs::metadata(target) {
            use std::os::unix::fs::MetadataExt;
            let _ = std::os::unix::fs::fchown(&f, Some(meta.uid()), Some(meta.gid()));
        }
        #[cfg(not(unix))]
        let _ = target;
        let json = serde_json::to_vec_pretty(self).expect("key file serializes");
        f.write_all(&json).and_then(|_| f.sync_all()).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io(e)
        })?;
        Ok(tmp)
    }
}

fn create_private_dir(dir: &Path) -> Result<(), KeyFileError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(KeyFileError::io(dir))
}

/// What [`KeyFile::update`] did.
#[derive(Debug)]
pub struct Updated<T> {
    /// The set as saved.
    pub file: KeyFile,
    /// Algorithms whose first keys were created on the way.
    pub created: Vec<Algorithm>,
    /// What the change returned.
    pub value: T,
}

/// Why [`KeyFile::update`] wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError<E> {
    #[error(transparent)]
    File(#[from] KeyFileError),
    /// The change itself refused (e.g. an unknown kid).
    #[error("{0}")]
    Change(E),
}

/// The writers' lock: an advisory lock on `keyset.lock`, released when
/// dropped or when the process dies (so a crash never leaves it stuck).
struct FileLock {
    _file: File,
}

impl FileLock {
    fn acquire(dir: &Path) -> Result<FileLock, KeyFileError> {
        let path = dir.join(LOCK_NAME);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options.open(&path).map_err(KeyFileError::io(&path))?;
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(FileLock { _file: file }),
                Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(KeyFileError::invalid(
                        &path,
                        format!(
                            "another process has been changing the key set for {} s; try again",
                            LOCK_WAIT.as_secs()
                        ),
                    ));
                }
                Err(std::fs::TryLockError::Error(source)) => {
                    return Err(KeyFileError::Io { path, source });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RS: &[Algorithm] = &[Algorithm::Rs256];

    #[test]
    fn first_start_creates_an_active_and_a_next_key_in_a_0600_file() {
        let dir = tempfile::tempdir().unwrap();
        let (file, created) = KeyFile::load_or_create(dir.path(), RS).unwrap();
        assert_eq!(created, vec![Algorithm::Rs256]);
        let states: Vec<_> = file.keys.iter().map(|k| k.state).collect();
        assert_eq!(states, vec![KeyState::Active, KeyState::Next]);
        let (again, created) = KeyFile::load_or_create(dir.path(), RS).unwrap();
        assert!(created.is_empty());
        assert_eq!(
            again.keys[0].kid, file.keys[0].kid,
            "a second start reuses the set"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(KeyFile::path_in(dir.path()))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_newly_configured_algorithm_gets_its_keys_and_the_old_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let (before, _) = KeyFile::load_or_create(dir.path(), RS).unwrap();
        let all = &[Algorithm::Rs256, Algorithm::Es256, Algorithm::EdDsa];
        let (after, created) = KeyFile::load_or_create(dir.path(), all).unwrap();
        assert_eq!(created, vec![Algorithm::Es256, Algorithm::EdDsa]);
        assert_eq!(
            after.keys[..2].iter().map(|k| &k.kid).collect::<Vec<_>>(),
            before.keys.iter().map(|k| &k.kid).collect::<Vec<_>>()
        );
        for alg in all {
            assert_eq!(after.count(*alg, KeyState::Active), 1, "{alg}");
            assert_eq!(after.count(*alg, KeyState::Next), 1, "{alg}");
        }
    }

    #[test]
    fn a_key_file_in_the_previous_format_loads() {
        // Exactly what the RS256-only version wrote: no revoked_at, pkcs8 always.
        let (a, der_a) = SigningKey::generate(Algorithm::Rs256).unwrap();
        let (n, der_n) = SigningKey::generate(Algorithm::Rs256).unwrap();
        let text = format!(
            r#"{{
  "keys": [
    {{"kid": "{}", "alg": "RS256", "state": "active", "created_at": 1700000000,
      "activated_at": 1700000000, "pkcs8": "{}"}},
    {{"kid": "{}", "alg": "RS256", "state": "next", "created_at": 1700000000,
      "pkcs8": "{}"}}
  ]
}}"#,
            a.kid(),
            STANDARD.encode(der_a),
            n.kid(),
            STANDARD.encode(der_n)
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(KeyFile::path_in(dir.path()), text).unwrap();
        let (file, created) = KeyFile::load_or_create(dir.path(), RS).unwrap();
        assert!(created.is_empty());
        assert_eq!(
            file.find(Algorithm::Rs256, KeyState::Active).unwrap().kid,
            a.kid()
        );
        assert_eq!(
            file.find(Algorithm::Rs256, KeyState::Next).unwrap().kid,
            n.kid()
        );
    }

    #[test]
    fn a_file_without_new_features_is_written_in_the_previous_format() {
        // So a server of the previous version can still read it mid-upgrade.
        let dir = tempfile::tempdir().unwrap();
        KeyFile::load_or_create(dir.path(), RS).unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(KeyFile::path_in(dir.path())).unwrap()).unwrap();
        for key in json["keys"].as_array().unwrap() {
            let mut fields: Vec<_> = key.as_object().unwrap().keys().cloned().collect();
            fields.retain(|f| {
                !["kid", "alg", "state", "created_at", "activated_at", "pkcs8"]
                    .contains(&f.as_str())
            });
            assert!(fields.is_empty(), "{fields:?}");
        }
    }

    #[test]
    fn a_truncated_key_file_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        KeyFile::load_or_create(dir.path(), RS).unwrap();
        let path = KeyFile::path_in(dir.path());
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, &text[..text.len() / 2]).unwrap();
        let e = KeyFile::load_or_create(dir.path(), RS)
            .unwrap_err()
            .to_string();
        assert!(e.contains(&path.display().to_string()), "{e}");
        assert!(e.contains("not a valid key set"), "{e}");
    }

    #[test]
    fn a_damaged_private_key_is_an_error_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let (file, _) = KeyFile::load_or_create(dir.path(), RS).unwrap();
        let path = KeyFile::path_in(dir.path());
        let mut json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        json["keys"][1]["pkcs8"] = "AAAA".into();
        std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
        let e = KeyFile::load(&path).unwrap_err().to_string();
        assert!(
            e.contains(&file.keys[1].kid) && e.contains("keyset.json"),
            "{e}"
        );
    }

    #[test]
    fn two_active_keys_of_one_algorithm_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        KeyFile::load_or_create(dir.path(), RS).unwrap();
        let path = KeyFile::path_in(dir.path());
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("\"next\"", "\"active\"");
        std::fs::write(&path, text).unwrap();
        let e = KeyFile::load(&path).unwrap_err().to_string();
        assert!(e.contains("2 RS256 keys are \"active\""), "{e}");
    }

    #[test]
    fn a_change_that_fails_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        KeyFile::load_or_create(dir.path(), RS).unwrap();
        let path = KeyFile::path_in(dir.path());
        let before = std::fs::read(&path).unwrap();
        let result = KeyFile::update(dir.path(), RS, |f| {
            f.keys.clear();
            Err::<(), _>("failed half-way")
        });
        assert!(result.unwrap_err().to_string().contains("failed half-way"));
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    #[test]
    fn a_revoked_record_keeps_no_private_key_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        KeyFile::update(dir.path(), RS, |f| {
            f.keys[1].revoke(5);
            Ok::<_, String>(())
        })
        .unwrap();
        let path = KeyFile::path_in(dir.path());
        let text = std::fs::read_to_string(&path).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(json["keys"][1].get("pkcs8").is_none(), "{text}");
        assert_eq!(json["keys"][1]["state"], "revoked");
        let file = KeyFile::load(&path).unwrap();
        assert!(file.keys[1].to_signing_key().unwrap().is_none());
    }

    #[test]
    fn writers_wait_for_each_other() {
        let dir = tempfile::tempdir().unwrap();
        KeyFile::load_or_create(dir.path(), RS).unwrap();
        let held = FileLock::acquire(dir.path()).unwrap();
        let d = dir.path().to_path_buf();
        let started = Instant::now();
        let writer = std::thread::spawn(move || {
            KeyFile::update(&d, RS, |_| Ok::<_, String>(())).map(|_| started.elapsed())
        });
        std::thread::sleep(Duration::from_millis(300));
        drop(held);
        let waited = writer.join().unwrap().unwrap();
        assert!(waited >= Duration::from_millis(300), "{waited:?}");
    }
}
