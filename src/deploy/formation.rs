//! Scaling: how many replicas of each process type run (the formation, Heroku's word). A
//! change is recorded on the app and reaches a running app as a new set of its current
//! release, started, checked and switched to like a restart, so no request fails.

use super::Deployer;
use crate::accounts::Principal;
use crate::apps::check_quota;
use crate::domain::{self, AuditAction, Instance, InstanceStatus, QuotaUse, Result};
use futures_util::FutureExt;
use std::collections::BTreeMap;

/// Replicas per process type.
pub type Formation = BTreeMap<String, u8>;

impl Deployer {
    /// Every process type of the app's current release (`web` alone before its first deploy
    /// or without a Procfile) with the replicas it runs at.
    pub fn formation(&self, app: &Instance) -> Result<Formation> {
        let processes = match app.release {
            Some(_) => self.current_release(app)?.processes,
            None => BTreeMap::new(),
        };
        Ok(domain::scales(&processes, &app.formation)
            .into_iter()
            .map(|s| (s.kind, s.replicas))
            .collect())
    }

    /// Sets the replicas of the types `change` names (`{"web": 3}`; 0 stops a type); a running
    /// app runs the new formation before this returns. On failure the old formation is kept
    /// and keeps running.
    pub async fn scale(
        &self,
        app: &Instance,
        who: &Principal,
        change: BTreeMap<String, i64>,
    ) -> Result<Formation> {
        let who = who.clone();
        self.locked(&app.name, move |this, app, attempt| {
            async move {
                let processes = match app.release {
                    Some(_) => this.current_release(&app)?.processes,
                    None => BTreeMap::new(),
                };
                let counts = domain::check_formation(&processes, &change)?;
                let detail: Vec<String> = counts.iter().map(|(k, n)| format!("{k}={n}")).collect();
                let audit = who.audit(AuditAction::AppScale, Some(&app.name), detail.join(", "));
                let relaunch = app.status == InstanceStatus::Running && app.release.is_some();
                let audit_now = audit.clone();
                let before = app.formation.clone();
                let changed = counts
                    .iter()
                    .any(|(kind, n)| this.formation_of(&app, &processes, kind) != *n);
                let (limits, name) = (this.0.settings.limits, app.name.clone());
                let updated = this
                    .0
                    .store
                    .write_async(move |w| {
                        // In the same transaction as the change: concurrent scales of one
                        // user's apps are counted one after the other.
                        let mut i = super::app_in(w, &name)?;
                        let before = w.replicas_of(&i)?;
                        i.formation.extend(counts);
                        let after = w.replicas_of(&i)?;
                        let memory = u64::from(i.memory_mb);
                        check_quota(w, &limits, i.owner_id, |u| QuotaUse {
                            replicas: u.replicas - before + after,
                            memory_mb: u.memory_mb - memory * before + memory * after,
                            ..u
                        })?;
                        w.put_instance(&i)?;
                        // A running app's new formation counts once it runs: the switch
                        // records it.
                        if !(changed && relaunch) {
                            w.audit(audit_now)?;
                        }
                        Ok(i)
                    })
                    .await?;
                if changed
                    && relaunch
                    && let Err(e) = this.relaunch_current(&updated, &attempt, Some(audit)).await
                {
                    this.change_app(&app.name, move |i| i.formation = before)
                        .await?;
                    return Err(e);
                }
                this.formation(&updated)
            }
            .boxed()
        })
        .await
    }

    fn formation_of(&self, app: &Instance, processes: &BTreeMap<String, String>, kind: &str) -> u8 {
        domain::scales(processes, &app.formation)
            .into_iter()
            .find(|s| s.kind == kind)
            .map_or(0, |s| s.replicas)
    }
}
