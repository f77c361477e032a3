//! What an owner does to a deployed app besides pushing: start, stop, restart, roll back, change
//! config vars and settings. Each runs under the app's lock as a controlled operation, and each
//! that changes what serves goes through the switch with no gap in service.

use super::report::Reporter;
use super::switch::{Record, SCALED_TO_ZERO};
use super::{Deployer, KEEP_RELEASE_IMAGES, STOP_GRACE};
use crate::accounts::Principal;
use crate::apps::check_quota;
use crate::domain::{
    self, AuditAction, AuditRecord, ConfigChange, ConfigKey, ConfigValue, DeployBranch, Error,
    HealthPath, Instance, InstanceStatus, Limits, MASKED_VALUE, QuotaUse, Release, ReleaseStatus,
    Result, WEB, check_config_value, check_cpu, check_memory_mb,
};
use crate::routing::Target;
use crate::store::Slice;
use futures_util::FutureExt;

/// What `PATCH /v1/instances/{name}` may change, as the transports read it; parsed by
/// [`Deployer::update_settings`].
#[derive(Debug, Default, Clone)]
pub struct Settings {
    pub memory_mb: Option<u32>,
    pub cpu: Option<f64>,
    pub health_path: Option<String>,
    pub deploy_branch: Option<String>,
    pub read_only_rootfs: Option<bool>,
}

/// [`Settings`] once every given value has passed its rule.
struct Parsed {
    memory_mb: Option<u32>,
    cpu: Option<f64>,
    health_path: Option<HealthPath>,
    deploy_branch: Option<DeployBranch>,
    read_only_rootfs: Option<bool>,
}

impl Settings {
    fn parse(self, limits: &Limits) -> Result<Parsed> {
        Ok(Parsed {
            memory_mb: self
                .memory_mb
                .map(|m| check_memory_mb(m).and_then(|m| limits.check_app_memory(m)))
                .transpose()?,
            cpu: self.cpu.map(check_cpu).transpose()?,
            health_path: self
                .health_path
                .as_deref()
                .map(HealthPath::parse)
                .transpose()?,
            deploy_branch: self
                .deploy_branch
                .as_deref()
                .map(DeployBranch::parse)
                .transpose()?,
            read_only_rootfs: self.read_only_rootfs,
        })
    }
}

impl Deployer {
    /// Rolls back to `version`, or to the release before the current one: a new release with
    /// that release's image and config, switched to with no gap.
    pub async fn rollback(
        &self,
        app: &Instance,
        who: &Principal,
        version: Option<u32>,
    ) -> Result<Release> {
        let user = who.user.username.clone();
        let audit = who.audit(AuditAction::AppRollback, Some(&app.name), "");
        self.locked(&app.name, move |this, app, attempt| {
            async move {
                let target = this.rollback_target(&app, version)?;
                if !this.0.docker.image_exists(&target.image).await? {
                    return Err(Error::Conflict(format!(
                        "the image of v{} was pruned (only the last {KEEP_RELEASE_IMAGES} releases keep theirs); deploy it again instead",
                        target.version
                    )));
                }
                let release = Release {
                    version: this.next_release(&app.name)?,
                    created_by: user,
                    created_at: domain::now(),
                    status: ReleaseStatus::Current,
                    description: format!("rollback to v{}", target.version),
                    build_id: None,
                    ..target
                };
                this.roll_out(
                    &app,
                    &release,
                    Record::Release,
                    &Reporter::silent(),
                    &attempt,
                    Some(audit),
                )
                .await?;
                Ok(release)
            }
            .boxed()
        })
        .await
    }

