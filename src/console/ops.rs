//! Console actions that take seconds (restart, rollback, a config change: each launches a new
//! container and waits for its health check) run as background tasks, so that:
//!
//! - a closed tab or a dropped connection never cancels an operation half-way (the deployer
//!   cleans up after itself only when its future runs to the end);
//! - the browser is never kept waiting past [`WAIT`]: a fast operation answers with its outcome
//!   (POST-redirect-GET with a flash), a slow one (say, queued behind a running build) answers
//!   "still working" at once, the app page shows it as in progress, and the outcome becomes
//!   the flash of the first page shown after it finished.
//!
//! Outcomes are kept per session, because a flash message is for the person who asked. This is
//! transport state only: what an operation does and whether it is allowed is the core's call.

use super::notice::{Flash, Pending};
use crate::locks;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a form post waits for its operation before answering "still working".
pub const WAIT: Duration = Duration::from_secs(10);
/// Outcomes nobody came back for are dropped after this long.
const KEEP: Duration = Duration::from_secs(3600);

struct Op {
    id: u64,
    app: String,
    /// "Restarting", "Rolling back to v2": shown while it runs.
    label: String,
    started: Instant,
    outcome: Option<(Flash, Instant)>,
}

/// The console's operations in flight and their unread outcomes, by session. One per server
/// (created in `startup` beside the other shared state).
#[derive(Default)]
pub struct Operations {
    by_session: Arc<Mutex<HashMap<String, Vec<Op>>>>,
}

type Table = Arc<Mutex<HashMap<String, Vec<Op>>>>;

fn lock(t: &Table) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Op>>> {
    locks::lock(t)
}

impl Operations {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Op>>> {
        lock(&self.by_session)
    }

    /// Runs `work` in the background on behalf of `session`, waiting up to [`WAIT`] for its
    /// outcome. `None`: still running; its outcome will be shown by [`Operations::page`].
    pub async fn run(
        &self,
        session: &str,
        app: &str,
        label: impl Into<String>,
        work: impl Future<Output = Flash> + Send + 'static,
    ) -> Option<Flash> {
        self.run_waiting(WAIT, session, app, label, work).await
    }

    async fn run_waiting(
        &self,
        wait: Duration,
        session: &str,
        app: &str,
        label: impl Into<String>,
        work: impl Future<Output = Flash> + Send + 'static,
    ) -> Option<Flash> {
        let id = rand::random::<u64>();
        {
            let mut all = self.lock();
            // Forget outcomes nobody came back for.
            all.retain(|_, ops| {
                ops.retain(|o| o.outcome.as_ref().is_none_or(|(_, at)| at.elapsed() < KEEP));
                !ops.is_empty()
            });
            all.entry(session.to_string()).or_default().push(Op {
                id,
                app: app.to_string(),
                label: label.into(),
                started: Instant::now(),
                outcome: None,
            });
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let table = self.by_session.clone();
        let session_key = session.to_string();
        tokio::spawn(async move {
            let flash = work.await;
            // Record it first: if the request stopped waiting, the page picks it up from here.
            if let Some(op) = lock(&table)
                .get_mut(&session_key)
                .and_then(|ops| ops.iter_mut().find(|o| o.id == id))
            {
                op.outcome = Some((flash.clone(), Instant::now()));
            }
            let _ = tx.send(flash);
        });
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(flash)) => {
                self.forget(session, id);
                Some(flash)
            }
            _ => None,
        }
    }

    fn forget(&self, session: &str, id: u64) {
        let mut all = self.lock();
        if let Some(ops) = all.get_mut(session) {
            ops.retain(|o| o.id != id);
            if ops.is_empty() {
                all.remove(session);
            }
        }
    }

    /// For a page of `app`: this session's operation still running on it, if any, and the
    /// outcome of the latest one that finished since the last page (taken: shown once).
    pub fn page(&self, session: &str, app: &str) -> (Option<Pending>, Option<Flash>) {
        let mut all = self.lock();
        let Some(ops) = all.get_mut(session) else {
            return (None, None);
        };
        let pending = ops
            .iter()
            .filter(|o| o.app == app && o.outcome.is_none())
            .max_by_key(|o| o.started)
            .map(|o| Pending {
                label: o.label.clone(),
                seconds: o.started.elapsed().as_secs(),
            });
        let mut latest: Option<(Flash, Instant)> = None;
        ops.retain_mut(|o| {
            if o.app != app {
                return true;
            }
            match o.outcome.take() {
                None => true,
                Some((flash, at)) => {
                    if latest.as_ref().is_none_or(|(_, l)| at > *l) {
                        latest = Some((flash, at));
                    }
                    false
                }
            }
        });
        if ops.is_empty() {
            all.remove(session);
        }
        let latest = latest.map(|(f, _)| f);
        (pending, latest)
    }

    /// Whether `session` has an operation on `app` still running.
    pub fn busy(&self, session: &str, app: &str) -> bool {
        self.lock()
            .get(session)
            .is_some_and(|ops| ops.iter().any(|o| o.app == app && o.outcome.is_none()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_quick_operation_answers_with_its_outcome_and_leaves_nothing_behind() {
        let ops = Operations::default();
        let flash = ops
            .run("s1", "blog", "Restarting", async { Flash::ok("done") })
            .await;
        assert_eq!(flash.map(|f| f.message).as_deref(), Some("done"));
        assert!(!ops.busy("s1", "blog"));
        let (pending, outcome) = ops.page("s1", "blog");
        assert!(pending.is_none() && outcome.is_none());
    }

    #[tokio::test]
    async fn a_slow_operation_shows_as_pending_then_its_outcome_shows_once_to_its_session_only() {
        let ops = Operations::default();
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let flash = ops
            .run_waiting(
                Duration::ZERO,
                "s1",
                "blog",
                "Rolling back to v1",
                async move {
                    let _ = wait.await;
                    Flash::err("the image was pruned")
                },
            )
            .await;
        assert!(flash.is_none(), "the request stops waiting");
        assert!(ops.busy("s1", "blog"));
        assert!(!ops.busy("s2", "blog"), "another session does not see it");
        let (pending, outcome) = ops.page("s1", "blog");
        assert_eq!(pending.unwrap().label, "Rolling back to v1");
        assert!(outcome.is_none());
        go.send(()).unwrap();
        while ops.busy("s1", "blog") {
            tokio::task::yield_now().await;
        }
        assert!(ops.page("s2", "blog").1.is_none());
        let (pending, outcome) = ops.page("s1", "blog");
        assert!(pending.is_none());
        let f = outcome.expect("the outcome is shown");
        assert!(!f.ok && f.message.contains("pruned"));
        assert!(ops.page("s1", "blog").1.is_none(), "shown once");
    }
}
