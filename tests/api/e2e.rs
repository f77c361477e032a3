//! End to end, the way a user deploys: the real `git` pushes over OpenSSH `ssh` to the SSH
//! server, whose pre-receive hook hands the push to the deploy engine, which builds and runs the
//! busybox test app in real Docker while the pusher watches the `remote:` lines.
//!
//! The crash tests run the real `scalefog` binary, kill it with SIGKILL in the middle of a deploy
//! (when the pusher has seen the step it is in), and start it again on the same data dir.

use crate::dockerapp::*;
use crate::gitssh::*;
use crate::helpers::*;
use scalefog::routing::Target;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

// ---------------------------------------------------------------------------------------------
// Fixtures

/// The pusher's side: an SSH key registered with the server, an app, and a work tree holding the
/// busybox app.
pub(crate) struct Pusher {
    _dir: tempfile::TempDir,
    pub(crate) key: Key,
    pub(crate) name: String,
    pub(crate) wt: PathBuf,
    /// The server's SSH port (it changes when the server is restarted).
    pub(crate) ssh_port: u16,
}

impl Pusher {
    pub(crate) async fn new(api: &Api, token: &str, ssh_port: u16, prefix: &str) -> Pusher {
        let dir = tempfile::tempdir().unwrap();
        let key = keygen(dir.path(), "pusher").await;
        add_key(api, token, &key).await;
        let name = unique(prefix);
        api.create_app(token, &name).await;
        let wt = dir.path().join("app");
        std::fs::create_dir_all(wt.join("www")).unwrap();
        std::fs::copy("/bin/busybox", wt.join("busybox")).expect("/bin/busybox exists");
        ok(git(&wt, &key, ssh_port, &["init", "-q", "-b", "main"]).await);
        Pusher {
            _dir: dir,
            key,
            name,
            wt,
            ssh_port,
        }
    }

    fn remote(&self) -> String {
        format!("ssh://git@127.0.0.1:{}/{}.git", self.ssh_port, self.name)
    }

    /// Commits this page with this Dockerfile (or none) on the current branch; returns the sha.
    pub(crate) async fn commit(&self, page: &str, dockerfile: Option<&str>) -> String {
        std::fs::write(self.wt.join("www/index.html"), page).unwrap();
        let path = self.wt.join("Dockerfile");
        match dockerfile {
            Some(d) => std::fs::write(path, d).unwrap(),
            None => {
                let _ = std::fs::remove_file(path);
            }
        }
        commit(&self.wt, &self.key, self.ssh_port, page).await;
        rev_parse(&self.wt, &self.key, self.ssh_port, "HEAD").await
    }

    pub(crate) fn push_command(&self, refspecs: &[&str]) -> tokio::process::Command {
        let remote = self.remote();
        let mut args = vec!["push", remote.as_str()];
        args.extend_from_slice(refspecs);
        git_command(&self.wt, &self.key, self.ssh_port, &args)
    }

    pub(crate) async fn push(&self, refspecs: &[&str]) -> Output {
        self.push_command(refspecs)
            .output()
            .await
            .expect("git runs")
    }

    /// The sha the server's branch points at, if it exists.
    pub(crate) async fn remote_branch(&self, branch: &str) -> Option<String> {
        let refs = ls_remote(&self.wt, &self.key, self.ssh_port, &self.remote()).await;
        let want = format!("refs/heads/{branch}");
        refs.lines().find_map(|l| {
            let (sha, name) = l.split_once('\t')?;
            (name == want).then(|| sha.to_string())
        })
    }
}

/// Asserts that `lines` appear in `output`, in this order.
fn assert_in_order(output: &str, lines: &[String]) {
    let mut from = 0;
    for line in lines {
        match output[from..].find(line.as_str()) {
            Some(at) => from += at + line.len(),
            None => panic!("expected {line:?} (after the lines before it) in:\n{output}"),
        }
    }
}

/// An in-process server, a user, and a pusher with an app.
///
/// Tests using it run on tokio's single-threaded runtime, like the deploy tests: the Docker
/// cleanup then runs while the server's tasks are frozen, so its reconciler cannot see the app's
/// container go and start a new one behind the cleanup's back.
struct World {
    app: TestApp,
    user: TestUser,
    p: Pusher,
    _cleanup: DockerCleanup,
}

