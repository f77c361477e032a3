//! Sealing secrets at rest: values the store keeps but must not hold in clear text (config vars,
//! registry credentials) are encrypted with XChaCha20-Poly1305 under a 256-bit key kept in a file
//! of the data dir (`secrets.key`, mode 0600, created at first start, part of backups).
//!
//! A sealed value is `sf1:` + base64url(24-byte nonce ‖ ciphertext ‖ tag). Each seal draws a
//! fresh random nonce, which XChaCha's 192-bit nonces make safe without a counter. The caller's
//! `context` (say `env:myapp:DATABASE_URL`) is bound as associated data, so a sealed value copied
//! into another field or app fails to open instead of decrypting there.

use crate::domain::{Error, Result};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use std::path::Path;
use std::sync::Arc;

const PREFIX: &str = "sf1:";
const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;

/// Seals and opens values under the installation's key. Cheap to clone.
#[derive(Clone)]
pub struct Sealer {
    cipher: Arc<XChaCha20Poly1305>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    /// Reads the key file, or creates it (0600, written to a temporary name then renamed, so a
    /// crash never leaves a half-written key) when it does not exist yet.
    pub fn load_or_create(path: &Path) -> Result<Sealer> {
        let key = match std::fs::read(path) {
            Ok(bytes) => decode_key(&bytes).ok_or_else(|| {
                Error::internal(format!(
                    "{} is not a secrets key (64 hex characters expected)",
                    path.display()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; KEY_LEN];
                rand::rng().fill_bytes(&mut key);
                let tmp = path.with_extension("key.tmp");
                let _ = std::fs::remove_file(&tmp);
                crate::fsutil::write_private(&tmp, format!("{}\n", hex::encode(key)).as_bytes())?;
                std::fs::rename(&tmp, path).map_err(|e| {
                    Error::internal(format!("cannot write {}: {e}", path.display()))
                })?;
                key
            }
            Err(e) => {
                return Err(Error::internal(format!(
                    "cannot read {}: {e}",
                    path.display()
                )));
            }
        };
        Ok(Sealer::from_key(&key))
    }

    pub fn from_key(key: &[u8; KEY_LEN]) -> Sealer {
        Sealer {
            cipher: Arc::new(XChaCha20Poly1305::new(key.into())),
        }
    }

    /// Encrypts `plain`, bound to `context`.
    pub fn seal(&self, context: &str, plain: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            // Encryption fails only for messages beyond 256 GiB.
            .expect("XChaCha20-Poly1305 encryption of an in-memory value");
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(out))
    }

    /// Decrypts a value made by [`Sealer::seal`] with the same `context`.
    pub fn open(&self, context: &str, sealed: &str) -> Result<String> {
        let broken = || Error::internal(format!("a sealed value of {context} cannot be opened"));
        let raw = sealed
            .strip_prefix(PREFIX)
            .and_then(|b| URL_SAFE_NO_PAD.decode(b).ok())
            .filter(|raw| raw.len() >= NONCE_LEN)
            .ok_or_else(broken)?;
        let (nonce, body) = raw.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| broken())?;
        let plain = self
            .cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: body,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| broken())?;
        String::from_utf8(plain).map_err(|_| broken())
    }

    /// Whether `value` has the shape of a sealed value (for migrating clear values).
    pub fn is_sealed(value: &str) -> bool {
        value.starts_with(PREFIX)
    }
}

fn decode_key(bytes: &[u8]) -> Option<[u8; KEY_LEN]> {
    let text = std::str::from_utf8(bytes).ok()?.trim();
    let raw = hex::decode(text).ok()?;
    raw.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_context() {
        let s = Sealer::from_key(&[7; 32]);
        let sealed = s.seal("env:app:KEY", "hunter2");
        assert!(Sealer::is_sealed(&sealed));
        assert!(!sealed.contains("hunter2"));
        assert_eq!(s.open("env:app:KEY", &sealed).unwrap(), "hunter2");
        assert!(s.open("env:other:KEY", &sealed).is_err());
        assert!(
            Sealer::from_key(&[8; 32])
                .open("env:app:KEY", &sealed)
                .is_err()
        );
        assert_ne!(
            sealed,
            s.seal("env:app:KEY", "hunter2"),
            "fresh nonce each time"
        );
        assert!(s.open("env:app:KEY", "sf1:!!").is_err());
        assert!(s.open("env:app:KEY", "clear").is_err());
    }

    #[test]
    fn the_key_file_is_created_private_once_and_then_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("sf-seal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secrets.key");
        let _ = std::fs::remove_file(&path);
        let a = Sealer::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = Sealer::load_or_create(&path).unwrap();
        assert_eq!(b.open("c", &a.seal("c", "v")).unwrap(), "v");
        std::fs::write(&path, "short").unwrap();
        assert!(Sealer::load_or_create(&path).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
