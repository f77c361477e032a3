//! One-off runs against a real deployment: the busybox app pushed with the real `git` over
//! OpenSSH, then `ssh … run APP -- COMMAND` with the real `ssh` client (with and without a
//! terminal), and detached runs through the API, all in real Docker.

use crate::dockerapp::*;
use crate::gitssh::*;
use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// A server with alice's app deployed (config `GREETING=hello`), her key, and cleanup.
struct World {
    app: TestApp,
    alice: TestUser,
    key: Key,
    name: String,
    dir: tempfile::TempDir,
    _cleanup: DockerCleanup,
}

async fn world(prefix: &str, tweak: impl FnOnce(&mut scalefog::config::Config)) -> World {
    let app = spawn_app_with(|c| {
        c.health_timeout = 10;
        tweak(c)
    })
    .await;
    let cleanup = DockerCleanup::of(&app);
    let alice = app.user("alice").await;
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "alice").await;
    add_key(&app, &alice.token, &key).await;
    let name = unique(prefix);
    app.create_app(&alice.token, &name).await;
    let r = app
        .set_config(&alice.token, &name, &json!({"GREETING": "hello"}))
        .await;
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());

    let wt: PathBuf = dir.path().join("app");
    std::fs::create_dir_all(wt.join("www")).unwrap();
    std::fs::copy("/bin/busybox", wt.join("busybox")).expect("/bin/busybox exists");
    std::fs::write(wt.join("www/index.html"), "runs").unwrap();
    std::fs::write(wt.join("Dockerfile"), dockerfile("", SERVE)).unwrap();
    let port = app.ssh_port;
    ok(git(&wt, &key, port, &["init", "-q", "-b", "main"]).await);
    commit(&wt, &key, port, "first").await;
    let remote = format!("ssh://git@127.0.0.1:{port}/{name}.git");
    ok(git(&wt, &key, port, &["push", "-q", &remote, "main"]).await);
    World {
        app,
        alice,
        key,
        name,
        dir,
        _cleanup: cleanup,
    }
}

/// `ssh` with `key` and `args`, `input` on its stdin.
async fn ssh_with_input(key: &Key, port: u16, args: &[&str], input: &[u8]) -> Output {
    let words: Vec<String> = key
        .ssh_command(port)
        .split_whitespace()
        .map(String::from)
        .collect();
    let mut child = Command::new(&words[0])
        .args(&words[1..])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ssh runs");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).await.unwrap();
    drop(stdin);
    child.wait_with_output().await.expect("ssh ends")
}

impl World {
    /// `ssh git@host run <app> -- <command>` as alice.
    async fn run(&self, command: &[&str]) -> Output {
        let mut args = vec!["git@127.0.0.1", "run", self.name.as_str(), "--"];
        args.extend_from_slice(command);
        ssh(&self.key, self.app.ssh_port, &args).await
    }

    /// The app's memory limit in bytes.
    fn memory_bytes(&self) -> u64 {
        let inst = self
            .app
            .services
            .store
            .read(|r| r.instance(&self.name))
            .unwrap()
            .unwrap();
        u64::from(inst.memory_mb) * 1024 * 1024
    }

    /// The process names of the app's containers that are one-off runs.
    fn run_containers(&self) -> Vec<String> {
        docker(&[
            "ps",
            "-a",
            "--filter",
            &format!("label=scalefog.app={}", self.name),
            "--format",
            "{{.Label \"scalefog.process\"}}",
        ])
        .lines()
        .filter(|p| p.starts_with("run."))
        .map(String::from)
        .collect()
    }

