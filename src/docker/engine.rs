//! [`DockerNode`] through bollard, for one engine endpoint; the one mapping from Docker's errors
//! to domain errors ([`Engine::map_err`]).

use super::host_config::host_config;
use super::{
    Attached, BuildLimits, BuildOutput, ContainerEvent, ContainerInfo, DockerNode, ImageInfo,
    LABEL_APP, Output, RunSpec,
};
use crate::domain::{Error, Result};
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, ContainerUpdateBody};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, BuildImageOptionsBuilder, CreateContainerOptionsBuilder,
    EventsOptionsBuilder, InspectContainerOptions, ListContainersOptionsBuilder,
    ListImagesOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveImageOptionsBuilder, ResizeContainerTTYOptionsBuilder, StopContainerOptionsBuilder,
    WaitContainerOptionsBuilder,
};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::OnceCell;

/// `e` and its causes: bollard's connection errors say only "client error (Connect)" on top,
/// the reason (a refused TLS certificate, a refused connection) is further down.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = c.source();
    }
    text
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

    /// A client for another machine's engine: `tcp://host:port` with the TLS client files in
    /// `tls` (`ca.pem`, `cert.pem`, `key.pem`, as `docker --tlsverify` uses them), `ssh://user@host`
    /// (the system `ssh` client, with `ssh_key` alone when given, else its own configuration and
    /// keys), or what [`Engine::new`] accepts.
    pub fn remote(
        endpoint: &str,
        tls: Option<&std::path::Path>,
        ssh_key: Option<&std::path::Path>,
    ) -> Engine {
        let timeout = 3600;
        let docker = match (endpoint.strip_prefix("tcp://"), tls) {
            (Some(_), Some(dir)) => Docker::connect_with_ssl(
                endpoint,
                &dir.join("key.pem"),
                &dir.join("cert.pem"),
                &dir.join("ca.pem"),
                timeout,
                bollard::API_DEFAULT_VERSION,
            )
            .ok(),
            _ if endpoint.starts_with("ssh://") => {
                let key = ssh_key.map(|p| p.to_string_lossy().into_owned());
                Docker::connect_with_ssh(endpoint, timeout, bollard::API_DEFAULT_VERSION, key).ok()
            }
            _ => return Engine::new(endpoint),
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
    pub(super) async fn api(&self) -> Result<&Docker> {
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
        let why = why.to_string();
        // The one refusal an admin fixes on the node itself.
        let hint = if self.endpoint.starts_with("ssh://") && why.contains("Permission denied (") {
            "; add Scalefog's key (ssh_public_key in GET /v1/cluster, also on the console's \
             Nodes page) to that user's ~/.ssh/authorized_keys"
        } else {
            ""
        };
        Error::Unavailable(format!(
            "Docker engine at {} is unreachable: {why}{hint}",
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
                // Go's answer to plain HTTP on a TLS port: the node was added without its
                // client certificates.
                400 if message.contains("HTTP request to an HTTPS server") => Error::invalid(
                    "address",
                    format!(
                        "the Docker engine at {} speaks TLS: give its CA and a client \
                         certificate and key it trusts (ca, cert, key)",
                        self.endpoint
                    ),
                ),
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
            other => self.unavailable(with_causes(&other)),
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

impl Engine {
    /// Creates the container of `spec` (not started); its id.
    async fn create(&self, spec: &RunSpec) -> Result<String> {
        let docker = self.api().await?;
        let port_key = spec.port.map(|p| format!("{p}/tcp"));
        let host = host_config(spec, port_key.as_deref());
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(spec.labels.clone()),
            exposed_ports: port_key.map(|k| vec![k]),
            cmd: spec.cmd.clone(),
            host_config: Some(host),
            tty: Some(spec.tty),
            open_stdin: Some(spec.stdin),
            // The end of the attached input is the end of the container's stdin.
            stdin_once: Some(spec.stdin),
            ..Default::default()
        };
        let opts = CreateContainerOptionsBuilder::default()
            .name(&spec.name)
            .build();
        let created = docker
            .create_container(Some(opts), body)
            .await
            .map_err(|e| self.map_err(e))?;
        Ok(created.id)
    }

    /// Starts a container just created; one that cannot start is removed.
    async fn start_created(&self, id: &str) -> Result<()> {
        let docker = self.api().await?;
        if let Err(e) = docker
            .start_container(id, None::<bollard::query_parameters::StartContainerOptions>)
            .await
        {
            let _ = self.remove_container(id).await;
            return Err(self.map_err(e));
        }
        Ok(())
    }
}

/// The CFS period of a build's CPU quota (Docker's default, 100 ms).
const CPU_PERIOD_US: i32 = 100_000;

/// `key` or `key=value` label filters (all must match).
pub(super) fn label_filter(labels: &[String]) -> HashMap<String, Vec<String>> {
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
        limits: &'a BuildLimits,
        context: BoxStream<'static, std::io::Result<Bytes>>,
        out: BuildOutput<'a>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let docker = self.api().await?;
            // The setting is at most 2047 MB, so the bytes fit the API's 32-bit field.
            let memory = i32::try_from(i64::from(limits.memory_mb) * 1024 * 1024)
                .map_err(|_| Error::internal("build_memory exceeds Docker's build API"))?;
            let opts = BuildImageOptionsBuilder::default()
                .dockerfile(dockerfile)
                .t(tag)
                .rm(true)
                .forcerm(true)
                .labels(&labels)
                .memory(memory)
                // No swap beyond the memory limit, as for app containers.
                .memswap(memory)
                .cpuperiod(CPU_PERIOD_US)
                .cpuquota((limits.cpus * f64::from(CPU_PERIOD_US)) as i32)
                .networkmode(&limits.network)
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
            let id = self.create(spec).await?;
            self.start_created(&id).await?;
            Ok(id)
        })
    }

    fn run_attached<'a>(&'a self, spec: &'a RunSpec) -> BoxFuture<'a, Result<Attached>> {
        Box::pin(async move {
            let docker = self.api().await?;
            let id = self.create(spec).await?;
            let opts = AttachContainerOptionsBuilder::default()
                .stream(true)
                .stdin(spec.stdin)
                .stdout(true)
                .stderr(true)
                .build();
            let attached = match docker.attach_container(&id, Some(opts)).await {
                Ok(a) => a,
                Err(e) => {
                    let _ = self.remove_container(&id).await;
                    return Err(self.map_err(e));
                }
            };
            self.start_created(&id).await?;
            let this = self.clone();
            let output = attached
                .output
                .filter_map(move |item| {
                    let item = match item {
                        Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                            Some(Ok(Output::Stdout(message)))
                        }
                        Ok(LogOutput::StdErr { message }) => Some(Ok(Output::Stderr(message))),
                        Ok(LogOutput::StdIn { .. }) => None,
                        Err(e) => Some(Err(this.map_err(e))),
                    };
                    std::future::ready(item)
                })
                .boxed();
            Ok(Attached {
                id,
                output,
                input: attached.input,
            })
        })
    }

    fn resize<'a>(&'a self, id: &'a str, cols: u16, rows: u16) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let docker = self.api().await?;
            let opts = ResizeContainerTTYOptionsBuilder::default()
                .w(cols.into())
                .h(rows.into())
                .build();
            docker
                .resize_container_tty(id, opts)
                .await
                .map_err(|e| self.map_err(e))
        })
    }

    fn wait<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<i64>> {
        Box::pin(async move {
            let docker = self.api().await?;
            let opts = WaitContainerOptionsBuilder::default()
                .condition("not-running")
                .build();
            let mut waited = docker.wait_container(id, Some(opts));
            match waited.next().await {
                Some(Ok(r)) => Ok(r.status_code),
                // bollard reports a non-zero exit as an error carrying the code.
                Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => {
                    Ok(code)
                }
                Some(Err(e)) => Err(self.map_err(e)),
                None => Err(self.unavailable("the wait for a container ended without an answer")),
            }
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
            // `"5000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "49153"}]`
            let (exposed_port, host_port) = net
                .ports
                .unwrap_or_default()
                .into_iter()
                .find_map(|(inner, bindings)| {
                    let host = bindings?
                        .into_iter()
                        .find_map(|b| b.host_port.and_then(|p| p.parse::<u16>().ok()))?;
                    let inner = inner.split('/').next()?.parse::<u16>().ok();
                    Some((inner, Some(host)))
                })
                .unwrap_or_default();
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
                exposed_port,
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

    fn image_ancestors<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<Vec<String>>> {
        Box::pin(async move {
            let docker = self.api().await?;
            let history = match docker.image_history(reference).await {
                Ok(h) => h,
                Err(e) => {
                    return match self.map_err(e) {
                        Error::NotFound(_) => Ok(Vec::new()),
                        other => Err(other),
                    };
                }
            };
            // The first entry is the image itself; layers this engine did not build (pulled
            // ones) show as `<missing>`, and nothing below them is local either.
            Ok(history
                .into_iter()
                .skip(1)
                .map(|h| h.id)
                .take_while(|id| id.starts_with("sha256:"))
                .collect())
        })
    }

    fn create_volume<'a>(
        &'a self,
        name: &'a str,
        labels: &'a HashMap<String, String>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.create_volume_now(name, labels))
    }

    fn remove_volume<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(self.remove_volume_now(name))
    }

    fn volumes<'a>(&'a self, labels: &'a [String]) -> BoxFuture<'a, Result<Vec<String>>> {
        Box::pin(self.volumes_now(labels))
    }

    fn ensure_isolated_network<'a>(
        &'a self,
        name: &'a str,
        labels: &'a HashMap<String, String>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.ensure_isolated_network_now(name, labels))
    }

    fn remove_image<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let docker = self.api().await?;
            let opts = RemoveImageOptionsBuilder::default()
                .force(true)
                .noprune(true)
                .build();
            ignore_missing(
                docker
                    .remove_image(reference, Some(opts), None)
                    .await
                    .map(|_| ())
                    .map_err(|e| self.map_err(e)),
            )
        })
    }

    fn remove_unused_image<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let docker = self.api().await?;
            // Docker would untag a tagged image removed by id: only untagged ones go.
            match docker.inspect_image(id).await {
                Ok(i) if i.repo_tags.as_ref().is_none_or(Vec::is_empty) => {}
                Ok(_) => return Ok(false),
                Err(e) => {
                    return match self.map_err(e) {
                        Error::NotFound(_) => Ok(false),
                        other => Err(other),
                    };
                }
            }
            let opts = RemoveImageOptionsBuilder::default().noprune(true).build();
            match docker.remove_image(id, Some(opts), None).await {
                Ok(_) => Ok(true),
                Err(e) => match self.map_err(e) {
                    // A child image or a container depends on it.
                    Error::Conflict(_) | Error::NotFound(_) => Ok(false),
                    other => Err(other),
                },
            }
        })
    }

    fn pull<'a>(
        &'a self,
        reference: &'a str,
        login: Option<(&'a crate::domain::RegistryLogin, &'a str)>,
        out: BuildOutput<'a>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.pull_now(reference, login, out))
    }

    fn image_config<'a>(
        &'a self,
        reference: &'a str,
    ) -> BoxFuture<'a, Result<Option<super::ImageConfig>>> {
        Box::pin(self.image_config_now(reference))
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

#[cfg(test)]
mod cause_tests {
    use super::with_causes;

    /// An error that says only its own part, like hyper's "client error (Connect)".
    #[derive(Debug)]
    struct Outer(std::io::Error);

    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("client error (Connect)")
        }
    }

    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn an_error_is_shown_with_its_causes() {
        let e = Outer(std::io::Error::other(
            "received fatal alert: BadCertificate",
        ));
        assert_eq!(
            with_causes(&e),
            "client error (Connect): received fatal alert: BadCertificate"
        );
    }
}
