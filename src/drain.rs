//! Work in flight that a stop lets finish: pushes and deploys hold a [`Work`] while they run.
//! At shutdown the server stops taking new pushes, waits for the work in flight up to
//! `shutdown_timeout`, then cancels what is left (a deploy removes what it created, a push is
//! rejected as cancelled) and gives it a bounded time to wind down.

use crate::domain::{Error, Result};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tokio_util::task::task_tracker::TaskTrackerToken;

/// What a pusher and an API client read when their push or deploy was cut by a stop.
pub const CANCELLED: &str = "cancelled: scalefog stopped before it finished";

/// The server's work in flight. Cheap to clone; every clone sees the same work.
#[derive(Clone, Default)]
pub struct Drain(Arc<Inner>);

#[derive(Default)]
struct Inner {
    /// Counts the [`Work`] alive; closed when the stop begins.
    tracker: TaskTracker,
    /// Fired when `shutdown_timeout` has run out.
    cancel: CancellationToken,
}

/// One piece of work in flight; the stop waits until it is dropped.
pub struct Work {
    _token: TaskTrackerToken,
}

/// How the work in flight ended at a stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// Everything finished within the timeout.
    Finished,
    /// This much work was still running at the timeout; it was cancelled and wound down.
    Cancelled(usize),
    /// Cancelled work that had not wound down in time either; the stop goes on without it.
    Abandoned(usize),
}

impl Drain {
    /// New work that the stop must wait for (a push starting). Refused once the stop began.
    pub fn begin(&self) -> Result<Work> {
        if self.is_stopping() {
            return Err(Error::Unavailable(
                "scalefog is stopping; try again in a moment".into(),
            ));
        }
        Ok(self.join())
    }

    /// Work that is part of work already admitted (the deploy of a push in flight), or that
    /// needs no admission; never refused.
    pub fn join(&self) -> Work {
        Work {
            _token: self.0.tracker.token(),
        }
    }

    /// The stop has begun: no new pushes.
    pub fn is_stopping(&self) -> bool {
        self.0.tracker.is_closed()
    }

    /// Completes when the work in flight is to give up (the timeout ran out).
    pub async fn cancelled(&self) {
        self.0.cancel.cancelled().await
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.cancel.is_cancelled()
    }

    /// Work in flight now.
    pub fn in_flight(&self) -> usize {
        self.0.tracker.len()
    }

    /// Stops admitting work, waits up to `timeout` for the work in flight, then cancels what
    /// is left and waits up to `unwind` for it to wind down (remove what it created, record
    /// and tell that it was cancelled).
    pub async fn finish(&self, timeout: Duration, unwind: Duration) -> Drained {
        self.0.tracker.close();
        if tokio::time::timeout(timeout, self.0.tracker.wait())
            .await
            .is_ok()
        {
            return Drained::Finished;
        }
        let left = self.in_flight();
        self.0.cancel.cancel();
        match tokio::time::timeout(unwind, self.0.tracker.wait()).await {
            Ok(()) => Drained::Cancelled(left),
            Err(_) => Drained::Abandoned(self.in_flight()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stop_waits_for_work_in_flight_and_refuses_new_pushes() {
        let drain = Drain::default();
        let work = drain.begin().unwrap();
        let waiting = tokio::spawn({
            let d = drain.clone();
            async move { d.finish(Duration::from_secs(3600), Duration::ZERO).await }
        });
        while !drain.is_stopping() {
            tokio::task::yield_now().await;
        }
        assert!(matches!(drain.begin(), Err(Error::Unavailable(_))));
        // Part of the admitted work (the push's deploy) still joins.
        drop(drain.join());
        assert!(!waiting.is_finished());
        drop(work);
        assert_eq!(waiting.await.unwrap(), Drained::Finished);
        assert!(!drain.is_cancelled());
    }

    #[tokio::test]
    async fn work_still_running_at_the_timeout_is_cancelled_and_wound_down() {
        let drain = Drain::default();
        let work = drain.begin().unwrap();
        let d = drain.clone();
        // Gives up when told to, as a deploy does.
        tokio::spawn(async move {
            d.cancelled().await;
            drop(work);
        });
        let ended = drain
            .finish(Duration::ZERO, Duration::from_secs(3600))
            .await;
        assert_eq!(ended, Drained::Cancelled(1));
        assert!(drain.is_cancelled());
    }

    #[tokio::test]
    async fn work_that_ignores_the_cancel_is_abandoned_after_the_unwind_time() {
        let drain = Drain::default();
        let _stuck = drain.begin().unwrap();
        let ended = drain.finish(Duration::ZERO, Duration::ZERO).await;
        assert_eq!(ended, Drained::Abandoned(1));
    }
}
