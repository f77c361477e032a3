//! The cluster runtime: each process type of a started set (a release's `web` replicas, say) is
//! one Docker Swarm service with as many replicas, constrained to its app's region (a node
//! label) and spread over the region's nodes by a placement preference, which the scheduler
//! applies among the tasks of one service: `web=2` on two nodes is one replica on each.
//!
//! A process is one replica: its id is `swarm:<service id>/<slot>`, the slot being the replica's
//! number in the service. A task the swarm restarts or moves off a lost node keeps its slot, so
//! the id stays valid while the swarm recovers by itself. The deploy engine still sees one
//! process per replica: it health-checks each new task before the switch, and retiring a set
//! stops and removes each slot; the service scales down as slots stop and goes with the last.
//! Which slots the deploy engine stopped or removed is kept on the service (labels), so it
//! survives a restart of Scalefog.
//!
//! Images: with no registry, each image is streamed from the manager's engine (where builds run)
//! to every node of the region before the service is created ([`Swarm::deliver`]); with the
//! cluster's registry set, it is pushed there and the nodes pull it (`registry.rs`).

mod registry;

pub use registry::Shipped;

use super::{ProcessEvent, ProcessSpec, ProcessState, ProcessStatus};
use crate::docker::{
    DockerNode, Engine, Installation, LABEL, LABEL_APP, LABEL_INSTALL, LABEL_PROCESS,
    LABEL_RELEASE, LABEL_VOLUME, ServiceInfo, ServiceRun, TaskInfo,
};
use crate::domain::{Error, Node, Result, WEB};
use crate::locks::lock;
use crate::store::Store;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// The prefix of a swarm process id.
pub const PREFIX: &str = "swarm:";
/// The node label naming a node's region (placement constraint).
pub const REGION_LABEL: &str = "scalefog.region";
/// The node label naming a node's record (spread preference).
pub const NODE_LABEL: &str = "scalefog.node";
/// On a task's container: the installation it belongs to (see [`Swarm::start`]).
pub const TASK_INSTALL_LABEL: &str = "scalefog.swarm.install";
/// On a service: how many replicas it was created with (its slots are 1 to that). A service
/// without it is one process of id `swarm:<service id>` (as they were before sets).
const REPLICAS_LABEL: &str = "scalefog.replicas";
/// On a service: its slots the deploy engine stopped (`1,2`), and those it removed.
const STOPPED_LABEL: &str = "scalefog.stopped";
const REMOVED_LABEL: &str = "scalefog.removed";
/// How often the swarm's tasks are checked for changes (Docker has no task events).
const POLL: Duration = Duration::from_secs(2);

/// A set's process type: app, release and kind.
type SetKey = (String, u32, String);

/// Processes as swarm services, managed through the local engine.
#[derive(Clone)]
pub struct Swarm {
    manager: Engine,
    store: Store,
    installation: Installation,
    /// `<data dir>/nodes`: each node's TLS client files, in a directory named by its id.
    tls_root: PathBuf,
    /// The service of each set being started, by app, release and process type: it is created
    /// with all the set's replicas when the first is asked for; the others are its slots.
    starting: Arc<Mutex<HashMap<SetKey, String>>>,
    /// One change of a service's slots at a time (each is a read, then a versioned update).
    slots: Arc<tokio::sync::Mutex<()>>,
    /// Whether the cluster is on, shared by every clone: the task watcher waits on it while the
    /// cluster is off instead of waking up every [`POLL`] on a server that never uses it.
    on: Arc<watch::Sender<bool>>,
}

/// A client for a node's engine, with its TLS client files when it has some, or Scalefog's node
/// SSH key for an `ssh://` endpoint.
pub fn node_engine(node: &Node, tls_root: &Path) -> Engine {
    let dir = tls_root.join(node.id.to_string());
    let tls = dir.join("ca.pem").exists().then_some(dir);
    let key = if node.endpoint.starts_with("ssh://") {
        crate::nodes::ssh_key::ensure(tls_root)
            .inspect_err(|e| tracing::warn!(error = %e, "no node SSH key; ssh uses its own keys"))
            .ok()
    } else {
        None
    };
    Engine::remote(&node.endpoint, tls.as_deref(), key.as_deref())
}

