//! The Docker Engine interface the core uses ([`DockerNode`]), and its bollard implementation
//! ([`Engine`], in `engine.rs`) for one node's endpoint.
//!
//! Every Docker error becomes a domain error in `engine.rs` and nowhere else ([`Engine::map_err`]): an
//! unreachable engine is `Unavailable` naming the endpoint tried, a failed build is
//! `DeployFailed` with Docker's own words, a missing object is `NotFound`.
//!
//! The deploy engine talks to the trait, so its unit tests can run on a fake; every method here is
//! exercised against a real engine by the integration tests.

mod containers;
mod engine;
mod host_config;
mod images;
mod logs;
mod networks;
mod pull;
mod registry;
mod swarm;
mod volumes;

pub use engine::Engine;
pub use registry::RegistryAuth;
pub use swarm::{LocalSwarm, ServiceInfo, ServiceRun, SwarmNode, TaskInfo};

use crate::domain::Result;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

/// Label on everything Scalefog creates; reconcile only ever touches objects carrying it.
pub const LABEL: &str = "scalefog";
/// Label naming the app a container or image belongs to.
pub const LABEL_APP: &str = "scalefog.app";
/// Label naming the release (`3`) a container runs.
pub const LABEL_RELEASE: &str = "scalefog.release";
/// On a volume: its name within the app.
pub const LABEL_VOLUME: &str = "scalefog.volume";
/// On a container: its process type and replica (`web.1`).
pub const LABEL_PROCESS: &str = "scalefog.process";
/// Label naming the node (id) a container runs on.
pub const LABEL_NODE: &str = "scalefog.node";
/// Label naming the Scalefog installation (its data dir's id): two installations, or two test
/// servers, sharing one Docker engine never touch each other's objects.
pub const LABEL_INSTALL: &str = "scalefog.install";

/// This installation's mark on Docker objects: the labels it puts on what it creates and the
/// filters that select them again.
#[derive(Debug, Clone)]
pub struct Installation {
    pub id: String,
}

impl Installation {
    /// Label filters selecting this installation's objects (optionally one app's).
    pub fn filters(&self, app: Option<&str>) -> Vec<String> {
        let mut f = vec![LABEL.to_string(), format!("{LABEL_INSTALL}={}", self.id)];
        if let Some(app) = app {
            f.push(format!("{LABEL_APP}={app}"));
        }
        f
    }

    /// The network every app container of this installation runs on (see `docker::networks`).
    pub fn apps_network(&self) -> String {
        format!("scalefog-{}-apps", self.id)
    }

    /// The network builds run on (see `docker::networks`): apart from the apps' network, so a
    /// build's `RUN` step cannot connect to an app container.
    pub fn build_network(&self) -> String {
        format!("scalefog-{}-build", self.id)
    }

    /// The labels of an object of the installation as a whole (its networks).
    pub fn own_labels(&self) -> HashMap<String, String> {
        HashMap::from([
            (LABEL.to_string(), "1".to_string()),
            (LABEL_INSTALL.to_string(), self.id.clone()),
        ])
    }

    /// The Docker volume behind volume `volume` of `app`: one per installation, app and name.
    pub fn volume_name(&self, app: &str, volume: &str) -> String {
        format!("scalefog-{}-{app}-{volume}", self.id)
    }

    /// The labels of an app's object (of one release, when given).
    pub fn labels(&self, app: &str, node: u64, release: Option<u32>) -> HashMap<String, String> {
        let mut l = HashMap::from([
            (LABEL.to_string(), "1".to_string()),
            (LABEL_INSTALL.to_string(), self.id.clone()),
            (LABEL_APP.to_string(), app.to_string()),
            (LABEL_NODE.to_string(), node.to_string()),
        ]);
        if let Some(r) = release {
            l.insert(LABEL_RELEASE.to_string(), r.to_string());
        }
        l
    }
}

