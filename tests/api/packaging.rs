//! The Debian package, as CI checks it: `cargo deb` packages the binary this suite runs (no
//! release build: `--no-build`, with CARGO_TARGET_DIR pointing at a directory where that binary
//! stands as `release/scalefog`), `dpkg -i` installs it on this machine (CI runs as root on
//! Debian), the installed unit's `ExecStart` command line, run as the `scalefog` user with its
//! groups, answers `/healthz` with Docker reachable, and `dpkg --purge` removes it again.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const UNIT: &str = "/usr/lib/systemd/system/scalefog.service";
const SETTINGS: &str = "/etc/scalefog/scalefog.toml";
const DATA_DIR: &str = "/var/lib/scalefog";

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether the command succeeds.
fn succeeds(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Leaves the machine as the test found it: the package purged, and the account and data dir
/// it made removed (only when they did not exist before).
struct Installed {
    account_was_there: bool,
    data_dir_was_there: bool,
}

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", "scalefog"]).output();
        if !self.data_dir_was_there {
            let _ = std::fs::remove_dir_all(DATA_DIR);
        }
        if !self.account_was_there {
            let _ = Command::new("userdel").arg("scalefog").output();
            let _ = Command::new("groupdel").arg("scalefog").output();
        }
    }
}

/// The `.deb` built around `binary`, in `stage`.
fn build_deb(binary: &Path, stage: &Path) -> PathBuf {
    std::fs::create_dir_all(stage.join("release")).unwrap();
    std::fs::copy(binary, stage.join("release/scalefog")).unwrap();
    run(Command::new("cargo")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CARGO_TARGET_DIR", stage)
        .args(["deb", "--no-build", "--fast", "--quiet"]));
    let mut debs: Vec<PathBuf> = std::fs::read_dir(stage.join("debian"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect();
    assert_eq!(debs.len(), 1, "{debs:?}");
    debs.pop().unwrap()
}

#[tokio::test]
async fn the_deb_installs_a_service_whose_command_line_answers_healthz_as_the_scalefog_user() {
    assert_eq!(
        text(&run(Command::new("id").arg("-u"))).trim(),
        "0",
        "this test installs a package: run it as root (as CI does)"
    );
    assert!(
        succeeds("cargo", &["deb", "--version"]),
        "cargo-deb is needed: cargo install cargo-deb --locked (.ci/run does)"
    );
    assert!(
        !succeeds("dpkg-query", &["--status", "scalefog"]) && !Path::new(UNIT).exists(),
        "Scalefog is already installed on this machine; the test would replace it"
    );
    let stage = tempfile::tempdir().unwrap();
    let deb = build_deb(Path::new(env!("CARGO_BIN_EXE_scalefog")), stage.path());
    let contents = text(&run(Command::new("dpkg-deb").arg("--contents").arg(&deb)));
    for path in [
        "./usr/bin/scalefog",
        "./usr/lib/systemd/system/scalefog.service",
        "./usr/lib/sysusers.d/scalefog.conf",
        "./usr/lib/tmpfiles.d/scalefog.conf",
        "./etc/scalefog/scalefog.toml",
    ] {
        assert!(
            contents.contains(path),
            "{path} in the package:\n{contents}"
        );
    }

    let _installed = Installed {
        account_was_there: succeeds("id", &["scalefog"]),
        data_dir_was_there: Path::new(DATA_DIR).exists(),
    };
    run(Command::new("dpkg").arg("-i").arg(&deb));

    // The account, in the docker group; its data dir and settings; the unit enabled.
    let groups = text(&run(Command::new("id").args(["-nG", "scalefog"])));
    assert!(groups.split_whitespace().any(|g| g == "docker"), "{groups}");
    let uid: u32 = text(&run(Command::new("id").args(["-u", "scalefog"])))
        .trim()
        .parse()
        .unwrap();
    let data = std::fs::metadata(DATA_DIR).unwrap();
    assert_eq!(
        (data.uid(), data.permissions().mode() & 0o777),
        (uid, 0o700)
    );
    let settings = std::fs::metadata(SETTINGS).unwrap();
    assert_eq!(settings.permissions().mode() & 0o777, 0o640);
    assert!(
        Path::new("/etc/systemd/system/multi-user.target.wants/scalefog.service").exists(),
        "the unit is enabled"
    );

    // The unit's command line, as systemd would run it (User=, Group=, SupplementaryGroups=):
    // the packaged settings and data dir, on loopback ports of its own so nothing collides.
    let unit = std::fs::read_to_string(UNIT).unwrap();
    let exec_start: Vec<&str> = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart in the unit")
        .split_whitespace()
        .collect();
    assert_eq!(exec_start[0], "/usr/bin/scalefog");
    let mut server = tokio::process::Command::new("setpriv")
        .args([
            "--reuid=scalefog",
            "--regid=scalefog",
            "--init-groups",
            "--",
        ])
        .args(&exec_start)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("SCALEFOG_HTTP_LISTEN", "127.0.0.1:0")
        .env("SCALEFOG_SSH_LISTEN", "127.0.0.1:0")
        .env("SCALEFOG_PROXY_LISTEN", "127.0.0.1:0")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    use tokio::io::AsyncBufReadExt;
    let mut log = tokio::io::BufReader::new(server.stderr.take().unwrap()).lines();
    let port: u16 = loop {
        let line = log
            .next_line()
            .await
            .unwrap()
            .expect("the packaged server logs its port before exiting");
        if let Some(p) = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("port=")?.parse().ok())
        {
            break p;
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = log.next_line().await {} });
    let health: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["store"]["ok"], true, "{health}");
    assert_eq!(
        health["docker"]["ok"], true,
        "the scalefog user reaches Docker through its group: {health}"
    );
    assert!(Path::new(DATA_DIR).join("scalefog.redb").exists());
    let id = server.id().unwrap().to_string();
    run(Command::new("kill").args(["-TERM", &id]));
    assert!(server.wait().await.unwrap().success(), "a clean stop");

    run(Command::new("dpkg").args(["--purge", "scalefog"]));
    for gone in ["/usr/bin/scalefog", UNIT, SETTINGS] {
        assert!(!Path::new(gone).exists(), "{gone} is removed by purge");
    }
}