    /// `GET …/runs/{id}` until the run is no longer running.
    async fn finished_run(&self, id: u64) -> Value {
        for _ in 0..600 {
            let r = self
                .app
                .get(
                    &format!("/v1/instances/{}/runs/{id}", self.name),
                    Some(&self.alice.token),
                )
                .await;
            assert_eq!(r.status(), StatusCode::OK);
            let run: Value = r.json().await.unwrap();
            if run["status"] != "running" {
                return run;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("run {id} did not end");
    }
}

/// Reads the memory limit of the cgroup the command runs in (v2, else v1).
const MEMORY_LIMIT: &str =
    "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes";

#[tokio::test]
async fn ssh_run_returns_the_commands_exit_code_and_output_and_other_users_apps_are_not_found() {
    let w = world("run-ssh", |_| {}).await;
    let port = w.app.ssh_port;

    // Output on both streams, the app's config, and the command's own exit code.
    let out = w
        .run(&[
            "/bin/busybox",
            "sh",
            "-c",
            "'echo out $GREETING; echo err >&2; exit 3'",
        ])
        .await;
    assert_eq!(out.status.code(), Some(3), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "out hello\n");
    assert_eq!(text(&out.stderr), "err\n");

    // Stdin reaches the command, and its end ends the command's input.
    let out = ssh_with_input(
        &w.key,
        port,
        &[
            "git@127.0.0.1",
            "run",
            &w.name,
            "--",
            "/bin/busybox",
            "tr",
            "a-z",
            "A-Z",
        ],
        b"shout\n",
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "SHOUT\n");

    // The app's memory limit applies; no terminal unless asked for.
    let out = w
        .run(&["/bin/busybox", "sh", "-c", &format!("'{MEMORY_LIMIT}'")])
        .await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), w.memory_bytes().to_string());
    let out = w.run(&["/bin/busybox", "tty"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout).trim(), "not a tty");

