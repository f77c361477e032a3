//! The pages: one askama template struct per page, and the plain view rows they show. Views are
//! built from core records here so templates only format; no rule is decided in a template.

use super::request::{Ctx, Flash, Visitor};
use crate::domain::{ApiKey, Instance, InstanceStatus, Node, SshKey, User, rfc3339};
use crate::services::Services;
use askama::Template;
use std::collections::HashMap;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What every page's frame needs: title, navigation, the signed-in user, the CSRF token for the
/// sign-out form, and the flash message.
pub struct Layout {
    pub title: String,
    /// Which navigation entry is current (`apps`, `ssh-keys`, ...).
    pub section: &'static str,
    pub user: Option<NavUser>,
    pub csrf: String,
    pub flash: Option<Flash>,
    pub version: &'static str,
}

pub struct NavUser {
    pub username: String,
    /// The avatar letter.
    pub initial: String,
    pub admin: bool,
}

impl Layout {
    pub fn signed_in(ctx: &Ctx, title: impl Into<String>, section: &'static str) -> Layout {
        Layout {
            title: title.into(),
            section,
            user: Some(NavUser {
                username: ctx.who.user.username.clone(),
                initial: ctx
                    .who
                    .user
                    .username
                    .chars()
                    .take(1)
                    .collect::<String>()
                    .to_uppercase(),
                admin: ctx.who.is_admin(),
            }),
            csrf: ctx.csrf.clone(),
            flash: ctx.flash.clone(),
            version: VERSION,
        }
    }
    pub fn visitor(v: &Visitor, title: impl Into<String>) -> Layout {
        Layout {
            title: title.into(),
            section: "",
            user: None,
            csrf: v.csrf.clone(),
            flash: v.flash.clone(),
            version: VERSION,
        }
    }
    /// For error pages, which are rendered without knowing who is looking.
    pub fn bare(title: impl Into<String>) -> Layout {
        Layout {
            title: title.into(),
            section: "",
            user: None,
            csrf: String::new(),
            flash: None,
            version: VERSION,
        }
    }
    pub fn is_admin(&self) -> bool {
        self.user.as_ref().is_some_and(|u| u.admin)
    }
    pub fn is(&self, section: &str) -> bool {
        self.section == section
    }
}

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
    regions: HashMap<u64, String>,
    owners: HashMap<u64, String>,
}

impl<'a> AppRows<'a> {
    pub fn new(services: &'a Services) -> AppRows<'a> {
        let regions = services
            .apps
            .regions()
            .unwrap_or_default()
            .into_iter()
            .map(|r| (r.id, r.name))
            .collect();
        AppRows {
            services,
            regions,
            owners: HashMap::new(),
        }
    }
    pub fn region(&self, id: u64) -> String {
        self.regions
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("region {id}"))
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
            release: i
                .release
                .map_or_else(|| "—".to_string(), |r| format!("v{r}")),
            region: self.region(i.region_id),
            owner,
        }
    }
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
        }
    }
}

pub struct RegionRow {
    pub id: u64,
    pub name: String,
    pub nodes: u64,
    pub apps: u64,
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

// ----- pages -----

#[derive(Template)]
#[template(path = "sign_in.html")]
pub struct SignInPage {
    pub layout: Layout,
    pub username: String,
    pub next: String,
    pub error: Option<String>,
    pub registration_open: bool,
}

#[derive(Template)]
#[template(path = "register.html")]
pub struct RegisterPage {
    pub layout: Layout,
    pub open: bool,
    pub username: String,
    pub email: String,
    pub error: Option<String>,
    pub field: String,
}

#[derive(Template)]
#[template(path = "apps.html")]
pub struct AppsPage {
    pub layout: Layout,
    pub apps: Vec<AppRow>,
    pub all: bool,
    pub show_owner: bool,
    /// Whether the empty state can tick off "add an SSH key".
    pub has_ssh_key: bool,
}

pub struct RegionOption {
    pub id: String,
    pub name: String,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "app_new.html")]
pub struct NewAppPage {
    pub layout: Layout,
    pub name: String,
    pub regions: Vec<RegionOption>,
    pub error: Option<String>,
}

/// The instance detail page. Its template is a stack of section includes under
/// `templates/app/`; a new feature (releases, logs, config vars, domains) adds a field here and
/// an include there.
#[derive(Template)]
#[template(path = "app.html")]
pub struct AppPage {
    pub layout: Layout,
    pub app: AppRow,
    pub git_remote: String,
    pub memory: String,
    pub cpu: String,
    pub port: u16,
    pub node: String,
    pub deploy_branch: String,
    pub health_path: String,
    pub created: String,
    pub has_ssh_key: bool,
}

#[derive(Template)]
#[template(path = "ssh_keys.html")]
pub struct SshKeysPage {
    pub layout: Layout,
    pub keys: Vec<SshKeyRow>,
    pub pasted: String,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "api_keys.html")]
pub struct ApiKeysPage {
    pub layout: Layout,
    pub keys: Vec<ApiKeyRow>,
    /// The key just created, shown this once.
    pub new_key: Option<(String, String)>,
    pub name: String,
    pub error: Option<String>,
    pub api_base: String,
}

#[derive(Template)]
#[template(path = "account.html")]
pub struct AccountPage {
    pub layout: Layout,
    pub username: String,
    pub email: String,
    pub admin: bool,
    pub created: String,
    pub error: Option<String>,
    pub field: String,
}

#[derive(Template)]
#[template(path = "admin_users.html")]
pub struct UsersPage {
    pub layout: Layout,
    pub users: Vec<UserRow>,
    pub error: Option<String>,
    pub form_username: String,
    pub form_email: String,
}

#[derive(Template)]
#[template(path = "admin_nodes.html")]
pub struct NodesPage {
    pub layout: Layout,
    pub nodes: Vec<NodeRow>,
    pub regions: Vec<RegionOption>,
    pub error: Option<String>,
    pub form: HashMap<&'static str, String>,
}

impl NodesPage {
    pub fn value(&self, name: &str) -> &str {
        self.form.get(name).map_or("", String::as_str)
    }
}

#[derive(Template)]
#[template(path = "admin_regions.html")]
pub struct RegionsPage {
    pub layout: Layout,
    pub regions: Vec<RegionRow>,
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub layout: Layout,
    pub status: u16,
    pub title: String,
    pub message: String,
}
