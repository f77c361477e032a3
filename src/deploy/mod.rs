//! The deploy engine: a pushed commit → Docker image → health-checked container → switch.
//!
//! Every operation that changes what serves an app (push, rollback, config change, restart,
//! start) ends the same way ([`Deployer::launch`] then [`Deployer::switch`]): a new container is
//! started and must pass its health check while the old one keeps serving; then one store
//! transaction makes it current, the route table points at it, and the old container is stopped
//! after a grace period. A failure at any point removes what the attempt created and leaves the
//! previous release serving.
//!
//! Control: one operation per app at a time (a per-app lock; a second push waits and says so),
//! builds of different apps run concurrently up to `max_concurrent_deploys`, and every operation
//! can be cancelled and times out after `deploy_timeout`.
//!
//! [`reconcile`] rebuilds the route table from Docker at start and keeps the store in step with
//! Docker events.

mod health;
pub mod reconcile;
mod source;

use crate::apps::{AppResources, Links};
use crate::docker::{
    DockerNode, ImageInfo, LABEL, LABEL_APP, LABEL_INSTALL, LABEL_NODE, LABEL_RELEASE, RunSpec,
};
use crate::domain::{
    self, Build, BuildStatus, Deployment, Error, Instance, InstanceStatus, Release, ReleaseStatus,
    Result,
};
use crate::push::{Progress, Push, PushHandler};
use crate::routing::{RouteTable, Target};
use crate::store::{Page, Slice, Store};
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedMutexGuard, Semaphore};
use tokio_util::sync::CancellationToken;

/// Releases whose images are kept; older images are pruned (their releases stay listed, but can
/// no longer be rolled back to).
pub const KEEP_RELEASE_IMAGES: usize = 5;
/// Process limit inside every app container (a fork bomb stays inside its box).
const PIDS_LIMIT: i64 = 512;
/// How long the old container keeps running after the switch, so requests it already accepted
/// finish; then it gets SIGTERM and this many seconds before SIGKILL.
const RETIRE_GRACE: Duration = Duration::from_secs(2);
const STOP_TIMEOUT_S: i32 = 10;

#[derive(Debug, Clone)]
pub struct DeploySettings {
    pub max_concurrent: usize,
    pub timeout: Duration,
    pub health_timeout: Duration,
    /// Identifies this installation's objects in a shared Docker engine.
    pub install_id: String,
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

/// Sends lines to the pusher (or nobody) and keeps them for the build log. Config values never
/// pass through here: only keys are ever mentioned.
#[derive(Clone)]
pub struct Reporter {
    progress: Option<Progress>,
    log: Arc<Mutex<String>>,
}

impl Reporter {
    fn new(progress: Option<Progress>) -> Reporter {
        Reporter {
            progress,
            log: Arc::default(),
        }
    }
    pub fn line(&self, text: impl Into<String>) {
        let text = text.into();
        {
            let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
            log.push_str(&text);
            log.push('\n');
        }
        if let Some(p) = &self.progress {
            p.line(text);
        }
    }
    fn text(&self) -> String {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// What an attempt created, so that a failure, a cancel or a timeout can remove it.
#[derive(Default)]
struct Attempt {
    containers: Vec<String>,
    image: Option<String>,
}

type SharedAttempt = Arc<Mutex<Attempt>>;

/// What a successful launch switches to.
struct Switch {
    release: u32,
    /// A new release record to add (deploys, rollbacks, config changes), or `None` when the
    /// current release just gets a new container (restart, start).
    new_release: Option<Release>,
    container: String,
    addr: std::net::SocketAddr,
    /// A build to mark succeeded, with its log.
    build: Option<(u64, String)>,
}

struct Inner {
    store: Store,
    docker: Arc<dyn DockerNode>,
    routes: RouteTable,
    links: Links,
    settings: DeploySettings,
    /// One operation per app at a time.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Concurrent builds across apps.
    slots: Arc<Semaphore>,
    /// The cancel switch of each app's running operation.
    active: Mutex<HashMap<String, CancellationToken>>,
    /// Logs of builds in progress, readable before they are stored.
    live_logs: Mutex<HashMap<u64, Reporter>>,
    /// Old containers in their grace period: reconcile leaves them alone.
    retiring: Mutex<HashSet<String>>,
}

/// The deploy engine. Cheap to clone.
#[derive(Clone)]
pub struct Deployer(Arc<Inner>);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// An error as the pusher and the build log may see it: an internal cause goes to the server log
/// only.
fn shown(e: &Error) -> String {
    match e {
        Error::Internal(cause) => {
            tracing::error!(error = format!("{cause:#}"), "deploy failed");
            "internal error (the server log has the details)".into()
        }
        other => other.to_string(),
    }
}

/// Whether a build failed because an image layer it used as cache was deleted meanwhile.
/// Docker says so in one of two ways, depending on the step it was at.
fn lost_cached_layer(message: &str) -> bool {
    message.contains("unknown parent image ID")
        || (message.contains("failed to get destination image")
            && message.contains("No such image: sha256:"))
}

fn short(sha: &str) -> &str {
    &sha[..7.min(sha.len())]
}

/// Checks a config var name: shell-style, and not one Scalefog sets itself.
pub fn valid_env_key(key: &str) -> Result<()> {
    let ok = !key.is_empty()
        && key.len() <= 256
        && !key.as_bytes()[0].is_ascii_digit()
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !ok {
        return Err(Error::invalid(
            "env",
            format!(
                "invalid config var name '{key}': use letters, digits and '_', not starting with a digit"
            ),
        ));
    }
    if key == "PORT" {
        return Err(Error::invalid(
            "env",
            "PORT is reserved: Scalefog sets it to the port the app must listen on",
        ));
    }
    Ok(())
}

/// What `PATCH /v1/instances/{name}` may change.
#[derive(Debug, Default, Clone)]
pub struct Settings {
    pub memory_mb: Option<u32>,
    pub cpu: Option<f64>,
    pub health_path: Option<String>,
    pub deploy_branch: Option<String>,
}

impl Settings {
    fn validate(&self) -> Result<()> {
        if let Some(m) = self.memory_mb
            && !(16..=1_048_576).contains(&m)
        {
            return Err(Error::invalid(
                "memory",
                "memory must be a whole number of MiB from 16 to 1048576",
            ));
        }
        if let Some(c) = self.cpu
            && !(c.is_finite() && (0.01..=256.0).contains(&c))
        {
            return Err(Error::invalid(
                "cpu",
                "cpu must be a number of cores from 0.01 to 256",
            ));
        }
        if let Some(p) = &self.health_path
            && (!p.starts_with('/')
                || p.len() > 512
                || p.bytes()
                    .any(|b| b.is_ascii_whitespace() || b.is_ascii_control()))
        {
            return Err(Error::invalid(
                "health_path",
                "health_path must start with '/' and contain no spaces, e.g. /healthz",
            ));
        }
        if let Some(b) = &self.deploy_branch {
            let ok = !b.is_empty()
                && b.len() <= 200
                && !b.starts_with(['-', '/', '.'])
                && !b.ends_with(['/', '.'])
                && !b.contains("..")
                && !b.contains("//")
                && !b.ends_with(".lock")
                && b.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"-_./".contains(&c));
            if !ok {
                return Err(Error::invalid(
                    "deploy_branch",
                    "deploy_branch must be a branch name like main or release/prod",
                ));
            }
        }
        Ok(())
    }
}

impl Deployer {
    pub fn new(
        store: Store,
        docker: Arc<dyn DockerNode>,
        routes: RouteTable,
        links: Links,
        settings: DeploySettings,
    ) -> Deployer {
        Deployer(Arc::new(Inner {
            store,
            docker,
            routes,
            links,
            slots: Arc::new(Semaphore::new(settings.max_concurrent.max(1))),
            settings,
            locks: Mutex::default(),
            active: Mutex::default(),
            live_logs: Mutex::default(),
            retiring: Mutex::default(),
        }))
    }

