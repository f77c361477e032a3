//! The output of a container, as lines: the last `tail`, then new ones when following.

use super::engine::Engine;
use crate::domain::{Error, Result};
use bollard::query_parameters::LogsOptionsBuilder;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};

impl Engine {
    /// A container's output lines (stdout and stderr).
    pub(super) fn container_logs(
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
}
