//! The cluster against a real two-node Docker Swarm: the host engine (manager, advertised on
//! 10.231.0.1) and a second `dockerd` in its own network namespace (10.231.0.2), reachable only
//! through a veth pair (see ../shared/TESTING.md). The tests run one at a time ([`SERIAL`]) and
//! tear everything down even when they fail ([`SecondEngine`]'s `Drop`, and a clean-up of
//! leftovers before starting).

use super::*;

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
}

impl SecondEngine {
    fn start() -> SecondEngine {
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
        let _child = Command::new("nsenter")
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
                };
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        teardown(&[]);
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
            Err(format!("{code}: {body}"))
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
    node_docker(&format!("ps -q --filter label=scalefog.install={install}"))
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
    let (r, lines) = f.push(&sha).await;
    assert!(r.is_ok(), "{r:?}\n{}", lines.join("\n"));
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
