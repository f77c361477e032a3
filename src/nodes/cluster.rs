//! The cluster: turning it on (the local engine initialises or adopts a Docker Swarm), joining
//! nodes to it over their Engine API, their state from the swarm, and removing a node (drain,
//! wait until its tasks run elsewhere, leave, remove).

use super::Nodes;
use crate::accounts::{Principal, require_admin};
use crate::domain::{self, Cluster, Error, Node, Result};
use crate::runtime::swarm::{NODE_LABEL, REGION_LABEL, node_engine};
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

/// The swarm's port for joining and managing.
const SWARM_PORT: u16 = 2377;
/// How often nodes report to the manager. A node is down after missing three reports, and its
/// tasks are started elsewhere then: with Docker's default of 5 s that took 12.5-14.4 s; 1 s
/// brings it to a few seconds, and a report a second is nothing for the manager.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// How long removing a node waits for its tasks to run elsewhere.
const DRAIN_WAIT: Duration = Duration::from_secs(120);

/// The cluster as an admin sees it.
#[derive(Debug, Clone)]
pub struct ClusterInfo {
    pub cluster: Cluster,
    /// What to run on a machine Scalefog cannot reach, to join it by hand.
    pub join_command: String,
}

/// A node's state and resources, from the swarm.
#[derive(Debug, Clone, Default)]
pub struct NodeState {
    /// `ready`, `down`, `draining`, `disconnected`, `unknown`; `not joined` for a node the
    /// swarm does not know.
    pub state: String,
    pub cpus: f64,
    pub memory_mb: u64,
}

/// The host part of an engine endpoint (`tcp://10.0.0.2:2376`, `ssh://me@host`).
fn endpoint_host(endpoint: &str) -> Option<&str> {
    let rest = endpoint.split_once("://")?.1;
    let rest = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let host = match rest.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => rest.split([':', '/']).next()?,
    };
    (!host.is_empty()).then_some(host)
}

impl Nodes {
    /// The cluster, or `None` while it is off.
    pub fn cluster(&self) -> Result<Option<Cluster>> {
        self.store.read(|r| r.cluster())
    }

    /// The cluster with its join command (admins only: the token lets a machine in).
    pub async fn cluster_info(&self, who: &Principal) -> Result<Option<ClusterInfo>> {
        require_admin(who)?;
        let Some(cluster) = self.cluster()? else {
            return Ok(None);
        };
        let token = self.swarm.manager().worker_token().await?;
        Ok(Some(ClusterInfo {
            join_command: format!(
                "docker swarm join --token {token} {}:{SWARM_PORT}",
                cluster.advertise
            ),
            cluster,
        }))
    }

    /// Scalefog's public SSH key, for the `authorized_keys` of `ssh://` nodes (admins).
    pub fn ssh_public_key(&self, who: &Principal) -> Result<String> {
        require_admin(who)?;
        super::ssh_key::public_line(self.swarm.tls_root())
    }

    /// Turns the cluster on (admins).
    pub async fn enable_cluster(&self, who: &Principal, advertise: &str) -> Result<ClusterInfo> {
        require_admin(who)?;
        self.turn_on(advertise).await?;
        self.cluster_info(who)
            .await?
            .ok_or_else(|| Error::internal("the cluster vanished"))
    }