/// What to run: one app container.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub name: String,
    pub image: String,
    /// `PORT` and the config vars.
    pub env: Vec<(String, String)>,
    /// The port the app listens on inside the container, published on loopback for the
    /// router; `None` for processes nothing routes to.
    pub port: Option<u16>,
    /// The command instead of the image's `CMD` (its `ENTRYPOINT` stays).
    pub cmd: Option<Vec<String>>,
    /// Docker brings it back when it exits (unless stopped); off for a run to completion.
    pub restart: bool,
    pub memory_mb: u32,
    pub cpu: f64,
    pub pids_limit: i64,
    pub labels: HashMap<String, String>,
    /// Named volumes (Docker volume name, path in the container); never host paths.
    pub volumes: Vec<(String, String)>,
    /// The network to run on instead of Docker's default bridge.
    pub network: Option<String>,
    /// The root filesystem is read-only; a tmpfs at `/tmp` stays writable.
    pub read_only_rootfs: bool,
    pub log: LogRotation,
    /// Its stdin is open to whoever attaches (a one-off run's SSH session).
    pub stdin: bool,
    /// It gets a terminal: output is one stream, input is the terminal's.
    pub tty: bool,
}

/// A piece of an attached container's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Standard output, or the terminal's output.
    Stdout(Bytes),
    Stderr(Bytes),
}

/// A container started with its streams attached ([`DockerNode::run_attached`]).
pub struct Attached {
    pub id: String,
    /// Everything it writes, from its start until it exits.
    pub output: BoxStream<'static, Result<Output>>,
    /// Its stdin (when [`RunSpec::stdin`]); shutting it down is end of input.
    pub input: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
}

/// How a container's log (Docker's json-file) rotates: at `max_size` (`10m`), keeping
/// `max_files` files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRotation {
    pub max_size: String,
    pub max_files: u32,
}

impl Default for LogRotation {
    fn default() -> Self {
        LogRotation {
            max_size: "10m".into(),
            max_files: 3,
        }
    }
}

/// What a build's `RUN` steps may use. Docker's build API has no process limit and no
/// capability setting for them (see README, Security).
#[derive(Debug, Clone, PartialEq)]
pub struct BuildLimits {
    pub memory_mb: u32,
    pub cpus: f64,
    /// The network they run on instead of Docker's default bridge.
    pub network: String,
}

/// What the core needs to know about a container.
#[derive(Debug, Clone, Default)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub labels: HashMap<String, String>,
    /// Docker's state word: `created`, `running`, `restarting`, `exited`, ...
    pub state: String,
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    /// Address on the container network, when attached (inspect only).
    pub ip: Option<IpAddr>,
    /// The published `127.0.0.1` port (inspect only).
    pub host_port: Option<u16>,
    /// The port inside the container that is published (inspect only).
    pub exposed_port: Option<u16>,
}

impl ContainerInfo {
    pub fn running(&self) -> bool {
        self.state == "running"
    }
    pub fn app(&self) -> Option<&str> {
        self.labels.get(LABEL_APP).map(String::as_str)
    }
    /// Where the router reaches it: the published loopback port.
    pub fn published(&self) -> Option<SocketAddr> {
        self.host_port
            .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
    }
}

#[derive(Debug, Clone)]
pub struct ImageInfo {
    pub id: String,
    /// `repo:tag` references; empty for an untagged image.
    pub tags: Vec<String>,
    pub labels: HashMap<String, String>,
    pub size: i64,
    pub created: i64,
}

impl ImageInfo {
    /// Docker lists an untagged image with the pseudo tag `<none>:<none>`.
    pub fn tagged(&self) -> impl Iterator<Item = &str> {
        self.tags
            .iter()
            .map(String::as_str)
            .filter(|t| *t != "<none>:<none>")
    }
}

/// What a pulled image declares, as a deploy needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageConfig {
    /// `sha256:…`
    pub id: String,
    /// Its `EXPOSE`d TCP ports, lowest first.
    pub exposed_ports: Vec<u16>,
}

/// A container event of interest to reconcile (start, die, destroy, oom, stop).
#[derive(Debug, Clone)]
pub struct ContainerEvent {
    pub action: String,
    pub container: String,
    pub app: Option<String>,
}

/// Receives build output line by line.
pub type BuildOutput<'a> = &'a (dyn Fn(&str) + Send + Sync);