async fn world(prefix: &str) -> World {
    let app = spawn_app_with(|c| c.health_timeout = 10).await;
    let cleanup = DockerCleanup::of(&app);
    let user = app.user("alice").await;
    let p = Pusher::new(&app, &user.token, app.ssh_port, prefix).await;
    World {
        app,
        user,
        p,
        _cleanup: cleanup,
    }
}

impl World {
    /// GET `/` through the address the route table holds for the app now.
    async fn page(&self) -> String {
        let target = self.app.services.routes.get(&self.p.name);
        let Some(Target::Serving(addr)) = target else {
            panic!("{} is not serving: {target:?}", self.p.name);
        };
        let r = reqwest::get(format!("http://{addr}/")).await.unwrap();
        assert_eq!(r.status(), 200);
        r.text().await.unwrap().trim().to_string()
    }

    /// The app's record.
    async fn instance(&self) -> Value {
        success_json(self.app.get_app(&self.user.token, &self.p.name).await).await
    }

    /// The app's builds, newest first.
    async fn builds(&self) -> Value {
        success_json(self.app.builds(&self.user.token, &self.p.name).await).await
    }

    fn containers(&self) -> Vec<String> {
        app_containers(&self.p.name)
    }
}

/// Every container of the app, running or not.
pub(crate) fn app_containers(app: &str) -> Vec<String> {
    docker(&[
        "ps",
        "-aq",
        "--no-trunc",
        "--filter",
        &format!("label=scalefog.app={app}"),
    ])
    .split_whitespace()
    .map(String::from)
    .collect()
}

fn stderr(out: &Output) -> String {
    text(&out.stderr)
}

/// The JSON body of an API answer that must be a success.
pub(crate) async fn success_json(r: reqwest::Response) -> Value {
    assert!(
        r.status().is_success(),
        "GET {}: {}",
        r.url().path(),
        r.status()
    );
    r.json().await.unwrap()
}

// ---------------------------------------------------------------------------------------------
// Pushes through the in-process server

#[tokio::test]
async fn a_git_push_over_ssh_deploys_showing_each_step_and_a_second_push_serves_new_content() {
    let w = world("e2e-first").await;
    let sha = w.p.commit("first", Some(&dockerfile("", SERVE))).await;
    let out = ok(w.p.push(&["main"]).await);
    assert_in_order(
        &stderr(&out),
        &[
            format!("remote: -----> Building {} ({})", w.p.name, &sha[..7]),
            "remote: -----> Releasing v1".into(),
            "remote: -----> Health check passed".into(),
            format!("remote: =====> Deployed: http://{}.localhost", w.p.name),
        ],
    );
    assert_eq!(w.page().await, "first");
    assert_eq!(w.p.remote_branch("main").await.as_deref(), Some(&*sha));
    // The image carries the labels that find it again (they travel in the build's Dockerfile).
    let labels = inspect(&format!("scalefog/{}:v1", w.p.name))["Config"]["Labels"].clone();
    assert_eq!(labels["scalefog.app"], w.p.name.as_str(), "{labels}");
    assert_eq!(labels["scalefog.release"], "1", "{labels}");
    assert_eq!(
        labels["scalefog.install"],
        w._cleanup.0.as_str(),
        "{labels}"
    );

    let sha = w.p.commit("second", Some(&dockerfile("", SERVE))).await;
    let out = ok(w.p.push(&["main"]).await);
    assert_in_order(
        &stderr(&out),
        &[
            format!("remote: -----> Building {} ({})", w.p.name, &sha[..7]),
            "remote: -----> Releasing v2".into(),
            "remote: -----> Health check passed".into(),
            "remote: =====> Deployed: ".into(),
        ],
    );
    assert_eq!(w.page().await, "second");
    let inst = w.instance().await;
    assert_eq!(inst["status"], "running");
    assert_eq!(inst["release"], 2);
}

