//! Automatic certificates (`acme_email`): every host the router serves — `<app>.<domain>` and
//! each custom domain — gets a certificate from an ACME CA (RFC 8555, Let's Encrypt by default)
//! by the http-01 challenge, which the router itself answers ([`crate::router::acme`]). Each
//! certificate is renewed 30 days before it expires.
//!
//! Certificates are written to `tls_dir` in certbot's layout (`<name>/fullchain.pem`,
//! `<name>/privkey.pem`), where a restart loads them, and only then put into the running
//! [`CertStore`], so no certificate is served that a restart would not load again. A name
//! already covered by a valid certificate (a file of the operator's, a wildcard) is left alone
//! until that certificate nears its end. The ACME
//! account's key is kept in `data_dir/acme-account.json` (0600).
//!
//! The CA must reach the router on port 80 of a public DNS name that points at this host, so
//! names under `localhost` and IP addresses are skipped. A failed order is retried with a
//! growing delay (5 minutes, doubling up to 12 hours) so as to stay within the CA's limits.

use crate::config::Acme;
use crate::router::acme::Challenges;
use crate::router::tls::{CERT_FILE, CertStore, KEY_FILE};
use crate::routing::RouteTable;
use anyhow::{Context, anyhow, bail};
use hyper::http;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, BodyWrapper, BytesResponse, ChallengeType,
    HttpClient, Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// A certificate is renewed when it has less than this left.
pub const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);
/// How often certificates are looked at when no route changes.
const RECHECK: Duration = Duration::from_secs(12 * 3600);
const FIRST_RETRY: Duration = Duration::from_secs(5 * 60);
const LAST_RETRY: Duration = Duration::from_secs(12 * 3600);

/// Obtains and renews the router's certificates; see the module docs.
pub struct CertManager {
    settings: Acme,
    certs: Arc<CertStore>,
    challenges: Challenges,
    routes: RouteTable,
    domain: String,
    tls_dir: PathBuf,
    account_path: PathBuf,
}

/// The account file: credentials are only good for the directory that issued them.
#[derive(Serialize, Deserialize)]
struct StoredAccount {
    directory: String,
    credentials: AccountCredentials,
}

impl CertManager {
    pub fn new(
        settings: Acme,
        certs: Arc<CertStore>,
        challenges: Challenges,
        routes: RouteTable,
        domain: &str,
        tls_dir: &Path,
        data_dir: &Path,
    ) -> CertManager {
        CertManager {
            settings,
            certs,
            challenges,
            routes,
            domain: domain.to_string(),
            tls_dir: tls_dir.to_path_buf(),
            account_path: data_dir.join("acme-account.json"),
        }
    }

