//! Automatic certificates against a real ACME server: Debian's `pebble` (Let's Encrypt's test
//! CA), with `pebble-challtestsrv` answering its DNS queries with 127.0.0.1 so that pebble's
//! http-01 validation reaches the router on this machine, as Let's Encrypt would reach a
//! public server.

use crate::helpers::*;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use reqwest::StatusCode;
use scalefog::config::Acme;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// `GET path` over TLS to 127.0.0.1:`port` with SNI and Host `host`: status and body.
async fn https_get(
    config: rustls::ClientConfig,
    port: u16,
    host: &str,
    path: &str,
) -> Result<(u16, Bytes), String> {
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from(host.to_string()).unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake with {host}: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = Request::get(path)
        .header("host", host)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Ok((status, body))
}

/// pebble and its DNS server, stopped on drop.
struct Pebble {
    children: Vec<Child>,
    directory: String,
    ca_file: PathBuf,
    /// The CA of pebble's own HTTPS (directory and management API).
    https_ca: rustls::pki_types::CertificateDer<'static>,
    management_port: u16,
}

impl Pebble {
    /// Starts pebble, validating http-01 challenges on `http_port` of every name.
    async fn start(dir: &Path, http_port: u16) -> Pebble {
        // pebble serves its API over HTTPS: a certificate for 127.0.0.1 from a CA of our own.
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "pebble API test CA");
        let ca =
            rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
                .unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        std::fs::write(dir.join("pebble-cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("pebble-key.pem"), key.serialize_pem()).unwrap();
        let ca_file = dir.join("pebble-api-ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();

        let (api, management, dns, dns_management, tls_port) = (
            free_port(),
            free_port(),
            free_port(),
            free_port(),
            free_port(),
        );
        let config = json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{api}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": dir.join("pebble-cert.pem"),
            "privateKey": dir.join("pebble-key.pem"),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false
        }});
        std::fs::write(dir.join("pebble.json"), config.to_string()).unwrap();

        let spawn = |cmd: &mut Command| {
            cmd.stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("cannot start {cmd:?} (apt-get install pebble; .ci/run does): {e}")
                })
        };
        let dns_server = spawn(
            Command::new("pebble-challtestsrv")
                .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
                .args(["-dns01", &format!("127.0.0.1:{dns}")])
                .args(["-management", &format!("127.0.0.1:{dns_management}")])
                .args(["-http01", "", "-https01", "", "-tlsalpn01", ""]),
        );
        let pebble = spawn(
            Command::new("pebble")
                .arg("-config")
                .arg(dir.join("pebble.json"))
                .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
                // No random validation delays or refused nonces: the test is about Scalefog.
                .env("PEBBLE_VA_NOSLEEP", "1")
                .env("PEBBLE_WFE_NONCEREJECT", "0"),
        );
        let p = Pebble {
            children: vec![dns_server, pebble],
            directory: format!("https://127.0.0.1:{api}/dir"),
            ca_file,
            https_ca: ca.der().clone(),
            management_port: management,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        for port in [api, management, dns_management] {
            while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
                assert!(Instant::now() < deadline, "pebble did not start");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        p
    }

    /// The root that pebble's certificates chain to (it makes a new one each run).
    async fn issuing_root(&self) -> rustls::pki_types::CertificateDer<'static> {
        use rustls::pki_types::pem::PemObject;
        let config = tls_client_config(std::slice::from_ref(&self.https_ca));
        let (status, body) = https_get(config, self.management_port, "127.0.0.1", "/roots/0")
            .await
            .unwrap();
        assert_eq!(status, 200);
        rustls::pki_types::CertificateDer::from_pem_slice(&body).unwrap()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Writes a self-signed certificate for `name` in `tls_dir` that ends in `days`.
fn seed_certificate(tls_dir: &Path, name: &str, days: i64) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(days);
    let cert = params.self_signed(&key).unwrap();
    let d = tls_dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("fullchain.pem"), cert.pem()).unwrap();
    std::fs::write(d.join("privkey.pem"), key.serialize_pem()).unwrap();
}

#[tokio::test]
async fn app_hosts_and_custom_domains_get_certificates_from_an_acme_ca_by_http_01() {
    let scratch = tempfile::tempdir().unwrap();
    // pebble validates on a fixed port and Scalefog's config names pebble's URL: their ports
    // are chosen before either starts.
    let router_port = free_port();
    let pebble = Pebble::start(scratch.path(), router_port).await;
    let app = spawn_app_with(|c| {
        // shop's certificate is about to expire (renewed), docs' has months left (kept).
        seed_certificate(&c.tls_dir, "shop.apps.test", 10);
        seed_certificate(&c.tls_dir, "docs.apps.test", 80);
        c.domain = "apps.test".into();
        c.proxy_listen = format!("127.0.0.1:{router_port}").parse().unwrap();
        c.https_listen = Some("127.0.0.1:0".parse().unwrap());
        c.acme = Some(Acme {
            email: "ops@example.com".into(),
            directory: pebble.directory.clone(),
            ca_file: Some(pebble.ca_file.clone()),
        });
    })
    .await;
    let https_port = app.https_port.expect("https is listening");
    let user = app.user("alice").await;
    app.create_app(&user.token, "shop").await;
    app.create_app(&user.token, "docs").await;
    let r = app
        .add_domain(&user.token, "shop", "www.shop-example.test")
        .await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );

    let root = pebble.issuing_root().await;
    for host in ["shop.apps.test", "www.shop-example.test"] {
        // Issued in the background: poll until the router presents a certificate pebble signed.
        let deadline = Instant::now() + Duration::from_secs(60);
        let (status, body) = loop {
            let config = tls_client_config(std::slice::from_ref(&root));
            match https_get(config, https_port, host, "/").await {
                Ok(answer) => break answer,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("no certificate for {host} after 60 s: {e}"),
            }
        };
        // The app has no release yet: the router's 503 page, now over HTTPS.
        assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
        let dir = app.data_dir.join("certs").join(host);
        assert!(
            dir.join("fullchain.pem").exists(),
            "{host} certificate saved"
        );
        assert!(dir.join("privkey.pem").exists(), "{host} key saved");
    }
    let kept = std::fs::read(app.data_dir.join("certs/docs.apps.test/fullchain.pem")).unwrap();
    let (_, cert) = x509_parser::pem::parse_x509_pem(&kept).unwrap();
    assert_eq!(
        cert.parse_x509().unwrap().issuer().to_string(),
        cert.parse_x509().unwrap().subject().to_string(),
        "a certificate far from its end is not replaced"
    );
    assert!(app.data_dir.join("acme-account.json").exists());
    assert!(
        app.router.challenges().is_empty(),
        "challenges are withdrawn after the orders"
    );
}
