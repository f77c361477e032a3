//! Settings: embedded defaults ← TOML file ← `SCALEFOG_*` environment ← command-line flags.
//! Each setting `x_y` is the TOML key `x_y`, the variable `SCALEFOG_X_Y` and the flag `--x-y`.
//!
//! This file holds what the rest of Scalefog uses: the resolved [`Config`], the types in it and
//! where files live under the data dir. How a `Config` is made:
//! - `args`    — [`SettingsArgs`]: the flags and environment variables (their docs are `--help`);
//! - `file`    — the TOML file's keys;
//! - `resolve` — [`Config::load`]: flag, else file, else default, each value checked;
//! - `parse`   — one setting's text made into a value (addresses, counts, sizes, CPUs).
//!
//! A new setting is a field in `args`, `file` and [`Config`], a line in `resolve` and in
//! `Config::for_tests`, and a row in README.md's table.

mod args;
mod file;
mod parse;
mod resolve;
#[cfg(test)]
mod tests;

pub use args::SettingsArgs;

use crate::accounts::Registration;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Resolved settings: every value present and valid, every path absolute.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub http_listen: SocketAddr,
    pub ssh_listen: SocketAddr,
    pub proxy_listen: SocketAddr,
    /// The router's HTTPS listener, if any.
    pub https_listen: Option<SocketAddr>,
    /// Where the router's certificates are (absolute).
    pub tls_dir: PathBuf,
    /// Automatic certificates, when `acme_email` is set.
    pub acme: Option<Acme>,
    pub domain: String,
    pub docker_host: String,
    pub public_ssh_host: String,
    pub registration: Registration,
    /// Which images non-admins may deploy.
    pub image_policy: crate::domain::ImagePolicy,
    pub region_name: String,
    pub max_concurrent_deploys: usize,
    /// Seconds.
    pub deploy_timeout: u64,
    /// Seconds.
    pub health_timeout: u64,
    /// Seconds.
    pub run_timeout: u64,
    /// How app containers' logs rotate.
    pub log_rotation: crate::docker::LogRotation,
    /// Abuse limits: memory per app, apps and memory per user.
    pub limits: crate::domain::Limits,
    /// MB, for each build's RUN steps.
    pub build_memory: u32,
    /// CPUs, for each build's RUN steps.
    pub build_cpus: f64,
    /// Seconds.
    pub ssh_login_grace: u64,
    /// Per client address.
    pub ssh_max_unauthenticated: usize,
    /// A bearer token that may read `GET /metrics` besides admins (for a Prometheus server).
    pub metrics_token: Option<String>,
    /// Seconds a stop waits for pushes and deploys in flight before cancelling them.
    pub shutdown_timeout: u64,
    /// How the server's own log lines are written.
    pub log_format: LogFormat,
    /// Automatic backups, when `backup_schedule` is set.
    pub backups: Option<crate::backup::schedule::Automatic>,
    /// The router's time limits. Only `connect` is a setting (`router_connect_timeout_ms`):
    /// the others' defaults suit every deployment we know of; tests shorten them to see them
    /// act.
    pub router_timeouts: crate::router::Timeouts,
}

/// How the server's log lines look on stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (timestamp, level, target, fields), for log shippers.
    Json,
}

impl LogFormat {
    fn parse(v: &str) -> Result<LogFormat, ConfigError> {
        match v.trim() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(ConfigError(format!(
                "invalid log_format '{other}': expected text or json"
            ))),
        }
    }
}

/// Let's Encrypt's production directory.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// The ACME settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acme {
    pub email: String,
    pub directory: String,
    /// The only root trusted for the directory's HTTPS, if set (absolute).
    pub ca_file: Option<PathBuf>,
}

/// A setting that cannot be used; the message is one line naming it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Settings for tests: every listener on port 0 under `data_dir`.
    #[cfg(any(test, feature = "test-support"))]
    pub fn for_tests(data_dir: &Path) -> Config {
        let any: SocketAddr = "127.0.0.1:0".parse().expect("static address");
        Config {
            data_dir: data_dir.to_path_buf(),
            http_listen: any,
            ssh_listen: any,
            proxy_listen: any,
            https_listen: None,
            tls_dir: data_dir.join("certs"),
            acme: None,
            domain: "localhost".into(),
            docker_host: std::env::var("DOCKER_HOST")
                .unwrap_or_else(|_| "unix:///var/run/docker.sock".into()),
            public_ssh_host: "127.0.0.1".into(),
            registration: Registration::Open,
            image_policy: Default::default(),
            region_name: "Europe".into(),
            max_concurrent_deploys: 4,
            deploy_timeout: 900,
            health_timeout: 30,
            run_timeout: 3600,
            log_rotation: Default::default(),
            limits: Default::default(),
            build_memory: 1024,
            build_cpus: 1.0,
            ssh_login_grace: 30,
            ssh_max_unauthenticated: 10,
            metrics_token: None,
            shutdown_timeout: 60,
            log_format: LogFormat::Text,
            backups: None,
            router_timeouts: Default::default(),
        }
    }

    pub fn store_path(&self) -> PathBuf {
        self.data_dir.join("scalefog.redb")
    }

    pub fn jwt_secret_path(&self) -> PathBuf {
        self.data_dir.join("jwt.secret")
    }

    /// The nodes' TLS client files (a directory per node id) and Scalefog's node SSH key.
    pub fn nodes_dir(&self) -> PathBuf {
        self.data_dir.join("nodes")
    }

    /// The key that seals secrets at rest (see `seal`).
    pub fn secrets_key_path(&self) -> PathBuf {
        self.data_dir.join("secrets.key")
    }

    /// Where the things a backup holds live.
    pub fn backup_paths(&self) -> crate::backup::Paths {
        crate::backup::Paths {
            data_dir: self.data_dir.clone(),
            tls_dir: self.tls_dir.clone(),
        }
    }

    /// A path setting relative to the data dir, made absolute.
    pub fn in_data_dir(&self, p: impl AsRef<Path>) -> PathBuf {
        absolute(&self.data_dir, p.as_ref())
    }
}

fn absolute(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}