    /// Works until the task is aborted: on start, on every route change and twice a day, it
    /// orders a certificate for each host that needs one.
    pub async fn run(self) {
        let mut changes = self.routes.subscribe();
        let mut account: Option<Account> = None;
        // name → (not before, last delay) for names whose order failed
        let mut retry: HashMap<String, (Instant, Duration)> = HashMap::new();
        tracing::info!(directory = %self.settings.directory, "automatic certificates are on");
        loop {
            changes.mark_unchanged();
            for name in self.wanted() {
                if !needs_certificate(self.certs.expires(&name), SystemTime::now()) {
                    retry.remove(&name);
                    continue;
                }
                if retry.get(&name).is_some_and(|(at, _)| Instant::now() < *at) {
                    continue;
                }
                match self.obtain(&mut account, &name).await {
                    Ok(()) => {
                        retry.remove(&name);
                        tracing::info!(host = %name, "certificate obtained");
                    }
                    Err(e) => {
                        let delay = retry
                            .get(&name)
                            .map_or(FIRST_RETRY, |(_, d)| (*d * 2).min(LAST_RETRY));
                        tracing::warn!(host = %name, error = %format!("{e:#}"), retry_in_secs = delay.as_secs(), "cannot obtain a certificate");
                        retry.insert(name, (Instant::now() + delay, delay));
                    }
                }
            }
            let wake = retry
                .values()
                .map(|(at, _)| *at)
                .fold(Instant::now() + RECHECK, Instant::min);
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// The hosts the router serves that a public CA can validate.
    fn wanted(&self) -> Vec<String> {
        self.routes
            .hosts(&self.domain)
            .into_iter()
            .filter(|h| acme_can_validate(h))
            .collect()
    }

    /// The account, created (and saved) on first use.
    async fn account(&self, cached: &mut Option<Account>) -> anyhow::Result<Account> {
        if let Some(a) = cached {
            return Ok(a.clone());
        }
        let http = AcmeHttp::new(self.settings.ca_file.as_deref())?;
        let builder = || Account::builder_with_http(Box::new(http.clone()));
        let stored = std::fs::read(&self.account_path)
            .ok()
            .and_then(|b| serde_json::from_slice::<StoredAccount>(&b).ok())
            .filter(|s| s.directory == self.settings.directory);
        let account = match stored {
            Some(s) => builder()
                .from_credentials(s.credentials)
                .await
                .context("restoring the ACME account")?,
            None => {
                let contact = format!("mailto:{}", self.settings.email);
                let (account, credentials) = builder()
                    .create(
                        &NewAccount {
                            contact: &[&contact],
                            terms_of_service_agreed: true,
                            only_return_existing: false,
                        },
                        self.settings.directory.clone(),
                        None,
                    )
                    .await
                    .with_context(|| {
                        format!("creating an ACME account at {}", self.settings.directory)
                    })?;
                let text = serde_json::to_vec_pretty(&StoredAccount {
                    directory: self.settings.directory.clone(),
                    credentials,
                })?;
                replace_private(&self.account_path, &text)?;
                tracing::info!(id = %account.id(), "ACME account created");
                account
            }
        };
        *cached = Some(account.clone());
        Ok(account)
    }

    /// One order for `name`: challenge, validation, key, certificate, files, store.
    async fn obtain(&self, cached: &mut Option<Account>, name: &str) -> anyhow::Result<()> {
        let account = self.account(cached).await?;
        let identifiers = [Identifier::Dns(name.to_string())];
        let mut order = account
            .new_order(&NewOrder::new(&identifiers))
            .await
            .context("new order")?;
        let mut published = Published {
            challenges: &self.challenges,
            tokens: Vec::new(),
        };
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz.context("authorization")?;
            match authz.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => bail!("authorization is {other:?}"),
            }
            let mut challenge = authz
                .challenge(ChallengeType::Http01)
                .ok_or_else(|| anyhow!("the CA offers no http-01 challenge"))?;
            self.challenges
                .insert(&challenge.token, challenge.key_authorization().as_str());
            published.tokens.push(challenge.token.clone());
            challenge.set_ready().await.context("challenge")?;
        }
        let retries = RetryPolicy::new().timeout(Duration::from_secs(90));
        let status = order.poll_ready(&retries).await.context("validation")?;
        drop(published);
        if status != OrderStatus::Ready {
            bail!(
                "the CA could not validate http://{name}/.well-known/acme-challenge/ (order {status:?})"
            );
        }
        let key_pem = order.finalize().await.context("finalize")?;
        let chain_pem = order
            .poll_certificate(&retries)
            .await
            .context("certificate")?;
        let issued = self
            .certs
            .parse_pem(chain_pem.as_bytes(), key_pem.as_bytes())
            .context("the issued certificate")?;
        // Saved before it is served: a certificate clients have seen is one a restart loads.
        let dir = self.tls_dir.join(name);
        tokio::task::spawn_blocking(move || save(&dir, &chain_pem, &key_pem)).await??;
        self.certs.insert(name, issued);
        Ok(())
    }
}

/// The ACME client's HTTPS: a new connection per request (a certificate takes a handful),
/// with the rustls and hyper the router already has, rather than a second HTTP stack.
#[derive(Clone)]
struct AcmeHttp {
    tls: tokio_rustls::TlsConnector,
}

/// Time limits of one request to the CA: connecting (with TLS), and the answer.
const CA_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const CA_ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