    pub fn docker(&self) -> &dyn DockerNode {
        self.0.docker.as_ref()
    }

    /// Label filters selecting this installation's objects (optionally one app's).
    fn filters(&self, app: Option<&str>) -> Vec<String> {
        let mut f = vec![
            LABEL.to_string(),
            format!("{LABEL_INSTALL}={}", self.0.settings.install_id),
        ];
        if let Some(app) = app {
            f.push(format!("{LABEL_APP}={app}"));
        }
        f
    }

    fn labels(&self, app: &Instance, release: Option<u32>) -> HashMap<String, String> {
        let mut l = HashMap::from([
            (LABEL.to_string(), "1".to_string()),
            (
                LABEL_INSTALL.to_string(),
                self.0.settings.install_id.clone(),
            ),
            (LABEL_APP.to_string(), app.name.clone()),
            (LABEL_NODE.to_string(), app.node_id.to_string()),
        ]);
        if let Some(r) = release {
            l.insert(LABEL_RELEASE.to_string(), r.to_string());
        }
        l
    }

    fn app_lock(&self, app: &str) -> Arc<tokio::sync::Mutex<()>> {
        lock(&self.0.locks)
            .entry(app.to_string())
            .or_default()
            .clone()
    }

    /// Takes the app's lock, telling `rep` when it has to wait.
    async fn acquire(&self, app: &str, rep: &Reporter) -> OwnedMutexGuard<()> {
        let l = self.app_lock(app);
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

    fn instance(&self, name: &str) -> Result<Instance> {
        self.0
            .store
            .read(|r| r.instance(name))?
            .ok_or_else(|| Error::NotFound(format!("no app named '{name}'")))
    }

    /// Runs `op` as the app's current operation: cancellable, bounded by `deploy_timeout`, and
    /// on any failure everything the attempt created is removed.
    async fn controlled<T>(
        &self,
        app: &str,
        op: impl FnOnce(SharedAttempt) -> BoxFuture<'static, Result<T>>,
    ) -> Result<T> {
        let token = CancellationToken::new();
        lock(&self.0.active).insert(app.to_string(), token.clone());
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
        lock(&self.0.active).remove(app);
        if result.is_err() {
            let left = std::mem::take(&mut *lock(&attempt));
            for c in left.containers {
                if let Err(e) = self.0.docker.remove_container(&c).await {
                    tracing::warn!(container = %c, error = %e, "cannot remove a failed container; reconcile will");
                }
            }
            if let Some(image) = left.image {
                let _ = self.0.docker.remove_image(&image).await;
            }
        }
        result
    }

    /// Cancels the app's running deploy (or other operation).
    pub fn cancel(&self, app: &Instance) -> Result<()> {
        match lock(&self.0.active).get(&app.name) {
            Some(t) => {
                t.cancel();
                Ok(())
            }
            None => Err(Error::NotFound(format!(
                "no deploy of '{}' is running",
                app.name
            ))),
        }
    }

    /// Builds and releases `sha` (a commit in `repo_dir`, visible with `git_env`).
    #[allow(clippy::too_many_arguments)]
    pub async fn deploy_commit(
        &self,
        app_name: &str,
        user: &str,
        branch: &str,
        sha: &str,
        repo_dir: &Path,
        git_env: &[(String, String)],
        progress: Option<Progress>,
    ) -> Result<Release> {
        if !source::valid_commit(sha) {
            return Err(Error::invalid("commit", "not a full commit id"));
        }
        let rep = Reporter::new(progress);
        let _guard = self.acquire(app_name, &rep).await;
        let _slot = match self.0.slots.clone().try_acquire_owned() {
            Ok(s) => s,
            Err(_) => {
                rep.line("-----> All build slots are busy; waiting for one");
                self.0
                    .slots
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| Error::Unavailable("scalefog is shutting down".into()))?
            }
        };
        let app = self.instance(app_name)?;
        let prior_status = app.status;
        let build = {
            let (name, sha, user, branch) = (
                app.name.clone(),
                sha.to_string(),
                user.to_string(),
                branch.to_string(),
            );
            self.0
                .store
                .write_async(move |w| {
                    let build = Build {
                        id: w.next_id("build")?,
                        app: name.clone(),
                        commit: sha,
                        branch,
                        status: BuildStatus::Running,
                        release: None,
                        created_by: user,
                        started_at: domain::now(),
                        finished_at: None,
                        error: None,
                    };
                    w.put_build(&build)?;
                    if let Some(mut i) = w.instance(&name)? {
                        i.status = InstanceStatus::Building;
                        w.put_instance(&i)?;
                    }
                    Ok(build)
                })
                .await?
        };
        lock(&self.0.live_logs).insert(build.id, rep.clone());
        let this = self.clone();
        let (r2, b2, user2) = (rep.clone(), build.clone(), user.to_string());
        let (repo_dir, git_env) = (repo_dir.to_path_buf(), git_env.to_vec());
        let result = self
            .controlled(&app.name, move |attempt| {
                async move {
                    this.build_and_release(&b2, &user2, &repo_dir, &git_env, &r2, attempt)
                        .await
                }
                .boxed()
            })
            .await;
        lock(&self.0.live_logs).remove(&build.id);
        match result {
            Ok(release) => {
                rep.line(format!("=====> Deployed: {}", self.0.links.url(&app.name)));
                Ok(release)
            }
            Err(e) => {
                let message = shown(&e);
                rep.line(format!(" !     {message}"));
                rep.line(if app.release.is_some() {
                    format!(
                        " !     Push rejected: {} keeps serving what it served before",
                        app.name
                    )
                } else {
                    format!(" !     Push rejected: {} has no release yet", app.name)
                });
                let status = if matches!(e, Error::Cancelled(_)) {
                    BuildStatus::Cancelled
                } else {
                    BuildStatus::Failed
                };
                let (id, log, msg, name) = (build.id, rep.text(), message, app.name.clone());
                let recorded = self
                    .0
                    .store
                    .write_async(move |w| {
                        if let Some(mut b) = w.build(id)? {
                            b.status = status;
                            b.finished_at = Some(domain::now());
                            b.error = Some(msg.lines().next().unwrap_or("").to_string());
                            w.put_build(&b)?;
                        }
                        w.put_build_log(id, &log)?;
                        if let Some(mut i) = w.instance(&name)? {
                            i.status = if i.release.is_none() {
                                InstanceStatus::Failed
                            } else if prior_status == InstanceStatus::Building {
                                InstanceStatus::Running
                            } else {
                                prior_status
                            };
                            w.put_instance(&i)?;
                        }
                        Ok(())
                    })
                    .await;
                if let Err(se) = recorded {
                    tracing::error!(error = %se, build = build.id, "cannot record a failed build");
                }
                Err(match e {
                    Error::Internal(_)
                    | Error::Unavailable(_)
                    | Error::DeployFailed(_)
                    | Error::Cancelled(_) => e,
                    other => Error::DeployFailed(other.to_string()),
                })
            }
        }
    }