/// A process id's service and slot; an id without a slot is slot 1.
pub fn parse(id: &str) -> (&str, u64) {
    let rest = id.strip_prefix(PREFIX).unwrap_or(id);
    match rest.split_once('/') {
        Some((sid, slot)) => (sid, slot.parse().unwrap_or(1)),
        None => (rest, 1),
    }
}

/// The slots of a service as the deploy engine left them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Slots {
    replicas: u64,
    /// Holds the removed ones too.
    stopped: BTreeSet<u64>,
    removed: BTreeSet<u64>,
    /// It has slots in its process ids.
    sets: bool,
}

impl Slots {
    fn of(svc: &ServiceInfo) -> Slots {
        let set = |key: &str| -> BTreeSet<u64> {
            svc.labels
                .get(key)
                .map(|v| v.split(',').filter_map(|x| x.parse().ok()).collect())
                .unwrap_or_default()
        };
        let replicas = svc.labels.get(REPLICAS_LABEL).and_then(|r| r.parse().ok());
        Slots {
            replicas: replicas.unwrap_or(1),
            stopped: set(STOPPED_LABEL),
            removed: set(REMOVED_LABEL),
            sets: replicas.is_some(),
        }
    }

    /// How many tasks the service should run.
    fn running(&self) -> u64 {
        (1..=self.replicas)
            .filter(|s| !self.stopped.contains(s))
            .count() as u64
    }

    fn id(&self, sid: &str, slot: u64) -> String {
        if self.sets {
            format!("{PREFIX}{sid}/{slot}")
        } else {
            format!("{PREFIX}{sid}")
        }
    }
}

