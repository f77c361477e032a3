//! The cluster runtime: each process of a release is a Docker Swarm service of one replica,
//! constrained to its app's region (a node label) and spread over the region's nodes. A process
//! id is `swarm:<service id>`.
//!
//! One service per replica (not one service with N replicas) keeps the deploy engine's contract:
//! every new replica is health-checked on its own before the switch, and old ones are retired
//! one by one, on whichever node they run. The swarm's scheduler still places each new service on
//! the region's node with the fewest tasks, so replicas spread.
//!
//! Images: with no registry, each image is streamed from the manager's engine (where builds run)
//! to every node of the region before the service is created ([`Swarm::deliver`]); with the
//! cluster's registry set, it is pushed there and the nodes pull it (`registry.rs`).

mod registry;

pub use registry::Shipped;

use super::{ProcessEvent, ProcessSpec, ProcessState, ProcessStatus};
use crate::docker::{
    DockerNode, Engine, Installation, LABEL, LABEL_APP, LABEL_INSTALL, LABEL_PROCESS,
    LABEL_RELEASE, LABEL_VOLUME, ServiceRun, TaskInfo,
};
use crate::domain::{Error, Node, Result, WEB};
use crate::store::Store;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The prefix of a swarm process id.
pub const PREFIX: &str = "swarm:";
/// The node label naming a node's region (placement constraint).
pub const REGION_LABEL: &str = "scalefog.region";
/// The node label naming a node's record (spread preference).
pub const NODE_LABEL: &str = "scalefog.node";
/// On a task's container: the installation it belongs to (see [`Swarm::start`]).
pub const TASK_INSTALL_LABEL: &str = "scalefog.swarm.install";
/// How often the swarm's tasks are checked for changes (Docker has no task events).
const POLL: Duration = Duration::from_secs(2);

/// Processes as swarm services, managed through the local engine.
#[derive(Clone)]
pub struct Swarm {
    manager: Engine,
    store: Store,
    installation: Installation,
    /// `<data dir>/nodes`: each node's TLS client files, in a directory named by its id.
    tls_root: PathBuf,
}

/// A client for a node's engine, with its TLS client files when it has some.
pub fn node_engine(node: &Node, tls_root: &Path) -> Engine {
    let dir = tls_root.join(node.id.to_string());
    let tls = dir.join("ca.pem").exists().then_some(dir);
    Engine::remote(&node.endpoint, tls.as_deref())
}

fn service_id(id: &str) -> &str {
    id.strip_prefix(PREFIX).unwrap_or(id)
}

impl Swarm {
    pub fn new(
        manager: Engine,
        store: Store,
        installation: Installation,
        tls_root: PathBuf,
    ) -> Swarm {
        Swarm {
            manager,
            store,
            installation,
            tls_root,
        }
    }

    pub fn manager(&self) -> &Engine {
        &self.manager
    }

    pub fn tls_root(&self) -> &Path {
        &self.tls_root
    }

    /// Whether the cluster is on.
    pub fn enabled(&self) -> bool {
        matches!(self.store.read(|r| r.cluster()), Ok(Some(_)))
    }

    /// Makes sure every node of `region` other than the manager holds `image`, copying it from
    /// the manager's engine where it is missing.
    pub async fn deliver(&self, region: u64, image: &str) -> Result<()> {
        let Some(cluster) = self.store.read(|r| r.cluster())? else {
            return Ok(());
        };
        let nodes = self.store.read(|r| r.nodes())?;
        for node in nodes.iter().filter(|n| {
            n.region_id == region
                && n.swarm_id
                    .as_deref()
                    .is_some_and(|id| id != cluster.manager_id)
        }) {
            self.deliver_to(node, image).await?;
        }
        Ok(())
    }

    /// Copies `image` to one node unless it has it.
    pub async fn deliver_to(&self, node: &Node, image: &str) -> Result<()> {
        let engine = node_engine(node, &self.tls_root);
        if engine.image_exists(image).await? {
            return Ok(());
        }
        tracing::info!(node = node.id, %image, "copying an image to a node");
        self.manager.copy_image(image, &engine).await
    }

    /// The images the services of `region` run (for a node joining it).
    pub async fn region_images(&self, region: u64) -> Result<Vec<String>> {
        let mut filters = self.installation.filters(None);
        filters.push(format!("{REGION_LABEL}={region}"));
        let mut images: Vec<String> = self
            .manager
            .services(&filters)
            .await?
            .into_iter()
            .map(|s| s.image)
            .collect();
        images.sort();
        images.dedup();
        Ok(images)
    }

