//! JSON shapes of the API, kept apart from the stored records so either can change alone.

use crate::domain::{
    ApiKey, Instance, Limits, Node, QuotaUse, Region, SshKey, User, UserId, UserQuota, rfc3339,
};
use crate::services::Services;
use serde::Serialize;
use std::collections::HashMap;

#[derive(Serialize, utoipa::ToSchema)]
pub struct UserView {
    pub id: String,
    pub username: String,
    pub email: String,
    pub admin: bool,
    pub created_at: String,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        UserView {
            id: u.id.to_string(),
            username: u.username.clone(),
            email: u.email.clone(),
            admin: u.admin,
            created_at: rfc3339(u.created_at),
        }
    }
}

/// A user's quota as an admin reads it: the limits that apply (their own, else the
/// installation's; `null`: none) and what their apps take now.
#[derive(Serialize, utoipa::ToSchema)]
pub struct QuotaView {
    pub max_apps: Option<u32>,
    /// MiB
    pub max_memory: Option<u64>,
    pub apps: u64,
    /// MiB
    pub memory: u64,
    pub max_replicas: Option<u32>,
    /// Processes of every type, by the apps' formations.
    pub replicas: u64,
    /// Which limits are the user's own rather than the installation's.
    pub own: Vec<&'static str>,
}

impl QuotaView {
    pub fn new(limits: &Limits, quota: &UserQuota, used: QuotaUse) -> QuotaView {
        let mut own = vec![];
        if quota.max_apps.is_some() {
            own.push("max_apps");
        }
        if quota.max_memory_mb.is_some() {
            own.push("max_memory");
        }
        if quota.max_replicas.is_some() {
            own.push("max_replicas");
        }
        QuotaView {
            max_apps: limits.max_apps(quota),
            max_memory: limits.max_memory_mb(quota),
            apps: used.apps,
            memory: used.memory_mb,
            max_replicas: limits.max_replicas(quota),
            replicas: used.replicas,
            own,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct InstanceView {
    pub id: String,
    pub name: String,
    pub owner: String,
    pub region: String,
    pub region_name: String,
    pub node: String,
    pub status: &'static str,
    pub url: String,
    pub git_remote: String,
    pub release: Option<u32>,
    /// MiB
    pub memory: u32,
    /// cores
    pub cpu: f64,
    pub port: u16,
    pub health_path: String,
    pub deploy_branch: String,
    pub domains: Vec<String>,
    pub read_only_rootfs: bool,
    pub created_at: String,
    /// Where each process of its current release runs (`GET /v1/instances/{name}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processes: Option<Vec<ProcessPlacementView>>,
    /// With the cluster on, the node its volumes pin it to (`GET /v1/instances/{name}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pinned_to: Option<PinnedView>,
}

/// One process of an app and the node it runs on.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ProcessPlacementView {
    /// `web.1`
    pub process: String,
    /// Its process type.
    #[serde(rename = "type")]
    pub kind: String,
    pub replica: u8,
    /// The node's id; `null` while the swarm has not placed it.
    pub node: Option<String>,
    pub node_name: Option<String>,
}

/// The node an app's volumes keep it on, and why.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PinnedView {
    pub node: String,
    pub node_name: String,
    /// `volumes pin this app to node 1 (local): its processes run there only`
    pub reason: String,
}

impl InstanceView {
    /// With where its processes run and what pins it.
    pub fn with_placement(mut self, p: &crate::nodes::Placement) -> InstanceView {
        self.processes = Some(
            p.processes
                .iter()
                .map(|pp| ProcessPlacementView {
                    process: pp.label(),
                    kind: pp.kind.clone(),
                    replica: pp.replica,
                    node: pp.node.as_ref().map(|n| n.id.to_string()),
                    node_name: pp.node.as_ref().map(|n| n.name.clone()),
                })
                .collect(),
        );
        self.pinned_to = p.pinned_to.as_ref().map(|n| PinnedView {
            node: n.id.to_string(),
            node_name: n.name.clone(),
            reason: p.pin_reason().unwrap_or_default(),
        });
        self
    }
}

/// Renders instances, looking each owner and region up once per batch.
pub struct InstanceRenderer<'a> {
    services: &'a Services,
    owners: HashMap<UserId, String>,
    regions: HashMap<u64, String>,
}

