//! The plain rows pages show, built from core records, and how times, numbers and statuses
//! read: templates only format, and no rule is decided in a template.

use crate::domain::{
    ApiKey, Build, BuildStatus, Instance, InstanceStatus, Node, Region, Release, SshKey, User,
    rfc3339, short_commit,
};
use crate::services::Services;
use std::collections::HashMap;

/// A status as people read it, with the CSS class of its badge.
pub struct StatusView {
    pub class: &'static str,
    pub label: &'static str,
    pub hint: &'static str,
}

pub fn status_view(s: InstanceStatus) -> StatusView {
    let (class, label, hint) = match s {
        InstanceStatus::Created => (
            "created",
            "Waiting for first push",
            "Push your code to deploy the first release.",
        ),
        InstanceStatus::Building => ("building", "Building", "A release is being built."),
        InstanceStatus::Running => ("running", "Running", "Serving traffic."),
        InstanceStatus::Stopped => (
            "stopped",
            "Stopped",
            "Not serving; start it to serve again.",
        ),
        InstanceStatus::Crashed => ("crashed", "Crashed", "The app's process exited."),
        InstanceStatus::Failed => ("failed", "Failed", "The last deploy did not succeed."),
        InstanceStatus::Deleting => (
            "stopped",
            "Deleting",
            "Being deleted; delete it again if this stays.",
        ),
    };
    StatusView { class, label, hint }
}

pub struct AppRow {
    pub name: String,
    pub status: StatusView,
    pub url: String,
    pub release: String,
    pub region: String,
    pub owner: String,
}

/// Turns instances into rows, looking each region and owner up once.
pub struct AppRows<'a> {
    services: &'a Services,
    regions: Vec<Region>,
    owners: HashMap<u64, String>,
}

impl<'a> AppRows<'a> {
    pub fn new(services: &'a Services) -> AppRows<'a> {
        AppRows {
            services,
            regions: services.apps.regions().unwrap_or_default(),
            owners: HashMap::new(),
        }
    }
    pub fn row(&mut self, i: &Instance) -> AppRow {
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
                    .map_or_else(|| format!("user {}", i.owner_id), |u| u.username)
            })
            .clone();
        AppRow {
            name: i.name.clone(),
            status: status_view(i.status),
            url: services.apps.links().url(&i.name),
            release: release_label(i.release),
            region: region_name(&self.regions, i.region_id),
            owner,
        }
    }
}

/// `v3`, or `—` before the first release.
pub fn release_label(release: Option<u32>) -> String {
    release.map_or_else(|| "—".to_string(), |v| format!("v{v}"))
}

/// A region's name; `region 3` for one that is not in `regions`.
pub fn region_name(regions: &[Region], id: u64) -> String {
    regions
        .iter()
        .find(|r| r.id == id)
        .map_or_else(|| format!("region {id}"), |r| r.name.clone())
}

pub struct SshKeyRow {
    pub id: u64,
    pub fingerprint: String,
    pub algorithm: String,
    pub comment: String,
    pub added: String,
}

impl From<&SshKey> for SshKeyRow {
    fn from(k: &SshKey) -> Self {
        SshKeyRow {
            id: k.id,
            fingerprint: k.fingerprint.clone(),
            algorithm: k.algorithm.clone(),
            comment: k.comment.clone(),
            added: date(k.created_at),
        }
    }
}

pub struct ApiKeyRow {
    pub id: u64,
    pub name: String,
    pub prefix: String,
    pub created: String,
}

impl From<&ApiKey> for ApiKeyRow {
    fn from(k: &ApiKey) -> Self {
        ApiKeyRow {
            id: k.id,
            name: k.name.clone(),
            prefix: k.prefix.clone(),
            created: date(k.created_at),
        }
    }
}

pub struct UserRow {
    pub id: u64,
    pub username: String,
    pub email: String,
    pub admin: bool,
    pub created: String,
    pub apps: u64,
    pub is_me: bool,
}

impl UserRow {
    pub fn new(u: &User, apps: u64, me: u64) -> UserRow {
        UserRow {
            id: u.id,
            username: u.username.clone(),
            email: u.email.clone(),
            admin: u.admin,
            created: date(u.created_at),
            apps,
            is_me: u.id == me,
        }
    }
}

pub struct NodeRow {
    pub id: u64,
    pub name: String,
    pub region: String,
    pub endpoint: String,
    pub tags: String,
    pub capacity: String,
    pub apps: u64,
    /// From the swarm while the cluster is on (`ready`, `down`, `draining`, `not joined`);
    /// empty while it is off.
    pub state: String,
    /// The badge class of the state.
    pub state_class: &'static str,
    /// CPUs and memory the swarm reports for it.
    pub resources: String,
    /// The processes it runs: `shop web.1`.
    pub processes: Vec<String>,
}