impl AcmeHttp {
    /// Trusts only `ca_file` when given (a private CA), else the public web roots.
    fn new(ca_file: Option<&Path>) -> anyhow::Result<AcmeHttp> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        match ca_file {
            Some(path) => {
                for cert in CertificateDer::pem_file_iter(path)
                    .with_context(|| format!("acme_ca_file {}", path.display()))?
                {
                    let cert = cert.with_context(|| format!("acme_ca_file {}", path.display()))?;
                    roots.add(cert).context("acme_ca_file")?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(AcmeHttp {
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
        })
    }

    async fn send(
        tls: tokio_rustls::TlsConnector,
        req: http::Request<BodyWrapper<bytes::Bytes>>,
    ) -> anyhow::Result<BytesResponse> {
        let (mut parts, body) = req.into_parts();
        anyhow::ensure!(
            parts.uri.scheme_str() == Some("https"),
            "the CA's URL {} is not https",
            parts.uri
        );
        let authority = parts
            .uri
            .authority()
            .ok_or_else(|| anyhow!("no host in {}", parts.uri))?
            .clone();
        let host = authority.host().trim_matches(['[', ']']).to_string();
        let port = authority.port_u16().unwrap_or(443);
        let name = rustls::pki_types::ServerName::try_from(host.clone())?;
        let connect = async {
            let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            anyhow::Ok(tls.connect(name, tcp).await?)
        };
        let stream = tokio::time::timeout(CA_CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| anyhow!("connecting to {authority} timed out"))?
            .with_context(|| format!("connecting to {authority}"))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "ACME connection ended");
            }
        });
        // HTTP/1.1 on a connection of its own: origin-form target, authority in Host.
        parts.uri = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse()?;
        parts
            .headers
            .insert(http::header::HOST, authority.as_str().parse()?);
        let response = tokio::time::timeout(
            CA_ANSWER_TIMEOUT,
            sender.send_request(http::Request::from_parts(parts, body)),
        )
        .await
        .map_err(|_| anyhow!("{authority} did not answer in time"))??;
        Ok(BytesResponse::from(response))
    }
}

impl HttpClient for AcmeHttp {
    fn request(
        &self,
        req: http::Request<BodyWrapper<bytes::Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let tls = self.tls.clone();
        Box::pin(async move {
            AcmeHttp::send(tls, req)
                .await
                .map_err(|e| instant_acme::Error::Other(e.into()))
        })
    }
}

/// Challenge tokens published for one order, withdrawn when it ends however it ends.
struct Published<'a> {
    challenges: &'a Challenges,
    tokens: Vec<String>,
}

impl Drop for Published<'_> {
    fn drop(&mut self) {
        for t in &self.tokens {
            self.challenges.remove(t);
        }
    }
}

/// Whether a host needs a (new) certificate, given when its current one expires.
pub fn needs_certificate(expires: Option<SystemTime>, now: SystemTime) -> bool {
    expires.is_none_or(|t| t < now + RENEW_BEFORE)
}

/// Whether a public ACME CA could validate `host`: not loopback names, not IP addresses.
pub fn acme_can_validate(host: &str) -> bool {
    host != "localhost"
        && !host.ends_with(".localhost")
        && host.parse::<std::net::IpAddr>().is_err()
        && host.contains('.')
}

/// Writes a certificate's files: each written beside and renamed over the old one, so a
/// reader sees an old or a new file, never half of one.
fn save(dir: &Path, chain_pem: &str, key_pem: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    replace_private(&dir.join(KEY_FILE), key_pem.as_bytes())?;
    replace_private(&dir.join(CERT_FILE), chain_pem.as_bytes())?;
    Ok(())
}

fn replace_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("new");
    let _ = std::fs::remove_file(&tmp);
    crate::fsutil::write_private(&tmp, data).map_err(|e| anyhow!("{e}"))?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_needs_a_certificate_when_it_has_none_or_it_ends_within_30_days() {
        let now = SystemTime::now();
        let day = Duration::from_secs(24 * 3600);
        assert!(needs_certificate(None, now));
        assert!(needs_certificate(Some(now - day), now));
        assert!(needs_certificate(Some(now + 29 * day), now));
        assert!(!needs_certificate(Some(now + 31 * day), now));
    }

    #[test]
    fn loopback_names_and_addresses_are_not_sent_to_the_ca() {
        assert!(acme_can_validate("shop.apps.example.com"));
        assert!(acme_can_validate("www.example.org"));
        assert!(!acme_can_validate("shop.localhost"));
        assert!(!acme_can_validate("localhost"));
        assert!(!acme_can_validate("127.0.0.1"));
        assert!(!acme_can_validate("intranet"));
    }

    #[test]
    fn saved_files_are_private_and_replace_the_old_ones() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("www.example.org");
        save(&d, "old chain", "old key").unwrap();
        save(&d, "new chain", "new key").unwrap();
        assert_eq!(
            std::fs::read_to_string(d.join(CERT_FILE)).unwrap(),
            "new chain"
        );
        assert_eq!(
            std::fs::read_to_string(d.join(KEY_FILE)).unwrap(),
            "new key"
        );
        let mode = std::fs::metadata(d.join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 2, "no leftovers");
    }
}
