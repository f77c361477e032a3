//! The output of a container or of a swarm task, as lines: the last `tail`, then new ones
//! when following.

use super::engine::Engine;
use crate::domain::{Error, Result};
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::query_parameters::{LogsOptions, LogsOptionsBuilder};
use futures_util::stream::{BoxStream, Stream};
use futures_util::{StreamExt, TryStreamExt};

impl Engine {
    /// A container's output lines (stdout and stderr).
    pub(super) fn container_logs(
        &self,
        id: &str,
        tail: Option<u64>,
        follow: bool,
    ) -> BoxStream<'static, Result<String>> {
        let id = id.to_string();
        self.log_lines(tail, follow, move |docker, opts| {
            docker.logs(&id, Some(opts))
        })
    }

    /// A swarm task's output lines (one run of one replica), the last `tail`, then new ones
    /// when `follow`.
    pub fn task_logs(
        &self,
        id: &str,
        tail: Option<u64>,
        follow: bool,
    ) -> BoxStream<'static, Result<String>> {
        let id = id.to_string();
        self.log_lines(tail, follow, move |docker, opts| {
            docker.task_logs(&id, Some(opts))
        })
    }

    /// The lines of the log stream `open` asks for with stdout, stderr, `tail` and `follow`:
    /// containers and swarm tasks answer with the same chunks ([`LogOutput`]), each turned into the
    /// lines it holds.
    fn log_lines<S>(
        &self,
        tail: Option<u64>,
        follow: bool,
        open: impl FnOnce(&Docker, LogsOptions) -> S + Send + 'static,
    ) -> BoxStream<'static, Result<String>>
    where
        S: Stream<Item = std::result::Result<LogOutput, bollard::errors::Error>> + Send + 'static,
    {
        let this = self.clone();
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
                open(&docker, opts)
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
