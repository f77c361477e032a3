//! Apps ("instances"): creation, listing, lookup with access checks, deletion.
//!
//! Every access check for an app lives here ([`Apps::get`]): owners see their apps, admins see
//! every app, anyone else gets `NotFound`, so the existence of other users' apps never leaks.
//!
//! Deletion is an intent recorded first (status `deleting`), then carried out; a deletion cut
//! short by a crash is finished at the next start ([`Apps::finish_deletions`]).

mod domains;
mod names;

use crate::accounts::Principal;
use crate::domain::{
    self, AppName, AuditAction, Error, Instance, InstanceStatus, Limits, QuotaUse, Region, Result,
    UserId,
};
use crate::locks;
use crate::store::{Page, Slice, Store, Writer};
use std::sync::{Arc, RwLock};

/// Something that holds per-app resources (a git repo, containers) and must set them up when an
/// app is created and let go of them when it is deleted. Registered at start-up, so `apps` need
/// not know who they are (Dokku's lifecycle events, not modules calling each other).
pub trait AppResources: Send + Sync + 'static {
    /// Called after the app's record is committed. An error undoes the creation.
    fn create<'a>(&'a self, _app: &'a Instance) -> futures_util::future::BoxFuture<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }
    /// Called before the app's record is removed; must succeed when there is nothing to remove.
    fn remove<'a>(&'a self, app: &'a Instance) -> futures_util::future::BoxFuture<'a, Result<()>>;
    /// Called after a change to the app's record other than its status (its custom domains).
    fn changed(&self, _app: &Instance) {}
}

/// Where users reach an app and push to it; derived from the settings.
#[derive(Debug, Clone)]
pub struct Links {
    pub domain: String,
    pub proxy_port: u16,
    pub ssh_host: String,
    pub ssh_port: u16,
}

impl Links {
    pub fn url(&self, app: &str) -> String {
        if self.proxy_port == 80 {
            format!("http://{app}.{}", self.domain)
        } else {
            format!("http://{app}.{}:{}", self.domain, self.proxy_port)
        }
    }
    pub fn git_remote(&self, app: &str) -> String {
        format!("ssh://git@{}:{}/{app}.git", self.ssh_host, self.ssh_port)
    }
    /// The name a custom domain's CNAME record points to: the app's platform subdomain.
    pub fn cname(&self, app: &str) -> String {
        format!("{app}.{}", self.domain)
    }
}

#[derive(Clone)]
pub struct Apps {
    store: Store,
    links: Links,
    /// The installation's abuse limits; users' own quotas are on their records.
    limits: Limits,
    resources: Arc<RwLock<Vec<Arc<dyn AppResources>>>>,
}

impl Apps {
    pub fn new(store: Store, links: Links, limits: Limits) -> Apps {
        Apps {
            store,
            links,
            limits,
            resources: Arc::default(),
        }
    }

    pub fn links(&self) -> &Links {
        &self.links
    }

    pub fn register_resources(&self, r: Arc<dyn AppResources>) {
        locks::write(&self.resources).push(r);
    }

