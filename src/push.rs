//! What a `git push` hands to the core: the pushed ref updates of one app, checked inside git's
//! `pre-receive` hook so that a failure rejects the push.
//!
//! The `git`/`ssh` layers produce a [`Push`] and call the registered [`PushHandler`]; the deploy
//! engine is that handler. Lines sent to [`Progress`] reach the pusher as `remote:` lines.

use crate::domain::{Instance, Result, User};
use crate::locks;
use futures_util::future::BoxFuture;
use std::path::PathBuf;
use tokio::sync::mpsc;

/// One ref update as git's pre-receive hook reads it: `old new ref`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefUpdate {
    pub old: String,
    pub new: String,
    /// Full ref name, e.g. `refs/heads/main`.
    pub name: String,
}

impl RefUpdate {
    /// True when this update deletes the ref (`new` is all zeros).
    pub fn is_delete(&self) -> bool {
        self.new.bytes().all(|b| b == b'0')
    }
    /// The branch name, when the ref is a branch.
    pub fn branch(&self) -> Option<&str> {
        self.name.strip_prefix("refs/heads/")
    }
}

/// A push in progress, as seen from the pre-receive hook.
#[derive(Debug, Clone)]
pub struct Push {
    /// Unique id of this push.
    pub id: String,
    pub app: Instance,
    pub user: User,
    /// Where the pusher is (SSH and their address), for the audit log.
    pub origin: crate::domain::Origin,
    pub updates: Vec<RefUpdate>,
    /// The app's bare repository.
    pub repo_dir: PathBuf,
    /// The hook's git environment (`GIT_DIR`, `GIT_OBJECT_DIRECTORY`,
    /// `GIT_ALTERNATE_OBJECT_DIRECTORIES`, `GIT_QUARANTINE_PATH`): pushed objects are
    /// quarantined during pre-receive, so any git command reading them must run with it.
    pub git_env: Vec<(String, String)>,
}

/// Text for the pusher, one line per message. Sending never fails the push: a pusher that went
/// away simply stops seeing output.
#[derive(Clone)]
pub struct Progress(mpsc::UnboundedSender<String>);

impl Progress {
    pub fn channel() -> (Progress, mpsc::UnboundedReceiver<String>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Progress(tx), rx)
    }
    pub fn line(&self, text: impl Into<String>) {
        let _ = self.0.send(text.into());
    }
}

/// How a handler decided a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    /// Rejected, and the handler has already told the pusher why in its own lines: `reason` is
    /// recorded with the push, not shown again.
    Rejected {
        reason: String,
    },
}

/// Decides a push. An error rejects it too, and its message is shown to the pusher.
pub trait PushHandler: Send + Sync + 'static {
    fn handle<'a>(
        &'a self,
        push: &'a Push,
        progress: &'a Progress,
    ) -> BoxFuture<'a, Result<Verdict>>;
}

/// The handler every push goes to. Replaceable after start-up (the deploy engine registers itself,
/// tests register their own), so whoever holds a clone always calls the current one.
#[derive(Clone)]
pub struct PushHandlers(std::sync::Arc<std::sync::RwLock<std::sync::Arc<dyn PushHandler>>>);

impl PushHandlers {
    pub fn new(handler: std::sync::Arc<dyn PushHandler>) -> Self {
        PushHandlers(std::sync::Arc::new(std::sync::RwLock::new(handler)))
    }
    pub fn set(&self, handler: std::sync::Arc<dyn PushHandler>) {
        *locks::write(&self.0) = handler;
    }
    pub fn get(&self) -> std::sync::Arc<dyn PushHandler> {
        locks::read(&self.0).clone()
    }
}

impl Default for PushHandlers {
    /// Until a deploy engine registers, every push is accepted (the repository just stores it).
    fn default() -> Self {
        PushHandlers::new(std::sync::Arc::new(AcceptPush))
    }
}

/// Accepts every push without doing anything else.
pub struct AcceptPush;

impl PushHandler for AcceptPush {
    fn handle<'a>(
        &'a self,
        _push: &'a Push,
        _progress: &'a Progress,
    ) -> BoxFuture<'a, Result<Verdict>> {
        Box::pin(async { Ok(Verdict::Accepted) })
    }
}
