//! Settings: embedded defaults ← TOML file ← `SCALEFOG_*` environment ← command-line flags.
//! Each setting `x_y` is the TOML key `x_y`, the variable `SCALEFOG_X_Y` and the flag `--x-y`.

use crate::accounts::Registration;
use clap::Args;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

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

/// The TOML file: the same keys, all optional; unknown keys are an error (a typo must not be
/// silently ignored).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    data_dir: Option<PathBuf>,
    http_listen: Option<String>,
    ssh_listen: Option<String>,
    proxy_listen: Option<String>,
    https_listen: Option<String>,
    tls_dir: Option<PathBuf>,
    acme_email: Option<String>,
    acme_directory: Option<String>,
    acme_ca_file: Option<PathBuf>,
    domain: Option<String>,
    docker_host: Option<String>,
    public_ssh_host: Option<String>,
    registration: Option<String>,
    image_policy: Option<String>,
    region_name: Option<String>,
    max_concurrent_deploys: Option<u64>,
    deploy_timeout: Option<u64>,
    health_timeout: Option<u64>,
    run_timeout: Option<u64>,
    log_max_size: Option<String>,
    log_max_files: Option<u64>,
    max_app_memory: Option<u64>,
    max_apps_per_user: Option<u64>,
    max_memory_per_user: Option<u64>,
    max_replicas_per_user: Option<u64>,
    build_memory: Option<u64>,
    build_cpus: Option<f64>,
    ssh_login_grace: Option<u64>,
    ssh_max_unauthenticated: Option<u64>,
    metrics_token: Option<String>,
    shutdown_timeout: Option<u64>,
    log_format: Option<String>,
    backup_schedule: Option<String>,
    backup_dir: Option<PathBuf>,
    backup_keep: Option<u64>,
    router_connect_timeout_ms: Option<u64>,
}

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

fn parse_addr(name: &str, v: &str) -> Result<SocketAddr, ConfigError> {
    v.trim().parse().map_err(|_| {
        ConfigError(format!(
            "invalid {name} '{v}': expected IP:PORT, e.g. 127.0.0.1:8080"
        ))
    })
}

/// A whole number from `min`, from the flag/env text or the file; `default` when neither is set.
fn parse_count(
    name: &str,
    flag: &Option<String>,
    file: Option<u64>,
    default: u64,
    min: u64,
) -> Result<u64, ConfigError> {
    let v = match flag {
        Some(text) => text.trim().parse::<u64>().map_err(|_| {
            ConfigError(format!("invalid {name} '{text}': expected a whole number"))
        })?,
        None => file.unwrap_or(default),
    };
    if v < min {
        return Err(ConfigError(format!(
            "invalid {name} '{v}': must be at least {min}"
        )));
    }
    Ok(v)
}

/// [`parse_count`] for a limit that is off unless set.
fn parse_optional_count(
    name: &str,
    flag: &Option<String>,
    file: Option<u64>,
    min: u64,
) -> Result<Option<u64>, ConfigError> {
    if flag.is_none() && file.is_none() {
        return Ok(None);
    }
    parse_count(name, flag, file, min, min).map(Some)
}

/// A log size as Docker's json-file driver takes it: bytes, or a number with `k`, `m` or `g`.
fn parse_log_size(v: &str) -> Result<String, ConfigError> {
    let v = v.trim().to_ascii_lowercase();
    let digits = v.trim_end_matches(['k', 'm', 'g']);
    let unit_ok = v.len() - digits.len() <= 1;
    match digits.parse::<u64>() {
        Ok(n) if n > 0 && unit_ok => Ok(v),
        _ => Err(ConfigError(format!(
            "invalid log_max_size '{v}': expected a size like 10m, 512k or 1g"
        ))),
    }
}
/// A number of CPUs (`0.5`, `2`) from the flag/env text or the file; `default` when neither is
/// set. Docker's smallest CPU quota is 1 ms per 100 ms period, hence at least 0.01.
fn parse_cpus(
    name: &str,
    flag: &Option<String>,
    file: Option<f64>,
    default: f64,
) -> Result<f64, ConfigError> {
    let v = match flag {
        Some(text) => text.trim().parse::<f64>().map_err(|_| {
            ConfigError(format!(
                "invalid {name} '{text}': expected a number of CPUs, e.g. 1.5"
            ))
        })?,
        None => file.unwrap_or(default),
    };
    if !(0.01..=1024.0).contains(&v) {
        return Err(ConfigError(format!(
            "invalid {name} '{v}': must be between 0.01 and 1024"
        )));
    }
    Ok(v)
}

