//! Stopping the real binary with SIGTERM while a push builds: the push in flight finishes (or,
//! past `shutdown_timeout`, is cancelled and told so, with nothing half-recorded), every
//! listener stops taking connections meanwhile, and the process exits 0. The servers log in
//! JSON (`--log-format json`): every line they write must parse.

use crate::dockerapp::*;
use crate::e2e::{Pusher, app_containers, success_json};
use crate::gitssh::*;
use crate::helpers::*;
use serde_json::Value;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::ChildStderr;

/// `scalefog serve --log-format json` on free ports, with its log lines parsed as they come.
struct Server {
    child: tokio::process::Child,
    http_port: u16,
    ssh_port: u16,
    proxy_port: u16,
    /// Every log line, parsed (a line that is not JSON fails the test where it is read).
    log: Arc<Mutex<Vec<Value>>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(data_dir: &Path, extra: &[&str]) -> Server {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_scalefog"))
            .arg("--data-dir")
            .arg(data_dir)
            .args([
                "--http-listen",
                "127.0.0.1:0",
                "--ssh-listen",
                "127.0.0.1:0",
                "--proxy-listen",
                "127.0.0.1:0",
                "--log-format",
                "json",
            ])
            .args(extra)
            .arg("serve")
            .env("SCALEFOG_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("scalefog starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let log = Arc::new(Mutex::new(Vec::new()));
        let serving = loop {
            let line = next_json(&mut lines)
                .await
                .expect("scalefog logs its ports before exiting");
            log.lock().unwrap().push(line.clone());
            if line["message"] == "scalefog is serving" {
                break line;
            }
        };
        let port = |name: &str| -> u16 {
            serving[name]
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .unwrap_or_else(|| panic!("{name} in {serving}"))
        };
        let (http_port, ssh_port, proxy_port) =
            (port("port"), port("ssh_port"), port("proxy_port"));
        let all = log.clone();
        // Keep draining the log so the server never blocks on a full pipe.
        let reader = tokio::spawn(async move {
            while let Some(line) = next_json(&mut lines).await {
                all.lock().unwrap().push(line);
            }
        });
        Server {
            child,
            http_port,
            ssh_port,
            proxy_port,
            log,
            reader,
        }
    }

    fn api(&self) -> Api {
        Api::new(format!("http://127.0.0.1:{}", self.http_port))
    }

    fn logged(&self, message: &str) -> Option<Value> {
        let log = self.log.lock().unwrap();
        log.iter().find(|l| l["message"] == message).cloned()
    }

    fn sigterm(&self) {
        let id = self.child.id().expect("still running").to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &id])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the exit; returns its status and every line logged.
    async fn exited(mut self) -> (std::process::ExitStatus, Vec<Value>) {
        let status = self.child.wait().await.unwrap();
        self.reader.await.expect("every log line is JSON");
        let log = self.log.lock().unwrap().clone();
        (status, log)
    }

