//! The Docker Engine interface the core uses, and its bollard implementation.
//!
//! Every Docker error becomes a domain error here and nowhere else: an unreachable engine is
//! `Unavailable` naming the endpoint tried.

use crate::domain::{Error, Result};
use bollard::Docker;
use std::time::Duration;

/// One node's engine.
#[derive(Clone)]
pub struct Engine {
    endpoint: String,
    docker: Option<Docker>,
}

impl Engine {
    /// Prepares a client for `endpoint` (`unix:///…`, `tcp://…`, `http://…`). Does not connect:
    /// the server must start even when Docker is down.
    pub fn new(endpoint: &str) -> Engine {
        let timeout = 120;
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

    pub(crate) fn unavailable(&self, why: impl std::fmt::Display) -> Error {
        Error::Unavailable(format!(
            "Docker engine at {} is unreachable: {why}",
            self.endpoint
        ))
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