    /// The release a rollback goes back to: `version`, or the one before the current one.
    fn rollback_target(&self, app: &Instance, version: Option<u32>) -> Result<Release> {
        let current = app.release.ok_or_else(|| {
            Error::Conflict(format!("'{}' has no release to roll back from", app.name))
        })?;
        match version {
            Some(v) => self
                .0
                .store
                .read(|r| r.release(&app.name, v))?
                .ok_or_else(|| Error::NotFound(format!("'{}' has no release v{v}", app.name))),
            None => self
                .0
                .store
                .read(|r| r.releases_of(&app.name, Slice::ALL))?
                .items
                .into_iter()
                .find(|r| r.version < current)
                .ok_or_else(|| {
                    Error::Conflict(format!("'{}' has no release before v{current}", app.name))
                }),
        }
    }

    /// Sets, unsets and marks secret config vars. A change of values, with a release, makes a
    /// new release from the current image and switches to it with no gap (a stopped app stays
    /// stopped and gets it at its next start); without one, the vars wait for the first deploy.
    /// Marking a name secret or not changes only the app's record. The value [`MASKED_VALUE`]
    /// sent for a secret var leaves its value as it is.
    pub async fn set_env(
        &self,
        app: &Instance,
        who: &Principal,
        changes: Vec<ConfigChange>,
    ) -> Result<Instance> {
        let mut parsed = Vec::with_capacity(changes.len());
        for c in changes {
            let key = ConfigKey::parse(&c.key)?;
            if let ConfigValue::Set(v) = &c.value {
                check_config_value(&key, v)?;
            }
            parsed.push((key, c.value, c.secret));
        }
        let user = who.user.username.clone();
        let who = who.clone();
        self.locked(&app.name, move |this, app, attempt| {
            async move {
                let mut env = app.env.clone();
                let mut secret = app.secret_env.clone();
                let mut keys = Vec::new();
                // What the audit entry says was done to each changed key.
                let mut done = Vec::new();
                let mut marks = Vec::new();
                for (k, v, s) in parsed {
                    let changed = match v {
                        ConfigValue::Set(v) if v == MASKED_VALUE && secret.contains(&k) => None,
                        ConfigValue::Set(v) => {
                            (env.insert(k.clone(), v.clone()).as_ref() != Some(&v)).then_some("set")
                        }
                        ConfigValue::Unset => env.remove(&k).is_some().then_some("unset"),
                        ConfigValue::Keep => None,
                    };
                    if let Some(verb) = changed {
                        done.push(format!("{verb} {k}"));
                        keys.push(k.to_string());
                    }
                    let marked = match s {
                        Some(true) => secret.insert(k.clone()).then_some("secret"),
                        Some(false) => secret.remove(&k).then_some("not secret"),
                        None => None,
                    };
                    if let Some(m) = marked {
                        marks.push(format!("{k} {m}"));
                    }
                }
                if keys.is_empty() && marks.is_empty() {
                    return Ok(app);
                }
                // Names only: the log never holds a value.
                let detail = done.into_iter().chain(marks).collect::<Vec<_>>().join(", ");
                let audit = who.audit(AuditAction::AppConfig, Some(&app.name), detail);
                let current = match app.release {
                    Some(v) => this.0.store.read(|r| r.release(&app.name, v))?,
                    None => None,
                };
                let current = current.filter(|_| !keys.is_empty());
                let Some(current) = current else {
                    return this
                        .change_app_audited(&app.name, Some(audit), move |i| {
                            i.env = env;
                            i.secret_env = secret;
                        })
                        .await;
                };
                // The marks are the app's: written before the release, whose switch writes the
                // audit entry naming both.
                this.change_app(&app.name, move |i| i.secret_env = secret)
                    .await?;
                let release = Release {
                    version: this.next_release(&app.name)?,
                    env,
                    created_by: user,
                    created_at: domain::now(),
                    status: ReleaseStatus::Current,
                    description: format!("config: {}", keys.join(", ")),
                    build_id: None,
                    ..current
                };
                if app.status == InstanceStatus::Running {
                    this.roll_out(
                        &app,
                        &release,
                        Record::Release,
                        &Reporter::silent(),
                        &attempt,
                        Some(audit),
                    )
                    .await?;
                } else {
                    this.record_offline_release(&app, release, Some(audit))
                        .await?;
                }
                this.instance(&app.name)
            }
            .boxed()
        })
        .await
    }