    async fn build_and_release(
        &self,
        build: &Build,
        user: &str,
        repo_dir: &Path,
        git_env: &[(String, String)],
        rep: &Reporter,
        attempt: SharedAttempt,
    ) -> Result<Release> {
        let app = self.instance(&build.app)?;
        let sha = build.commit.as_str();
        rep.line(format!("-----> Building {} ({})", app.name, short(sha)));
        let dockerfile = source::read_dockerfile(repo_dir, git_env, sha).await?;
        let version = self.0.store.read(|r| r.last_release_number(&app.name))? + 1;
        let tag = format!("scalefog/{}:v{version}", app.name);
        lock(&attempt).image = Some(tag.clone());
        let labels = self.labels(&app, Some(version));
        // The labels go into the image through the build's own Dockerfile when they can (one
        // step), else as build options (one step each).
        let (labelled, build_file, build_labels) =
            match source::labelled_dockerfile(&dockerfile, &labels) {
                Some(d) => (Some(d), source::BUILD_DOCKERFILE, HashMap::new()),
                None => (None, "Dockerfile", labels),
            };
        let out = |line: &str| rep.line(format!("       {line}"));
        let mut first_try = true;
        let archived = loop {
            let (child, context) = source::archive(repo_dir, git_env, sha, labelled.as_deref())?;
            let built = self
                .0
                .docker
                .build(&tag, build_file, build_labels.clone(), context, &out)
                .await;
            let archived = child.wait_with_output().await;
            match built {
                // Builds of different apps share cached layers; deleting an image (another
                // app's, or `docker image prune`) can remove a layer this build was about to
                // build on. Building again rebuilds that layer.
                Err(Error::DeployFailed(msg)) if first_try && lost_cached_layer(&msg) => {
                    first_try = false;
                    rep.line("-----> A cached layer was deleted during the build; building again");
                }
                built => {
                    built?;
                    break archived;
                }
            }
        };
        match archived {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                return Err(Error::DeployFailed(format!(
                    "git archive of {} failed: {}",
                    short(sha),
                    String::from_utf8_lossy(&o.stderr).trim()
                )));
            }
            Err(e) => return Err(Error::internal(format!("git archive: {e}"))),
        }
        rep.line(format!("-----> Releasing v{version}"));
        let release = Release {
            app: app.name.clone(),
            version,
            image: tag,
            commit: sha.to_string(),
            env: app.env.clone(),
            created_by: user.to_string(),
            created_at: domain::now(),
            status: ReleaseStatus::Current,
            description: format!("deploy {}", short(sha)),
            build_id: Some(build.id),
        };
        let (container, addr) = self.launch(&app, &release, rep, &attempt).await?;
        self.switch(
            &app,
            Switch {
                release: version,
                new_release: Some(release.clone()),
                container,
                addr,
                build: Some((build.id, rep.text())),
            },
            &attempt,
        )
        .await?;
        self.prune_images(&app.name).await;
        Ok(release)
    }

