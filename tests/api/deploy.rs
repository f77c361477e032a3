//! The deploy engine against real git and real Docker: every test builds a `FROM scratch` image
//! holding Debian's static busybox, whose `httpd` serves `/www` on `$PORT`.
//!
//! Until the SSH server lands, pushes are driven the way its pre-receive hook will drive them: a
//! real commit pushed to a local bare repository, handed to the deployer as a [`Push`].

use crate::dockerapp::*;
use crate::helpers::*;
use reqwest::StatusCode;
use scalefog::push::{Progress, Push, PushHandler, RefUpdate, Verdict};
use scalefog::routing::Target;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A working tree and the bare repository it pushes to (standing in for the app's repo).
struct Repo {
    _dir: tempfile::TempDir,
    work: PathBuf,
    bare: PathBuf,
}

impl Repo {
    fn new() -> Repo {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        let bare = dir.path().join("app.git");
        std::fs::create_dir_all(work.join("www")).unwrap();
        git(dir.path(), &["init", "-q", "--bare", "app.git"]);
        git(&work, &["init", "-q", "-b", "main"]);
        std::fs::copy("/bin/busybox", work.join("busybox")).expect("/bin/busybox exists");
        Repo {
            _dir: dir,
            work,
            bare,
        }
    }

    /// Commits the app with this page and Dockerfile, pushes it to the bare repo; returns the sha.
    fn commit(&self, page: &str, dockerfile: Option<&str>) -> String {
        std::fs::write(self.work.join("www/index.html"), page).unwrap();
        match dockerfile {
            Some(d) => std::fs::write(self.work.join("Dockerfile"), d).unwrap(),
            None => {
                let _ = std::fs::remove_file(self.work.join("Dockerfile"));
            }
        }
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "-q", "-m", page]);
        let sha = git(&self.work, &["rev-parse", "HEAD"]);
        let bare = self.bare.to_string_lossy().to_string();
        git(
            &self.work,
            &["push", "-q", "-f", &bare, "HEAD:refs/heads/main"],
        );
        sha
    }
}

/// A server, a user, an app and a repo, ready to deploy.
struct Fixture {
    app: TestApp,
    user: TestUser,
    name: String,
    repo: Repo,
    _cleanup: DockerCleanup,
}

async fn fixture(prefix: &str) -> Fixture {
    fixture_with(prefix, |_| {}).await
}

async fn fixture_with(prefix: &str, tweak: impl FnOnce(&mut scalefog::config::Config)) -> Fixture {
    let app = spawn_app_with(|c| {
        c.health_timeout = 10;
        tweak(c)
    })
    .await;
    let cleanup = DockerCleanup::of(&app);
    let user = app.user("alice").await;
    let name = unique(prefix);
    app.create_app(&user.token, &name).await;
    Fixture {
        app,
        user,
        name,
        repo: Repo::new(),
        _cleanup: cleanup,
    }
}

impl Fixture {
    /// Pushes `sha` to main the way the pre-receive hook will: through the push handler.
    async fn push(&self, sha: &str) -> (Result<(), String>, Vec<String>) {
        let s = &self.app.services;
        let push = self.push_of(&self.name, &self.repo, sha);
        let (progress, mut rx) = Progress::channel();
        let r = s.deployer.handle(&push, &progress).await;
        drop(progress);
        let mut lines = vec![];
        while let Some(l) = rx.recv().await {
            lines.push(l);
        }
        let r = match r {
            Ok(Verdict::Accepted) => Ok(()),
            Ok(Verdict::Rejected { reason }) => Err(reason),
            Err(e) => Err(e.to_string()),
        };
        (r, lines)
    }

    /// The push of `sha` from `repo` to app `name`'s main branch, as the pre-receive hook hands it.
    fn push_of(&self, name: &str, repo: &Repo, sha: &str) -> Push {
        let s = &self.app.services;
        let inst = s.store.read(|r| r.instance(name)).unwrap().unwrap();
        let user = s.accounts.user(inst.owner_id).unwrap().unwrap();
        Push {
            id: unique("push"),
            app: inst,
            user,
            origin: scalefog::domain::Origin::CLI,
            updates: vec![RefUpdate {
                old: "0".repeat(40),
                new: sha.to_string(),
                name: "refs/heads/main".into(),
            }],
            repo_dir: repo.bare.clone(),
            git_env: vec![("GIT_DIR".into(), repo.bare.to_string_lossy().to_string())],
        }
    }

    async fn deploy(&self, page: &str, dockerfile_text: &str) -> Vec<String> {
        let sha = self.repo.commit(page, Some(dockerfile_text));
        let (r, lines) = self.push(&sha).await;
        assert!(r.is_ok(), "deploy failed: {r:?}\n{}", lines.join("\n"));
        lines
    }

    fn target(&self) -> Option<Target> {
        self.app.services.routes.get(&self.name)
    }

    /// GET through the address the router would use now.
    async fn get(&self, path: &str) -> Result<(u16, String), String> {
        let Some(Target::Serving(addr)) = self.target() else {
            return Err(format!("not serving: {:?}", self.target()));
        };
        let r = reqwest::get(format!("http://{addr}{path}"))
            .await
            .map_err(|e| e.to_string())?;
        let code = r.status().as_u16();
        Ok((code, r.text().await.map_err(|e| e.to_string())?))
    }

    async fn body(&self, path: &str) -> String {
        let (code, body) = self.get(path).await.expect("app answers");
        assert_eq!(code, 200, "GET {path}: {body}");
        body.trim().to_string()
    }

    async fn instance(&self) -> Value {
        self.app
            .get_app(&self.user.token, &self.name)
            .await
            .json()
            .await
            .unwrap()
    }