    /// GET `/` of `app` through the app router, once the router knows it (routes are rebuilt
    /// from Docker at start).
    async fn page(&self, app: &str) -> String {
        let client = reqwest::Client::new();
        let mut last = String::new();
        for _ in 0..150 {
            let r = client
                .get(format!("http://127.0.0.1:{}/", self.proxy_port))
                .header("Host", format!("{app}.localhost"))
                .send()
                .await;
            match r {
                Ok(r) if r.status() == 200 => return r.text().await.unwrap().trim().to_string(),
                Ok(r) => last = format!("{}: {}", r.status(), r.text().await.unwrap_or_default()),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{app} does not serve through the router: {last}");
    }
}

/// The next log line, which must be one JSON object; `None` at the end of the log.
async fn next_json(lines: &mut Lines<BufReader<ChildStderr>>) -> Option<Value> {
    let line = lines.next_line().await.unwrap()?;
    let v: Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {line}"));
    for field in ["timestamp", "level", "target"] {
        assert!(v.get(field).is_some(), "{field} in {line}");
    }
    Some(v)
}

/// Starts `git push` of main and reads its output until `marker`; returns the running push and
/// what it printed so far.
async fn push_until(
    p: &Pusher,
    marker: &str,
) -> (tokio::process::Child, Lines<BufReader<ChildStderr>>, String) {
    let mut push = p
        .push_command(&["main"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(push.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    loop {
        let line = lines.next_line().await.unwrap();
        let line = line.unwrap_or_else(|| panic!("the push ended before {marker:?}:\n{seen}"));
        seen.push_str(&line);
        seen.push('\n');
        if line.contains(marker) {
            return (push, lines, seen);
        }
    }
}

async fn rest_of(mut lines: Lines<BufReader<ChildStderr>>, mut seen: String) -> String {
    while let Ok(Some(line)) = lines.next_line().await {
        seen.push_str(&line);
        seen.push('\n');
    }
    seen
}

/// Waits until the server has begun its stop (it logs it).
async fn stopping(server: &Server) -> Value {
    for _ in 0..300 {
        if let Some(line) = server
            .logged("shutting down: no new connections; pushes and deploys in flight may finish")
        {
            return line;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server did not log its stop");
}

/// Whether connections to `port` are refused, once the listener's task has closed it.
async fn refused(port: u16) -> bool {
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn sigterm_during_a_build_lets_the_push_finish_and_the_app_serves_it_after_restart() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().join("data");
    let server = Server::start(&data_dir, &[]).await;
    let cleanup = DockerCleanup::of_data_dir(&data_dir);
    let token = server.api().user("alice").await.token;
    let mut p = Pusher::new(&server.api(), &token, server.ssh_port, "stop-finish").await;
    // The build step outlasts the moment SIGTERM arrives by a few seconds.
    let slow = dockerfile(
        "RUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo slow-step-started; /bin/busybox sleep 5\"]\n",
        SERVE,
    );
    let v1 = p.commit("v1", Some(&slow)).await;
    let (mut push, lines, seen) = push_until(&p, "slow-step-started").await;

    server.sigterm();
    let stop = stopping(&server).await;
    assert!(stop["in_flight"].as_u64() >= Some(1), "{stop}");
    // Nothing new is taken meanwhile: neither API nor console, git, nor the router.
    for port in [server.http_port, server.ssh_port, server.proxy_port] {
        assert!(
            refused(port).await,
            "port {port} still accepts during the stop"
        );
    }
    let seen = rest_of(lines, seen).await;
    assert!(
        push.wait().await.unwrap().success(),
        "the push finishes:\n{seen}"
    );
    assert!(seen.contains("Deployed"), "{seen}");
    let (status, log) = server.exited().await;
    assert_eq!(status.code(), Some(0), "a clean exit");
    assert!(
        log.iter()
            .any(|l| l["message"] == "work in flight finished"),
        "{log:?}"
    );
    assert!(log.iter().any(|l| l["message"] == "stopped"), "{log:?}");

    let server = Server::start(&data_dir, &[]).await;
    p.ssh_port = server.ssh_port;
    assert_eq!(server.page(&p.name).await, "v1");
    assert_eq!(p.remote_branch("main").await.as_deref(), Some(&*v1));
    let inst = success_json(server.api().get_app(&token, &p.name).await).await;
    assert_eq!(
        (inst["status"].clone(), inst["release"].clone()),
        ("running".into(), 1.into()),
        "{inst}"
    );
    server.sigterm();
    assert!(server.exited().await.0.success());
    drop(cleanup);
}

#[tokio::test]
async fn a_push_still_building_at_shutdown_timeout_is_cancelled_and_nothing_is_half_recorded() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().join("data");
    let server = Server::start(&data_dir, &["--shutdown-timeout", "1"]).await;
    let cleanup = DockerCleanup::of_data_dir(&data_dir);
    let token = server.api().user("alice").await.token;
    let mut p = Pusher::new(&server.api(), &token, server.ssh_port, "stop-cancel").await;
    let v1 = p.commit("v1", Some(&dockerfile("", SERVE))).await;
    ok(p.push(&["main"]).await);
    let v1_container = app_containers(&p.name);
    assert_eq!(v1_container.len(), 1);

    // The build step would outlast the test.
    let slow = dockerfile(
        "RUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo slow-step-started; /bin/busybox sleep 600\"]\n",
        SERVE,
    );
    let v2 = p.commit("v2", Some(&slow)).await;
    let (mut push, lines, seen) = push_until(&p, "slow-step-started").await;
    server.sigterm();
    let seen = rest_of(lines, seen).await;
    assert!(!push.wait().await.unwrap().success(), "{seen}");
    assert!(
        seen.contains("cancelled: scalefog stopped before it finished"),
        "the pusher is told:\n{seen}"
    );
    let (status, log) = server.exited().await;
    assert_eq!(status.code(), Some(0), "a clean exit");
    let cancelled = log
        .iter()
        .find(|l| {
            l["message"]
                .as_str()
                .unwrap_or("")
                .contains("were cancelled")
        })
        .unwrap_or_else(|| panic!("{log:?}"));
    assert!(cancelled["in_flight"].as_u64() >= Some(1), "{cancelled}");

    // What Docker holds: v1's container and image, nothing of v2.
    let install = cleanup.filter();
    assert_eq!(
        docker(&["ps", "-aq", "--no-trunc", "--filter", &install]),
        v1_container[0]
    );
    assert_eq!(
        docker(&[
            "images",
            "--format",
            "{{.Repository}}:{{.Tag}}",
            "--filter",
            &install
        ]),
        format!("scalefog/{}:v1", p.name)
    );
    // The store, read with the server stopped: the push and its build ended as cancelled.
    let store = scalefog::store::Store::open(&data_dir.join("scalefog.redb")).unwrap();
    let pushes = store
        .read(|r| r.pushes_of(&p.name, scalefog::store::Slice::ALL))
        .unwrap();
    let cut = &pushes.items[0];
    assert_eq!(cut.refs[0].new, v2, "{cut:?}");
    assert_eq!(
        cut.outcome,
        scalefog::domain::PushOutcome::Rejected,
        "{cut:?}"
    );
    assert!(cut.finished_at.is_some(), "{cut:?}");
    assert!(
        cut.message.as_deref().unwrap_or("").contains("cancelled"),
        "{cut:?}"
    );
    drop(store);

    let server = Server::start(&data_dir, &[]).await;
    p.ssh_port = server.ssh_port;
    let api = server.api();
    let builds = success_json(api.builds(&token, &p.name).await).await;
    assert_eq!(builds[0]["commit"], v2.as_str(), "{builds}");
    assert_eq!(builds[0]["status"], "cancelled", "{builds}");
    let releases = success_json(api.releases(&token, &p.name).await).await;
    assert_eq!(releases.as_array().map(Vec::len), Some(1), "{releases}");
    let inst = success_json(api.get_app(&token, &p.name).await).await;
    assert_eq!(
        (inst["status"].clone(), inst["release"].clone()),
        ("running".into(), 1.into()),
        "{inst}"
    );
    assert_eq!(p.remote_branch("main").await.as_deref(), Some(&*v1));
    assert_eq!(server.page(&p.name).await, "v1");
    assert_eq!(
        app_containers(&p.name),
        v1_container,
        "v1 was not restarted"
    );
    server.sigterm();
    assert!(server.exited().await.0.success());
    drop(cleanup);
}
