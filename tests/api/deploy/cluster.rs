//! The cluster against a real two-node Docker Swarm: the host engine (manager, advertised on
//! 10.231.0.1) and a second `dockerd` in its own network namespace (10.231.0.2), reachable only
//! through a veth pair (see ../shared/TESTING.md). The tests run one at a time ([`SERIAL`]) and
//! tear everything down even when they fail ([`SecondEngine`]'s `Drop`, and a clean-up of
//! leftovers before starting).

use super::*;

/// The cluster in the console (a browser test sharing this module's second engine).
mod console;
mod registry;
/// A node added over SSH (`ssh://root@10.231.0.2`, an sshd in the namespace).
mod ssh;
/// A node added over TLS (`--tlsverify` on 2376) with client certificates made in the test.
mod tls;

/// One swarm test at a time: they share the namespace, its addresses and the host's swarm.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const NETNS: &str = "sfswarm";
const HOST_IF: &str = "sfswarm-h";
const HOST_ADDR: &str = "10.231.0.1";
const NODE_ADDR: &str = "10.231.0.2";
const NODE_ENDPOINT: &str = "tcp://10.231.0.2:2375";
/// The second engine over TLS (see [`SecondEngine::start_tls`]).
const NODE_TLS_ENDPOINT: &str = "tcp://10.231.0.2:2376";
const DIR: &str = "/tmp/sfswarm-engine";
/// The tests' own way to the second engine: its unix socket, which answers whether it listens
/// on plain tcp or with `--tlsverify`.
const NODE_CONTROL: &str = "unix:///tmp/sfswarm-engine/docker.sock";

fn sh(script: &str) -> (bool, String) {
    let out = Command::new("sh")
        .args(["-c", script])
        .output()
        .expect("sh");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `docker` against the second engine, bounded (it may be unreachable on purpose).
fn node_docker(args: &str) -> String {
    sh(&format!("timeout 20 docker -H {NODE_CONTROL} {args}")).1
}

/// The second engine's TLS files (PEM text): the CA that signs the server's and clients'
/// certificates, and the server's own certificate and key.
struct ServerTls {
    ca: String,
    cert: String,
    key: String,
}

/// What the second engine listens on besides its unix socket.
#[derive(Clone, Copy, PartialEq)]
enum Listen {
    /// [`NODE_ENDPOINT`], plain tcp.
    Plain,
    /// [`NODE_TLS_ENDPOINT`] with `--tlsverify` and the files in `{DIR}/tls`.
    Tls,
    /// Nothing: only its unix socket, which an sshd in the namespace reaches.
    UnixOnly,
}

/// Starts the second engine's dockerd in the namespace, logging to `{DIR}/log`.
fn spawn_dockerd(insecure_registry: Option<&str>, listen: Listen) -> std::process::Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(format!("{DIR}/log"))
        .unwrap();
    // `nsenter --net`, not `ip netns exec`: the latter remounts /sys and dockerd then fails
    // on cgroups.
    Command::new("nsenter")
        .arg(format!("--net=/var/run/netns/{NETNS}"))
        .args([
            "dockerd",
            "--data-root",
            &format!("{DIR}/data"),
            "--exec-root",
            &format!("{DIR}/exec"),
            "--pidfile",
            &format!("{DIR}/pid"),
            "-H",
            &format!("unix://{DIR}/docker.sock"),
        ])
        .args(match listen {
            Listen::Tls => vec![
                "-H".to_string(),
                NODE_TLS_ENDPOINT.to_string(),
                "--tlsverify".to_string(),
                "--tlscacert".to_string(),
                format!("{DIR}/tls/ca.pem"),
                "--tlscert".to_string(),
                format!("{DIR}/tls/cert.pem"),
                "--tlskey".to_string(),
                format!("{DIR}/tls/key.pem"),
            ],
            Listen::Plain => vec![
                "-H".to_string(),
                NODE_ENDPOINT.to_string(),
                "--tls=false".to_string(),
            ],
            Listen::UnixOnly => vec!["--tls=false".to_string()],
        })
        .args(
            insecure_registry
                .into_iter()
                .flat_map(|r| ["--insecure-registry", r]),
        )
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("dockerd")
}

