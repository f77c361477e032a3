//! Where apps' processes run: the node of each process of an app's current deployment (from
//! the swarm's tasks while the cluster is on; the local engine, node 1, otherwise), and the
//! node an app's volumes pin it to. Read-only: the callers have checked access to the apps.

use super::Nodes;
use crate::domain::{Cluster, Deployment, Instance, Node, Result};
use crate::runtime::swarm::{self, PREFIX};
use std::collections::HashMap;

/// The local engine's node: plain containers run there.
const LOCAL_NODE: u64 = 1;

/// A node as an app's placement names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedNode {
    pub id: u64,
    pub name: String,
}

/// One process of an app's current release and where it runs.
#[derive(Debug, Clone)]
pub struct ProcessPlacement {
    /// Its process type (`web`, `worker`, …).
    pub kind: String,
    /// 1-based, as in `web.1`.
    pub replica: u8,
    /// `None` while the swarm has not placed it (starting, or its node was lost).
    pub node: Option<PlacedNode>,
}

impl ProcessPlacement {
    /// `web.1`, as logs and pages name it.
    pub fn label(&self) -> String {
        format!("{}.{}", self.kind, self.replica)
    }
}

/// Where an app runs.
#[derive(Debug, Clone, Default)]
pub struct Placement {
    /// Its current release's processes, by type and replica.
    pub processes: Vec<ProcessPlacement>,
    /// With the cluster on, an app with volumes runs on the node holding them (the manager's):
    /// a volume lives on one engine.
    pub pinned_to: Option<PlacedNode>,
}

impl Placement {
    /// Why the app cannot move, said the same way by the API and the console.
    pub fn pin_reason(&self) -> Option<String> {
        self.pinned_to.as_ref().map(|n| {
            format!(
                "volumes pin this app to node {} ({}): its processes run there only",
                n.id, n.name
            )
        })
    }
}

/// What placing processes needs, read once for any number of apps.
struct Known {
    cluster: Option<Cluster>,
    nodes: Vec<Node>,
    /// (Swarm service id, slot) → the swarm node id of the slot's current task.
    task_nodes: HashMap<(String, u64), String>,
}

impl Known {
    fn node(&self, id: u64) -> Option<PlacedNode> {
        self.nodes.iter().find(|n| n.id == id).map(placed)
    }

    fn by_swarm_id(&self, swarm_id: &str) -> Option<PlacedNode> {
        self.nodes
            .iter()
            .find(|n| n.swarm_id.as_deref() == Some(swarm_id))
            .map(placed)
    }

    fn place(&self, app: &Instance, deployment: Option<&Deployment>) -> Placement {
        let mut processes: Vec<ProcessPlacement> = deployment
            .map(|d| d.processes.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|p| ProcessPlacement {
                kind: p.kind.clone(),
                replica: p.replica,
                node: if p.id.starts_with(PREFIX) {
                    let (service, slot) = swarm::parse(&p.id);
                    self.task_nodes
                        .get(&(service.to_string(), slot))
                        .and_then(|n| self.by_swarm_id(n))
                } else {
                    self.node(LOCAL_NODE)
                },
            })
            .collect();
        processes.sort_by(|a, b| (&a.kind, a.replica).cmp(&(&b.kind, b.replica)));
        let pinned_to = match &self.cluster {
            Some(c) if !app.volumes.is_empty() => self
                .by_swarm_id(&c.manager_id)
                .or_else(|| self.node(LOCAL_NODE)),
            _ => None,
        };
        Placement {
            processes,
            pinned_to,
        }
    }
}

fn placed(n: &Node) -> PlacedNode {
    PlacedNode {
        id: n.id,
        name: n.name.clone(),
    }
}

impl Nodes {
    /// Where one app runs (the caller has checked the app is theirs to see).
    pub async fn placement(&self, app: &Instance) -> Result<Placement> {
        let name = app.name.clone();
        let deployment = self.store.read(move |r| r.deployment(&name))?;
        let known = self.known(deployment.iter()).await?;
        Ok(known.place(app, deployment.as_ref()))
    }

    /// Where each of `apps` runs, by app name, with one look at the swarm for all of them.
    pub async fn placements(&self, apps: &[Instance]) -> Result<HashMap<String, Placement>> {
        let deployments: HashMap<String, Deployment> = self
            .store
            .read(|r| r.deployments())?
            .into_iter()
            .map(|d| (d.app.clone(), d))
            .collect();
        let known = self
            .known(apps.iter().filter_map(|a| deployments.get(&a.name)))
            .await?;
        Ok(apps
            .iter()
            .map(|a| (a.name.clone(), known.place(a, deployments.get(&a.name))))
            .collect())
    }

