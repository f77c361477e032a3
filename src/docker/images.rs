//! Images on one engine: built from a context (with the build's limits), listed, checked,
//! traced back to the local images they were built on, and removed. Pulling is `pull.rs`;
//! pushing and tagging, `registry.rs`. Each `*_now` is the body of the
//! [`DockerNode`](super::DockerNode) method of its name, which says what it does.

use super::engine::{Engine, ignore_missing, label_filter};
use super::{BuildLimits, BuildOutput, ImageInfo};
use crate::domain::{Error, Result};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, ListImagesOptionsBuilder, RemoveImageOptionsBuilder,
};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use std::collections::HashMap;

/// The CFS period of a build's CPU quota (Docker's default, 100 ms).
const CPU_PERIOD_US: i32 = 100_000;

impl Engine {
    pub(super) async fn build_now(
        &self,
        tag: &str,
        dockerfile: &str,
        labels: HashMap<String, String>,
        limits: &BuildLimits,
        context: BoxStream<'static, std::io::Result<Bytes>>,
        out: BuildOutput<'_>,
    ) -> Result<()> {
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
        let mut stream = docker.build_image(opts, None, Some(bollard::body_try_stream(context)));
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
    }

    pub(super) async fn images_now(&self, labels: &[String]) -> Result<Vec<ImageInfo>> {
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
    }

    pub(super) async fn image_exists_now(&self, reference: &str) -> Result<bool> {
        let docker = self.api().await?;
        match docker.inspect_image(reference).await {
            Ok(_) => Ok(true),
            Err(e) => match self.map_err(e) {
                Error::NotFound(_) => Ok(false),
                other => Err(other),
            },
        }
    }

    pub(super) async fn image_ancestors_now(&self, reference: &str) -> Result<Vec<String>> {
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
    }

    pub(super) async fn remove_image_now(&self, reference: &str) -> Result<()> {
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
    }

    pub(super) async fn remove_unused_image_now(&self, id: &str) -> Result<bool> {
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
    }
}
