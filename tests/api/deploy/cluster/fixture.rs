//! The two-node swarm the cluster tests share: the second engine in its network namespace, its
//! tear-down, a server with the cluster on and the engine as node 2, and what the tests look at
//! (where tasks run, a request loop through the router).

use super::super::*;

/// One swarm test at a time: they share the namespace, its addresses and the host's swarm.
pub(super) static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub(super) const NETNS: &str = "sfswarm";
const HOST_IF: &str = "sfswarm-h";
pub(super) const HOST_ADDR: &str = "10.231.0.1";
pub(super) const NODE_ADDR: &str = "10.231.0.2";
pub(super) const NODE_ENDPOINT: &str = "tcp://10.231.0.2:2375";
/// The second engine over TLS (see [`SecondEngine::start_tls`]).
pub(super) const NODE_TLS_ENDPOINT: &str = "tcp://10.231.0.2:2376";
pub(super) const DIR: &str = "/tmp/sfswarm-engine";
/// The tests' own way to the second engine: its unix socket, which answers whether it listens
/// on plain tcp or with `--tlsverify`.
const NODE_CONTROL: &str = "unix:///tmp/sfswarm-engine/docker.sock";

pub(super) fn sh(script: &str) -> (bool, String) {
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
pub(super) fn node_docker(args: &str) -> String {
    sh(&format!("timeout 20 docker -H {NODE_CONTROL} {args}")).1
}

/// The second engine's TLS files (PEM text): the CA that signs the server's and clients'
/// certificates, and the server's own certificate and key.
pub(super) struct ServerTls {
    pub(super) ca: String,
    pub(super) cert: String,
    pub(super) key: String,
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
    let mut nsenter = Command::new("nsenter");
    // The cluster tests' lock (`flock /tmp/sfswarm.lock cargo test …`) is a descriptor this
    // process inherited: a dockerd left behind by an interrupted test would hold it for ever and
    // block every later run. Nothing past stderr is the engine's to keep.
    // SAFETY: close_range is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut nsenter, || {
            libc::close_range(
                3,
                libc::c_uint::MAX,
                libc::CLOSE_RANGE_CLOEXEC as libc::c_int,
            );
            Ok(())
        });
    }
    nsenter
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
pub(super) struct SecondEngine {
    /// Installations whose services are removed from the swarm at the end.
    installs: std::sync::Mutex<Vec<String>>,
    /// The `nsenter … dockerd` process, reaped once the tear-down stopped it.
    dockerd: std::process::Child,
    listen: Listen,
}

impl SecondEngine {
    pub(super) fn start() -> SecondEngine {
        SecondEngine::start_with(None)
    }

    /// [`SecondEngine::start`]; with `insecure_registry` (`host:port`), the engine also pulls
    /// from that registry over plain HTTP.
    pub(super) fn start_with(insecure_registry: Option<&str>) -> SecondEngine {
        SecondEngine::start_opts(insecure_registry, None, Listen::Plain)
    }

    /// The engine with only a TLS endpoint ([`NODE_TLS_ENDPOINT`], `--tlsverify`) serving
    /// `tls`'s certificate and accepting clients whose certificates its CA signed.
    pub(super) fn start_tls(tls: &ServerTls) -> SecondEngine {
        SecondEngine::start_opts(None, Some(tls), Listen::Tls)
    }