    /// Starts a container for `release` and waits for it to pass its health check. The container
    /// is recorded in `attempt`, so a failure removes it.
    async fn launch(
        &self,
        app: &Instance,
        release: &Release,
        rep: &Reporter,
        attempt: &SharedAttempt,
    ) -> Result<(String, std::net::SocketAddr)> {
        let mut env = vec![("PORT".to_string(), app.port.to_string())];
        env.extend(release.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        let spec = RunSpec {
            name: format!(
                "scalefog-{}-v{}-{}",
                app.name,
                release.version,
                hex::encode(rand::random::<[u8; 3]>())
            ),
            image: release.image.clone(),
            env,
            port: app.port,
            memory_mb: app.memory_mb,
            cpu: app.cpu,
            pids_limit: PIDS_LIMIT,
            labels: self.labels(app, Some(release.version)),
        };
        let id = self.0.docker.run(&spec).await?;
        lock(attempt).containers.push(id.clone());
        let checked = health::wait_healthy(
            self.0.docker.as_ref(),
            &id,
            app.port,
            &app.health_path,
            self.0.settings.health_timeout,
            rep,
        )
        .await;
        match checked {
            Ok(info) => {
                let addr = info
                    .published()
                    .ok_or_else(|| Error::internal("the new container has no published port"))?;
                rep.line("-----> Health check passed");
                Ok((id, addr))
            }
            Err(e) => {
                rep.line(format!(" !     {}", shown(&e)));
                rep.line(" !     Last output of the new container:");
                let mut tail = self.0.docker.logs(&id, Some(30), false);
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

    /// Makes a healthy container current: one store transaction, then the route table, then the
    /// previous container is retired after a grace period.
    async fn switch(&self, app: &Instance, sw: Switch, attempt: &SharedAttempt) -> Result<()> {
        let name = app.name.clone();
        let deployment = Deployment {
            app: name.clone(),
            release: sw.release,
            container: sw.container.clone(),
        };
        let (new_release, build) = (sw.new_release.clone(), sw.build.clone());
        let release = sw.release;
        let previous = self
            .0
            .store
            .write_async(move |w| {
                let mut inst = w
                    .instance(&name)?
                    .ok_or_else(|| Error::NotFound(format!("app '{name}' was deleted")))?;
                if let Some(r) = &new_release {
                    if let Some(cur) = inst.release
                        && let Some(mut old) = w.release(&name, cur)?
                    {
                        old.status = ReleaseStatus::Superseded;
                        w.put_release(&old)?;
                    }
                    w.put_release(r)?;
                    inst.env = r.env.clone();
                }
                if let Some((id, log)) = &build {
                    if let Some(mut b) = w.build(*id)? {
                        b.status = BuildStatus::Succeeded;
                        b.release = Some(release);
                        b.finished_at = Some(domain::now());
                        w.put_build(&b)?;
                    }
                    w.put_build_log(*id, log)?;
                }
                let previous = w.deployment(&name)?;
                w.put_deployment(&deployment)?;
                inst.release = Some(release);
                inst.status = InstanceStatus::Running;
                w.put_instance(&inst)?;
                Ok(previous)
            })
            .await?;
        // Committed: the new container is no longer the attempt's to remove.
        lock(attempt).containers.clear();
        lock(attempt).image = None;
        self.0.routes.set_app(&app.name, Target::Serving(sw.addr));
        if let Some(prev) = previous
            && prev.container != sw.container
        {
            self.retire(prev.container);
        }
        Ok(())
    }

    /// Stops and removes an old container after the grace period, in the background.
    fn retire(&self, container: String) {
        lock(&self.0.retiring).insert(container.clone());
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(RETIRE_GRACE).await;
            let _ = this.0.docker.stop(&container, STOP_TIMEOUT_S).await;
            if let Err(e) = this.0.docker.remove_container(&container).await {
                tracing::warn!(%container, error = %e, "cannot remove a retired container; reconcile will");
            }
            lock(&this.0.retiring).remove(&container);
        });
    }

    /// Removes images of releases older than the last [`KEEP_RELEASE_IMAGES`]. Best effort.
    async fn prune_images(&self, app: &str) {
        let keep: HashSet<String> = match self.0.store.read(|r| {
            r.releases_of(
                app,
                Slice {
                    offset: 0,
                    limit: KEEP_RELEASE_IMAGES as u64,
                },
            )
        }) {
            Ok(p) => p.items.into_iter().map(|r| r.image).collect(),
            Err(_) => return,
        };
        let Ok(images) = self.0.docker.images(&self.filters(Some(app))).await else {
            return;
        };
        for img in images {
            for tag in img.tags.iter().filter(|t| !keep.contains(*t)) {
                if let Err(e) = self.0.docker.remove_image(tag).await {
                    tracing::warn!(%tag, error = %e, "cannot prune an old image");
                }
            }
        }
    }

    /// Runs `op` under the app's lock as a controlled operation.
    async fn locked<T: Send + 'static>(
        &self,
        app: &str,
        op: impl FnOnce(Deployer, Instance, SharedAttempt) -> BoxFuture<'static, Result<T>>
        + Send
        + 'static,
    ) -> Result<T> {
        let _guard = self.app_lock(app).lock_owned().await;
        let inst = self.instance(app)?;
        let this = self.clone();
        self.controlled(app, move |attempt| op(this, inst, attempt))
            .await
    }

    /// Rolls back to `version`, or to the release before the current one: a new release with
    /// that release's image and config, switched to with no gap.
    pub async fn rollback(
        &self,
        app: &Instance,
        user: &str,
        version: Option<u32>,
    ) -> Result<Release> {
        let user = user.to_string();
        self.locked(&app.name, move |this, app, attempt| {
            async move {
                let current = app.release.ok_or_else(|| {
                    Error::Conflict(format!("'{}' has no release to roll back from", app.name))
                })?;
                let target = match version {
                    Some(v) => this.0.store.read(|r| r.release(&app.name, v))?.ok_or_else(
                        || Error::NotFound(format!("'{}' has no release v{v}", app.name)),
                    )?,
                    None => this
                        .0
                        .store
                        .read(|r| r.releases_of(&app.name, Slice::ALL))?
                        .items
                        .into_iter()
                        .find(|r| r.version < current)
                        .ok_or_else(|| {
                            Error::Conflict(format!(
                                "'{}' has no release before v{current}",
                                app.name
                            ))
                        })?,
                };
                if !this.0.docker.image_exists(&target.image).await? {
                    return Err(Error::Conflict(format!(
                        "the image of v{} was pruned (only the last {KEEP_RELEASE_IMAGES} releases keep theirs); deploy it again instead",
                        target.version
                    )));
                }
                let version = this.0.store.read(|r| r.last_release_number(&app.name))? + 1;
                let release = Release {
                    version,
                    created_by: user,
                    created_at: domain::now(),
                    status: ReleaseStatus::Current,
                    description: format!("rollback to v{}", target.version),
                    build_id: None,
                    ..target
                };
                this.release_and_switch(&app, release, &attempt).await
            }
            .boxed()
        })
        .await
    }

    async fn release_and_switch(
        &self,
        app: &Instance,
        release: Release,
        attempt: &SharedAttempt,
    ) -> Result<Release> {
        let rep = Reporter::new(None);
        let (container, addr) = self.launch(app, &release, &rep, attempt).await?;
        self.switch(
            app,
            Switch {
                release: release.version,
                new_release: Some(release.clone()),
                container,
                addr,
                build: None,
            },
            attempt,
        )
        .await?;
        Ok(release)
    }

    /// Sets (`Some`) and unsets (`None`) config vars. With a release, this makes a new release
    /// from the current image and switches to it with no gap (a stopped app stays stopped and
    /// gets it at its next start); without one, the vars wait for the first deploy.
    pub async fn set_env(
        &self,
        app: &Instance,
        user: &str,
        changes: Vec<(String, Option<String>)>,
    ) -> Result<Instance> {
        for (k, v) in &changes {
            valid_env_key(k)?;
            if let Some(v) = v
                && (v.len() > 32 * 1024 || v.contains('\0'))
            {
                return Err(Error::invalid(
                    "env",
                    format!("the value of {k} must be at most 32 KiB of text"),
                ));
            }
        }
        let user = user.to_string();
        self.locked(&app.name, move |this, app, attempt| {
            async move {
                let mut env = app.env.clone();
                let mut keys = Vec::new();
                for (k, v) in changes {
                    let changed = match v {
                        Some(v) => env.insert(k.clone(), v.clone()).as_ref() != Some(&v),
                        None => env.remove(&k).is_some(),
                    };
                    if changed {
                        keys.push(k);
                    }
                }
                if keys.is_empty() {
                    return Ok(app);
                }
                let current = match app.release {
                    Some(v) => this.0.store.read(|r| r.release(&app.name, v))?,
                    None => None,
                };
                let Some(current) = current else {
                    let name = app.name.clone();
                    return this
                        .0
                        .store
                        .write_async(move |w| {
                            let mut i = w
                                .instance(&name)?
                                .ok_or_else(|| Error::NotFound(format!("no app named '{name}'")))?;
                            i.env = env;
                            w.put_instance(&i)?;
                            Ok(i)
                        })
                        .await;
                };
                let version = this.0.store.read(|r| r.last_release_number(&app.name))? + 1;
                let release = Release {
                    version,
                    env,
                    created_by: user,
                    created_at: domain::now(),
                    status: ReleaseStatus::Current,
                    description: format!("config: {}", keys.join(", ")),
                    build_id: None,
                    ..current
                };
                if app.status == InstanceStatus::Running {
                    this.release_and_switch(&app, release, &attempt).await?;
                } else {
                    this.record_offline_release(&app, release).await?;
                }
                this.instance(&app.name)
            }
            .boxed()
        })
        .await
    }

    /// Records a release of an app that is not running: it takes effect at the next start.
    async fn record_offline_release(&self, app: &Instance, release: Release) -> Result<()> {
        let name = app.name.clone();
        let old = self
            .0
            .store
            .write_async(move |w| {
                let mut i = w
                    .instance(&name)?
                    .ok_or_else(|| Error::NotFound(format!("no app named '{name}'")))?;
                if let Some(cur) = i.release
                    && let Some(mut old) = w.release(&name, cur)?
                {
                    old.status = ReleaseStatus::Superseded;
                    w.put_release(&old)?;
                }
                w.put_release(&release)?;
                i.env = release.env.clone();
                i.release = Some(release.version);
                w.put_instance(&i)?;
                let old = w.deployment(&name)?;
                w.delete_deployment(&name)?;
                Ok(old)
            })
            .await?;
        if let Some(d) = old {
            self.0.docker.remove_container(&d.container).await?;
        }
        Ok(())
    }

    /// Restarts with no gap: a new container of the current release, health-checked, switched
    /// to; then the old one is stopped.
    pub async fn restart(&self, app: &Instance) -> Result<Instance> {
        self.locked(&app.name, move |this, app, attempt| {
            async move {
                let release = this.current_release(&app)?;
                this.relaunch(&app, &release, &attempt).await?;
                this.instance(&app.name)
            }
            .boxed()
        })
        .await
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

    async fn relaunch(
        &self,
        app: &Instance,
        release: &Release,
        attempt: &SharedAttempt,
    ) -> Result<()> {
        let rep = Reporter::new(None);
        let (container, addr) = self.launch(app, release, &rep, attempt).await?;
        self.switch(
            app,
            Switch {
                release: release.version,
                new_release: None,
                container,
                addr,
                build: None,
            },
            attempt,
        )
        .await
    }

    /// Starts the current release: its stopped container when it still exists, else a new one.
    pub async fn start(&self, app: &Instance) -> Result<Instance> {
        self.locked(&app.name, move |this, app, attempt| {
            async move {
                let release = this.current_release(&app)?;
                let dep = this.0.store.read(|r| r.deployment(&app.name))?;
                let existing = match &dep {
                    Some(d) => this.0.docker.inspect(&d.container).await?,
                    None => None,
                };
                match (dep, existing) {
                    (Some(d), Some(info))
                        if info.running() && app.status == InstanceStatus::Running =>
                    {
                        let _ = d;
                        Ok(app)
                    }
                    (Some(d), Some(_)) if d.release == release.version => {
                        this.0.docker.start(&d.container).await?;
                        let rep = Reporter::new(None);
                        let checked = health::wait_healthy(
                            this.0.docker.as_ref(),
                            &d.container,
                            app.port,
                            &app.health_path,
                            this.0.settings.health_timeout,
                            &rep,
                        )
                        .await;
                        let info = match checked {
                            Ok(info) => info,
                            Err(e) => {
                                // Leave it stopped, as it was.
                                let _ = this.0.docker.stop(&d.container, STOP_TIMEOUT_S).await;
                                return Err(e);
                            }
                        };
                        let addr = info.published().ok_or_else(|| {
                            Error::internal("the container has no published port")
                        })?;
                        let inst = this.set_status(&app.name, InstanceStatus::Running).await?;
                        this.0.routes.set_app(&app.name, Target::Serving(addr));
                        Ok(inst)
                    }
                    _ => {
                        this.relaunch(&app, &release, &attempt).await?;
                        this.instance(&app.name)
                    }
                }
            }
            .boxed()
        })
        .await
    }

    async fn set_status(&self, app: &str, status: InstanceStatus) -> Result<Instance> {
        let name = app.to_string();
        self.0
            .store
            .write_async(move |w| {
                let mut i = w
                    .instance(&name)?
                    .ok_or_else(|| Error::NotFound(format!("no app named '{name}'")))?;
                i.status = status;
                w.put_instance(&i)?;
                Ok(i)
            })
            .await
    }

    /// Stops the app; it stays stopped across restarts of scalefog and of Docker (the restart
    /// policy `unless-stopped` honours an explicit stop).
    pub async fn stop(&self, app: &Instance) -> Result<Instance> {
        self.locked(&app.name, move |this, app, _| {
            async move {
                this.current_release(&app)?;
                // Record first: if we crash after it, reconcile stops the container.
                let inst = this.set_status(&app.name, InstanceStatus::Stopped).await?;
                this.0
                    .routes
                    .set_app(&app.name, Target::Unavailable("stopped".into()));
                if let Some(d) = this.0.store.read(|r| r.deployment(&app.name))? {
                    this.0.docker.stop(&d.container, STOP_TIMEOUT_S).await?;
                }
                Ok(inst)
            }
            .boxed()
        })
        .await
    }

    /// Changes memory, CPU, health path and deploy branch. New limits apply to the running
    /// container at once.
    pub async fn update_settings(&self, app: &Instance, s: Settings) -> Result<Instance> {
        s.validate()?;
        self.locked(&app.name, move |this, app, _| {
            async move {
                let memory = s.memory_mb.unwrap_or(app.memory_mb);
                let cpu = s.cpu.unwrap_or(app.cpu);
                if (memory != app.memory_mb || cpu != app.cpu)
                    && let Some(d) = this.0.store.read(|r| r.deployment(&app.name))?
                {
                    this.0
                        .docker
                        .update_limits(&d.container, memory, cpu)
                        .await?;
                }
                let name = app.name.clone();
                this.0
                    .store
                    .write_async(move |w| {
                        let mut i = w
                            .instance(&name)?
                            .ok_or_else(|| Error::NotFound(format!("no app named '{name}'")))?;
                        i.memory_mb = memory;
                        i.cpu = cpu;
                        if let Some(p) = s.health_path {
                            i.health_path = p;
                        }
                        if let Some(b) = s.deploy_branch {
                            i.deploy_branch = b;
                        }
                        w.put_instance(&i)?;
                        Ok(i)
                    })
                    .await
            }
            .boxed()
        })
        .await
    }

    pub fn releases(&self, app: &Instance, slice: Slice) -> Result<Page<Release>> {
        self.0.store.read(|r| r.releases_of(&app.name, slice))
    }

    pub fn builds(&self, app: &Instance, slice: Slice) -> Result<Page<Build>> {
        self.0.store.read(|r| r.builds_of(&app.name, slice))
    }

    /// A build and its log (live while it runs).
    pub fn build_log(&self, app: &Instance, id: &str) -> Result<(Build, String)> {
        let not_found = || Error::NotFound(format!("'{}' has no build {id}", app.name));
        let id: u64 = id.trim().parse().map_err(|_| not_found())?;
        let build = self
            .0
            .store
            .read(|r| r.build(id))?
            .filter(|b| b.app == app.name)
            .ok_or_else(not_found)?;
        if let Some(rep) = lock(&self.0.live_logs).get(&id) {
            return Ok((build, rep.text()));
        }
        let log = self.0.store.read(|r| r.build_log(id))?.unwrap_or_default();
        Ok((build, log))
    }

    /// The current container's output: the last `tail` lines, then new ones when `follow`.
    /// A followed stream outlives the container: when a deploy, rollback or restart replaces it,
    /// the stream carries on with the new container's output from its first line; it ends when
    /// the app's container stops without a successor.
    pub async fn logs(
        &self,
        app: &Instance,
        tail: Option<u64>,
        follow: bool,
    ) -> Result<BoxStream<'static, Result<String>>> {
        let d = self
            .0
            .store
            .read(|r| r.deployment(&app.name))?
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "'{}' has no container yet: push to deploy it",
                    app.name
                ))
            })?;
        // Fail early (503, 404) rather than inside the stream.
        if self.0.docker.inspect(&d.container).await?.is_none() {
            return Err(Error::NotFound(format!(
                "the container of '{}' is gone; restart the app",
                app.name
            )));
        }
        let stream = self.0.docker.logs(&d.container, tail, follow);
        if !follow {
            return Ok(stream);
        }
        struct Follow {
            this: Deployer,
            app: String,
            container: String,
            stream: BoxStream<'static, Result<String>>,
        }
        let state = Follow {
            this: self.clone(),
            app: app.name.clone(),
            container: d.container,
            stream,
        };
        Ok(futures_util::stream::unfold(state, |mut f| async move {
            loop {
                if let Some(item) = f.stream.next().await {
                    return Some((item, f));
                }
                // This container's output ended: it stopped, or was retired after a switch (the
                // store names its successor before the old one is stopped).
                let next = match f.this.0.store.read(|r| r.deployment(&f.app)) {
                    Ok(Some(d)) if d.container != f.container => d.container,
                    _ => return None,
                };
                f.stream = f.this.0.docker.logs(&next, None, true);
                f.container = next;
            }
        })
        .boxed())
    }

    /// Every image of this installation.
    pub async fn images(&self) -> Result<Vec<ImageInfo>> {
        self.0.docker.images(&self.filters(None)).await
    }

    /// Removes an app's containers, images and deploy records (the app record itself is removed
    /// by `apps`). A running deploy of the app is cancelled first.
    pub async fn remove_app(&self, name: &str) -> Result<()> {
        if let Some(t) = lock(&self.0.active).get(name) {
            t.cancel();
        }
        let _guard = self.app_lock(name).lock_owned().await;
        for c in self.0.docker.containers(&self.filters(Some(name))).await? {
            self.0.docker.remove_container(&c.id).await?;
        }
        for img in self.0.docker.images(&self.filters(Some(name))).await? {
            for tag in &img.tags {
                self.0.docker.remove_image(tag).await?;
            }
            // Untagged leftovers (a build interrupted before tagging) go by id.
            self.0.docker.remove_image(&img.id).await?;
        }
        let n = name.to_string();
        self.0
            .store
            .write_async(move |w| w.delete_deploy_records(&n))
            .await?;
        self.0.routes.remove_app(name);
        lock(&self.0.locks).remove(name);
        Ok(())
    }

    /// Which ref update of a push deploys, if any: the deploy branch, or `master` when the deploy
    /// branch is the default `main` and `master` is the only branch pushed.
    fn deploy_update<'p>(app: &Instance, push: &'p Push) -> Option<&'p crate::push::RefUpdate> {
        let branch = app.deploy_branch.as_str();
        push.updates
            .iter()
            .find(|u| u.branch() == Some(branch))
            .or_else(|| {
                let branches: Vec<_> = push.updates.iter().filter_map(|u| u.branch()).collect();
                (branch == "main" && branches == ["master"])
                    .then(|| push.updates.iter().find(|u| u.branch() == Some("master")))
                    .flatten()
            })
    }
}

