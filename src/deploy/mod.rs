//! The deploy engine: a pushed commit → Docker image → health-checked process → switch.
//!
//! Every operation that changes what serves an app (push, rollback, config change, restart,
//! start, scale) ends the same way ([`Deployer::roll_out`]): a new set of processes (each
//! Procfile type at its formation's count) is started through the [`Runtime`] and must pass its
//! checks while the old set keeps serving; then one store transaction makes it current, the
//! route table points at its `web` replicas, and the old set is stopped after a grace period. A failure at any point removes what the attempt created and leaves the
//! previous release serving.
//!
//! One type, [`Deployer`], with its methods split by seam, one file each:
//! - `control`   — the per-app lock, the attempt (what to undo), cancel and timeout.
//! - `report`    — the `remote:` lines a pusher reads, kept as the build log.
//! - `build`     — a pushed commit → an image (`source`: the build context from git).
//! - `pull`      — an image app's image, pulled and labelled instead of built.
//! - `switch`    — start a release's process, health-check it (`health`), switch, retire.
//! - `lifecycle` — start, stop, restart, rollback, config vars, settings.
//! - `formation` — how many replicas of each process type run (scaling).
//! - `cron`      — `app.json`'s scheduled jobs, run as one-off containers.
//! - `release_phase` — the Procfile's `release:` command, run before a release serves.
//! - `history`   — releases, builds, build logs, runtime logs.
//! - `images`    — pruning old releases' images and the build cache they leave behind.
//! - `node_images` — the same pruning on the cluster's other nodes.
//! - `into_cluster` — running apps moved onto the swarm once the cluster is turned on.
//! - `runs`      — one-off runs of a command in a new process of the current release.
//! - `rebuild`   — a release's image built again from its commit when Docker lost it.
//! - `reconcile` — the store, the runtime and the route table kept in step, at start and after
//!   every runtime event.

mod build;
mod control;
mod cron;
mod formation;
mod health;
mod history;
mod images;
mod into_cluster;
mod lifecycle;
mod node_images;
mod pull;
mod rebuild;
pub mod reconcile;
mod release_phase;
mod report;
mod runs;
mod source;
mod switch;
mod volumes;

pub use cron::{CronClock, CronJobView};
pub use formation::Formation;
pub use lifecycle::Settings;
pub use pull::{ImageDeploy, ImageDeployed};
pub use report::Reporter;
pub use runs::{AttachedRun, RunHandle, Terminal};

use crate::apps::{AppResources, Links};
use crate::docker::{DockerNode, Installation};
use crate::domain::{AuditRecord, Error, Instance, Release, Result};
use crate::routing::RouteTable;
use crate::runtime::{Containers, Placed, Runtime, Swarm};
use crate::store::{Store, Writer};
use control::Controls;
use futures_util::future::BoxFuture;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Releases whose images are kept; older images are pruned (their releases stay listed, but can
/// no longer be rolled back to).
pub const KEEP_RELEASE_IMAGES: usize = 5;
/// How long an old process keeps running after the switch, so requests it already accepted
/// finish; then it gets SIGTERM and [`STOP_GRACE`] before SIGKILL.
const RETIRE_GRACE: Duration = Duration::from_secs(2);
const STOP_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct DeploySettings {
    pub max_concurrent: usize,
    pub timeout: Duration,
    pub health_timeout: Duration,
    /// How long a one-off run may take.
    pub run_timeout: Duration,
    /// Memory (MB) and CPUs of a build's `RUN` steps.
    pub build_memory_mb: u32,
    pub build_cpus: f64,
    /// Identifies this installation's objects in a shared Docker engine.
    pub install_id: String,
    /// How app containers' logs rotate.
    pub log_rotation: crate::docker::LogRotation,
    /// Abuse limits, checked when an app's memory changes.
    pub limits: crate::domain::Limits,
    /// The apps' repositories: a release whose image is gone is rebuilt from its commit there.
    pub repos: crate::git::Repos,
}

/// The id of this installation, kept in the data dir (created on first start). Every Docker
/// object is labelled with it.
pub fn install_id(data_dir: &Path) -> Result<String> {
    let path = data_dir.join("install.id");
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        _ => {
            let id = hex::encode(rand::random::<[u8; 8]>());
            std::fs::write(&path, format!("{id}\n"))
                .map_err(|e| Error::internal(format!("cannot write {}: {e}", path.display())))?;
            Ok(id)
        }
    }
}

struct Inner {
    store: Store,
    /// The local engine: builds and images.
    docker: Arc<dyn DockerNode>,
    /// Where apps' processes run.
    runtime: Arc<dyn Runtime>,
    /// The labels that mark this installation's Docker objects.
    installation: Installation,
    routes: RouteTable,
    links: Links,
    settings: DeploySettings,
    /// Locks, cancel switches and the build slots.
    controls: Controls,
    /// Logs of builds in progress, readable before they are stored.
    live_logs: build::LiveLogs,
    /// Old processes in their grace period: reconcile leaves them alone.
    retiring: switch::Retiring,
    /// Images built on by images removed earlier, to remove once no build can be using them.
    leftovers: images::Leftovers,
    /// The cron scheduler's time, and the jobs running now.
    cron_clock: cron::CronClock,
    cron_running: cron::CronRunning,
    /// One-off runs this process watches.
    live_runs: runs::LiveRuns,
    /// Deploy outcomes and phase durations are counted here.
    metrics: crate::metrics::Metrics,
    /// The server's work in flight: a stop waits for deploys, or cancels them.
    drain: crate::drain::Drain,
    /// The cluster (also inside `runtime`): whether it is on, and its nodes' engines.
    swarm: Swarm,
    /// Held by whoever moves apps into the cluster: one mover at a time.
    moving: tokio::sync::Mutex<()>,
}

