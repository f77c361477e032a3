//! Moving running apps into the cluster once it is turned on: every app that still runs as plain
//! containers is relaunched as swarm services through the zero-downtime path (new set started as
//! services, health-checked, switched to, containers retired), one app at a time, in the
//! background. Called after `POST /v1/cluster` turns the cluster on, and at start (the cluster
//! may have been turned on by `scalefog cluster init` while the server was stopped, or a stop
//! cut a move short).
//!
//! A move that fails leaves the app on its containers, serving as before; it is logged and
//! recorded in the audit log (`app.move`, which the app's owner reads too). Stopped apps move at
//! their next start (see `lifecycle`).

use super::Deployer;
use crate::accounts::Principal;
use crate::domain::{self, AuditAction, AuditRecord, Channel, Error, InstanceStatus, Result};
use crate::runtime::swarm::PREFIX;
use futures_util::FutureExt;

/// What the audit log says of a move that worked.
const MOVED: &str = "moved into the cluster: its processes are swarm services";

impl Deployer {
    /// Whether `process` (an id the runtime gave) should move: the cluster is on and it is a
    /// plain container.
    pub(super) fn outside_cluster(&self, process: &str) -> bool {
        !process.starts_with(PREFIX) && self.0.swarm.enabled()
    }

    /// The apps that should run and still have processes outside the swarm while the cluster
    /// is on: those a move has not reached yet, or could not move. None while it is off.
    pub fn apps_to_move(&self) -> Result<Vec<String>> {
        if !self.0.swarm.enabled() {
            return Ok(Vec::new());
        }
        let (deployments, apps) = self.0.store.read(|r| {
            let apps = r.instances_where(crate::store::Slice::ALL, |i| movable(i.status))?;
            Ok((r.deployments()?, apps.items))
        })?;
        Ok(deployments
            .into_iter()
            .filter(|d| d.ids().any(|id| !id.starts_with(PREFIX)))
            .filter(|d| apps.iter().any(|a| a.name == d.app))
            .map(|d| d.app)
            .collect())
    }

    /// Starts moving every app that runs as containers into the cluster, one at a time in the
    /// background; how many there are. `who` turned the cluster on (`None`: the server itself,
    /// at start). Nothing when the cluster is off.
    pub fn move_into_cluster(&self, who: Option<Principal>) -> Result<usize> {
        let count = self.apps_to_move()?.len();
        if count > 0 {
            tokio::spawn(self.clone().move_apps(who));
        }
        Ok(count)
    }

    /// Moves the apps one by one. One mover at a time: a second one waits and finds what the
    /// first left.
    async fn move_apps(self, who: Option<Principal>) {
        let _alone = self.0.moving.lock().await;
        let apps = match self.apps_to_move() {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the apps to move into the cluster");
                return;
            }
        };
        for name in apps {
            tracing::info!(app = %name, "moving an app into the cluster");
            match self.move_app(&name, who.as_ref()).await {
                Ok(true) => tracing::info!(app = %name, "app moved into the cluster"),
                // Deleted meanwhile.
                Ok(false) | Err(Error::NotFound(_)) => {}
                Err(Error::Cancelled(_)) => {
                    // A stop: the next start moves the rest.
                    tracing::info!(app = %name, "moving into the cluster interrupted by a stop");
                    return;
                }
                Err(e) => {
                    tracing::warn!(app = %name, error = %e, "could not move an app into the cluster; it keeps running as containers");
                    let entry = audit_entry(
                        who.as_ref(),
                        &name,
                        format!("could not move into the cluster, still runs as containers: {e}"),
                    );
                    if let Err(e) = self.0.store.write_async(move |w| w.audit(entry)).await {
                        tracing::warn!(app = %name, error = %e, "cannot record a failed move");
                    }
                }
            }
        }
    }

    /// Relaunches one app as swarm services, under its lock; `false` when there was nothing
    /// to move once the lock was held (a deploy meanwhile moved it, or it was stopped).
    async fn move_app(&self, name: &str, who: Option<&Principal>) -> Result<bool> {
        let audit = audit_entry(who, name, MOVED);
        self.locked(name, move |this, app, attempt| {
            async move {
                let dep = this.0.store.read(|r| r.deployment(&app.name))?;
                let outside = dep.is_some_and(|d| d.ids().any(|id| this.outside_cluster(id)));
                if !outside || !movable(app.status) {
                    return Ok(false);
                }
                this.relaunch_current(&app, &attempt, Some(audit)).await?;
                Ok(true)
            }
            .boxed()
        })
        .await
    }
}

/// Apps that serve (or should) now move; stopped ones move when started.
fn movable(status: InstanceStatus) -> bool {
    matches!(status, InstanceStatus::Running | InstanceStatus::Crashed)
}

/// An `app.move` entry by `who`, or by the server itself at start.
fn audit_entry(who: Option<&Principal>, app: &str, detail: impl Into<String>) -> AuditRecord {
    match who {
        Some(who) => who.audit(AuditAction::AppMove, Some(app), detail),
        None => AuditRecord {
            id: 0,
            at: domain::now(),
            user_id: 0,
            username: "scalefog".into(),
            channel: Channel::Cli,
            address: None,
            action: AuditAction::AppMove,
            app: Some(app.to_string()),
            app_owner: None,
            detail: detail.into(),
        },
    }
}
