//! Records of the deploy engine: releases, builds, and which container serves an app.

use super::ConfigKey;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ReleaseStatus {
    /// Serving now (or would be, if the app were started).
    Current,
    /// Served before; can be rolled back to while its image exists.
    Superseded,
}

/// A numbered release: an image plus the config it runs with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Release {
    pub app: String,
    pub version: u32,
    /// `scalefog/<app>:v<N>` of the build that produced the image (rollbacks and config changes
    /// reuse an earlier release's image).
    pub image: String,
    /// The git commit the image was built from.
    pub commit: String,
    /// Config vars this release runs with.
    pub env: BTreeMap<ConfigKey, String>,
    /// Username of who made it.
    pub created_by: String,
    pub created_at: i64,
    pub status: ReleaseStatus,
    /// What made it: `deploy abc1234`, `rollback to v2`, `set FOO, BAR`.
    pub description: String,
    pub build_id: Option<u64>,
    /// The Procfile's process types and commands; empty without a Procfile (then `web` runs the
    /// image's own command).
    #[serde(default)]
    pub processes: BTreeMap<String, String>,
    /// The Procfile's `release:` command, run once before the release serves.
    #[serde(default)]
    pub release_command: Option<String>,
    /// `app.json`'s scheduled jobs.
    #[serde(default)]
    pub cron: Vec<super::CronJob>,
    /// The image reference it was pulled from, for a release of an image app (`None`: built
    /// from a commit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_image: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BuildStatus {
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl BuildStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BuildStatus::Running => "running",
            BuildStatus::Succeeded => "succeeded",
            BuildStatus::Failed => "failed",
            BuildStatus::Cancelled => "cancelled",
        }
    }
}

/// One attempt to build and release a pushed commit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Build {
    pub id: u64,
    pub app: String,
    pub commit: String,
    pub branch: String,
    pub status: BuildStatus,
    /// The release it produced, when it succeeded.
    pub release: Option<u32>,
    pub created_by: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    /// Why it failed, in one line.
    pub error: Option<String>,
    /// The image reference pulled, for a deploy of an image app (then `commit` and `branch` are
    /// empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_image: Option<String>,
}

/// The processes an app's current release runs in: what the router points at (its `web`
/// replicas) and what reconcile keeps running.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(from = "StoredDeployment")]
pub struct Deployment {
    pub app: String,
    pub release: u32,
    pub processes: Vec<DeployedProcess>,
}

/// One process of a deployment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeployedProcess {
    /// Its process type (`web`, `worker`, …).
    #[serde(rename = "type")]
    pub kind: String,
    /// 1-based, as in `web.1`.
    pub replica: u8,
    /// Its id in the runtime.
    pub id: String,
}

impl DeployedProcess {
    /// `web.1`, as logs and pages name it.
    pub fn label(&self) -> String {
        format!("{}.{}", self.kind, self.replica)
    }
}

impl Deployment {
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.processes.iter().map(|p| p.id.as_str())
    }
    pub fn contains(&self, id: &str) -> bool {
        self.ids().any(|p| p == id)
    }
}

/// A deployment as stored: before process types, one `container` (the web process).
#[derive(Deserialize)]
struct StoredDeployment {
    app: String,
    release: u32,
    #[serde(default)]
    processes: Vec<DeployedProcess>,
    #[serde(default)]
    container: Option<String>,
}

impl From<StoredDeployment> for Deployment {
    fn from(s: StoredDeployment) -> Deployment {
        let mut processes = s.processes;
        if let Some(id) = s.container {
            processes.push(DeployedProcess {
                kind: super::WEB.to_string(),
                replica: 1,
                id,
            });
        }
        Deployment {
            app: s.app,
            release: s.release,
            processes,
        }
    }
}