/// The deploy engine. Cheap to clone.
#[derive(Clone)]
pub struct Deployer(Arc<Inner>);

/// What the deploy engine shares with the rest of the server: the counters it records into,
/// the work in flight a stop waits for, and the swarm it runs processes on once the cluster is
/// on.
pub struct Shared {
    pub metrics: crate::metrics::Metrics,
    pub drain: crate::drain::Drain,
    pub swarm: Swarm,
}

impl Deployer {
    pub fn new(
        store: Store,
        docker: Arc<dyn DockerNode>,
        routes: RouteTable,
        links: Links,
        settings: DeploySettings,
        shared: Shared,
    ) -> Deployer {
        let Shared {
            metrics,
            drain,
            swarm,
        } = shared;
        let installation = Installation {
            id: settings.install_id.clone(),
        };
        Deployer(Arc::new(Inner {
            store,
            runtime: Arc::new(Placed::new(
                Containers::new(
                    docker.clone(),
                    installation.clone(),
                    settings.log_rotation.clone(),
                ),
                swarm.clone(),
            )),
            docker,
            installation,
            routes,
            links,
            controls: Controls::new(settings.max_concurrent),
            settings,
            live_logs: Default::default(),
            retiring: Default::default(),
            leftovers: Default::default(),
            cron_clock: Default::default(),
            cron_running: Default::default(),
            live_runs: Default::default(),
            metrics,
            drain,
            swarm,
            moving: Default::default(),
        }))
    }

    /// Runs `step`, counting the time it took as `phase` (whatever its outcome).
    async fn timed<T>(
        &self,
        phase: crate::metrics::Phase,
        step: impl std::future::Future<Output = T>,
    ) -> T {
        let started = std::time::Instant::now();
        let out = step.await;
        self.0.metrics.phase(phase, started.elapsed());
        out
    }

    pub fn docker(&self) -> &dyn DockerNode {
        self.0.docker.as_ref()
    }

    pub fn runtime(&self) -> &dyn Runtime {
        self.0.runtime.as_ref()
    }

    /// The app's record, to operate on: an app being deleted is refused, so no deploy or
    /// setting starts on it.
    fn instance(&self, name: &str) -> Result<Instance> {
        let inst = self
            .0
            .store
            .read(|r| r.instance(name))?
            .ok_or_else(|| no_app(name))?;
        if inst.status == crate::domain::InstanceStatus::Deleting {
            return Err(Error::Conflict(format!("'{name}' is being deleted")));
        }
        Ok(inst)
    }

    /// Loads the app, lets `change` change it, and writes it back, in one transaction.
    async fn change_app(
        &self,
        name: &str,
        change: impl FnOnce(&mut Instance) + Send + 'static,
    ) -> Result<Instance> {
        self.change_app_audited(name, None, change).await
    }

    /// [`Deployer::change_app`], writing `audit` in the same transaction.
    async fn change_app_audited(
        &self,
        name: &str,
        audit: Option<AuditRecord>,
        change: impl FnOnce(&mut Instance) + Send + 'static,
    ) -> Result<Instance> {
        let name = name.to_string();
        self.0
            .store
            .write_async(move |w| {
                let mut i = app_in(w, &name)?;
                change(&mut i);
                w.put_instance(&i)?;
                if let Some(a) = audit {
                    w.audit(a)?;
                }
                Ok(i)
            })
            .await
    }

    /// The number the app's next release gets.
    fn next_release(&self, app: &str) -> Result<u32> {
        Ok(self.0.store.read(|r| r.last_release_number(app))? + 1)
    }

    fn current_release(&self, app: &Instance) -> Result<Release> {
        let v = app.release.ok_or_else(|| {
            Error::Conflict(format!(
                "'{}' has no release yet: push to deploy it first",
                app.name
            ))
        })?;
        self.0
            .store
            .read(|r| r.release(&app.name, v))?
            .ok_or_else(|| Error::internal(format!("release v{v} of {} is missing", app.name)))
    }
}

fn no_app(name: &str) -> Error {
    Error::NotFound(format!("no app named '{name}'"))
}

/// The app's record inside a write transaction.
fn app_in(w: &Writer, name: &str) -> Result<Instance> {
    w.instance(name)?.ok_or_else(|| no_app(name))
}

/// Makes `release` the app's current release inside a write transaction: the one it replaces is
/// marked superseded, and the app takes the release's config.
fn supersede(w: &mut Writer, app: &mut Instance, release: &Release) -> Result<()> {
    if let Some(cur) = app.release
        && cur != release.version
        && let Some(mut old) = w.release(&app.name, cur)?
    {
        old.status = crate::domain::ReleaseStatus::Superseded;
        w.put_release(&old)?;
    }
    w.put_release(release)?;
    app.env = release.env.clone();
    app.release = Some(release.version);
    Ok(())
}

impl AppResources for Deployer {
    fn remove<'a>(&'a self, app: &'a Instance) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.remove_app(&app.name))
    }
}