    pub async fn start(&self, spec: &ProcessSpec) -> Result<String> {
        let (node, cluster) = self
            .store
            .read(|r| Ok((r.node(spec.node)?, r.cluster()?)))?;
        let node = node.ok_or_else(|| Error::NotFound(format!("no node {}", spec.node)))?;
        let cluster =
            cluster.ok_or_else(|| Error::Unavailable("the cluster is not turned on".into()))?;
        let shipped = self.ship(node.region_id, &spec.image).await?;
        let mut labels = self
            .installation
            .labels(&spec.app, spec.node, Some(spec.release));
        labels.insert(
            LABEL_PROCESS.to_string(),
            format!("{}.{}", spec.kind, spec.replica),
        );
        labels.insert(REGION_LABEL.to_string(), node.region_id.to_string());
        let mut constraints = vec![format!("node.labels.{REGION_LABEL}=={}", node.region_id)];
        let mut volumes = Vec::with_capacity(spec.volumes.len());
        if !spec.volumes.is_empty() {
            // A volume lives on one engine: the app stays on the manager, which holds it.
            constraints.push(format!("node.id=={}", cluster.manager_id));
            for (name, path) in &spec.volumes {
                let volume = self.installation.volume_name(&spec.app, name);
                let mut vl = self.installation.labels(&spec.app, spec.node, None);
                vl.insert(LABEL_VOLUME.to_string(), name.clone());
                self.manager.create_volume(&volume, &vl).await?;
                volumes.push((volume, path.clone()));
            }
        }
        let mut name = format!(
            "sf-{}-v{}-{}-{}-{}",
            spec.app,
            spec.release,
            spec.kind,
            spec.replica,
            hex::encode(rand::random::<[u8; 3]>())
        );
        // Service names are DNS labels: at most 63 characters.
        if name.len() > 63 {
            name = format!("sf-{}", hex::encode(rand::random::<[u8; 12]>()));
        }
        // The tasks' containers are the swarm's, not the plain-container runtime's: without the
        // installation's own labels, `Containers` never lists (nor removes) them.
        let mut container_labels: HashMap<String, String> = labels
            .iter()
            .filter(|(k, _)| k.as_str() != LABEL && k.as_str() != LABEL_INSTALL)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        container_labels.insert(TASK_INSTALL_LABEL.to_string(), self.installation.id.clone());
        let run = ServiceRun {
            container_labels,
            name,
            image: shipped.image,
            registry_auth: shipped.auth,
            env: spec.env.clone(),
            port: (spec.kind == WEB).then_some(spec.port),
            cmd: spec.command.clone(),
            once: spec.once,
            memory_mb: spec.memory_mb,
            cpu: spec.cpu,
            labels,
            constraints,
            spread: Some(format!("node.labels.{NODE_LABEL}")),
            read_only_rootfs: spec.read_only_rootfs,
            volumes,
        };
        let id = self.manager.create_service(&run).await?;
        Ok(format!("{PREFIX}{id}"))
    }

    /// Where each node of the swarm is reached.
    async fn addresses(&self) -> Result<HashMap<String, IpAddr>> {
        Ok(self
            .manager
            .swarm_nodes()
            .await?
            .into_iter()
            .filter_map(|n| Some((n.id, n.addr?.parse().ok()?)))
            .collect())
    }

    pub async fn status(&self, id: &str) -> Result<Option<ProcessStatus>> {
        let Some(mut s) = self.status_of(id).await? else {
            return Ok(None);
        };
        if s.status.running()
            && let Some((node, port)) = s.endpoint_parts.take()
            && let Some(ip) = self.addresses().await?.get(&node)
        {
            s.status.endpoint = Some(SocketAddr::new(*ip, port));
        }
        Ok(Some(s.status))
    }

    /// The process's state without its address.
    async fn status_of(&self, id: &str) -> Result<Option<Found>> {
        let sid = service_id(id);
        let Some(svc) = self.manager.service(sid).await? else {
            return Ok(None);
        };
        let tasks = self.manager.tasks(Some(sid), None).await?;
        let current = tasks.iter().find(|t| t.desired_running);
        let previous_failed = tasks
            .iter()
            .find(|t| !t.desired_running)
            .filter(|t| t.state == "failed");
        let state = match current {
            None if svc.replicas == 0 => ProcessState::Exited {
                code: None,
                oom: false,
            },
            None => ProcessState::Starting,
            Some(t) => task_state(t, previous_failed),
        };
        let endpoint_parts = current.and_then(|t| Some((t.node_id.clone()?, t.published_port?)));
        Ok(Some(Found {
            status: ProcessStatus {
                id: format!("{PREFIX}{sid}"),
                app: svc.labels.get(LABEL_APP).cloned(),
                release: svc.labels.get(LABEL_RELEASE).and_then(|r| r.parse().ok()),
                process: svc.labels.get(LABEL_PROCESS).cloned(),
                state,
                endpoint: None,
                direct: None,
            },
            endpoint_parts,
        }))
    }

