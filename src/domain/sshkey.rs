//! Parsing of OpenSSH public keys as users paste them, and the ed25519 key files Scalefog keeps
//! (its SSH host key, its key for `ssh://` nodes). Uses the `ssh-key` crate as re-exported by
//! russh (pinning it ourselves would fight russh's pin); nothing else of russh is used here.

use super::Error;
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::ssh_key::{self, Algorithm, HashAlg, LineEnding, PrivateKey, public::KeyData};
use std::path::Path;

/// A user's public key, checked to be of an accepted type and strength.
#[derive(Debug, Clone)]
pub struct ParsedKey {
    pub fingerprint: String,
    pub algorithm: String,
    pub public_key: String,
    pub comment: String,
}

/// RSA keys shorter than this are refused (NIST SP 800-131A).
const MIN_RSA_BITS: usize = 2048;

pub fn parse(text: &str) -> Result<ParsedKey, Error> {
    let text = text.trim();
    if text.is_empty() {
        return Err(Error::missing("sshkey"));
    }
    if text.contains("PRIVATE KEY") {
        return Err(Error::invalid(
            "sshkey",
            "that is a private key; paste the public key (the .pub file) instead",
        ));
    }
    let key = ssh_key::PublicKey::from_openssh(text).map_err(|_| {
        Error::invalid(
            "sshkey",
            "sshkey is not an OpenSSH public key (expected e.g. 'ssh-ed25519 AAAA... you@host')",
        )
    })?;
    match key.key_data() {
        KeyData::Ed25519(_) | KeyData::Ecdsa(_) => {}
        KeyData::Rsa(rsa) => {
            let n = rsa.n().as_positive_bytes().unwrap_or(&[]);
            let bits = n.len() * 8 - n.first().map_or(8, |b| b.leading_zeros() as usize);
            if bits < MIN_RSA_BITS {
                return Err(Error::invalid(
                    "sshkey",
                    format!("RSA keys must have at least {MIN_RSA_BITS} bits; this one has {bits}"),
                ));
            }
        }
        _ => {
            return Err(Error::invalid(
                "sshkey",
                "unsupported key type; use ssh-ed25519, ecdsa-sha2-nistp256/384/521 or ssh-rsa",
            ));
        }
    }
    let algorithm = match key.algorithm() {
        Algorithm::Rsa { .. } => "ssh-rsa".to_string(),
        other => other.as_str().to_string(),
    };
    let comment = key.comment().to_string();
    let mut bare = key.clone();
    bare.set_comment("");
    let public_key = bare
        .to_openssh()
        .map_err(Error::internal)?
        .trim()
        .to_string();
    Ok(ParsedKey {
        fingerprint: key.fingerprint(HashAlg::Sha256).to_string(),
        algorithm,
        public_key,
        comment,
    })
}

/// The ed25519 key kept at `path` (OpenSSH format, 0600, its public half beside it as `.pub`, as
/// ssh-keygen leaves them): read when it exists, created once otherwise. `what` names it in
/// errors; `comment` goes into a new key's public line.
pub fn ed25519_key_file(path: &Path, what: &str, comment: &str) -> Result<PrivateKey, Error> {
    if path.exists() {
        return PrivateKey::read_openssh_file(path).map_err(|e| {
            Error::internal(format!("cannot read the {what} {}: {e}", path.display()))
        });
    }
    let seed: [u8; 32] = rand::random();
    let mut key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
    key.set_comment(comment);
    let text = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| Error::internal(format!("encoding the {what}: {e}")))?;
    crate::fsutil::write_private(path, text.as_bytes())?;
    let public = key
        .public_key()
        .to_openssh()
        .map_err(|e| Error::internal(format!("encoding the {what}: {e}")))?;
    let pub_path = path.with_extension("pub");
    let _ = std::fs::remove_file(&pub_path);
    std::fs::write(&pub_path, format!("{public}\n"))
        .map_err(|e| Error::internal(format!("writing {}: {e}", pub_path.display())))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGtWL9PlI35LBvY62K+96R154ODZfUcsGMn14ZnfloqQ alice@laptop";
    // A 1024-bit RSA key: well formed, too weak.
    const RSA1024: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQCip6TupcRark+Yb6u0yphAGvSJzQBoJu3dKzYFzjYJ0idyrYlgCC3w6m65EGve2MyHUu0E4qoAHuqG648zcg1BBrWUAm3i1XKP/Ny6FjPtn4ZTv/mhlrMf+qrU0uHNrIIoFWyhu1c7fvTT1CvPWmPpkUs1PjJncOStExnlXZRN2Q== bob";

    #[test]
    fn an_ed25519_key_parses_with_its_sha256_fingerprint_and_comment() {
        let k = parse(ED25519).unwrap();
        assert_eq!(k.algorithm, "ssh-ed25519");
        assert!(k.fingerprint.starts_with("SHA256:"), "{}", k.fingerprint);
        assert_eq!(k.comment, "alice@laptop");
        assert!(!k.public_key.contains("alice"));
    }

    #[test]
    fn the_same_key_with_another_comment_has_the_same_fingerprint() {
        let a = parse(ED25519).unwrap();
        let b = parse(&ED25519.replace("alice@laptop", "other")).unwrap();
        assert_eq!(a.fingerprint, b.fingerprint);
    }

    #[test]
    fn garbage_private_keys_and_short_rsa_keys_are_refused() {
        assert!(matches!(parse(""), Err(Error::Missing { .. })));
        for bad in [
            "",
            "hello",
            "ssh-ed25519 notbase64",
            "-----BEGIN OPENSSH PRIVATE KEY-----",
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.field(), Some("sshkey"), "{bad:?}: {e:?}");
        }
        let err = parse(RSA1024).unwrap_err().to_string();
        assert!(err.contains("2048"), "{err}");
    }
}
