//! The TOML file named by `--config`: the same keys as the flags, typed as TOML writes them.

use super::ConfigError;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The TOML file: the same keys, all optional; unknown keys are an error (a typo must not be
/// silently ignored).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileSettings {
    pub(super) data_dir: Option<PathBuf>,
    pub(super) http_listen: Option<String>,
    pub(super) ssh_listen: Option<String>,
    pub(super) proxy_listen: Option<String>,
    pub(super) https_listen: Option<String>,
    pub(super) tls_dir: Option<PathBuf>,
    pub(super) acme_email: Option<String>,
    pub(super) acme_directory: Option<String>,
    pub(super) acme_ca_file: Option<PathBuf>,
    pub(super) domain: Option<String>,
    pub(super) docker_host: Option<String>,
    pub(super) public_ssh_host: Option<String>,
    pub(super) registration: Option<String>,
    pub(super) image_policy: Option<String>,
    pub(super) region_name: Option<String>,
    pub(super) max_concurrent_deploys: Option<u64>,
    pub(super) deploy_timeout: Option<u64>,
    pub(super) health_timeout: Option<u64>,
    pub(super) run_timeout: Option<u64>,
    pub(super) log_max_size: Option<String>,
    pub(super) log_max_files: Option<u64>,
    pub(super) max_app_memory: Option<u64>,
    pub(super) max_apps_per_user: Option<u64>,
    pub(super) max_memory_per_user: Option<u64>,
    pub(super) max_replicas_per_user: Option<u64>,
    pub(super) build_memory: Option<u64>,
    pub(super) build_cpus: Option<f64>,
    pub(super) ssh_login_grace: Option<u64>,
    pub(super) ssh_max_unauthenticated: Option<u64>,
    pub(super) metrics_token: Option<String>,
    pub(super) shutdown_timeout: Option<u64>,
    pub(super) log_format: Option<String>,
    pub(super) backup_schedule: Option<String>,
    pub(super) backup_dir: Option<PathBuf>,
    pub(super) backup_keep: Option<u64>,
    pub(super) router_connect_timeout_ms: Option<u64>,
}

impl FileSettings {
    /// The file at `path`; nothing set when there is no file.
    pub(super) fn read(path: Option<&Path>) -> Result<FileSettings, ConfigError> {
        let Some(path) = path else {
            return Ok(FileSettings::default());
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read config file {}: {e}", path.display())))?;
        toml::from_str::<FileSettings>(&text).map_err(|e| {
            ConfigError(format!(
                "invalid config file {}: {}",
                path.display(),
                e.message().lines().next().unwrap_or("parse error")
            ))
        })
    }
}