    pub async fn list(&self, app: Option<&str>) -> Result<Vec<ProcessStatus>> {
        if !self.enabled() {
            return Ok(Vec::new());
        }
        let services = self
            .manager
            .services(&self.installation.filters(app))
            .await?;
        let mut out = Vec::with_capacity(services.len());
        for s in services {
            if let Some(found) = self.status_of(&s.id).await? {
                out.push(found.status);
            }
        }
        Ok(out)
    }

    pub async fn wait(&self, id: &str) -> Result<i64> {
        loop {
            match self.status_of(id).await? {
                None => return Err(Error::NotFound(format!("process {id} is gone"))),
                Some(Found {
                    status:
                        ProcessStatus {
                            state: ProcessState::Exited { code, .. },
                            ..
                        },
                    ..
                }) => return Ok(code.unwrap_or(-1)),
                Some(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }

    pub async fn resume(&self, id: &str) -> Result<()> {
        self.manager
            .update_service(service_id(id), Some(1), None)
            .await
    }

    /// Stopping a service is scaling it to none: its task gets SIGTERM, then SIGKILL after the
    /// swarm's default grace period.
    pub async fn stop(&self, id: &str) -> Result<()> {
        match self
            .manager
            .update_service(service_id(id), Some(0), None)
            .await
        {
            Err(Error::NotFound(_)) => Ok(()),
            r => r,
        }
    }

    pub async fn remove(&self, id: &str) -> Result<()> {
        self.manager.remove_service(service_id(id)).await
    }

    pub async fn update_limits(&self, id: &str, memory_mb: u32, cpu: f64) -> Result<()> {
        self.manager
            .update_service(service_id(id), None, Some((memory_mb, cpu)))
            .await
    }

    pub fn logs(
        &self,
        id: &str,
        tail: Option<u64>,
        follow: bool,
    ) -> BoxStream<'static, Result<String>> {
        self.manager.service_logs(service_id(id), tail, follow)
    }

    /// Changes in the services' tasks, found by checking the swarm every [`POLL`]: a task that
    /// starts, stops or moves to another node is reported as `start` or `die` of its process.
    pub fn events(&self) -> BoxStream<'static, Result<ProcessEvent>> {
        let this = self.clone();
        let seen: HashMap<String, (String, String)> = HashMap::new();
        futures_util::stream::unfold((this, seen, true), |(this, mut seen, first)| async move {
            if !first {
                tokio::time::sleep(POLL).await;
            }
            let mut events = Vec::new();
            if this.enabled() {
                match this.snapshot().await {
                    Ok(now) => {
                        for (sid, (app, key)) in &now {
                            if seen.get(sid).map(|(_, k)| k) != Some(key) {
                                events.push(Ok(ProcessEvent {
                                    action: if key.ends_with("running") {
                                        "start"
                                    } else {
                                        "die"
                                    }
                                    .into(),
                                    process: format!("{PREFIX}{sid}"),
                                    app: Some(app.clone()),
                                }));
                            }
                        }
                        for (sid, (app, _)) in &seen {
                            if !now.contains_key(sid) {
                                events.push(Ok(ProcessEvent {
                                    action: "destroy".into(),
                                    process: format!("{PREFIX}{sid}"),
                                    app: Some(app.clone()),
                                }));
                            }
                        }
                        if first {
                            events.clear();
                        }
                        seen = now;
                    }
                    Err(e) => tracing::debug!(error = %e, "checking the swarm's tasks failed"),
                }
            }
            Some((futures_util::stream::iter(events), (this, seen, false)))
        })
        .flatten()
        .boxed()
    }

    /// Per service: its app, and its current task's id, node, port and state.
    async fn snapshot(&self) -> Result<HashMap<String, (String, String)>> {
        let services = self
            .manager
            .services(&self.installation.filters(None))
            .await?;
        let mut now = HashMap::with_capacity(services.len());
        for s in services {
            let tasks = self.manager.tasks(Some(&s.id), None).await?;
            let key = tasks
                .iter()
                .find(|t| t.desired_running)
                .map(|t| {
                    format!(
                        "{} {:?} {:?} {}",
                        t.id, t.node_id, t.published_port, t.state
                    )
                })
                .unwrap_or_default();
            let app = s.labels.get(LABEL_APP).cloned().unwrap_or_default();
            now.insert(s.id, (app, key));
        }
        Ok(now)
    }
}

/// What [`Swarm::status_of`] found: the status, and the task's node and port.
struct Found {
    status: ProcessStatus,
    endpoint_parts: Option<(String, u16)>,
}

fn task_state(t: &TaskInfo, previous_failed: Option<&TaskInfo>) -> ProcessState {
    match t.state.as_str() {
        "running" => ProcessState::Running,
        "complete" | "failed" | "shutdown" | "rejected" | "orphaned" | "remove" => {
            ProcessState::Exited {
                code: t.exit_code,
                oom: false,
            }
        }
        _ => match previous_failed {
            Some(p) => ProcessState::Restarting {
                code: p.exit_code,
                oom: false,
            },
            None => ProcessState::Starting,
        },
    }
}
