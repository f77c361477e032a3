//! The command-line flags and their `SCALEFOG_*` environment variables, read by clap. The doc
//! comments are the `--help` text; every value stays text here so that `resolve` can name the
//! setting in its error and tell a flag from a file value.

use clap::Args;
use std::path::PathBuf;

/// The settings every command shares. Flags and environment are read by clap (flag first); the
/// TOML file fills what they leave unset; defaults fill the rest.
#[derive(Debug, Clone, Default, Args)]
pub struct SettingsArgs {
    /// TOML file with settings (keys as in the table of README.md)
    #[arg(long, env = "SCALEFOG_CONFIG", value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Where the store, git repositories, host key and build scratch live [default: ./scalefog-data]
    #[arg(long, env = "SCALEFOG_DATA_DIR", value_name = "DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Address of the JSON API and web console [default: 127.0.0.1:8080]
    #[arg(long, env = "SCALEFOG_HTTP_LISTEN", value_name = "ADDR", global = true)]
    pub http_listen: Option<String>,
    /// Address of the SSH server for git push [default: 127.0.0.1:2222]
    #[arg(long, env = "SCALEFOG_SSH_LISTEN", value_name = "ADDR", global = true)]
    pub ssh_listen: Option<String>,
    /// Address of the app router [default: 127.0.0.1:8000]
    #[arg(
        long,
        env = "SCALEFOG_PROXY_LISTEN",
        value_name = "ADDR",
        global = true
    )]
    pub proxy_listen: Option<String>,
    /// Address of the app router's HTTPS listener; off unless set [e.g. 0.0.0.0:443]
    #[arg(
        long,
        env = "SCALEFOG_HTTPS_LISTEN",
        value_name = "ADDR",
        global = true
    )]
    pub https_listen: Option<String>,
    /// Certificates for https_listen: <name>/fullchain.pem + <name>/privkey.pem per domain,
    /// `_.<domain>` for a wildcard [default: <data_dir>/certs]
    #[arg(long, env = "SCALEFOG_TLS_DIR", value_name = "DIR", global = true)]
    pub tls_dir: Option<PathBuf>,
    /// Turns on automatic certificates (ACME http-01) for every app host and custom domain,
    /// with this contact address. Needs https_listen, public DNS names and port 80 reaching
    /// proxy_listen [default: off]
    #[arg(long, env = "SCALEFOG_ACME_EMAIL", value_name = "EMAIL", global = true)]
    pub acme_email: Option<String>,
    /// ACME directory URL [default: Let's Encrypt, https://acme-v02.api.letsencrypt.org/directory]
    #[arg(
        long,
        env = "SCALEFOG_ACME_DIRECTORY",
        value_name = "URL",
        global = true
    )]
    pub acme_directory: Option<String>,
    /// PEM root certificate to trust for the ACME directory, for a private or test CA
    /// [default: the public web roots]
    #[arg(
        long,
        env = "SCALEFOG_ACME_CA_FILE",
        value_name = "FILE",
        global = true
    )]
    pub acme_ca_file: Option<PathBuf>,
    /// Apps are served at http://<app>.<domain> [default: localhost]
    #[arg(long, env = "SCALEFOG_DOMAIN", value_name = "DOMAIN", global = true)]
    pub domain: Option<String>,
    /// Docker Engine endpoint of the local node [default: $DOCKER_HOST or unix:///var/run/docker.sock]
    #[arg(long, env = "SCALEFOG_DOCKER_HOST", value_name = "URL", global = true)]
    pub docker_host: Option<String>,
    /// Host name put in git remote URLs shown to users [default: host of --ssh-listen]
    #[arg(
        long,
        env = "SCALEFOG_PUBLIC_SSH_HOST",
        value_name = "HOST",
        global = true
    )]
    pub public_ssh_host: Option<String>,
    /// `open` (anyone may register) or `closed` (admins create users) [default: open]
    #[arg(
        long,
        env = "SCALEFOG_REGISTRATION",
        value_name = "open|closed",
        global = true
    )]
    pub registration: Option<String>,
    /// Which images users other than admins may deploy: `catalog` (the admins' image catalog)
    /// or `any` [default: catalog]
    #[arg(
        long,
        env = "SCALEFOG_IMAGE_POLICY",
        value_name = "catalog|any",
        global = true
    )]
    pub image_policy: Option<String>,
    /// Name of region 1, the local node's region [default: Europe]
    #[arg(long, env = "SCALEFOG_REGION_NAME", value_name = "NAME", global = true)]
    pub region_name: Option<String>,
    /// How many deploys (of different apps) may build and start at once [default: 4]
    #[arg(
        long,
        env = "SCALEFOG_MAX_CONCURRENT_DEPLOYS",
        value_name = "N",
        global = true
    )]
    pub max_concurrent_deploys: Option<String>,
    /// Seconds after which a deploy is abandoned and rejected [default: 900]
    #[arg(
        long,
        env = "SCALEFOG_DEPLOY_TIMEOUT",
        value_name = "SECS",
        global = true
    )]
    pub deploy_timeout: Option<String>,
    /// Seconds a new container has to pass its health check [default: 30]
    #[arg(
        long,
        env = "SCALEFOG_HEALTH_TIMEOUT",
        value_name = "SECS",
        global = true
    )]
    pub health_timeout: Option<String>,
    /// Seconds a one-off run (`ssh ... run`, `POST .../runs`) may take before it is stopped
    /// [default: 3600]
    #[arg(long, env = "SCALEFOG_RUN_TIMEOUT", value_name = "SECS", global = true)]
    pub run_timeout: Option<String>,
    /// An app container's log is rotated at this size: bytes, or a number with k, m or g
    /// [default: 10m]
    #[arg(
        long,
        env = "SCALEFOG_LOG_MAX_SIZE",
        value_name = "SIZE",
        global = true
    )]
    pub log_max_size: Option<String>,
    /// How many log files of an app container are kept, the current one included [default: 3]
    #[arg(long, env = "SCALEFOG_LOG_MAX_FILES", value_name = "N", global = true)]
    pub log_max_files: Option<String>,
    /// The most memory one app may have, in MiB [default: 16384]
    #[arg(
        long,
        env = "SCALEFOG_MAX_APP_MEMORY",
        value_name = "MIB",
        global = true
    )]
    pub max_app_memory: Option<String>,
    /// Apps one user may own, unless an admin set theirs [default: no limit]
    #[arg(
        long,
        env = "SCALEFOG_MAX_APPS_PER_USER",
        value_name = "N",
        global = true
    )]
    pub max_apps_per_user: Option<String>,
    /// Memory one user's apps may have together, in MiB, unless an admin set theirs
    /// [default: no limit]
    #[arg(
        long,
        env = "SCALEFOG_MAX_MEMORY_PER_USER",
        value_name = "MIB",
        global = true
    )]
    pub max_memory_per_user: Option<String>,
    /// Processes (replicas of every type) one user's apps may run together, unless an admin
    /// set theirs [default: no limit]
    #[arg(
        long,
        env = "SCALEFOG_MAX_REPLICAS_PER_USER",
        value_name = "N",
        global = true
    )]
    pub max_replicas_per_user: Option<String>,
    /// Memory limit of a build's RUN steps, in MB (at most 2047) [default: 1024]
    #[arg(long, env = "SCALEFOG_BUILD_MEMORY", value_name = "MB", global = true)]
    pub build_memory: Option<String>,
    /// CPUs a build's RUN steps may use, e.g. 0.5 [default: 1]
    #[arg(long, env = "SCALEFOG_BUILD_CPUS", value_name = "CPUS", global = true)]
    pub build_cpus: Option<String>,
    /// Seconds an SSH connection has to authenticate before it is closed [default: 30]
    #[arg(
        long,
        env = "SCALEFOG_SSH_LOGIN_GRACE",
        value_name = "SECS",
        global = true
    )]
    pub ssh_login_grace: Option<String>,
    /// SSH connections not yet authenticated allowed at once from one address [default: 10]
    #[arg(
        long,
        env = "SCALEFOG_SSH_MAX_UNAUTHENTICATED",
        value_name = "N",
        global = true
    )]
    pub ssh_max_unauthenticated: Option<String>,
    /// Bearer token that may read GET /metrics besides admins (at least 16 characters) [default: none]
    #[arg(
        long,
        env = "SCALEFOG_METRICS_TOKEN",
        value_name = "TOKEN",
        global = true,
        hide_env_values = true
    )]
    pub metrics_token: Option<String>,
    /// Seconds a stop (SIGTERM) waits for pushes and deploys in flight before cancelling them
    /// [default: 60]
    #[arg(
        long,
        env = "SCALEFOG_SHUTDOWN_TIMEOUT",
        value_name = "SECS",
        global = true
    )]
    pub shutdown_timeout: Option<String>,
    /// `text` (one line per event) or `json` (one JSON object per line, for log shippers)
    /// [default: text]
    #[arg(
        long,
        env = "SCALEFOG_LOG_FORMAT",
        value_name = "text|json",
        global = true
    )]
    pub log_format: Option<String>,
    /// Automatic backups: an interval (24h, 30m, 7d) or a cron expression in UTC ('0 3 * * *')
    /// [default: off]
    #[arg(
        long,
        env = "SCALEFOG_BACKUP_SCHEDULE",
        value_name = "WHEN",
        global = true
    )]
    pub backup_schedule: Option<String>,
    /// Where automatic backups are written [default: <data_dir>/backups]
    #[arg(long, env = "SCALEFOG_BACKUP_DIR", value_name = "DIR", global = true)]
    pub backup_dir: Option<PathBuf>,
    /// How many automatic backups are kept, the newest [default: 7]
    #[arg(long, env = "SCALEFOG_BACKUP_KEEP", value_name = "N", global = true)]
    pub backup_keep: Option<String>,
    /// Milliseconds the app router waits for a replica to accept a connection before it tries
    /// another and passes that one over for a few seconds [default: 1000]
    #[arg(
        long,
        env = "SCALEFOG_ROUTER_CONNECT_TIMEOUT_MS",
        value_name = "MS",
        global = true
    )]
    pub router_connect_timeout_ms: Option<String>,
}
