//! Backup and restore of everything, end to end: two users push apps over real SSH into real
//! Docker; `scalefog backup` runs while a push is building; the server stops, its containers and
//! images are removed; `scalefog restore` fills a new data dir and a server started on it brings
//! every app back (its image rebuilt from the repository) through the router, and every user can
//! sign in and push again.

use crate::dockerapp::*;
use crate::gitssh::*;
use crate::helpers::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_scalefog");

/// A user's key, app and work tree holding the busybox app.
struct Pusher {
    _dir: tempfile::TempDir,
    user: TestUser,
    key: Key,
    name: String,
    wt: PathBuf,
}

impl Pusher {
    async fn new(server: &TestApp, username: &str) -> Pusher {
        let user = server.user(username).await;
        let dir = tempfile::tempdir().unwrap();
        let key = keygen(dir.path(), username).await;
        add_key(server, &user.token, &key).await;
        let name = unique(username);
        server.create_app(&user.token, &name).await;
        let wt = dir.path().join("app");
        std::fs::create_dir_all(wt.join("www")).unwrap();
        std::fs::copy("/bin/busybox", wt.join("busybox")).expect("/bin/busybox exists");
        ok(git(&wt, &key, 0, &["init", "-q", "-b", "main"]).await);
        Pusher {
            _dir: dir,
            user,
            key,
            name,
            wt,
        }
    }

    /// Commits this page, built with `extra` Dockerfile steps; returns the sha.
    async fn commit(&self, page: &str, extra: &str) -> String {
        std::fs::write(self.wt.join("www/index.html"), page).unwrap();
        std::fs::write(self.wt.join("Dockerfile"), dockerfile(extra, SERVE)).unwrap();
        commit(&self.wt, &self.key, 0, page).await;
        rev_parse(&self.wt, &self.key, 0, "HEAD").await
    }

    fn push_command(&self, ssh_port: u16) -> tokio::process::Command {
        let remote = format!("ssh://git@127.0.0.1:{ssh_port}/{}.git", self.name);
        git_command(&self.wt, &self.key, ssh_port, &["push", &remote, "main"])
    }

    async fn push(&self, ssh_port: u16) {
        ok(self.push_command(ssh_port).output().await.unwrap());
    }
}

