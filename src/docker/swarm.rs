//! Docker Swarm through bollard, for the cluster: the swarm itself (init, join, leave, tokens),
//! its nodes (labels, availability, removal), services and their tasks (their output is read in
//! `logs.rs`), and copying an image from one engine to another (export, then import) when no
//! registry is set.
//!
//! Services are created with host-mode published ports only: the ingress routing mesh needs
//! IPVS, which hosts do not always have, and the router reaches each task where it runs.

use super::Engine;
use crate::domain::{Error, Result};
use bollard::models::{
    EndpointPortConfig, EndpointPortConfigProtocolEnum, EndpointPortConfigPublishModeEnum,
    EndpointSpec, Limit, LocalNodeState, Mount, MountType, NodeSpecAvailabilityEnum,
    NodeSpecRoleEnum, NodeState, ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated,
    SwarmInitRequest, SwarmJoinRequest, SwarmSpecDispatcher, TaskSpec, TaskSpecContainerSpec,
    TaskSpecContainerSpecPrivileges, TaskSpecPlacement, TaskSpecPlacementPreferences,
    TaskSpecPlacementSpread, TaskSpecResources, TaskSpecRestartPolicy,
    TaskSpecRestartPolicyConditionEnum, TaskState,
};
use bollard::query_parameters::{
    DeleteNodeOptions, ImportImageOptions, InspectServiceOptions, LeaveSwarmOptions,
    ListNodesOptions, ListServicesOptions, ListTasksOptions, UpdateNodeOptions,
    UpdateServiceOptions, UpdateSwarmOptions,
};
use futures_util::{StreamExt, TryStreamExt};
use std::collections::HashMap;
use std::time::Duration;

/// The swarm as the local engine sees it.
#[derive(Debug, Clone, Default)]
pub struct LocalSwarm {
    /// This engine's node id, when it is in a swarm.
    pub node_id: Option<String>,
    /// It is in a swarm (active).
    pub active: bool,
    /// It manages that swarm.
    pub manager: bool,
}

/// A node as the swarm reports it.
#[derive(Debug, Clone, Default)]
pub struct SwarmNode {
    pub id: String,
    /// The address it is reached at (its advertise address).
    pub addr: Option<String>,
    /// `ready`, `down`, `unknown`, `disconnected`.
    pub state: String,
    /// Set to drain: its tasks move elsewhere.
    pub draining: bool,
    pub manager: bool,
    pub labels: HashMap<String, String>,
    pub nano_cpus: i64,
    pub memory_bytes: i64,
}

/// One service to create: one process type of an app's release, with its replicas.
#[derive(Debug, Clone)]
pub struct ServiceRun {
    pub name: String,
    /// How many tasks it runs (slots 1 to `replicas`).
    pub replicas: u64,
    pub image: String,
    pub env: Vec<(String, String)>,
    /// Published in host mode on a port the engine picks, for the router.
    pub port: Option<u16>,
    pub cmd: Option<Vec<String>>,
    /// Runs to completion once (no restart).
    pub once: bool,
    pub memory_mb: u32,
    pub cpu: f64,
    pub labels: HashMap<String, String>,
    /// The labels of its tasks' containers: not the service's own, since the plain-container
    /// runtime sharing the manager's engine would take them for its own containers.
    pub container_labels: HashMap<String, String>,
    /// Placement constraints (`node.labels.scalefog.region==2`).
    pub constraints: Vec<String>,
    /// Spread the tasks over the values of this node attribute.
    pub spread: Option<String>,
    pub read_only_rootfs: bool,
    /// Named volumes (Docker volume name, path in the container).
    pub volumes: Vec<(String, String)>,
    /// The login every node pulls `image` with (the cluster's registry), when it needs one.
    pub registry_auth: Option<super::RegistryAuth>,
}

/// A task (one run of a service's container) as the swarm reports it.
#[derive(Debug, Clone, Default)]
pub struct TaskInfo {
    pub id: String,
    pub service_id: String,
    pub node_id: Option<String>,
    /// Docker's task state: `new` … `running`, `complete`, `failed`, `shutdown`, `rejected`.
    pub state: String,
    /// It should be running (not being shut down or replaced).
    pub desired_running: bool,
    pub exit_code: Option<i64>,
    /// The host port its target port is published on.
    pub published_port: Option<u16>,
    pub error: Option<String>,
    /// The swarm's version index: later tasks have higher ones.
    pub index: u64,
    /// Its service's replica it runs (from 1): a task replacing another (the swarm restarted
    /// it, or moved it off a lost node) keeps the slot.
    pub slot: Option<u64>,
}

