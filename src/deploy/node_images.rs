//! Old releases' images on the cluster's other nodes. An image reaches a node when a service of
//! its app is placed there (streamed from the manager, see `runtime::swarm`); when Scalefog
//! prunes it locally, it removes it on the app's region's other nodes too, so images do not pile
//! up there. Best effort and in the background: a node that does not answer keeps its images
//! until the next prune, and only images with this installation's labels of that app are
//! touched.

use super::Deployer;
use crate::docker::{DockerNode, LABEL_RELEASE};
use crate::domain::{Node, Result};
use crate::runtime::swarm::node_engine;
use std::collections::HashSet;
use std::time::Duration;

/// How long one node may take to list and remove an app's images.
const NODE_WAIT: Duration = Duration::from_secs(30);

impl Deployer {
    /// Removes, on the other nodes of `app`'s region, the app's images whose tags `keep` does
    /// not name (all of them when `keep` is empty), in the background. Only images of releases
    /// that exist now are touched: one a later deploy is streaming there is not.
    pub(super) fn prune_node_images(&self, app: &str, keep: HashSet<String>) {
        let found = self.0.store.read(|r| {
            let Some(cluster) = r.cluster()? else {
                return Ok(None);
            };
            let Some(inst) = r.instance(app)? else {
                return Ok(None);
            };
            let nodes: Vec<Node> = r
                .nodes()?
                .into_iter()
                .filter(|n| {
                    n.region_id == inst.region_id
                        && n.swarm_id
                            .as_deref()
                            .is_some_and(|id| id != cluster.manager_id)
                })
                .collect();
            Ok(Some((nodes, r.last_release_number(app)?)))
        });
        let (nodes, newest) = match found {
            Ok(Some(found)) if !found.0.is_empty() => found,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(%app, error = %e, "cannot list the nodes to prune images on");
                return;
            }
        };
        let this = self.clone();
        let app = app.to_string();
        tokio::spawn(async move {
            for node in nodes {
                let pruned = this.prune_on(&node, &app, &keep, newest);
                match tokio::time::timeout(NODE_WAIT, pruned).await {
                    Ok(Ok(0)) => {}
                    Ok(Ok(removed)) => {
                        tracing::info!(node = node.id, %app, removed, "old images removed on a node")
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(node = node.id, %app, error = %e, "cannot prune old images on a node")
                    }
                    Err(_) => {
                        tracing::warn!(node = node.id, %app, "a node did not answer; its old images stay until the next prune")
                    }
                }
            }
        });
    }

    /// Removes the app's images on one node that are neither kept nor newer than release
    /// `newest`; how many references went.
    async fn prune_on(
        &self,
        node: &Node,
        app: &str,
        keep: &HashSet<String>,
        newest: u32,
    ) -> Result<usize> {
        let engine = node_engine(node, self.0.swarm.tls_root());
        let mut removed = 0;
        for img in engine
            .images(&self.0.installation.filters(Some(app)))
            .await?
        {
            let release: Option<u32> = img.labels.get(LABEL_RELEASE).and_then(|v| v.parse().ok());
            if release.is_none_or(|v| v > newest) {
                continue;
            }
            // A node that pulled from the cluster's registry holds the image under that name only.
            let kept = |t: &str| super::images::is_kept(keep, t);
            let references: Vec<&str> = if img.tagged().any(kept) {
                img.tagged().filter(|t| !kept(t)).collect()
            } else {
                img.tagged().chain([img.id.as_str()]).collect()
            };
            for r in references {
                engine.remove_image(r).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}
