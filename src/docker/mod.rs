//! The Docker Engine interface the core uses ([`DockerNode`]), and its bollard implementation
//! ([`Engine`]) for one node's endpoint.
//!
//! Every Docker error becomes a domain error here and nowhere else ([`Engine::map_err`]): an
//! unreachable engine is `Unavailable` naming the endpoint tried, a failed build is
//! `DeployFailed` with Docker's own words, a missing object is `NotFound`.
//!
//! The deploy engine talks to the trait, so its unit tests can run on a fake; every method here is
//! exercised against a real engine by the integration tests.

use crate::domain::{Error, Result};
use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, ContainerUpdateBody, HostConfig, PortBinding, RestartPolicy,
    RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateContainerOptionsBuilder, EventsOptionsBuilder,
    InspectContainerOptions, ListContainersOptionsBuilder, ListImagesOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder,
    StopContainerOptionsBuilder,
};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::sync::OnceCell;

/// Label on everything Scalefog creates; reconcile only ever touches objects carrying it.
pub const LABEL: &str = "scalefog";
/// Label naming the app a container or image belongs to.
pub const LABEL_APP: &str = "scalefog.app";
/// Label naming the release (`3`) a container runs.
pub const LABEL_RELEASE: &str = "scalefog.release";
/// Label naming the node (id) a container runs on.
pub const LABEL_NODE: &str = "scalefog.node";
/// Label naming the Scalefog installation (its data dir's id): two installations, or two test
/// servers, sharing one Docker engine never touch each other's objects.
pub const LABEL_INSTALL: &str = "scalefog.install";

/// What to run: one app container.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub name: String,
    pub image: String,
    /// `PORT` and the config vars.
    pub env: Vec<(String, String)>,
    /// The port the app listens on inside the container.
    pub port: u16,
    pub memory_mb: u32,
    pub cpu: f64,
    pub pids_limit: i64,
    pub labels: HashMap<String, String>,
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
    pub tags: Vec<String>,
    pub labels: HashMap<String, String>,
    pub size: i64,
    pub created: i64,
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
    /// `DeployFailed` with Docker's message.
    fn build<'a>(
        &'a self,
        tag: &'a str,
        dockerfile: &'a str,
        labels: HashMap<String, String>,
        context: BoxStream<'static, std::io::Result<Bytes>>,
        out: BuildOutput<'a>,
    ) -> BoxFuture<'a, Result<()>>;
    /// Creates (hardened, see [`Engine`]) and starts a container; returns its id.
    fn run<'a>(&'a self, spec: &'a RunSpec) -> BoxFuture<'a, Result<String>>;
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
    /// Removes an image reference (tag or id). Missing is fine.
    fn remove_image<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<()>>;
    /// Events of containers carrying all the label filters, until the connection drops.
    fn events(&self, labels: &[String]) -> BoxStream<'static, Result<ContainerEvent>>;
}

/// One node's engine, through bollard.
#[derive(Clone)]
pub struct Engine {
    endpoint: String,
    docker: Option<Docker>,
    /// Set once the API version has been agreed with the engine. bollard speaks a newer API than
    /// Docker 20.10 accepts, so the first call negotiates (and a failed attempt is retried later:
    /// Docker may come up after us).
    negotiated: std::sync::Arc<OnceCell<()>>,
}

