//! The key file: `keyset.json` in the key directory, written atomically
//! (temporary file, then rename) with mode 0600. One file for the whole set,
//! so a rotation either happens completely or not at all.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use super::signer::{Algorithm, SigningKey};

const FILE_NAME: &str = "keyset.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    Next,
    Active,
    Retired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Next => "next",
            KeyState::Active => "active",
            KeyState::Retired => "retired",
        }
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRecord {
    pub kid: String,
    pub alg: Algorithm,
    pub state: KeyState,
    /// Unix seconds.
    pub created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activated_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<i64>,
    /// PKCS#8 DER, base64. Never logged: `Debug` leaves it out.
    pkcs8: String,
}

impl std::fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRecord")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("state", &self.state)
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
            pkcs8: STANDARD.encode(der),
        })
    }

    pub fn to_signing_key(&self) -> Result<SigningKey, String> {
        let der = STANDARD
            .decode(&self.pkcs8)
            .map_err(|e| format!("private key is not base64: {e}"))?;
        let key = SigningKey::from_pkcs8(self.alg, &der)?;
        if key.kid() != self.kid {
            return Err(format!(
                "kid does not match the key's thumbprint ({})",
                key.kid()
            ));
        }
        Ok(key)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
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

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl KeyFile {
    pub fn path_in(dir: &Path) -> PathBuf {
        dir.join(FILE_NAME)
    }

    pub fn load(path: &Path) -> Result<KeyFile, KeyFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let file: KeyFile = serde_json::from_str(&text).map_err(|e| KeyFileError::Invalid {
            path: path.to_path_buf(),
            message: format!("not a valid key set ({e})"),
        })?;
        for record in &file.keys {
            record.to_signing_key().map_err(|m| KeyFileError::Invalid {
                path: path.to_path_buf(),
                message: format!("key {}: {m}", record.kid),
            })?;
        }
        Ok(file)
    }

    /// Loads the key set, or creates one (an active and a next key) when the
    /// directory has none. Creation cannot overwrite a set written meanwhile by
    /// another process: the file is linked into place only if absent.
    pub fn load_or_create(dir: &Path) -> Result<KeyFile, KeyFileError> {
        let path = Self::path_in(dir);
        if path.exists() {
            return Self::load(&path);
        }
        std::fs::create_dir_all(dir).map_err(|source| KeyFileError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let file = Self::generate_initial().map_err(|message| KeyFileError::Invalid {
            path: path.clone(),
            message,
        })?;
        let tmp = file.write_temp(dir)?;
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(file),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::load(&path),
            Err(source) => Err(KeyFileError::Io { path, source }),
        }
    }

    fn generate_initial() -> Result<KeyFile, String> {
        let t = now();
        Ok(KeyFile {
            keys: vec![
                KeyRecord::generate(Algorithm::Rs256, KeyState::Active, t)?,
                KeyRecord::generate(Algorithm::Rs256, KeyState::Next, t)?,
            ],
        })
    }

    /// The `next` key starts signing, the `active` one retires (still
    /// published), and a fresh `next` is published for the rotation after.
    pub fn rotate(&mut self) -> Result<(), String> {
        let t = now();
        let alg = self
            .keys
            .iter()
            .find(|k| k.state == KeyState::Active)
            .map(|k| k.alg)
            .unwrap_or(Algorithm::Rs256);
        let next_index = self
            .keys
            .iter()
            .position(|k| k.state == KeyState::Next && k.alg == alg);
        let fresh_next = KeyRecord::generate(alg, KeyState::Next, t)?;
        let promoted = match next_index {
            Some(i) => i,
            None => {
                // No published successor: the new key signs at once.
                self.keys.push(KeyRecord::generate(alg, KeyState::Next, t)?);
                self.keys.len() - 1
            }
        };
        for k in &mut self.keys {
            if k.state == KeyState::Active && k.alg == alg {
                k.state = KeyState::Retired;
                k.retired_at = Some(t);
            }
        }
        let p = &mut self.keys[promoted];
        p.state = KeyState::Active;
        p.activated_at = Some(t);
        self.keys.push(fresh_next);
        Ok(())
    }

    /// Writes the whole set atomically over the existing file.
    pub fn save(&self, dir: &Path) -> Result<(), KeyFileError> {
        let path = Self::path_in(dir);
        let tmp = self.write_temp(dir)?;
        std::fs::rename(&tmp, &path).map_err(|source| {
            let _ = std::fs::remove_file(&tmp);
            KeyFileError::Io { path, source }
        })
    }

    fn write_temp(&self, dir: &Path) -> Result<PathBuf, KeyFileError> {
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
        let json = serde_json::to_vec_pretty(self).expect("key file serializes");
        f.write_all(&json).and_then(|_| f.sync_all()).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io(e)
        })?;
        Ok(tmp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_start_creates_an_active_and_a_next_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = KeyFile::load_or_create(dir.path()).unwrap();
        let states: Vec<_> = file.keys.iter().map(|k| k.state).collect();
        assert_eq!(states, vec![KeyState::Active, KeyState::Next]);
        let again = KeyFile::load_or_create(dir.path()).unwrap();
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
    fn rotation_promotes_the_published_next_key() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = KeyFile::load_or_create(dir.path()).unwrap();
        let (old_active, old_next) = (file.keys[0].kid.clone(), file.keys[1].kid.clone());
        file.rotate().unwrap();
        file.save(dir.path()).unwrap();
        let file = KeyFile::load(&KeyFile::path_in(dir.path())).unwrap();
        let state_of = |kid: &str| file.keys.iter().find(|k| k.kid == kid).unwrap().state;
        assert_eq!(state_of(&old_active), KeyState::Retired);
        assert_eq!(state_of(&old_next), KeyState::Active);
        assert_eq!(
            file.keys
                .iter()
                .filter(|k| k.state == KeyState::Next)
                .count(),
            1
        );
    }

    #[test]
    fn a_truncated_key_file_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        KeyFile::load_or_create(dir.path()).unwrap();
        let path = KeyFile::path_in(dir.path());
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, &text[..text.len() / 2]).unwrap();
        let e = KeyFile::load_or_create(dir.path()).unwrap_err().to_string();
        assert!(e.contains("keyset.json"), "{e}");
    }
}
