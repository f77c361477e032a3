//! [`Config::load`]: each setting from its flag (or environment variable), else the file, else
//! the default, checked as it is read; some checks need a setting read before (`acme_email`
//! needs `https_listen`, relative paths resolve under `data_dir`).

use super::file::FileSettings;
use super::parse::{parse_addr, parse_count, parse_cpus, parse_log_size, parse_optional_count};
use super::{Acme, Config, ConfigError, LETS_ENCRYPT, LogFormat, SettingsArgs, absolute};
use crate::accounts::Registration;
use std::path::PathBuf;

/// Docker's build API takes the memory limit in bytes as a 32-bit number.
const MAX_BUILD_MEMORY_MB: u64 = 2047;

impl Config {
    /// The settings from `args` (flags and environment), the file it names and the defaults;
    /// the first unusable value is the error, naming its setting.
    pub fn load(args: &SettingsArgs) -> Result<Config, ConfigError> {
        let file = FileSettings::read(args.config.as_deref())?;
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
}
