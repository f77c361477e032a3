//! Where an app's processes run: the one interface the deploy engine uses to start the processes
//! of a release, learn where they answer, and stop them ([`Runtime`]).
//!
//! The deploy engine decides *what* runs (which release, with which config, when to switch);
//! a runtime decides *how*: [`Containers`], plain containers on one Docker engine, or [`Swarm`],
//! services of a Docker Swarm once the cluster is on ([`Placed`] picks between them). Build,
//! health check and route switch only see [`ProcessSpec`], process ids and [`ProcessStatus`], so
//! another runtime (replicas spread over a cluster) fits behind the same calls.
//!
//! Process ids are the runtime's own (a container id here); callers keep them and hand them back.

mod containers;
mod placed;
pub mod swarm;

pub use crate::docker::{Attached, Output};
pub use containers::Containers;
pub use placed::Placed;
pub use swarm::Swarm;

use crate::domain::Result;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use std::net::SocketAddr;
use std::time::Duration;

/// One process of one release of an app, to start.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    pub app: String,
    pub release: u32,
    /// Its process type (`web` is the routed one) and replica number (from 1); for a one-off
    /// run, `run` and the run's id.
    pub kind: String,
    pub replica: u64,
    /// How many replicas of its kind the set being started has (1 for a one-off): a runtime
    /// may start them together when asked for the first ([`Swarm`] does).
    pub replicas: u64,
    /// The Procfile's command as arguments; `None` runs the image's own.
    pub command: Option<Vec<String>>,
    /// Runs to completion once (a release command) instead of being kept running.
    pub once: bool,
    /// The node record the app is placed on.
    pub node: u64,
    pub image: String,
    /// `PORT` and the config vars.
    pub env: Vec<(String, String)>,
    /// The port the app listens on inside its box; published for the router only for `web`.
    pub port: u16,
    pub memory_mb: u32,
    pub cpu: f64,
    /// The app's persistent volumes (name, path inside the process), created when missing.
    pub volumes: Vec<(String, String)>,
    /// Its root filesystem is read-only but for a scratch `/tmp`.
    pub read_only_rootfs: bool,
}

/// Where a process is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessState {
    /// Created, not yet running.
    Starting,
    Running,
    /// Crashed (as for `Exited`) and being brought back by the runtime.
    Restarting {
        code: Option<i64>,
        oom: bool,
    },
    /// Not running: stopped, or exited by itself (`code`), or killed for its memory (`oom`).
    Exited {
        code: Option<i64>,
        oom: bool,
    },
}

/// What the runtime knows of one process.
#[derive(Debug, Clone)]
pub struct ProcessStatus {
    pub id: String,
    /// The app and release it runs, from the runtime's own records (labels).
    pub app: Option<String>,
    pub release: Option<u32>,
    /// Its process type and replica (`web.1`), from the runtime's records.
    pub process: Option<String>,
    pub state: ProcessState,
    /// Where the router reaches it (only from [`Runtime::status`]).
    pub endpoint: Option<SocketAddr>,
    /// The app's own address, with nothing in between that would accept a connection for it
    /// (only from [`Runtime::status`]); health checks prefer it.
    pub direct: Option<SocketAddr>,
}

impl ProcessStatus {
    pub fn running(&self) -> bool {
        self.state == ProcessState::Running
    }
}

/// A change in a process's life, as the runtime reports it.
#[derive(Debug, Clone)]
pub struct ProcessEvent {
    /// `start`, `die`, `stop`, `destroy`, `oom`.
    pub action: String,
    pub process: String,
    pub app: Option<String>,
}

/// Runs the processes of apps' releases.
pub trait Runtime: Send + Sync + 'static {
    /// Starts a process of `spec` (hardened: no privileges, no host mounts, limits applied) and
    /// returns its id.
    fn start<'a>(&'a self, spec: &'a ProcessSpec) -> BoxFuture<'a, Result<String>>;
    /// The process's state and where it answers; `None` when it no longer exists.
    fn status<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<ProcessStatus>>>;
    /// Every process of this installation, or of one app, running or not (without addresses).
    fn list<'a>(&'a self, app: Option<&'a str>) -> BoxFuture<'a, Result<Vec<ProcessStatus>>>;
    /// Starts a process of `spec` with its streams attached: its stdin open when `stdin`, a
    /// terminal when `tty`.
    fn start_attached<'a>(
        &'a self,
        spec: &'a ProcessSpec,
        stdin: bool,
        tty: bool,
    ) -> BoxFuture<'a, Result<Attached>>;
    /// Sets the size of a process's terminal.
    fn resize<'a>(&'a self, id: &'a str, cols: u16, rows: u16) -> BoxFuture<'a, Result<()>>;
    /// Waits until a started process is no longer running; its exit code.
    fn wait<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<i64>>;
    /// Starts a stopped process again.
    fn resume<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>>;
    /// Stops a process (SIGTERM, then SIGKILL after `grace`); it stays stopped across restarts of
    /// the runtime. Missing or stopped is fine.
    fn stop<'a>(&'a self, id: &'a str, grace: Duration) -> BoxFuture<'a, Result<()>>;
    /// Removes a process, stopping it at once if needed. Missing is fine.
    fn remove<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>>;
    /// Applies new memory/CPU limits to a live process.
    fn update_limits<'a>(
        &'a self,
        id: &'a str,
        memory_mb: u32,
        cpu: f64,
    ) -> BoxFuture<'a, Result<()>>;
    /// The process's output lines, the last `tail`, then new ones when `follow`.
    fn logs(&self, id: &str, tail: Option<u64>, follow: bool)
    -> BoxStream<'static, Result<String>>;
    /// Changes in this installation's processes, until the connection drops.
    fn events(&self) -> BoxStream<'static, Result<ProcessEvent>>;
    /// Deletes the data of volume `name` of `app`: `Ok(false)` while a process still mounts it.
    /// Missing is fine.
    fn remove_volume<'a>(&'a self, app: &'a str, name: &'a str) -> BoxFuture<'a, Result<bool>>;
    /// The names of the volumes `app` has data in.
    fn volumes<'a>(&'a self, app: &'a str) -> BoxFuture<'a, Result<Vec<String>>>;
}
