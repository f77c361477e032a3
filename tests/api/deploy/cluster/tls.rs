//! A node whose engine listens only with `--tlsverify` on 2376, added through the API with the
//! TLS client files (made here with rcgen: a CA, the server's certificate for 10.231.0.2, a
//! client certificate for clientAuth); and the same endpoint refused, naming the problem, when
//! Scalefog has no client certificate the engine trusts.

use super::*;

/// A certificate (PEM) and its key (PEM) signed by `issuer`.
fn issue(
    issuer: &rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    names: &[&str],
    usage: rcgen::ExtendedKeyUsagePurpose,
) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    params.extended_key_usages = vec![usage];
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn ca(name: &str) -> rcgen::CertifiedIssuer<'static, rcgen::KeyPair> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap()).unwrap()
}

#[tokio::test]
async fn a_node_over_tls_with_client_certificates_joins_and_runs_its_regions_app() {
    let _serial = SERIAL.lock().await;
    let engine_ca = ca("sfswarm engine CA");
    let (server_cert, server_key) = issue(
        &engine_ca,
        &[NODE_ADDR],
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
    );
    let (client_cert, client_key) = issue(
        &engine_ca,
        &["scalefog"],
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    );
    let engine = SecondEngine::start_tls(&ServerTls {
        ca: engine_ca.pem(),
        cert: server_cert,
        key: server_key,
    });
    let ca_pem = engine_ca.pem();
    let f = cluster_fixture_with(
        &engine,
        "Edge",
        &[
            ("address", NODE_TLS_ENDPOINT),
            ("ca", &ca_pem),
            ("cert", &client_cert),
            ("key", &client_key),
        ],
    )
    .await;
    let admin = Some(f.user.token.as_str());
    let node = f.node("edge-1").await;
    assert_eq!(node["state"], "ready", "{node}");
    assert_eq!(node["insecure"], false, "{node}");

    // The app's image reaches the node over TLS, its replica runs there and serves.
    f.push_page("hello over tls", "one replica on a node over TLS")
        .await;
    assert_eq!(
        on_node_2(&install_of(&f)),
        1,
        "the replica runs on the TLS node"
    );

    // The same endpoint without a client certificate: Scalefog speaks plain HTTP to a TLS port.
    let (code, body) = f
        .add_node(&[
            ("name", "edge-plain"),
            ("address", NODE_TLS_ENDPOINT),
            ("insecure", "true"),
        ])
        .await;
    assert!(
        code.is_client_error() || code == StatusCode::SERVICE_UNAVAILABLE,
        "{code}: {body}"
    );
    assert!(
        body.contains(NODE_TLS_ENDPOINT) && body.to_lowercase().contains("tls"),
        "the answer names the endpoint and TLS: {body}"
    );

    // With a client certificate from a CA the engine does not trust: the handshake fails.
    let stranger = ca("not the engine's CA");
    let (cert, key) = issue(
        &stranger,
        &["scalefog"],
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    );
    let (code, body) = f
        .add_node(&[
            ("name", "edge-stranger"),
            ("address", NODE_TLS_ENDPOINT),
            ("ca", &ca_pem),
            ("cert", &cert),
            ("key", &key),
        ])
        .await;
    assert!(
        code.is_client_error() || code == StatusCode::SERVICE_UNAVAILABLE,
        "{code}: {body}"
    );
    assert!(
        body.contains(NODE_TLS_ENDPOINT) && body.to_lowercase().contains("certificate"),
        "the answer names the endpoint and the certificate: {body}"
    );

    // Neither refused node was kept; the TLS node still serves.
    let nodes: Value = f.app.get("/v1/nodes", admin).await.json().await.unwrap();
    let names: Vec<&str> = nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert!(
        !names.contains(&"edge-plain") && !names.contains(&"edge-stranger"),
        "{nodes}"
    );
    assert_eq!(
        f.through_router("/index.html").await.as_deref(),
        Ok("hello over tls")
    );
}