    /// The engine on its unix socket only (the caller reaches it some other way, over SSH).
    pub(super) fn start_unix_only() -> SecondEngine {
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
    pub(super) fn kill(&mut self) {
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
    pub(super) fn restart(&mut self) {
        self.dockerd = spawn_dockerd(None, self.listen);
        assert!(
            wait_for_dockerd(),
            "the second dockerd did not start again: {}",
            sh(&format!("tail -20 {DIR}/log")).1
        );
    }

    pub(super) fn watch(&self, app: &TestApp) {
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
    pub(super) async fn through_router(&self, path: &str) -> Result<String, String> {
        self.via_router(&reqwest::Client::new(), path).await
    }

    /// Commits `page` as the app's index (served by [`SERVE`]), pushes it and checks the router
    /// serves it; prints the time from the push for the cluster benchmark, as `what`.
    pub(super) async fn push_page(&self, page: &str, what: &str) {
        let sha = self.repo.commit(page, Some(&dockerfile("", SERVE)));
        let pushed = std::time::Instant::now();
        let (r, lines) = self.push(&sha).await;
        assert!(r.is_ok(), "{r:?}\n{}", lines.join("\n"));
        assert_eq!(
            self.through_router("/index.html").await.as_deref(),
            Ok(page)
        );
        println!("bench: push to serving, {what}: {:?}", pushed.elapsed());
    }

    /// The node named `name`, as `GET /v1/nodes` shows it to the admin.
    pub(super) async fn node(&self, name: &str) -> Value {
        let nodes: Value = self
            .app
            .get("/v1/nodes", Some(&self.user.token))
            .await
            .json()
            .await
            .unwrap();
        nodes
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == name)
            .unwrap_or_else(|| panic!("no node {name}: {nodes}"))
            .clone()
    }

    /// `POST /v1/nodes` with `fields` as the admin: its status and body.
    pub(super) async fn add_node(&self, fields: &[(&str, &str)]) -> (StatusCode, String) {
        let r = self
            .app
            .post_form("/v1/nodes", fields, Some(&self.user.token))
            .await;
        (r.status(), r.text().await.unwrap())
    }
}

/// A server with the cluster on and the second engine added as node 2 in `region` (created
/// when it is not region 1), and an app in that region, ready to push.
pub(super) async fn cluster_fixture(engine: &SecondEngine, region: &str) -> Fixture {
    cluster_fixture_with(
        engine,
        region,
        &[("address", NODE_ENDPOINT), ("insecure", "true")],
    )
    .await
}

/// [`cluster_fixture`], adding the node with `node` (its `address` and how to reach it).
pub(super) async fn cluster_fixture_with(
    engine: &SecondEngine,
    region: &str,
    node: &[(&str, &str)],
) -> Fixture {
    cluster_fixture_prepared(engine, region, node, |_| {}).await
}

/// [`cluster_fixture_with`], calling `prepare` with the answer of `POST /v1/cluster` before the
/// node is added (to authorize Scalefog's SSH key there, say).
pub(super) async fn cluster_fixture_prepared(
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
pub(super) fn on_node_2(install: &str) -> usize {
    node_docker(&format!(
        "ps -q --filter label=scalefog.swarm.install={install}"
    ))
    .split_whitespace()
    .count()
}

pub(super) fn install_of(f: &Fixture) -> String {
    std::fs::read_to_string(f.app.data_dir.join("install.id"))
        .unwrap()
        .trim()
        .to_string()
}

/// The app's swarm tasks' containers on the host engine (node 1).
pub(super) fn on_node_1(install: &str) -> usize {
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
pub(super) async fn eventually(mut check: impl FnMut() -> bool) -> bool {
    for _ in 0..240 {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    false
}

/// Waits (bounded) until the installation's app runs one replica on each node; whether it does.
pub(super) async fn one_replica_per_node(install: &str) -> bool {
    eventually(|| on_node_1(install) == 1 && on_node_2(install) == 1).await
}

/// Runs `work` while a [`request_loop`] of GETs goes through the router, until `work` is done;
/// every request must get one of `pages`. Prints the count for the cluster benchmark as `what`.
pub(super) async fn without_a_failed_request<T>(
    f: &Fixture,
    pages: &[&str],
    what: &str,
    work: impl std::future::Future<Output = T>,
) -> T {
    let done = std::sync::atomic::AtomicBool::new(false);
    let since = std::time::Instant::now();
    let (out, seen) = tokio::join!(
        async {
            let out = work.await;
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            out
        },
        request_loop(f, pages, since, Duration::ZERO, || done
            .load(std::sync::atomic::Ordering::SeqCst))
    );
    assert!(
        seen.late.is_empty(),
        "failed during the {what}: {:#?}",
        seen.late
    );
    assert_eq!(seen.failed, 0);
    println!(
        "bench: {what} over two nodes: {} requests, {} failed",
        seen.total, seen.failed
    );
    out
}

/// Pushes the app with `web=2` and waits until one replica runs on each node.
pub(super) async fn spread_over_both(f: &Fixture, page: &str) {
    let r = f
        .app
        .scale(&f.user.token, &f.name, &json!({"web": 2}))
        .await;
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    f.push_page(page, "two replicas over two nodes").await;
    let install = install_of(f);
    // The set's replicas are one service, spread over the region's nodes by the swarm.
    assert!(
        one_replica_per_node(&install).await,
        "one replica per node: {} on node 1, {} on node 2; tasks: {}",
        on_node_1(&install),
        on_node_2(&install),
        sh("docker service ls -q | xargs -r -n1 docker service ps --no-trunc --format '{{.Name}} {{.Node}} {{.DesiredState}} {{.CurrentState}} {{.Error}}'").1
    );
}

/// What a [`request_loop`] saw.
pub(super) struct Requests {
    /// The failures after the grace period.
    pub(super) late: Vec<String>,
    pub(super) total: usize,
    pub(super) failed: usize,
    /// When (from the loop's `since`) the last request that failed or took a second or more
    /// ended: every request after it was served at once.
    pub(super) slow_until: Option<Duration>,
}

/// GETs through the router until `done` (bounded), counting failures and failures after
/// `grace` from `since`. Any of `pages` is a success.
pub(super) async fn request_loop(
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

/// The swarm services of an installation.
pub(super) fn services_of(install: &str) -> usize {
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
pub(super) fn plain_containers(install: &str, all: bool) -> usize {
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

/// The app's image tags on the second engine.
pub(super) fn images_on_node_2(install: &str) -> Vec<String> {
    node_docker(&format!(
        "images --filter label=scalefog.install={install} --format '{{{{.Repository}}}}:{{{{.Tag}}}}'"
    ))
    .lines()
    .map(str::to_string)
    .collect()
}
