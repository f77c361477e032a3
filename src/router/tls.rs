//! TLS for the router's `https_listen`: a certificate per domain, chosen by SNI.
//!
//! Certificates come from `tls_dir`: one directory per name holding `fullchain.pem` (the
//! certificate, then its chain) and `privkey.pem` (certbot's layout). A directory named
//! `_.example.com` (or `*.example.com`) holds a wildcard for `*.example.com`, e.g. every app
//! under the platform domain. Certificates can also be added while running
//! ([`CertStore::insert_pem`]), which is where ACME-issued ones go.

use crate::locks;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

/// The certificate file in a domain's directory.
pub const CERT_FILE: &str = "fullchain.pem";
/// The private key file in a domain's directory.
pub const KEY_FILE: &str = "privkey.pem";

/// Certificates by name: exact names, and `*.suffix` for wildcards.
#[derive(Debug)]
pub struct CertStore {
    provider: Arc<CryptoProvider>,
    by_name: RwLock<HashMap<String, Certificate>>,
}

/// A certificate and its key, checked to go together, not yet serving any name.
#[derive(Debug, Clone)]
pub struct Certificate {
    key: Arc<CertifiedKey>,
    /// The end of the leaf certificate's validity.
    not_after: SystemTime,
}

impl Default for CertStore {
    fn default() -> Self {
        CertStore {
            provider: Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
            by_name: RwLock::default(),
        }
    }
}

impl CertStore {
    /// Loads every `<name>/fullchain.pem` + `<name>/privkey.pem` under `dir`. A missing
    /// directory is an empty store, an unreadable directory an error. A pair that cannot be
    /// used (unreadable, or the key not the certificate's) is logged and skipped: one broken
    /// domain must not keep every other app off HTTPS.
    pub fn load_dir(dir: &Path) -> anyhow::Result<CertStore> {
        let store = CertStore::default();
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(store),
            Err(e) => anyhow::bail!("cannot read tls_dir {}: {e}", dir.display()),
        };
        for entry in entries {
            let entry = entry?;
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().to_string();
            let (cert, key) = (path.join(CERT_FILE), path.join(KEY_FILE));
            if !cert.exists() || !key.exists() {
                tracing::warn!(dir = %path.display(), "skipping a tls_dir entry without {CERT_FILE} and {KEY_FILE}");
                continue;
            }
            let loaded = std::fs::read(&cert)
                .and_then(|c| Ok((c, std::fs::read(&key)?)))
                .map_err(anyhow::Error::from)
                .and_then(|(cert, key)| store.insert_pem(&name, &cert, &key));
            if let Err(e) = loaded {
                tracing::error!(dir = %path.display(), error = %e, "skipping an unusable certificate");
            }
        }
        Ok(store)
    }

    /// Adds (or replaces) the certificate for `name` (`example.org`, or `*.example.org` /
    /// `_.example.org` for a wildcard) from PEM text.
    pub fn insert_pem(&self, name: &str, cert_pem: &[u8], key_pem: &[u8]) -> anyhow::Result<()> {
        let certificate = self.parse_pem(cert_pem, key_pem)?;
        self.insert(name, certificate);
        Ok(())
    }

    /// Checks a certificate chain and its key from PEM text without serving them yet, so a
    /// caller can save them first and serve only what a restart would load again.
    pub fn parse_pem(&self, cert_pem: &[u8], key_pem: &[u8]) -> anyhow::Result<Certificate> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow::anyhow!("bad certificate PEM: {e:?}"))?;
        anyhow::ensure!(!chain.is_empty(), "no certificate in the PEM");
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| anyhow::anyhow!("bad private key PEM: {e:?}"))?;
        let not_after = not_after(&chain[0])?;
        let certified = CertifiedKey::from_der(chain, key, &self.provider)
            .map_err(|e| anyhow::anyhow!("certificate and key do not go together: {e}"))?;
        Ok(Certificate {
            key: Arc::new(certified),
            not_after,
        })
    }

    /// Serves a checked certificate for `name` from now on.
    pub fn insert(&self, name: &str, certificate: Certificate) {
        let mut name = name.trim().trim_end_matches('.').to_ascii_lowercase();
        if let Some(rest) = name.strip_prefix("_.") {
            name = format!("*.{rest}");
        }
        locks::write(&self.by_name).insert(name, certificate);
    }

    /// The certificate for a server name: exact match first, then a wildcard of its parent.
    pub fn find(&self, server_name: &str) -> Option<Arc<CertifiedKey>> {
        self.entry(server_name).map(|e| e.key)
    }

    /// When the certificate that would serve `server_name` stops being valid, if there is one.
    pub fn expires(&self, server_name: &str) -> Option<SystemTime> {
        self.entry(server_name).map(|e| e.not_after)
    }

    fn entry(&self, server_name: &str) -> Option<Certificate> {
        let name = server_name.trim_end_matches('.').to_ascii_lowercase();
        let map = locks::read(&self.by_name);
        map.get(&name).cloned().or_else(|| {
            let (_, parent) = name.split_once('.')?;
            map.get(&format!("*.{parent}")).cloned()
        })
    }

    pub fn len(&self) -> usize {
        locks::read(&self.by_name).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A rustls server configuration choosing from this store by SNI, speaking HTTP/1.1.
    pub fn server_config(self: &Arc<Self>) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// The end of a certificate's validity period.
fn not_after(cert: &CertificateDer<'_>) -> anyhow::Result<SystemTime> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert)
        .map_err(|e| anyhow::anyhow!("unreadable certificate: {e}"))?;
    let secs = parsed.validity().not_after.timestamp();
    Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0)))
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // Without SNI (an IP literal) there is no name to choose by: the handshake fails.
        self.find(hello.server_name()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str, days: i64) -> rcgen::KeyPair {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
        params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(days);
        let cert = params.self_signed(&key).unwrap();
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(CERT_FILE), cert.pem()).unwrap();
        std::fs::write(d.join(KEY_FILE), key.serialize_pem()).unwrap();
        key
    }

    #[test]
    fn loaded_certificates_report_when_they_expire() {
        let dir = tempfile::tempdir().unwrap();
        write_pair(dir.path(), "a.example.org", 10);
        let store = CertStore::load_dir(dir.path()).unwrap();
        let left = store
            .expires("A.example.org")
            .unwrap()
            .duration_since(SystemTime::now())
            .unwrap();
        assert!(left > Duration::from_secs(9 * 86400) && left <= Duration::from_secs(10 * 86400));
        assert_eq!(store.expires("b.example.org"), None);
    }

    #[test]
    fn a_pair_whose_key_is_not_the_certificates_is_skipped_and_the_others_load() {
        let dir = tempfile::tempdir().unwrap();
        write_pair(dir.path(), "good.example.org", 90);
        write_pair(dir.path(), "bad.example.org", 90);
        let other = rcgen::KeyPair::generate().unwrap();
        std::fs::write(
            dir.path().join("bad.example.org").join(KEY_FILE),
            other.serialize_pem(),
        )
        .unwrap();
        let store = CertStore::load_dir(dir.path()).unwrap();
        assert!(store.find("good.example.org").is_some());
        assert!(store.find("bad.example.org").is_none());
    }
}
