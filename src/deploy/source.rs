//! The build context: exactly the pushed commit's tree, as `git archive` writes it, read from the
//! push's quarantine environment (pushed objects are invisible to git without it).

use crate::domain::{Error, Result};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use std::path::Path;
use std::process::Stdio;
use tokio::process::{Child, Command};

/// A full commit id (SHA-1 or SHA-256), which also keeps it from being read as an option.
pub fn valid_commit(sha: &str) -> bool {
    matches!(sha.len(), 40 | 64) && sha.bytes().all(|b| b.is_ascii_hexdigit())
}

fn git(repo_dir: &Path, git_env: &[(String, String)]) -> Command {
    let mut cmd = Command::new("git");
    cmd.current_dir(repo_dir)
        .env("GIT_DIR", repo_dir)
        // No user or system config may change what is archived.
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .envs(git_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// A clear error when the commit has no `Dockerfile` at its root.
pub async fn check_dockerfile(
    repo_dir: &Path,
    git_env: &[(String, String)],
    sha: &str,
) -> Result<()> {
    let out = git(repo_dir, git_env)
        .args(["cat-file", "-t", &format!("{sha}:Dockerfile")])
        .output()
        .await
        .map_err(|e| Error::internal(format!("cannot run git: {e}")))?;
    if out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "blob" {
        return Ok(());
    }
    Err(Error::DeployFailed(format!(
        "no Dockerfile at the root of commit {}.\n\
         Scalefog builds every app with Docker. Expected:\n  \
         - a file named 'Dockerfile' at the top of the repository\n  \
         - that builds an image whose command listens on $PORT (default 5000)\n  \
         - answering HTTP on the health-check path (default /) below 500, or accepting TCP",
        &sha[..7.min(sha.len())]
    )))
}

/// Starts `git archive --format=tar <sha>`; returns the child (wait on it to learn whether the
/// archive was complete) and its output as a byte stream.
pub fn archive(
    repo_dir: &Path,
    git_env: &[(String, String)],
    sha: &str,
) -> Result<(Child, BoxStream<'static, std::io::Result<Bytes>>)> {
    let mut child = git(repo_dir, git_env)
        .args(["archive", "--format=tar", sha])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::internal(format!("cannot run git archive: {e}")))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| Error::internal("git archive has no stdout"))?;
    Ok((
        child,
        tokio_util::io::ReaderStream::with_capacity(stdout, 64 * 1024).boxed(),
    ))
}