fn joined(set: &BTreeSet<u64>) -> String {
    set.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

/// The process label (`web.2`) of a slot: the service's label names its first replica.
fn process_label(svc: &ServiceInfo, slot: u64) -> Option<String> {
    let first = svc.labels.get(LABEL_PROCESS)?;
    if slot == 1 {
        return Some(first.clone());
    }
    let (kind, n) = first.rsplit_once('.')?;
    Some(format!("{kind}.{}", n.parse::<u64>().ok()? + slot - 1))
}

impl Swarm {
    pub fn new(
        manager: Engine,
        store: Store,
        installation: Installation,
        tls_root: PathBuf,
    ) -> Swarm {
        let on = matches!(store.read(|r| r.cluster()), Ok(Some(_)));
        Swarm {
            manager,
            store,
            installation,
            tls_root,
            starting: Default::default(),
            slots: Default::default(),
            on: Arc::new(watch::Sender::new(on)),
        }
    }

    /// Tells the task watcher the cluster is now on (called once it is recorded).
    pub fn announce_on(&self) {
        self.on.send_replace(true);
    }

    /// Completes once the cluster is on: at once when it is, else when [`Swarm::announce_on`]
    /// is called. Waiting takes no timer.
    pub async fn until_on(&self) {
        let mut on = self.on.subscribe();
        // The sender lives as long as `self`: the wait cannot fail.
        let _ = on.wait_for(|on| *on).await;
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

    /// Starts replica `spec.replica` of its set. The first creates the set's service with
    /// `spec.replicas` replicas; the others are the slots of that service. A one-off (numbered
    /// by its run) is a service of its own.
    pub async fn start(&self, spec: &ProcessSpec) -> Result<String> {
        let key = (spec.app.clone(), spec.release, spec.kind.clone());
        if spec.replica > 1 && spec.replicas > 1 {
            let mut starting = lock(&self.starting);
            let sid = starting.get(&key).cloned().ok_or_else(|| {
                Error::internal(format!(
                    "{}.{} was started before the first of its set",
                    spec.kind, spec.replica
                ))
            })?;
            if spec.replica >= spec.replicas {
                starting.remove(&key);
            }
            return Ok(format!("{PREFIX}{sid}/{}", spec.replica));
        }
        let replicas = if spec.replica == 1 {
            spec.replicas.max(1)
        } else {
            1
        };
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
        labels.insert(REPLICAS_LABEL.to_string(), replicas.to_string());
        let mut constraints = vec![format!("node.labels.{REGION_LABEL}=={}", node.region_id)];
        let mut volumes = Vec::with_capacity(spec.volumes.len());
        if !spec.volumes.is_empty() {
            // A volume lives on one engine: the app stays on the manager, which holds it, even
            // when its region is another (both constraints together could never be met; the
            // app's JSON and page say where the volumes pin it).
            constraints = vec![format!("node.id=={}", cluster.manager_id)];
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
            replicas,
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
        if replicas > 1 {
            lock(&self.starting).insert(key, id.clone());
        }
        Ok(format!("{PREFIX}{id}/1"))
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

    /// The slot's state, and where its current task answers: the address of the node it runs
    /// on and its port published there.
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
        let (sid, slot) = parse(id);
        let Some(svc) = self.manager.service(sid).await? else {
            return Ok(None);
        };
        let tasks = self.manager.tasks(Some(sid), None).await?;
        Ok(found(&svc, &tasks, slot))
    }

    /// Every slot of the installation's services (of `app`) not removed.
    pub async fn list(&self, app: Option<&str>) -> Result<Vec<ProcessStatus>> {
        if !self.enabled() {
            return Ok(Vec::new());
        }
        let services = self
            .manager
            .services(&self.installation.filters(app))
            .await?;
        let mut out = Vec::with_capacity(services.len());
        for svc in services {
            let tasks = self.manager.tasks(Some(&svc.id), None).await?;
            let slots = Slots::of(&svc);
            for slot in 1..=slots.replicas {
                if let Some(f) = found(&svc, &tasks, slot) {
                    out.push(f.status);
                }
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

    /// Applies a change to the slots of a process's service: the service runs as many tasks as
    /// it has slots not stopped, and goes when every slot is removed. Nothing is updated when
    /// nothing changes, so the swarm is left alone while it restarts or moves tasks itself.
    async fn change_slots(&self, id: &str, change: impl FnOnce(&mut Slots, u64)) -> Result<()> {
        let (sid, slot) = parse(id);
        let _one = self.slots.lock().await;
        let Some(svc) = self.manager.service(sid).await? else {
            return Ok(());
        };
        let before = Slots::of(&svc);
        let mut after = before.clone();
        change(&mut after, slot);
        if (1..=after.replicas).all(|s| after.removed.contains(&s)) {
            return self.manager.remove_service(sid).await;
        }
        let running = after.running() as i64;
        if after == before && svc.replicas == running {
            return Ok(());
        }
        let labels = [
            (STOPPED_LABEL, joined(&after.stopped)),
            (REMOVED_LABEL, joined(&after.removed)),
        ];
        match self.manager.scale_service(sid, running, &labels).await {
            Err(Error::NotFound(_)) => Ok(()),
            r => r,
        }
    }

    /// Starts a slot the deploy engine stopped; one that is not stopped is the swarm's to run.
    pub async fn resume(&self, id: &str) -> Result<()> {
        self.change_slots(id, |s, slot| {
            s.stopped.remove(&slot);
        })
        .await
    }

    /// Stopping a slot scales its service down by one: the swarm picks which task goes (SIGTERM,
    /// then SIGKILL after its default grace period). A set is always stopped whole, so which
    /// task goes first does not matter.
    pub async fn stop(&self, id: &str) -> Result<()> {
        self.change_slots(id, |s, slot| {
            s.stopped.insert(slot);
        })
        .await
    }

    pub async fn remove(&self, id: &str) -> Result<()> {
        self.change_slots(id, |s, slot| {
            s.stopped.insert(slot);
            s.removed.insert(slot);
        })
        .await
    }

    /// Limits are the service's: every slot gets them.
    pub async fn update_limits(&self, id: &str, memory_mb: u32, cpu: f64) -> Result<()> {
        self.manager
            .update_service(parse(id).0, None, Some((memory_mb, cpu)))
            .await
    }

    /// The output of the slot's service (every replica of the set).
    pub fn logs(
        &self,
        id: &str,
        tail: Option<u64>,
        follow: bool,
    ) -> BoxStream<'static, Result<String>> {
        self.manager.service_logs(parse(id).0, tail, follow)
    }

    /// Changes in the services' tasks, found by checking the swarm every [`POLL`]: a task that
    /// starts, stops or moves to another node is reported as `start` or `die` of its process.
    /// While the cluster is off nothing is checked and no timer runs: the watcher sleeps until
    /// it is turned on.
    pub fn events(&self) -> BoxStream<'static, Result<ProcessEvent>> {
        let this = self.clone();
        let seen: HashMap<String, (String, String)> = HashMap::new();
        futures_util::stream::unfold((this, seen, true), |(this, mut seen, first)| async move {
            this.until_on().await;
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

    /// Per service: its app, and its current tasks' slots, ids, nodes, ports and states (the
    /// last state last, so a key that ends with `running` is a service whose tasks run).
    async fn snapshot(&self) -> Result<HashMap<String, (String, String)>> {
        let services = self
            .manager
            .services(&self.installation.filters(None))
            .await?;
        let mut now = HashMap::with_capacity(services.len());
        for s in services {
            let mut tasks = self.manager.tasks(Some(&s.id), None).await?;
            tasks.retain(|t| t.desired_running);
            tasks.sort_by_key(|t| (t.state == "running", t.slot));
            let key = tasks
                .iter()
                .map(|t| {
                    format!(
                        "{:?} {} {:?} {:?} {}",
                        t.slot, t.id, t.node_id, t.published_port, t.state
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
            let app = s.labels.get(LABEL_APP).cloned().unwrap_or_default();
            now.insert(s.id, (app, key));
        }
        Ok(now)
    }
}

/// A slot of a service as its tasks say: `None` when the deploy engine removed it.
fn found(svc: &ServiceInfo, tasks: &[TaskInfo], slot: u64) -> Option<Found> {
    let slots = Slots::of(svc);
    if slot == 0 || slot > slots.replicas || slots.removed.contains(&slot) {
        return None;
    }
    // Latest first: the slot's current task, and the one it replaced.
    let mut mine = tasks.iter().filter(|t| t.slot.unwrap_or(1) == slot);
    let current = mine.clone().find(|t| t.desired_running);
    let previous_failed = mine
        .find(|t| !t.desired_running)
        .filter(|t| t.state == "failed");
    let state = match current {
        _ if slots.stopped.contains(&slot) => ProcessState::Exited {
            code: None,
            oom: false,
        },
        None if svc.replicas == 0 => ProcessState::Exited {
            code: None,
            oom: false,
        },
        None => ProcessState::Starting,
        Some(t) => task_state(t, previous_failed),
    };
    let endpoint_parts = current.and_then(|t| Some((t.node_id.clone()?, t.published_port?)));
    Some(Found {
        status: ProcessStatus {
            id: slots.id(&svc.id, slot),
            app: svc.labels.get(LABEL_APP).cloned(),
            release: svc.labels.get(LABEL_RELEASE).and_then(|r| r.parse().ok()),
            process: process_label(svc, slot),
            state,
            endpoint: None,
            direct: None,
        },
        endpoint_parts,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn service(labels: &[(&str, &str)], replicas: i64) -> ServiceInfo {
        ServiceInfo {
            id: "s1".into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            replicas,
            image: "img".into(),
        }
    }

    fn task(slot: u64, state: &str, desired_running: bool, index: u64) -> TaskInfo {
        TaskInfo {
            id: format!("t{index}"),
            service_id: "s1".into(),
            node_id: Some(format!("node{slot}")),
            state: state.into(),
            desired_running,
            published_port: Some(30000 + slot as u16),
            index,
            slot: Some(slot),
            ..Default::default()
        }
    }

    #[test]
    fn a_process_id_names_its_service_and_slot() {
        assert_eq!(parse("swarm:abc/2"), ("abc", 2));
        assert_eq!(parse("swarm:abc"), ("abc", 1));
    }

    #[test]
    fn slots_come_from_the_services_labels() {
        let svc = service(
            &[
                (REPLICAS_LABEL, "3"),
                (STOPPED_LABEL, "1,2"),
                (REMOVED_LABEL, "2"),
                (LABEL_PROCESS, "web.1"),
            ],
            1,
        );
        let slots = Slots::of(&svc);
        assert_eq!(slots.replicas, 3);
        assert_eq!(slots.running(), 1);
        assert_eq!(slots.id("s1", 3), "swarm:s1/3");
        assert_eq!(process_label(&svc, 3).as_deref(), Some("web.3"));
        // A service from before sets: one process, its id without a slot.
        let old = service(&[(LABEL_PROCESS, "run.17")], 1);
        assert_eq!(Slots::of(&old).id("s1", 1), "swarm:s1");
        assert_eq!(process_label(&old, 1).as_deref(), Some("run.17"));
    }

    #[test]
    fn a_slot_is_its_current_task_and_a_removed_one_is_gone() {
        let svc = service(
            &[
                (REPLICAS_LABEL, "3"),
                (REMOVED_LABEL, "3"),
                (STOPPED_LABEL, "3"),
            ],
            2,
        );
        // Slot 2's first task was on a node that died; the swarm runs it again elsewhere.
        let tasks = vec![
            task(2, "starting", true, 9),
            task(2, "running", false, 5),
            task(1, "running", true, 4),
        ];
        let one = found(&svc, &tasks, 1).unwrap();
        assert_eq!(one.status.state, ProcessState::Running);
        assert_eq!(one.endpoint_parts, Some(("node1".into(), 30001)));
        let two = found(&svc, &tasks, 2).unwrap();
        assert_eq!(two.status.state, ProcessState::Starting);
        assert_eq!(two.status.id, "swarm:s1/2");
        assert!(found(&svc, &tasks, 3).is_none());
        assert!(found(&svc, &tasks, 4).is_none());
    }

    #[test]
    fn a_stopped_slot_has_exited() {
        let svc = service(&[(REPLICAS_LABEL, "2"), (STOPPED_LABEL, "1,2")], 0);
        let s = found(&svc, &[], 1).unwrap();
        assert!(matches!(s.status.state, ProcessState::Exited { .. }));
    }

    use crate::domain::Cluster;
    use futures_util::FutureExt;
    use futures_util::task::ArcWake;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Context;

    /// Counts the wake-ups of the task polled with it.
    struct Wakes(AtomicUsize);

    impl ArcWake for Wakes {
        fn wake_by_ref(w: &Arc<Self>) {
            w.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn swarm(dir: &Path, on: bool) -> Swarm {
        let store = Store::open(&dir.join("s.redb")).unwrap();
        if on {
            let c = Cluster {
                advertise: "10.0.0.1".into(),
                manager_id: "m".into(),
                since: 0,
            };
            store.write(|w| w.put_cluster(&c)).unwrap();
        }
        Swarm::new(
            Engine::new("unix:///nonexistent/docker.sock"),
            store,
            Installation { id: "t".into() },
            dir.join("nodes"),
        )
    }

    #[test]
    fn while_the_cluster_is_off_the_task_watcher_arms_no_timer_and_wakes_when_it_is_turned_on() {
        // A runtime without a time driver: a timer armed by the watcher would panic here.
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let swarm = swarm(dir.path(), false);
            let mut events = swarm.events();
            let wakes = Arc::new(Wakes(AtomicUsize::new(0)));
            let waker = futures_util::task::waker(wakes.clone());
            let mut cx = Context::from_waker(&waker);
            assert!(events.poll_next_unpin(&mut cx).is_pending());
            assert!(events.poll_next_unpin(&mut cx).is_pending());
            assert_eq!(wakes.0.load(Ordering::SeqCst), 0);
            assert!(swarm.until_on().now_or_never().is_none());
            // Turned on through another clone (the one `nodes` holds).
            swarm.clone().announce_on();
            assert_eq!(wakes.0.load(Ordering::SeqCst), 1, "the watcher is woken");
            assert!(swarm.until_on().now_or_never().is_some());
        });
    }

    #[test]
    fn a_server_started_with_the_cluster_on_watches_at_once() {
        let dir = tempfile::tempdir().unwrap();
        assert!(swarm(dir.path(), true).until_on().now_or_never().is_some());
    }
}
