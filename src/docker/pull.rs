//! Pulling an image from a registry (image apps), with its progress as lines, and reading what a
//! pulled image declares (its id and exposed ports).

use super::engine::Engine;
use super::{BuildOutput, ImageConfig};
use crate::domain::{Error, RegistryLogin, Result};
use bollard::auth::DockerCredentials;
use bollard::query_parameters::CreateImageOptionsBuilder;
use futures_util::StreamExt;
use std::collections::HashMap;

impl Engine {
    pub(super) async fn pull_now(
        &self,
        reference: &str,
        login: Option<(&RegistryLogin, &str)>,
        out: BuildOutput<'_>,
    ) -> Result<()> {
        let docker = self.api().await?;
        let opts = CreateImageOptionsBuilder::default()
            .from_image(reference)
            .build();
        let credentials = login.map(|(l, server)| DockerCredentials {
            username: Some(l.username.clone()),
            password: Some(l.password.clone()),
            serveraddress: Some(server.to_string()),
            ..Default::default()
        });
        let mut stream = docker.create_image(Some(opts), None, credentials);
        // Docker repeats a layer's status with every chunk downloaded: show each change once.
        let mut last: HashMap<String, String> = HashMap::new();
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| self.pull_error(reference, e))?;
            let Some(status) = info.status else { continue };
            let id = info.id.unwrap_or_default();
            if last.get(&id) == Some(&status) {
                continue;
            }
            out(&if id.is_empty() {
                status.clone()
            } else {
                format!("{id}: {status}")
            });
            last.insert(id, status);
        }
        Ok(())
    }

    /// A failed pull is the deployer's problem (a wrong name, a missing tag, a refused login, an
    /// unreachable registry), said in Docker's words; only an unreachable engine stays ours.
    fn pull_error(&self, reference: &str, e: bollard::errors::Error) -> Error {
        match self.map_err(e) {
            Error::Unavailable(m) => Error::Unavailable(m),
            Error::Internal(cause) => {
                Error::DeployFailed(format!("cannot pull {reference}: {cause:#}"))
            }
            other => Error::DeployFailed(format!("cannot pull {reference}: {other}")),
        }
    }

    pub(super) async fn image_config_now(&self, reference: &str) -> Result<Option<ImageConfig>> {
        let docker = self.api().await?;
        let image = match docker.inspect_image(reference).await {
            Ok(i) => i,
            Err(e) => {
                return match self.map_err(e) {
                    Error::NotFound(_) => Ok(None),
                    other => Err(other),
                };
            }
        };
        let mut exposed_ports: Vec<u16> = image
            .config
            .and_then(|c| c.exposed_ports)
            .unwrap_or_default()
            .iter()
            .filter_map(|p| p.strip_suffix("/tcp").and_then(|n| n.parse().ok()))
            .collect();
        exposed_ports.sort_unstable();
        Ok(Some(ImageConfig {
            id: image.id.unwrap_or_default(),
            exposed_ports,
        }))
    }
}
