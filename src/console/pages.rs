//! The pages: one askama template struct per page (its template is in `templates/`), each
//! with the common [`Layout`], and the rows of `views` they show.

use super::notice::{Flash, Pending};
use super::request::{Ctx, Visitor};
use super::views::{
    Actions, ApiKeyRow, AppRow, BuildRow, ClusterCard, ConfigVar, CronJobRow, CronRunRow,
    DomainForm, LiveBuild, LogView, NodeRow, PlacementRow, RegionOption, RegionRow, ReleaseRow,
    RunRow, SshKeyRow, UserRow,
};
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

#[derive(Template)]
#[template(path = "app_new.html")]
pub struct NewAppPage {
    pub layout: Layout,
    pub name: String,
    pub regions: Vec<RegionOption>,
    pub error: Option<String>,
}

/// The instance detail page. Its template is a stack of section includes under
/// `templates/app/`; a new feature (domains) adds a field here and an include there.
#[derive(Template)]
#[template(path = "app.html")]
pub struct AppPage {
    pub layout: Layout,
    pub app: AppRow,
    pub actions: Actions,
    /// This visitor's operation on the app still running ("Restarting", 12 s).
    pub pending: Option<Pending>,
    /// Whether the page should watch the app (a build or an operation is running): with
    /// JavaScript it follows and reloads when done; without, it offers a refresh link.
    pub busy: bool,
    pub git_remote: String,
    pub host_key_fingerprint: String,
    pub host_key_algorithm: String,
    pub memory_mb: u32,
    pub cpu: String,
    pub port: u16,
    pub node: String,
    pub deploy_branch: String,
    pub health_path: String,
    pub read_only_rootfs: bool,
    pub created: String,
    pub has_ssh_key: bool,
    /// The image an image app deploys (empty for a git app), and the registry user it pulls as.
    pub image: String,
    pub registry_username: String,
    pub releases: Vec<ReleaseRow>,
    pub releases_total: u64,
    pub builds: Vec<BuildRow>,
    pub builds_total: u64,
    /// The running build and its log so far, streamed on by the script.
    pub live_build: Option<LiveBuild>,
    pub config: Vec<ConfigVar>,
    /// Whether a config change deploys now (a running release), is recorded for the next start
    /// (a stopped one) or waits for the first deploy.
    pub config_effect: &'static str,
    /// The app's custom domains, as stored.
    pub domains: Vec<String>,
    /// What each custom domain's CNAME record points to (`<app>.<platform domain>`).
    pub cname: String,
    /// The add-a-domain form: what was typed and why it was refused, after a failed add.
    pub domain_form: DomainForm,
    /// The app's volumes: name and mount path.
    pub volumes: Vec<(String, String)>,
    /// Its latest one-off runs.
    pub runs: Vec<RunRow>,
    /// Its scheduled jobs (`app.json`) and their latest runs.
    pub cron_jobs: Vec<CronJobRow>,
    pub cron_runs: Vec<CronRunRow>,
    /// Its process types with their replicas (the formation).
    pub formation: Vec<(String, u8)>,
    /// Where each process of the current release runs.
    pub placement: Vec<PlacementRow>,
    /// With the cluster on, why the app's volumes keep it on one node.
    pub pinned: Option<String>,
    /// The most replicas of one type.
    pub max_replicas: u8,
    pub logs: LogView,
    /// Whether the app's output can be followed live (it has a running container).
    pub logs_live: bool,
    /// Its request and error rates of the last hour, as sparklines.
    pub traffic: super::sparkline::TrafficCard,
}

impl AppPage {
    /// Releases not listed (only the latest are shown).
    pub fn older_releases(&self) -> u64 {
        self.releases_total
            .saturating_sub(self.releases.len() as u64)
    }
    pub fn older_builds(&self) -> u64 {
        self.builds_total.saturating_sub(self.builds.len() as u64)
    }
}

/// One build and its whole log.
#[derive(Template)]
#[template(path = "build.html")]
pub struct BuildPage {
    pub layout: Layout,
    pub app: AppRow,
    pub build: BuildRow,
    pub commit_full: String,
    pub log: String,
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
    /// `None` while the cluster is off: the page offers to turn it on.
    pub cluster: Option<ClusterCard>,
    /// Why turning the cluster on failed, and the address that was typed.
    pub cluster_error: Option<String>,
    pub advertise: String,
    /// Scalefog's public SSH key for `ssh://` nodes (empty when it cannot be read).
    pub ssh_public_key: String,
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
    /// Why adding a region failed, and the name that was typed.
    pub error: Option<String>,
    pub form_name: String,
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub layout: Layout,
    pub status: u16,
    pub title: String,
    pub message: String,
}
