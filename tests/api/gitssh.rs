//! Driving the SSH git server the way a user does: keys made by `ssh-keygen`, the real `git`
//! with `GIT_SSH_COMMAND` pointing OpenSSH `ssh` at the test server. Shared by the SSH transport
//! tests, the end-to-end deploy tests, the console's push tests and the SSH key tests.

use crate::helpers::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use tokio::process::Command;

/// A user's SSH key pair in a temp dir, and the `ssh` command line that uses only it.
#[derive(Clone)]
pub struct Key {
    pub private: PathBuf,
    pub public: String,
}

/// An ed25519 key pair made by `ssh-keygen` in `dir`, named and commented `name`.
pub async fn keygen(dir: &Path, name: &str) -> Key {
    keygen_of_type(dir, name, &["-t", "ed25519"]).await
}

/// A key pair of the type `ssh-keygen` makes with `kind` (`-t rsa -b 2048`, ...).
pub async fn keygen_of_type(dir: &Path, name: &str, kind: &[&str]) -> Key {
    let private = dir.join(name);
    let out = Command::new("ssh-keygen")
        .args(kind)
        .args(["-q", "-N", "", "-C", name, "-f"])
        .arg(&private)
        .output()
        .await
        .expect("ssh-keygen runs");
    assert!(out.status.success(), "ssh-keygen: {out:?}");
    let public = std::fs::read_to_string(private.with_extension("pub")).unwrap();
    Key { private, public }
}

impl Key {
    /// The public key's SHA-256 fingerprint as `ssh-keygen -l` shows it (`SHA256:...`).
    pub async fn fingerprint(&self) -> String {
        let out = Command::new("ssh-keygen")
            .args(["-l", "-E", "sha256", "-f"])
            .arg(self.private.with_extension("pub"))
            .output()
            .await
            .expect("ssh-keygen runs");
        assert!(out.status.success(), "ssh-keygen -l: {out:?}");
        text(&out.stdout)
            .split_whitespace()
            .nth(1)
            .expect("a fingerprint")
            .to_string()
    }

    /// `ssh` with this key only, no host key checks, quiet.
    pub fn ssh_command(&self, port: u16) -> String {
        format!(
            "ssh -i {} -p {port} -o IdentitiesOnly=yes -o BatchMode=yes \
             -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
            self.private.display()
        )
    }
}

/// Registers `key` on the account of `token` through the Scalefog API.
pub async fn add_key(api: &Api, token: &str, key: &Key) {
    let r = api.add_ssh_key(token, &key.public).await;
    assert!(
        r.status().is_success(),
        "addkey: {}",
        r.text().await.unwrap()
    );
}

/// Runs git in `cwd` with a clean config and `key` for SSH.
pub async fn git(cwd: &Path, key: &Key, port: u16, args: &[&str]) -> Output {
    git_command(cwd, key, port, args)
        .output()
        .await
        .expect("git runs")
}

pub fn git_command(cwd: &Path, key: &Key, port: u16, args: &[&str]) -> Command {
    let mut c = Command::new("git");
    c.current_dir(cwd)
        .args(args)
        .env("GIT_SSH_COMMAND", key.ssh_command(port))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .stdin(Stdio::null());
    c
}

/// Runs `ssh` with `key` and extra arguments.
pub async fn ssh(key: &Key, port: u16, args: &[&str]) -> Output {
    let mut words: Vec<String> = key
        .ssh_command(port)
        .split_whitespace()
        .map(String::from)
        .collect();
    words.extend(args.iter().map(|s| s.to_string()));
    Command::new(&words[0])
        .args(&words[1..])
        .stdin(Stdio::null())
        .output()
        .await
        .expect("ssh runs")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `git add -A` and `git commit` in the work tree `wt`.
pub async fn commit(wt: &Path, key: &Key, port: u16, message: &str) {
    ok(git(wt, key, port, &["add", "-A"]).await);
    ok(git(wt, key, port, &["commit", "-q", "-m", message]).await);
}

/// Asserts the command succeeded, showing its output when not.
pub fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "command failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

/// The git remote URL an app's JSON shows.
pub fn remote_of(app_json: &Value) -> String {
    app_json["git_remote"]
        .as_str()
        .expect("git_remote")
        .to_string()
}

pub async fn rev_parse(wt: &Path, key: &Key, port: u16, rev: &str) -> String {
    text(&ok(git(wt, key, port, &["rev-parse", rev]).await).stdout)
        .trim()
        .to_string()
}

/// The refs the server has for `remote`.
pub async fn ls_remote(wt: &Path, key: &Key, port: u16, remote: &str) -> String {
    text(&ok(git(wt, key, port, &["ls-remote", remote]).await).stdout)
}