impl PushHandler for Deployer {
    fn handle<'a>(&'a self, push: &'a Push, progress: &'a Progress) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let app = self.instance(&push.app.name)?;
            let Some(update) = Self::deploy_update(&app, push) else {
                progress.line(format!(
                    "-----> Not deploying: only pushes to '{}' deploy {}",
                    app.deploy_branch, app.name
                ));
                return Ok(());
            };
            if update.is_delete() {
                return Err(Error::DeployFailed(format!(
                    "deleting '{}', the deploy branch of {}, is not allowed",
                    app.deploy_branch, app.name
                )));
            }
            self.deploy_commit(
                &app.name,
                &push.user.username,
                update.branch().unwrap_or_default(),
                &update.new,
                &push.repo_dir,
                &push.git_env,
                Some(progress.clone()),
            )
            .await
            .map(|_| ())
        })
    }
}

impl AppResources for Deployer {
    fn remove<'a>(&'a self, app: &'a Instance) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.remove_app(&app.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::push::RefUpdate;

    fn app(branch: &str) -> Instance {
        Instance {
            name: "blog".into(),
            owner_id: 1,
            region_id: 1,
            node_id: 1,
            status: InstanceStatus::Created,
            release: None,
            memory_mb: 256,
            cpu: 1.0,
            health_path: "/".into(),
            deploy_branch: branch.into(),
            port: 5000,
            env: Default::default(),
            domains: vec![],
            created_at: 0,
        }
    }

