//! [`DockerNode`] through bollard, for one engine endpoint: the client (connecting, agreeing on
//! an API version, the ping) and the one mapping from Docker's errors to domain errors
//! ([`Engine::map_err`]). Each operation lives with its kind of object (`containers.rs`,
//! `images.rs`, `logs.rs`, `volumes.rs`, ...); the [`DockerNode`] implementation here only
//! points to them.

use super::{
    Attached, BuildLimits, BuildOutput, ContainerEvent, ContainerInfo, DockerNode, ImageInfo,
    RunSpec,
};
use crate::domain::{Error, Result};
use bollard::Docker;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
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

/// `key` or `key=value` label filters (all must match).
pub(super) fn label_filter(labels: &[String]) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_string(), labels.to_vec())])
}

/// NotFound → Ok(()), for idempotent removals.
pub(super) fn ignore_missing(r: Result<()>) -> Result<()> {
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
        Box::pin(self.build_now(tag, dockerfile, labels, limits, context, out))
    }

    fn run<'a>(&'a self, spec: &'a RunSpec) -> BoxFuture<'a, Result<String>> {
        Box::pin(self.run_now(spec))
    }

    fn run_attached<'a>(&'a self, spec: &'a RunSpec) -> BoxFuture<'a, Result<Attached>> {
        Box::pin(self.run_attached_now(spec))
    }

    fn resize<'a>(&'a self, id: &'a str, cols: u16, rows: u16) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.resize_now(id, cols, rows))
    }

    fn wait<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<i64>> {
        Box::pin(self.wait_now(id))
    }

    fn start<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.start_now(id))
    }

    fn stop<'a>(&'a self, id: &'a str, grace_s: i32) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.stop_now(id, grace_s))
    }

    fn remove_container<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.remove_container_now(id))
    }

    fn inspect<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<ContainerInfo>>> {
        Box::pin(self.inspect_now(id))
    }

    fn containers<'a>(&'a self, labels: &'a [String]) -> BoxFuture<'a, Result<Vec<ContainerInfo>>> {
        Box::pin(self.containers_now(labels))
    }

    fn update_limits<'a>(
        &'a self,
        id: &'a str,
        memory_mb: u32,
        cpu: f64,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.update_limits_now(id, memory_mb, cpu))
    }

    fn logs(
        &self,
        id: &str,
        tail: Option<u64>,
        follow: bool,
    ) -> BoxStream<'static, Result<String>> {
        self.container_logs(id, tail, follow)
    }

    fn images<'a>(&'a self, labels: &'a [String]) -> BoxFuture<'a, Result<Vec<ImageInfo>>> {
        Box::pin(self.images_now(labels))
    }

    fn image_exists<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(self.image_exists_now(reference))
    }

    fn image_ancestors<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<Vec<String>>> {
        Box::pin(self.image_ancestors_now(reference))
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
        Box::pin(self.remove_image_now(reference))
    }

    fn remove_unused_image<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(self.remove_unused_image_now(id))
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
        self.container_events(labels)
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