#[tokio::test]
async fn a_broken_build_pushed_over_ssh_is_rejected_the_branch_stays_and_the_old_release_serves() {
    let w = world("e2e-broken").await;
    let good = w.p.commit("good", Some(&dockerfile("", SERVE))).await;
    ok(w.p.push(&["main"]).await);
    let broken = dockerfile("RUN [\"/bin/busybox\", \"false\"]\n", SERVE);
    let bad = w.p.commit("bad", Some(&broken)).await;
    let out = w.p.push(&["main"]).await;
    assert!(!out.status.success(), "the push fails");
    let err = stderr(&out);
    assert_in_order(
        &err,
        &[
            format!("remote: -----> Building {} ({})", w.p.name, &bad[..7]),
            "remote:  !     ".into(),
            "! [remote rejected] main -> main".into(),
        ],
    );
    assert!(!err.contains("Releasing v2"), "{err}");
    // The failure is said once, in the `remote:  !` lines, not again as a `scalefog:` line.
    assert_eq!(err.matches("returned a non-zero code").count(), 1, "{err}");
    assert!(!err.contains("remote: scalefog:"), "{err}");
    assert_eq!(w.p.remote_branch("main").await.as_deref(), Some(&*good));
    assert_eq!(w.page().await, "good");
    let builds = w.builds().await;
    assert_eq!(builds[0]["status"], "failed", "{builds}");
    assert_eq!(builds[0]["commit"], bad.as_str());
    assert_eq!(builds[1]["status"], "succeeded", "{builds}");
    assert_eq!(w.instance().await["release"], 1);
}

#[tokio::test]
async fn a_push_without_a_dockerfile_is_rejected_saying_what_is_expected() {
    let w = world("e2e-nodockerfile").await;
    w.p.commit("no dockerfile here", None).await;
    let out = w.p.push(&["main"]).await;
    assert!(!out.status.success(), "the push fails");
    let err = stderr(&out);
    for want in [
        "remote:  !     no Dockerfile at the root of commit",
        "remote:   - a file named 'Dockerfile' at the top of the repository",
        "listens on $PORT",
        "has no release yet",
        "! [remote rejected] main -> main",
    ] {
        assert!(err.contains(want), "{want:?} in:\n{err}");
    }
    // Said once, clearly: not repeated as a `remote: scalefog: …` line.
    assert_eq!(err.matches("no Dockerfile at the root").count(), 1, "{err}");
    assert!(!err.contains("remote: scalefog:"), "{err}");
    assert_eq!(
        w.p.remote_branch("main").await,
        None,
        "the branch is not created"
    );
    assert_eq!(w.instance().await["status"], "failed");
    assert!(w.containers().is_empty());
}

#[tokio::test]
async fn a_push_to_another_branch_is_kept_without_deploying_and_the_deploy_branch_cannot_be_deleted()
 {
    let w = world("e2e-branches").await;
    let sha =
        w.p.commit("feature work", Some(&dockerfile("", SERVE)))
            .await;
    let out = ok(w.p.push(&["main:feature"]).await);
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "remote: -----> Not deploying: only pushes to 'main' deploy {}",
            w.p.name
        )),
        "{err}"
    );
    assert!(!err.contains("Building"), "{err}");
    assert_eq!(w.p.remote_branch("feature").await.as_deref(), Some(&*sha));
    assert_eq!(w.builds().await, serde_json::json!([]));
    assert_eq!(w.instance().await["status"], "created");
    assert!(w.containers().is_empty(), "nothing runs");

    // Once deployed, the deploy branch stays.
    ok(w.p.push(&["main"]).await);
    let out = w.p.push(&[":main"]).await;
    assert!(!out.status.success(), "deleting main fails");
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "deleting 'main', the deploy branch of {}, is not allowed",
            w.p.name
        )),
        "{err}"
    );
    assert!(err.contains("! [remote rejected] main"), "{err}");
    assert_eq!(w.p.remote_branch("main").await.as_deref(), Some(&*sha));
    assert_eq!(w.page().await, "feature work");
}

#[tokio::test]
async fn master_deploys_when_it_is_the_only_branch_pushed_and_not_alongside_another_branch() {
    let w = world("e2e-master").await;
    ok(git(
        &w.p.wt,
        &w.p.key,
        w.p.ssh_port,
        &["checkout", "-q", "-b", "master"],
    )
    .await);
    let sha =
        w.p.commit("from master", Some(&dockerfile("", SERVE)))
            .await;
    let out = ok(w.p.push(&["master"]).await);
    assert_in_order(
        &stderr(&out),
        &[
            format!("remote: -----> Building {} ({})", w.p.name, &sha[..7]),
            "remote: -----> Releasing v1".into(),
            "remote: =====> Deployed: ".into(),
        ],
    );
    assert_eq!(w.page().await, "from master");
    let builds = w.builds().await;
    assert_eq!(builds[0]["branch"], "master");

    // With another branch in the same push, master is just a branch.
    w.p.commit("master and dev", Some(&dockerfile("", SERVE)))
        .await;
    let out = ok(w.p.push(&["master", "master:dev"]).await);
    assert!(
        stderr(&out).contains("-----> Not deploying"),
        "{}",
        stderr(&out)
    );
    assert_eq!(w.page().await, "from master");
    assert_eq!(w.instance().await["release"], 1);
}

