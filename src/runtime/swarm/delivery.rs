//! Images without a registry: each image is streamed from the manager's engine (where builds run)
//! to every node of the region that lacks it, before the service is created; a node joining a
//! region gets the images its services run.

use super::{REGION_LABEL, Swarm, node_engine};
use crate::docker::DockerNode;
use crate::domain::{Node, Result};

impl Swarm {
    /// Makes sure every node of `region` other than the manager holds `image`, copying it from
    /// the manager's engine where it is missing.
    pub async fn deliver(&self, region: u64, image: &str) -> Result<()> {
        let Some(cluster) = self.store.read(|r| r.cluster())? else {
            return Ok(());
        };
        let nodes = self.store.read(|r| r.nodes())?;
        for node in nodes.iter().filter(|n| {
            n.region_id == region
                && n.swarm_id
                    .as_deref()
                    .is_some_and(|id| id != cluster.manager_id)
        }) {
            self.deliver_to(node, image).await?;
        }
        Ok(())
    }

    /// Copies `image` to one node unless it has it.
    pub async fn deliver_to(&self, node: &Node, image: &str) -> Result<()> {
        let engine = node_engine(node, &self.tls_root);
        if engine.image_exists(image).await? {
            return Ok(());
        }
        tracing::info!(node = node.id, %image, "copying an image to a node");
        self.manager.copy_image(image, &engine).await
    }

    /// The images the services of `region` run (for a node joining it).
    pub async fn region_images(&self, region: u64) -> Result<Vec<String>> {
        let mut filters = self.installation.filters(None);
        filters.push(format!("{REGION_LABEL}={region}"));
        let mut images: Vec<String> = self
            .manager
            .services(&filters)
            .await?
            .into_iter()
            .map(|s| s.image)
            .collect();
        images.sort();
        images.dedup();
        Ok(images)
    }
}