impl Engine {
    /// Prepares a client for `endpoint` (`unix:///…`, `tcp://…`, `http://…`). Does not connect:
    /// the server must start even when Docker is down.
    pub fn new(endpoint: &str) -> Engine {
        // Builds and log streams are long; the per-request timeout only bounds the wait for the
        // response head of ordinary calls, and long streams are bounded by the deploy timeout.
        let timeout = 3600;
        let docker = if let Some(path) = endpoint.strip_prefix("unix://") {
            Docker::connect_with_unix(path, timeout, bollard::API_DEFAULT_VERSION).ok()
        } else if let Some(addr) = endpoint
            .strip_prefix("tcp://")
            .or_else(|| endpoint.strip_prefix("http://"))
        {
            Docker::connect_with_http(
                &format!("http://{addr}"),
                timeout,
                bollard::API_DEFAULT_VERSION,
            )
            .ok()
        } else {
            None
        };
        Engine {
            endpoint: endpoint.to_string(),
            docker,
            negotiated: Default::default(),
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub(crate) fn client(&self) -> Result<&Docker> {
        self.docker
            .as_ref()
            .ok_or_else(|| self.unavailable("unsupported endpoint"))
    }

    /// The client, after agreeing on an API version with the engine.
    async fn api(&self) -> Result<&Docker> {
        let docker = self.client()?;
        self.negotiated
            .get_or_try_init(|| async {
                match tokio::time::timeout(
                    Duration::from_secs(5),
                    docker.clone().negotiate_version(),
                )
                .await
                {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(self.map_err(e)),
                    Err(_) => Err(self.unavailable("no answer within 5 s")),
                }
            })
            .await?;
        Ok(docker)
    }

    pub(crate) fn unavailable(&self, why: impl std::fmt::Display) -> Error {
        Error::Unavailable(format!(
            "Docker engine at {} is unreachable: {why}",
            self.endpoint
        ))
    }

    /// The one mapping from Docker errors to domain errors.
    pub fn map_err(&self, e: bollard::errors::Error) -> Error {
        use bollard::errors::Error as B;
        match e {
            B::DockerResponseServerError {
                status_code,
                message,
            } => match status_code {
                404 => Error::NotFound(message),
                409 => Error::Conflict(message),
                // A bad Dockerfile or build context is the pusher's problem, not ours.
                400 => Error::DeployFailed(message),
                _ => Error::internal(format!("Docker answered {status_code}: {message}")),
            },
            B::DockerStreamError { error } => Error::DeployFailed(error),
            B::JsonDataError { .. } | B::JsonSerdeError { .. } | B::APIVersionParseError {} => {
                Error::internal(format!("unexpected answer from Docker: {e}"))
            }
            B::RequestTimeoutError => self.unavailable("request timed out"),
            other => self.unavailable(other),
        }
    }

    /// Whether the engine answers, within a short bound (health checks must stay fast).
    pub async fn ping(&self) -> Result<()> {
        let docker = self.client()?;
        match tokio::time::timeout(Duration::from_secs(2), docker.ping()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(self.unavailable(e)),
            Err(_) => Err(self.unavailable("no answer within 2 s")),
        }
    }
}

/// `key` or `key=value` label filters (all must match).
fn label_filter(labels: &[String]) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_string(), labels.to_vec())])
}

/// NotFound → Ok(()), for idempotent removals.
fn ignore_missing(r: Result<()>) -> Result<()> {
    match r {
        Err(Error::NotFound(_)) => Ok(()),
        other => other,
    }
}

