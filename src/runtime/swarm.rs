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
//! survives a restart of Scalefog (`slots.rs`).
//!
//! Images: with no registry, each image is streamed from the manager's engine (where builds run)
//! to every node of the region before the service is created ([`Swarm::deliver`],
//! `delivery.rs`); with the cluster's registry set, it is pushed there and the nodes pull it
//! (`registry.rs`).
//!
//! This file is the runtime itself: starting a set, a slot's status, stopping and removing slots.
//! Docker has no events for tasks: their changes are found by polling (`task_watcher.rs`).

mod delivery;
mod logs;
mod registry;
mod slots;
mod task_watcher;

pub use registry::Shipped;

use super::{ProcessSpec, ProcessState, ProcessStatus};
use crate::docker::{
    DockerNode, Engine, Installation, LABEL, LABEL_INSTALL, LABEL_PROCESS, LABEL_VOLUME, ServiceRun,
};
use crate::domain::{Error, Node, Result, WEB};
use crate::locks::lock;
use crate::store::Store;
use slots::{Found, REPLICAS_LABEL, Slots, found};
use std::collections::HashMap;
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
    /// cluster is off instead of waking up every [`task_watcher::POLL`] on a server that never
    /// uses it.
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_id_names_its_service_and_slot() {
        assert_eq!(parse("swarm:abc/2"), ("abc", 2));
        assert_eq!(parse("swarm:abc"), ("abc", 1));
    }
}
