//! Keeps the store, Docker and the route table in step.
//!
//! At start, and after every runtime event of this installation, compare what the store says
//! should run with the processes the runtime has: remove orphans (processes of deleted apps,
//! leftovers of a deploy interrupted by a crash), mark crashed apps, start what should run, and
//! never restart what already runs. Builds left `running` by a crash are marked failed, and at
//! start the images of releases that were never recorded are removed, and deletions a crash
//! cut short are finished, and apps still on containers with the cluster on start moving into
//! it. An app being deleted never runs or routes again.

use super::control::SharedAttempt;
use super::report::Reporter;
use super::switch::{Record, SCALED_TO_ZERO};
use super::{Deployer, STOP_GRACE};
use crate::apps::Apps;
use crate::domain::{self, BuildStatus, DeployedProcess, Instance, InstanceStatus, Result, WEB};
use crate::routing::Target;
use crate::runtime::{ProcessState, ProcessStatus};
use crate::store::Slice;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::time::Duration;

/// Why reconcile runs: at start, a process that should run but is down is started; on an
/// event, it is a crash (the runtime is already bringing it back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Occasion {
    Start,
    Event,
}

impl Deployer {
    /// Reconciles every app, then follows Docker events until the task is dropped. Survives Docker
    /// being down or restarting: it retries, and reconciles everything after reconnecting.
    /// `apps` finishes the deletions a stop cut short (it holds every resource of an app, the
    /// repository and routes besides what the deploy engine holds).
    pub async fn run_reconciler(self, apps: Apps) {
        let mut occasion = Occasion::Start;
        loop {
            if occasion == Occasion::Start {
                apps.finish_deletions().await;
            }
            match self.reconcile_all(occasion).await {
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "reconcile failed; retrying");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    continue;
                }
            }
            if occasion == Occasion::Start {
                // Apps still on containers with the cluster on (`scalefog cluster init` while
                // stopped, or a move a stop cut short) move now that every app is in step.
                match self.move_into_cluster(None) {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(apps = n, "moving apps into the cluster"),
                    Err(e) => tracing::warn!(error = %e, "cannot move apps into the cluster"),
                }
            }
            occasion = Occasion::Event;
            let mut events = self.0.runtime.events();
            while let Some(ev) = events.next().await {
                match ev {
                    Ok(ev) => {
                        let interesting = matches!(
                            ev.action.as_str(),
                            "start" | "die" | "stop" | "destroy" | "oom"
                        );
                        if let (true, Some(app)) = (interesting, ev.app) {
                            let this = self.clone();
                            tokio::spawn(async move {
                                if let Err(e) = this.reconcile_app(&app, Occasion::Event).await {
                                    tracing::warn!(%app, error = %e, "reconcile failed");
                                }
                            });
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "lost Docker events; reconnecting");
                        break;
                    }
                }
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    /// One full pass over every app and every process.
    pub async fn reconcile_all(&self, occasion: Occasion) -> Result<()> {
        if occasion == Occasion::Start {
            self.fail_interrupted_builds().await?;
            self.end_interrupted_runs().await?;
        }
        let processes = self.0.runtime.list(None).await?;
        let apps: HashMap<String, domain::Instance> = self
            .0
            .store
            .read(|r| r.instances_where(Slice::ALL, |_| true))?
            .items
            .into_iter()
            .map(|i| (i.name.clone(), i))
            .collect();
        for p in &processes {
            if !p.app.as_ref().is_some_and(|a| apps.contains_key(a)) {
                tracing::info!(process = %p.id, "removing an orphan process");
                self.0.runtime.remove(&p.id).await?;
            }
        }
        for (name, app) in &apps {
            if let Err(e) = self.reconcile_app(name, occasion).await {
                tracing::warn!(app = %name, error = %e, "reconcile failed");
            }
            if occasion == Occasion::Start
                && let Err(e) = self.collect_removed_volumes(app).await
            {
                tracing::warn!(app = %name, error = %e, "cannot remove a removed volume's data");
            }
        }
        for img in self.images().await? {
            let app = img.labels.get(crate::docker::LABEL_APP);
            if !app.is_some_and(|a| apps.contains_key(a))
                && let Err(e) = self.remove_whole_image(&img).await
            {
                tracing::warn!(image = %img.id, error = %e, "cannot remove an orphan image");
            }
        }
        Ok(())
    }

    /// Builds still marked running were interrupted by a crash: mark them failed, and put their
    /// apps back to the state their current release implies.
    async fn fail_interrupted_builds(&self) -> Result<()> {
        let active = self.0.controls.busy_apps();
        self.0
            .store
            .write_async(move |w| {
                for mut b in w.running_builds()? {
                    if active.contains(&b.app) {
                        continue;
                    }
                    b.status = BuildStatus::Failed;
                    b.finished_at = Some(domain::now());
                    b.error = Some("interrupted: scalefog stopped during the deploy".into());
                    let mut log = w.build_log(b.id)?.unwrap_or_default();
                    log.push_str(" !     Interrupted: scalefog stopped during the deploy\n");
                    w.put_build_log(b.id, &log)?;
                    w.put_build(&b)?;
                    if let Some(mut i) = w.instance(&b.app)?
                        && i.status == InstanceStatus::Building
                    {
                        i.status = if i.release.is_some() {
                            InstanceStatus::Running
                        } else {
                            InstanceStatus::Failed
                        };
                        w.put_instance(&i)?;
                    }
                }
                Ok(())
            })
            .await
    }

    /// Removes the app's images that no release record names: the image of a deploy
    /// interrupted by a crash after its build (tagged with a release number that was never
    /// recorded, and that the next deploy will reuse), and untagged leftovers. Called under the
    /// app's lock, so no build of the app is running. Best effort: a failure leaves the image for
    /// the next start.
    async fn remove_unreleased_images(&self, app: &str) {
        let Ok(images) = self.app_images(app).await else {
            return;
        };
        for img in images {
            let release: Option<u32> = img
                .labels
                .get(crate::docker::LABEL_RELEASE)
                .and_then(|r| r.parse().ok());
            let recorded = match release {
                Some(v) => matches!(self.0.store.read(|r| r.release(app, v)), Ok(Some(_))),
                None => false,
            };
            if recorded && img.tagged().next().is_some() {
                continue;
            }
            tracing::info!(%app, image = %img.id, ?release, "removing an image of no release");
            if let Err(e) = self.remove_whole_image(&img).await {
                tracing::warn!(%app, image = %img.id, error = %e, "cannot remove an image of no release");
            }
        }
    }

    /// Reconciles one app. Skipped while an operation holds the app's lock: that operation owns
    /// the app's containers until it ends.
    pub async fn reconcile_app(&self, name: &str, occasion: Occasion) -> Result<()> {
        let Ok(_guard) = self.0.controls.app_lock(name).try_lock_owned() else {
            return Ok(());
        };
        let processes = self.0.runtime.list(Some(name)).await?;
        let Some(app) = self.0.store.read(|r| r.instance(name))? else {
            for p in processes {
                self.0.runtime.remove(&p.id).await?;
            }
            return Ok(());
        };
        let dep = self.0.store.read(|r| r.deployment(name))?;
        let retiring = self.0.retiring.snapshot();
        // A one-off run's process is no deployment's, and lives until its run ends; those of
        // runs that ended (or were cut short by a stop) are leftovers like any other.
        let runs = self.running_run_processes(name)?;
        for p in &processes {
            let current = dep.as_ref().is_some_and(|d| d.contains(&p.id));
            // A one-off (a cron job, a release command) belongs to no deployment; it is
            // removed by whoever started it, or here once it has ended. So is a run while
            // its record says it runs.
            // (Created and not started yet counts as alive: its starter is about to start it.)
            let one_off = !matches!(p.state, ProcessState::Exited { .. })
                && p.process.as_deref().is_some_and(|label| {
                    label.starts_with("cron.") || label.starts_with("release.")
                });
            let run = p.process.as_ref().is_some_and(|n| runs.contains(n));
            if !current && !retiring.contains(&p.id) && !one_off && !run {
                tracing::info!(app = %name, process = %p.id, "removing a process that is not current");
                self.0.runtime.remove(&p.id).await?;
            }
        }
        if occasion == Occasion::Start {
            self.remove_unreleased_images(&app.name).await;
        }
        // The deployment's processes as the runtime has them; `None` for one that is gone.
        let mut current: Vec<(DeployedProcess, Option<ProcessStatus>)> = Vec::new();
        for p in dep.iter().flat_map(|d| &d.processes) {
            current.push((p.clone(), self.0.runtime.status(&p.id).await?));
        }
        let whole = dep.is_some() && current.iter().all(|(_, s)| s.is_some());
        let routes = &self.0.routes;
        match app.status {
            InstanceStatus::Deleting => {
                // Its deletion is under way or will be finished at the next start; whatever
                // still runs of it goes now and is never restarted.
                for (p, _) in &current {
                    self.0.runtime.remove(&p.id).await?;
                }
                routes.set_app(name, Target::unrouted(&app));
            }
            InstanceStatus::Stopped if dep.is_some() => {
                for (_, s) in &current {
                    if let Some(s) = s.as_ref().filter(|s| s.running()) {
                        self.0.runtime.stop(&s.id, STOP_GRACE).await?;
                    }
                }
                routes.set_app(name, Target::Unavailable("stopped".into()));
            }
            InstanceStatus::Running | InstanceStatus::Crashed | InstanceStatus::Building
                if whole =>
            {
                self.keep_running(&app, current, occasion).await?;
            }
            InstanceStatus::Running | InstanceStatus::Crashed if app.release.is_some() => {
                // Processes are gone but the app should run: start its release again.
                tracing::info!(app = %name, "processes missing; starting the current release");
                let release = self.current_release(&app)?;
                let attempt = SharedAttempt::default();
                let r = self
                    .roll_out(
                        &app,
                        &release,
                        Record::Current,
                        &Reporter::silent(),
                        &attempt,
                        None,
                    )
                    .await;
                if r.is_err() {
                    self.undo(&attempt).await;
                    self.set_status(name, InstanceStatus::Crashed).await?;
                    routes.set_app(name, Target::Unavailable("crashed".into()));
                }
                r?;
            }
            status => {
                let state = if status == InstanceStatus::Building && app.release.is_none() {
                    "created"
                } else {
                    status.as_str()
                };
                routes.set_app(name, Target::Unavailable(state.into()));
            }
        }
        Ok(())
    }

    /// An app that should run and has all its processes: at start, those that are down are
    /// started (host reboot, Docker restarted without them); the router gets the `web`
    /// replicas that run, skipping the others while the runtime brings them back. The app is
    /// crashed only when it has `web` replicas and none of them runs.
    async fn keep_running(
        &self,
        app: &Instance,
        mut current: Vec<(DeployedProcess, Option<ProcessStatus>)>,
        occasion: Occasion,
    ) -> Result<()> {
        let name = app.name.as_str();
        if occasion == Occasion::Start {
            // A swarm replica the swarm is restarting or moving to another node is left to it:
            // resuming it only starts one this engine stopped.
            for (p, s) in &mut current {
                if s.as_ref().is_some_and(|s| !s.running()) {
                    self.0.runtime.resume(&p.id).await?;
                    *s = self.0.runtime.status(&p.id).await?;
                }
            }
        }
        let webs = current.iter().filter(|(p, _)| p.kind == WEB).count();
        let mut serving = Vec::new();
        let mut down = Vec::new();
        for (p, s) in &current {
            match s {
                Some(s) if s.running() => {
                    if p.kind == WEB
                        && let Some(addr) = s.endpoint
                    {
                        serving.push(addr);
                    }
                }
                Some(s) => down.push((p.label(), s.state)),
                None => {}
            }
        }
        for (label, state) in &down {
            if crashed(*state) {
                tracing::warn!(app = %name, process = %label, ?state, "process crashed");
            }
        }
        let web_crashed = webs > 0 && serving.is_empty();
        if web_crashed && down.iter().any(|(_, state)| crashed(*state)) {
            self.set_status(name, InstanceStatus::Crashed).await?;
            self.0
                .routes
                .set_app(name, Target::Unavailable("crashed".into()));
            return Ok(());
        }
        let idle = if webs == 0 {
            SCALED_TO_ZERO
        } else {
            "restarting"
        };
        self.0
            .routes
            .set_app(name, Target::serving_or(serving, idle));
        if app.status == InstanceStatus::Crashed && !web_crashed {
            self.set_status(name, InstanceStatus::Running).await?;
        }
        Ok(())
    }
}

/// Whether the current process, found not running after an event, has crashed: anything but a
/// process the runtime is bringing back after a clean exit.
fn crashed(state: ProcessState) -> bool {
    match state {
        ProcessState::Running => false,
        ProcessState::Restarting { code, oom } => oom || code.is_some_and(|x| x != 0),
        ProcessState::Starting | ProcessState::Exited { .. } => true,
    }
}
