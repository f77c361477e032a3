//! The single-engine runtime: each process is one plain container on the local Docker engine,
//! published on a loopback port for the router, labelled with its app and release so that
//! reconcile finds it again after a crash.

use super::{Attached, ProcessEvent, ProcessSpec, ProcessState, ProcessStatus, Runtime};
use crate::docker::{
    ContainerInfo, DockerNode, Installation, LABEL_PROCESS, LABEL_RELEASE, LABEL_VOLUME,
    LogRotation, RunSpec,
};
use crate::domain::Result;
use crate::domain::WEB;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Docker's label on the container of a swarm task.
const SWARM_TASK_LABEL: &str = "com.docker.swarm.task.id";

/// Process limit inside every app container (a fork bomb stays inside its box).
const PIDS_LIMIT: i64 = 512;

/// Processes as containers of one Docker engine.
#[derive(Clone)]
pub struct Containers {
    docker: Arc<dyn DockerNode>,
    installation: Installation,
    /// How every container's log rotates (settings `log_max_size`, `log_max_files`).
    log: LogRotation,
}

impl Containers {
    pub fn new(
        docker: Arc<dyn DockerNode>,
        installation: Installation,
        log: LogRotation,
    ) -> Containers {
        Containers {
            docker,
            installation,
            log,
        }
    }

    /// The container of `spec`, its network and volumes made ready.
    async fn run_spec(&self, spec: &ProcessSpec, stdin: bool, tty: bool) -> Result<RunSpec> {
        let run = RunSpec {
            name: format!(
                "scalefog-{}-v{}-{}.{}-{}",
                spec.app,
                spec.release,
                spec.kind,
                spec.replica,
                hex::encode(rand::random::<[u8; 3]>())
            ),
            image: spec.image.clone(),
            env: spec.env.clone(),
            port: (spec.kind == WEB).then_some(spec.port),
            cmd: spec.command.clone(),
            restart: !spec.once,
            memory_mb: spec.memory_mb,
            cpu: spec.cpu,
            pids_limit: PIDS_LIMIT,
            labels: self
                .installation
                .labels(&spec.app, spec.node, Some(spec.release)),
            volumes: Vec::with_capacity(spec.volumes.len()),
            network: Some(self.installation.apps_network()),
            read_only_rootfs: spec.read_only_rootfs,
            log: self.log.clone(),
            stdin,
            tty,
        };
        let mut run = run;
        run.labels.insert(
            LABEL_PROCESS.to_string(),
            format!("{}.{}", spec.kind, spec.replica),
        );
        self.docker
            .ensure_isolated_network(
                &self.installation.apps_network(),
                &self.installation.own_labels(),
            )
            .await?;
        for (name, path) in &spec.volumes {
            let volume = self.installation.volume_name(&spec.app, name);
            let mut labels = self.installation.labels(&spec.app, spec.node, None);
            labels.insert(LABEL_VOLUME.to_string(), name.clone());
            // Idempotent: the first process to mount a volume creates it, labelled, so
            // that it is found again (and removed with its app) whatever happens meanwhile.
            self.docker.create_volume(&volume, &labels).await?;
            run.volumes.push((volume, path.clone()));
        }
        Ok(run)
    }

    fn status_of(&self, c: ContainerInfo) -> ProcessStatus {
        let state = match c.state.as_str() {
            "running" => ProcessState::Running,
            "created" => ProcessState::Starting,
            "restarting" => ProcessState::Restarting {
                code: c.exit_code,
                oom: c.oom_killed,
            },
            _ => ProcessState::Exited {
                code: c.exit_code,
                oom: c.oom_killed,
            },
        };
        ProcessStatus {
            endpoint: c.published(),
            // The container's own address on its network: the published port goes through
            // docker-proxy, which accepts connections even when nothing listens inside.
            direct: c
                .ip
                .zip(c.exposed_port)
                .map(|(ip, p)| SocketAddr::new(ip, p)),
            app: c.app().map(str::to_string),
            release: c.labels.get(LABEL_RELEASE).and_then(|r| r.parse().ok()),
            process: c.labels.get(LABEL_PROCESS).cloned(),
            id: c.id,
            state,
        }
    }
}

impl Runtime for Containers {
    fn start<'a>(&'a self, spec: &'a ProcessSpec) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            let run = self.run_spec(spec, false, false).await?;
            self.docker.run(&run).await
        })
    }

    fn start_attached<'a>(
        &'a self,
        spec: &'a ProcessSpec,
        stdin: bool,
        tty: bool,
    ) -> BoxFuture<'a, Result<Attached>> {
        Box::pin(async move {
            let run = self.run_spec(spec, stdin, tty).await?;
            self.docker.run_attached(&run).await
        })
    }

    fn resize<'a>(&'a self, id: &'a str, cols: u16, rows: u16) -> BoxFuture<'a, Result<()>> {
        self.docker.resize(id, cols, rows)
    }

    fn wait<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<i64>> {
        self.docker.wait(id)
    }

    fn status<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<ProcessStatus>>> {
        Box::pin(async move { Ok(self.docker.inspect(id).await?.map(|c| self.status_of(c))) })
    }

    fn list<'a>(&'a self, app: Option<&'a str>) -> BoxFuture<'a, Result<Vec<ProcessStatus>>> {
        Box::pin(async move {
            let found = self
                .docker
                .containers(&self.installation.filters(app))
                .await?;
            // A swarm task's container carries the installation's labels too (from its image):
            // it is the swarm runtime's, never this one's to remove.
            Ok(found
                .into_iter()
                .filter(|c| !c.labels.contains_key(SWARM_TASK_LABEL))
                .map(|c| self.status_of(c))
                .collect())
        })
    }

    fn resume<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>> {
        self.docker.start(id)
    }

    fn stop<'a>(&'a self, id: &'a str, grace: Duration) -> BoxFuture<'a, Result<()>> {
        self.docker
            .stop(id, grace.as_secs().try_into().unwrap_or(i32::MAX))
    }

    fn remove<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>> {
        self.docker.remove_container(id)
    }

    fn update_limits<'a>(
        &'a self,
        id: &'a str,
        memory_mb: u32,
        cpu: f64,
    ) -> BoxFuture<'a, Result<()>> {
        self.docker.update_limits(id, memory_mb, cpu)
    }

    fn logs(
        &self,
        id: &str,
        tail: Option<u64>,
        follow: bool,
    ) -> BoxStream<'static, Result<String>> {
        self.docker.logs(id, tail, follow)
    }

    fn remove_volume<'a>(&'a self, app: &'a str, name: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            self.docker
                .remove_volume(&self.installation.volume_name(app, name))
                .await
        })
    }

    fn volumes<'a>(&'a self, app: &'a str) -> BoxFuture<'a, Result<Vec<String>>> {
        Box::pin(async move {
            let mut filters = self.installation.filters(Some(app));
            filters.push(LABEL_VOLUME.to_string());
            let prefix = self.installation.volume_name(app, "");
            Ok(self
                .docker
                .volumes(&filters)
                .await?
                .into_iter()
                .filter_map(|v| v.strip_prefix(&prefix).map(str::to_string))
                .collect())
        })
    }

    fn events(&self) -> BoxStream<'static, Result<ProcessEvent>> {
        self.docker
            .events(&self.installation.filters(None))
            .map(|ev| {
                ev.map(|e| ProcessEvent {
                    action: e.action,
                    process: e.container,
                    app: e.app,
                })
            })
            .boxed()
    }
}
