//! Settings through [`Config::load`]: the order of precedence, the defaults, and each refusal
//! naming its setting.

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