impl<'a> InstanceRenderer<'a> {
    pub fn new(services: &'a Services) -> Self {
        let regions = services
            .apps
            .regions()
            .unwrap_or_default()
            .into_iter()
            .map(|r| (r.id, r.name))
            .collect();
        InstanceRenderer {
            services,
            owners: HashMap::new(),
            regions,
        }
    }

    pub fn render(&mut self, i: &Instance) -> InstanceView {
        let services = self.services;
        let owner = self
            .owners
            .entry(i.owner_id)
            .or_insert_with(|| {
                services
                    .accounts
                    .user(i.owner_id)
                    .ok()
                    .flatten()
                    .map(|u| u.username)
                    .unwrap_or_default()
            })
            .clone();
        let links = services.apps.links();
        InstanceView {
            id: i.name.clone(),
            name: i.name.clone(),
            owner,
            region: i.region_id.to_string(),
            region_name: self.regions.get(&i.region_id).cloned().unwrap_or_default(),
            node: i.node_id.to_string(),
            status: i.status.as_str(),
            url: links.url(&i.name),
            git_remote: links.git_remote(&i.name),
            release: i.release,
            memory: i.memory_mb,
            cpu: i.cpu,
            port: i.port,
            health_path: i.health_path.to_string(),
            deploy_branch: i.deploy_branch.to_string(),
            domains: i.domains.clone(),
            read_only_rootfs: i.read_only_rootfs,
            created_at: rfc3339(i.created_at),
            processes: None,
            pinned_to: None,
        }
    }

    pub fn render_all(&mut self, items: &[Instance]) -> Vec<InstanceView> {
        items.iter().map(|i| self.render(i)).collect()
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SshKeyView {
    pub id: String,
    pub fingerprint: String,
    pub algorithm: String,
    pub public_key: String,
    pub comment: String,
    pub created_at: String,
}

impl From<&SshKey> for SshKeyView {
    fn from(k: &SshKey) -> Self {
        SshKeyView {
            id: k.id.to_string(),
            fingerprint: k.fingerprint.clone(),
            algorithm: k.algorithm.clone(),
            public_key: k.public_key.clone(),
            comment: k.comment.clone(),
            created_at: rfc3339(k.created_at),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ApiKeyView {
    pub id: String,
    pub name: String,
    /// The first characters of the key, to tell keys apart.
    pub prefix: String,
    pub created_at: String,
    /// Present only in the response that created the key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl ApiKeyView {
    pub fn of(k: &ApiKey, secret: Option<String>) -> Self {
        ApiKeyView {
            id: k.id.to_string(),
            name: k.name.clone(),
            prefix: k.prefix.clone(),
            created_at: rfc3339(k.created_at),
            key: secret,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RegionView {
    pub id: String,
    pub name: String,
}

impl From<&Region> for RegionView {
    fn from(r: &Region) -> Self {
        RegionView {
            id: r.id.to_string(),
            name: r.name.clone(),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct NodeView {
    pub id: String,
    pub name: String,
    pub region: String,
    pub address: String,
    pub port: String,
    pub tags: Vec<String>,
    /// As given when the node was added (the panel's strings).
    pub ram: String,
    pub disk: String,
    pub processor: String,
    pub insecure: bool,
    /// From the swarm while the cluster is on: `ready`, `down`, `draining`, `not joined`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Resources the swarm reports for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u64>,
    pub created_at: String,
}

impl NodeView {
    pub fn with_state(n: &Node, state: Option<&crate::nodes::NodeState>) -> Self {
        let mut v = NodeView::from(n);
        if let Some(s) = state {
            v.state = Some(s.state.clone());
            v.cpus = Some(s.cpus);
            v.memory_mb = Some(s.memory_mb);
        }
        v
    }
}

impl From<&Node> for NodeView {
    fn from(n: &Node) -> Self {
        NodeView {
            id: n.id.to_string(),
            name: n.name.clone(),
            region: n.region_id.to_string(),
            address: n.endpoint.clone(),
            port: n.port.clone(),
            tags: n.tags.clone(),
            ram: n.ram.clone(),
            disk: n.disk.clone(),
            processor: n.processor.clone(),
            insecure: n.insecure,
            state: None,
            cpus: None,
            memory_mb: None,
            created_at: rfc3339(n.created_at),
        }
    }
}
