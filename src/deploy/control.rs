//! Control of the operations that change an app: one at a time per app (a per-app lock; a second
//! push waits and says so), builds of different apps concurrently up to `max_concurrent_deploys`,
//! and every operation cancellable and bounded by `deploy_timeout`. An operation's attempt notes
//! what it created, so that a failure, a cancel or a timeout removes it.

use super::{Deployer, Reporter};
use crate::domain::{Error, Instance, Result};
use crate::locks;
use futures_util::future::BoxFuture;
use locks::lock;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedMutexGuard, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// What an attempt created, so that a failure, a cancel or a timeout can remove it.
#[derive(Default)]
pub(super) struct Attempt {
    pub processes: Vec<String>,
    pub image: Option<String>,
    /// Set when the attempt starts the transaction that makes it current: from then on a cancel
    /// or a timeout lets it finish (see [`Deployer::controlled`]).
    pub switching: bool,
}

impl Attempt {
    /// The attempt succeeded: what it created is no longer its to remove.
    pub fn commit(&mut self) {
        self.processes.clear();
        self.image = None;
    }
}

pub(super) type SharedAttempt = Arc<Mutex<Attempt>>;

pub(super) struct Controls {
    /// One operation per app at a time.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Concurrent builds across apps.
    slots: Arc<Semaphore>,
    /// The cancel switch of each app's running operation.
    active: Mutex<HashMap<String, CancellationToken>>,
}

impl Controls {
    pub fn new(max_concurrent: usize) -> Controls {
        Controls {
            locks: Mutex::default(),
            slots: Arc::new(Semaphore::new(max_concurrent.max(1))),
            active: Mutex::default(),
        }
    }

    pub fn app_lock(&self, app: &str) -> Arc<tokio::sync::Mutex<()>> {
        lock(&self.locks)
            .entry(app.to_string())
            .or_default()
            .clone()
    }

    /// Apps with an operation running now.
    pub fn busy_apps(&self) -> Vec<String> {
        lock(&self.active).keys().cloned().collect()
    }

    /// Cancels the app's running operation, if any; `false` when there is none.
    pub fn cancel(&self, app: &str) -> bool {
        match lock(&self.active).get(app) {
            Some(t) => {
                t.cancel();
                true
            }
            None => false,
        }
    }

    /// Forgets the app's lock (the app is gone).
    pub fn forget(&self, app: &str) {
        lock(&self.locks).remove(app);
    }
}

impl Deployer {
    /// Takes the app's lock, telling `rep` when it has to wait; a stop that cancels work in
    /// flight ends the wait.
    pub(super) async fn acquire(&self, app: &str, rep: &Reporter) -> Result<OwnedMutexGuard<()>> {
        let l = self.0.controls.app_lock(app);
        match l.clone().try_lock_owned() {
            Ok(g) => Ok(g),
            Err(_) => {
                rep.line(format!(
                    "-----> Another deploy of {app} is in progress; waiting for it to finish"
                ));
                self.unless_cancelled(l.lock_owned()).await
            }
        }
    }

    /// `wait`, unless a stop cancels the work in flight first.
    pub(super) async fn unless_cancelled<T>(
        &self,
        wait: impl std::future::Future<Output = T>,
    ) -> Result<T> {
        tokio::select! {
            v = wait => Ok(v),
            _ = self.0.drain.cancelled() => Err(Error::Cancelled(crate::drain::CANCELLED.into())),
        }
    }

    /// Takes a build slot, telling `rep` when it has to wait.
    pub(super) async fn build_slot(&self, rep: &Reporter) -> Result<OwnedSemaphorePermit> {
        let slots = self.0.controls.slots.clone();
        match slots.clone().try_acquire_owned() {
            Ok(s) => Ok(s),
            Err(_) => {
                rep.line("-----> All build slots are busy; waiting for one");
                self.unless_cancelled(slots.acquire_owned())
                    .await?
                    .map_err(|_| Error::Unavailable("scalefog is shutting down".into()))
            }
        }
    }

    /// Runs `op` as the app's current operation: cancellable (on request, or by a stop whose
    /// `shutdown_timeout` ran out), bounded by `deploy_timeout`, and on any failure everything
    /// the attempt created is removed. A stop waits for it.
    pub(super) async fn controlled<T>(
        &self,
        app: &str,
        op: impl FnOnce(SharedAttempt) -> BoxFuture<'static, Result<T>>,
    ) -> Result<T> {
        let _work = self.0.drain.join();
        let token = CancellationToken::new();
        lock(&self.0.controls.active).insert(app.to_string(), token.clone());
        let attempt = SharedAttempt::default();
        let timeout = self.0.settings.timeout;
        let mut op = op(attempt.clone());
        let cut = tokio::select! {
            r = &mut op => Ok(r),
            _ = token.cancelled() => Err(Error::Cancelled("the deploy was cancelled".into())),
            _ = self.0.drain.cancelled() => Err(Error::Cancelled(crate::drain::CANCELLED.into())),
            _ = tokio::time::sleep(timeout) => Err(Error::DeployFailed(format!(
                "the deploy took longer than deploy_timeout ({} s) and was abandoned",
                timeout.as_secs()
            ))),
        };
        let result = match cut {
            Ok(r) => r,
            // Past its commit point the operation is one transaction and a route update from
            // done; cut there, its release could be recorded with its processes removed.
            Err(_) if lock(&attempt).switching => op.await,
            Err(e) => Err(e),
        };
        lock(&self.0.controls.active).remove(app);
        if result.is_err() {
            self.undo(&attempt).await;
        }
        result
    }

    /// Removes what a failed attempt created.
    pub(super) async fn undo(&self, attempt: &SharedAttempt) {
        let left = std::mem::take(&mut *lock(attempt));
        for p in left.processes {
            if let Err(e) = self.0.runtime.remove(&p).await {
                tracing::warn!(process = %p, error = %e, "cannot remove a failed process; reconcile will");
            }
        }
        if let Some(image) = left.image {
            self.remove_image(&image).await;
        }
    }

    /// Runs `op` under the app's lock as a controlled operation, on the app as it is once the
    /// lock is held.
    pub(super) async fn locked<T: Send + 'static>(
        &self,
        app: &str,
        op: impl FnOnce(Deployer, Instance, SharedAttempt) -> BoxFuture<'static, Result<T>>
        + Send
        + 'static,
    ) -> Result<T> {
        let _guard = self
            .unless_cancelled(self.0.controls.app_lock(app).lock_owned())
            .await?;
        let inst = self.instance(app)?;
        let this = self.clone();
        self.controlled(app, move |attempt| op(this, inst, attempt))
            .await
    }

    /// Cancels the app's running deploy (or other operation).
    pub fn cancel(&self, app: &Instance) -> Result<()> {
        if self.0.controls.cancel(&app.name) {
            Ok(())
        } else {
            Err(Error::NotFound(format!(
                "no deploy of '{}' is running",
                app.name
            )))
        }
    }
}