    fn current_container(&self) -> String {
        self.app
            .services
            .store
            .read(|r| r.deployment(&self.name))
            .unwrap()
            .expect("a deployment")
            .processes[0]
            .id
            .clone()
    }

    fn app_containers(&self) -> Vec<String> {
        docker(&[
            "ps",
            "-aq",
            "--no-trunc",
            "--filter",
            &format!("label=scalefog.app={}", self.name),
        ])
        .split_whitespace()
        .map(String::from)
        .collect()
    }
}

#[tokio::test]
async fn a_first_push_deploys_and_a_second_serves_new_content_with_no_failed_request_during_the_switch()
 {
    let f = fixture("switch").await;
    let lines = f.deploy("first", &dockerfile("", SERVE)).await;
    let text = lines.join("\n");
    assert!(
        text.contains(&format!("-----> Building {} (", f.name)),
        "{text}"
    );
    assert!(text.contains("-----> Releasing v1"), "{text}");
    assert!(text.contains("-----> Health check passed"), "{text}");
    assert!(
        text.contains(&format!("=====> Deployed: http://{}.localhost:", f.name)),
        "{text}"
    );
    assert_eq!(f.body("/").await, "first");
    let inst = f.instance().await;
    assert_eq!(inst["status"], "running");
    assert_eq!(inst["release"], 1);

    // A client polls through the route table for the whole second deploy.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let routes = f.app.services.routes.clone();
    let name = f.name.clone();
    let poller = {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut seen_second = false;
            while !stop.load(Ordering::Relaxed) {
                let Some(Target::Serving(addr)) = routes.get(&name) else {
                    failed.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                match client.get(format!("http://{addr}/")).send().await {
                    Ok(r) if r.status() == 200 => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        seen_second |= r.text().await.unwrap_or_default().trim() == "second";
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            seen_second
        })
    };
    f.deploy("second", &dockerfile("", SERVE)).await;
    // Keep polling past the old container's grace period and stop.
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, Ordering::Relaxed);
    let seen_second = poller.await.unwrap();
    assert!(seen_second, "the poller saw the new release");
    assert!(ok.load(Ordering::Relaxed) > 0);
    assert_eq!(failed.load(Ordering::Relaxed), 0, "no failed request");
    assert_eq!(f.body("/").await, "second");
    // The old container is retired after its grace period: only the current one is left.
    let mut left = vec![];
    for _ in 0..100 {
        left = f.app_containers();
        if left.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(left, vec![f.current_container()]);
    let releases: Value = f
        .app
        .releases(&f.user.token, &f.name)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(releases[0]["id"], "v2");
    assert_eq!(releases[0]["current"], true);
    assert_eq!(releases[1]["status"], "superseded");
}

#[tokio::test]
async fn a_failing_build_is_rejected_recorded_with_its_log_and_the_previous_release_keeps_serving()
{
    let f = fixture("badbuild").await;
    f.deploy("good", &dockerfile("", SERVE)).await;
    let sha = f.repo.commit(
        "bad",
        Some(&dockerfile(
            r#"RUN ["/bin/busybox", "false"]
"#,
            SERVE,
        )),
    );
    let (r, lines) = f.push(&sha).await;
    let err = r.expect_err("the push is rejected");
    assert!(err.contains("non-zero code"), "{err}");
    assert!(
        lines.iter().any(|l| l.contains("Push rejected")),
        "{lines:?}"
    );
    assert_eq!(f.body("/").await, "good");
    let inst = f.instance().await;
    assert_eq!(
        (inst["status"].as_str(), inst["release"].as_u64()),
        (Some("running"), Some(1))
    );
    let builds: Value = f
        .app
        .builds(&f.user.token, &f.name)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(builds[0]["status"], "failed");
    let id = builds[0]["id"].as_str().unwrap();
    let log: Value = f
        .app
        .build_log(&f.user.token, &f.name, id)
        .await
        .json()
        .await
        .unwrap();
    assert!(log["log"].as_str().unwrap().contains("busybox"), "{log}");
    // No image of the failed build is left behind.
    assert_eq!(
        docker(&["images", "-q", &format!("scalefog/{}:v2", f.name)]),
        ""
    );
}

#[tokio::test]
async fn an_app_that_never_listens_fails_its_health_check_and_leaves_nothing_running() {
    let f = fixture_with("deaf", |c| c.health_timeout = 3).await;
    let sha = f.repo.commit(
        "deaf",
        Some(&dockerfile("", r#"CMD ["/bin/busybox", "sleep", "600"]"#)),
    );
    let (r, lines) = f.push(&sha).await;
    let err = r.expect_err("rejected");
    assert!(err.contains("health check failed"), "{err}");
    assert!(
        lines.iter().any(|l| l.contains("Health check attempt")),
        "attempts are visible: {lines:?}"
    );
    assert!(
        f.app_containers().is_empty(),
        "the new container is removed"
    );
    assert_eq!(f.instance().await["status"], "failed");
}

#[tokio::test]
async fn a_push_without_a_dockerfile_is_rejected_saying_what_is_expected() {
    let f = fixture("nodockerfile").await;
    let sha = f.repo.commit("plain", None);
    let (r, _) = f.push(&sha).await;
    let err = r.expect_err("rejected");
    assert!(
        err.contains("no Dockerfile") && err.contains("$PORT"),
        "{err}"
    );
}

#[tokio::test]
async fn rollback_serves_the_old_content_as_a_new_release() {
    let f = fixture("rollback").await;
    f.deploy("one", &dockerfile("", SERVE)).await;
    f.deploy("two", &dockerfile("", SERVE)).await;
    assert_eq!(f.body("/").await, "two");
    let r = f.app.rollback(&f.user.token, &f.name, &json!({})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let rel: Value = r.json().await.unwrap();
    assert_eq!(rel["id"], "v3");
    assert_eq!(rel["description"], "rollback to v1");
    assert_eq!(f.body("/").await, "one");
    // And forward again to a given release.
    let r = f
        .app
        .rollback(&f.user.token, &f.name, &json!({"release": "v2"}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(f.body("/").await, "two");
}

#[tokio::test]
async fn a_config_var_change_reaches_the_container_as_a_new_release_and_its_value_is_not_listed() {
    let f = fixture("config").await;
    f.deploy("cfg", &dockerfile("", SERVE)).await;
    let r = f
        .app
        .set_config(&f.user.token, &f.name, &json!({"GREETING": "s3cret-hello"}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(f.body("/env.txt").await, "s3cret-hello");
    let inst = f.instance().await;
    assert_eq!(inst["release"], 2);
    let env: Value = f
        .app
        .config(&f.user.token, &f.name)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(env, json!({"GREETING": "s3cret-hello"}));
    let releases = f
        .app
        .releases(&f.user.token, &f.name)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        releases.contains("GREETING") && !releases.contains("s3cret"),
        "{releases}"
    );
    // Unsetting makes another release.
    let r = f.app.unset_config(&f.user.token, &f.name, "GREETING").await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(f.body("/env.txt").await, "");
    assert_eq!(f.instance().await["release"], 3);
}

#[tokio::test]
async fn stop_start_restart_and_delete_act_on_real_containers_and_delete_leaves_nothing() {
    let f = fixture("lifecycle").await;
    f.deploy("life", &dockerfile("", SERVE)).await;
    let first = f.current_container();

    let r = f.app.stop_instance(&f.user.token, &f.name).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (body["success"].as_str(), body["status"].as_str()),
        (Some("true"), Some("stopped"))
    );
    assert_eq!(inspect(&first)["State"]["Running"], false);
    assert_eq!(f.target(), Some(Target::Unavailable("stopped".into())));

    let r = f.app.start_instance(&f.user.token, &f.name).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(inspect(&first)["State"]["Running"], true);
    assert_eq!(f.body("/").await, "life");

    let r = f.app.restart_app(&f.user.token, &f.name).await;
    assert_eq!(r.status(), StatusCode::OK);
    let second = f.current_container();
    assert_ne!(first, second, "restart runs a new container");
    assert_eq!(f.body("/").await, "life");

    let r = f.app.delete_instance(&f.user.token, &f.name).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(f.app_containers().is_empty(), "no container left");
    assert_eq!(
        docker(&[
            "images",
            "-q",
            "--filter",
            &format!("label=scalefog.app={}", f.name)
        ]),
        "",
        "no image left"
    );
    assert!(
        f.app
            .services
            .store
            .read(|r| r.releases_of(&f.name, scalefog::store::Slice::ALL))
            .unwrap()
            .items
            .is_empty(),
        "no release record left"
    );
    assert_eq!(f.target(), None);
}

#[tokio::test]
async fn memory_and_cpu_limits_and_hardening_flags_are_on_the_container() {
    let f = fixture("limits").await;
    let r = f
        .app
        .update_app(
            &f.user.token,
            &f.name,
            &json!({"memory": 128, "cpu": 0.5, "health_path": "/index.html"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    f.deploy("limited", &dockerfile("", SERVE)).await;
    let c = inspect(&f.current_container());
    let h = &c["HostConfig"];
    assert_eq!(h["Memory"], 128 * 1024 * 1024);
    assert_eq!(h["NanoCpus"], 500_000_000);
    assert_eq!(h["Privileged"], false);
    assert_eq!(h["CapDrop"], json!(["ALL"]));
    assert_eq!(h["CapAdd"], json!(["NET_BIND_SERVICE"]));
    assert!(
        h["SecurityOpt"].to_string().contains("no-new-privileges"),
        "{h}"
    );
    assert!(h["PidsLimit"].as_i64().unwrap() > 0);
    assert_eq!(h["RestartPolicy"]["Name"], "unless-stopped");
    // Its log rotates, so a chatty app cannot fill the disk.
    assert_eq!(h["LogConfig"]["Type"], "json-file");
    assert_eq!(h["LogConfig"]["Config"]["max-size"], "10m");
    assert_eq!(h["LogConfig"]["Config"]["max-file"], "3");
    assert!(
        h["Binds"].is_null() && c["Mounts"] == json!([]),
        "no host mounts"
    );
    assert_eq!(h["PortBindings"]["5000/tcp"][0]["HostIp"], "127.0.0.1");
    let labels = &c["Config"]["Labels"];
    assert_eq!(labels["scalefog.app"], f.name.as_str());
    assert_eq!(labels["scalefog.release"], "1");
    assert_eq!(labels["scalefog.node"], "1");
    assert!(c["Config"]["Env"].to_string().contains("PORT=5000"));
    // New limits apply to the running container.
    let r = f
        .app
        .update_app(&f.user.token, &f.name, &json!({"memory": 96}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        inspect(&f.current_container())["HostConfig"]["Memory"],
        96 * 1024 * 1024
    );
}

#[tokio::test]
async fn bad_deploy_requests_get_a_clear_4xx_naming_the_problem() {
    let f = fixture("badinput").await;
    let t = f.user.token.as_str();
    for (body, field) in [
        (json!({"memory": "lots"}), "memory"),
        (json!({"memory": 4}), "memory"),
        (json!({"cpu": -1}), "cpu"),
        (json!({"health_path": "no-slash"}), "health_path"),
        (json!({"deploy_branch": "../x"}), "deploy_branch"),
    ] {
        let r = f.app.update_app(t, &f.name, &body).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(error_body(r).await["field"], field, "{body}");
    }
    let r = f
        .app
        .set_config(&f.user.token, &f.name, &json!({"1BAD": "x"}))
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = f.app.start_app(t, &f.name).await;
    assert_eq!(
        r.status(),
        StatusCode::CONFLICT,
        "nothing to start before a push"
    );
    assert!(
        error_body(r).await["message"]
            .as_str()
            .unwrap()
            .contains("push")
    );
    let r = f.app.rollback(t, &f.name, &json!({"release": "zz"})).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = f.app.cancel_deploy(t, &f.name).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = f.app.logs(t, &f.name, "tail=many").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = f.app.build_log(t, &f.name, "nope").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Someone else's app does not exist for them.
    let bob = f.app.user("bob").await;
    let r = f.app.restart_app(&bob.token, &f.name).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Users see the image catalog (empty here), never the node's images, which include the
    // images built for apps (alice registered first, so bob is not an admin).
    let r = f.app.get("/v1/images", Some(&bob.token)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap(), json!([]));
}

#[tokio::test]
async fn runtime_logs_tail_and_follow_streams_new_lines() {
    let f = fixture("logs").await;
    f.deploy("logged", &dockerfile("", SERVE)).await;
    f.body("/").await;
    let t = f.user.token.as_str();
    let tail: Value = f
        .app
        .logs(t, &f.name, "tail=10")
        .await
        .json()
        .await
        .unwrap();
    assert!(tail["lines"].to_string().contains("url:/"), "{tail}");

    let mut r = f.app.logs(t, &f.name, "follow=1&tail=0").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    // Lines written after the stream attached arrive as events. Docker attaches once the body
    // is first polled, so keep producing lines until one shows up.
    let marker = format!("/marker-{}", hex::encode(rand::random::<[u8; 4]>()));
    let Some(Target::Serving(addr)) = f.target() else {
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
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(chunk) = r.chunk().await.unwrap() {
            seen.push_str(&String::from_utf8_lossy(&chunk));
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
    assert_eq!(found, Ok(true), "the new line arrives as an event: {seen}");
}

#[tokio::test]
async fn a_running_deploy_can_be_cancelled_and_a_second_push_waits_with_a_message() {
    let f = fixture("cancel").await;
    let slow = dockerfile(
        r#"RUN ["/bin/busybox", "sleep", "60"]
"#,
        SERVE,
    );
    let sha = f.repo.commit("slow", Some(&slow));
    let f = Arc::new(f);
    let first = {
        let f = f.clone();
        let sha = sha.clone();
        tokio::spawn(async move { f.push(&sha).await })
    };
    // Wait until it is building, then push again: the second waits for the first.
    for _ in 0..100 {
        if f.instance().await["status"] == "building" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let second = {
        let f = f.clone();
        let sha = sha.clone();
        tokio::spawn(async move { f.push(&sha).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = f.app.cancel_deploy(&f.user.token, &f.name).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let (r1, _) = first.await.unwrap();
    assert!(r1.unwrap_err().contains("cancelled"));
    // The second now runs; cancel it too.
    for _ in 0..100 {
        let r = f.app.cancel_deploy(&f.user.token, &f.name).await;
        if r.status() == StatusCode::ACCEPTED {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (r2, lines2) = second.await.unwrap();
    assert!(r2.is_err());
    assert!(
        lines2
            .iter()
            .any(|l| l.contains("Another deploy") && l.contains("waiting")),
        "{lines2:?}"
    );
    let builds: Value = f
        .app
        .builds(&f.user.token, &f.name)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(builds[0]["status"], "cancelled");
    assert!(f.app_containers().is_empty());
}

/// Waits until a stopped server has let go of the store file in `data_dir`, so that another
/// can open it.
async fn store_released(data_dir: &Path) {
    let store_path = data_dir.join("scalefog.redb");
    for _ in 0..100 {
        if scalefog::store::Store::open(&store_path).is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn restarting_scalefog_does_not_restart_apps_and_reconcile_removes_orphans() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().join("data");
    let dd = data_dir.clone();
    let f = fixture_with("reconcile", move |c| c.data_dir = dd).await;
    f.deploy("persist", &dockerfile("", SERVE)).await;
    let container = f.current_container();
    let started = inspect(&container)["State"]["StartedAt"].clone();
    let image = format!("scalefog/{}:v1", f.name);
    let install = f._cleanup.0.clone();
    // An orphan of this app (a deploy interrupted by a crash) and one of a deleted app.
    let orphan = docker(&[
        "create",
        "--label",
        "scalefog=1",
        "--label",
        &format!("scalefog.install={install}"),
        "--label",
        &format!("scalefog.app={}", f.name),
        &image,
    ]);
    let ghost = docker(&[
        "create",
        "--label",
        "scalefog=1",
        "--label",
        &format!("scalefog.install={install}"),
        "--label",
        "scalefog.app=gone-app",
        &image,
    ]);
    assert!(!orphan.is_empty() && !ghost.is_empty());

    let Fixture {
        app,
        user,
        name,
        repo: _repo,
        _cleanup,
    } = f;
    drop(app);
    store_released(&data_dir).await;
    let dd = data_dir.clone();
    let app = spawn_app_with(move |c| c.data_dir = dd).await;
    let mut clean = false;
    for _ in 0..100 {
        let left = docker(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=scalefog.install={install}"),
        ]);
        if left.split_whitespace().count() == 1 {
            clean = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(clean, "orphans are removed");
    assert!(container.starts_with(&docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=scalefog.install={install}")
    ])));
    assert_eq!(
        inspect(&container)["State"]["StartedAt"],
        started,
        "the app was not restarted"
    );
    let mut served = false;
    for _ in 0..50 {
        if let Some(Target::Serving(addr)) = app.services.routes.get(&name) {
            let body = reqwest::get(format!("http://{addr}/"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            served = body.trim() == "persist";
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served, "the route table is rebuilt from Docker");
    let r = app.get_app(&user.token, &name).await;
    let inst: Value = r.json().await.unwrap();
    assert_eq!(inst["status"], "running");
    assert_eq!(inst["owner"], user.username.as_str(), "no record was lost");
}

/// The deploy benchmark (run by `bench/deploy.sh`, ignored by `cargo test`): push→serving of the
/// busybox app on a warm build cache against raw `docker build` + `docker run` + first 200 of
/// the same context in the same run, then 20 concurrent deploys to 20 apps.
#[tokio::test]
#[ignore = "benchmark: run bench/deploy.sh"]
async fn bench_deploy_push_to_serving_against_raw_docker() {
    use std::time::Instant;
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let f = fixture_with("bench", |c| c.max_concurrent_deploys = 20).await;
    // Warm the build cache once.
    f.deploy("warm", &dockerfile("", SERVE)).await;
    let client = reqwest::Client::new();
    async fn first_200(client: &reqwest::Client, url: &str) {
        loop {
            if let Ok(r) = client.get(url).send().await
                && r.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let mut ours = vec![];
    let mut raw = vec![];
    let tag = format!("scalefog-bench-raw-{}", f._cleanup.0);
    for i in 0..rounds {
        // Scalefog: push handler called with the new commit → first 200 through the route.
        let sha = f
            .repo
            .commit(&format!("round {i}"), Some(&dockerfile("", SERVE)));
        let t = Instant::now();
        let (r, _) = f.push(&sha).await;
        r.expect("bench deploy");
        let Some(Target::Serving(addr)) = f.target() else {
            panic!("not serving")
        };
        first_200(&client, &format!("http://{addr}/")).await;
        ours.push(t.elapsed().as_secs_f64());

        // Raw Docker on the same context (the working tree at that commit).
        let ctx = f.repo.work.to_string_lossy().to_string();
        let t = Instant::now();
        let ok = Command::new("docker")
            .args([
                "build",
                "-q",
                "--label",
                &format!("scalefog.install={}", f._cleanup.0),
                "-t",
                &tag,
                &ctx,
            ])
            .output()
            .unwrap();
        assert!(ok.status.success());
        let id = docker(&[
            "run",
            "-d",
            "--label",
            &format!("scalefog.install={}", f._cleanup.0),
            "-e",
            "PORT=5000",
            "-p",
            "127.0.0.1::5000",
            &tag,
        ]);
        let port = docker(&["port", &id, "5000/tcp"]);
        let port = port
            .lines()
            .next()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .to_string();
        first_200(&client, &format!("http://127.0.0.1:{port}/")).await;
        raw.push(t.elapsed().as_secs_f64());
        docker(&["rm", "-f", &id]);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    let (o, r) = (median(&mut ours), median(&mut raw));
    println!("BENCH push->serving median {o:.3}s over {rounds} rounds (all: {ours:.3?})");
    println!("BENCH raw build+run+200 median {r:.3}s (all: {raw:.3?})");
    println!("BENCH ratio {:.2}x", o / r);

    // 20 concurrent deploys to 20 apps.
    let mut apps = vec![];
    for i in 0..20 {
        let name = format!("{}-{i}", f.name);
        f.app.create_app(&f.user.token, &name).await;
        apps.push(name);
    }
    let sha = f.repo.commit("concurrent", Some(&dockerfile("", SERVE)));
    let t = Instant::now();
    let mut tasks = vec![];
    for name in apps.clone() {
        let s = f.app.services.clone();
        let (bare, sha) = (f.repo.bare.clone(), sha.clone());
        tasks.push(tokio::spawn(async move {
            let env = vec![("GIT_DIR".to_string(), bare.to_string_lossy().to_string())];
            s.deployer
                .deploy_commit(&name, "alice", "main", &sha, &bare, &env, None, None)
                .await
                .map(|_| ())
                .map_err(|e| format!("{name}: {e}"))
        }));
    }
    let mut failures = vec![];
    for t in tasks {
        if let Err(e) = t.await.unwrap() {
            failures.push(e);
        }
    }
    for name in &apps {
        if let Some(Target::Serving(addr)) = f.app.services.routes.get(name) {
            first_200(&client, &format!("http://{addr}/")).await;
        }
    }
    println!(
        "BENCH 20 concurrent deploys: {:.3}s total, {} failed {failures:?}",
        t.elapsed().as_secs_f64(),
        failures.len()
    );
    assert!(failures.is_empty());
}

/// Builds of different apps share the builder's cached layers. Removing one app's image used to
/// prune its untagged parents too, so a build standing on such a layer failed at its next `COPY`
/// ("unable to find image sha256:…"). Here app B's build copies a large file right on top of
/// the layer it shares with app A, and A is deleted meanwhile; five times, each with a new pair.
#[tokio::test]
async fn deleting_an_app_while_another_builds_on_their_shared_layers_never_breaks_that_build() {
    let f = fixture("shared").await;
    let shared = "FROM scratch\nCOPY busybox /bin/busybox\n";
    for round in 0..5 {
        // A: the shared first step, then its own page.
        let a = unique("shared-a");
        f.app.create_app(&f.user.token, &a).await;
        let a_repo = Repo::new();
        let sha = a_repo.commit(
            &format!("a {round}"),
            Some(&format!("{shared}COPY www /www\n{SERVE}\n")),
        );
        let (progress, _rx) = Progress::channel();
        let verdict = f
            .app
            .services
            .deployer
            .handle(&f.push_of(&a, &a_repo, &sha), &progress)
            .await;
        assert!(
            matches!(verdict, Ok(Verdict::Accepted)),
            "round {round}: A deploys: {verdict:?}"
        );
        // Stopped, so that deleting it goes straight to its image.
        let stopped = f
            .app
            .post_json(
                &format!("/v1/instances/{a}/stop"),
                &json!({}),
                Some(&f.user.token),
            )
            .await;
        assert!(stopped.status().is_success(), "round {round}: stopping A");

        // B: the same first step, then a large file new in every round, so its copy is slow and
        // never cached.
        let b = unique("shared-b");
        f.app.create_app(&f.user.token, &b).await;
        let b_repo = Repo::new();
        let mut big = vec![0u8; 64 << 20];
        big[..8].copy_from_slice(&rand::random::<[u8; 8]>());
        std::fs::write(b_repo.work.join("big.bin"), big).unwrap();
        let sha = b_repo.commit(
            &format!("b {round}"),
            Some(&format!(
                "{shared}COPY big.bin /big.bin\nCOPY www /www\n{SERVE}\n"
            )),
        );
        let (progress, mut rx) = Progress::channel();
        let deployer = f.app.services.deployer.clone();
        let push = f.push_of(&b, &b_repo, &sha);
        let copying = tokio::sync::Notify::new();
        let build_b = async move {
            let verdict = deployer.handle(&push, &progress).await;
            drop(progress);
            verdict
        };
        let watch_b = async {
            let mut lines = vec![];
            while let Some(line) = rx.recv().await {
                if line.contains("COPY big.bin") {
                    copying.notify_one();
                }
                lines.push(line);
            }
            lines
        };
        let delete_a = async {
            copying.notified().await;
            f.app
                .delete(&format!("/v1/instances/{a}"), Some(&f.user.token))
                .await
                .status()
        };
        let (verdict, lines, deleted) = tokio::join!(build_b, watch_b, delete_a);
        let log = lines.join("\n");
        assert!(deleted.is_success(), "round {round}: deleting A: {deleted}");
        assert!(
            matches!(verdict, Ok(Verdict::Accepted)),
            "round {round}: B deploys: {verdict:?}\n{log}"
        );
        // The build fell back on nothing: no layer vanished under it.
        assert!(
            !log.contains("cached layer was deleted"),
            "round {round}:\n{log}"
        );
        let Some(Target::Serving(addr)) = f.app.services.routes.get(&b) else {
            panic!("round {round}: B is not serving");
        };
        let page = reqwest::get(format!("http://{addr}/"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(page.trim(), format!("b {round}"));
        let gone = f
            .app
            .delete(&format!("/v1/instances/{b}"), Some(&f.user.token))
            .await;
        assert!(gone.status().is_success());
    }
}

/// Writes a random token to `/data/first` the first time any process of the app starts, and
/// serves a copy of it: a process that sees the same token sees the same volume.
const SERVE_VOLUME: &str = r#"CMD ["/bin/busybox", "sh", "-c", "test -f /data/first || echo $RANDOM$RANDOM$RANDOM > /data/first; cp /data/first /www/first.txt 2>/dev/null || echo none > /www/first.txt; exec /bin/busybox httpd -f -p $PORT -h /www"]"#;

fn volumes_of(app: &str) -> Vec<String> {
    docker(&[
        "volume",
        "ls",
        "-q",
        "--filter",
        &format!("label=scalefog.app={app}"),
    ])
    .split_whitespace()
    .map(String::from)
    .collect()
}

#[tokio::test]
async fn a_file_on_a_volume_survives_redeploys_rollbacks_restarts_and_a_scalefog_restart_and_goes_with_its_app()
 {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().join("data");
    let dd = data_dir.clone();
    let f = fixture_with("volume", move |c| c.data_dir = dd).await;
    f.deploy("one", &dockerfile("", SERVE_VOLUME)).await;
    assert_eq!(f.body("/first.txt").await, "none", "no volume yet");
    let token = f.user.token.clone();

    // Bad input is refused with the field named; nothing is mounted by it.
    for (volume, path, field) in [
        ("data", "relative", "path"),
        ("data", "/proc/x", "path"),
        ("Data!", "/data", "name"),
    ] {
        let r = f.app.add_volume(&token, &f.name, volume, path).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(error_body(r).await["field"], field);
    }
    let other = f.app.user("mallory").await;
    let r = f
        .app
        .add_volume(&other.token, &f.name, "data", "/data")
        .await;
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "another user's app is not found"
    );

    // Adding it gives the running app a new process with it mounted.
    let r = f.app.add_volume(&token, &f.name, "data", "/data/").await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["name"].as_str(), v["path"].as_str()),
        (Some("data"), Some("/data"))
    );
    let r = f.app.add_volume(&token, &f.name, "data", "/other").await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let r = f
        .app
        .add_volume(&token, &f.name, "cache", "/data/cache")
        .await;
    assert_eq!(
        error_body(r).await["field"],
        "path",
        "overlapping paths are refused"
    );
    let first = f.body("/first.txt").await;
    assert_ne!(first, "none");
    assert_eq!(volumes_of(&f.name).len(), 1);

    // A redeploy, a rollback and a restart each start a new process: same data.
    f.deploy("two", &dockerfile("", SERVE_VOLUME)).await;
    assert_eq!(f.body("/").await, "two");
    assert_eq!(f.body("/first.txt").await, first);
    let r = f.app.rollback(&token, &f.name, &json!({})).await;
    assert!(r.status().is_success(), "rollback: {}", r.status());
    assert_eq!(f.body("/").await, "one");
    assert_eq!(f.body("/first.txt").await, first);
    let r = f.app.restart_app(&token, &f.name).await;
    assert!(r.status().is_success());
    assert_eq!(f.body("/first.txt").await, first);

    // Scalefog restarts; then the app's process is replaced: same data.
    let Fixture {
        app,
        name,
        repo: _repo,
        _cleanup,
        ..
    } = f;
    drop(app);
    store_released(&data_dir).await;
    let dd = data_dir.clone();
    let app = spawn_app_with(move |c| {
        c.data_dir = dd;
        c.health_timeout = 10;
    })
    .await;
    let page = |app: &TestApp| {
        let Some(Target::Serving(addr)) = app.services.routes.get(&name) else {
            panic!("{name} is not serving");
        };
        async move {
            reqwest::get(format!("http://{addr}/first.txt"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
                .trim()
                .to_string()
        }
    };
    let r = app.restart_app(&token, &name).await;
    assert!(
        r.status().is_success(),
        "restart after scalefog's: {}",
        r.status()
    );
    assert_eq!(page(&app).await, first);
    let listed: Value = app.volumes(&token, &name).await.json().await.unwrap();
    assert_eq!(listed[0]["name"], "data");

    // Removed: the new process has no volume, and its data goes once the old one is gone.
    let r = app.remove_volume(&token, &name, "data").await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(page(&app).await, "none");
    let mut gone = false;
    for _ in 0..300 {
        if volumes_of(&name).is_empty() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "the removed volume's data is deleted");
    let r = app.remove_volume(&token, &name, "data").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // A volume goes with its app.
    let r = app.add_volume(&token, &name, "keep", "/data").await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_ne!(page(&app).await, "none");
    assert_eq!(volumes_of(&name).len(), 1);
    let r = app.delete_app(&token, &name).await;
    assert!(r.status().is_success());
    assert!(
        volumes_of(&name).is_empty(),
        "deleting the app deletes its volumes"
    );
}

/// Every app container of an installation runs on one bridge network without inter-container
/// traffic: an app cannot reach another app's container (skipping the router and its limits),
/// while the host still reaches both.
#[tokio::test]
async fn an_app_container_cannot_open_a_connection_to_another_apps_container() {
    let f = fixture("isolated-a").await;
    f.deploy("a", &dockerfile("", SERVE)).await;
    let b = unique("isolated-b");
    f.app.create_app(&f.user.token, &b).await;
    let b_repo = Repo::new();
    let sha = b_repo.commit("b", Some(&dockerfile("", SERVE)));
    let (progress, _rx) = Progress::channel();
    let verdict = f
        .app
        .services
        .deployer
        .handle(&f.push_of(&b, &b_repo, &sha), &progress)
        .await;
    assert!(matches!(verdict, Ok(Verdict::Accepted)), "{verdict:?}");

    let network = format!("scalefog-{}-apps", f._cleanup.0);
    let b_container = f
        .app
        .services
        .store
        .read(|r| r.deployment(&b))
        .unwrap()
        .unwrap()
        .processes[0]
        .id
        .clone();
    let b_ip = inspect(&b_container)["NetworkSettings"]["Networks"][&network]["IPAddress"]
        .as_str()
        .expect("B is on the apps network")
        .to_string();
    let a_container = f.current_container();
    assert!(
        inspect(&a_container)["NetworkSettings"]["Networks"][&network].is_object(),
        "A is on the apps network"
    );
    assert_eq!(
        docker(&[
            "network",
            "inspect",
            "-f",
            "{{index .Options \"com.docker.network.bridge.enable_icc\"}}",
            &network
        ]),
        "false"
    );

    // The host reaches B on that address...
    let page = reqwest::get(format!("http://{b_ip}:5000/"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(page.trim(), "b");
    // ...A does not.
    let out = Command::new("docker")
        .args([
            "exec",
            &a_container,
            "/bin/busybox",
            "timeout",
            "3",
            "/bin/busybox",
            "wget",
            "-q",
            "-O-",
            &format!("http://{b_ip}:5000/"),
        ])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "A reached B: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The same command works where a connection is allowed: A reaches its own server. (busybox
    // wget's own -T crashes this busybox; `timeout` bounds it instead.)
    let own = Command::new("docker")
        .args([
            "exec",
            &a_container,
            "/bin/busybox",
            "timeout",
            "3",
            "/bin/busybox",
            "wget",
            "-q",
            "-O-",
            "http://127.0.0.1:5000/",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&own.stdout).trim(),
        "a",
        "{:?} {}",
        own.status,
        String::from_utf8_lossy(&own.stderr)
    );
}

mod cluster;
mod containers;
mod cron;
mod deletion;
mod placement;
mod processes;
/// A Dockerfile whose `RUN` steps have busybox's applets on `PATH` and a shell, then `run`.
fn shell_dockerfile(run: &str) -> String {
    dockerfile(
        &format!(
            "SHELL [\"/bin/busybox\", \"sh\", \"-c\"]\nRUN /bin/busybox --install -s /bin && mkdir /www\n{run}\n"
        ),
        SERVE,
    )
}

/// Deploys `repo`'s commit `sha` to app `name` of `f`'s server; the error and the pushed lines
/// when it is rejected.
async fn deploy_other(f: &Fixture, name: &str, repo: &Repo, sha: &str) -> Result<(), String> {
    let (progress, mut rx) = Progress::channel();
    let verdict = f
        .app
        .services
        .deployer
        .handle(&f.push_of(name, repo, sha), &progress)
        .await;
    drop(progress);
    let mut lines = vec![];
    while let Some(l) = rx.recv().await {
        lines.push(l);
    }
    match verdict {
        Ok(Verdict::Accepted) => Ok(()),
        Ok(Verdict::Rejected { reason }) => Err(format!("{reason}\n{}", lines.join("\n"))),
        Err(e) => Err(format!("{e}\n{}", lines.join("\n"))),
    }
}

/// A build's `RUN` step runs on the installation's build network: it cannot connect to an app
/// container (on the apps network) nor to a container on Docker's default bridge, where builds
/// used to run; it still reaches the host (outbound traffic, as package installs need).
#[tokio::test]
async fn a_build_step_cannot_reach_app_containers_or_the_default_bridge_but_reaches_outside() {
    let f = fixture("buildnet-a").await;
    f.deploy("a", &dockerfile("", SERVE)).await;
    let apps_network = format!("scalefog-{}-apps", f._cleanup.0);
    let a_ip =
        inspect(&f.current_container())["NetworkSettings"]["Networks"][&apps_network]["IPAddress"]
            .as_str()
            .expect("A is on the apps network")
            .to_string();
    // A container on the default bridge, labelled so that the cleanup removes it.
    let image = format!("scalefog/{}:v1", f.name);
    let bystander = docker(&[
        "run",
        "-d",
        "--label",
        "scalefog=1",
        "--label",
        &format!("scalefog.install={}", f._cleanup.0),
        "-e",
        "PORT=5000",
        &image,
    ]);
    assert!(!bystander.is_empty(), "the bystander container starts");
    let bystander_ip = inspect(&bystander)["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
        .as_str()
        .expect("the bystander is on the default bridge")
        .to_string();
    // Both answer (from the host).
    for ip in [&a_ip, &bystander_ip] {
        let page = reqwest::get(format!("http://{ip}:5000/"))
            .await
            .expect("the host reaches the container");
        assert_eq!(page.text().await.unwrap().trim(), "a");
    }
    // Outside: a server of this test process, on every host address.
    let outside = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let outside_port = outside.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok((mut conn, _)) = outside.accept().await {
            let _ = conn
                .write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await;
        }
    });

    let b = unique("buildnet-b");
    f.app.create_app(&f.user.token, &b).await;
    let b_repo = Repo::new();
    let probe = format!(
        "RUN reach() {{ if timeout 3 wget -q -O /dev/null \"$1\"; then echo reached; \
         else echo unreachable; fi; }}; \
         gateway=$(ip route | awk '/^default/ {{print $3}}'); \
         echo \"app:$(reach http://{a_ip}:5000/) bridge:$(reach http://{bystander_ip}:5000/) \
         outside:$(reach http://$gateway:{outside_port}/)\" > /www/net.txt"
    );
    let sha = b_repo.commit("b", Some(&shell_dockerfile(&probe)));
    deploy_other(&f, &b, &b_repo, &sha)
        .await
        .expect("B deploys");
    let Some(Target::Serving(b_addr)) = f.app.services.routes.get(&b) else {
        panic!("B is not serving");
    };
    let seen = reqwest::get(format!("http://{b_addr}/net.txt"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        seen.trim(),
        "app:unreachable bridge:unreachable outside:reached"
    );
}

/// `RUN` steps get `build_memory` (without swap) and `build_cpus`; a step that allocates more
/// is killed and the push rejected.
#[tokio::test]
async fn a_build_step_gets_build_memory_and_build_cpus_and_is_killed_beyond_its_memory() {
    let f = fixture_with("buildlimits", |c| {
        c.build_memory = 48;
        c.build_cpus = 0.5;
    })
    .await;
    // cgroup v1 files, else v2's.
    let record = "RUN (cat /sys/fs/cgroup/memory/memory.limit_in_bytes \
                  /sys/fs/cgroup/cpu/cpu.cfs_quota_us || cat /sys/fs/cgroup/memory.max \
                  /sys/fs/cgroup/cpu.max) > /www/limits.txt 2>/dev/null";
    f.deploy("limits", &shell_dockerfile(record)).await;
    let limits = f.body("/limits.txt").await;
    let words: Vec<&str> = limits.split_whitespace().collect();
    assert_eq!(words[0], (48 * 1024 * 1024).to_string(), "{limits}");
    assert_eq!(words[1], "50000", "{limits}");

    // `tail` keeps the whole (newline-free) input: 300 MB.
    let hog = "RUN head -c 300m /dev/zero | tail > /dev/null";
    let sha = f.repo.commit("hog", Some(&shell_dockerfile(hog)));
    let (r, lines) = f.push(&sha).await;
    let err = r.expect_err("the push is rejected");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("returned a non-zero code: 137")),
        "killed (SIGKILL, 128 + 9): {err}\n{}",
        lines.join("\n")
    );
    assert_eq!(f.body("/limits.txt").await, limits, "v1 keeps serving");
}

/// A build is bounded by `deploy_timeout`: past it the push is rejected and Docker stops the
/// step (nothing is left running on the build network).
#[tokio::test]
async fn a_build_past_deploy_timeout_is_rejected_and_its_step_stopped() {
    let f = fixture_with("buildtime", |c| c.deploy_timeout = 5).await;
    let build_network = format!("scalefog-{}-build", f._cleanup.0);
    let sha = f
        .repo
        .commit("slow", Some(&shell_dockerfile("RUN sleep 600")));
    let f = Arc::new(f);
    let push = {
        let f = f.clone();
        tokio::spawn(async move { f.push(&sha).await })
    };
    let on_network = || {
        docker(&[
            "network",
            "inspect",
            "-f",
            "{{len .Containers}}",
            &build_network,
        ])
    };
    let until = |want: &'static str| async move {
        let mut seen = String::new();
        for _ in 0..150 {
            seen = on_network();
            if seen == want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        seen
    };
    assert_eq!(until("1").await, "1", "the step runs on the build network");
    let (r, _) = push.await.unwrap();
    let err = r.expect_err("the push is rejected");
    assert!(err.contains("deploy_timeout"), "{err}");
    assert_eq!(until("0").await, "0", "the build step was stopped");
}
