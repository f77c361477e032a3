//! The SSH git server, end to end with the real `git` and OpenSSH `ssh` binaries and keys made by
//! `ssh-keygen`.

use crate::gitssh::*;
use crate::helpers::*;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use scalefog::domain::{Error, PushOutcome, Result};
use scalefog::push::{Progress, Push, PushHandler, Verdict};
use scalefog::store::Slice;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use tokio::process::Command;

// ---------------------------------------------------------------------------------------------
// Fixtures

/// A test server, a user with a registered key, and a scratch dir.
struct World {
    app: TestApp,
    user: TestUser,
    key: Key,
    dir: tempfile::TempDir,
}

/// These tests are about the git transport, not deploys: pushes of repositories without a
/// Dockerfile are accepted as they are (the deploy tests cover what the deploy engine decides).
async fn world() -> World {
    world_with(|_| {}).await
}

async fn world_with(tweak: impl FnOnce(&mut scalefog::config::Config)) -> World {
    let app = spawn_app_with(tweak).await;
    app.services
        .push_handler
        .set(Arc::new(scalefog::push::AcceptPush));
    let user = app.user("alice").await;
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "alice").await;
    add_key(&app, &user.token, &key).await;
    World {
        app,
        user,
        key,
        dir,
    }
}

/// A work tree with one commit holding `files`; returns its path.
async fn work_tree(w: &World, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let wt = w.dir.path().join(name);
    std::fs::create_dir_all(&wt).unwrap();
    let port = w.app.ssh_port;
    ok(git(&wt, &w.key, port, &["init", "-q", "-b", "main"]).await);
    for (path, content) in files {
        std::fs::write(wt.join(path), content).unwrap();
    }
    commit(&wt, &w.key, port, "first").await;
    wt
}

/// A push handler built from a closure, for tests that need to watch or steer pushes.
struct Handler<F>(F);

impl<F> PushHandler for Handler<F>
where
    F: for<'a> Fn(&'a Push, &'a Progress) -> BoxFuture<'a, Result<()>> + Send + Sync + 'static,
{
    fn handle<'a>(
        &'a self,
        push: &'a Push,
        progress: &'a Progress,
    ) -> BoxFuture<'a, Result<Verdict>> {
        Box::pin((self.0)(push, progress).map(|r| r.map(|()| Verdict::Accepted)))
    }
}

fn set_handler<F>(app: &TestApp, f: F)
where
    F: for<'a> Fn(&'a Push, &'a Progress) -> BoxFuture<'a, Result<()>> + Send + Sync + 'static,
{
    app.services.push_handler.set(Arc::new(Handler(f)));
}