/// Docker's build API takes the memory limit in bytes as a 32-bit number.
const MAX_BUILD_MEMORY_MB: u64 = 2047;

impl Config {
    pub fn load(args: &SettingsArgs) -> Result<Config, ConfigError> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError(format!("cannot read config file {}: {e}", path.display()))
                })?;
                toml::from_str::<FileSettings>(&text).map_err(|e| {
                    ConfigError(format!(
                        "invalid config file {}: {}",
                        path.display(),
                        e.message().lines().next().unwrap_or("parse error")
                    ))
                })?
            }
            None => FileSettings::default(),
        };
        let pick = |flag: &Option<String>, file: &Option<String>, default: &str| -> String {
            flag.clone()
                .or_else(|| file.clone())
                .unwrap_or_else(|| default.to_string())
        };
        let cwd = std::env::current_dir()
            .map_err(|e| ConfigError(format!("no current directory: {e}")))?;
        let data_dir = args
            .data_dir
            .clone()
            .or(file.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from("./scalefog-data"));
        let data_dir = absolute(&cwd, &data_dir);
        let http_listen = parse_addr(
            "http_listen",
            &pick(&args.http_listen, &file.http_listen, "127.0.0.1:8080"),
        )?;
        let ssh_listen = parse_addr(
            "ssh_listen",
            &pick(&args.ssh_listen, &file.ssh_listen, "127.0.0.1:2222"),
        )?;
        let proxy_listen = parse_addr(
            "proxy_listen",
            &pick(&args.proxy_listen, &file.proxy_listen, "127.0.0.1:8000"),
        )?;
        let https_listen = match args.https_listen.clone().or(file.https_listen.clone()) {
            Some(v) if !v.trim().is_empty() => Some(parse_addr("https_listen", &v)?),
            _ => None,
        };
        let tls_dir = args
            .tls_dir
            .clone()
            .or(file.tls_dir.clone())
            // Paths other than the data dir itself live under it unless given absolute.
            .map_or_else(|| data_dir.join("certs"), |p| absolute(&data_dir, &p));
        let acme = match args.acme_email.clone().or(file.acme_email.clone()) {
            Some(email) if !email.trim().is_empty() => {
                // The account rule for addresses; a comma would split the ACME contact.
                let email = match crate::domain::Email::parse(&email) {
                    Ok(e) if !e.as_str().contains(',') => e.into_string(),
                    _ => {
                        return Err(ConfigError(format!(
                            "invalid acme_email '{}': expected an address like you@example.com",
                            email.trim()
                        )));
                    }
                };
                if https_listen.is_none() {
                    return Err(ConfigError(
                        "acme_email needs https_listen: ACME certificates are served there".into(),
                    ));
                }
                let directory = pick(&args.acme_directory, &file.acme_directory, LETS_ENCRYPT);
                if !directory.starts_with("https://") {
                    return Err(ConfigError(format!(
                        "invalid acme_directory '{directory}': expected an https:// URL"
                    )));
                }
                let ca_file = args
                    .acme_ca_file
                    .clone()
                    .or(file.acme_ca_file.clone())
                    .map(|p| absolute(&data_dir, &p));
                Some(Acme {
                    email,
                    directory,
                    ca_file,
                })
            }
            _ => None,
        };
        let domain = pick(&args.domain, &file.domain, "localhost")
            .trim()
            .trim_end_matches('.')
            .to_ascii_lowercase();
        // The platform domain may be a single label (`localhost`), unlike an app's own domain.
        if !domain.split('.').all(crate::domain::is_dns_label) {
            return Err(ConfigError(format!(
                "invalid domain '{domain}': expected a DNS name like apps.example.com"
            )));
        }
        let default_docker = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "unix:///var/run/docker.sock".into());
        let docker_host = pick(&args.docker_host, &file.docker_host, &default_docker);
        if !["unix://", "tcp://", "http://"]
            .iter()
            .any(|p| docker_host.starts_with(p))
        {
            return Err(ConfigError(format!(
                "invalid docker_host '{docker_host}': expected unix:///path/docker.sock or tcp://host:port"
            )));
        }
        let public_ssh_host = pick(
            &args.public_ssh_host,
            &file.public_ssh_host,
            &ssh_listen.ip().to_string(),
        );
        let registration = match pick(&args.registration, &file.registration, "open").as_str() {
            "open" => Registration::Open,
            "closed" => Registration::Closed,
            other => {
                return Err(ConfigError(format!(
                    "invalid registration '{other}': expected 'open' or 'closed'"
                )));
            }
        };
        let image_policy = {
            let v = pick(&args.image_policy, &file.image_policy, "catalog");
            crate::domain::ImagePolicy::parse(&v).ok_or_else(|| {
                ConfigError(format!(
                    "invalid image_policy '{v}': expected 'catalog' or 'any'"
                ))
            })?
        };
        let region_name = pick(&args.region_name, &file.region_name, "Europe");
        let max_concurrent_deploys = parse_count(
            "max_concurrent_deploys",
            &args.max_concurrent_deploys,
            file.max_concurrent_deploys,
            4,
            1,
        )? as usize;
        let deploy_timeout = parse_count(
            "deploy_timeout",
            &args.deploy_timeout,
            file.deploy_timeout,
            900,
            1,
        )?;
        let health_timeout = parse_count(
            "health_timeout",
            &args.health_timeout,
            file.health_timeout,
            30,
            1,
        )?;
        let run_timeout = parse_count("run_timeout", &args.run_timeout, file.run_timeout, 3600, 1)?;
        let log_rotation = crate::docker::LogRotation {
            max_size: parse_log_size(&pick(&args.log_max_size, &file.log_max_size, "10m"))?,
            max_files: u32::try_from(parse_count(
                "log_max_files",
                &args.log_max_files,
                file.log_max_files,
                3,
                1,
            )?)
            .map_err(|_| ConfigError("invalid log_max_files: too large".into()))?,
        };
        let max_app_memory = parse_count(
            "max_app_memory",
            &args.max_app_memory,
            file.max_app_memory,
            crate::domain::Limits::default().max_app_memory_mb.into(),
            16,
        )?;
        if max_app_memory > 1_048_576 {
            return Err(ConfigError(format!(
                "invalid max_app_memory '{max_app_memory}': must be at most 1048576 (1 TiB)"
            )));
        }
        let limits = crate::domain::Limits {
            max_app_memory_mb: max_app_memory as u32,
            max_apps_per_user: parse_optional_count(
                "max_apps_per_user",
                &args.max_apps_per_user,
                file.max_apps_per_user,
                0,
            )?
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
            max_memory_per_user_mb: parse_optional_count(
                "max_memory_per_user",
                &args.max_memory_per_user,
                file.max_memory_per_user,
                16,
            )?,
            max_replicas_per_user: parse_optional_count(
                "max_replicas_per_user",
                &args.max_replicas_per_user,
                file.max_replicas_per_user,
                1,
            )?
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
        };
        // 1 GB: room for a typical `npm install` or `cargo build` of a small app, while a 2 GB
        // host keeps memory for the apps it runs.
        let build_memory = parse_count(
            "build_memory",
            &args.build_memory,
            file.build_memory,
            1024,
            16,
        )?;
        if build_memory > MAX_BUILD_MEMORY_MB {
            return Err(ConfigError(format!(
                "invalid build_memory '{build_memory}': must be at most {MAX_BUILD_MEMORY_MB} \
                 (Docker's build API takes the limit as a 32-bit number of bytes)"
            )));
        }
        let build_cpus = parse_cpus("build_cpus", &args.build_cpus, file.build_cpus, 1.0)?;
        let ssh_login_grace = parse_count(
            "ssh_login_grace",
            &args.ssh_login_grace,
            file.ssh_login_grace,
            30,
            1,
        )?;
        let ssh_max_unauthenticated = parse_count(
            "ssh_max_unauthenticated",
            &args.ssh_max_unauthenticated,
            file.ssh_max_unauthenticated,
            10,
            1,
        )? as usize;
        let metrics_token = match args.metrics_token.clone().or(file.metrics_token.clone()) {
            Some(t) if !t.trim().is_empty() => {
                let t = t.trim().to_string();
                if t.len() < 16 || t.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(ConfigError(
                        "invalid metrics_token: use at least 16 characters, without spaces".into(),
                    ));
                }
                Some(t)
            }
            _ => None,
        };
        let shutdown_timeout = parse_count(
            "shutdown_timeout",
            &args.shutdown_timeout,
            file.shutdown_timeout,
            60,
            0,
        )?;
        let log_format = LogFormat::parse(&pick(&args.log_format, &file.log_format, "text"))?;
        let backups = match args
            .backup_schedule
            .clone()
            .or(file.backup_schedule.clone())
        {
            Some(text) if !text.trim().is_empty() => {
                let schedule = crate::backup::schedule::Schedule::parse(&text).map_err(|e| {
                    ConfigError(format!("invalid backup_schedule '{}': {e}", text.trim()))
                })?;
                let dir = args
                    .backup_dir
                    .clone()
                    .or(file.backup_dir.clone())
                    .map_or_else(|| data_dir.join("backups"), |p| absolute(&data_dir, &p));
                let keep = parse_count("backup_keep", &args.backup_keep, file.backup_keep, 7, 1)?;
                Some(crate::backup::schedule::Automatic {
                    schedule,
                    dir,
                    keep: keep as usize,
                })
            }
            _ => None,
        };
        let router_connect_timeout_ms = parse_count(
            "router_connect_timeout_ms",
            &args.router_connect_timeout_ms,
            file.router_connect_timeout_ms,
            1000,
            1,
        )?;
        let router_timeouts = crate::router::Timeouts {
            connect: std::time::Duration::from_millis(router_connect_timeout_ms),
            ..Default::default()
        };
        Ok(Config {
            data_dir,
            http_listen,
            ssh_listen,
            proxy_listen,
            https_listen,
            tls_dir,
            acme,
            domain,
            docker_host,
            public_ssh_host,
            registration,
            image_policy,
            region_name,
            max_concurrent_deploys,
            deploy_timeout,
            health_timeout,
            run_timeout,
            log_rotation,
            limits,
            build_memory: build_memory as u32,
            build_cpus,
            ssh_login_grace,
            ssh_max_unauthenticated,
            metrics_token,
            shutdown_timeout,
            log_format,
            backups,
            router_timeouts,
        })
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let c = Config::load(&SettingsArgs::default()).unwrap();
        assert_eq!(c.http_listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.ssh_listen.to_string(), "127.0.0.1:2222");
        assert_eq!(c.proxy_listen.to_string(), "127.0.0.1:8000");
        assert_eq!(c.domain, "localhost");
        assert_eq!(c.public_ssh_host, "127.0.0.1");
        assert_eq!(c.registration, Registration::Open);
        assert!(c.data_dir.is_absolute() && c.data_dir.ends_with("scalefog-data"));
        assert_eq!(c.https_listen, None);
        assert_eq!(c.tls_dir, c.data_dir.join("certs"));
        assert_eq!((c.build_memory, c.build_cpus), (1024, 1.0));
        assert_eq!((c.ssh_login_grace, c.ssh_max_unauthenticated), (30, 10));
    }

    #[test]
    fn build_limits_and_ssh_limits_come_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s.toml");
        std::fs::write(
            &f,
            "build_memory = 512\nbuild_cpus = 2\nssh_login_grace = 10\nssh_max_unauthenticated = 3\n",
        )
        .unwrap();
        let c = Config::load(&SettingsArgs {
            config: Some(f),
            build_cpus: Some("0.5".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!((c.build_memory, c.build_cpus), (512, 0.5));
        assert_eq!((c.ssh_login_grace, c.ssh_max_unauthenticated), (10, 3));
    }

    #[test]
    fn a_metrics_token_comes_from_the_file_and_a_short_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s.toml");
        std::fs::write(&f, "metrics_token = \"scrape-token-0123456789\"\n").unwrap();
        let args = SettingsArgs {
            config: Some(f.clone()),
            ..Default::default()
        };
        let c = Config::load(&args).unwrap();
        assert_eq!(c.metrics_token.as_deref(), Some("scrape-token-0123456789"));
        assert_eq!(
            Config::load(&SettingsArgs::default())
                .unwrap()
                .metrics_token,
            None
        );
        let short = SettingsArgs {
            metrics_token: Some("secret".into()),
            ..args
        };
        let e = Config::load(&short).unwrap_err().to_string();
        assert!(e.contains("metrics_token"), "{e}");
    }

    #[test]
    fn https_settings_come_from_the_file_and_flags() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s.toml");
        std::fs::write(
            &f,
            "https_listen = \"127.0.0.1:8443\"\ntls_dir = \"/etc/scalefog/certs\"\n",
        )
        .unwrap();
        let c = Config::load(&SettingsArgs {
            config: Some(f),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.https_listen.unwrap().port(), 8443);
        assert_eq!(c.tls_dir, PathBuf::from("/etc/scalefog/certs"));
        let e = Config::load(&SettingsArgs {
            https_listen: Some("443".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.0.contains("https_listen"), "{e}");
    }

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s.toml");
        std::fs::write(&f, "http_listen = \"127.0.0.1:9999\"\ndomain = \"apps.example.com\"\nregistration = \"closed\"\n").unwrap();
        let args = SettingsArgs {
            config: Some(f),
            domain: Some("flag.example.com".into()),
            ..Default::default()
        };
        let c = Config::load(&args).unwrap();
        assert_eq!(c.http_listen.port(), 9999);
        assert_eq!(c.domain, "flag.example.com");
        assert_eq!(c.registration, Registration::Closed);
        assert_eq!(c.image_policy, crate::domain::ImagePolicy::Catalog);
        let c = Config::load(&SettingsArgs {
            image_policy: Some("any".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.image_policy, crate::domain::ImagePolicy::Any);
    }

    #[test]
    fn bad_values_name_the_setting() {
        let e = Config::load(&SettingsArgs {
            http_listen: Some("nope".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.0.contains("http_listen"), "{e}");
        let e = Config::load(&SettingsArgs {
            registration: Some("maybe".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.0.contains("registration"), "{e}");
        let e = Config::load(&SettingsArgs {
            image_policy: Some("everything".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.0.contains("image_policy"), "{e}");
        let e = Config::load(&SettingsArgs {
            deploy_timeout: Some("soon".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.0.contains("deploy_timeout"), "{e}");
        for (args, name) in [
            (
                SettingsArgs {
                    build_memory: Some("4096".into()),
                    ..Default::default()
                },
                "build_memory",
            ),
            (
                SettingsArgs {
                    build_cpus: Some("0".into()),
                    ..Default::default()
                },
                "build_cpus",
            ),
            (
                SettingsArgs {
                    ssh_login_grace: Some("0".into()),
                    ..Default::default()
                },
                "ssh_login_grace",
            ),
            (
                SettingsArgs {
                    ssh_max_unauthenticated: Some("many".into()),
                    ..Default::default()
                },
                "ssh_max_unauthenticated",
            ),
        ] {
            let e = Config::load(&args).unwrap_err();
            assert!(e.0.contains(name), "{e}");
        }
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s.toml");
        std::fs::write(&f, "htp_listen = \"x\"\n").unwrap();
        let e = Config::load(&SettingsArgs {
            config: Some(f),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.0.contains("htp_listen"), "{e}");
    }

    #[test]
    fn the_routers_connect_timeout_is_a_setting_in_milliseconds() {
        let c = Config::load(&SettingsArgs::default()).unwrap();
        assert_eq!(c.router_timeouts.connect, std::time::Duration::from_secs(1));
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s.toml");
        std::fs::write(&f, "router_connect_timeout_ms = 250\n").unwrap();
        let c = Config::load(&SettingsArgs {
            config: Some(f),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            c.router_timeouts.connect,
            std::time::Duration::from_millis(250)
        );
        for bad in ["0", "1s"] {
            let e = Config::load(&SettingsArgs {
                router_connect_timeout_ms: Some(bad.into()),
                ..Default::default()
            })
            .unwrap_err();
            assert!(e.0.contains("router_connect_timeout_ms"), "{e}");
        }
    }

    #[test]
    fn shutdown_timeout_and_log_format_come_from_file_and_flags_and_bad_ones_are_named() {
        let c = Config::load(&SettingsArgs::default()).unwrap();
        assert_eq!((c.shutdown_timeout, c.log_format), (60, LogFormat::Text));
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s.toml");
        std::fs::write(&f, "shutdown_timeout = 5\nlog_format = \"json\"\n").unwrap();
        let c = Config::load(&SettingsArgs {
            config: Some(f.clone()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!((c.shutdown_timeout, c.log_format), (5, LogFormat::Json));
        let c = Config::load(&SettingsArgs {
            config: Some(f),
            shutdown_timeout: Some("0".into()),
            log_format: Some("text".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!((c.shutdown_timeout, c.log_format), (0, LogFormat::Text));
        for (args, name) in [
            (
                SettingsArgs {
                    shutdown_timeout: Some("-1".into()),
                    ..Default::default()
                },
                "shutdown_timeout",
            ),
            (
                SettingsArgs {
                    log_format: Some("xml".into()),
                    ..Default::default()
                },
                "log_format",
            ),
        ] {
            let e = Config::load(&args).unwrap_err();
            assert!(e.0.contains(name), "{e}");
        }
    }

    #[test]
    fn log_rotation_and_abuse_limits_come_from_the_file_and_flags_and_bad_ones_are_named() {
        let c = Config::load(&SettingsArgs::default()).unwrap();
        assert_eq!(c.log_rotation, crate::docker::LogRotation::default());
        assert_eq!(c.limits, crate::domain::Limits::default());
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s.toml");
        std::fs::write(
            &f,
            "log_max_size = \"2M\"\nlog_max_files = 5\nmax_app_memory = 2048\nmax_apps_per_user = 3\n",
        )
        .unwrap();
        let c = Config::load(&SettingsArgs {
            config: Some(f),
            max_memory_per_user: Some("4096".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            (c.log_rotation.max_size.as_str(), c.log_rotation.max_files),
            ("2m", 5)
        );
        assert_eq!(c.limits.max_app_memory_mb, 2048);
        assert_eq!(c.limits.max_apps_per_user, Some(3));
        assert_eq!(c.limits.max_memory_per_user_mb, Some(4096));
        for (args, name) in [
            (
                SettingsArgs {
                    log_max_size: Some("10mb".into()),
                    ..Default::default()
                },
                "log_max_size",
            ),
            (
                SettingsArgs {
                    log_max_files: Some("0".into()),
                    ..Default::default()
                },
                "log_max_files",
            ),
            (
                SettingsArgs {
                    max_app_memory: Some("2000000".into()),
                    ..Default::default()
                },
                "max_app_memory",
            ),
            (
                SettingsArgs {
                    max_memory_per_user: Some("lots".into()),
                    ..Default::default()
                },
                "max_memory_per_user",
            ),
        ] {
            let e = Config::load(&args).unwrap_err();
            assert!(e.0.contains(name), "{e}");
        }
    }

    #[test]
    fn the_packaged_example_settings_file_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/scalefog.toml");
        let c = Config::load(&SettingsArgs {
            config: Some(path),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.domain, "apps.example.com");
        assert_eq!(c.data_dir, Path::new("/var/lib/scalefog"));
    }

    #[test]
    fn automatic_backups_are_off_by_default_and_set_by_schedule_dir_and_keep() {
        assert!(
            Config::load(&SettingsArgs::default())
                .unwrap()
                .backups
                .is_none()
        );
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s.toml");
        std::fs::write(&f, "backup_schedule = \"0 3 * * *\"\nbackup_keep = 3\n").unwrap();
        let c = Config::load(&SettingsArgs {
            config: Some(f),
            data_dir: Some("/srv/scalefog".into()),
            ..Default::default()
        })
        .unwrap();
        let b = c.backups.unwrap();
        assert_eq!((b.dir, b.keep), ("/srv/scalefog/backups".into(), 3));
        let c = Config::load(&SettingsArgs {
            backup_schedule: Some("24h".into()),
            backup_dir: Some("/backups".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.backups.unwrap().dir, Path::new("/backups"));
        for (args, name) in [
            (
                SettingsArgs {
                    backup_schedule: Some("daily".into()),
                    ..Default::default()
                },
                "backup_schedule",
            ),
            (
                SettingsArgs {
                    backup_schedule: Some("24h".into()),
                    backup_keep: Some("0".into()),
                    ..Default::default()
                },
                "backup_keep",
            ),
        ] {
            let e = Config::load(&args).unwrap_err();
            assert!(e.0.contains(name), "{e}");
        }
    }

    #[test]
    fn a_relative_tls_dir_is_resolved_against_the_data_dir() {
        let args = SettingsArgs {
            data_dir: Some("/srv/scalefog".into()),
            tls_dir: Some("my-certs".into()),
            ..Default::default()
        };
        assert_eq!(
            Config::load(&args).unwrap().tls_dir,
            Path::new("/srv/scalefog/my-certs")
        );
    }

    #[test]
    fn acme_is_off_by_default_and_on_with_an_email_defaulting_to_lets_encrypt() {
        assert_eq!(Config::load(&SettingsArgs::default()).unwrap().acme, None);
        let args = SettingsArgs {
            data_dir: Some("/srv/scalefog".into()),
            https_listen: Some("0.0.0.0:443".into()),
            acme_email: Some("ops@example.com".into()),
            acme_ca_file: Some("private-ca.pem".into()),
            ..Default::default()
        };
        assert_eq!(
            Config::load(&args).unwrap().acme,
            Some(Acme {
                email: "ops@example.com".into(),
                directory: LETS_ENCRYPT.into(),
                ca_file: Some("/srv/scalefog/private-ca.pem".into()),
            })
        );
    }

    #[test]
    fn acme_without_https_or_with_a_bad_email_or_directory_is_refused_naming_the_setting() {
        let base = SettingsArgs {
            https_listen: Some("0.0.0.0:443".into()),
            acme_email: Some("ops@example.com".into()),
            ..Default::default()
        };
        let no_https = SettingsArgs {
            https_listen: None,
            ..base.clone()
        };
        assert!(
            Config::load(&no_https)
                .unwrap_err()
                .0
                .contains("https_listen")
        );
        let bad_email = SettingsArgs {
            acme_email: Some("not an email".into()),
            ..base.clone()
        };
        assert!(
            Config::load(&bad_email)
                .unwrap_err()
                .0
                .contains("acme_email")
        );
        let plain_http = SettingsArgs {
            acme_directory: Some("http://ca.example/dir".into()),
            ..base
        };
        assert!(
            Config::load(&plain_http)
                .unwrap_err()
                .0
                .contains("acme_directory")
        );
    }
}
