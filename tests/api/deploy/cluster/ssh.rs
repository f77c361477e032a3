//! A node reached over SSH: the second engine listens on its unix socket only, and an OpenSSH
//! `sshd` in the namespace (10.231.0.2:22) lets in the key Scalefog shows in `GET /v1/cluster`,
//! with `DOCKER_HOST` pointing at that socket. Scalefog drives the engine through the system
//! `ssh` client and `docker system dial-stdio` there, as the docker CLI does.

use super::*;

const NODE_SSH_ENDPOINT: &str = "ssh://root@10.231.0.2";

/// Starts `sshd` in the namespace with its own host key, `{DIR}/ssh/<user>.keys` as each user's
/// authorized keys (none yet), and the second engine as every session's `DOCKER_HOST`.
fn start_sshd() {
    let (ok, out) = sh(&format!(
        "set -e
         mkdir -p {DIR}/ssh /run/sshd
         ssh-keygen -q -t ed25519 -N '' -f {DIR}/ssh/host_key
         cat > {DIR}/ssh/sshd_config <<CONF
ListenAddress {NODE_ADDR}:22
HostKey {DIR}/ssh/host_key
PidFile {DIR}/ssh/sshd.pid
AuthorizedKeysFile {DIR}/ssh/%u.keys
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
SetEnv DOCKER_HOST=unix://{DIR}/docker.sock
CONF
         nsenter --net=/var/run/netns/{NETNS} /usr/sbin/sshd -f {DIR}/ssh/sshd_config -E {DIR}/ssh/log
         for i in $(seq 50); do [ -s {DIR}/ssh/sshd.pid ] && break; sleep 0.1; done
         [ -s {DIR}/ssh/sshd.pid ]"
    ));
    assert!(
        ok,
        "sshd did not start: {out}{}",
        sh(&format!("cat {DIR}/ssh/log")).1
    );
}

#[tokio::test]
async fn a_node_over_ssh_with_scalefogs_key_joins_and_runs_its_regions_app() {
    let _serial = SERIAL.lock().await;
    let engine = SecondEngine::start_unix_only();
    start_sshd();
    let mut public_key = String::new();
    let f = cluster_fixture_prepared(
        &engine,
        "Edge",
        &[("address", NODE_SSH_ENDPOINT)],
        |cluster| {
            // What the admin does on the node: add the key the API shows to authorized_keys.
            public_key = cluster["ssh_public_key"]
                .as_str()
                .unwrap_or_else(|| panic!("no ssh_public_key: {cluster}"))
                .to_string();
            assert!(public_key.starts_with("ssh-ed25519 "), "{public_key}");
            std::fs::write(format!("{DIR}/ssh/root.keys"), format!("{public_key}\n")).unwrap();
        },
    )
    .await;
    let admin = Some(f.user.token.as_str());

    // The key is Scalefog's own, kept private in its data dir, and stays the same.
    let key_file = f.app.data_dir.join("nodes/id_ed25519");
    let mode = std::fs::metadata(&key_file).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    let cluster: Value = f.app.get("/v1/cluster", admin).await.json().await.unwrap();
    assert_eq!(cluster["ssh_public_key"], public_key.as_str());

    let node = f.node("edge-1").await;
    assert_eq!(node["state"], "ready", "{node}");
    assert_eq!(node["address"], NODE_SSH_ENDPOINT, "{node}");

    // The image reaches the node through SSH, its replica runs there and serves.
    f.push_page("hello over ssh", "one replica on a node over SSH")
        .await;
    assert_eq!(
        on_node_2(&install_of(&f)),
        1,
        "the replica runs on the SSH node"
    );
    let log = sh(&format!("cat {DIR}/ssh/log")).1;
    assert!(
        log.contains("Accepted publickey for root"),
        "Scalefog came in over SSH with its key: {log}"
    );

    // A user whose authorized_keys lacks Scalefog's key: refused, saying what to do.
    let (code, body) = f
        .add_node(&[
            ("name", "edge-nobody"),
            ("address", "ssh://nobody@10.231.0.2"),
        ])
        .await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body.contains("ssh://nobody@10.231.0.2") && body.contains("Permission denied"),
        "the answer names the endpoint and the refusal: {body}"
    );
    assert!(
        body.contains("ssh_public_key"),
        "the answer says which key to authorize: {body}"
    );

    // A port in an ssh:// endpoint would reach ssh as part of the host name: refused up front.
    let (code, body) = f
        .add_node(&[
            ("name", "edge-port"),
            ("address", "ssh://root@10.231.0.2:2222"),
        ])
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(body.contains("port 22"), "{body}");

    // Neither refused node was kept; the SSH node still serves.
    let nodes: Value = f.app.get("/v1/nodes", admin).await.json().await.unwrap();
    assert_eq!(nodes.as_array().unwrap().len(), 2, "{nodes}");
    assert_eq!(
        f.through_router("/index.html").await.as_deref(),
        Ok("hello over ssh")
    );
}
