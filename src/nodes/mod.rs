//! Regions and nodes: where apps run. A node is a Docker Engine endpoint in a region. The local
//! engine is node 1 in region 1, created at first start. Once the cluster is on (`cluster.rs`),
//! a node added here joins the Docker Swarm and the region is a placement constraint.

mod cluster;
mod placement;
mod registry;
pub mod ssh_key;

pub use cluster::{ClusterInfo, NodeState};
pub use placement::{PlacedNode, Placement, ProcessPlacement};
pub use registry::{RegistryInfo, RegistrySettings};

use crate::accounts::{Principal, require_admin};
use crate::domain::{self, AuditAction, Error, Node, Region, Result};
use crate::runtime::Swarm;
use crate::store::Store;

#[derive(Clone)]
pub struct Nodes {
    store: Store,
    /// The cluster runtime: the swarm manager (the local engine) and image delivery.
    swarm: Swarm,
}

/// What an admin gives to add a node. `ram`, `disk` and `processor` are kept as given (the panel
/// document has them as strings); the numbers in them are read where there are some.
#[derive(Debug, Default)]
pub struct NewNode {
    pub name: String,
    pub region: Option<String>,
    pub endpoint: String,
    pub tags: Vec<String>,
    pub ram: String,
    pub disk: String,
    pub processor: String,
    pub port: String,
    /// Plain `tcp://` without TLS is refused unless this is set.
    pub insecure: bool,
    /// TLS client files for a `tcp://` engine started with `--tlsverify`.
    pub tls: Option<TlsFiles>,
}

/// The PEM files `docker --tlsverify` uses: the CA that signed the engine's certificate, and the
/// client's certificate and key.
#[derive(Debug, Default, Clone)]
pub struct TlsFiles {
    pub ca: String,
    pub cert: String,
    pub key: String,
}

/// The number a panel string starts with (`"4096"`, `"16 GB"`, `"2.5"`), scaled by its unit
/// letter (`g`/`t` times 1024 per step from `base`); `None` when it has none.
fn leading_number(s: &str, base: char) -> Option<f64> {
    let s = s.trim();
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let n: f64 = s[..end].parse().ok()?;
    let unit = s[end..]
        .trim()
        .chars()
        .next()
        .map(|c| c.to_ascii_lowercase());
    let steps = |c: char| "kmgtp".find(c).map(|i| i as i32);
    Some(match (unit.and_then(steps), steps(base)) {
        (Some(u), Some(b)) => n * 1024f64.powi(u - b),
        _ => n,
    })
}

