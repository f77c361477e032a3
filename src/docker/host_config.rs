//! What an app container may do and use: limits, no privileges or capabilities beyond binding
//! a low port, no host mounts, a loopback-only published port, a rotating log, and (when its
//! app asks) a read-only root filesystem.

use super::RunSpec;
use bollard::models::{
    HostConfig, HostConfigLogConfig, Mount, MountType, PortBinding, RestartPolicy,
    RestartPolicyNameEnum,
};
use std::collections::HashMap;

/// The host side of an app container of `spec`, publishing `port_key` (`5000/tcp`) if any.
pub(super) fn host_config(spec: &RunSpec, port_key: Option<&str>) -> HostConfig {
    HostConfig {
        memory: Some(i64::from(spec.memory_mb) * 1024 * 1024),
        // No swap beyond the memory limit: the limit means what it says.
        memory_swap: Some(i64::from(spec.memory_mb) * 1024 * 1024),
        nano_cpus: Some((spec.cpu * 1e9) as i64),
        pids_limit: Some(spec.pids_limit),
        restart_policy: Some(RestartPolicy {
            name: Some(if spec.restart {
                RestartPolicyNameEnum::UNLESS_STOPPED
            } else {
                RestartPolicyNameEnum::NO
            }),
            maximum_retry_count: None,
        }),
        port_bindings: port_key.map(|key| {
            HashMap::from([(
                key.to_string(),
                Some(vec![PortBinding {
                    // Loopback only: the router is the one way in from outside.
                    host_ip: Some("127.0.0.1".into()),
                    host_port: Some(String::new()),
                }]),
            )])
        }),
        privileged: Some(false),
        // A chatty app must not fill the disk: its log rotates.
        log_config: Some(HostConfigLogConfig {
            typ: Some("json-file".into()),
            config: Some(HashMap::from([
                ("max-size".to_string(), spec.log.max_size.clone()),
                ("max-file".to_string(), spec.log.max_files.to_string()),
            ])),
        }),
        readonly_rootfs: Some(spec.read_only_rootfs),
        // Most programs need somewhere to write scratch files. A tmpfs is charged to the
        // container's memory, so its memory limit bounds it too.
        tmpfs: spec.read_only_rootfs.then(|| {
            HashMap::from([("/tmp".to_string(), "rw,nosuid,nodev,mode=1777".to_string())])
        }),
        network_mode: spec.network.clone(),
        binds: None,
        // Named volumes only: a host path never reaches an app container.
        mounts: Some(
            spec.volumes
                .iter()
                .map(|(name, path)| Mount {
                    target: Some(path.clone()),
                    source: Some(name.clone()),
                    typ: Some(MountType::VOLUME),
                    ..Default::default()
                })
                .collect(),
        ),
        cap_drop: Some(vec!["ALL".into()]),
        // Enough to bind a port below 1024 inside the container, nothing else.
        cap_add: Some(vec!["NET_BIND_SERVICE".into()]),
        security_opt: Some(vec!["no-new-privileges:true".into()]),
        // A tiny init as PID 1 forwards SIGTERM to the app (a PID 1 app would ignore it
        // and only die at SIGKILL) and reaps zombies.
        init: Some(true),
        ..Default::default()
    }
}
