//! The bare repositories: where each app's lives, creating and deleting them, and the
//! `pre-receive` hook every one of them carries.

use crate::domain::{AppName, Error, Result};
use std::path::{Component, Path, PathBuf};

/// The hook script. It is the same in every repository: the program it runs and how to reach
/// the server come from the environment Scalefog gives `git receive-pack`, so moving or
/// upgrading the binary never leaves stale hooks behind. Without that environment (someone
/// pushing to the directory directly) it refuses.
pub const PRE_RECEIVE: &str = r#"#!/bin/sh
# Installed by Scalefog: every push is decided by the running server.
if [ -z "$SCALEFOG_HOOK_PROGRAM" ]; then
    echo "scalefog: push through the scalefog SSH server (git remote ssh://git@HOST:PORT/APP.git)" >&2
    exit 1
fi
exec "$SCALEFOG_HOOK_PROGRAM" hook pre-receive
"#;

/// The directory holding every app's bare repository.
#[derive(Debug, Clone)]
pub struct Repos {
    root: PathBuf,
}

impl Repos {
    pub fn new(root: PathBuf) -> Repos {
        Repos { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The app's repository. Built from a parsed name only, so it always lies directly under the
    /// root: no client text is ever joined to a path.
    pub fn dir(&self, app: &AppName) -> PathBuf {
        self.root.join(format!("{}.git", app.as_str()))
    }

    /// Creates the app's bare repository with its hook; an existing one is kept (its hook is
    /// refreshed), so this also repairs a repository whose creation was interrupted.
    pub async fn create(&self, app: &AppName) -> Result<PathBuf> {
        let dir = self.dir(app);
        if !dir.join("HEAD").exists() {
            tokio::fs::create_dir_all(&self.root)
                .await
                .map_err(|e| io_err("creating", &self.root, e))?;
            let out = git_command()
                .args(["init", "--quiet", "--bare", "--initial-branch=main"])
                .arg(&dir)
                .output()
                .await
                .map_err(|e| Error::internal(format!("running git init: {e}")))?;
            if !out.status.success() {
                return Err(Error::internal(format!(
                    "git init {} failed: {}",
                    dir.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
        }
        self.install_hook(&dir).await?;
        Ok(dir)
    }

    /// Writes the `pre-receive` hook unless it is already there, unchanged.
    pub async fn install_hook(&self, dir: &Path) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let hook = dir.join("hooks").join("pre-receive");
        if tokio::fs::read_to_string(&hook).await.ok().as_deref() == Some(PRE_RECEIVE) {
            return Ok(());
        }
        tokio::fs::create_dir_all(dir.join("hooks"))
            .await
            .map_err(|e| io_err("creating", dir, e))?;
        // Written aside then renamed, so a push never runs a half-written hook.
        let tmp = dir.join("hooks").join(".pre-receive.tmp");
        tokio::fs::write(&tmp, PRE_RECEIVE)
            .await
            .map_err(|e| io_err("writing", &tmp, e))?;
        tokio::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))
            .await
            .map_err(|e| io_err("chmod", &tmp, e))?;
        tokio::fs::rename(&tmp, &hook)
            .await
            .map_err(|e| io_err("installing", &hook, e))
    }

    /// Deletes the app's repository; nothing to do when it is already gone.
    pub async fn remove(&self, app: &AppName) -> Result<()> {
        let dir = self.dir(app);
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("deleting", &dir, e)),
        }
    }
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::internal(format!("{what} {}: {e}", path.display()))
}

/// `git` with an environment that owes nothing to whoever started the server: no user or
/// system config, no inherited `GIT_*` variables.
pub fn git_command() -> tokio::process::Command {
    let mut c = tokio::process::Command::new("git");
    c.env_clear()
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
        )
        .env("HOME", "/nonexistent")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("LC_ALL", "C");
    c
}

/// `path` with `.` components dropped, or `None` when it is relative or climbs with `..`.
/// git hands the hook paths like `/data/repos/app.git/./objects/tmp_objdir-incoming-x`.
pub fn normalize_absolute(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::RootDir => out.push("/"),
            Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    path.is_absolute().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repo_dir_is_the_app_name_directly_under_the_root() {
        let r = Repos::new("/data/repos".into());
        let dir = r.dir(&AppName::parse("my-app").unwrap());
        assert_eq!(dir, PathBuf::from("/data/repos/my-app.git"));
    }

    #[test]
    fn paths_that_climb_or_are_relative_do_not_normalize() {
        assert_eq!(
            normalize_absolute(Path::new("/a/b.git/./objects/tmp")),
            Some(PathBuf::from("/a/b.git/objects/tmp"))
        );
        assert_eq!(normalize_absolute(Path::new("/a/b.git/../etc")), None);
        assert_eq!(normalize_absolute(Path::new("objects")), None);
    }

    #[tokio::test]
    async fn create_makes_a_bare_repo_with_the_hook_and_remove_deletes_it() {
        let dir = tempfile::tempdir().unwrap();
        let r = Repos::new(dir.path().join("repos"));
        let app = AppName::parse("demo-app").unwrap();
        let repo = r.create(&app).await.unwrap();
        assert!(repo.join("HEAD").exists());
        let hook = std::fs::read_to_string(repo.join("hooks/pre-receive")).unwrap();
        assert_eq!(hook, PRE_RECEIVE);
        // Creating again keeps the repository.
        r.create(&app).await.unwrap();
        r.remove(&app).await.unwrap();
        assert!(!repo.exists());
        r.remove(&app).await.unwrap();
    }
}