#[tokio::test]
async fn a_followed_log_stream_carries_on_with_the_new_container_after_a_push() {
    let w = world("e2e-follow").await;
    w.p.commit("one", Some(&dockerfile("", SERVE))).await;
    ok(w.p.push(&["main"]).await);
    let mut r = w
        .app
        .logs(&w.user.token, &w.p.name, "follow=1&tail=0")
        .await;
    assert_eq!(r.status(), 200);
    // The stream attaches once its body is first polled: read it from now on.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let reader = tokio::spawn(async move {
        while let Ok(Some(chunk)) = r.chunk().await {
            let _ = tx.send(String::from_utf8_lossy(&chunk).into_owned());
        }
    });
    w.p.commit("two", Some(&dockerfile("", SERVE))).await;
    ok(w.p.push(&["main"]).await);
    assert_eq!(w.page().await, "two");
    // Requests to the new container, until one shows up in the stream opened before the push.
    let marker = format!("/after-push-{}", hex::encode(rand::random::<[u8; 4]>()));
    let Some(Target::Serving(addr)) = w.app.services.routes.get(&w.p.name) else {
        panic!("not serving")
    };
    let url = format!("http://{addr}{marker}");
    let producer = tokio::spawn(async move {
        loop {
            let _ = reqwest::get(&url).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let mut seen = String::new();
    // A backstop against a hang, not a timing assertion: the old container retires seconds
    // after the switch.
    let found = tokio::time::timeout(Duration::from_secs(90), async {
        while let Some(chunk) = rx.recv().await {
            seen.push_str(&chunk);
            if seen
                .lines()
                .any(|l| l.starts_with("data: ") && l.contains(&marker))
            {
                return true;
            }
        }
        false
    })
    .await;
    producer.abort();
    reader.abort();
    assert_eq!(found, Ok(true), "the new container's line arrives: {seen}");
}

// ---------------------------------------------------------------------------------------------
// SIGKILL of the real binary in the middle of a deploy

/// `scalefog serve` (the real binary) on free ports, killed with SIGKILL when dropped.
struct Server {
    child: tokio::process::Child,
    http_port: u16,
    ssh_port: u16,
}

impl Server {
    async fn start(data_dir: &Path) -> Server {
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
                "serve",
            ])
            .env("SCALEFOG_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("scalefog starts");
        let mut log = BufReader::new(child.stderr.take().unwrap()).lines();
        // The start-up line names both bound ports: `... port=N ssh_port=M ...`.
        let field = |line: &str, name: &str| -> Option<u16> {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name)?.parse().ok())
        };
        let (http_port, ssh_port) = loop {
            let line = log
                .next_line()
                .await
                .unwrap()
                .expect("scalefog logs its ports before exiting");
            if let (Some(h), Some(s)) = (field(&line, "port="), field(&line, "ssh_port=")) {
                break (h, s);
            }
        };
        // Keep draining the log so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = log.next_line().await {} });
        Server {
            child,
            http_port,
            ssh_port,
        }
    }

    fn api(&self) -> Api {
        Api::new(format!("http://127.0.0.1:{}", self.http_port))
    }

    async fn kill9(mut self) {
        self.child.start_kill().expect("SIGKILL");
        self.child.wait().await.unwrap();
    }
}

/// GET `/` of a container through its published port.
async fn container_page(id: &str) -> String {
    let port = docker(&["port", id, "5000/tcp"]);
    let addr = port.lines().next().expect("a published port");
    let r = reqwest::get(format!("http://{addr}/")).await.unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap().trim().to_string()
}

