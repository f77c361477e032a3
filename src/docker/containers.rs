//! App containers on one engine: created hardened (`host_config.rs`), started, attached to,
//! waited for, stopped, removed, inspected, listed, their limits changed, and their events.
//! Each `*_now` is the body of the [`DockerNode`](super::DockerNode) method of its name, which
//! says what it does.

use super::engine::{Engine, ignore_missing, label_filter};
use super::host_config::host_config;
use super::{Attached, ContainerEvent, ContainerInfo, LABEL_APP, Output, RunSpec};
use crate::domain::{Error, Result};
use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, ContainerUpdateBody};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, EventsOptionsBuilder,
    InspectContainerOptions, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
    ResizeContainerTTYOptionsBuilder, StopContainerOptionsBuilder, WaitContainerOptionsBuilder,
};
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};

impl Engine {
    /// Creates the container of `spec` (not started); its id.
    async fn create(&self, spec: &RunSpec) -> Result<String> {
        let docker = self.api().await?;
        let port_key = spec.port.map(|p| format!("{p}/tcp"));
        let host = host_config(spec, port_key.as_deref());
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(spec.labels.clone()),
            exposed_ports: port_key.map(|k| vec![k]),
            cmd: spec.cmd.clone(),
            host_config: Some(host),
            tty: Some(spec.tty),
            open_stdin: Some(spec.stdin),
            // The end of the attached input is the end of the container's stdin.
            stdin_once: Some(spec.stdin),
            ..Default::default()
        };
        let opts = CreateContainerOptionsBuilder::default()
            .name(&spec.name)
            .build();
        let created = docker
            .create_container(Some(opts), body)
            .await
            .map_err(|e| self.map_err(e))?;
        Ok(created.id)
    }

    /// Starts a container just created; one that cannot start is removed.
    async fn start_created(&self, id: &str) -> Result<()> {
        let docker = self.api().await?;
        if let Err(e) = docker
            .start_container(id, None::<bollard::query_parameters::StartContainerOptions>)
            .await
        {
            let _ = self.remove_container_now(id).await;
            return Err(self.map_err(e));
        }
        Ok(())
    }

    pub(super) async fn run_now(&self, spec: &RunSpec) -> Result<String> {
        let id = self.create(spec).await?;
        self.start_created(&id).await?;
        Ok(id)
    }

    pub(super) async fn run_attached_now(&self, spec: &RunSpec) -> Result<Attached> {
        let docker = self.api().await?;
        let id = self.create(spec).await?;
        let opts = AttachContainerOptionsBuilder::default()
            .stream(true)
            .stdin(spec.stdin)
            .stdout(true)
            .stderr(true)
            .build();
        let attached = match docker.attach_container(&id, Some(opts)).await {
            Ok(a) => a,
            Err(e) => {
                let _ = self.remove_container_now(&id).await;
                return Err(self.map_err(e));
            }
        };
        self.start_created(&id).await?;
        let this = self.clone();
        let output = attached
            .output
            .filter_map(move |item| {
                let item = match item {
                    Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                        Some(Ok(Output::Stdout(message)))
                    }
                    Ok(LogOutput::StdErr { message }) => Some(Ok(Output::Stderr(message))),
                    Ok(LogOutput::StdIn { .. }) => None,
                    Err(e) => Some(Err(this.map_err(e))),
                };
                std::future::ready(item)
            })
            .boxed();
        Ok(Attached {
            id,
            output,
            input: attached.input,
        })
    }

    pub(super) async fn resize_now(&self, id: &str, cols: u16, rows: u16) -> Result<()> {
        let docker = self.api().await?;
        let opts = ResizeContainerTTYOptionsBuilder::default()
            .w(cols.into())
            .h(rows.into())
            .build();
        docker
            .resize_container_tty(id, opts)
            .await
            .map_err(|e| self.map_err(e))
    }

    pub(super) async fn wait_now(&self, id: &str) -> Result<i64> {
        let docker = self.api().await?;
        let opts = WaitContainerOptionsBuilder::default()
            .condition("not-running")
            .build();
        let mut waited = docker.wait_container(id, Some(opts));
        match waited.next().await {
            Some(Ok(r)) => Ok(r.status_code),
            // bollard reports a non-zero exit as an error carrying the code.
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(e)) => Err(self.map_err(e)),
            None => Err(self.unavailable("the wait for a container ended without an answer")),
        }
    }

    pub(super) async fn start_now(&self, id: &str) -> Result<()> {
        let docker = self.api().await?;
        match docker
            .start_container(id, None::<bollard::query_parameters::StartContainerOptions>)
            .await
        {
            Ok(()) => Ok(()),
            // 304: already started.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(self.map_err(e)),
        }
    }

    pub(super) async fn stop_now(&self, id: &str, grace_s: i32) -> Result<()> {
        let docker = self.api().await?;
        let opts = StopContainerOptionsBuilder::default().t(grace_s).build();
        match docker.stop_container(id, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => ignore_missing(Err(self.map_err(e))),
        }
    }

    pub(super) async fn remove_container_now(&self, id: &str) -> Result<()> {
        let docker = self.api().await?;
        let opts = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match docker.remove_container(id, Some(opts)).await {
            Ok(()) => Ok(()),
            // Already being removed by someone else (a concurrent reconcile): fine.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409,
                message,
            }) if message.contains("already in progress") => Ok(()),
            Err(e) => ignore_missing(Err(self.map_err(e))),
        }
    }

    pub(super) async fn inspect_now(&self, id: &str) -> Result<Option<ContainerInfo>> {
        let docker = self.api().await?;
        let c = match docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
        {
            Ok(c) => c,
            Err(e) => {
                return match self.map_err(e) {
                    Error::NotFound(_) => Ok(None),
                    other => Err(other),
                };
            }
        };
        let state = c.state.unwrap_or_default();
        let net = c.network_settings.unwrap_or_default();
        // `"5000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "49153"}]`
        let (exposed_port, host_port) = net
            .ports
            .unwrap_or_default()
            .into_iter()
            .find_map(|(inner, bindings)| {
                let host = bindings?
                    .into_iter()
                    .find_map(|b| b.host_port.and_then(|p| p.parse::<u16>().ok()))?;
                let inner = inner.split('/').next()?.parse::<u16>().ok();
                Some((inner, Some(host)))
            })
            .unwrap_or_default();
        let ip = net
            .networks
            .unwrap_or_default()
            .into_values()
            .find_map(|n| n.ip_address.filter(|s| !s.is_empty()))
            .and_then(|s| s.parse().ok());
        Ok(Some(ContainerInfo {
            id: c.id.unwrap_or_default(),
            name: c.name.unwrap_or_default().trim_start_matches('/').into(),
            labels: c.config.and_then(|c| c.labels).unwrap_or_default(),
            state: state.status.map(|s| s.to_string()).unwrap_or_default(),
            exit_code: state.exit_code,
            oom_killed: state.oom_killed.unwrap_or(false),
            ip,
            host_port,
            exposed_port,
        }))
    }

    pub(super) async fn containers_now(&self, labels: &[String]) -> Result<Vec<ContainerInfo>> {
        let docker = self.api().await?;
        let opts = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&label_filter(labels))
            .build();
        let list = docker
            .list_containers(Some(opts))
            .await
            .map_err(|e| self.map_err(e))?;
        Ok(list
            .into_iter()
            .map(|c| ContainerInfo {
                id: c.id.unwrap_or_default(),
                name: c
                    .names
                    .unwrap_or_default()
                    .first()
                    .map(|n| n.trim_start_matches('/').to_string())
                    .unwrap_or_default(),
                labels: c.labels.unwrap_or_default(),
                state: c.state.map(|s| s.to_string()).unwrap_or_default(),
                ..Default::default()
            })
            .collect())
    }

    pub(super) async fn update_limits_now(&self, id: &str, memory_mb: u32, cpu: f64) -> Result<()> {
        let docker = self.api().await?;
        let bytes = i64::from(memory_mb) * 1024 * 1024;
        let body = ContainerUpdateBody {
            memory: Some(bytes),
            memory_swap: Some(bytes),
            nano_cpus: Some((cpu * 1e9) as i64),
            ..Default::default()
        };
        docker
            .update_container(id, body)
            .await
            .map(|_| ())
            .map_err(|e| self.map_err(e))
    }

    pub(super) fn container_events(
        &self,
        labels: &[String],
    ) -> BoxStream<'static, Result<ContainerEvent>> {
        let this = self.clone();
        let labels = labels.to_vec();
        futures_util::stream::once(async move {
            let docker = this.api().await?.clone();
            let mut filters = label_filter(&labels);
            filters.insert("type".into(), vec!["container".into()]);
            let opts = EventsOptionsBuilder::default().filters(&filters).build();
            let err_this = this.clone();
            Ok::<_, Error>(
                docker
                    .events(Some(opts))
                    .map_err(move |e| err_this.map_err(e))
                    .map_ok(|ev| {
                        let actor = ev.actor.unwrap_or_default();
                        let attrs = actor.attributes.unwrap_or_default();
                        ContainerEvent {
                            action: ev.action.unwrap_or_default(),
                            container: actor.id.unwrap_or_default(),
                            app: attrs.get(LABEL_APP).cloned(),
                        }
                    }),
            )
        })
        .try_flatten()
        .boxed()
    }
}