impl NodeRow {
    pub fn new(n: &Node, region: String, apps: u64) -> NodeRow {
        let mut cap = vec![];
        if n.cpus > 0.0 {
            cap.push(format!("{} CPU", trim_float(n.cpus)));
        }
        if n.ram_mb > 0 {
            cap.push(format!("{} MiB RAM", n.ram_mb));
        }
        if n.disk_gb > 0 {
            cap.push(format!("{} GB disk", n.disk_gb));
        }
        NodeRow {
            id: n.id,
            name: n.name.clone(),
            region,
            endpoint: n.endpoint.clone(),
            tags: n.tags.join(", "),
            capacity: if cap.is_empty() {
                "not declared".into()
            } else {
                cap.join(" · ")
            },
            apps,
            state: String::new(),
            state_class: "",
            resources: String::new(),
            processes: Vec::new(),
        }
    }

    /// With its state and resources from the swarm (the cluster on).
    pub fn with_state(mut self, state: Option<&crate::nodes::NodeState>) -> NodeRow {
        if let Some(s) = state {
            self.state_class = match s.state.as_str() {
                "ready" => "running",
                "draining" => "building",
                "not joined" => "created",
                _ => "failed",
            };
            self.state = s.state.clone();
            if s.cpus > 0.0 || s.memory_mb > 0 {
                self.resources = format!("{} CPU · {} MiB", trim_float(s.cpus), s.memory_mb);
            }
        }
        self
    }
}

/// The cluster as the Nodes page shows it (admins only: it holds the join command).
pub struct ClusterCard {
    pub advertise: String,
    pub since: String,
    /// The manager: the local engine's node and its swarm id.
    pub manager: String,
    /// `docker swarm join …`, or why it cannot be shown now.
    pub join_command: Result<String, String>,
}

/// Where one process of an app runs, for the app page.
pub struct PlacementRow {
    /// `web.1`
    pub process: String,
    /// `edge-1 (node 2)`, or that it is not placed yet.
    pub node: String,
}

pub struct RegionRow {
    pub id: u64,
    pub name: String,
    pub nodes: u64,
    pub apps: u64,
}

/// A one-off run of the app, for its Runs card.
pub struct RunRow {
    pub id: u64,
    pub command: String,
    pub status: &'static str,
    pub exit_code: String,
    pub user: String,
    pub when: String,
    pub when_title: String,
    pub output: String,
}

impl RunRow {
    pub fn new(r: &crate::domain::RunRecord) -> RunRow {
        RunRow {
            id: r.id,
            // Quoted as it would be typed, so `sh -c 'a; b'` reads as one argument.
            command: shlex::try_join(r.command.iter().map(String::as_str))
                .unwrap_or_else(|_| r.command.join(" ")),
            status: r.status.as_str(),
            exit_code: r.exit_code.map(|c| c.to_string()).unwrap_or_default(),
            user: r.user.clone(),
            when: ago(r.started_at),
            when_title: datetime(r.started_at),
            output: match &r.error {
                Some(e) => format!("{}\n({e})", r.output),
                None => r.output.clone(),
            },
        }
    }
}

/// A scheduled job of the app, for its Scheduled jobs card.
pub struct CronJobRow {
    pub command: String,
    pub schedule: String,
    pub next: String,
}

/// One run (or skipped run) of a scheduled job.
pub struct CronRunRow {
    pub command: String,
    pub status: String,
    pub exit_code: String,
    pub when: String,
    pub when_title: String,
    pub output: String,
}

impl CronRunRow {
    pub fn new(r: &crate::domain::CronRun) -> CronRunRow {
        CronRunRow {
            command: r.command.clone(),
            status: match r.status {
                crate::domain::CronStatus::Running => "running",
                crate::domain::CronStatus::Succeeded => "succeeded",
                crate::domain::CronStatus::Failed => "failed",
                crate::domain::CronStatus::Skipped => "skipped",
            }
            .to_string(),
            exit_code: r.exit_code.map(|c| c.to_string()).unwrap_or_default(),
            when: ago(r.due_at),
            when_title: datetime(r.due_at),
            output: r.output.clone(),
        }
    }
}

/// `2026-03-01` from a record time; the full RFC 3339 goes in the `<time>` element.
pub fn date(ts: i64) -> String {
    rfc3339(ts).chars().take(10).collect()
}

