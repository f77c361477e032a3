//! The build context: exactly the pushed commit's tree, as `git archive` writes it, read from the
//! push's quarantine environment (pushed objects are invisible to git without it).
//!
//! Image labels ride in the context too: `git archive` adds [`BUILD_DOCKERFILE`], the app's
//! Dockerfile with one `LABEL` line appended. Docker's classic builder turns each build-time label
//! option into a step of its own (a container created and committed, about 0.2 s each), so five
//! labels given as options cost about a second per deploy; one `LABEL` line is one step.

use crate::domain::{CronJob, Error, Procfile, Result};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use std::collections::HashMap;
use std::ffi::OsString;
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

/// The Dockerfile Scalefog builds, added to the context next to the app's own.
pub const BUILD_DOCKERFILE: &str = ".scalefog.Dockerfile";

/// Dockerfiles larger than this are not copied into `git archive`'s command line (Linux limits one
/// argument to 128 KiB); their labels are given to Docker as build options instead.
const MAX_INLINE_DOCKERFILE: usize = 64 * 1024;

/// Whether the repository holds commit `sha`.
pub async fn has_commit(repo_dir: &Path, sha: &str) -> bool {
    valid_commit(sha)
        && git(repo_dir, &[])
            .args(["cat-file", "-e", &format!("{sha}^{{commit}}")])
            .output()
            .await
            .is_ok_and(|o| o.status.success())
}

/// The file at `path` in commit `sha`; `None` when the commit has none.
async fn read_file(
    repo_dir: &Path,
    git_env: &[(String, String)],
    sha: &str,
    path: &str,
) -> Result<Option<Vec<u8>>> {
    let out = git(repo_dir, git_env)
        .args(["cat-file", "blob", &format!("{sha}:{path}")])
        .output()
        .await
        .map_err(|e| Error::internal(format!("cannot run git: {e}")))?;
    Ok(out.status.success().then_some(out.stdout))
}

/// The file at `path` in commit `sha` as text; `None` when the commit has none.
async fn read_text(
    repo_dir: &Path,
    git_env: &[(String, String)],
    sha: &str,
    path: &str,
) -> Result<Option<String>> {
    read_file(repo_dir, git_env, sha, path)
        .await?
        .map(|bytes| {
            String::from_utf8(bytes)
                .map_err(|_| Error::DeployFailed(format!("{path} is not UTF-8 text")))
        })
        .transpose()
}

/// The commit's root `Dockerfile`, or a clear error saying what is expected.
pub async fn read_dockerfile(
    repo_dir: &Path,
    git_env: &[(String, String)],
    sha: &str,
) -> Result<Vec<u8>> {
    if let Some(dockerfile) = read_file(repo_dir, git_env, sha, "Dockerfile").await? {
        return Ok(dockerfile);
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

/// The commit's root `Procfile`, parsed; an empty one when there is none (the image's command
/// is then `web`). One that does not parse fails the deploy, naming the line.
pub async fn read_procfile(
    repo_dir: &Path,
    git_env: &[(String, String)],
    sha: &str,
) -> Result<Procfile> {
    match read_text(repo_dir, git_env, sha, "Procfile").await? {
        Some(text) => Procfile::parse(&text),
        None => Ok(Procfile::default()),
    }
}

/// The cron jobs of the commit's root `app.json`; none without one. One that does not parse
/// fails the deploy, naming the job.
pub async fn read_cron_jobs(
    repo_dir: &Path,
    git_env: &[(String, String)],
    sha: &str,
) -> Result<Vec<CronJob>> {
    match read_text(repo_dir, git_env, sha, "app.json").await? {
        Some(text) => crate::domain::parse_app_json(&text),
        None => Ok(Vec::new()),
    }
}

/// The app's Dockerfile with `labels` appended as one `LABEL` line (sorted, so the text is stable),
/// or `None` when it cannot travel on a command line (too large, or holding a NUL byte).
pub fn labelled_dockerfile(dockerfile: &[u8], labels: &HashMap<String, String>) -> Option<Vec<u8>> {
    if dockerfile.len() > MAX_INLINE_DOCKERFILE || dockerfile.contains(&0) {
        return None;
    }
    let mut pairs: Vec<_> = labels.iter().collect();
    pairs.sort();
    // Keys and values are Scalefog's own (app names, numbers, hex ids): no quotes, no `$`.
    let line: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("\"{k}\"=\"{v}\""))
        .collect();
    let mut out = dockerfile.to_vec();
    // A blank line first ends whatever the last line was, even without a newline.
    out.extend_from_slice(format!("\n\nLABEL {}\n", line.join(" ")).as_bytes());
    Some(out)
}

/// Starts `git archive --format=tar <sha>`, with `dockerfile` added as [`BUILD_DOCKERFILE`] when
/// given; returns the child (wait on it to learn whether the archive was complete) and its output
/// as a byte stream.
pub fn archive(
    repo_dir: &Path,
    git_env: &[(String, String)],
    sha: &str,
    dockerfile: Option<&[u8]>,
) -> Result<(Child, BoxStream<'static, std::io::Result<Bytes>>)> {
    let mut cmd = git(repo_dir, git_env);
    cmd.args(["archive", "--format=tar"]);
    if let Some(content) = dockerfile {
        use std::os::unix::ffi::OsStringExt;
        let mut arg = format!("--add-virtual-file={BUILD_DOCKERFILE}:").into_bytes();
        arg.extend_from_slice(content);
        cmd.arg(OsString::from_vec(arg));
    }
    let mut child = cmd
        .arg(sha)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_become_one_sorted_label_line_after_the_apps_own_dockerfile() {
        let labels = HashMap::from([
            ("scalefog.app".to_string(), "blog".to_string()),
            ("scalefog".to_string(), "1".to_string()),
        ]);
        let out = labelled_dockerfile(b"FROM scratch\nCMD [\"x\"]", &labels).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "FROM scratch\nCMD [\"x\"]\n\nLABEL \"scalefog\"=\"1\" \"scalefog.app\"=\"blog\"\n"
        );
    }

    #[test]
    fn a_dockerfile_that_cannot_go_on_a_command_line_is_left_alone() {
        let labels = HashMap::new();
        assert!(labelled_dockerfile(&vec![b'#'; MAX_INLINE_DOCKERFILE + 1], &labels).is_none());
        assert!(labelled_dockerfile(b"FROM scratch\0", &labels).is_none());
    }
}