/// `/` of `app` through the router, once it answers 200 (the restored server rebuilds images
/// first); panics with the last answer after a minute and a half.
async fn served_page(server: &TestApp, app: &str) -> String {
    let client = reqwest::Client::new();
    let mut last = String::new();
    for _ in 0..450 {
        let r = client
            .get(format!("http://127.0.0.1:{}/", server.proxy_port))
            .header("Host", format!("{app}.localhost"))
            .send()
            .await;
        match r {
            Ok(r) if r.status() == 200 => return r.text().await.unwrap().trim().to_string(),
            Ok(r) => last = format!("{}: {}", r.status(), r.text().await.unwrap_or_default()),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{app} never served through the router; last answer: {last}");
}

async fn app_json(server: &TestApp, token: &str, app: &str) -> Value {
    server.get_app(token, app).await.json().await.unwrap()
}

async fn run(args: &[&str], data_dir: &Path) -> std::process::Output {
    tokio::process::Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .await
        .unwrap()
}

// Single-threaded, like the end-to-end push tests: the Docker clean-up between the two servers
// runs while the first server's tasks are frozen.
#[tokio::test]
async fn a_backup_taken_during_a_push_restores_every_app_user_and_key_on_an_engine_without_its_images()
 {
    let a = spawn_app_with(|c| c.health_timeout = 10).await;
    let cleanup = DockerCleanup::of(&a);
    let alice = Pusher::new(&a, "alice").await;
    let bob = Pusher::new(&a, "bob").await;
    let alice_one = alice.commit("alice one", "").await;
    alice.push(a.ssh_port).await;
    bob.commit("bob one", "").await;
    bob.push(a.ssh_port).await;
    assert_eq!(served_page(&a, &alice.name).await, "alice one");
    assert_eq!(served_page(&a, &bob.name).await, "bob one");
    let jwt: Value = a
        .exchange(Some(&alice.user.token))
        .await
        .json()
        .await
        .unwrap();
    let jwt = jwt["access_token"].as_str().unwrap().to_string();

    // A push whose build takes a while; the backup runs while it builds.
    let alice_two = alice
        .commit("alice two", "RUN [\"/bin/busybox\", \"sleep\", \"8\"]\n")
        .await;
    let slow_push = alice.push_command(a.ssh_port).output();
    let backup = async {
        for _ in 0..300 {
            if app_json(&a, &alice.user.token, &alice.name).await["status"] == "building" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let archive = a.data_dir.parent().unwrap().join("backup.tar.zst");
        let out = run(&["backup", archive.to_str().unwrap()], &a.data_dir).await;
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains("2 repositories"),
            "{}",
            text(&out.stdout)
        );
        archive
    };
    let (pushed, archive) = tokio::join!(slow_push, backup);
    // The backup did not stop the push.
    ok(pushed.unwrap());
    assert_eq!(served_page(&a, &alice.name).await, "alice two");
    // Everything the served data dir holds is something a backup knows about.
    for e in std::fs::read_dir(&a.data_dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            scalefog::backup::layout::known(&name),
            "{name} is in no backup list"
        );
    }

    // The machine is lost: the server stops, its containers and images go.
    let restored_dir = tempfile::tempdir().unwrap();
    let data = restored_dir.path().join("data");
    let host_key = a.services.ssh_host_key.fingerprint.clone();
    let old_data = a.data_dir.clone();
    let keep_archive = restored_dir.path().join("backup.tar.zst");
    std::fs::copy(&archive, &keep_archive).unwrap();
    drop(a);
    for _ in 0..100 {
        if !old_data.join("control.sock").exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(DockerCleanup(cleanup.0.clone()));
    assert_eq!(docker(&["images", "-q", "--filter", &cleanup.filter()]), "");
    assert_eq!(docker(&["ps", "-aq", "--filter", &cleanup.filter()]), "");

    let out = run(&["restore", keep_archive.to_str().unwrap()], &data).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("2 users, 2 apps, 2 repositories"),
        "{}",
        text(&out.stdout)
    );
    let out = run(&["restore", keep_archive.to_str().unwrap()], &data).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not empty"),
        "{}",
        text(&out.stderr)
    );

    let b = spawn_app_with(|c| {
        c.data_dir = data.clone();
        c.tls_dir = data.join("certs");
        c.health_timeout = 10;
    })
    .await;
    // The backup holds the store as it was while alice's second push built: v1 serves again,
    // its image rebuilt from the commit recorded in the release, with the same tag and labels.
    assert_eq!(served_page(&b, &alice.name).await, "alice one");
    assert_eq!(served_page(&b, &bob.name).await, "bob one");
    let app = app_json(&b, &alice.user.token, &alice.name).await;
    assert_eq!(app["release"], 1, "{app}");
    assert_eq!(app["status"], "running", "{app}");
    let image = inspect(&format!("scalefog/{}:v1", alice.name));
    assert_eq!(image["Config"]["Labels"]["scalefog.release"], "1");
    assert_eq!(
        image["Config"]["Labels"]["scalefog.app"],
        alice.name.as_str()
    );
    let releases: Value = b
        .releases(&alice.user.token, &alice.name)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(releases[0]["commit"], alice_one.as_str(), "{releases}");
    // The push in flight at backup time is on record as cut short, not lost or half-done.
    let builds: Value = b
        .builds(&alice.user.token, &alice.name)
        .await
        .json()
        .await
        .unwrap();
    let cut = builds
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["commit"] == alice_two.as_str())
        .unwrap_or_else(|| panic!("the in-flight build is recorded: {builds}"));
    assert_eq!(cut["status"], "failed", "{cut}");
    assert!(
        cut["error"].as_str().unwrap().contains("interrupted"),
        "{cut}"
    );

    // Same users, passwords, tokens, JWT secret and SSH host key.
    assert_eq!(b.services.ssh_host_key.fingerprint, host_key);
    for p in [&alice, &bob] {
        let r = b.get_token(&p.user.username, &p.user.password).await;
        assert_eq!(r.status(), 200);
        assert_eq!(b.account(&p.user.token).await.status(), 200);
    }
    assert_eq!(
        b.account(&jwt).await.status(),
        200,
        "a JWT issued before the backup"
    );

    // And everyone pushes on.
    alice.commit("alice three", "").await;
    alice.push(b.ssh_port).await;
    assert_eq!(served_page(&b, &alice.name).await, "alice three");
    bob.commit("bob two", "").await;
    bob.push(b.ssh_port).await;
    assert_eq!(served_page(&b, &bob.name).await, "bob two");
    let app = app_json(&b, &alice.user.token, &alice.name).await;
    // alice two never became a release in the backup: alice three is v2.
    assert_eq!(app["release"], 2, "{app}");
    drop(b);
    drop(cleanup);
}
