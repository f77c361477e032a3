//! The `scalefog` command: parse the command line, load settings, run.

use clap::{Parser, Subcommand};
use scalefog::accounts::{Accounts, JwtKeys, NewUser, Registrar};
use scalefog::config::{Config, SettingsArgs};
use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "scalefog",
    version,
    about = "A self-hosted platform-as-a-service: git push to deploy Docker apps",
    long_about = "Scalefog runs your apps from `git push`, on one Linux host with Docker.\n\n\
        Start it with `scalefog serve`, register an account at http://127.0.0.1:8080, add your SSH key, \
        create an app and push to the git remote it shows you.\n\n\
        Every setting can be given as a flag (--http-listen), an environment variable \
        (SCALEFOG_HTTP_LISTEN) or a key in a TOML file given with --config (http_listen), \
        in that order of precedence.",
    after_help = "Examples:\n  scalefog serve\n  scalefog serve --domain apps.example.com --http-listen 0.0.0.0:8080\n  \
        echo 's3cret-pass' | scalefog admin create-user alice --email alice@example.com --admin --password-stdin\n  \
        scalefog backup /var/backups/scalefog.tar.zst\n  \
        scalefog restore /var/backups/scalefog.tar.zst --data-dir /var/lib/scalefog"
)]
struct Cli {
    #[command(flatten)]
    settings: SettingsArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API, console, SSH server and app router
    Serve,
    /// Administrative tasks on the store (stop the server first)
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Write one archive (tar + zstd) of everything: a consistent snapshot of the store, the
    /// apps' git repositories, the SSH host key, TLS certificates and every key of the data dir.
    /// Works while the server runs (pushes go on) or not
    Backup {
        /// Where to write the archive, e.g. /var/backups/scalefog.tar.zst; must not exist yet
        path: PathBuf,
    },
    /// Restore an archive written by `scalefog backup` into a new, empty data dir (give it with
    /// --data-dir). The next `scalefog serve` on it brings the apps back, rebuilding their images
    /// from their repositories when Docker no longer has them
    Restore {
        /// The archive to restore
        archive: PathBuf,
    },
    /// The cluster of several machines (stop the server first)
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Run by git inside a push (the repositories' hooks call it); not for people
    #[command(hide = true)]
    Hook {
        /// The hook git runs: pre-receive
        name: String,
    },
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Turn the cluster on: the local Docker engine becomes a swarm manager (or its swarm is
    /// adopted) and apps' processes run as swarm services from their next deploy
    Init {
        /// The IP address other machines reach this one at
        #[arg(long)]
        advertise: String,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create a user account, for example the first admin when registration is closed
    CreateUser {
        /// Username: a lowercase letter, then lowercase letters, digits or '-'
        name: String,
        /// The user's e-mail address
        #[arg(long)]
        email: String,
        /// Give the account administrator rights
        #[arg(long)]
        admin: bool,
        /// Read the password from the first line of standard input instead of prompting
        #[arg(long)]
        password_stdin: bool,
    },
}

/// Fixes glibc malloc's two thresholds instead of letting them float. By default glibc raises
/// its mmap threshold after the first large free, so every later password hash (19 MiB) comes
/// from a per-thread heap that keeps it: twenty sign-ins left the process at ~320 MB instead of
/// ~19 MB. Blocks of 4 MiB or more get mappings of their own, returned when freed; heaps give
/// back what is free above 8 MiB at their top. Chosen with bench/footprint.sh among the
/// candidates README's "Footprint" lists (a lower mmap or trim threshold cut the throughput of
/// large API answers; mimalloc kept ~70 MB).
fn settle_the_allocator() {
    const MMAP_THRESHOLD: libc::c_int = 4 << 20;
    const TRIM_THRESHOLD: libc::c_int = 8 << 20;
    // SAFETY: mallopt only changes malloc's tuning; it is called before any other thread exists.
    let set = unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD)
            & libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    };
    if set != 1 {
        eprintln!(
            "scalefog: warning: cannot tune malloc; memory freed after sign-ins may stay in use"
        );
    }
}

fn main() -> ExitCode {
    settle_the_allocator();
    let cli = Cli::parse();
    // The git hook needs neither settings nor a runtime: it talks to the running server.
    if let Command::Hook { name } = &cli.command {
        if name != "pre-receive" {
            eprintln!("scalefog: unknown hook '{name}'");
            return ExitCode::from(2);
        }
        let code = scalefog::git::hook::run_pre_receive();
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    let config = match Config::load(&cli.settings) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("scalefog: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(config.log_format);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("scalefog: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        match cli.command {
            Command::Serve => serve(config).await,
            Command::Admin(AdminCommand::CreateUser {
                name,
                email,
                admin,
                password_stdin,
            }) => create_user(config, &name, &email, admin, password_stdin).await,
            Command::Backup { path } => backup(config, path).await,
            Command::Restore { archive } => restore(config, archive).await,
            Command::Cluster(ClusterCommand::Init { advertise }) => {
                cluster_init(config, &advertise).await
            }
            Command::Hook { .. } => unreachable!("handled before the runtime starts"),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scalefog: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Log lines go to stderr (journald keeps them under systemd): text, or one JSON object per
/// line for log shippers (`log_format`).
fn init_tracing(format: scalefog::config::LogFormat) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("SCALEFOG_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        scalefog::config::LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        // Fields at the top level (not under `fields`), so shippers index them directly.
        scalefog::config::LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let app = scalefog::startup::Application::build(config).await?;
    app.run_until_stopped(scalefog::startup::shutdown_signal())
        .await
}

async fn create_user(
    config: Config,
    name: &str,
    email: &str,
    admin: bool,
    password_stdin: bool,
) -> anyhow::Result<()> {
    let password = if password_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else {
        let p = rpassword::prompt_password("Password: ").map_err(|e| {
            anyhow::anyhow!("cannot prompt for a password ({e}); use --password-stdin")
        })?;
        let again = rpassword::prompt_password("Password (again): ")?;
        anyhow::ensure!(p == again, "the passwords differ");
        p
    };
    std::fs::create_dir_all(&config.data_dir)?;
    let store = scalefog::store::Store::open(&config.store_path())?;
    local_nodes(&config, &store)?.ensure_local(&config.region_name, &config.docker_host)?;
    let jwt = JwtKeys::load_or_create(&config.jwt_secret_path())?;
    let accounts = Accounts::new(store, config.registration, jwt)?;
    let user = accounts
        .register(
            Registrar::Admin,
            NewUser {
                username: name,
                email,
                password: &password,
                admin,
            },
            scalefog::domain::Origin::CLI,
        )
        .await?;
    println!(
        "created user '{}' (id {}){}",
        user.username,
        user.id,
        if user.admin { ", admin" } else { "" }
    );
    Ok(())
}

/// Regions and nodes over the store, with the local engine as the swarm's manager.
fn local_nodes(
    config: &Config,
    store: &scalefog::store::Store,
) -> anyhow::Result<scalefog::nodes::Nodes> {
    let swarm = scalefog::runtime::Swarm::new(
        scalefog::docker::Engine::new(&config.docker_host),
        store.clone(),
        scalefog::docker::Installation {
            id: scalefog::deploy::install_id(&config.data_dir)?,
        },
        config.nodes_dir(),
    );
    Ok(scalefog::nodes::Nodes::new(store.clone(), swarm))
}

async fn cluster_init(config: Config, advertise: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)?;
    let store = scalefog::store::Store::open(&config.store_path())?;
    let nodes = local_nodes(&config, &store)?;
    nodes.ensure_local(&config.region_name, &config.docker_host)?;
    let cluster = nodes.turn_on(advertise).await?;
    println!(
        "cluster on: this engine manages the swarm (node {}), advertised at {}",
        cluster.manager_id, cluster.advertise
    );
    Ok(())
}

async fn backup(config: Config, path: PathBuf) -> anyhow::Result<()> {
    let dest = std::path::absolute(&path)?;
    let written = match scalefog::control::request_backup(&config.data_dir, &dest).await {
        Some(r) => r.map_err(|e| anyhow::anyhow!(e))?,
        None => {
            // No server answers: open the store itself (refused if one holds it after all).
            let store = scalefog::store::Store::open(&config.store_path())?;
            let paths = config.backup_paths();
            tokio::task::spawn_blocking(move || scalefog::backup::create(&store, &paths, &dest))
                .await??
        }
    };
    println!(
        "backup written to {} ({} bytes, {} repositories)",
        std::path::absolute(&path)?.display(),
        written.bytes,
        written.repositories
    );
    Ok(())
}

async fn restore(config: Config, archive: PathBuf) -> anyhow::Result<()> {
    let paths = config.backup_paths();
    let restored =
        tokio::task::spawn_blocking(move || scalefog::backup::restore(&archive, &paths)).await??;
    println!(
        "restored into {}: {} users, {} apps, {} repositories (backup of {}, scalefog {})",
        config.data_dir.display(),
        restored.users,
        restored.apps,
        restored.repositories,
        scalefog::domain::rfc3339(restored.manifest.created_at),
        restored.manifest.scalefog_version
    );
    println!("start `scalefog serve` on it: the apps come back, their images rebuilt if missing");
    Ok(())
}
