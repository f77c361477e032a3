//! The `scalefog` binary itself: flags, settings errors, admin user creation, backups, signals.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_scalefog");

fn scalefog(data_dir: &std::path::Path) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .arg("--data-dir")
        .arg(data_dir);
    c
}

/// Starts `scalefog serve` on free ports and returns it with its HTTP port, read from its log.
fn serve(data_dir: &std::path::Path) -> (Child, u16) {
    let mut child = scalefog(data_dir)
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
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let port = loop {
        let line = lines.next().expect("server logs before exiting").unwrap();
        if let Some(rest) = line.split("port=").nth(1) {
            break rest
                .split_whitespace()
                .next()
                .unwrap()
                .parse::<u16>()
                .unwrap();
        }
    };
    // Keep draining the log so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, port)
}

fn sigterm(child: &mut Child) -> std::process::ExitStatus {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap()
}

#[test]
fn version_prints_the_package_version() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn help_teaches_the_commands_and_settings() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for word in [
        "serve",
        "admin",
        "backup",
        "restore",
        "--http-listen",
        "SCALEFOG_HTTP_LISTEN",
        "Examples",
    ] {
        assert!(text.contains(word), "--help mentions {word}");
    }
}

#[test]
fn an_invalid_setting_is_one_clear_line_and_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = scalefog(dir.path())
        .args(["--http-listen", "not-an-address", "serve"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("http_listen"), "{err}");
    let out = scalefog(dir.path())
        .env("SCALEFOG_REGISTRATION", "sometimes")
        .arg("serve")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let toml = dir.path().join("bad.toml");
    std::fs::write(&toml, "domian = \"typo.example.com\"\n").unwrap();
    let out = scalefog(dir.path())
        .arg("--config")
        .arg(&toml)
        .arg("serve")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("domian"));
}

#[tokio::test]
async fn admin_create_user_then_serve_then_sign_in_then_backup_while_running_then_restore() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut child = scalefog(&data)
        .args([
            "admin",
            "create-user",
            "root",
            "--email",
            "root@example.com",
            "--admin",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"correct-horse-battery\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("admin"));

    let (mut server, port) = serve(&data);
    let client = reqwest::Client::new();
    let r = client
        .post(format!("http://127.0.0.1:{port}/account/getToken"))
        .form(&[("username", "root"), ("password", "correct-horse-battery")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // The store is locked by the server; the backup goes through its control socket.
    let copy = dir.path().join("backup.tar.zst");
    let out = scalefog(&data).arg("backup").arg(&copy).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("backup written to"));
    // Restoring over the running server's data dir is refused, naming why.
    let out = scalefog(&data).arg("restore").arg(&copy).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("server is running"), "{err}");
    let status = sigterm(&mut server);
    assert!(status.success(), "SIGTERM is a clean stop: {status}");
    // Stopped, it is still not empty.
    let out = scalefog(&data).arg("restore").arg(&copy).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));

    // The archive is complete: a server on its restore knows root.
    let restored = dir.path().join("restored");
    let out = scalefog(&restored)
        .arg("restore")
        .arg(&copy)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 users"));
    let (mut server, port) = serve(&restored);
    let r = client
        .post(format!("http://127.0.0.1:{port}/account/getToken"))
        .form(&[("username", "root"), ("password", "correct-horse-battery")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    sigterm(&mut server);

    // Offline backup opens the store itself; an existing destination is refused.
    let out = scalefog(&data).arg("backup").arg(&copy).output().unwrap();
    assert!(!out.status.success());
    let copy2 = dir.path().join("backup2.tar.zst");
    assert!(
        scalefog(&data)
            .arg("backup")
            .arg(&copy2)
            .status()
            .unwrap()
            .success()
    );
}

#[test]
fn create_user_refuses_a_short_password_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = scalefog(dir.path())
        .args([
            "admin",
            "create-user",
            "root",
            "--email",
            "root@example.com",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"short\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 8"));
}
