//! Keeps the store, Docker and the route table in step.
//!
//! At start, and after every container event of this installation, compare what the store says
//! should run with the containers labelled `scalefog`: remove orphans (containers of deleted apps,
//! leftovers of a deploy interrupted by a crash), mark crashed apps, start what should run, and
//! never restart what already runs. Builds left `running` by a crash are marked failed, and at
//! start the images of releases that were never recorded are removed.

use super::{Deployer, STOP_TIMEOUT_S, lock};
use crate::docker::ContainerInfo;
use crate::domain::{self, BuildStatus, InstanceStatus, Result};
use crate::routing::Target;
use crate::store::Slice;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::time::Duration;

/// Why reconcile runs: at start, a container that should run but is down is started; on an
/// event, it is a crash (Docker's restart policy is already bringing it back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Occasion {
    Start,
    Event,
}

impl Deployer {
    /// Reconciles every app, then follows Docker events until the task is dropped. Survives Docker
    /// being down or restarting: it retries, and reconciles everything after reconnecting.
    pub async fn run_reconciler(self) {
        let mut occasion = Occasion::Start;
        loop {
            match self.reconcile_all(occasion).await {
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "reconcile failed; retrying");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    continue;
                }
            }
            occasion = Occasion::Event;
            let mut events = self.docker().events(&self.filters(None));
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

    /// One full pass over every app and every labelled container.
    pub async fn reconcile_all(&self, occasion: Occasion) -> Result<()> {
        if occasion == Occasion::Start {
            self.fail_interrupted_builds().await?;
        }
        let containers = self.docker().containers(&self.filters(None)).await?;
        let apps: HashMap<String, domain::Instance> = self
            .0
            .store
            .read(|r| r.instances_where(Slice::ALL, |_| true))?
            .items
            .into_iter()
            .map(|i| (i.name.clone(), i))
            .collect();
        for c in &containers {
            if !c.app().is_some_and(|a| apps.contains_key(a)) {
                tracing::info!(container = %c.name, "removing an orphan container");
                self.docker().remove_container(&c.id).await?;
            }
        }
        for name in apps.keys() {
            if let Err(e) = self.reconcile_app(name, occasion).await {
                tracing::warn!(app = %name, error = %e, "reconcile failed");
            }
        }
        for img in self.docker().images(&self.filters(None)).await? {
            let app = img.labels.get(crate::docker::LABEL_APP);
            if !app.is_some_and(|a| apps.contains_key(a)) {
                for tag in &img.tags {
                    let _ = self.docker().remove_image(tag).await;
                }
                let _ = self.docker().remove_image(&img.id).await;
            }
        }
        Ok(())
    }

    /// Builds still marked running were interrupted by a crash: mark them failed, and put their
    /// apps back to the state their current release implies.
    async fn fail_interrupted_builds(&self) -> Result<()> {
        let active: Vec<String> = lock(&self.0.active).keys().cloned().collect();
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
        let Ok(images) = self.docker().images(&self.filters(Some(app))).await else {
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
            let tagged = img.tags.iter().any(|t| t != "<none>:<none>");
            if recorded && tagged {
                continue;
            }
            tracing::info!(%app, image = %img.id, ?release, "removing an image of no release");
            for tag in img.tags.iter().filter(|t| *t != "<none>:<none>") {
                let _ = self.docker().remove_image(tag).await;
            }
            if let Err(e) = self.docker().remove_image(&img.id).await {
                tracing::warn!(%app, image = %img.id, error = %e, "cannot remove an image of no release");
            }
        }
    }

    /// Reconciles one app. Skipped while an operation holds the app's lock: that operation owns
    /// the app's containers until it ends.
    pub async fn reconcile_app(&self, name: &str, occasion: Occasion) -> Result<()> {
        let Ok(_guard) = self.app_lock(name).try_lock_owned() else {
            return Ok(());
        };
        let containers = self.docker().containers(&self.filters(Some(name))).await?;
        let Some(app) = self.0.store.read(|r| r.instance(name))? else {
            for c in containers {
                self.docker().remove_container(&c.id).await?;
            }
            return Ok(());
        };
        let dep = self.0.store.read(|r| r.deployment(name))?;
        let retiring = lock(&self.0.retiring).clone();
        for c in &containers {
            let current = dep.as_ref().is_some_and(|d| d.container == c.id);
            if !current && !retiring.contains(&c.id) {
                tracing::info!(app = %name, container = %c.name, "removing a container that is not current");
                self.docker().remove_container(&c.id).await?;
            }
        }
        if occasion == Occasion::Start {
            self.remove_unreleased_images(&app.name).await;
        }
        let info: Option<ContainerInfo> = match &dep {
            Some(d) => self.docker().inspect(&d.container).await?,
            None => None,
        };
        let routes = &self.0.routes;
        match (app.status, info) {
            (InstanceStatus::Stopped, Some(c)) => {
                if c.running() {
                    self.docker().stop(&c.id, STOP_TIMEOUT_S).await?;
                }
                routes.set_app(name, Target::Unavailable("stopped".into()));
            }
            (
                InstanceStatus::Running | InstanceStatus::Crashed | InstanceStatus::Building,
                Some(c),
            ) if c.running() => {
                if let Some(addr) = c.published() {
                    routes.set_app(name, Target::Serving(addr));
                }
                if app.status == InstanceStatus::Crashed {
                    self.set_status(name, InstanceStatus::Running).await?;
                }
            }
            (InstanceStatus::Running | InstanceStatus::Crashed, Some(c)) => {
                if occasion == Occasion::Start {
                    // It should run and is down (host reboot, Docker restarted without it).
                    self.docker().start(&c.id).await?;
                    if let Some(addr) = self
                        .docker()
                        .inspect(&c.id)
                        .await?
                        .and_then(|i| i.published())
                    {
                        routes.set_app(name, Target::Serving(addr));
                    }
                    self.set_status(name, InstanceStatus::Running).await?;
                } else if c.state != "running" && c.state != "restarting"
                    || c.oom_killed
                    || c.exit_code.is_some_and(|x| x != 0)
                {
                    tracing::warn!(app = %name, state = %c.state, code = ?c.exit_code, "app crashed");
                    self.set_status(name, InstanceStatus::Crashed).await?;
                    routes.set_app(name, Target::Unavailable("crashed".into()));
                }
            }
            (InstanceStatus::Running | InstanceStatus::Crashed, None) if app.release.is_some() => {
                // The container is gone but the app should run: start its release again.
                tracing::info!(app = %name, "container missing; starting the current release");
                let release = self.current_release(&app)?;
                let attempt = super::SharedAttempt::default();
                let r = self.relaunch(&app, &release, &attempt).await;
                if r.is_err() {
                    let left = std::mem::take(&mut lock(&attempt).containers);
                    for c in left {
                        let _ = self.docker().remove_container(&c).await;
                    }
                    self.set_status(name, InstanceStatus::Crashed).await?;
                    routes.set_app(name, Target::Unavailable("crashed".into()));
                }
                r?;
            }
            (status, _) => {
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
}
