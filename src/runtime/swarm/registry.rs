//! Images through the cluster's registry: with one set, each release image is tagged
//! `<registry>/<installation>/<image>` on the manager's engine (where builds and image pulls
//! happen), pushed with the registry login, and its services carry that login so every node
//! pulls it. Without one, images are streamed to the region's nodes ([`Swarm::deliver`]).
//!
//! The registry's name stays on the manager's copy: a task placed on the manager finds the image
//! there, and the swarm tolerates a failed pull of an image the node already holds.

use super::Swarm;
use crate::docker::{DockerNode, RegistryAuth};
use crate::domain::{ClusterRegistry, RegistryLogin, Result};

/// An image as the services of a region get it.
#[derive(Debug, Clone)]
pub struct Shipped {
    /// The name the services run.
    pub image: String,
    /// The login the nodes pull it with.
    pub auth: Option<RegistryAuth>,
}

impl Swarm {
    /// The cluster's registry, when one is set.
    pub fn registry(&self) -> Result<Option<ClusterRegistry>> {
        self.store.read(|r| r.cluster_registry())
    }

    /// Makes `image` reachable from every node of `region`: pushed to the cluster's registry
    /// when one is set, else streamed to the nodes that lack it.
    pub async fn ship(&self, region: u64, image: &str) -> Result<Shipped> {
        let Some(registry) = self.registry()? else {
            self.deliver(region, image).await?;
            return Ok(Shipped {
                image: image.to_string(),
                auth: None,
            });
        };
        let login = match (&registry.username, &registry.sealed_password) {
            (Some(username), Some(sealed)) => Some(RegistryLogin {
                username: username.clone(),
                password: self
                    .store
                    .sealer()
                    .open(&ClusterRegistry::seal_context(&registry.address), sealed)?,
            }),
            _ => None,
        };
        let path = format!("{}/{image}", self.installation.id);
        let remote = format!("{}/{path}", registry.address);
        self.manager.tag_image(image, &remote).await?;
        let pushed = format!("{}/{path}", registry.push_to());
        let push_auth = login.clone().map(|login| RegistryAuth {
            server: registry.push_to().to_string(),
            login,
        });
        if pushed == remote {
            self.manager.push_image(&remote, push_auth.as_ref()).await?;
        } else {
            // The push name is only the way there: the image keeps the name nodes pull.
            self.manager.tag_image(image, &pushed).await?;
            let result = self.manager.push_image(&pushed, push_auth.as_ref()).await;
            if let Err(e) = self.manager.remove_image(&pushed).await {
                tracing::warn!(image = %pushed, error = %e, "cannot untag a pushed image");
            }
            result?;
        }
        tracing::info!(%image, %remote, "pushed an image to the cluster's registry");
        Ok(Shipped {
            image: remote,
            auth: login.map(|login| RegistryAuth {
                server: registry.address.clone(),
                login,
            }),
        })
    }
}
