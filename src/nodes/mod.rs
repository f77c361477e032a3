//! Regions and nodes: where apps run. A node is a Docker Engine endpoint in a region. The local
//! engine is node 1 in region 1, created at first start.

use crate::accounts::{Principal, require_admin};
use crate::domain::{self, AuditAction, Error, Node, Region, Result};
use crate::store::Store;

#[derive(Clone)]
pub struct Nodes {
    store: Store,
}

/// What an admin gives to add a node.
#[derive(Debug, Default)]
pub struct NewNode {
    pub name: String,
    pub region: Option<String>,
    pub endpoint: String,
    pub tags: Vec<String>,
    pub ram_mb: u64,
    pub disk_gb: u64,
    pub cpus: f64,
}

impl Nodes {
    pub fn new(store: Store) -> Nodes {
        Nodes { store }
    }

    /// Creates region 1 and node 1 (the local engine) on first start; later starts only keep the
    /// local node's endpoint in step with the `docker_host` setting.
    pub fn ensure_local(&self, region_name: &str, docker_host: &str) -> Result<()> {
        let (region_name, docker_host) = (region_name.to_string(), docker_host.to_string());
        self.store.write(move |w| {
            if w.region(1)?.is_none() {
                w.put_region(&Region {
                    id: 1,
                    name: region_name,
                })?;
                w.next_id("region")?;
            }
            match w.node(1)? {
                Some(mut n) if n.endpoint != docker_host => {
                    n.endpoint = docker_host;
                    w.put_node(&n)
                }
                Some(_) => Ok(()),
                None => {
                    w.next_id("node")?;
                    w.put_node(&Node {
                        id: 1,
                        name: "local".into(),
                        region_id: 1,
                        endpoint: docker_host,
                        tags: vec!["local".into()],
                        ram_mb: 0,
                        disk_gb: 0,
                        cpus: 0.0,
                        created_at: domain::now(),
                    })
                }
            }
        })
    }

    pub fn list(&self, who: &Principal) -> Result<Vec<Node>> {
        require_admin(who)?;
        self.store.read(|r| r.nodes())
    }

    pub fn get(&self, id: u64) -> Result<Option<Node>> {
        self.store.read(|r| r.node(id))
    }

    pub async fn create(&self, who: &Principal, new: NewNode) -> Result<Node> {
        require_admin(who)?;
        let name = new.name.trim().to_string();
        if name.is_empty() {
            return Err(Error::missing("name"));
        }
        let endpoint = new.endpoint.trim().to_string();
        if endpoint.is_empty() {
            return Err(Error::missing("address"));
        }
        if !(endpoint.starts_with("unix://")
            || endpoint.starts_with("tcp://")
            || endpoint.starts_with("http://"))
        {
            return Err(Error::invalid(
                "address",
                "node address must be unix:///path or tcp://host:port",
            ));
        }
        let region_want = new.region.unwrap_or_else(|| "1".into());
        let region = self
            .store
            .read(|r| r.regions())?
            .into_iter()
            .find(|r| r.id.to_string() == region_want || r.name.eq_ignore_ascii_case(&region_want))
            .ok_or_else(|| Error::invalid("region", format!("unknown region '{region_want}'")))?;
        let who = who.clone();
        self.store
            .write_async(move |w| {
                if w.nodes()?.iter().any(|n| n.name == name) {
                    return Err(Error::Conflict(format!("a node named '{name}' exists")));
                }
                let node = Node {
                    id: w.next_id("node")?,
                    name,
                    region_id: region.id,
                    endpoint,
                    tags: new.tags,
                    ram_mb: new.ram_mb,
                    disk_gb: new.disk_gb,
                    cpus: new.cpus,
                    created_at: domain::now(),
                };
                w.put_node(&node)?;
                w.audit(who.audit(
                    AuditAction::NodeCreate,
                    None,
                    format!("'{}' (#{}) {}", node.name, node.id, node.endpoint),
                ))?;
                Ok(node)
            })
            .await
    }

    pub async fn delete(&self, who: &Principal, id: &str) -> Result<()> {
        require_admin(who)?;
        let id: u64 = id
            .trim()
            .parse()
            .map_err(|_| Error::invalid("nodeId", "node id must be a number"))?;
        if id == 1 {
            return Err(Error::Forbidden(
                "node 1 is the local engine and cannot be deleted".into(),
            ));
        }
        let who = who.clone();
        self.store
            .write_async(move |w| {
                let Some(node) = w.node(id)? else {
                    return Err(Error::NotFound(format!("no node {id}")));
                };
                if w.instances_where(
                    crate::store::Slice {
                        offset: 0,
                        limit: 1,
                    },
                    |i| i.node_id == id,
                )?
                .total
                    > 0
                {
                    return Err(Error::Conflict(format!(
                        "node {id} still runs apps; delete or move them first"
                    )));
                }
                w.delete_node(id)?;
                w.audit(who.audit(
                    AuditAction::NodeDelete,
                    None,
                    format!("'{}' (#{}) {}", node.name, node.id, node.endpoint),
                ))
            })
            .await
    }
}