    /// Initialises the swarm on the local engine advertised at `advertise` (or adopts the swarm
    /// it already manages), labels it as node 1 of its region, records the cluster, then joins
    /// the nodes recorded before. Also run by `scalefog cluster init` while the server is
    /// stopped.
    pub async fn turn_on(&self, advertise: &str) -> Result<Cluster> {
        let advertise = advertise.trim().to_string();
        if advertise.parse::<IpAddr>().is_err() {
            return Err(Error::invalid(
                "advertise",
                "the address other machines reach this one at, as an IP address",
            ));
        }
        if let Some(c) = self.cluster()? {
            return if c.advertise == advertise {
                Ok(c)
            } else {
                Err(Error::Conflict(format!(
                    "the cluster is on, advertised at {}",
                    c.advertise
                )))
            };
        }
        let manager = self.swarm.manager();
        let local = manager.local_swarm().await?;
        let manager_id = match (local.active, local.manager, local.node_id) {
            (true, true, Some(id)) => id,
            (true, _, _) => {
                return Err(Error::Conflict(
                    "the local Docker engine is a worker of another swarm; make it leave \
                     (docker swarm leave) or run Scalefog on a manager"
                        .into(),
                ));
            }
            _ => manager.swarm_init(&advertise).await?,
        };
        manager.set_heartbeat(HEARTBEAT).await?;
        let local_node = self
            .get(1)?
            .ok_or_else(|| Error::internal("node 1 is missing"))?;
        manager
            .update_swarm_node(
                &manager_id,
                &[
                    (REGION_LABEL, local_node.region_id.to_string()),
                    (NODE_LABEL, "1".to_string()),
                ],
                false,
            )
            .await?;
        let cluster = Cluster {
            advertise,
            manager_id: manager_id.clone(),
            since: domain::now(),
        };
        let record = cluster.clone();
        self.store
            .write_async(move |w| {
                w.put_cluster(&record)?;
                if let Some(mut n) = w.node(1)? {
                    n.swarm_id = Some(manager_id);
                    w.put_node(&n)?;
                }
                Ok(())
            })
            .await?;
        self.swarm.announce_on();
        for node in self.store.read(|r| r.nodes())? {
            if node.swarm_id.is_none()
                && let Err(e) = self.join(&node).await
            {
                tracing::warn!(node = node.id, error = %e, "could not join a node to the swarm");
            }
        }
        Ok(cluster)
    }

    /// Joins a recorded node's engine to the swarm as a worker, labels it with its region, and
    /// copies it the images of its region's apps (unless the cluster has a registry to pull from).
    pub(super) async fn join(&self, node: &Node) -> Result<Node> {
        let cluster = self
            .cluster()?
            .ok_or_else(|| Error::Unavailable("the cluster is not turned on".into()))?;
        let engine = node_engine(node, self.swarm.tls_root());
        // Also the check that it answers: an unreachable engine is `Unavailable`, naming it.
        let there = engine.local_swarm().await?;
        let manager = self.swarm.manager();
        let swarm_id = match (there.active, there.node_id) {
            (true, Some(id)) => {
                if !manager.swarm_nodes().await?.iter().any(|n| n.id == id) {
                    return Err(Error::Conflict(format!(
                        "the engine at {} is in another swarm",
                        node.endpoint
                    )));
                }
                id
            }
            _ => {
                let host = endpoint_host(&node.endpoint)
                    .ok_or_else(|| Error::invalid("address", "the node's address names no host"))?;
                let token = manager.worker_token().await?;
                engine
                    .swarm_join(&format!("{}:{SWARM_PORT}", cluster.advertise), &token, host)
                    .await?;
                engine
                    .local_swarm()
                    .await?
                    .node_id
                    .ok_or_else(|| Error::internal("the node joined but has no swarm id"))?
            }
        };
        manager
            .update_swarm_node(
                &swarm_id,
                &[
                    (REGION_LABEL, node.region_id.to_string()),
                    (NODE_LABEL, node.id.to_string()),
                ],
                false,
            )
            .await?;
        let id = node.id;
        let sid = swarm_id.clone();
        let joined = self
            .store
            .write_async(move |w| {
                let mut n = w
                    .node(id)?
                    .ok_or_else(|| Error::NotFound(format!("no node {id}")))?;
                n.swarm_id = Some(sid);
                w.put_node(&n)?;
                Ok(n)
            })
            .await?;
        // With a registry, the node pulls what it runs.
        let images = if self.swarm.registry()?.is_some() {
            Vec::new()
        } else {
            self.swarm.region_images(joined.region_id).await?
        };
        for image in images {
            if let Err(e) = self.swarm.deliver_to(&joined, &image).await {
                tracing::warn!(node = id, %image, error = %e, "could not copy an image to a new node");
            }
        }
        Ok(joined)
    }

