//! TLS for the router's `https_listen`: a certificate per domain, chosen by SNI.
//!
//! Certificates come from `tls_dir`: one directory per name holding `fullchain.pem` (the
//! certificate, then its chain) and `privkey.pem` (certbot's layout). A directory named
//! `_.example.com` (or `*.example.com`) holds a wildcard for `*.example.com`, e.g. every app
//! under the platform domain. Certificates can also be added while running
//! ([`CertStore::insert_pem`]), which is where ACME-issued ones go.

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

/// The certificate file in a domain's directory.
pub const CERT_FILE: &str = "fullchain.pem";
/// The private key file in a domain's directory.
pub const KEY_FILE: &str = "privkey.pem";

/// Certificates by name: exact names, and `*.suffix` for wildcards.
#[derive(Debug)]
pub struct CertStore {
    provider: Arc<CryptoProvider>,
    by_name: RwLock<HashMap<String, Arc<CertifiedKey>>>,
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
    /// directory is an empty store; an unreadable or mismatched pair is an error naming it.
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
            let cert = std::fs::read(&cert)?;
            let key = std::fs::read(&key)?;
            store
                .insert_pem(&name, &cert, &key)
                .map_err(|e| anyhow::anyhow!("certificate in {}: {e}", path.display()))?;
        }
        Ok(store)
    }

    /// Adds (or replaces) the certificate for `name` (`example.org`, or `*.example.org` /
    /// `_.example.org` for a wildcard) from PEM text.
    pub fn insert_pem(&self, name: &str, cert_pem: &[u8], key_pem: &[u8]) -> anyhow::Result<()> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow::anyhow!("bad certificate PEM: {e:?}"))?;
        anyhow::ensure!(!chain.is_empty(), "no certificate in the PEM");
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| anyhow::anyhow!("bad private key PEM: {e:?}"))?;
        let certified = CertifiedKey::from_der(chain, key, &self.provider)
            .map_err(|e| anyhow::anyhow!("certificate and key do not go together: {e}"))?;
        let mut name = name.trim().trim_end_matches('.').to_ascii_lowercase();
        if let Some(rest) = name.strip_prefix("_.") {
            name = format!("*.{rest}");
        }
        self.by_name
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name, Arc::new(certified));
        Ok(())
    }

    /// The certificate for a server name: exact match first, then a wildcard of its parent.
    pub fn find(&self, server_name: &str) -> Option<Arc<CertifiedKey>> {
        let name = server_name.trim_end_matches('.').to_ascii_lowercase();
        let map = self.by_name.read().unwrap_or_else(|p| p.into_inner());
        map.get(&name).cloned().or_else(|| {
            let (_, parent) = name.split_once('.')?;
            map.get(&format!("*.{parent}")).cloned()
        })
    }

    pub fn len(&self) -> usize {
        self.by_name.read().unwrap_or_else(|p| p.into_inner()).len()
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

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // Without SNI (an IP literal) there is no name to choose by: the handshake fails.
        self.find(hello.server_name()?)
    }
}