// ---------------------------------------------------------------------------------------------
// Push and clone

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_repository_clones_back_with_the_same_tree() {
    let w = world().await;
    let port = w.app.ssh_port;
    let inst = w.app.create_app(&w.user.token, "hello-app").await;
    let remote = remote_of(&inst);
    assert_eq!(remote, format!("ssh://git@127.0.0.1:{port}/hello-app.git"));
    let wt = work_tree(
        &w,
        "src",
        &[("README.md", "# hello\n"), ("app.sh", "echo hi\n")],
    )
    .await;
    ok(git(&wt, &w.key, port, &["push", &remote, "main"]).await);

    let out = ok(git(
        w.dir.path(),
        &w.key,
        port,
        &["clone", "-q", &remote, "copy"],
    )
    .await);
    assert!(out.status.success());
    let copy = w.dir.path().join("copy");
    assert_eq!(
        rev_parse(&copy, &w.key, port, "HEAD").await,
        rev_parse(&wt, &w.key, port, "HEAD").await
    );
    let tree = |dir: PathBuf| {
        let key = &w.key;
        async move { text(&ok(git(&dir, key, port, &["ls-tree", "-r", "HEAD"]).await).stdout) }
    };
    assert_eq!(tree(copy.clone()).await, tree(wt.clone()).await);
    assert_eq!(
        std::fs::read_to_string(copy.join("README.md")).unwrap(),
        "# hello\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scp_like_and_short_path_forms_reach_the_same_repository() {
    let w = world().await;
    let port = w.app.ssh_port;
    w.app.create_app(&w.user.token, "short-path").await;
    let wt = work_tree(&w, "src", &[("a.txt", "a\n")]).await;
    ok(git(
        &wt,
        &w.key,
        port,
        &[
            "push",
            &format!("ssh://git@127.0.0.1:{port}/short-path"),
            "main",
        ],
    )
    .await);
    let refs = ls_remote(
        &wt,
        &w.key,
        port,
        &format!("ssh://git@127.0.0.1:{port}/short-path.git"),
    )
    .await;
    assert!(refs.contains("refs/heads/main"), "{refs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_speaks_protocol_version_2() {
    let w = world().await;
    let port = w.app.ssh_port;
    let remote = remote_of(&w.app.create_app(&w.user.token, "proto-two").await);
    let wt = work_tree(&w, "src", &[("a.txt", "a\n")]).await;
    ok(git(&wt, &w.key, port, &["push", &remote, "main"]).await);
    let out = ok(git_command(
        &wt,
        &w.key,
        port,
        &["-c", "protocol.version=2", "ls-remote", &remote],
    )
    .env("GIT_TRACE_PACKET", "1")
    .output()
    .await
    .unwrap());
    assert!(
        text(&out.stderr).contains("< version 2"),
        "the server did not answer in protocol v2:\n{}",
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("refs/heads/main"));
}

// ---------------------------------------------------------------------------------------------
// Who may push

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_with_another_users_key_is_refused_like_a_missing_app() {
    let w = world().await;
    let port = w.app.ssh_port;
    let remote = remote_of(&w.app.create_app(&w.user.token, "alices-app").await);
    let bob = w.app.user("bob").await;
    let bob_key = keygen(w.dir.path(), "bob").await;
    let r = w
        .app
        .post_json(
            "/v1/ssh-keys",
            &serde_json::json!({ "public_key": bob_key.public }),
            Some(&bob.token),
        )
        .await;
    assert_eq!(r.status(), reqwest::StatusCode::CREATED);
    // Over HTTP too, Alice's app does not exist for Bob.
    let r = w.app.get_app(&bob.token, "alices-app").await;
    assert_eq!(r.status(), reqwest::StatusCode::NOT_FOUND);
    assert_eq!(error_body(r).await["error"], "not_found");
    let wt = work_tree(&w, "src", &[("a.txt", "a\n")]).await;

    let out = git(&wt, &bob_key, port, &["push", &remote, "main"]).await;
    assert!(!out.status.success());
    let stolen = text(&out.stderr);
    assert!(
        stolen.contains("no app named 'alices-app' that you can access"),
        "{stolen}"
    );
    let clone = git(w.dir.path(), &bob_key, port, &["clone", &remote, "stolen"]).await;
    assert!(!clone.status.success());

    // Exactly what a missing app says.
    let missing = git(
        &wt,
        &bob_key,
        port,
        &[
            "push",
            &format!("ssh://git@127.0.0.1:{port}/no-such-app.git"),
            "main",
        ],
    )
    .await;
    assert!(!missing.status.success());
    assert_eq!(
        first_scalefog_line(&text(&missing.stderr)).replace("no-such-app", "X"),
        first_scalefog_line(&stolen).replace("alices-app", "X")
    );
    // Alice's repository is untouched.
    assert!(ls_remote(&wt, &w.key, port, &remote).await.is_empty());
}

fn first_scalefog_line(stderr: &str) -> String {
    stderr
        .lines()
        .find(|l| l.contains("scalefog:"))
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_may_push_to_any_app() {
    let w = world().await; // alice, the first user, is an admin
    let port = w.app.ssh_port;
    let carol = w.app.user("carol").await;
    let remote = remote_of(&w.app.create_app(&carol.token, "carols-app").await);
    let wt = work_tree(&w, "src", &[("a.txt", "a\n")]).await;
    ok(git(&wt, &w.key, port, &["push", &remote, "main"]).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_to_an_app_that_does_not_exist_is_refused() {
    let w = world().await;
    let port = w.app.ssh_port;
    let wt = work_tree(&w, "src", &[("a.txt", "a\n")]).await;
    let out = git(
        &wt,
        &w.key,
        port,
        &[
            "push",
            &format!("ssh://git@127.0.0.1:{port}/ghost-app.git"),
            "main",
        ],
    )
    .await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no app named 'ghost-app' that you can access"),
        "{}",
        text(&out.stderr)
    );
    assert!(!w.app.data_dir.join("repos/ghost-app.git").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unregistered_key_is_refused() {
    let w = world().await;
    let port = w.app.ssh_port;
    let remote = remote_of(&w.app.create_app(&w.user.token, "locked-app").await);
    let stranger = keygen(w.dir.path(), "stranger").await;
    let out = git(w.dir.path(), &stranger, port, &["ls-remote", &remote]).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("Permission denied (publickey)"),
        "{}",
        text(&out.stderr)
    );
}

/// An address that keeps offering unknown keys is cut off, but a registered key from that same
/// address still gets in: a scan must not lock out the users behind a shared address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_scan_from_an_address_does_not_lock_out_registered_keys_from_it() {
    let w = world().await;
    let port = w.app.ssh_port;
    let remote = remote_of(&w.app.create_app(&w.user.token, "shared-addr").await);
    let stranger = keygen(w.dir.path(), "stranger").await;
    // Past the limit of 60 failures per address (each run offers the one unknown key).
    for _ in 0..61 {
        let out = git(w.dir.path(), &stranger, port, &["ls-remote", &remote]).await;
        assert!(!out.status.success());
    }
    let out = git(w.dir.path(), &w.key, port, &["ls-remote", &remote]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = git(w.dir.path(), &stranger, port, &["ls-remote", &remote]).await;
    assert!(!out.status.success(), "an unknown key is still refused");
}

// ---------------------------------------------------------------------------------------------
// Everything but git is refused

/// The refusal is one line on stderr and exit status 1.
fn assert_refused(out: &Output, expected: &str) {
    let stderr = text(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert_eq!(lines.len(), 1, "one line expected, got: {stderr:?}");
    assert!(lines[0].contains(expected), "{stderr}");
    assert!(out.stdout.is_empty(), "stdout: {}", text(&out.stdout));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shell_command_is_refused() {
    let w = world().await;
    let out = ssh(&w.key, w.app.ssh_port, &["127.0.0.1", "sh", "-c", "id"]).await;
    assert_refused(&out, "'sh' is not available");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interactive_shell_is_refused() {
    let w = world().await;
    let out = ssh(&w.key, w.app.ssh_port, &["-T", "127.0.0.1"]).await;
    assert_refused(&out, "no shell access");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_request_is_refused() {
    let w = world().await;
    let out = ssh(&w.key, w.app.ssh_port, &["-tt", "127.0.0.1"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    // With a terminal requested, OpenSSH may show the line on either stream.
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(all.contains("no terminal access"), "{all}");
    let out = ssh(
        &w.key,
        w.app.ssh_port,
        &["-tt", "127.0.0.1", "git-upload-pack", "'x.git'"],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subsystem_and_unknown_environment_variables_are_refused() {
    let w = world().await;
    let port = w.app.ssh_port;
    let out = ssh(&w.key, port, &["-s", "127.0.0.1", "sftp"]).await;
    assert_refused(&out, "subsystem 'sftp' is not available");
    let out = ssh(
        &w.key,
        port,
        &[
            "-o",
            "SetEnv=LD_PRELOAD=/tmp/x.so",
            "127.0.0.1",
            "git-upload-pack",
            "'x.git'",
        ],
    )
    .await;
    assert_refused(&out, "'LD_PRELOAD' is not accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_forwarding_is_refused() {
    let w = world().await;
    let agent = Command::new("ssh-agent")
        .args(["-s"])
        .output()
        .await
        .expect("ssh-agent runs");
    let out = text(&agent.stdout);
    let sock = out
        .split(';')
        .find_map(|p| p.trim().strip_prefix("SSH_AUTH_SOCK="))
        .expect("agent socket")
        .to_string();
    let pid = out
        .split(';')
        .find_map(|p| p.trim().strip_prefix("SSH_AGENT_PID="))
        .expect("agent pid")
        .to_string();
    let mut words: Vec<String> = w
        .key
        .ssh_command(w.app.ssh_port)
        .split_whitespace()
        .map(String::from)
        .collect();
    words.extend(["-A", "127.0.0.1", "git-upload-pack", "'x.git'"].map(String::from));
    let res = Command::new(&words[0])
        .args(&words[1..])
        .env("SSH_AUTH_SOCK", &sock)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    let _ = Command::new("kill").arg(&pid).output().await;
    assert_refused(&res, "agent forwarding is not available");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_port_forwarding_is_refused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let w = world().await;
    let local_port = free_port();
    let mut words: Vec<String> = w
        .key
        .ssh_command(w.app.ssh_port)
        .split_whitespace()
        .map(String::from)
        .collect();
    let forward = format!("{local_port}:127.0.0.1:{}", w.app.http_port);
    words.extend(["-N", "-L", &forward, "127.0.0.1"].map(String::from));
    let mut tunnel = Command::new(&words[0])
        .args(&words[1..])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Wait for ssh to listen on the local end (it does once authenticated).
    let mut conn = None;
    for _ in 0..200 {
        if let Ok(c) = tokio::net::TcpStream::connect(("127.0.0.1", local_port)).await {
            conn = Some(c);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut conn = conn.expect("ssh never listened on the forwarded port");
    let _ = conn
        .write_all(b"GET /healthz HTTP/1.0\r\nHost: x\r\n\r\n")
        .await;
    let mut answer = Vec::new();
    let _ = conn.read_to_end(&mut answer).await;
    assert!(
        answer.is_empty(),
        "the forward reached the API: {}",
        text(&answer)
    );
    tunnel.start_kill().unwrap();
    let _ = tunnel.wait().await;
    // The same request sent directly is answered: only the forwarding was refused.
    let direct = w.app.health().await;
    assert!(direct.status().is_success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_outside_the_apps_are_refused() {
    let w = world().await;
    w.app.create_app(&w.user.token, "real-app").await;
    for path in ["'../../etc'", "'/etc/passwd'", "'/real-app.git/../../etc'"] {
        for verb in ["git-upload-pack", "git-receive-pack"] {
            let out = ssh(&w.key, w.app.ssh_port, &["127.0.0.1", verb, path]).await;
            assert_refused(&out, "is not an app repository");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Concurrency and size

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pushes_to_two_apps_run_at_once() {
    let w = world().await;
    let port = w.app.ssh_port;
    // Each push waits inside its hook for the other: they only get through if both are in their
    // hooks at the same time.
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    set_handler(&w.app, move |_push, _progress| {
        let barrier = barrier.clone();
        Box::pin(async move {
            tokio::time::timeout(std::time::Duration::from_secs(60), barrier.wait())
                .await
                .map(|_| ())
                .map_err(|_| Error::DeployFailed("the other push never ran alongside".into()))
        })
    });
    let one = remote_of(&w.app.create_app(&w.user.token, "app-one").await);
    let two = remote_of(&w.app.create_app(&w.user.token, "app-two").await);
    let wt1 = work_tree(&w, "one", &[("a.txt", "one\n")]).await;
    let wt2 = work_tree(&w, "two", &[("a.txt", "two\n")]).await;
    let (args1, args2) = (["push", &one, "main"], ["push", &two, "main"]);
    let (a, b) = tokio::join!(
        git(&wt1, &w.key, port, &args1),
        git(&wt2, &w.key, port, &args2),
    );
    ok(a);
    ok(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_push_to_the_same_app_waits_and_says_why() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let w = world().await;
    let port = w.app.ssh_port;
    let release = Arc::new(tokio::sync::Notify::new());
    let entered = Arc::new(tokio::sync::Notify::new());
    let (r, e) = (release.clone(), entered.clone());
    set_handler(&w.app, move |push, _progress| {
        let (release, entered) = (r.clone(), e.clone());
        let first = push.updates.iter().any(|u| u.name == "refs/heads/main");
        Box::pin(async move {
            if first {
                entered.notify_one();
                release.notified().await;
            }
            Ok(())
        })
    });
    let remote = remote_of(&w.app.create_app(&w.user.token, "busy-app").await);
    let wt = work_tree(&w, "src", &[("a.txt", "a\n")]).await;
    let first = tokio::spawn({
        let (wt, remote) = (wt.clone(), remote.clone());
        let key = w.key.clone();
        async move { git(&wt, &key, port, &["push", &remote, "main"]).await }
    });
    entered.notified().await;

    let mut second = git_command(&wt, &w.key, port, &["push", &remote, "main:other"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(second.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        let waiting = line.contains("another push to 'busy-app' is in progress");
        seen.push(line);
        if waiting {
            break;
        }
    }
    assert!(
        seen.last()
            .is_some_and(|l| l.contains("waiting for it to finish")),
        "{seen:?}"
    );
    release.notify_one();
    ok(first.await.unwrap());
    while lines.next_line().await.unwrap().is_some() {}
    assert!(second.wait().await.unwrap().success());
    let refs = ls_remote(&wt, &w.key, port, &remote).await;
    assert!(
        refs.contains("refs/heads/main") && refs.contains("refs/heads/other"),
        "{refs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mb_push_of_random_data_succeeds() {
    let _gate = MEMORY_GATE.read().await;
    let w = world().await;
    let port = w.app.ssh_port;
    let remote = remote_of(&w.app.create_app(&w.user.token, "big-app").await);
    let wt = w.dir.path().join("big");
    std::fs::create_dir_all(&wt).unwrap();
    ok(git(&wt, &w.key, port, &["init", "-q", "-b", "main"]).await);
    let mut data = vec![0u8; 100 * 1024 * 1024];
    rand::fill(&mut data[..]);
    std::fs::write(wt.join("random.bin"), &data).unwrap();
    drop(data);
    commit(&wt, &w.key, port, "big").await;
    ok(git(&wt, &w.key, port, &["push", &remote, "main"]).await);
    let head = rev_parse(&wt, &w.key, port, "HEAD").await;
    let refs = ls_remote(&wt, &w.key, port, &remote).await;
    assert!(refs.contains(&format!("{head}\trefs/heads/main")), "{refs}");
}

// ---------------------------------------------------------------------------------------------
// The pre-receive callback

/// What the hook saw of one ref update: app, old, new, ref, and whether the new commit was
/// readable with the quarantine environment.
type Seen = (String, String, String, String, bool);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hook_sees_the_right_old_new_and_ref_and_the_pushed_objects() {
    let w = world().await;
    let port = w.app.ssh_port;
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let s = seen.clone();
    set_handler(&w.app, move |push, progress| {
        let s = s.clone();
        Box::pin(async move {
            progress.line(format!("checking {} update(s)", push.updates.len()));
            // The pushed commit is only visible with the quarantine environment.
            let new = push.updates[0].new.clone();
            let visible = Command::new("git")
                .args(["cat-file", "-e", &new])
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap())
                .envs(push.git_env.iter().map(|(k, v)| (k, v)))
                .status()
                .await
                .is_ok_and(|st| st.success());
            for u in &push.updates {
                s.lock().unwrap().push((
                    push.app.name.clone(),
                    u.old.clone(),
                    u.new.clone(),
                    u.name.clone(),
                    visible,
                ));
            }
            Ok(())
        })
    });
    let remote = remote_of(&w.app.create_app(&w.user.token, "hooked-app").await);
    let wt = work_tree(&w, "src", &[("a.txt", "1\n")]).await;
    let first = rev_parse(&wt, &w.key, port, "HEAD").await;
    let out = ok(git(&wt, &w.key, port, &["push", &remote, "main"]).await);
    assert!(
        text(&out.stderr).contains("remote: checking 1 update(s)"),
        "{}",
        text(&out.stderr)
    );
    std::fs::write(wt.join("a.txt"), "2\n").unwrap();
    commit(&wt, &w.key, port, "second").await;
    let second = rev_parse(&wt, &w.key, port, "HEAD").await;
    ok(git(&wt, &w.key, port, &["push", &remote, "main"]).await);

    let zero = "0".repeat(40);
    let seen = seen.lock().unwrap().clone();
    let main = "refs/heads/main".to_string();
    let app = "hooked-app".to_string();
    assert_eq!(
        seen,
        vec![
            (app.clone(), zero, first.clone(), main.clone(), true),
            (app, first.clone(), second.clone(), main, true),
        ]
    );
    // Both pushes are recorded, newest first, with who pushed.
    let records = w
        .app
        .services
        .store
        .read(|r| r.pushes_of("hooked-app", Slice::ALL))
        .unwrap();
    assert_eq!(records.total, 2);
    let newest = &records.items[0];
    assert_eq!(newest.username, w.user.username);
    assert_eq!(newest.outcome, PushOutcome::Accepted);
    assert_eq!(
        (newest.refs[0].old.as_str(), newest.refs[0].new.as_str()),
        (first.as_str(), second.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejecting_handler_shows_its_output_and_leaves_the_branch_alone() {
    let w = world().await;
    let port = w.app.ssh_port;
    set_handler(&w.app, |_push, progress| {
        Box::pin(async move {
            progress.line("-----> Building");
            Err(Error::DeployFailed("no Dockerfile at the root".into()))
        })
    });
    let remote = remote_of(&w.app.create_app(&w.user.token, "reject-app").await);
    let wt = work_tree(&w, "src", &[("a.txt", "a\n")]).await;
    let out = git(&wt, &w.key, port, &["push", &remote, "main"]).await;
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("remote: -----> Building"), "{stderr}");
    assert!(
        stderr.contains("remote: scalefog: no Dockerfile at the root"),
        "{stderr}"
    );
    assert!(stderr.contains("[remote rejected]"), "{stderr}");
    assert!(ls_remote(&wt, &w.key, port, &remote).await.is_empty());
    let rec = w
        .app
        .services
        .store
        .read(|r| r.pushes_of("reject-app", Slice::ALL))
        .unwrap();
    assert_eq!(rec.items[0].outcome, PushOutcome::Rejected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_callback_rejects_the_push() {
    let w = world().await;
    let port = w.app.ssh_port;
    set_handler(&w.app, |push, _progress| {
        Box::pin(async move {
            if !push.updates.is_empty() {
                panic!("the deploy engine fell over");
            }
            Ok(())
        })
    });
    let remote = remote_of(&w.app.create_app(&w.user.token, "crash-app").await);
    let wt = work_tree(&w, "src", &[("a.txt", "a\n")]).await;
    let out = git(&wt, &w.key, port, &["push", &remote, "main"]).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("remote: scalefog: the push handler crashed; push rejected"),
        "{}",
        text(&out.stderr)
    );
    assert!(ls_remote(&wt, &w.key, port, &remote).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_is_rejected_when_the_callback_server_is_gone() {
    let w = world().await;
    let port = w.app.ssh_port;
    let remote = remote_of(&w.app.create_app(&w.user.token, "orphan-app").await);
    let wt = work_tree(&w, "src", &[("a.txt", "a\n")]).await;
    // The hook finds nobody to call, as after the callback server was killed.
    std::fs::remove_file(w.app.services.git.socket_path()).unwrap();
    let out = git(&wt, &w.key, port, &["push", &remote, "main"]).await;
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("remote: scalefog: cannot reach the scalefog server"),
        "{stderr}"
    );
    assert!(stderr.contains("push rejected"), "{stderr}");
    assert!(ls_remote(&wt, &w.key, port, &remote).await.is_empty());
}

/// With `shutdown_timeout` 0 a stop cancels the push in flight at once; the handler gives up
/// as the deploy engine does, and the pusher reads why. (A stop that lets pushes finish is
/// tested with the real binary in `shutdown`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_server_mid_push_cancels_the_push_and_says_so() {
    let w = world_with(|c| c.shutdown_timeout = 0).await;
    let port = w.app.ssh_port;
    let socket = w.app.services.git.socket_path().to_path_buf();
    let entered = Arc::new(tokio::sync::Notify::new());
    let e = entered.clone();
    let drain = w.app.services.drain.clone();
    set_handler(&w.app, move |_push, _progress| {
        let (e, drain) = (e.clone(), drain.clone());
        Box::pin(async move {
            e.notify_one();
            drain.cancelled().await;
            Err(scalefog::domain::Error::Cancelled(
                scalefog::drain::CANCELLED.into(),
            ))
        })
    });
    let remote = remote_of(&w.app.create_app(&w.user.token, "killed-app").await);
    let wt = work_tree(&w, "src", &[("a.txt", "a\n")]).await;
    let push = tokio::spawn({
        let (wt, remote) = (wt.clone(), remote.clone());
        let key = w.key.clone();
        async move { git(&wt, &key, port, &["push", &remote, "main"]).await }
    });
    entered.notified().await;
    drop(w.app);
    let out = push.await.unwrap();
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("cancelled: scalefog stopped before it finished"),
        "{stderr}"
    );
    // The stop then ends: the callback socket goes last.
    for _ in 0..100 {
        if !socket.exists() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the callback socket is still there after the stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_that_times_out_rejects_the_push() {
    let w = world().await;
    let port = w.app.ssh_port;
    w.app
        .services
        .git
        .set_push_timeout(std::time::Duration::from_secs(1));
    set_handler(&w.app, |_push, _progress| {
        Box::pin(async {
            std::future::pending::<()>().await;
            Ok(())
        })
    });
    let remote = remote_of(&w.app.create_app(&w.user.token, "slow-app").await);
    let wt = work_tree(&w, "src", &[("a.txt", "a\n")]).await;
    let out = git(&wt, &w.key, port, &["push", &remote, "main"]).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("and was stopped; push rejected"),
        "{}",
        text(&out.stderr)
    );
}

// ---------------------------------------------------------------------------------------------
// Repositories follow their apps; the host key stays

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_gets_a_repository_on_create_and_loses_it_on_delete() {
    let w = world().await;
    w.app.create_app(&w.user.token, "short-lived").await;
    let repo = w.app.data_dir.join("repos/short-lived.git");
    assert!(repo.join("HEAD").exists());
    assert!(repo.join("hooks/pre-receive").exists());
    let r = w.app.delete_app(&w.user.token, "short-lived").await;
    assert_eq!(r.status(), reqwest::StatusCode::NO_CONTENT);
    assert!(!repo.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_key_is_served_and_stays_the_same_across_restarts() {
    let keep = tempfile::tempdir().unwrap();
    let data = keep.path().join("data");
    let known_hosts = keep.path().join("known_hosts");
    let mut fingerprints = Vec::new();
    for round in 0..2 {
        let d = data.clone();
        let app = spawn_until_started(&d).await;
        let body: Value = app
            .get("/v1/ssh-host-key", None)
            .await
            .json()
            .await
            .unwrap();
        let fp = body["fingerprint"].as_str().unwrap().to_string();
        assert!(fp.starts_with("SHA256:"), "{body}");
        assert_eq!(body["algorithm"], "ssh-ed25519");
        // What an SSH client sees is what the API says.
        let scan = Command::new("ssh-keyscan")
            .args([
                "-t",
                "ed25519",
                "-p",
                &app.ssh_port.to_string(),
                "127.0.0.1",
            ])
            .output()
            .await
            .unwrap();
        let mut lister = Command::new("ssh-keygen")
            .args(["-l", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        {
            use tokio::io::AsyncWriteExt;
            let mut stdin = lister.stdin.take().unwrap();
            stdin.write_all(&scan.stdout).await.unwrap();
        }
        let listed = text(&lister.wait_with_output().await.unwrap().stdout);
        assert!(listed.contains(&fp), "keyscan: {listed} api: {fp}");
        let mode = {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(data.join("ssh_host_ed25519_key"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode, 0o600);
        // The second round connects with strict checking against what the first recorded.
        let user = if round == 0 {
            app.user("alice").await
        } else {
            TestUser {
                token: app.token("alice", "password-alice").await,
                username: "alice".into(),
                password: "password-alice".into(),
            }
        };
        let key = if round == 0 {
            let k = keygen(keep.path(), "alice").await;
            let r = app.add_ssh_key(&user.token, &k.public).await;
            assert!(r.status().is_success());
            k
        } else {
            Key {
                private: keep.path().join("alice"),
                public: std::fs::read_to_string(keep.path().join("alice.pub")).unwrap(),
            }
        };
        let checking = if round == 0 { "accept-new" } else { "yes" };
        let out = Command::new("ssh")
            .args(["-i"])
            .arg(&key.private)
            .args(["-p", &app.ssh_port.to_string()])
            .args(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"])
            .args(["-o", "HostKeyAlias=scalefog-test"])
            .args(["-o", &format!("StrictHostKeyChecking={checking}")])
            .args([
                "-o",
                &format!("UserKnownHostsFile={}", known_hosts.display()),
            ])
            .args(["127.0.0.1", "git-upload-pack", "'nothing-here.git'"])
            .stdin(Stdio::null())
            .output()
            .await
            .unwrap();
        // Authenticated against the known host key, then refused for the missing app.
        assert!(
            text(&out.stderr).contains("no app named 'nothing-here'"),
            "round {round}: {}",
            text(&out.stderr)
        );
        fingerprints.push(fp);
        app.stop().await;
    }
    assert_eq!(fingerprints[0], fingerprints[1]);
}

/// A server on `data`, retried while the previous one on the same data dir lets go of the store.
async fn spawn_until_started(data: &Path) -> StoppableApp {
    let mut last = String::new();
    for _ in 0..100 {
        let config = scalefog::config::Config::for_tests(data);
        match scalefog::startup::Application::build(config).await {
            Ok(app) => return StoppableApp::run(app),
            Err(e) => {
                last = format!("{e:#}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await
            }
        }
    }
    panic!("the server did not start again on the same data dir: {last}");
}

/// A server whose shutdown can be awaited, for restarts on one data dir.
struct StoppableApp {
    api: Api,
    ssh_port: u16,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl StoppableApp {
    fn run(app: scalefog::startup::Application) -> StoppableApp {
        app.services()
            .git
            .set_hook_program(env!("CARGO_BIN_EXE_scalefog"));
        let api = Api::new(format!("http://127.0.0.1:{}", app.http_port()));
        let ssh_port = app.ssh_port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        StoppableApp {
            api,
            ssh_port,
            stop,
            task,
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

impl std::ops::Deref for StoppableApp {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

// ---------------------------------------------------------------------------------------------
// Connections that do not authenticate

/// Bounds a wait that would otherwise hang the test when the server does not act.
const HANG_GUARD: std::time::Duration = std::time::Duration::from_secs(60);

/// An OpenSSH `ssh -N` with `key`, once it has authenticated; it keeps its connection open
/// until dropped.
async fn authenticated_connection(key: &Key, port: u16) -> tokio::process::Child {
    use tokio::io::AsyncBufReadExt;
    let mut child = Command::new("ssh")
        .arg("-i")
        .arg(&key.private)
        .args(["-p", &port.to_string()])
        .args(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"])
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
        ])
        .args(["-N", "-v", "git@127.0.0.1"])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("ssh runs");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = vec![];
    let authenticated = tokio::time::timeout(HANG_GUARD, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("Authenticated to") {
                return true;
            }
            seen.push(line);
        }
        false
    })
    .await;
    assert_eq!(authenticated, Ok(true), "ssh -N: {}", seen.join("\n"));
    // Its further debug lines must not fill the pipe and block it.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    child
}

/// Reads what the server sends on `conn` until it closes the connection.
async fn read_until_closed(conn: &mut tokio::net::TcpStream) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut got = vec![];
    let read = tokio::time::timeout(HANG_GUARD, conn.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the server closes the connection");
    got
}

/// A raw TCP connection to the SSH port, once the server has sent its banner (so it has been
/// accepted and counts as not authenticated).
async fn unauthenticated_connection(port: u16) -> tokio::net::TcpStream {
    use tokio::io::AsyncReadExt;
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut banner = vec![];
    while !banner.ends_with(b"\n") {
        let mut byte = [0u8; 1];
        let n = tokio::time::timeout(HANG_GUARD, conn.read(&mut byte))
            .await
            .expect("a banner")
            .unwrap();
        assert_eq!(n, 1, "closed before its banner: {}", text(&banner));
        banner.push(byte[0]);
    }
    assert!(banner.starts_with(b"SSH-2.0-Scalefog"), "{}", text(&banner));
    conn
}

/// A connection that sends nothing, and one that sends only its banner (so the key exchange
/// starts and stalls), are both closed after `ssh_login_grace`; an authenticated connection
/// older than that stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_do_not_authenticate_within_the_login_grace_are_closed() {
    use tokio::io::AsyncWriteExt;
    let w = world_with(|c| c.ssh_login_grace = 3).await;
    let port = w.app.ssh_port;
    let mut logged_in = authenticated_connection(&w.key, port).await;

    let mut silent = unauthenticated_connection(port).await;
    let mut banner_only = unauthenticated_connection(port).await;
    banner_only
        .write_all(b"SSH-2.0-OpenSSH_9.2\r\n")
        .await
        .unwrap();
    assert_eq!(read_until_closed(&mut silent).await, b"");
    // The server's key exchange offer came first, then nothing but the close.
    assert!(!read_until_closed(&mut banner_only).await.is_empty());

    assert!(
        logged_in.try_wait().unwrap().is_none(),
        "the authenticated connection (opened before both) is still open"
    );
}

/// Past `ssh_max_unauthenticated` connections from one address, further ones are closed at
/// once, registered keys' too, until one of them ends; authenticated connections do not count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_connections_from_an_address_are_capped_and_authenticated_ones_do_not_count()
 {
    let w = world_with(|c| c.ssh_max_unauthenticated = 2).await;
    let port = w.app.ssh_port;
    let remote = remote_of(&w.app.create_app(&w.user.token, "capped").await);
    let _logged_in = [
        authenticated_connection(&w.key, port).await,
        authenticated_connection(&w.key, port).await,
    ];
    let first = unauthenticated_connection(port).await;
    let _second = unauthenticated_connection(port).await;

    let mut third = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    assert_eq!(read_until_closed(&mut third).await, b"", "no banner");
    let out = git(w.dir.path(), &w.key, port, &["ls-remote", &remote]).await;
    assert!(!out.status.success(), "refused as well");

    drop(first);
    // The server frees the place once it has seen that connection end.
    let mut out = out;
    for _ in 0..50 {
        out = git(w.dir.path(), &w.key, port, &["ls-remote", &remote]).await;
        if out.status.success() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(out.status.success(), "{}", text(&out.stderr));
}