/// Waits (bounded) until the second engine answers; whether it did.
fn wait_for_dockerd() -> bool {
    for _ in 0..120 {
        if sh(&format!("docker -H {NODE_CONTROL} version >/dev/null 2>&1")).0 {
            return true;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    false
}

/// The second engine, and the tear-down of the whole swarm set-up when dropped.
struct SecondEngine {
    /// Installations whose services are removed from the swarm at the end.
    installs: std::sync::Mutex<Vec<String>>,
    /// The `nsenter … dockerd` process, reaped once the tear-down stopped it.
    dockerd: std::process::Child,
    listen: Listen,
}

impl SecondEngine {
    fn start() -> SecondEngine {
        SecondEngine::start_with(None)
    }

    /// [`SecondEngine::start`]; with `insecure_registry` (`host:port`), the engine also pulls
    /// from that registry over plain HTTP.
    fn start_with(insecure_registry: Option<&str>) -> SecondEngine {
        SecondEngine::start_opts(insecure_registry, None, Listen::Plain)
    }

    /// The engine with only a TLS endpoint ([`NODE_TLS_ENDPOINT`], `--tlsverify`) serving
    /// `tls`'s certificate and accepting clients whose certificates its CA signed.
    fn start_tls(tls: &ServerTls) -> SecondEngine {
        SecondEngine::start_opts(None, Some(tls), Listen::Tls)
    }

    /// The engine on its unix socket only (the caller reaches it some other way, over SSH).
    fn start_unix_only() -> SecondEngine {
        SecondEngine::start_opts(None, None, Listen::UnixOnly)
    }

    fn start_opts(
        insecure_registry: Option<&str>,
        tls: Option<&ServerTls>,
        listen: Listen,
    ) -> SecondEngine {
        teardown(&[]);
        let (ok, out) = sh(&format!(
            "set -e
             mkdir -p {DIR}
             ip netns add {NETNS}
             ip link add {HOST_IF} type veth peer name sfswarm-n
             ip link set sfswarm-n netns {NETNS}
             ip addr add {HOST_ADDR}/24 dev {HOST_IF}
             ip link set {HOST_IF} up
             ip netns exec {NETNS} ip addr add {NODE_ADDR}/24 dev sfswarm-n
             ip netns exec {NETNS} ip link set sfswarm-n up
             ip netns exec {NETNS} ip link set lo up"
        ));
        assert!(ok, "setting up the namespace failed: {out}");
        if let Some(tls) = tls {
            std::fs::create_dir_all(format!("{DIR}/tls")).unwrap();
            for (file, pem) in [
                ("ca.pem", &tls.ca),
                ("cert.pem", &tls.cert),
                ("key.pem", &tls.key),
            ] {
                std::fs::write(format!("{DIR}/tls/{file}"), pem).unwrap();
            }
        }
        let mut dockerd = spawn_dockerd(insecure_registry, listen);
        if wait_for_dockerd() {
            return SecondEngine {
                installs: Default::default(),
                dockerd,
                listen,
            };
        }
        teardown(&[]);
        let _ = dockerd.kill();
        let _ = dockerd.wait();
        panic!(
            "the second dockerd did not start: {}",
            sh(&format!("tail -20 {DIR}/log")).1
        );
    }

    /// The machine dies: its dockerd, its containerd and the containers' shims are killed
    /// (SIGKILL), and so are the containers. Killing dockerd alone is not a lost machine: its
    /// containers keep running under their shims, and their published ports keep answering
    /// (the NAT rules stay), so the replica would never move.
    fn kill(&mut self) {
        let (_, pids) = sh(&format!(
            "timeout 20 docker -H {NODE_CONTROL} ps -q |
             xargs -r timeout 20 docker -H {NODE_CONTROL} inspect --format '{{{{.State.Pid}}}}'"
        ));
        let _ = self.dockerd.kill();
        let _ = self.dockerd.wait();
        // containerd and the shims of this dockerd are the processes run from its directory
        // (the bracket keeps the pattern from matching this shell's own command line).
        let (ok, out) = sh(&format!(
            "pkill -9 -f -- '[{}]{}/exec/'; for p in {}; do kill -9 $p; done; true",
            &DIR[..1],
            &DIR[1..],
            pids.split_whitespace().collect::<Vec<_>>().join(" ")
        ));
        assert!(ok, "{out}");
        assert!(
            !sh(&format!("docker -H {NODE_CONTROL} version >/dev/null 2>&1")).0,
            "the second engine still answers"
        );
    }

    /// The machine is back: its dockerd starts again (and rejoins the swarm by itself).
    fn restart(&mut self) {
        self.dockerd = spawn_dockerd(None, self.listen);
        assert!(
            wait_for_dockerd(),
            "the second dockerd did not start again: {}",
            sh(&format!("tail -20 {DIR}/log")).1
        );
    }

    fn watch(&self, app: &TestApp) {
        let id = std::fs::read_to_string(app.data_dir.join("install.id")).unwrap();
        self.installs.lock().unwrap().push(id.trim().to_string());
    }
}

impl Drop for SecondEngine {
    fn drop(&mut self) {
        let installs = std::mem::take(&mut *self.installs.lock().unwrap());
        teardown(&installs);
        let _ = self.dockerd.kill();
        let _ = self.dockerd.wait();
    }
}

/// Removes everything a swarm test set up, whatever state it is in: the installations'
/// services, the swarm on both engines (the host's only when it is the one advertised on
/// [`HOST_ADDR`]), the second engine's containers, its dockerd, the namespace and the veth.
fn teardown(installs: &[String]) {
    for id in installs {
        sh(&format!(
            "docker service ls -q --filter label=scalefog.install={id} | xargs -r docker service rm"
        ));
    }
    sh(&format!(
        "timeout 20 docker -H {NODE_CONTROL} ps -aq | xargs -r timeout 20 docker -H {NODE_CONTROL} rm -f;
         timeout 20 docker -H {NODE_CONTROL} swarm leave --force"
    ));
    let (_, addr) = sh("docker info --format '{{.Swarm.NodeAddr}}'");
    if addr.trim() == HOST_ADDR {
        sh("docker swarm leave --force");
    }
    sh(&format!(
        "kill $(cat {DIR}/ssh/sshd.pid 2>/dev/null) 2>/dev/null;
         pid=$(cat {DIR}/pid 2>/dev/null) && kill $pid 2>/dev/null;
         for i in $(seq 60); do [ -n \"$pid\" ] && kill -0 $pid 2>/dev/null || break; sleep 0.5; done;
         [ -n \"$pid\" ] && kill -9 $pid 2>/dev/null;
         ip netns pids {NETNS} 2>/dev/null | xargs -r kill -9 2>/dev/null;
         ip link del {HOST_IF} 2>/dev/null; ip netns del {NETNS} 2>/dev/null;
         grep -o ' {DIR}/[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l;
         rm -rf {DIR}"
    ));
    // The host key the SSH test's sshd showed, trusted on first use in this user's known_hosts:
    // the next run's sshd has another.
    sh(&format!(
        "ssh-keygen -F {NODE_ADDR} >/dev/null 2>&1 && ssh-keygen -R {NODE_ADDR} >/dev/null 2>&1; true"
    ));
}

impl Fixture {
    /// GET `path` through the app router on a new connection.
    async fn through_router(&self, path: &str) -> Result<String, String> {
        let r = reqwest::Client::new()
            .get(format!("http://127.0.0.1:{}{path}", self.app.proxy_port))
            .header("Host", format!("{}.localhost", self.name))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let code = r.status();
        let body = r.text().await.map_err(|e| e.to_string())?;
        if code == 200 {
            Ok(body.trim().to_string())
        } else {
            Err(format!(
                "{code}: {}",
                body.lines().find(|l| l.contains("<p>")).unwrap_or("")
            ))
        }
    }
}

/// A server with the cluster on and the second engine added as node 2 in `region` (created
/// when it is not region 1), and an app in that region, ready to push.
async fn cluster_fixture(engine: &SecondEngine, region: &str) -> Fixture {
    cluster_fixture_with(
        engine,
        region,
        &[("address", NODE_ENDPOINT), ("insecure", "true")],
    )
    .await
}

/// [`cluster_fixture`], adding the node with `node` (its `address` and how to reach it).
async fn cluster_fixture_with(
    engine: &SecondEngine,
    region: &str,
    node: &[(&str, &str)],
) -> Fixture {
    cluster_fixture_prepared(engine, region, node, |_| {}).await
}

/// [`cluster_fixture_with`], calling `prepare` with the answer of `POST /v1/cluster` before the
/// node is added (to authorize Scalefog's SSH key there, say).
async fn cluster_fixture_prepared(
    engine: &SecondEngine,
    region: &str,
    node: &[(&str, &str)],
    prepare: impl FnOnce(&Value),
) -> Fixture {
    let app = spawn_app_with(|c| c.health_timeout = 60).await;
    engine.watch(&app);
    let cleanup = DockerCleanup::of(&app);
    let user = app.user("alice").await;
    let t = Some(user.token.as_str());
    let r = app
        .post_form("/v1/cluster", &[("advertise", HOST_ADDR)], t)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let cluster: Value = r.json().await.unwrap();
    assert_eq!(cluster["enabled"], true);
    assert!(
        cluster["join_command"]
            .as_str()
            .unwrap()
            .starts_with("docker swarm join --token SWMTKN-"),
        "{cluster}"
    );
    prepare(&cluster);
    if region != "1" {
        let r = app.post_form("/v1/regions", &[("name", region)], t).await;
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let regions: Value = app.get("/v1/regions", None).await.json().await.unwrap();
    let region_id = regions["items"]
        .as_array()
        .or(regions.as_array())
        .unwrap()
        .iter()
        .find(|r| r["name"] == region || r["id"] == region)
        .map(|r| r["id"].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("no region {region}: {regions}"));
    let mut fields = vec![("name", "edge-1"), ("region", &region_id), ("ram", "1 GB")];
    fields.extend_from_slice(node);
    let r = app.post_form("/v1/nodes", &fields, t).await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
    let name = unique("swarm");
    let r = app
        .create_instance(&user.token, &[("name", &name), ("region", &region_id)])
        .await;
    assert!(r.status().is_success());
    Fixture {
        app,
        user,
        name,
        repo: Repo::new(),
        _cleanup: cleanup,
    }
}

/// The app's swarm tasks' containers on the second engine.
fn on_node_2(install: &str) -> usize {
    node_docker(&format!(
        "ps -q --filter label=scalefog.swarm.install={install}"
    ))
    .split_whitespace()
    .count()
}

fn install_of(f: &Fixture) -> String {
    std::fs::read_to_string(f.app.data_dir.join("install.id"))
        .unwrap()
        .trim()
        .to_string()
}

#[tokio::test]
async fn an_app_in_a_region_runs_on_that_regions_node_only_and_answers_through_the_router() {
    let _serial = SERIAL.lock().await;
    let engine = SecondEngine::start();
    let f = cluster_fixture(&engine, "Edge").await;
    let admin = Some(f.user.token.as_str());
    // Join tokens never reach a non-admin.
    let bob = f.app.user("bob").await;
    assert_eq!(
        f.app.get("/v1/cluster", Some(&bob.token)).await.status(),
        StatusCode::FORBIDDEN
    );
    let nodes: Value = f.app.get("/v1/nodes", admin).await.json().await.unwrap();
    let node = nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "edge-1")
        .unwrap()
        .clone();
    assert_eq!(node["state"], "ready", "{nodes}");
    assert_eq!(node["ram"], "1 GB");
    // No registry: the image is streamed to node 2 before its services are created.
    let sha = f
        .repo
        .commit("hello from the edge", Some(&dockerfile("", SERVE)));
    let pushed = std::time::Instant::now();
    let (r, lines) = f.push(&sha).await;
    assert!(r.is_ok(), "{r:?}\n{}", lines.join("\n"));
    assert_eq!(
        f.through_router("/index.html").await.as_deref(),
        Ok("hello from the edge")
    );
    println!(
        "bench: push to serving, one replica on one remote node: {:?}",
        pushed.elapsed()
    );
    let r = f
        .app
        .scale(&f.user.token, &f.name, &json!({"web": 2}))
        .await;
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let install = install_of(&f);
    // The replaced replica goes after its grace period; then exactly the two new ones remain.
    let mut running = on_node_2(&install);
    for _ in 0..120 {
        if running == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        running = on_node_2(&install);
    }
    assert_eq!(running, 2, "both replicas run on node 2");
    // The app's JSON says so, and the Nodes page lists them on node 2.
    let json: Value = f
        .app
        .get_app(&f.user.token, &f.name)
        .await
        .json()
        .await
        .unwrap();
    let placed: Vec<(&str, &str)> = json["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["process"].as_str().unwrap(),
                p["node_name"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(placed, [("web.1", "edge-1"), ("web.2", "edge-1")], "{json}");
    let console = crate::console::console_sign_in(&f.app, "alice", &f.user.password).await;
    let page = console
        .get(&f.app, "/console/admin/nodes")
        .await
        .text()
        .await
        .unwrap();
    let row = page
        .split("data-node=\"2\"")
        .nth(1)
        .unwrap()
        .split("</tr>")
        .next()
        .unwrap();
    assert!(row.contains(&format!("{} web.2", f.name)), "{row}");
    assert_eq!(
        docker(&[
            "ps",
            "-q",
            "--filter",
            &format!("label=scalefog.install={install}")
        ]),
        "",
        "nothing of the app runs on node 1 (another region)"
    );
    for _ in 0..10 {
        assert_eq!(
            f.through_router("/index.html").await.as_deref(),
            Ok("hello from the edge")
        );
    }
    // The region's only node cannot go while the region holds an app.
    let r = f
        .app
        .delete(
            &format!("/v1/nodes/{}", node["id"].as_str().unwrap()),
            admin,
        )
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert!(
        error_body(r).await["message"]
            .as_str()
            .unwrap()
            .contains("last node of region"),
    );
}

/// The app's swarm tasks' containers on the host engine (node 1).
fn on_node_1(install: &str) -> usize {
    docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=scalefog.swarm.install={install}"),
    ])
    .split_whitespace()
    .count()
}

/// Waits (bounded) until `check` holds; whether it did.
async fn eventually(mut check: impl FnMut() -> bool) -> bool {
    for _ in 0..240 {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    false
}

/// Pushes the app with `web=2` and waits until one replica runs on each node.
async fn spread_over_both(f: &Fixture, page: &str) {
    let r = f
        .app
        .scale(&f.user.token, &f.name, &json!({"web": 2}))
        .await;
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let sha = f.repo.commit(page, Some(&dockerfile("", SERVE)));
    let pushed = std::time::Instant::now();
    let (r, lines) = f.push(&sha).await;
    assert!(r.is_ok(), "{r:?}\n{}", lines.join("\n"));
    assert_eq!(f.through_router("/index.html").await.as_deref(), Ok(page));
    println!(
        "bench: push to serving, two replicas over two nodes: {:?}",
        pushed.elapsed()
    );
    let install = install_of(f);
    // The set's replicas are one service, spread over the region's nodes by the swarm.
    assert!(
        eventually(|| on_node_1(&install) == 1 && on_node_2(&install) == 1).await,
        "one replica per node: {} on node 1, {} on node 2; tasks: {}",
        on_node_1(&install),
        on_node_2(&install),
        sh("docker service ls -q | xargs -r -n1 docker service ps --no-trunc --format '{{.Name}} {{.Node}} {{.DesiredState}} {{.CurrentState}} {{.Error}}'").1
    );
}

/// What a [`request_loop`] saw.
struct Requests {
    /// The failures after the grace period.
    late: Vec<String>,
    total: usize,
    failed: usize,
    /// When (from the loop's `since`) the last request that failed or took a second or more
    /// ended: every request after it was served at once.
    slow_until: Option<Duration>,
}

/// GETs through the router until `done` (bounded), counting failures and failures after
/// `grace` from `since`. Any of `pages` is a success.
async fn request_loop(
    f: &Fixture,
    pages: &[&str],
    since: std::time::Instant,
    grace: Duration,
    mut done: impl FnMut() -> bool,
) -> Requests {
    let mut seen = Requests {
        late: Vec::new(),
        total: 0,
        failed: 0,
        slow_until: None,
    };
    let mut after_done = 0;
    for _ in 0..2000 {
        let sent = std::time::Instant::now();
        let r = f.through_router("/index.html").await;
        seen.total += 1;
        let ok = r.as_deref().is_ok_and(|body| pages.contains(&body));
        if !ok {
            seen.failed += 1;
            if since.elapsed() > grace {
                seen.late.push(format!("{:?}: {r:?}", since.elapsed()));
            }
        }
        if !ok || sent.elapsed() >= Duration::from_secs(1) {
            seen.slow_until = Some(since.elapsed());
        }
        if done() {
            after_done += 1;
            if after_done > 20 {
                break;
            }
        }
    }
    seen
}

#[tokio::test]
async fn losing_a_machine_fails_no_request_after_the_first_second_and_its_replica_moves() {
    let _serial = SERIAL.lock().await;
    let mut engine = SecondEngine::start();
    let f = cluster_fixture(&engine, "1").await;
    let page = "served by two machines";
    spread_over_both(&f, page).await;
    let install = install_of(&f);
    assert_eq!(f.through_router("/index.html").await.as_deref(), Ok(page));
    let killed = std::time::Instant::now();
    engine.kill();
    let mut moved_after = None;
    let Requests {
        late,
        total,
        failed,
        slow_until,
    } = request_loop(&f, &[page], killed, Duration::from_secs(1), || {
        let moved = on_node_1(&install) == 2;
        if moved && moved_after.is_none() {
            moved_after = Some(killed.elapsed());
        }
        moved
    })
    .await;
    println!(
        "failover: {total} requests, {failed} failed, the replica ran again on node 1 after \
         {moved_after:?}, the last slow or failed request ended after {slow_until:?}"
    );
    assert!(late.is_empty(), "failed after the first second: {late:#?}");
    assert!(
        moved_after.is_some(),
        "the swarm did not reschedule the lost replica"
    );
    // Node 1 alone serves now.
    for _ in 0..5 {
        assert_eq!(f.through_router("/index.html").await.as_deref(), Ok(page));
    }
    let nodes: Value = f
        .app
        .get("/v1/nodes", Some(&f.user.token))
        .await
        .json()
        .await
        .unwrap();
    let edge = nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "edge-1")
        .unwrap();
    assert_eq!(edge["state"], "down", "{nodes}");

    // The machine comes back; the next deploy spreads the new set over both nodes again.
    engine.restart();
    assert!(
        eventually(|| node_docker("info --format '{{.Swarm.LocalNodeState}}'").trim() == "active")
            .await,
        "the second engine did not rejoin the swarm"
    );
    let mut ready = false;
    for _ in 0..120 {
        let nodes: Value = f
            .app
            .get("/v1/nodes", Some(&f.user.token))
            .await
            .json()
            .await
            .unwrap();
        if nodes
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["name"] == "edge-1" && n["state"] == "ready")
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(ready, "node 2 is not ready again");
    let again = "rebalanced after the machine came back";
    let sha = f.repo.commit(again, Some(&dockerfile("", SERVE)));
    let (r, lines) = f.push(&sha).await;
    assert!(r.is_ok(), "{r:?}\n{}", lines.join("\n"));
    assert_eq!(f.through_router("/index.html").await.as_deref(), Ok(again));
    assert!(
        eventually(|| on_node_1(&install) == 1 && on_node_2(&install) == 1).await,
        "one replica per node after the deploy: {} on node 1, {} on node 2",
        on_node_1(&install),
        on_node_2(&install)
    );
}

#[tokio::test]
async fn deploys_and_rollbacks_over_two_nodes_fail_no_request() {
    let _serial = SERIAL.lock().await;
    let engine = SecondEngine::start();
    let f = cluster_fixture(&engine, "1").await;
    let first = "first release on two machines";
    spread_over_both(&f, first).await;
    let install = install_of(&f);
    let second = "second release on two machines";
    let both = [first, second];
    let sha = f.repo.commit(second, Some(&dockerfile("", SERVE)));
    let done = std::sync::atomic::AtomicBool::new(false);
    let since = std::time::Instant::now();
    let ((r, lines), seen) = tokio::join!(
        async {
            let pushed = f.push(&sha).await;
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            pushed
        },
        request_loop(&f, &both, since, Duration::ZERO, || done
            .load(std::sync::atomic::Ordering::SeqCst))
    );
    assert!(r.is_ok(), "{r:?}\n{}", lines.join("\n"));
    assert!(
        seen.late.is_empty(),
        "failed during the deploy: {:#?}",
        seen.late
    );
    assert_eq!(seen.failed, 0);
    println!(
        "bench: deploy over two nodes: {} requests, {} failed",
        seen.total, seen.failed
    );
    assert_eq!(f.through_router("/index.html").await.as_deref(), Ok(second));
    // The new set is spread too, and the old one is gone after its grace period.
    assert!(
        eventually(|| on_node_1(&install) == 1 && on_node_2(&install) == 1).await,
        "one replica per node: {} on node 1, {} on node 2",
        on_node_1(&install),
        on_node_2(&install)
    );

    let done = std::sync::atomic::AtomicBool::new(false);
    let since = std::time::Instant::now();
    let (r, seen) = tokio::join!(
        async {
            let r = f
                .app
                .rollback(&f.user.token, &f.name, &json!({"release": "v1"}))
                .await;
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            r
        },
        request_loop(&f, &both, since, Duration::ZERO, || done
            .load(std::sync::atomic::Ordering::SeqCst))
    );
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    assert!(
        seen.late.is_empty(),
        "failed during the rollback: {:#?}",
        seen.late
    );
    assert_eq!(seen.failed, 0);
    println!(
        "bench: rollback over two nodes: {} requests, {} failed",
        seen.total, seen.failed
    );
    assert!(
        eventually(|| on_node_1(&install) == 1 && on_node_2(&install) == 1).await,
        "one replica per node after the rollback"
    );
    for _ in 0..10 {
        assert_eq!(f.through_router("/index.html").await.as_deref(), Ok(first));
    }
}

#[tokio::test]
async fn removing_a_node_drains_it_first_and_no_request_fails() {
    let _serial = SERIAL.lock().await;
    let engine = SecondEngine::start();
    let f = cluster_fixture(&engine, "1").await;
    let page = "drained gracefully";
    spread_over_both(&f, page).await;
    let install = install_of(&f);
    let token = f.user.token.clone();
    let url = f.app.url("/v1/nodes/2");
    let removal = tokio::spawn(async move {
        reqwest::Client::new()
            .delete(url)
            .bearer_auth(token)
            .send()
            .await
            .map(|r| r.status())
    });
    let start = std::time::Instant::now();
    let Requests { late, total, .. } =
        request_loop(&f, &[page], start, Duration::ZERO, || removal.is_finished()).await;
    assert!(
        late.is_empty(),
        "failed during the drain ({total} requests): {late:#?}"
    );
    assert_eq!(removal.await.unwrap().unwrap(), StatusCode::NO_CONTENT);
    assert_eq!(on_node_1(&install), 2, "both replicas run on node 1");
    assert_eq!(on_node_2(&install), 0);
    let nodes: Value = f
        .app
        .get("/v1/nodes", Some(&f.user.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(nodes.as_array().unwrap().len(), 1, "{nodes}");
}

/// The swarm services of an installation.
fn services_of(install: &str) -> usize {
    docker(&[
        "service",
        "ls",
        "-q",
        "--filter",
        &format!("label=scalefog.install={install}"),
    ])
    .split_whitespace()
    .count()
}

/// The installation's plain containers on the host engine (not swarm tasks', which carry its
/// labels too, from their image), running or also stopped (`all`).
fn plain_containers(install: &str, all: bool) -> usize {
    docker(&[
        "ps",
        if all { "-a" } else { "--no-trunc" },
        "--filter",
        &format!("label=scalefog.install={install}"),
        "--format",
        "task={{.Label \"com.docker.swarm.task.id\"}}",
    ])
    .lines()
    .filter(|l| *l == "task=")
    .count()
}

#[tokio::test]
async fn turning_the_cluster_on_moves_a_running_app_onto_the_swarm_without_a_failed_request() {
    let _serial = SERIAL.lock().await;
    let engine = SecondEngine::start();
    // The cluster is off: the app is deployed as a plain container.
    let app = spawn_app_with(|c| c.health_timeout = 60).await;
    engine.watch(&app);
    let cleanup = DockerCleanup::of(&app);
    let user = app.user("alice").await;
    let name = unique("moving");
    app.create_app(&user.token, &name).await;
    let f = Fixture {
        app,
        user,
        name,
        repo: Repo::new(),
        _cleanup: cleanup,
    };
    let page = "moved without a gap";
    let sha = f.repo.commit(page, Some(&dockerfile("", SERVE)));
    let (r, lines) = f.push(&sha).await;
    assert!(r.is_ok(), "{r:?}\n{}", lines.join("\n"));
    let install = install_of(&f);
    assert_eq!(
        plain_containers(&install, false),
        1,
        "the app runs as a plain container"
    );
    assert_eq!(services_of(&install), 0);
    assert_eq!(f.through_router("/index.html").await.as_deref(), Ok(page));
    // An admin turns the cluster on while requests keep coming.
    let (url, token) = (f.app.url("/v1/cluster"), f.user.token.clone());
    let enabling = tokio::spawn(async move {
        let r = reqwest::Client::new()
            .post(url)
            .bearer_auth(token)
            .form(&[("advertise", HOST_ADDR)])
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json::<Value>().await.unwrap())
    });
    let start = std::time::Instant::now();
    let Requests {
        late,
        total,
        failed,
        ..
    } = request_loop(&f, &[page], start, Duration::ZERO, || {
        enabling.is_finished()
            && plain_containers(&install, false) == 0
            && services_of(&install) == 1
    })
    .await;
    println!(
        "moving into the cluster: {total} requests, {failed} failed, {:?}",
        start.elapsed()
    );
    assert!(
        late.is_empty(),
        "failed while moving ({total} requests): {late:#?}"
    );
    let log = |f: &Fixture| {
        let (app, token) = (f.app.url("/v1/audit?per_page=100"), f.user.token.clone());
        async move {
            let log: Value = reqwest::Client::new()
                .get(app)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            log
        }
    };
    let moves = log(&f).await;
    let state = format!(
        "containers: {}\nservices: {}\naudit: {moves}",
        docker(&[
            "ps",
            "-a",
            "--filter",
            &format!("label=scalefog.install={install}"),
            "--format",
            "{{.ID}} {{.CreatedAt}} {{.Status}} {{.Labels}}"
        ]),
        sh("docker service ls; docker service ps $(docker service ls -q) --no-trunc").1,
    );
    assert!(enabling.is_finished(), "the cluster was not turned on");
    let (status, cluster) = enabling.await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{cluster}");
    assert_eq!(cluster["apps_to_move"], 1, "{cluster}");
    // Its process is a swarm task now, and no container of it is left outside the swarm.
    assert_eq!(services_of(&install), 1, "{state}");
    assert!(
        eventually(|| plain_containers(&install, true) == 0).await,
        "the plain container is retired: {state}"
    );
    let tasks = docker(&[
        "service",
        "ps",
        "--filter",
        "desired-state=running",
        "--format",
        "{{.CurrentState}}",
        &docker(&[
            "service",
            "ls",
            "-q",
            "--filter",
            &format!("label=scalefog.install={install}"),
        ]),
    ]);
    assert!(tasks.starts_with("Running"), "{tasks}");
    let cluster: Value = f
        .app
        .get("/v1/cluster", Some(&f.user.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(cluster["apps_to_move"], 0, "{cluster}");
    assert_eq!(f.through_router("/index.html").await.as_deref(), Ok(page));
    // The move is audited, as done by the admin who turned the cluster on.
    let log = log(&f).await;
    let moved = log
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "app.move" && e["app"] == f.name.as_str())
        .unwrap_or_else(|| panic!("no app.move entry: {log}"));
    assert_eq!(moved["username"], "alice");
    assert!(
        moved["detail"]
            .as_str()
            .unwrap()
            .starts_with("moved into the cluster"),
        "{moved}"
    );
}

/// The app's image tags on the second engine.
fn images_on_node_2(install: &str) -> Vec<String> {
    node_docker(&format!(
        "images --filter label=scalefog.install={install} --format '{{{{.Repository}}}}:{{{{.Tag}}}}'"
    ))
    .lines()
    .map(str::to_string)
    .collect()
}

#[tokio::test]
async fn an_old_release_image_is_removed_on_the_regions_other_node_when_it_is_pruned() {
    let _serial = SERIAL.lock().await;
    let engine = SecondEngine::start();
    // The region's only node is node 2: every release's image is streamed there.
    let f = cluster_fixture(&engine, "Edge").await;
    let install = install_of(&f);
    let tag = |v: usize| format!("scalefog/{}:v{v}", f.name);
    let keep = scalefog::deploy::KEEP_RELEASE_IMAGES;
    for v in 1..=keep + 1 {
        let page = format!("release {v}");
        let sha = f.repo.commit(&page, Some(&dockerfile("", SERVE)));
        let (r, lines) = f.push(&sha).await;
        assert!(r.is_ok(), "v{v}: {r:?}\n{}", lines.join("\n"));
        assert_eq!(
            f.through_router("/index.html").await.as_deref(),
            Ok(page.as_str())
        );
        if v == 1 {
            assert!(
                images_on_node_2(&install).contains(&tag(1)),
                "{:?}",
                images_on_node_2(&install)
            );
        }
    }
    // v1 is no longer among the last `keep` releases: pruned here, and on node 2 too.
    assert!(
        eventually(|| !images_on_node_2(&install).contains(&tag(1))).await,
        "v1's image is still on node 2: {:?}",
        images_on_node_2(&install)
    );
    assert_eq!(
        docker(&["images", "-q", &tag(1)]),
        "",
        "pruned on the manager"
    );
    let left = images_on_node_2(&install);
    for v in 2..=keep + 1 {
        assert!(left.contains(&tag(v)), "v{v} is kept on node 2: {left:?}");
    }
}

#[tokio::test]
async fn after_cluster_init_while_stopped_the_next_start_moves_running_apps_onto_the_swarm() {
    let _serial = SERIAL.lock().await;
    let engine = SecondEngine::start();
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().join("data");
    let dd = data_dir.clone();
    let app = spawn_app_with(move |c| {
        c.data_dir = dd;
        c.health_timeout = 60;
    })
    .await;
    engine.watch(&app);
    let cleanup = DockerCleanup::of(&app);
    let user = app.user("alice").await;
    let name = unique("inited");
    app.create_app(&user.token, &name).await;
    let repo = Repo::new();
    let f = Fixture {
        app,
        user,
        name,
        repo,
        _cleanup: cleanup,
    };
    let page = "moved at start";
    let sha = f.repo.commit(page, Some(&dockerfile("", SERVE)));
    let (r, lines) = f.push(&sha).await;
    assert!(r.is_ok(), "{r:?}\n{}", lines.join("\n"));
    let install = install_of(&f);
    assert_eq!(plain_containers(&install, false), 1);
    let Fixture {
        app,
        user,
        name,
        repo: _repo,
        _cleanup,
    } = f;
    drop(app);
    store_released(&data_dir).await;
    // `scalefog cluster init --advertise …` while the server is stopped: the same core call.
    {
        let config = scalefog::config::Config::for_tests(&data_dir);
        let store = scalefog::store::Store::open(&config.store_path()).unwrap();
        let swarm = scalefog::runtime::Swarm::new(
            scalefog::docker::Engine::new(&config.docker_host),
            store.clone(),
            scalefog::docker::Installation {
                id: install.clone(),
            },
            data_dir.join("nodes"),
        );
        let nodes = scalefog::nodes::Nodes::new(store, swarm);
        nodes.turn_on(HOST_ADDR).await.unwrap();
    }
    store_released(&data_dir).await;
    let dd = data_dir.clone();
    let app = spawn_app_with(move |c| {
        c.data_dir = dd;
        c.health_timeout = 60;
    })
    .await;
    assert!(
        eventually(|| services_of(&install) == 1 && plain_containers(&install, true) == 0).await,
        "the app moved: {} services, {} plain containers",
        services_of(&install),
        plain_containers(&install, true)
    );
    let r = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/index.html", app.proxy_port))
        .header("Host", format!("{name}.localhost"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap().trim(), page);
    let log: Value = app
        .audit(&user.token, "per_page=100")
        .await
        .json()
        .await
        .unwrap();
    let moved = log
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "app.move" && e["app"] == name.as_str())
        .unwrap_or_else(|| panic!("no app.move entry: {log}"));
    assert_eq!(moved["username"], "scalefog", "{moved}");
}