    // A program that does not exist: a failure naming it.
    let out = w.run(&["/no/such/program"]).await;
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("/no/such/program"),
        "{}",
        text(&out.stderr)
    );

    // Every run's container is gone, and the runs are recorded with their exit codes.
    assert_eq!(w.run_containers(), Vec::<String>::new());
    let r = w
        .app
        .get(
            &format!("/v1/instances/{}/runs", w.name),
            Some(&w.alice.token),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let runs: Vec<Value> = r.json().await.unwrap();
    let first = runs.last().expect("runs are listed");
    assert_eq!(first["status"], "failed", "{first}");
    assert_eq!(first["exit_code"], 3, "{first}");
    assert_eq!(first["detached"], false, "{first}");
    assert_eq!(runs[runs.len() - 2]["status"], "succeeded");

    // Bob's key reaches none of alice's apps, and cannot tell them from missing ones.
    let bob = w.app.user("bob").await;
    let bob_key = keygen(w.dir.path(), "bob").await;
    add_key(&w.app, &bob.token, &bob_key).await;
    let theirs = ssh(
        &bob_key,
        port,
        &["git@127.0.0.1", "run", &w.name, "--", "/bin/busybox", "id"],
    )
    .await;
    let missing = ssh(
        &bob_key,
        port,
        &[
            "git@127.0.0.1",
            "run",
            "no-such-app",
            "--",
            "/bin/busybox",
            "id",
        ],
    )
    .await;
    for (out, app) in [(&theirs, w.name.as_str()), (&missing, "no-such-app")] {
        assert_eq!(out.status.code(), Some(1));
        assert!(out.stdout.is_empty());
        assert_eq!(
            text(&out.stderr).trim(),
            format!("scalefog: no app named '{app}' that you can access")
        );
    }
    for path in [
        format!("/v1/instances/{}/runs", w.name),
        format!("/v1/instances/{}/runs/1", w.name),
    ] {
        let r = w.app.get(&path, Some(&bob.token)).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let r = w
        .app
        .post_json(
            &format!("/v1/instances/{}/runs", w.name),
            &json!({"command": "/bin/busybox id"}),
            Some(&bob.token),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // A run without a command is refused in one line.
    let out = ssh(&w.key, port, &["git@127.0.0.1", "run", &w.name]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("run needs a command"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn ssh_t_gives_a_run_a_terminal_that_carries_input_and_the_exit_code() {
    let w = world("run-pty", |_| {}).await;
    let out = ssh_with_input(
        &w.key,
        w.app.ssh_port,
        &[
            "-tt",
            "git@127.0.0.1",
            "run",
            &w.name,
            "--",
            "/bin/busybox",
            "sh",
            "-c",
            "'tty; echo TERM=$TERM; read line; echo got-$line; exit 7'",
        ],
        b"typed\n",
    )
    .await;
    assert_eq!(out.status.code(), Some(7), "stderr: {}", text(&out.stderr));
    // With a terminal, output is one stream, and lines end in CR LF.
    let shown = text(&out.stdout);
    assert!(shown.contains("/dev/pts/"), "{shown:?}");
    assert!(shown.contains("got-typed\r\n"), "{shown:?}");
    assert!(!shown.contains("TERM=\r\n"), "TERM is set: {shown:?}");
    assert_eq!(w.run_containers(), Vec::<String>::new());
    let r = w
        .app
        .get(
            &format!("/v1/instances/{}/runs", w.name),
            Some(&w.alice.token),
        )
        .await;
    let runs: Vec<Value> = r.json().await.unwrap();
    assert_eq!(runs[0]["tty"], true, "{runs:?}");
    assert_eq!(runs[0]["exit_code"], 7, "{runs:?}");
}

#[tokio::test]
async fn a_detached_run_reports_its_status_exit_code_and_output_and_is_stopped_at_run_timeout() {
    let w = world("run-api", |c| c.run_timeout = 3).await;
    let runs = format!("/v1/instances/{}/runs", w.name);
    let token = Some(w.alice.token.as_str());

    let r = w
        .app
        .post_json(
            &runs,
            &json!({"command": ["/bin/busybox", "sh", "-c", format!("echo hi $GREETING; {MEMORY_LIMIT}; exit 4")]}),
            token,
        )
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let started: Value = r.json().await.unwrap();
    assert_eq!(started["status"], "running", "{started}");
    assert_eq!(started["detached"], true, "{started}");
    let id = started["id"].as_u64().expect("an id");
    let done = w.finished_run(id).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["exit_code"], 4, "{done}");
    assert_eq!(
        done["output"],
        format!("hi hello\n{}\n", w.memory_bytes()),
        "{done}"
    );

    // A command line is split like a Procfile's; exit 0 is success.
    let r = w
        .app
        .post_json(
            &runs,
            &json!({"command": "/bin/busybox echo 'two words'"}),
            token,
        )
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let id = r.json::<Value>().await.unwrap()["id"].as_u64().unwrap();
    let done = w.finished_run(id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["exit_code"], 0, "{done}");
    assert_eq!(done["output"], "two words\n", "{done}");

    // Past run_timeout the run is stopped (reconcile left it running until then).
    let r = w
        .app
        .post_json(&runs, &json!({"command": "/bin/busybox sleep 600"}), token)
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let id = r.json::<Value>().await.unwrap()["id"].as_u64().unwrap();
    let done = w.finished_run(id).await;
    assert_eq!(done["status"], "timed_out", "{done}");
    assert!(
        done["error"]
            .as_str()
            .unwrap()
            .contains("run_timeout (3 s)"),
        "{done}"
    );
    assert_eq!(w.run_containers(), Vec::<String>::new());

    // Bad requests name the problem.
    for (body, field) in [
        (json!({}), "command"),
        (json!({"command": 5}), "command"),
        (json!({"command": "echo 'open"}), "command"),
        (json!({"command": ["echo", 1]}), "command"),
        (json!({"command": []}), "command"),
    ] {
        let r = w.app.post_json(&runs, &body, token).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body}");
        let e = error_body(r).await;
        assert_eq!(e["field"], field, "{body}: {e}");
    }
    let r = w.app.get(&format!("{runs}/abc"), token).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_body(r).await["field"], "id");
    let r = w.app.get(&format!("{runs}/999"), token).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    error_body(r).await;
}

/// A pseudo-terminal of `rows` × `cols` for the client, as a user's terminal window is.
struct Pty {
    master: std::fs::File,
    slave: std::os::fd::OwnedFd,
}

fn pty(rows: u16, cols: u16) -> Pty {
    use std::os::fd::FromRawFd;
    let (mut master, mut slave) = (0, 0);
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty writes two descriptors, which are then owned here.
    let r = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(r, 0, "openpty");
    unsafe {
        Pty {
            master: std::fs::File::from_raw_fd(master),
            slave: std::os::fd::OwnedFd::from_raw_fd(slave),
        }
    }
}

/// Resizes the window of the terminal whose master is `master`; the kernel tells the terminal's
/// foreground process (`ssh`).
fn resize(master: &std::fs::File, rows: u16, cols: u16) {
    {
        use std::os::fd::AsRawFd;
        let size = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: an ioctl on a descriptor this owns, with a valid winsize.
        let r = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
        assert_eq!(r, 0, "TIOCSWINSZ");
    }
}

#[tokio::test]
async fn a_terminal_run_starts_at_the_clients_window_size_and_follows_its_changes() {
    use std::io::{Read, Write};
    use std::os::unix::process::CommandExt;
    let w = world("run-size", |_| {}).await;
    let Pty { mut master, slave } = pty(45, 123);
    let words: Vec<String> = w
        .key
        .ssh_command(w.app.ssh_port)
        .split_whitespace()
        .map(String::from)
        .collect();
    let mut ssh = std::process::Command::new(&words[0]);
    ssh.args(&words[1..])
        .args([
            "-t",
            "git@127.0.0.1",
            "run",
            &w.name,
            "--",
            "/bin/busybox",
            "sh",
            "-c",
        ])
        // Each line typed shows the size; Docker sizes a terminal only once its process runs,
        // so the command reads before it looks.
        .arg("'while read a; do [ \"$a\" = q ] && exit 5; stty size; done'")
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave.try_clone().unwrap());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        ssh.pre_exec(|| {
            // ssh's own session, with the pty as its controlling terminal: it then gets the
            // window's SIGWINCH, as in a terminal emulator.
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = ssh.spawn().expect("ssh runs");
    drop(slave);
    // Read on a thread of its own: the server under test runs on this test's runtime.
    let (chunks, mut seen) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    let mut reader = master.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        // Ends with EIO once ssh, the last holder of the terminal, exits.
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 || chunks.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut shown = String::new();
    // Types a line and returns the size the command then shows.
    let mut size_after_a_line = async || {
        (&master).write_all(b"x\r").unwrap();
        let before = shown.matches("\r\n").count();
        loop {
            let lines: Vec<&str> = shown.split("\r\n").collect();
            let last = lines.len().saturating_sub(2);
            let whole_lines = shown.ends_with("\r\n");
            if whole_lines && shown.matches("\r\n").count() > before && lines[last].contains(' ') {
                return lines[last].to_string();
            }
            match tokio::time::timeout(Duration::from_secs(60), seen.recv()).await {
                Ok(Some(chunk)) => shown.push_str(&String::from_utf8_lossy(&chunk)),
                _ => panic!("the command showed no size; the terminal shows {shown:?}"),
            }
        }
    };
    assert_eq!(size_after_a_line().await, "45 123");
    resize(&master, 50, 100);
    // ssh may send the line before it tells the window's change: lines typed after the change
    // show the new size once it has reached the terminal.
    let mut size = String::new();
    for _ in 0..50 {
        size = size_after_a_line().await;
        if size != "45 123" {
            break;
        }
    }
    assert_eq!(size, "50 100");
    master.write_all(b"q\r").unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(5));
}
