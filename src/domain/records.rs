//! The records the store keeps. They are plain data; the rules that change them live in the
//! services (`accounts`, `apps`, ...).

use super::{ConfigKey, DeployBranch, HealthPath};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub type UserId = u64;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub email: String,
    /// argon2id PHC string; never leaves the core.
    pub password_hash: String,
    pub admin: bool,
    pub created_at: i64,
    /// Limits set for this user by an admin, over the installation's defaults.
    #[serde(default)]
    pub quota: super::UserQuota,
    /// The id an admin client chose for the account (the panel's `userId`) when it is not a
    /// number; a numeric choice is the account's `id` itself. Unique, and never a username.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

/// What a stored token hash stands for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum TokenKind {
    /// Issued by `getToken` / `POST /v1/tokens`.
    Login,
    /// A named API key; the id is the key's record id.
    ApiKey(u64),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRecord {
    pub user_id: UserId,
    pub kind: TokenKind,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: u64,
    pub user_id: UserId,
    pub name: String,
    /// SHA-256 hex of the key; the key itself is shown once at creation.
    pub token_hash: String,
    /// The first characters of the key, so a user can tell keys apart.
    pub prefix: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SshKey {
    pub id: u64,
    pub user_id: UserId,
    /// `SHA256:<base64>` as OpenSSH prints it.
    pub fingerprint: String,
    pub algorithm: String,
    /// The key in OpenSSH one-line form, without its comment.
    pub public_key: String,
    pub comment: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum InstanceStatus {
    /// Waiting for the first push.
    Created,
    Building,
    Running,
    Stopped,
    Crashed,
    Failed,
    /// Deletion is under way (or was cut short and the next start finishes it): nothing runs,
    /// nothing routes, and no write but the deletion's own touches the app again.
    Deleting,
}

impl InstanceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceStatus::Created => "created",
            InstanceStatus::Building => "building",
            InstanceStatus::Running => "running",
            InstanceStatus::Stopped => "stopped",
            InstanceStatus::Crashed => "crashed",
            InstanceStatus::Failed => "failed",
            InstanceStatus::Deleting => "deleting",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Instance {
    pub name: String,
    pub owner_id: UserId,
    pub region_id: u64,
    pub node_id: u64,
    pub status: InstanceStatus,
    /// The release currently serving (or last served), if any.
    pub release: Option<u32>,
    /// Memory limit in MiB.
    pub memory_mb: u32,
    /// CPU limit in cores (0.5 = half a core).
    pub cpu: f64,
    pub health_path: HealthPath,
    pub deploy_branch: DeployBranch,
    pub port: u16,
    pub env: BTreeMap<ConfigKey, String>,
    /// Config var names marked secret: their values are shown masked once set. A name stays
    /// secret after its var is unset (a rollback may bring the value back) until unmarked.
    #[serde(default)]
    pub secret_env: std::collections::BTreeSet<ConfigKey>,
    pub domains: Vec<String>,
    pub created_at: i64,
    /// Persistent volumes, mounted into every process of every release.
    #[serde(default)]
    pub volumes: Vec<super::AppVolume>,
    /// Its processes' root filesystem is read-only (a tmpfs at `/tmp` stays writable).
    #[serde(default)]
    pub read_only_rootfs: bool,
    /// Replicas per process type, as set by the user (`PATCH …/formation`); a type not named
    /// runs [`super::DEFAULT_REPLICAS`].
    #[serde(default)]
    pub formation: BTreeMap<String, u8>,
}

/// What the API and the console show instead of a secret config var's value. Sending it back
/// as the value of that var (a read-modify-write client) leaves the value as it is.
pub const MASKED_VALUE: &str = "********";

impl Instance {
    pub fn is_secret(&self, key: &str) -> bool {
        self.secret_env.contains(key)
    }

    /// The config vars as people may see them: secret values masked.
    pub fn shown_env(&self) -> BTreeMap<String, String> {
        self.env
            .iter()
            .map(|(k, v)| {
                let v = if self.is_secret(k) {
                    MASKED_VALUE.to_string()
                } else {
                    v.clone()
                };
                (k.to_string(), v)
            })
            .collect()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Region {
    pub id: u64,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Node {
    pub id: u64,
    pub name: String,
    pub region_id: u64,
    /// Docker endpoint: `unix:///…` or `tcp://host:port`.
    pub endpoint: String,
    pub tags: Vec<String>,
    pub ram_mb: u64,
    pub disk_gb: u64,
    pub cpus: f64,
    pub created_at: i64,
    /// The panel's fields as the admin gave them (strings in the panel document); the numbers
    /// above are what could be read from them.
    #[serde(default)]
    pub ram: String,
    #[serde(default)]
    pub disk: String,
    #[serde(default)]
    pub processor: String,
    #[serde(default)]
    pub port: String,
    /// Plain `tcp://` without TLS: accepted only when the admin said so.
    #[serde(default)]
    pub insecure: bool,
    /// Its id in the Docker Swarm, once joined (cluster on).
    #[serde(default)]
    pub swarm_id: Option<String>,
}

/// The cluster, once an admin turned it on: the local engine manages a Docker Swarm and apps'
/// processes run as swarm services. Absent: plain containers on the local engine.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cluster {
    /// The address other machines reach this one at (the swarm's advertise address).
    pub advertise: String,
    /// The local engine's node id in the swarm.
    pub manager_id: String,
    pub since: i64,
}

pub const DEFAULT_MEMORY_MB: u32 = 256;
pub const DEFAULT_CPU: f64 = 1.0;
pub const DEFAULT_PORT: u16 = 5000;