    /// Restarts with no gap: a new process of the current release, health-checked, switched
    /// to; then the old one is stopped.
    pub async fn restart(&self, app: &Instance, who: &Principal) -> Result<Instance> {
        let audit = who.audit(AuditAction::AppRestart, Some(&app.name), "");
        self.locked(&app.name, move |this, app, attempt| {
            async move {
                this.relaunch_current(&app, &attempt, Some(audit)).await?;
                this.instance(&app.name)
            }
            .boxed()
        })
        .await
    }

    /// Starts the current release: its stopped processes when they all still exist and are of
    /// the current release and formation (and swarm services once the cluster is on), else a
    /// new set.
    pub async fn start(&self, app: &Instance, who: &Principal) -> Result<Instance> {
        let audit = who.audit(AuditAction::AppStart, Some(&app.name), "");
        self.locked(&app.name, move |this, app, attempt| {
            async move {
                let release = this.current_release(&app)?;
                let dep = this.0.store.read(|r| r.deployment(&app.name))?;
                let wanted: usize = domain::scales(&release.processes, &app.formation)
                    .iter()
                    .map(|s| usize::from(s.replicas))
                    .sum();
                let mut existing = Vec::new();
                for p in dep.iter().flat_map(|d| &d.processes) {
                    if let Some(status) = this.0.runtime.status(&p.id).await? {
                        existing.push((p.clone(), status));
                    }
                }
                // Containers of an app stopped before the cluster was turned on are not
                // resumed: a new set starts, as swarm services.
                let whole = dep.as_ref().is_some_and(|d| {
                    d.release == release.version
                        && d.processes.len() == wanted
                        && existing.len() == wanted
                        && !d.ids().any(|id| this.outside_cluster(id))
                });
                if whole
                    && app.status == InstanceStatus::Running
                    && existing.iter().all(|(_, s)| s.running())
                {
                    return Ok(app);
                }
                if !whole {
                    this.roll_out(
                        &app,
                        &release,
                        Record::Current,
                        &Reporter::silent(),
                        &attempt,
                        Some(audit),
                    )
                    .await?;
                    return this.instance(&app.name);
                }
                let mut web = Vec::new();
                for (p, _) in &existing {
                    this.0.runtime.resume(&p.id).await?;
                }
                for (p, _) in &existing {
                    if p.kind != WEB {
                        continue;
                    }
                    match this
                        .healthy_endpoint(&app, &p.id, "", &Reporter::silent())
                        .await
                    {
                        Ok(endpoint) => web.push(endpoint),
                        Err(e) => {
                            // Leave them stopped, as they were.
                            for (p, _) in &existing {
                                let _ = this.0.runtime.stop(&p.id, STOP_GRACE).await;
                            }
                            return Err(e);
                        }
                    }
                }
                let inst = this
                    .change_app_audited(&app.name, Some(audit), |i| {
                        i.status = InstanceStatus::Running
                    })
                    .await?;
                this.0
                    .routes
                    .set_app(&app.name, Target::serving_or(web, SCALED_TO_ZERO));
                Ok(inst)
            }
            .boxed()
        })
        .await
    }

    pub(super) async fn set_status(&self, app: &str, status: InstanceStatus) -> Result<Instance> {
        self.change_app(app, move |i| i.status = status).await
    }

    /// Stops the app; it stays stopped across restarts of scalefog and of Docker (the runtime
    /// honours an explicit stop).
    pub async fn stop(&self, app: &Instance, who: &Principal) -> Result<Instance> {
        let audit = who.audit(AuditAction::AppStop, Some(&app.name), "");
        self.locked(&app.name, move |this, app, _| {
            async move {
                this.current_release(&app)?;
                // Record first: if we crash after it, reconcile stops the process.
                let inst = this
                    .change_app_audited(&app.name, Some(audit), |i| {
                        i.status = InstanceStatus::Stopped
                    })
                    .await?;
                this.0
                    .routes
                    .set_app(&app.name, Target::Unavailable("stopped".into()));
                if let Some(d) = this.0.store.read(|r| r.deployment(&app.name))? {
                    let stops = d.ids().map(|id| this.0.runtime.stop(id, STOP_GRACE));
                    futures_util::future::try_join_all(stops).await?;
                }
                Ok(inst)
            }
            .boxed()
        })
        .await
    }