/// `1`, `0.5`: CPU counts without a trailing `.0`.
pub fn trim_float(f: f64) -> String {
    let s = format!("{f:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// `2026-03-01 14:02 UTC`, for a `title` beside a relative time.
pub fn datetime(ts: i64) -> String {
    let s = rfc3339(ts);
    match (s.get(..10), s.get(11..16)) {
        (Some(d), Some(t)) => format!("{d} {t} UTC"),
        _ => s,
    }
}

/// `just now`, `5 min ago`, `3 h ago`, `2 days ago`, then the date.
pub fn ago(ts: i64) -> String {
    let secs = (crate::domain::now() - ts).max(0);
    match secs {
        0..60 => "just now".into(),
        60..3600 => format!("{} min ago", secs / 60),
        3600..86_400 => format!("{} h ago", secs / 3600),
        86_400..172_800 => "yesterday".into(),
        172_800..1_209_600 => format!("{} days ago", secs / 86_400),
        _ => date(ts),
    }
}

/// `42 s`, `3 min 5 s`.
pub fn duration(secs: i64) -> String {
    let secs = secs.max(0);
    if secs < 60 {
        format!("{secs} s")
    } else {
        format!("{} min {} s", secs / 60, secs % 60)
    }
}

/// Which lifecycle buttons the header offers for a status. The core still decides: a button
/// shown at the wrong moment gets the core's refusal as a flash.
pub struct Actions {
    pub start: bool,
    pub stop: bool,
    pub restart: bool,
}

pub fn actions(i: &Instance) -> Actions {
    let released = i.release.is_some();
    // While a new release builds, the current one keeps serving; an action waits its turn.
    let serving = matches!(i.status, InstanceStatus::Running | InstanceStatus::Building);
    let down = matches!(
        i.status,
        InstanceStatus::Stopped | InstanceStatus::Crashed | InstanceStatus::Failed
    );
    Actions {
        start: released && down,
        stop: released && serving,
        restart: released && serving,
    }
}

pub struct ReleaseRow {
    pub version: u32,
    pub current: bool,
    pub description: String,
    /// What it was made from: `commit` (then `commit` is its short id) or `image` (the
    /// reference pulled).
    pub source: &'static str,
    pub commit: String,
    pub created_by: String,
    pub when: String,
    pub when_full: String,
    pub when_iso: String,
    pub build_id: Option<u64>,
    /// Config var names (never values) this release runs with.
    pub config_keys: String,
}

impl ReleaseRow {
    pub fn new(r: &Release, current: Option<u32>) -> ReleaseRow {
        ReleaseRow {
            version: r.version,
            current: current == Some(r.version),
            description: r.description.clone(),
            source: if r.source_image.is_some() {
                "image"
            } else {
                "commit"
            },
            commit: r
                .source_image
                .clone()
                .unwrap_or_else(|| short_commit(&r.commit).to_string()),
            created_by: r.created_by.clone(),
            when: ago(r.created_at),
            when_full: datetime(r.created_at),
            when_iso: rfc3339(r.created_at),
            build_id: r.build_id,
            config_keys: r.env.keys().cloned().collect::<Vec<_>>().join(", "),
        }
    }
}

pub struct BuildRow {
    pub id: u64,
    pub commit: String,
    pub branch: String,
    pub status: StatusView,
    pub running: bool,
    pub created_by: String,
    pub when: String,
    pub when_full: String,
    pub when_iso: String,
    /// How long it took, or has taken so far.
    pub took: String,
    pub release: Option<u32>,
    pub error: Option<String>,
}

pub fn build_status(s: BuildStatus) -> StatusView {
    let (class, label, hint) = match s {
        BuildStatus::Running => ("building", "Building", "The build is running."),
        BuildStatus::Succeeded => ("running", "Succeeded", "Built and released."),
        BuildStatus::Failed => (
            "failed",
            "Failed",
            "Nothing changed: the previous release kept serving.",
        ),
        BuildStatus::Cancelled => ("stopped", "Cancelled", "Cancelled before it was released."),
    };
    StatusView { class, label, hint }
}

impl From<&Build> for BuildRow {
    fn from(b: &Build) -> Self {
        BuildRow {
            id: b.id,
            // An image deploy has no commit or branch: its row names the image.
            commit: b
                .source_image
                .clone()
                .unwrap_or_else(|| short_commit(&b.commit).to_string()),
            branch: b.branch.clone(),
            status: build_status(b.status),
            running: b.status == BuildStatus::Running,
            created_by: b.created_by.clone(),
            when: ago(b.started_at),
            when_full: datetime(b.started_at),
            when_iso: rfc3339(b.started_at),
            took: duration(b.finished_at.unwrap_or_else(crate::domain::now) - b.started_at),
            release: b.release,
            error: b.error.clone(),
        }
    }
}

pub struct ConfigVar {
    pub key: String,
    pub value: String,
    /// Shown masked, with no way to reveal it.
    pub secret: bool,
}

pub struct LiveBuild {
    pub build: BuildRow,
    pub log: String,
}

/// The add-a-domain form as it was sent, with the core's refusal.
#[derive(Default)]
pub struct DomainForm {
    pub value: String,
    pub error: Option<String>,
}

/// The last lines of an app's output, or why there are none.
pub struct LogView {
    pub lines: String,
    pub unavailable: Option<String>,
}

pub struct RegionOption {
    pub id: String,
    pub name: String,
    pub selected: bool,
}

/// A form's region choices: the one whose id is `selected`, or the first when none is.
pub fn region_options(regions: &[Region], selected: &str) -> Vec<RegionOption> {
    regions
        .iter()
        .enumerate()
        .map(|(i, r)| RegionOption {
            id: r.id.to_string(),
            name: r.name.clone(),
            selected: r.id.to_string() == selected || (selected.is_empty() && i == 0),
        })
        .collect()
}