    fn push(branches: &[&str]) -> Push {
        Push {
            id: "p".into(),
            app: app("main"),
            user: crate::domain::User {
                id: 1,
                username: "alice".into(),
                email: "a@example.com".into(),
                password_hash: String::new(),
                admin: false,
                created_at: 0,
            },
            updates: branches
                .iter()
                .map(|b| RefUpdate {
                    old: "0".repeat(40),
                    new: "a".repeat(40),
                    name: format!("refs/heads/{b}"),
                })
                .collect(),
            repo_dir: "/nonexistent".into(),
            git_env: vec![],
        }
    }

    #[test]
    fn the_deploy_branch_deploys_and_master_only_when_it_is_the_only_branch_pushed() {
        let pick = |a: &Instance, p: &Push| {
            Deployer::deploy_update(a, p).map(|u| u.branch().unwrap().to_string())
        };
        assert_eq!(
            pick(&app("main"), &push(&["main", "dev"])).as_deref(),
            Some("main")
        );
        assert_eq!(
            pick(&app("main"), &push(&["master"])).as_deref(),
            Some("master")
        );
        assert_eq!(pick(&app("main"), &push(&["master", "dev"])), None);
        assert_eq!(pick(&app("prod"), &push(&["master"])), None);
        assert_eq!(
            pick(&app("prod"), &push(&["prod"])).as_deref(),
            Some("prod")
        );
    }