/// A service as the swarm reports it.
#[derive(Debug, Clone, Default)]
pub struct ServiceInfo {
    pub id: String,
    pub labels: HashMap<String, String>,
    pub replicas: i64,
    pub image: String,
    /// The swarm replaces its tasks that end (false for a run-once service).
    pub restarts: bool,
}

fn filters(pairs: &[(&str, &str)]) -> HashMap<String, Vec<String>> {
    let mut f: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in pairs {
        f.entry(k.to_string()).or_default().push(v.to_string());
    }
    f
}

impl Engine {
    /// Whether this engine is in a swarm, and manages it.
    pub async fn local_swarm(&self) -> Result<LocalSwarm> {
        let info = self
            .api()
            .await?
            .info()
            .await
            .map_err(|e| self.map_err(e))?;
        let swarm = info.swarm.unwrap_or_default();
        Ok(LocalSwarm {
            active: swarm.local_node_state == Some(LocalNodeState::ACTIVE),
            manager: swarm.control_available.unwrap_or(false),
            node_id: swarm.node_id.filter(|id| !id.is_empty()),
        })
    }

    /// Makes this engine the manager of a new swarm, advertised at `advertise`; its node id.
    pub async fn swarm_init(&self, advertise: &str) -> Result<String> {
        self.api()
            .await?
            .init_swarm(SwarmInitRequest {
                listen_addr: Some("0.0.0.0:2377".into()),
                advertise_addr: Some(advertise.to_string()),
                ..Default::default()
            })
            .await
            .map_err(|e| self.map_err(e))
    }