    /// Every node with its state from the swarm (admins). While the cluster is off, no state.
    pub async fn list_with_state(&self, who: &Principal) -> Result<Vec<(Node, Option<NodeState>)>> {
        let nodes = self.list(who)?;
        if !self.swarm.enabled() {
            return Ok(nodes.into_iter().map(|n| (n, None)).collect());
        }
        let swarm: HashMap<String, crate::docker::SwarmNode> =
            match self.swarm.manager().swarm_nodes().await {
                Ok(found) => found.into_iter().map(|n| (n.id.clone(), n)).collect(),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot list the swarm's nodes");
                    HashMap::new()
                }
            };
        Ok(nodes
            .into_iter()
            .map(|n| {
                let state = match n.swarm_id.as_ref().and_then(|id| swarm.get(id)) {
                    Some(s) => NodeState {
                        state: if s.draining {
                            "draining".into()
                        } else {
                            s.state.clone()
                        },
                        cpus: s.nano_cpus as f64 / 1e9,
                        memory_mb: (s.memory_bytes / (1024 * 1024)) as u64,
                    },
                    None => NodeState {
                        state: "not joined".into(),
                        ..Default::default()
                    },
                };
                (n, Some(state))
            })
            .collect())
    }

    /// Drains a node, waits until its tasks run elsewhere, makes it leave the swarm and removes
    /// it. Refused for the last node of a region that holds apps.
    pub(super) async fn remove_from_cluster(&self, who: &Principal, node: &Node) -> Result<()> {
        let (id, region) = (node.id, node.region_id);
        let entry = who.audit(
            crate::domain::AuditAction::NodeDelete,
            None,
            format!("'{}' (#{}) {}, drained", node.name, node.id, node.endpoint),
        );
        let (others, apps) = self.store.read(|r| {
            let others = r
                .nodes()?
                .into_iter()
                .filter(|n| n.region_id == region && n.id != id)
                .count();
            let apps = r
                .instances_where(
                    crate::store::Slice {
                        offset: 0,
                        limit: 1,
                    },
                    |i| i.region_id == region,
                )?
                .total;
            Ok((others, apps))
        })?;
        if others == 0 && apps > 0 {
            return Err(Error::Conflict(format!(
                "node {id} is the last node of region {region}, which holds {apps} app(s); add \
                 another node to the region or delete its apps first"
            )));
        }
        let sid = node.swarm_id.clone().unwrap_or_default();
        let manager = self.swarm.manager();
        manager.update_swarm_node(&sid, &[], true).await?;
        let deadline = tokio::time::Instant::now() + DRAIN_WAIT;
        loop {
            let left = manager
                .tasks(None, Some(&sid))
                .await?
                .into_iter()
                .filter(|t| t.desired_running || t.state == "running")
                .count();
            let moved = left == 0 && self.region_serves(region).await?;
            if moved {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(Error::Unavailable(format!(
                    "node {id} is draining but its tasks have not moved within {} s; try again",
                    DRAIN_WAIT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let engine = node_engine(node, self.swarm.tls_root());
        match tokio::time::timeout(Duration::from_secs(10), engine.swarm_leave()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(node = id, error = %e, "the node could not leave the swarm")
            }
            Err(_) => tracing::warn!(node = id, "the node did not answer; removing it anyway"),
        }
        manager.remove_swarm_node(&sid).await?;
        let other = self.store.read(|r| {
            Ok(r.nodes()?
                .into_iter()
                .find(|n| n.region_id == region && n.id != id)
                .map(|n| n.id))
        })?;
        self.store
            .write_async(move |w| {
                if let Some(other) = other {
                    for mut inst in w
                        .instances_where(crate::store::Slice::ALL, |i| i.node_id == id)?
                        .items
                    {
                        inst.node_id = other;
                        w.put_instance(&inst)?;
                    }
                }
                w.audit(entry)?;
                w.delete_node(id)
            })
            .await?;
        self.forget(id).await;
        Ok(())
    }

    /// Every service of the region that should run has a running task.
    async fn region_serves(&self, region: u64) -> Result<bool> {
        let manager = self.swarm.manager();
        let mut filters = vec![format!("{REGION_LABEL}={region}")];
        filters.push(crate::docker::LABEL.to_string());
        for s in manager.services(&filters).await? {
            if s.replicas > 0
                && !manager
                    .tasks(Some(&s.id), None)
                    .await?
                    .iter()
                    .any(|t| t.desired_running && t.state == "running")
            {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::endpoint_host;

    #[test]
    fn the_host_of_an_endpoint_is_found_whatever_its_scheme() {
        assert_eq!(endpoint_host("tcp://10.0.0.2:2376"), Some("10.0.0.2"));
        assert_eq!(endpoint_host("ssh://deploy@node-2.lan"), Some("node-2.lan"));
        assert_eq!(endpoint_host("tcp://[fd00::2]:2376"), Some("fd00::2"));
        assert_eq!(endpoint_host("tcp://"), None);
    }
}
