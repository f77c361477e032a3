//! The end every change of what serves an app goes through: start the release's process through
//! the runtime, health-check it while the old one keeps serving, make it current in one store
//! transaction, point the route table at it, and retire the old process after a grace period.

use super::control::SharedAttempt;
use super::report::shown;
use super::{Deployer, RETIRE_GRACE, Reporter, STOP_GRACE, app_in, health, supersede};
use crate::domain::{
    self, BuildStatus, Deployment, Error, Instance, InstanceStatus, Release, Result,
};
use crate::locks;
use crate::routing::Target;
use crate::runtime::ProcessSpec;
use futures_util::StreamExt;
use locks::lock;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

/// What the switch records besides the new process.
#[derive(Debug, Clone, Copy)]
pub(super) enum Record {
    /// A new release, from a build that now succeeded (its log is the reporter's).
    Built(u64),
    /// A new release made of an earlier one's image (rollback, config change).
    Release,
    /// The current release again, in a new process (restart, start, reconcile).
    Current,
}

/// Old processes in their grace period: reconcile leaves them alone.
#[derive(Default)]
pub(super) struct Retiring(Mutex<HashSet<String>>);

impl Retiring {
    pub fn snapshot(&self) -> HashSet<String> {
        lock(&self.0).clone()
    }
}

impl Deployer {
    /// Starts `release` in a new process, health-checks it and switches to it; the process
    /// serving before is retired. A failure leaves the previous release serving.
    pub(super) async fn roll_out(
        &self,
        app: &Instance,
        release: &Release,
        record: Record,
        rep: &Reporter,
        attempt: &SharedAttempt,
    ) -> Result<()> {
        let (process, endpoint) = self.launch(app, release, rep, attempt).await?;
        self.switch(app, release, record, process, endpoint, rep, attempt)
            .await
    }

    /// Starts a new process of the app's current release and switches to it: a restart with no
    /// gap, also how a changed set of volumes reaches a running app.
    pub(super) async fn relaunch_current(
        &self,
        app: &Instance,
        attempt: &SharedAttempt,
    ) -> Result<()> {
        let release = self.current_release(app)?;
        self.roll_out(app, &release, Record::Current, &Reporter::silent(), attempt)
            .await
    }

    /// Starts a process for `release` and waits for it to pass its health check. The process is
    /// recorded in `attempt`, so a failure removes it.
    async fn launch(
        &self,
        app: &Instance,
        release: &Release,
        rep: &Reporter,
        attempt: &SharedAttempt,
    ) -> Result<(String, SocketAddr)> {
        let mut env = vec![("PORT".to_string(), app.port.to_string())];
        env.extend(release.env.iter().map(|(k, v)| (k.to_string(), v.clone())));
        let spec = ProcessSpec {
            app: app.name.clone(),
            release: release.version,
            node: app.node_id,
            image: release.image.clone(),
            env,
            port: app.port,
            memory_mb: app.memory_mb,
            cpu: app.cpu,
            volumes: app
                .volumes
                .iter()
                .map(|v| (v.name.to_string(), v.path.to_string()))
                .collect(),
            read_only_rootfs: app.read_only_rootfs,
        };
        let id = self.0.runtime.start(&spec).await?;
        lock(attempt).processes.push(id.clone());
        let endpoint = self.healthy_endpoint(app, &id, rep).await?;
        Ok((id, endpoint))
    }

    /// Waits until `process` passes the app's health check, and returns where the router reaches
    /// it. On failure the pusher sees the process's last output.
    pub(super) async fn healthy_endpoint(
        &self,
        app: &Instance,
        process: &str,
        rep: &Reporter,
    ) -> Result<SocketAddr> {
        let checked = health::wait_healthy(
            self.0.runtime.as_ref(),
            process,
            &app.health_path,
            app.port,
            self.0.settings.health_timeout,
            rep,
        )
        .await
        .and_then(|status| {
            status
                .endpoint
                .ok_or_else(|| Error::internal("the new process has no published port"))
        });
        match checked {
            Ok(endpoint) => {
                rep.line("-----> Health check passed");
                Ok(endpoint)
            }
            Err(e) => {
                rep.line(format!(" !     {}", shown(&e)));
                rep.line(" !     Last output of the new process:");
                let mut tail = self.0.runtime.logs(process, Some(30), false);
                let mut any = false;
                while let Ok(Some(Ok(line))) =
                    tokio::time::timeout(Duration::from_secs(2), tail.next()).await
                {
                    rep.line(format!(" !     | {line}"));
                    any = true;
                }
                if !any {
                    rep.line(" !     | (no output)");
                }
                Err(e)
            }
        }
    }

    /// Makes a healthy process current: one store transaction, then the route table, then the
    /// previous process is retired after a grace period.
    #[allow(clippy::too_many_arguments)]
    async fn switch(
        &self,
        app: &Instance,
        release: &Release,
        record: Record,
        process: String,
        endpoint: SocketAddr,
        rep: &Reporter,
        attempt: &SharedAttempt,
    ) -> Result<()> {
        let name = app.name.clone();
        let deployment = Deployment {
            app: name.clone(),
            release: release.version,
            container: process.clone(),
        };
        let release = release.clone();
        let log = matches!(record, Record::Built(_)).then(|| rep.text());
        let previous = self
            .0
            .store
            .write_async(move |w| {
                let mut inst = w
                    .instance(&name)?
                    .ok_or_else(|| Error::NotFound(format!("app '{name}' was deleted")))?;
                if !matches!(record, Record::Current) {
                    supersede(w, &mut inst, &release)?;
                }
                if let (Record::Built(id), Some(log)) = (record, &log) {
                    if let Some(mut b) = w.build(id)? {
                        b.status = BuildStatus::Succeeded;
                        b.release = Some(release.version);
                        b.finished_at = Some(domain::now());
                        w.put_build(&b)?;
                    }
                    w.put_build_log(id, log)?;
                }
                let previous = w.deployment(&name)?;
                w.put_deployment(&deployment)?;
                inst.release = Some(release.version);
                inst.status = InstanceStatus::Running;
                w.put_instance(&inst)?;
                Ok(previous)
            })
            .await?;
        lock(attempt).commit();
        self.0.routes.set_app(&app.name, Target::Serving(endpoint));
        if let Some(prev) = previous
            && prev.container != process
        {
            self.retire(prev.container);
        }
        Ok(())
    }

    /// Stops and removes an old process after the grace period, in the background.
    fn retire(&self, process: String) {
        lock(&self.0.retiring.0).insert(process.clone());
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(RETIRE_GRACE).await;
            let _ = this.0.runtime.stop(&process, STOP_GRACE).await;
            if let Err(e) = this.0.runtime.remove(&process).await {
                tracing::warn!(%process, error = %e, "cannot remove a retired process; reconcile will");
            }
            lock(&this.0.retiring.0).remove(&process);
        });
    }

    /// Records a release of an app that is not running: it takes effect at the next start. The
    /// stopped process of the release it replaces is removed.
    pub(super) async fn record_offline_release(
        &self,
        app: &Instance,
        release: Release,
    ) -> Result<()> {
        let name = app.name.clone();
        let old = self
            .0
            .store
            .write_async(move |w| {
                let mut i = app_in(w, &name)?;
                supersede(w, &mut i, &release)?;
                w.put_instance(&i)?;
                let old = w.deployment(&name)?;
                w.delete_deployment(&name)?;
                Ok(old)
            })
            .await?;
        if let Some(d) = old {
            self.0.runtime.remove(&d.container).await?;
        }
        Ok(())
    }
}