    async fn known<'a>(&self, deployments: impl Iterator<Item = &'a Deployment>) -> Result<Known> {
        let (cluster, nodes) = self.store.read(|r| Ok((r.cluster()?, r.nodes()?)))?;
        let services: Vec<&str> = deployments
            .flat_map(|d| d.ids())
            .filter(|id| id.starts_with(PREFIX))
            .map(|id| swarm::parse(id).0)
            .collect();
        let mut task_nodes = HashMap::new();
        if cluster.is_some() && !services.is_empty() {
            // A swarm that does not answer leaves the processes unplaced, not the page broken.
            let tasks = match self.swarm.manager().tasks(None, None).await {
                Ok(tasks) => tasks,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot list the swarm's tasks");
                    Vec::new()
                }
            };
            // The latest task of a slot that should run is the slot's current one (a task the
            // swarm moved keeps its slot).
            let mut best: HashMap<(&str, u64), (u64, &str)> = HashMap::new();
            for t in tasks.iter().filter(|t| t.desired_running) {
                let Some(node) = t.node_id.as_deref() else {
                    continue;
                };
                if !services.contains(&t.service_id.as_str()) {
                    continue;
                }
                let key = (t.service_id.as_str(), t.slot.unwrap_or(1));
                let slot = best.entry(key).or_insert((t.index, node));
                if t.index >= slot.0 {
                    *slot = (t.index, node);
                }
            }
            task_nodes = best
                .into_iter()
                .map(|((s, slot), (_, n))| ((s.to_string(), slot), n.to_string()))
                .collect();
        }
        Ok(Known {
            cluster,
            nodes,
            task_nodes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::DeployedProcess;

    fn node(id: u64, name: &str, swarm_id: Option<&str>) -> Node {
        Node {
            id,
            name: name.into(),
            region_id: 1,
            endpoint: String::new(),
            tags: vec![],
            ram_mb: 0,
            disk_gb: 0,
            cpus: 0.0,
            created_at: 0,
            ram: String::new(),
            disk: String::new(),
            processor: String::new(),
            port: String::new(),
            insecure: false,
            swarm_id: swarm_id.map(String::from),
        }
    }

    fn process(kind: &str, replica: u8, id: &str) -> DeployedProcess {
        DeployedProcess {
            kind: kind.into(),
            replica,
            id: id.into(),
        }
    }

    fn app(volumes: bool) -> Instance {
        let mut app: Instance = serde_json::from_value(serde_json::json!({
            "name": "shop", "owner_id": 1, "region_id": 1, "node_id": 1, "status": "running",
            "release": 1, "memory_mb": 256, "cpu": 1.0, "health_path": "/",
            "deploy_branch": "main", "port": 5000, "env": {}, "domains": [], "created_at": 0
        }))
        .unwrap();
        if volumes {
            app.volumes = serde_json::from_value(serde_json::json!([
                {"name": "data", "path": "/data", "created_at": 0}
            ]))
            .unwrap();
        }
        app
    }

    #[test]
    fn swarm_processes_are_placed_by_their_tasks_node_and_volumes_pin_to_the_manager() {
        let known = Known {
            cluster: Some(Cluster {
                advertise: "10.0.0.1".into(),
                manager_id: "m".into(),
                since: 0,
            }),
            nodes: vec![node(1, "local", Some("m")), node(2, "edge-1", Some("w"))],
            // One service of two slots, on the worker and the manager.
            task_nodes: HashMap::from([
                (("s1".into(), 1), "w".into()),
                (("s1".into(), 2), "m".into()),
            ]),
        };
        let deployment = Deployment {
            app: "shop".into(),
            release: 1,
            processes: vec![
                process("web", 2, "swarm:s1/2"),
                process("web", 1, "swarm:s1/1"),
                process("worker", 1, "swarm:gone"),
            ],
        };
        let p = known.place(&app(true), Some(&deployment));
        let placed: Vec<(String, Option<u64>)> = p
            .processes
            .iter()
            .map(|p| (p.label(), p.node.as_ref().map(|n| n.id)))
            .collect();
        assert_eq!(
            placed,
            [
                ("web.1".to_string(), Some(2)),
                ("web.2".to_string(), Some(1)),
                ("worker.1".to_string(), None)
            ]
        );
        assert_eq!(
            p.pin_reason().unwrap(),
            "volumes pin this app to node 1 (local): its processes run there only"
        );
        assert!(
            known
                .place(&app(false), Some(&deployment))
                .pinned_to
                .is_none()
        );
    }

    #[test]
    fn with_the_cluster_off_containers_run_on_the_local_engine_and_nothing_is_pinned() {
        let known = Known {
            cluster: None,
            nodes: vec![node(1, "local", None)],
            task_nodes: HashMap::new(),
        };
        let deployment = Deployment {
            app: "shop".into(),
            release: 1,
            processes: vec![process("web", 1, "c0ffee")],
        };
        let p = known.place(&app(true), Some(&deployment));
        assert_eq!(p.processes[0].node.as_ref().unwrap().name, "local");
        assert!(p.pinned_to.is_none() && p.pin_reason().is_none());
        assert!(known.place(&app(true), None).processes.is_empty());
    }
}