    /// Sets how often nodes report to the managers (managers only): a node that misses three
    /// reports is down, and its tasks are started elsewhere.
    pub async fn set_heartbeat(&self, period: Duration) -> Result<()> {
        let docker = self.api().await?;
        let swarm = docker.inspect_swarm().await.map_err(|e| self.map_err(e))?;
        let nanos = period.as_nanos() as i64;
        let mut spec = swarm.spec.unwrap_or_default();
        if spec.dispatcher.as_ref().and_then(|d| d.heartbeat_period) == Some(nanos) {
            return Ok(());
        }
        spec.dispatcher = Some(SwarmSpecDispatcher {
            heartbeat_period: Some(nanos),
        });
        let version = swarm.version.and_then(|v| v.index).unwrap_or(0);
        docker
            .update_swarm(
                spec,
                UpdateSwarmOptions {
                    version: version as i64,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| self.map_err(e))
    }

    /// Joins this engine to the swarm managed at `manager` (`host:2377`), advertising
    /// `advertise` to the other nodes.
    pub async fn swarm_join(&self, manager: &str, token: &str, advertise: &str) -> Result<()> {
        self.api()
            .await?
            .join_swarm(SwarmJoinRequest {
                listen_addr: Some("0.0.0.0:2377".into()),
                advertise_addr: Some(advertise.to_string()),
                remote_addrs: Some(vec![manager.to_string()]),
                join_token: Some(token.to_string()),
                ..Default::default()
            })
            .await
            .map_err(|e| self.map_err(e))
    }

    /// Leaves the swarm (forcefully: a manager leaving loses the swarm). Not in one is fine.
    pub async fn swarm_leave(&self) -> Result<()> {
        match self
            .api()
            .await?
            .leave_swarm(Some(LeaveSwarmOptions { force: true }))
            .await
        {
            Ok(()) => Ok(()),
            Err(e) => match self.map_err(e) {
                // 503 "not part of a swarm"
                Error::Internal(_) => Ok(()),
                other => Err(other),
            },
        }
    }

    /// The token a worker joins with (managers only).
    pub async fn worker_token(&self) -> Result<String> {
        let swarm = self
            .api()
            .await?
            .inspect_swarm()
            .await
            .map_err(|e| self.map_err(e))?;
        swarm
            .join_tokens
            .and_then(|t| t.worker)
            .ok_or_else(|| Error::internal("the swarm has no worker join token"))
    }

    /// Every node of the swarm (managers only).
    pub async fn swarm_nodes(&self) -> Result<Vec<SwarmNode>> {
        let nodes = self
            .api()
            .await?
            .list_nodes(None::<ListNodesOptions>)
            .await
            .map_err(|e| self.map_err(e))?;
        Ok(nodes
            .into_iter()
            .map(|n| {
                let spec = n.spec.unwrap_or_default();
                let status = n.status.unwrap_or_default();
                let resources = n.description.and_then(|d| d.resources).unwrap_or_default();
                SwarmNode {
                    id: n.id.unwrap_or_default(),
                    addr: status.addr,
                    state: match status.state {
                        Some(NodeState::READY) => "ready",
                        Some(NodeState::DOWN) => "down",
                        Some(NodeState::DISCONNECTED) => "disconnected",
                        _ => "unknown",
                    }
                    .to_string(),
                    draining: spec.availability == Some(NodeSpecAvailabilityEnum::DRAIN),
                    manager: spec.role == Some(NodeSpecRoleEnum::MANAGER),
                    labels: spec.labels.unwrap_or_default(),
                    nano_cpus: resources.nano_cpus.unwrap_or(0),
                    memory_bytes: resources.memory_bytes.unwrap_or(0),
                }
            })
            .collect())
    }

    /// Sets labels on a node and whether it drains (managers only).
    pub async fn update_swarm_node(
        &self,
        id: &str,
        labels: &[(&str, String)],
        drain: bool,
    ) -> Result<()> {
        let docker = self.api().await?;
        let node = docker.inspect_node(id).await.map_err(|e| self.map_err(e))?;
        let version = node.version.and_then(|v| v.index).unwrap_or(0);
        let mut spec = node.spec.unwrap_or_default();
        let mut all = spec.labels.take().unwrap_or_default();
        for (k, v) in labels {
            all.insert(k.to_string(), v.clone());
        }
        spec.labels = Some(all);
        spec.availability = Some(if drain {
            NodeSpecAvailabilityEnum::DRAIN
        } else {
            NodeSpecAvailabilityEnum::ACTIVE
        });
        docker
            .update_node(
                id,
                spec,
                UpdateNodeOptions {
                    version: version as i64,
                },
            )
            .await
            .map_err(|e| self.map_err(e))
    }

    /// Removes a node from the swarm (managers only), even when it is down. Missing is fine.
    pub async fn remove_swarm_node(&self, id: &str) -> Result<()> {
        match self
            .api()
            .await?
            .delete_node(id, Some(DeleteNodeOptions { force: true }))
            .await
        {
            Ok(()) => Ok(()),
            Err(e) => match self.map_err(e) {
                Error::NotFound(_) => Ok(()),
                other => Err(other),
            },
        }
    }

    /// Creates a service of `run.replicas` replicas; its id.
    pub async fn create_service(&self, run: &ServiceRun) -> Result<String> {
        let ports = run.port.map(|p| {
            vec![EndpointPortConfig {
                protocol: Some(EndpointPortConfigProtocolEnum::TCP),
                target_port: Some(i64::from(p)),
                publish_mode: Some(EndpointPortConfigPublishModeEnum::HOST),
                ..Default::default()
            }]
        });
        let spec = ServiceSpec {
            name: Some(run.name.clone()),
            labels: Some(run.labels.clone()),
            task_template: Some(TaskSpec {
                container_spec: Some(TaskSpecContainerSpec {
                    image: Some(run.image.clone()),
                    labels: Some(run.container_labels.clone()),
                    args: run.cmd.clone(),
                    env: Some(run.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
                    read_only: Some(run.read_only_rootfs),
                    privileges: Some(TaskSpecContainerSpecPrivileges {
                        no_new_privileges: Some(true),
                        ..Default::default()
                    }),
                    capability_drop: Some(vec!["ALL".into()]),
                    capability_add: Some(vec!["NET_BIND_SERVICE".into()]),
                    mounts: Some(
                        run.volumes
                            .iter()
                            .map(|(source, target)| Mount {
                                source: Some(source.clone()),
                                target: Some(target.clone()),
                                typ: Some(MountType::VOLUME),
                                ..Default::default()
                            })
                            .collect(),
                    ),
                    ..Default::default()
                }),
                resources: Some(TaskSpecResources {
                    limits: Some(Limit {
                        nano_cpus: Some((run.cpu * 1e9) as i64),
                        memory_bytes: Some(i64::from(run.memory_mb) * 1024 * 1024),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                restart_policy: Some(TaskSpecRestartPolicy {
                    condition: Some(if run.once {
                        TaskSpecRestartPolicyConditionEnum::NONE
                    } else {
                        TaskSpecRestartPolicyConditionEnum::ANY
                    }),
                    delay: Some(1_000_000_000),
                    ..Default::default()
                }),
                placement: Some(TaskSpecPlacement {
                    constraints: Some(run.constraints.clone()),
                    preferences: run.spread.as_ref().map(|s| {
                        vec![TaskSpecPlacementPreferences {
                            spread: Some(TaskSpecPlacementSpread {
                                spread_descriptor: Some(s.clone()),
                            }),
                        }]
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            mode: Some(ServiceSpecMode {
                replicated: Some(ServiceSpecModeReplicated {
                    replicas: Some(run.replicas as i64),
                }),
                ..Default::default()
            }),
            endpoint_spec: Some(EndpointSpec {
                ports,
                ..Default::default()
            }),
            ..Default::default()
        };
        let created = self
            .api()
            .await?
            .create_service(spec, run.registry_auth.as_ref().map(|a| a.credentials()))
            .await
            .map_err(|e| self.map_err(e))?;
        created
            .id
            .ok_or_else(|| Error::internal("Docker created a service without an id"))
    }

    /// `None` when the service does not exist.
    pub async fn service(&self, id: &str) -> Result<Option<ServiceInfo>> {
        match self
            .api()
            .await?
            .inspect_service(id, None::<InspectServiceOptions>)
            .await
        {
            Ok(s) => Ok(Some(service_info(s))),
            Err(e) => match self.map_err(e) {
                Error::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    /// The services carrying all the label filters (`key` or `key=value`).
    pub async fn services(&self, labels: &[String]) -> Result<Vec<ServiceInfo>> {
        let pairs: Vec<(&str, &str)> = labels.iter().map(|l| ("label", l.as_str())).collect();
        let found = self
            .api()
            .await?
            .list_services(Some(ListServicesOptions {
                filters: Some(filters(&pairs)),
                ..Default::default()
            }))
            .await
            .map_err(|e| self.map_err(e))?;
        Ok(found.into_iter().map(service_info).collect())
    }

    /// Changes a service: its replicas (0 stops it) and, when given, its limits.
    pub async fn update_service(
        &self,
        id: &str,
        replicas: Option<i64>,
        limits: Option<(u32, f64)>,
    ) -> Result<()> {
        self.change_service(id, |spec| {
            if let Some(n) = replicas {
                spec.mode = Some(ServiceSpecMode {
                    replicated: Some(ServiceSpecModeReplicated { replicas: Some(n) }),
                    ..Default::default()
                });
            }
            if let Some((memory_mb, cpu)) = limits {
                let task = spec.task_template.get_or_insert_with(Default::default);
                task.resources = Some(TaskSpecResources {
                    limits: Some(Limit {
                        nano_cpus: Some((cpu * 1e9) as i64),
                        memory_bytes: Some(i64::from(memory_mb) * 1024 * 1024),
                        ..Default::default()
                    }),
                    ..Default::default()
                });
            }
        })
        .await
    }

    /// Sets a service's replicas and merges `labels` into its own, in one update.
    pub async fn scale_service(
        &self,
        id: &str,
        replicas: i64,
        labels: &[(&str, String)],
    ) -> Result<()> {
        self.change_service(id, |spec| {
            spec.mode = Some(ServiceSpecMode {
                replicated: Some(ServiceSpecModeReplicated {
                    replicas: Some(replicas),
                }),
                ..Default::default()
            });
            let all = spec.labels.get_or_insert_with(Default::default);
            for (k, v) in labels {
                all.insert(k.to_string(), v.clone());
            }
        })
        .await
    }

    /// Reads a service's spec, lets `change` edit it, and writes it back at the version read (a
    /// concurrent change makes the update fail rather than be lost).
    async fn change_service(&self, id: &str, change: impl FnOnce(&mut ServiceSpec)) -> Result<()> {
        let docker = self.api().await?;
        let current = docker
            .inspect_service(id, None::<InspectServiceOptions>)
            .await
            .map_err(|e| self.map_err(e))?;
        let version = current.version.and_then(|v| v.index).unwrap_or(0);
        let mut spec = current.spec.unwrap_or_default();
        change(&mut spec);
        docker
            .update_service(
                id,
                spec,
                UpdateServiceOptions {
                    version: version as i32,
                    ..Default::default()
                },
                None,
            )
            .await
            .map_err(|e| self.map_err(e))?;
        Ok(())
    }

    /// Removes a service and its tasks. Missing is fine.
    pub async fn remove_service(&self, id: &str) -> Result<()> {
        match self.api().await?.delete_service(id).await {
            Ok(()) => Ok(()),
            Err(e) => match self.map_err(e) {
                Error::NotFound(_) => Ok(()),
                other => Err(other),
            },
        }
    }

    /// The tasks of a service, or of every service on a node, latest first.
    pub async fn tasks(&self, service: Option<&str>, node: Option<&str>) -> Result<Vec<TaskInfo>> {
        let mut pairs = Vec::new();
        if let Some(s) = service {
            pairs.push(("service", s));
        }
        if let Some(n) = node {
            pairs.push(("node", n));
        }
        let found = self
            .api()
            .await?
            .list_tasks(Some(ListTasksOptions {
                filters: Some(filters(&pairs)),
            }))
            .await
            .map_err(|e| self.map_err(e))?;
        let mut tasks: Vec<TaskInfo> = found
            .into_iter()
            .map(|t| {
                let status = t.status.unwrap_or_default();
                TaskInfo {
                    id: t.id.unwrap_or_default(),
                    service_id: t.service_id.unwrap_or_default(),
                    node_id: t.node_id.filter(|n| !n.is_empty()),
                    state: status
                        .state
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "new".into()),
                    desired_running: t.desired_state == Some(TaskState::RUNNING),
                    exit_code: status.container_status.and_then(|c| c.exit_code),
                    published_port: status
                        .port_status
                        .and_then(|p| p.ports)
                        .and_then(|ports| ports.into_iter().find_map(|p| p.published_port))
                        .and_then(|p| u16::try_from(p).ok()),
                    error: status.err,
                    index: t.version.and_then(|v| v.index).unwrap_or(0),
                    slot: t.slot.and_then(|s| u64::try_from(s).ok()),
                }
            })
            .collect();
        tasks.sort_by_key(|t| std::cmp::Reverse(t.index));
        Ok(tasks)
    }

    /// Copies image `reference` (with its tags) from this engine into `to`, streaming
    /// `docker save` into `docker load` without a file in between.
    pub async fn copy_image(&self, reference: &str, to: &Engine) -> Result<()> {
        let from = self.api().await?.clone();
        let into = to.api().await?;
        let err_this = self.clone();
        let export = from
            .export_image(reference)
            .map_err(move |e| std::io::Error::other(err_this.map_err(e).to_string()));
        let mut loading = into.import_image_stream(
            ImportImageOptions {
                quiet: true,
                ..Default::default()
            },
            export,
            None,
        );
        while let Some(step) = loading.next().await {
            step.map_err(|e| to.map_err(e))?;
        }
        Ok(())
    }
}

fn service_info(s: bollard::models::Service) -> ServiceInfo {
    let spec = s.spec.unwrap_or_default();
    let restarts = spec
        .task_template
        .as_ref()
        .and_then(|t| t.restart_policy.as_ref())
        .and_then(|r| r.condition)
        != Some(TaskSpecRestartPolicyConditionEnum::NONE);
    ServiceInfo {
        restarts,
        id: s.id.unwrap_or_default(),
        labels: spec.labels.unwrap_or_default(),
        replicas: spec
            .mode
            .and_then(|m| m.replicated)
            .and_then(|r| r.replicas)
            .unwrap_or(0),
        image: spec
            .task_template
            .and_then(|t| t.container_spec)
            .and_then(|c| c.image)
            .unwrap_or_default(),
    }
}