    /// Creates an app. Without a name, a readable unique one is generated; without a region,
    /// the first region is used.
    pub async fn create(
        &self,
        who: &Principal,
        appname: Option<&str>,
        region: Option<&str>,
    ) -> Result<Instance> {
        let name = match appname.map(str::trim).filter(|s| !s.is_empty()) {
            Some(n) => Some(AppName::parse(n)?),
            None => None,
        };
        let region = self.resolve_region(region)?;
        let owner_id = who.id();
        let limits = self.limits;
        let by = who.clone();
        let inst = self
            .store
            .write_async(move |w| {
                // In the creating transaction: two creates at once cannot both pass.
                check_quota(w, &limits, owner_id, |u| QuotaUse {
                    apps: u.apps + 1,
                    memory_mb: u.memory_mb + u64::from(domain::DEFAULT_MEMORY_MB),
                    // A new app runs one web process.
                    replicas: u.replicas + 1,
                })?;
                let name = match name {
                    Some(n) => {
                        if w.instance(n.as_str())?.is_some() {
                            return Err(Error::Conflict(format!(
                                "app name '{n}' is already taken"
                            )));
                        }
                        n.into_string()
                    }
                    None => loop {
                        let n = names::generate();
                        if w.instance(&n)?.is_none() {
                            break n;
                        }
                    },
                };
                let node_id = w
                    .nodes()?
                    .into_iter()
                    .find(|n| n.region_id == region.id)
                    .map(|n| n.id)
                    .ok_or_else(|| {
                        Error::Unavailable(format!(
                            "region '{}' has no node to run apps on",
                            region.name
                        ))
                    })?;
                let inst = Instance {
                    name,
                    owner_id,
                    region_id: region.id,
                    node_id,
                    status: InstanceStatus::Created,
                    release: None,
                    memory_mb: domain::DEFAULT_MEMORY_MB,
                    cpu: domain::DEFAULT_CPU,
                    health_path: Default::default(),
                    deploy_branch: Default::default(),
                    port: domain::DEFAULT_PORT,
                    env: Default::default(),
                    secret_env: Default::default(),
                    domains: vec![],
                    created_at: domain::now(),
                    volumes: Vec::new(),
                    read_only_rootfs: false,
                    formation: Default::default(),
                };
                w.put_instance(&inst)?;
                w.audit(by.audit(
                    AuditAction::AppCreate,
                    Some(&inst.name),
                    format!("in region '{}'", region.name),
                ))?;
                Ok(inst)
            })
            .await?;
        self.create_resources(who, &inst).await?;
        Ok(inst)
    }

    /// Tells every registered resource that the app's record changed.
    fn changed(&self, inst: &Instance) {
        for r in locks::read(&self.resources).iter() {
            r.changed(inst);
        }
    }

    /// Runs every registered `create` hook; if one fails, undoes the others and the record, so
    /// that a failed creation leaves nothing behind.
    async fn create_resources(&self, who: &Principal, inst: &Instance) -> Result<()> {
        let resources: Vec<_> = locks::read(&self.resources).clone();
        for (i, r) in resources.iter().enumerate() {
            if let Err(e) = r.create(inst).await {
                for done in resources[..i].iter().rev() {
                    if let Err(undo) = done.remove(inst).await {
                        tracing::error!(app = %inst.name, error = %undo, "undoing an app's resources");
                    }
                }
                let name = inst.name.clone();
                // The creation was logged: so is its undoing.
                let undone = who.audit(
                    AuditAction::AppDelete,
                    Some(&name),
                    format!("creation undone: {e}"),
                );
                self.store
                    .write_async(move |w| {
                        w.audit(undone)?;
                        w.delete_instance(&name)
                    })
                    .await?;
                return Err(e);
            }
        }
        Ok(())
    }

    /// A region by id (`"1"`) or by name (case-insensitive); the first region when absent.
    pub fn resolve_region(&self, region: Option<&str>) -> Result<Region> {
        let regions = self.store.read(|r| r.regions())?;
        match region.map(str::trim).filter(|s| !s.is_empty()) {
            None => regions
                .into_iter()
                .next()
                .ok_or_else(|| Error::Unavailable("no region is configured".into())),
            Some(want) => regions
                .into_iter()
                .find(|r| r.id.to_string() == want || r.name.eq_ignore_ascii_case(want))
                .ok_or_else(|| {
                    Error::invalid(
                        "region",
                        format!("unknown region '{want}'; see GET /instances/regions"),
                    )
                }),
        }
    }

    pub fn regions(&self) -> Result<Vec<Region>> {
        self.store.read(|r| r.regions())
    }

    /// The caller's apps; with `all`, an admin gets everyone's.
    pub fn list(&self, who: &Principal, all: bool, slice: Slice) -> Result<Page<Instance>> {
        if all && who.is_admin() {
            self.store.read(|r| r.instances_where(slice, |_| true))
        } else {
            self.store.read(|r| r.instances_of(who.id(), slice))
        }
    }