/// Deploys v1, starts a push of `slow` (a Dockerfile that lingers in the step under test), kills
/// the server with SIGKILL once the pusher has printed `marker`, and starts it again on the same
/// data dir. Then: the push failed and the branch is where v1 left it, v1's container still runs
/// untouched and serves, nothing else of the installation is left in Docker, and every record is
/// there, with the interrupted build marked failed.
async fn kill_during_a_deploy_then_restart(prefix: &str, slow: &str, marker: &str) {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().join("data");
    let server = Server::start(&data_dir).await;
    let cleanup = DockerCleanup::of_data_dir(&data_dir);
    let token = server.api().user("alice").await.token;
    let mut p = Pusher::new(&server.api(), &token, server.ssh_port, prefix).await;
    let v1 = p.commit("v1", Some(&dockerfile("", SERVE))).await;
    ok(p.push(&["main"]).await);
    let containers = app_containers(&p.name);
    assert_eq!(containers.len(), 1);
    let v1_container = containers[0].clone();
    assert_eq!(container_page(&v1_container).await, "v1");
    let started = inspect(&v1_container)["State"]["StartedAt"].clone();

    let v2 = p.commit("v2", Some(slow)).await;
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
            break;
        }
    }
    server.kill9().await;
    while let Ok(Some(line)) = lines.next_line().await {
        seen.push_str(&line);
        seen.push('\n');
    }
    assert!(
        !push.wait().await.unwrap().success(),
        "a push cut by the crash fails:\n{seen}"
    );

    let server = Server::start(&data_dir).await;
    p.ssh_port = server.ssh_port;
    // Reconcile at start removes what the interrupted deploy left; wait for it.
    let install = cleanup.filter();
    let wanted = (
        vec![v1_container.clone()],
        vec![format!("scalefog/{}:v1", p.name)],
    );
    let mut left = (vec![], vec![]);
    for _ in 0..150 {
        let list = |args: &[&str]| -> Vec<String> {
            docker(args).split_whitespace().map(String::from).collect()
        };
        left = (
            list(&["ps", "-aq", "--no-trunc", "--filter", &install]),
            list(&[
                "images",
                "--format",
                "{{.Repository}}:{{.Tag}}",
                "--filter",
                &install,
            ]),
        );
        if left == wanted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        left, wanted,
        "no orphan container; only the serving release keeps an image"
    );
    let state = &inspect(&v1_container)["State"];
    assert_eq!(state["Running"], true);
    assert_eq!(state["StartedAt"], started, "v1 was not restarted");
    assert_eq!(container_page(&v1_container).await, "v1");
    assert_eq!(p.remote_branch("main").await.as_deref(), Some(&*v1));

    let api = server.api();
    let inst = success_json(api.get_app(&token, &p.name).await).await;
    assert_eq!(inst["status"], "running", "{inst}");
    assert_eq!(inst["release"], 1, "{inst}");
    let releases = success_json(api.releases(&token, &p.name).await).await;
    assert_eq!(releases.as_array().map(Vec::len), Some(1), "{releases}");
    let builds = success_json(api.builds(&token, &p.name).await).await;
    assert_eq!(builds[0]["commit"], v2.as_str(), "{builds}");
    assert_eq!(builds[0]["status"], "failed", "{builds}");
    assert!(
        builds[0]["error"]
            .as_str()
            .unwrap_or("")
            .contains("interrupted"),
        "{builds}"
    );
    assert_eq!(builds[1]["commit"], v1.as_str());
    assert_eq!(builds[1]["status"], "succeeded");
    let id = builds[0]["id"].as_str().unwrap();
    let log = success_json(api.build_log(&token, &p.name, id).await).await;
    assert!(
        log["log"].as_str().unwrap_or("").contains("Interrupted"),
        "{log}"
    );
    // The push cut by the crash is on record as rejected, not left running forever.
    server.kill9().await;
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
    assert!(
        cut.message.as_deref().unwrap_or("").contains("interrupted"),
        "{cut:?}"
    );
    assert_eq!(
        pushes.items[1].outcome,
        scalefog::domain::PushOutcome::Accepted
    );
    drop(cleanup);
}

#[tokio::test]
async fn killing_scalefog_during_a_build_leaves_the_previous_release_serving_and_nothing_behind() {
    // The build step announces itself, then outlasts the test.
    let slow = dockerfile(
        "RUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo slow-step-started; /bin/busybox sleep 600\"]\n",
        SERVE,
    );
    kill_during_a_deploy_then_restart("e2e-kill-build", &slow, "slow-step-started").await;
}

#[tokio::test]
async fn killing_scalefog_during_a_health_check_leaves_the_previous_release_serving_and_nothing_behind()
 {
    // The new release listens only after ten minutes: its health check is still running.
    let slow = dockerfile(
        "",
        r#"CMD ["/bin/busybox", "sh", "-c", "/bin/busybox sleep 600; exec /bin/busybox httpd -f -p $PORT -h /www"]"#,
    );
    kill_during_a_deploy_then_restart("e2e-kill-health", &slow, "Health check attempt").await;
}
