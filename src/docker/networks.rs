//! The bridge networks of an installation, each with inter-container traffic disabled: one app
//! containers run on, so that no app container can open a connection to another's (the host,
//! i.e. the router and the health check, still reaches every container); and one builds run on,
//! so that a build's `RUN` step reaches neither an app container (Docker drops traffic between
//! two bridges) nor another build, while its outbound traffic (package installs) goes out
//! through the host as usual.

use super::engine::Engine;
use crate::domain::{Error, Result};
use bollard::models::NetworkCreateRequest;
use std::collections::HashMap;

impl Engine {
    pub(super) async fn ensure_isolated_network_now(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
    ) -> Result<()> {
        let docker = self.api().await?;
        match docker.inspect_network(name, None).await {
            Ok(_) => return Ok(()),
            Err(e) => match self.map_err(e) {
                Error::NotFound(_) => {}
                e => return Err(e),
            },
        }
        let created = docker
            .create_network(NetworkCreateRequest {
                name: name.to_string(),
                driver: Some("bridge".into()),
                labels: Some(labels.clone()),
                options: Some(HashMap::from([(
                    "com.docker.network.bridge.enable_icc".to_string(),
                    "false".to_string(),
                )])),
                ..Default::default()
            })
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(e) => match self.map_err(e) {
                // Created meanwhile by another start.
                Error::Conflict(_) => Ok(()),
                e => Err(e),
            },
        }
    }
}