impl DockerNode for Engine {
    fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn build<'a>(
        &'a self,
        tag: &'a str,
        dockerfile: &'a str,
        labels: HashMap<String, String>,
        context: BoxStream<'static, std::io::Result<Bytes>>,
        out: BuildOutput<'a>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let docker = self.api().await?;
            let opts = BuildImageOptionsBuilder::default()
                .dockerfile(dockerfile)
                .t(tag)
                .rm(true)
                .forcerm(true)
                .labels(&labels)
                .build();
            let mut stream =
                docker.build_image(opts, None, Some(bollard::body_try_stream(context)));
            // Docker sends output in arbitrary chunks; re-split it into whole lines.
            let mut pending = String::new();
            while let Some(item) = stream.next().await {
                let info = item.map_err(|e| self.map_err(e))?;
                if let Some(detail) = info.error_detail {
                    let msg = detail.message.unwrap_or_else(|| "build failed".into());
                    return Err(Error::DeployFailed(msg));
                }
                if let Some(text) = info.stream.or(info.status) {
                    pending.push_str(&text);
                    while let Some(i) = pending.find('\n') {
                        let line: String = pending.drain(..=i).collect();
                        let line = line.trim_end();
                        if !line.is_empty() {
                            out(line);
                        }
                    }
                }
            }
            if !pending.trim().is_empty() {
                out(pending.trim_end());
            }
            Ok(())
        })
    }

    fn run<'a>(&'a self, spec: &'a RunSpec) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            let docker = self.api().await?;
            let port_key = format!("{}/tcp", spec.port);
            let host = HostConfig {
                memory: Some(i64::from(spec.memory_mb) * 1024 * 1024),
                // No swap beyond the memory limit: the limit means what it says.
                memory_swap: Some(i64::from(spec.memory_mb) * 1024 * 1024),
                nano_cpus: Some((spec.cpu * 1e9) as i64),
                pids_limit: Some(spec.pids_limit),
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                    maximum_retry_count: None,
                }),
                port_bindings: Some(HashMap::from([(
                    port_key.clone(),
                    Some(vec![PortBinding {
                        // Loopback only: the router is the one way in from outside.
                        host_ip: Some("127.0.0.1".into()),
                        host_port: Some(String::new()),
                    }]),
                )])),
                privileged: Some(false),
                binds: None,
                cap_drop: Some(vec!["ALL".into()]),
                // Enough to bind a port below 1024 inside the container, nothing else.
                cap_add: Some(vec!["NET_BIND_SERVICE".into()]),
                security_opt: Some(vec!["no-new-privileges:true".into()]),
                // A tiny init as PID 1 forwards SIGTERM to the app (a PID 1 app would ignore it
                // and only die at SIGKILL) and reaps zombies.
                init: Some(true),
                ..Default::default()
            };
            let body = ContainerCreateBody {
                image: Some(spec.image.clone()),
                env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
                labels: Some(spec.labels.clone()),
                exposed_ports: Some(vec![port_key]),
                host_config: Some(host),
                ..Default::default()
            };
            let opts = CreateContainerOptionsBuilder::default()
                .name(&spec.name)
                .build();
            let created = docker
                .create_container(Some(opts), body)
                .await
                .map_err(|e| self.map_err(e))?;
            if let Err(e) = docker
                .start_container(
                    &created.id,
                    None::<bollard::query_parameters::StartContainerOptions>,
                )
                .await
            {
                let _ = self.remove_container(&created.id).await;
                return Err(self.map_err(e));
            }
            Ok(created.id)
        })
    }

    fn start<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let docker = self.api().await?;
            match docker
                .start_container(id, None::<bollard::query_parameters::StartContainerOptions>)
                .await
            {
                Ok(()) => Ok(()),
                // 304: already started.
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 304, ..
                }) => Ok(()),
                Err(e) => Err(self.map_err(e)),
            }
        })
    }

    fn stop<'a>(&'a self, id: &'a str, grace_s: i32) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let docker = self.api().await?;
            let opts = StopContainerOptionsBuilder::default().t(grace_s).build();
            match docker.stop_container(id, Some(opts)).await {
                Ok(()) => Ok(()),
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 304, ..
                }) => Ok(()),
                Err(e) => ignore_missing(Err(self.map_err(e))),
            }
        })
    }

    fn remove_container<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let docker = self.api().await?;
            let opts = RemoveContainerOptionsBuilder::default()
                .force(true)
                .v(true)
                .build();
            match docker.remove_container(id, Some(opts)).await {
                Ok(()) => Ok(()),
                // Already being removed by someone else (a concurrent reconcile): fine.
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 409,
                    message,
                }) if message.contains("already in progress") => Ok(()),
                Err(e) => ignore_missing(Err(self.map_err(e))),
            }
        })
    }

    fn inspect<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<ContainerInfo>>> {
        Box::pin(async move {
            let docker = self.api().await?;
            let c = match docker
                .inspect_container(id, None::<InspectContainerOptions>)
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    return match self.map_err(e) {
                        Error::NotFound(_) => Ok(None),
                        other => Err(other),
                    };
                }
            };
            let state = c.state.unwrap_or_default();
            let net = c.network_settings.unwrap_or_default();
            let host_port = net
                .ports
                .unwrap_or_default()
                .into_values()
                .flatten()
                .flatten()
                .find_map(|b| b.host_port.and_then(|p| p.parse().ok()));
            let ip = net
                .networks
                .unwrap_or_default()
                .into_values()
                .find_map(|n| n.ip_address.filter(|s| !s.is_empty()))
                .and_then(|s| s.parse().ok());
            Ok(Some(ContainerInfo {
                id: c.id.unwrap_or_default(),
                name: c.name.unwrap_or_default().trim_start_matches('/').into(),
                labels: c.config.and_then(|c| c.labels).unwrap_or_default(),
                state: state.status.map(|s| s.to_string()).unwrap_or_default(),
                exit_code: state.exit_code,
                oom_killed: state.oom_killed.unwrap_or(false),
                ip,
                host_port,
            }))
        })
    }

    fn containers<'a>(&'a self, labels: &'a [String]) -> BoxFuture<'a, Result<Vec<ContainerInfo>>> {
        Box::pin(async move {
            let docker = self.api().await?;
            let opts = ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&label_filter(labels))
                .build();
            let list = docker
                .list_containers(Some(opts))
                .await
                .map_err(|e| self.map_err(e))?;
            Ok(list
                .into_iter()
                .map(|c| ContainerInfo {
                    id: c.id.unwrap_or_default(),
                    name: c
                        .names
                        .unwrap_or_default()
                        .first()
                        .map(|n| n.trim_start_matches('/').to_string())
                        .unwrap_or_default(),
                    labels: c.labels.unwrap_or_default(),
                    state: c.state.map(|s| s.to_string()).unwrap_or_default(),
                    ..Default::default()
                })
                .collect())
        })
    }

    fn update_limits<'a>(
        &'a self,
        id: &'a str,
        memory_mb: u32,
        cpu: f64,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let docker = self.api().await?;
            let bytes = i64::from(memory_mb) * 1024 * 1024;
            let body = ContainerUpdateBody {
                memory: Some(bytes),
                memory_swap: Some(bytes),
                nano_cpus: Some((cpu * 1e9) as i64),
                ..Default::default()
            };
            docker
                .update_container(id, body)
                .await
                .map(|_| ())
                .map_err(|e| self.map_err(e))
        })
    }

    fn logs(
        &self,
        id: &str,
        tail: Option<u64>,
        follow: bool,
    ) -> BoxStream<'static, Result<String>> {
        let this = self.clone();
        let id = id.to_string();
        let tail = tail.map_or_else(|| "all".to_string(), |n| n.to_string());
        futures_util::stream::once(async move {
            let docker = this.api().await?.clone();
            let opts = LogsOptionsBuilder::default()
                .stdout(true)
                .stderr(true)
                .follow(follow)
                .tail(&tail)
                .build();
            let err_this = this.clone();
            Ok::<_, Error>(
                docker
                    .logs(&id, Some(opts))
                    .map_err(move |e| err_this.map_err(e))
                    .map_ok(|chunk| {
                        let text = String::from_utf8_lossy(&chunk.into_bytes()).into_owned();
                        futures_util::stream::iter(
                            text.lines()
                                .map(|l| Ok(l.to_string()))
                                .collect::<Vec<Result<String>>>(),
                        )
                    })
                    .try_flatten(),
            )
        })
        .try_flatten()
        .boxed()
    }

    fn images<'a>(&'a self, labels: &'a [String]) -> BoxFuture<'a, Result<Vec<ImageInfo>>> {
        Box::pin(async move {
            let docker = self.api().await?;
            let opts = ListImagesOptionsBuilder::default()
                .filters(&label_filter(labels))
                .build();
            let list = docker
                .list_images(Some(opts))
                .await
                .map_err(|e| self.map_err(e))?;
            Ok(list
                .into_iter()
                .map(|i| ImageInfo {
                    id: i.id,
                    tags: i.repo_tags,
                    labels: i.labels,
                    size: i.size,
                    created: i.created,
                })
                .collect())
        })
    }

    fn image_exists<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let docker = self.api().await?;
            match docker.inspect_image(reference).await {
                Ok(_) => Ok(true),
                Err(e) => match self.map_err(e) {
                    Error::NotFound(_) => Ok(false),
                    other => Err(other),
                },
            }
        })
    }

    fn remove_image<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let docker = self.api().await?;
            let opts = RemoveImageOptionsBuilder::default().force(true).build();
            ignore_missing(
                docker
                    .remove_image(reference, Some(opts), None)
                    .await
                    .map(|_| ())
                    .map_err(|e| self.map_err(e)),
            )
        })
    }

    fn events(&self, labels: &[String]) -> BoxStream<'static, Result<ContainerEvent>> {
        let this = self.clone();
        let labels = labels.to_vec();
        futures_util::stream::once(async move {
            let docker = this.api().await?.clone();
            let mut filters = label_filter(&labels);
            filters.insert("type".into(), vec!["container".into()]);
            let opts = EventsOptionsBuilder::default().filters(&filters).build();
            let err_this = this.clone();
            Ok::<_, Error>(
                docker
                    .events(Some(opts))
                    .map_err(move |e| err_this.map_err(e))
                    .map_ok(|ev| {
                        let actor = ev.actor.unwrap_or_default();
                        let attrs = actor.attributes.unwrap_or_default();
                        ContainerEvent {
                            action: ev.action.unwrap_or_default(),
                            container: actor.id.unwrap_or_default(),
                            app: attrs.get(LABEL_APP).cloned(),
                        }
                    }),
            )
        })
        .try_flatten()
        .boxed()
    }
}