impl Nodes {
    pub fn new(store: Store, swarm: Swarm) -> Nodes {
        Nodes { store, swarm }
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
                        ram: String::new(),
                        disk: String::new(),
                        processor: String::new(),
                        port: String::new(),
                        insecure: false,
                        swarm_id: None,
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
        let plain = endpoint.starts_with("tcp://") || endpoint.starts_with("http://");
        if !(plain || endpoint.starts_with("unix://") || endpoint.starts_with("ssh://")) {
            return Err(Error::invalid(
                "address",
                "node address must be tcp://host:port (TLS), ssh://user@host or unix:///path",
            ));
        }
        if let Some(rest) = endpoint.strip_prefix("ssh://") {
            check_ssh_destination(rest)?;
        }
        if plain && new.tls.is_none() && !new.insecure {
            return Err(Error::invalid(
                "address",
                "a tcp:// engine needs TLS client certificates (ca, cert, key); plain tcp:// \
                 gives root on that machine to anyone who reaches the port: pass insecure: true \
                 only on a private network",
            ));
        }
        let region_want = new.region.clone().unwrap_or_else(|| "1".into());
        let region = self
            .store
            .read(|r| r.regions())?
            .into_iter()
            .find(|r| r.id.to_string() == region_want || r.name.eq_ignore_ascii_case(&region_want))
            .ok_or_else(|| Error::invalid("region", format!("unknown region '{region_want}'")))?;
        let who = who.clone();
        let tls = new.tls.clone();
        let node = self
            .store
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
                    ram_mb: leading_number(&new.ram, 'm').map_or(0, |n| n as u64),
                    disk_gb: leading_number(&new.disk, 'g').map_or(0, |n| n as u64),
                    cpus: leading_number(&new.processor, '_').unwrap_or(0.0),
                    created_at: domain::now(),
                    ram: new.ram,
                    disk: new.disk,
                    processor: new.processor,
                    port: new.port,
                    insecure: new.insecure,
                    swarm_id: None,
                };
                w.put_node(&node)?;
                w.audit(who.audit(
                    AuditAction::NodeCreate,
                    None,
                    format!("'{}' (#{}) {}", node.name, node.id, node.endpoint),
                ))?;
                Ok(node)
            })
            .await?;
        if let Some(tls) = tls
            && let Err(e) = self.save_tls(node.id, &tls)
        {
            self.forget(node.id).await;
            return Err(e);
        }
        if self.swarm.enabled() {
            match self.join(&node).await {
                Ok(joined) => return Ok(joined),
                Err(e) => {
                    self.forget(node.id).await;
                    return Err(e);
                }
            }
        }
        Ok(node)
    }

    /// Keeps a node's TLS client files where [`crate::runtime::swarm::node_engine`] finds them.
    fn save_tls(&self, id: u64, tls: &TlsFiles) -> Result<()> {
        let dir = self.swarm.tls_root().join(id.to_string());
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::internal(format!("creating {}: {e}", dir.display())))?;
        for (file, pem) in [
            ("ca.pem", &tls.ca),
            ("cert.pem", &tls.cert),
            ("key.pem", &tls.key),
        ] {
            if !pem.contains("-----BEGIN") {
                return Err(Error::invalid(
                    file.trim_end_matches(".pem"),
                    "must be a PEM file's text",
                ));
            }
            crate::fsutil::write_private(&dir.join(file), pem.as_bytes())?;
        }
        Ok(())
    }

    /// Removes a node's record and files after a failed addition (or its removal).
    async fn forget(&self, id: u64) {
        let _ = std::fs::remove_dir_all(self.swarm.tls_root().join(id.to_string()));
        let _ = self.store.write_async(move |w| w.delete_node(id)).await;
    }

    /// Adds a region (admins).
    pub async fn create_region(&self, who: &Principal, name: &str) -> Result<Region> {
        require_admin(who)?;
        let name = name.trim().to_string();
        if name.is_empty() {
            return Err(Error::missing("name"));
        }
        if name.len() > 64 {
            return Err(Error::invalid("name", "at most 64 characters"));
        }
        self.store
            .write_async(move |w| {
                if w.regions()?
                    .iter()
                    .any(|r| r.name.eq_ignore_ascii_case(&name))
                {
                    return Err(Error::Conflict(format!("a region named '{name}' exists")));
                }
                let region = Region {
                    id: w.next_id("region")?,
                    name,
                };
                w.put_region(&region)?;
                Ok(region)
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
        let node = self
            .get(id)?
            .ok_or_else(|| Error::NotFound(format!("no node {id}")))?;
        if node.swarm_id.is_some() && self.swarm.enabled() {
            return self.remove_from_cluster(who, &node).await;
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
            .await?;
        self.forget(id).await;
        Ok(())
    }
}

/// `user@host` (or `host`) of an `ssh://` endpoint. The ssh client is handed the destination
/// as it is, so a port or path would become part of the host name: refuse them, saying what
/// works instead.
fn check_ssh_destination(rest: &str) -> Result<()> {
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    if host.is_empty() {
        return Err(Error::invalid(
            "address",
            "ssh:// needs a host: ssh://user@host",
        ));
    }
    if host.contains([':', '/']) {
        return Err(Error::invalid(
            "address",
            "ssh:// endpoints take user@host only and connect on port 22; for another port, \
             give the machine a Host entry with its Port in the ssh config of the user Scalefog \
             runs as, and use ssh://user@that-name",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_ssh_destination;

    #[test]
    fn an_ssh_endpoint_is_user_at_host_without_port_or_path() {
        assert!(check_ssh_destination("deploy@node-2.lan").is_ok());
        assert!(check_ssh_destination("10.0.0.5").is_ok());
        for bad in ["deploy@node-2.lan:2222", "deploy@", "host/path", ""] {
            let e = check_ssh_destination(bad).unwrap_err().to_string();
            assert!(e.contains("ssh://"), "{bad}: {e}");
        }
    }
}