    /// Changes memory, CPU, health path, deploy branch and whether the root filesystem is
    /// read-only. The record changes first, in the transaction that checks the owner's memory
    /// quota; then new limits apply to the running process at once, and a new root means a new
    /// process (with no gap).
    pub async fn update_settings(
        &self,
        app: &Instance,
        who: &Principal,
        s: Settings,
    ) -> Result<Instance> {
        let s = s.parse(&self.0.settings.limits)?;
        let who = who.clone();
        self.locked(&app.name, move |this, app, attempt| {
            async move {
                let memory = s.memory_mb.unwrap_or(app.memory_mb);
                let cpu = s.cpu.unwrap_or(app.cpu);
                let limits = this.0.settings.limits;
                let name = app.name.clone();
                let audit = who.audit(AuditAction::AppSettings, Some(&app.name), "");
                let updated = this
                    .0
                    .store
                    .write_async(move |w| {
                        let mut i = super::app_in(w, &name)?;
                        // The limit is each process's: the app's share is it times its processes.
                        let replicas = w.replicas_of(&i)?;
                        let (old, new) = (u64::from(i.memory_mb), u64::from(memory));
                        check_quota(w, &limits, i.owner_id, |u| QuotaUse {
                            memory_mb: u.memory_mb - old * replicas + new * replicas,
                            ..u
                        })?;
                        i.memory_mb = memory;
                        i.cpu = cpu;
                        if let Some(p) = s.health_path {
                            i.health_path = p;
                        }
                        if let Some(b) = s.deploy_branch {
                            i.deploy_branch = b;
                        }
                        if let Some(ro) = s.read_only_rootfs {
                            i.read_only_rootfs = ro;
                        }
                        w.put_instance(&i)?;
                        w.audit(AuditRecord {
                            detail: format!(
                                "memory={} cpu={} health_path={} deploy_branch={} read_only_rootfs={}",
                                i.memory_mb, i.cpu, i.health_path, i.deploy_branch, i.read_only_rootfs
                            ),
                            ..audit
                        })?;
                        Ok(i)
                    })
                    .await?;
                let dep = this.0.store.read(|r| r.deployment(&app.name))?;
                let applied = match &dep {
                    Some(d) if (memory, cpu) != (app.memory_mb, app.cpu) => {
                        let updates = d
                            .ids()
                            .map(|id| this.0.runtime.update_limits(id, memory, cpu));
                        futures_util::future::try_join_all(updates)
                            .await
                            .map(|_| ())
                    }
                    _ => Ok(()),
                };
                let applied = match applied {
                    Ok(()) if updated.read_only_rootfs != app.read_only_rootfs => {
                        this.remount(&updated, &attempt).await
                    }
                    other => other,
                };
                if let Err(e) = applied {
                    // What the process runs with is what the record says: put it back.
                    // The log tells of both: the change was made, then undone.
                    let (memory, cpu, ro) = (app.memory_mb, app.cpu, app.read_only_rootfs);
                    let undone = who.audit(
                        AuditAction::AppSettings,
                        Some(&app.name),
                        format!("undone, it could not be applied: {e}"),
                    );
                    this.change_app_audited(&app.name, Some(undone), move |i| {
                        (i.memory_mb, i.cpu, i.read_only_rootfs) = (memory, cpu, ro);
                    })
                    .await?;
                    return Err(e);
                }
                Ok(updated)
            }
            .boxed()
        })
        .await
    }
}