    #[test]
    fn a_build_that_lost_its_cached_parent_layer_is_recognised_for_a_second_try() {
        assert!(lost_cached_layer(
            "failed to export image: failed to set parent sha256:fe04: unknown parent image ID sha256:fe04"
        ));
        assert!(lost_cached_layer(
            "failed to get destination image \"sha256:def8\": No such image: sha256:def8"
        ));
        assert!(!lost_cached_layer(
            "The command '/bin/sh -c make' returned a non-zero code: 2"
        ));
    }

    #[test]
    fn config_var_names_are_checked_and_port_is_reserved() {
        assert!(valid_env_key("DATABASE_URL").is_ok());
        assert!(valid_env_key("_x1").is_ok());
        for bad in ["", "1X", "A-B", "A B", "PORT"] {
            assert!(valid_env_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn settings_out_of_range_name_their_field() {
        let field = |s: Settings| match s.validate() {
            Err(Error::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        let memory = Settings {
            memory_mb: Some(8),
            ..Default::default()
        };
        assert_eq!(field(memory), "memory");
        let cpu = Settings {
            cpu: Some(f64::NAN),
            ..Default::default()
        };
        assert_eq!(field(cpu), "cpu");
        let path = Settings {
            health_path: Some("/a b".into()),
            ..Default::default()
        };
        assert_eq!(field(path), "health_path");
        for b in ["-x", "a..b", "x.lock", "a b", "/a"] {
            let s = Settings {
                deploy_branch: Some(b.into()),
                ..Default::default()
            };
            assert_eq!(field(s), "deploy_branch", "{b}");
        }
        assert!(
            Settings {
                memory_mb: Some(512),
                cpu: Some(0.5),
                health_path: Some("/healthz".into()),
                deploy_branch: Some("release/prod".into()),
            }
            .validate()
            .is_ok()
        );
    }
}
