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
    /// Takes the app's lock, telling `rep` when it has to wait.
    pub(super) async fn acquire(&self, app: &str, rep: &Reporter) -> OwnedMutexGuard<()> {
        let l = self.0.controls.app_lock(app);
        match l.clone().try_lock_owned() {
            Ok(g) => g,
            Err(_) => {
                rep.line(format!(
                    "-----> Another deploy of {app} is in progress; waiting for it to finish"
                ));
                l.lock_owned().await
            }
        }
    }

    /// Takes a build slot, telling `rep` when it has to wait.
    pub(super) async fn build_slot(&self, rep: &Reporter) -> Result<OwnedSemaphorePermit> {
        let slots = self.0.controls.slots.clone();
        match slots.clone().try_acquire_owned() {
            Ok(s) => Ok(s),
            Err(_) => {
                rep.line("-----> All build slots are busy; waiting for one");
                slots
                    .acquire_owned()
                    .await
                    .map_err(|_| Error::Unavailable("scalefog is shutting down".into()))
            }
        }
    }

    /// Runs `op` as the app's current operation: cancellable, bounded by `deploy_timeout`, and
    /// on any failure everything the attempt created is removed.
    pub(super) async fn controlled<T>(
        &self,
        app: &str,
        op: impl FnOnce(SharedAttempt) -> BoxFuture<'static, Result<T>>,
    ) -> Result<T> {
        let token = CancellationToken::new();
        lock(&self.0.controls.active).insert(app.to_string(), token.clone());
        let attempt = SharedAttempt::default();
        let timeout = self.0.settings.timeout;
        let result = tokio::select! {
            r = op(attempt.clone()) => r,
            _ = token.cancelled() => Err(Error::Cancelled("the deploy was cancelled".into())),
            _ = tokio::time::sleep(timeout) => Err(Error::DeployFailed(format!(
                "the deploy took longer than deploy_timeout ({} s) and was abandoned",
                timeout.as_secs()
            ))),
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
        let _guard = self.0.controls.app_lock(app).lock_owned().await;
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
