//! An app's persistent volumes. Adding one mounts it into a new process of the current release,
//! rolled out like a restart (no gap in service); removing one rolls out without it, then
//! deletes its data once no process mounts it any more. Volumes outlive deploys, rollbacks and
//! restarts because every process of every release mounts the same named volume.

use super::Deployer;
use crate::accounts::Principal;
use crate::domain::{
    self, AppVolume, AuditAction, Error, Instance, InstanceStatus, MAX_VOLUMES_PER_APP, MountPath,
    Result, VolumeName,
};
use futures_util::FutureExt;
use std::time::Duration;

/// How long a removed volume's data waits for the processes that still mount it (the old
/// process drains for a grace period after a switch) before its removal is left to the next
/// start's reconcile.
const REMOVAL_PATIENCE: Duration = Duration::from_secs(180);

impl Deployer {
    /// Adds volume `name` mounted at `path` to the app; a running app gets a new process with
    /// it before this returns.
    pub async fn add_volume(
        &self,
        app: &Instance,
        who: &Principal,
        name: &str,
        path: &str,
    ) -> Result<AppVolume> {
        let name = VolumeName::parse(name)?;
        let path = MountPath::parse(path)?;
        let who = who.clone();
        self.locked(&app.name, move |this, app, attempt| {
            async move {
                if app.volumes.iter().any(|v| v.name == name) {
                    return Err(Error::Conflict(format!(
                        "app '{}' already has a volume named '{name}'",
                        app.name
                    )));
                }
                if let Some(v) = app.volumes.iter().find(|v| v.path.overlaps(&path)) {
                    return Err(Error::invalid(
                        "path",
                        format!("'{path}' overlaps volume '{}' at {}", v.name, v.path),
                    ));
                }
                if app.volumes.len() >= MAX_VOLUMES_PER_APP {
                    return Err(Error::invalid(
                        "name",
                        format!("an app can have at most {MAX_VOLUMES_PER_APP} volumes"),
                    ));
                }
                let volume = AppVolume {
                    name: name.clone(),
                    path,
                    created_at: domain::now(),
                };
                let added = volume.clone();
                let detail = format!("{} at {}", volume.name, volume.path);
                let audit = who.audit(AuditAction::AppVolumeAdd, Some(&app.name), &detail);
                let updated = this
                    .change_app_audited(&app.name, Some(audit), move |i| i.volumes.push(added))
                    .await?;
                if let Err(e) = this.remount(&updated, &attempt).await {
                    let undone = who.audit(
                        AuditAction::AppVolumeRemove,
                        Some(&app.name),
                        format!("{detail}: adding it undone, it could not be mounted: {e}"),
                    );
                    this.change_app_audited(&app.name, Some(undone), move |i| {
                        i.volumes.retain(|v| v.name != name)
                    })
                    .await?;
                    return Err(e);
                }
                Ok(volume)
            }
            .boxed()
        })
        .await
    }

    /// Removes volume `name` from the app and, once no process mounts it, its data.
    pub async fn remove_volume(&self, app: &Instance, who: &Principal, name: &str) -> Result<()> {
        let who = who.clone();
        self.locked(&app.name, {
            let name = name.to_string();
            move |this, app, attempt| {
                async move {
                    let Some(volume) = app.volumes.iter().find(|v| v.name.as_str() == name) else {
                        return Err(Error::NotFound(format!(
                            "app '{}' has no volume named '{name}'",
                            app.name
                        )));
                    };
                    let volume = volume.clone();
                    let gone = volume.name.clone();
                    let detail = format!("{} at {}", volume.name, volume.path);
                    let audit = who.audit(AuditAction::AppVolumeRemove, Some(&app.name), &detail);
                    let updated = this
                        .change_app_audited(&app.name, Some(audit), move |i| {
                            i.volumes.retain(|v| v.name != gone)
                        })
                        .await?;
                    if let Err(e) = this.remount(&updated, &attempt).await {
                        let undone = who.audit(
                            AuditAction::AppVolumeAdd,
                            Some(&app.name),
                            format!("{detail}: removing it undone, it could not be unmounted: {e}"),
                        );
                        this.change_app_audited(&app.name, Some(undone), move |i| {
                            i.volumes.push(volume)
                        })
                        .await?;
                        return Err(e);
                    }
                    this.delete_volume_data(&app.name, &name);
                    Ok(())
                }
                .boxed()
            }
        })
        .await
    }

    /// Gives the app's processes what its record now says they start with (its volumes, a
    /// read-only root): a running app gets a new process of its current release; a stopped
    /// app's process is removed, so that starting it makes a new one.
    pub(super) async fn remount(
        &self,
        app: &Instance,
        attempt: &super::control::SharedAttempt,
    ) -> Result<()> {
        if app.status == InstanceStatus::Running && app.release.is_some() {
            return self.relaunch_current(app, attempt, None).await;
        }
        if let Some(d) = self.0.store.read(|r| r.deployment(&app.name))? {
            for id in d.ids() {
                self.0.runtime.remove(id).await?;
            }
        }
        Ok(())
    }

    /// Deletes volume `name`'s data in the background, waiting for the processes that still
    /// mount it (a retired process drains first). Given up if the app gets a volume of that name
    /// again meanwhile.
    fn delete_volume_data(&self, app: &str, name: &str) {
        let (this, app, name) = (self.clone(), app.to_string(), name.to_string());
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + REMOVAL_PATIENCE;
            loop {
                let wanted = this
                    .instance(&app)
                    .map(|i| i.volumes.iter().any(|v| v.name.as_str() == name))
                    .unwrap_or(false);
                if wanted {
                    return;
                }
                match this.0.runtime.remove_volume(&app, &name).await {
                    Ok(true) => return,
                    Ok(false) if tokio::time::Instant::now() < deadline => {}
                    Ok(false) => {
                        tracing::warn!(%app, volume = %name, "a removed volume is still in use; it goes at the next start");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(%app, volume = %name, error = %e, "cannot remove a volume");
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }

    /// Deletes the data of every volume of `app` (its processes are gone).
    pub(super) async fn remove_app_volumes(&self, app: &str) -> Result<()> {
        for name in self.0.runtime.volumes(app).await? {
            if !self.0.runtime.remove_volume(app, &name).await? {
                return Err(Error::Conflict(format!(
                    "volume '{name}' of '{app}' is still in use"
                )));
            }
        }
        Ok(())
    }

    /// Deletes the data of the app's volumes its record no longer names (a removal cut short by
    /// a stop of Scalefog). Called by reconcile at start.
    pub(super) async fn collect_removed_volumes(&self, app: &Instance) -> Result<()> {
        for name in self.0.runtime.volumes(&app.name).await? {
            if !app.volumes.iter().any(|v| v.name.as_str() == name) {
                self.0.runtime.remove_volume(&app.name, &name).await?;
            }
        }
        Ok(())
    }
}
