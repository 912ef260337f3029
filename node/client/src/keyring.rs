//! Keyrings: named keys on disk under `<home>/keyring-<backend>/<name>.json`.
//!
//! * `test` — the mnemonic in clear JSON. For devnets, CI and throwaway keys only.
//! * `file` — the mnemonic sealed with ChaCha20-Poly1305 under a key stretched from the
//!   passphrase by scrypt (N = 2^15, r = 8, p = 1, 16-byte random salt, 12-byte random nonce).
//!   The address and public key stay readable so `keys list` needs no passphrase.
//!   A wrong passphrase fails the AEAD tag check and is reported as such.
//!
//! Files are written to a temp file, fsynced and renamed, with mode 0600 on Unix.

use crate::{ClientError, Key};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Which keyring backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyringBackend {
    /// Clear-text mnemonics (development only).
    Test,
    /// Passphrase-encrypted mnemonics.
    File,
}

impl std::str::FromStr for KeyringBackend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "test" => Ok(KeyringBackend::Test),
            "file" => Ok(KeyringBackend::File),
            other => Err(format!(
                "unknown keyring backend {other:?}: use test or file"
            )),
        }
    }
}

impl std::fmt::Display for KeyringBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyringBackend::Test => "test",
            KeyringBackend::File => "file",
        })
    }
}

/// What `keys list` shows about a key: no secrets.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyInfo {
    /// Key name.
    pub name: String,
    /// `magnet1…` address.
    pub address: String,
    /// Compressed secp256k1 public key, hex.
    pub pubkey: String,
}

#[derive(Serialize, Deserialize)]
struct Sealed {
    kdf: String,
    log_n: u8,
    r: u32,
    p: u32,
    salt: String,
    cipher: String,
    nonce: String,
    ciphertext: String,
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    #[serde(flatten)]
    info: KeyInfo,
    /// Clear mnemonic (test backend).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mnemonic: Option<String>,
    /// Sealed mnemonic (file backend).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sealed: Option<Sealed>,
}

/// Source of the passphrase for the `file` backend.
pub type PassphraseFn = Box<dyn Fn() -> Result<String, ClientError> + Send + Sync>;

/// A keyring directory with one backend.
pub struct Keyring {
    dir: PathBuf,
    backend: KeyringBackend,
    passphrase: PassphraseFn,
    log_n: u8,
}