    /// The caller's apps in one region (admins: everyone's with `all`).
    pub fn list_in_region(
        &self,
        who: &Principal,
        region: &str,
        all: bool,
        slice: Slice,
    ) -> Result<Page<Instance>> {
        let region = self
            .resolve_region(Some(region))
            .map_err(|_| Error::NotFound(format!("no region '{region}'")))?;
        let (uid, everyone) = (who.id(), all && who.is_admin());
        self.store.read(|r| {
            r.instances_where(slice, |i| {
                i.region_id == region.id && (everyone || i.owner_id == uid)
            })
        })
    }

    /// One app, if the caller may see it. Others' apps are `NotFound`, exactly like missing ones.
    pub fn get(&self, who: &Principal, name: &str) -> Result<Instance> {
        let not_found = || Error::NotFound(format!("no app named '{name}'"));
        let name = AppName::parse(name)?;
        let inst = self
            .store
            .read(|r| r.instance(name.as_str()))?
            .ok_or_else(not_found)?;
        if inst.owner_id == who.id() || who.is_admin() {
            Ok(inst)
        } else {
            Err(not_found())
        }
    }

    /// Deletes an app. The intent is recorded first, in one transaction (status `deleting`:
    /// from then on nothing restarts, routes or changes the app); then every registered
    /// resource goes (containers, images, volumes, repository, routes), and the record last. A
    /// crash in between leaves the intent, which the next start (or another DELETE) finishes.
    pub async fn delete(&self, who: &Principal, name: &str) -> Result<()> {
        let inst = self.get(who, name)?;
        let name = inst.name.clone();
        let audit = who.audit(AuditAction::AppDelete, Some(&name), "");
        let inst = self
            .store
            .write_async(move |w| {
                let mut inst = w
                    .instance(&name)?
                    .ok_or_else(|| Error::NotFound(format!("no app named '{name}'")))?;
                inst.status = InstanceStatus::Deleting;
                w.put_instance(&inst)?;
                w.audit(audit)?;
                Ok(inst)
            })
            .await?;
        self.changed(&inst);
        self.finish_deletion(&inst).await
    }

    /// Removes what a deleting app holds, then its record.
    async fn finish_deletion(&self, inst: &Instance) -> Result<()> {
        let resources: Vec<_> = locks::read(&self.resources).clone();
        for r in resources {
            r.remove(inst).await?;
        }
        let name = inst.name.clone();
        self.store
            .write_async(move |w| w.delete_instance(&name))
            .await
    }

    /// Finishes every deletion a stop of Scalefog cut short. An app whose deletion fails again
    /// stays `deleting` (nothing runs or routes) and is named in the log.
    pub async fn finish_deletions(&self) {
        let deleting = match self
            .store
            .read(|r| r.instances_where(Slice::ALL, |i| i.status == InstanceStatus::Deleting))
        {
            Ok(page) => page.items,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the apps being deleted");
                return;
            }
        };
        for inst in deleting {
            tracing::info!(app = %inst.name, "finishing a deletion cut short by a stop");
            self.changed(&inst);
            if let Err(e) = self.finish_deletion(&inst).await {
                tracing::warn!(app = %inst.name, error = %e, "cannot finish deleting an app");
            }
        }
    }

    /// The installation's abuse limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }
}

/// Refuses a change that would take `owner`'s use beyond their quota: `after` says what the
/// change makes of their current use. Call it in the transaction that makes the change, so
/// concurrent changes are counted one after the other.
pub fn check_quota(
    w: &Writer,
    limits: &Limits,
    owner: UserId,
    after: impl FnOnce(QuotaUse) -> QuotaUse,
) -> Result<()> {
    let user = w
        .user(owner)?
        .ok_or_else(|| Error::NotFound(format!("no user '{owner}'")))?;
    let before = w.quota_use(owner)?;
    limits.check(&user.quota, &user.username, before, after(before))
}
