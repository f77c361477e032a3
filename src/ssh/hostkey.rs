//! The server's ed25519 host key: generated once into the data dir (0600) and reused, so
//! clients' `known_hosts` entries stay valid across restarts.

use crate::domain::Result;
use crate::domain::sshkey::{self, ParsedKey};
use russh::keys::ssh_key::{HashAlg, PrivateKey};
use std::path::Path;

pub const FILE_NAME: &str = "ssh_host_ed25519_key";

/// Loads the key at `path`, creating it when absent.
pub fn load_or_create(path: &Path) -> Result<PrivateKey> {
    sshkey::ed25519_key_file(path, "SSH host key", "")
}

/// The public half, as the API and console show it.
pub fn describe(key: &PrivateKey) -> ParsedKey {
    let public = key.public_key();
    ParsedKey {
        fingerprint: public.fingerprint(HashAlg::Sha256).to_string(),
        algorithm: public.algorithm().as_str().to_string(),
        public_key: public.to_openssh().unwrap_or_default(),
        comment: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_created_private_once_and_then_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let a = describe(&load_or_create(&path).unwrap());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = describe(&load_or_create(&path).unwrap());
        assert_eq!(a.fingerprint, b.fingerprint);
        assert!(a.fingerprint.starts_with("SHA256:"));
        assert_eq!(a.algorithm, "ssh-ed25519");
    }

    #[test]
    fn a_corrupt_key_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, "garbage").unwrap();
        let e = load_or_create(&path).unwrap_err().to_string();
        assert!(e.contains("SSH host key"), "{e}");
    }
}