/// The passphrase from `MAGNET_KEYRING_PASSPHRASE`, else one line read from stdin.
pub fn passphrase_from_env_or_stdin() -> Result<String, ClientError> {
    if let Ok(p) = std::env::var("MAGNET_KEYRING_PASSPHRASE") {
        if !p.is_empty() {
            return Ok(p);
        }
    }
    eprint!("keyring passphrase: ");
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| ClientError::io("reading passphrase from stdin", e))?;
    let p = line.trim_end_matches(['\r', '\n']).to_string();
    if p.is_empty() {
        return Err(ClientError::NoPassphrase);
    }
    Ok(p)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl Keyring {
    /// The keyring of `backend` under `home` (`<home>/keyring-<backend>`), asking for the
    /// passphrase (file backend) through `MAGNET_KEYRING_PASSPHRASE` or stdin.
    pub fn open(home: &Path, backend: KeyringBackend) -> Keyring {
        Keyring::with_passphrase(home, backend, Box::new(passphrase_from_env_or_stdin))
    }

    /// Like [`Keyring::open`] with an explicit passphrase source.
    pub fn with_passphrase(
        home: &Path,
        backend: KeyringBackend,
        passphrase: PassphraseFn,
    ) -> Keyring {
        Keyring {
            dir: home.join(format!("keyring-{backend}")),
            backend,
            passphrase,
            log_n: 15,
        }
    }

    /// Lower the scrypt cost (tests only; the default 2^15 takes ~0.1 s and 32 MiB).
    pub fn with_scrypt_log_n(mut self, log_n: u8) -> Keyring {
        self.log_n = log_n;
        self
    }

    /// The directory holding the key files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, name: &str) -> Result<PathBuf, ClientError> {
        if !valid_name(name) {
            return Err(ClientError::KeyName(name.to_string()));
        }
        Ok(self.dir.join(format!("{name}.json")))
    }

    /// Store `key` under `name`; fails if the name is taken.
    pub fn add(&self, name: &str, key: &Key) -> Result<KeyInfo, ClientError> {
        let path = self.path(name)?;
        if path.exists() {
            return Err(ClientError::KeyExists(name.to_string()));
        }
        let info = KeyInfo {
            name: name.to_string(),
            address: key.address().to_bech32(),
            pubkey: hex::encode(key.public_key_bytes()),
        };
        let file = match self.backend {
            KeyringBackend::Test => KeyFile {
                info: info.clone(),
                mnemonic: Some(key.mnemonic()),
                sealed: None,
            },
            KeyringBackend::File => {
                let pass = (self.passphrase)()?;
                KeyFile {
                    info: info.clone(),
                    mnemonic: None,
                    sealed: Some(seal(key.mnemonic().as_bytes(), &pass, self.log_n)?),
                }
            }
        };
        let json = serde_json::to_vec_pretty(&file).map_err(|e| ClientError::Format {
            what: "key file".into(),
            reason: e.to_string(),
        })?;
        write_private(&self.dir, &path, &json)?;
        Ok(info)
    }

    fn read(&self, name: &str) -> Result<KeyFile, ClientError> {
        let path = self.path(name)?;
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ClientError::KeyNotFound {
                    name: name.to_string(),
                    backend: self.backend.to_string(),
                    dir: self.dir.display().to_string(),
                })
            }
            Err(e) => return Err(ClientError::io(format!("reading {}", path.display()), e)),
        };
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Format {
            what: path.display().to_string(),
            reason: e.to_string(),
        })
    }

    /// Public info of key `name` (no passphrase needed).
    pub fn info(&self, name: &str) -> Result<KeyInfo, ClientError> {
        Ok(self.read(name)?.info)
    }

    /// The key `name`, decrypting it if needed.
    pub fn get(&self, name: &str) -> Result<Key, ClientError> {
        let file = self.read(name)?;
        let words = match (file.mnemonic, file.sealed) {
            (Some(m), _) => m,
            (None, Some(sealed)) => {
                let pass = (self.passphrase)()?;
                let plain = unseal(&sealed, &pass)
                    .map_err(|_| ClientError::WrongPassphrase(name.to_string()))?;
                String::from_utf8(plain)
                    .map_err(|_| ClientError::WrongPassphrase(name.to_string()))?
            }
            (None, None) => {
                return Err(ClientError::Format {
                    what: format!("key {name}"),
                    reason: "neither mnemonic nor sealed mnemonic present".into(),
                })
            }
        };
        let key = Key::from_mnemonic(&words)?;
        if key.address().to_bech32() != file.info.address {
            return Err(ClientError::Format {
                what: format!("key {name}"),
                reason: "stored address does not match the stored mnemonic".into(),
            });
        }
        Ok(key)
    }

    /// All keys, sorted by name.
    pub fn list(&self) -> Result<Vec<KeyInfo>, ClientError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => {
                return Err(ClientError::io(
                    format!("listing {}", self.dir.display()),
                    e,
                ))
            }
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| ClientError::io("listing keyring", e))?;
            let fname = entry.file_name().to_string_lossy().to_string();
            if let Some(name) = fname.strip_suffix(".json") {
                if valid_name(name) {
                    out.push(self.info(name)?);
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

fn derive(pass: &str, salt: &[u8], log_n: u8, r: u32, p: u32) -> Result<[u8; 32], ClientError> {
    let params =
        scrypt::Params::new(log_n, r, p, 32).map_err(|e| ClientError::Key(e.to_string()))?;
    let mut out = [0u8; 32];
    scrypt::scrypt(pass.as_bytes(), salt, &params, &mut out)
        .map_err(|e| ClientError::Key(e.to_string()))?;
    Ok(out)
}

fn seal(plain: &[u8], pass: &str, log_n: u8) -> Result<Sealed, ClientError> {
    use chacha20poly1305::aead::{Aead, KeyInit};
    use rand::RngCore;
    let mut salt = [0u8; 16];
    let mut nonce = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let key = derive(pass, &salt, log_n, 8, 1)?;
    let cipher = chacha20poly1305::ChaCha20Poly1305::new((&key).into());
    let ct = cipher
        .encrypt((&nonce).into(), plain)
        .map_err(|e| ClientError::Key(e.to_string()))?;
    Ok(Sealed {
        kdf: "scrypt".into(),
        log_n,
        r: 8,
        p: 1,
        salt: hex::encode(salt),
        cipher: "chacha20poly1305".into(),
        nonce: hex::encode(nonce),
        ciphertext: hex::encode(ct),
    })
}

fn unseal(s: &Sealed, pass: &str) -> Result<Vec<u8>, ClientError> {
    use chacha20poly1305::aead::{Aead, KeyInit};
    let bad = |what: &str| ClientError::Format {
        what: "sealed key".into(),
        reason: what.into(),
    };
    if s.kdf != "scrypt" || s.cipher != "chacha20poly1305" {
        return Err(bad("unknown kdf or cipher"));
    }
    let salt = hex::decode(&s.salt).map_err(|_| bad("salt"))?;
    let nonce: [u8; 12] = hex::decode(&s.nonce)
        .ok()
        .and_then(|n| n.try_into().ok())
        .ok_or_else(|| bad("nonce"))?;
    let ct = hex::decode(&s.ciphertext).map_err(|_| bad("ciphertext"))?;
    let key = derive(pass, &salt, s.log_n, s.r, s.p)?;
    let cipher = chacha20poly1305::ChaCha20Poly1305::new((&key).into());
    cipher
        .decrypt((&nonce).into(), ct.as_slice())
        .map_err(|_| bad("authentication tag mismatch"))
}

/// Write `bytes` to `path` atomically with owner-only permissions.
pub fn write_private(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), ClientError> {
    use std::io::Write;
    std::fs::create_dir_all(dir)
        .map_err(|e| ClientError::io(format!("creating {}", dir.display()), e))?;
    let tmp = path.with_extension("json.tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(&tmp)
        .map_err(|e| ClientError::io(format!("writing {}", tmp.display()), e))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| ClientError::io(format!("writing {}", tmp.display()), e))?;
    std::fs::rename(&tmp, path)
        .map_err(|e| ClientError::io(format!("renaming to {}", path.display()), e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(dir: &Path, backend: KeyringBackend, pass: &'static str) -> Keyring {
        Keyring::with_passphrase(dir, backend, Box::new(move || Ok(pass.to_string())))
            .with_scrypt_log_n(4)
    }

    #[test]
    fn file_keyring_round_trips_and_hides_the_mnemonic() {
        let dir = tempfile::tempdir().unwrap();
        let kr = ring(dir.path(), KeyringBackend::File, "correct horse");
        let key = Key::generate().unwrap();
        kr.add("alice", &key).unwrap();
        let raw = std::fs::read_to_string(kr.dir().join("alice.json")).unwrap();
        let first_word = key.mnemonic().split(' ').next().unwrap().to_string();
        assert!(
            !raw.contains(&key.mnemonic()),
            "mnemonic must not be stored in clear"
        );
        assert!(!raw.contains(&format!("\"{first_word} ")));
        assert_eq!(kr.get("alice").unwrap().address(), key.address());
        assert_eq!(kr.list().unwrap().len(), 1);
    }

    #[test]
    fn a_wrong_passphrase_is_reported_as_such() {
        let dir = tempfile::tempdir().unwrap();
        ring(dir.path(), KeyringBackend::File, "right")
            .add("bob", &Key::generate().unwrap())
            .unwrap();
        let err = ring(dir.path(), KeyringBackend::File, "wrong")
            .get("bob")
            .unwrap_err();
        assert!(
            matches!(err, ClientError::WrongPassphrase(ref n) if n == "bob"),
            "{err}"
        );
    }

    #[test]
    fn keyring_failure_modes_have_their_own_errors() {
        let dir = tempfile::tempdir().unwrap();
        let kr = ring(dir.path(), KeyringBackend::Test, "");
        let key = Key::generate().unwrap();
        kr.add("carol", &key).unwrap();
        let cases: Vec<(&str, Result<KeyInfo, ClientError>)> = vec![
            ("duplicate", kr.add("carol", &key)),
            ("path traversal", kr.add("../evil", &key)),
            ("empty name", kr.add("", &key)),
            ("missing", kr.info("dave")),
        ];
        for (what, res) in cases {
            let err = res.unwrap_err();
            let ok = match what {
                "duplicate" => matches!(err, ClientError::KeyExists(_)),
                "path traversal" | "empty name" => matches!(err, ClientError::KeyName(_)),
                "missing" => matches!(err, ClientError::KeyNotFound { .. }),
                _ => false,
            };
            assert!(ok, "{what}: {err}");
        }
    }
}