/// One node's Docker engine, as the deploy engine uses it.
pub trait DockerNode: Send + Sync + 'static {
    fn endpoint(&self) -> &str;
    /// Builds `context` (a tar stream) with the Dockerfile at `dockerfile` (a path inside it) into
    /// an image tagged `tag`, adding `labels`; output lines go to `out`. A failing build is
    /// `DeployFailed` with Docker's message. `RUN` steps get `limits`.
    fn build<'a>(
        &'a self,
        tag: &'a str,
        dockerfile: &'a str,
        labels: HashMap<String, String>,
        limits: &'a BuildLimits,
        context: BoxStream<'static, std::io::Result<Bytes>>,
        out: BuildOutput<'a>,
    ) -> BoxFuture<'a, Result<()>>;
    /// Creates (hardened, see [`Engine`]) and starts a container; returns its id.
    fn run<'a>(&'a self, spec: &'a RunSpec) -> BoxFuture<'a, Result<String>>;
    /// Creates a container as [`DockerNode::run`] does, attaches to its streams, then starts
    /// it, so that none of its output is missed.
    fn run_attached<'a>(&'a self, spec: &'a RunSpec) -> BoxFuture<'a, Result<Attached>>;
    /// Sets the size of a running container's terminal.
    fn resize<'a>(&'a self, id: &'a str, cols: u16, rows: u16) -> BoxFuture<'a, Result<()>>;
    /// Waits until a started container is no longer running; its exit code.
    fn wait<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<i64>>;
    fn start<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>>;
    /// Stops with SIGTERM, then SIGKILL after `grace_s`. Missing or stopped is fine.
    fn stop<'a>(&'a self, id: &'a str, grace_s: i32) -> BoxFuture<'a, Result<()>>;
    /// Removes (force). Missing is fine.
    fn remove_container<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>>;
    /// `None` when the container does not exist.
    fn inspect<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<ContainerInfo>>>;
    /// Every container (running or not) carrying all the label filters (`key` or `key=value`).
    fn containers<'a>(&'a self, labels: &'a [String]) -> BoxFuture<'a, Result<Vec<ContainerInfo>>>;
    /// Applies new memory/CPU limits to a live container.
    fn update_limits<'a>(
        &'a self,
        id: &'a str,
        memory_mb: u32,
        cpu: f64,
    ) -> BoxFuture<'a, Result<()>>;
    /// Output lines of a container (stdout and stderr), the last `tail`, then new ones when
    /// `follow`.
    fn logs(&self, id: &str, tail: Option<u64>, follow: bool)
    -> BoxStream<'static, Result<String>>;
    /// Images carrying all the label filters.
    fn images<'a>(&'a self, labels: &'a [String]) -> BoxFuture<'a, Result<Vec<ImageInfo>>>;
    fn image_exists<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<bool>>;
    /// The ids of the images `reference` was built on that this engine holds (the classic
    /// builder's earlier steps), nearest first. Empty when it does not exist.
    fn image_ancestors<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<Vec<String>>>;
    /// Removes an image reference (tag or id), forcefully but never its parent images: those are
    /// build cache that other builds may be using at this very moment. Missing is fine.
    fn remove_image<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<()>>;
    /// Removes an image by id only when nothing depends on it: no tag, no child image, no
    /// container. `Ok(false)` when something does (or it is gone already), and parents are kept.
    fn remove_unused_image<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool>>;
    /// Pulls `reference` from its registry, logging in with `login` (for the registry host given
    /// beside it) when set; progress lines go to `out`. A pull that fails is `DeployFailed` with
    /// Docker's reason.
    fn pull<'a>(
        &'a self,
        reference: &'a str,
        login: Option<(&'a crate::domain::RegistryLogin, &'a str)>,
        out: BuildOutput<'a>,
    ) -> BoxFuture<'a, Result<()>>;
    /// The id and exposed ports of a local image; `None` when there is none.
    fn image_config<'a>(&'a self, reference: &'a str)
    -> BoxFuture<'a, Result<Option<ImageConfig>>>;
    /// Events of containers carrying all the label filters, until the connection drops.
    fn events(&self, labels: &[String]) -> BoxStream<'static, Result<ContainerEvent>>;
    /// Creates a named volume with these labels; an existing one is kept as it is.
    fn create_volume<'a>(
        &'a self,
        name: &'a str,
        labels: &'a HashMap<String, String>,
    ) -> BoxFuture<'a, Result<()>>;
    /// Removes a named volume: `Ok(false)` while a container still uses it; missing is fine.
    fn remove_volume<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<bool>>;
    /// The names of the volumes carrying all the label filters.
    fn volumes<'a>(&'a self, labels: &'a [String]) -> BoxFuture<'a, Result<Vec<String>>>;
    /// Makes sure a bridge network of this name exists, on which containers cannot reach each
    /// other (only the host reaches them); an existing one is kept as it is.
    fn ensure_isolated_network<'a>(
        &'a self,
        name: &'a str,
        labels: &'a HashMap<String, String>,
    ) -> BoxFuture<'a, Result<()>>;
}
