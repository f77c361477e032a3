//! Builds every service and binds every listener; runs them until shutdown.
//! Binding to port 0 gives each test its own server.

use crate::apps::Links;
use crate::config::Config;
use crate::drain::Drained;
use crate::router::Router;
use crate::services::Services;
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;

pub struct Application {
    services: web::Data<Services>,
    http_port: u16,
    server: actix_web::dev::Server,
    control: tokio::net::UnixListener,
    ssh: TcpListener,
    ssh_port: u16,
    host_key: russh::keys::PrivateKey,
    hooks: tokio::net::UnixListener,
    router: Router,
    proxy: tokio::net::TcpListener,
    proxy_port: u16,
    https: Option<(tokio::net::TcpListener, tokio_rustls::TlsAcceptor)>,
    /// Obtains certificates for the HTTPS listener, when `acme_email` is set.
    acme: Option<crate::acme::CertManager>,
    https_port: Option<u16>,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        create_data_dir(&config.data_dir)?;
        let http = TcpListener::bind(config.http_listen)
            .with_context(|| format!("cannot listen on http_listen {}", config.http_listen))?;
        let http_port = http.local_addr()?.port();
        let ssh = TcpListener::bind(config.ssh_listen)
            .with_context(|| format!("cannot listen on ssh_listen {}", config.ssh_listen))?;
        // The bound port, not the configured one: with port 0 the remote URLs must still work.
        let ssh_port = ssh.local_addr()?.port();
        let proxy = bind_async(config.proxy_listen, "proxy_listen")?;
        let proxy_port = proxy.local_addr()?.port();
        let https = match config.https_listen {
            Some(addr) => Some(bind_async(addr, "https_listen")?),
            None => None,
        };
        let links = Links {
            domain: config.domain.clone(),
            proxy_port,
            ssh_host: config.public_ssh_host.clone(),
            ssh_port,
        };
        let host_key_path = config.data_dir.join(crate::ssh::hostkey::FILE_NAME);
        let host_key = crate::ssh::hostkey::load_or_create(&host_key_path)?;
        let host_key_info = crate::ssh::hostkey::describe(&host_key);
        let control =
            crate::control::bind(&config.data_dir).context("cannot create the control socket")?;
        let services = web::Data::new(
            tokio::task::spawn_blocking(move || Services::build(config, links, host_key_info))
                .await??,
        );
        // Nothing can be pushing yet: a push still marked running was cut by the last stop.
        let interrupted = services.store.write(|w| {
            w.fail_running_pushes(
                "interrupted: scalefog stopped during the push",
                crate::domain::now(),
            )
        })?;
        if interrupted > 0 {
            tracing::warn!(
                count = interrupted,
                "pushes cut by the last stop are recorded as rejected"
            );
        }
        let hooks = services
            .git
            .bind_hook_socket()
            .context("cannot create the git hook socket")?;
        let router = Router::new(
            services.routes.clone(),
            &services.config.domain,
            services.config.router_timeouts,
        )
        .context("cannot start the router's worker threads")?;
        let mut acme = None;
        let https = match https {
            Some(listener) => {
                let certs = Arc::new(crate::router::tls::CertStore::load_dir(
                    &services.config.tls_dir,
                )?);
                if let Some(settings) = &services.config.acme {
                    acme = Some(crate::acme::CertManager::new(
                        settings.clone(),
                        certs.clone(),
                        router.challenges().clone(),
                        services.routes.clone(),
                        &services.config.domain,
                        &services.config.tls_dir,
                        &services.config.data_dir,
                    ));
                } else if certs.is_empty() {
                    tracing::warn!(tls_dir = %services.config.tls_dir.display(), "https_listen is set but tls_dir holds no certificate");
                }
                let acceptor = tokio_rustls::TlsAcceptor::from(certs.server_config()?);
                Some((listener, acceptor))
            }
            None => None,
        };
        let https_port = match &https {
            Some((l, _)) => Some(l.local_addr()?.port()),
            None => None,
        };
        let data = services.clone();
        let list_cache = web::Data::new(crate::api::list_cache::ListCache::default());
        let console_ops = web::Data::new(crate::console::ops::Operations::default());
        // A request whose deploy a stop waits for (or cancels) still gets its answer.
        let http_stop = services.config.shutdown_timeout + UNWIND.as_secs();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(list_cache.clone())
                .app_data(console_ops.clone())
                .app_data(web::PayloadConfig::new(crate::api::extract::BODY_LIMIT))
                .wrap(actix_web::middleware::NormalizePath::trim())
                // Outside NormalizePath: the request it sees after the call is normalised, so
                // its route template is the one that matched.
                .wrap(actix_web::middleware::from_fn(crate::api::metrics::observe))
                .configure(crate::api::routes)
                .configure(crate::console::routes)
                .default_service(web::to(crate::api::not_found))
        })
        .disable_signals()
        .shutdown_timeout(http_stop)
        .listen(http)?
        .run();
        Ok(Application {
            services,
            http_port,
            server,
            control,
            ssh,
            ssh_port,
            host_key,
            hooks,
            router,
            proxy,
            proxy_port,
            https,
            acme,
            https_port,
        })
    }

    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// The SSH port actually bound (differs from the setting when it is 0).
    pub fn ssh_port(&self) -> u16 {
        self.ssh_port
    }

    /// The app router's bound port (`proxy_listen`).
    pub fn proxy_port(&self) -> u16 {
        self.proxy_port
    }

    /// The app router's bound HTTPS port, when `https_listen` is set.
    pub fn https_port(&self) -> Option<u16> {
        self.https_port
    }

    /// The app router (its ACME challenges, its route table).
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    pub fn services(&self) -> web::Data<Services> {
        self.services.clone()
    }

    /// Serves until `shutdown` completes. Then every listener stops accepting, pushes and
    /// deploys in flight get `shutdown_timeout` to finish (then they are cancelled and given
    /// [`UNWIND`] to remove what they created and say so), the SSH sessions are closed, and
    /// the services are dropped, closing the store (once the caller drops its own handles).
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let server = tokio::spawn(self.server);
        let control = tokio::spawn(crate::control::serve(
            self.control,
            self.services.store.clone(),
            self.services.config.backup_paths(),
        ));
        let backups = self.services.config.backups.clone().map(|auto| {
            tokio::spawn(crate::backup::schedule::run(
                self.services.store.clone(),
                self.services.config.backup_paths(),
                auto,
            ))
        });
        // Rebuilds the route table from Docker and follows container events.
        let reconciler = tokio::spawn(
            self.services
                .deployer
                .clone()
                .run_reconciler(self.services.apps.clone()),
        );
        let cron = tokio::spawn(self.services.deployer.clone().run_cron());
        // The console's traffic sparklines: one sample of every app a minute.
        let sampler = tokio::spawn(self.services.metrics.traffic().clone().run_sampler());
        let hooks = tokio::spawn(self.services.git.clone().serve_hooks(self.hooks));
        let mut ssh = crate::ssh::SshServer::start(
            self.ssh,
            self.host_key,
            self.services.clone().into_inner(),
        )
        .context("cannot start the SSH server")?;
        // The router stops with everything else: one watch channel tells its listeners.
        let (stop_router, router_stopped) = tokio::sync::watch::channel(false);
        let until_stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let mut routers = vec![tokio::spawn(self.router.clone().serve(
            self.proxy,
            None,
            until_stopped(router_stopped.clone()),
        ))];
        if let Some((listener, acceptor)) = self.https {
            routers.push(tokio::spawn(self.router.clone().serve(
                listener,
                Some(acceptor),
                until_stopped(router_stopped.clone()),
            )));
        }
        let acme = self.acme.map(|m| tokio::spawn(m.run()));
        tracing::info!(
            http = %self.services.config.http_listen.ip(),
            port = self.http_port,
            ssh_port = self.ssh_port,
            ssh_host_key = %self.services.ssh_host_key.fingerprint,
            proxy_port = self.proxy_port,
            https_port = self.https_port,
            data_dir = %self.services.config.data_dir.display(),
            "scalefog is serving"
        );
        tokio::select! {
            _ = shutdown => {}
            r = server => { r??; return Ok(()); }
        }
        let timeout = std::time::Duration::from_secs(self.services.config.shutdown_timeout);
        let drain = &self.services.drain;
        tracing::info!(
            in_flight = drain.in_flight(),
            shutdown_timeout = timeout.as_secs(),
            "shutting down: no new connections; pushes and deploys in flight may finish"
        );
        // No listener takes anything new. The hook socket stays: pushes in flight call it.
        let _ = stop_router.send(true);
        let http = tokio::spawn(handle.stop(true));
        ssh.stop_accepting().await;
        control.abort();
        let _ = std::fs::remove_file(crate::control::socket_path(&self.services.config.data_dir));
        cron.abort();
        sampler.abort();
        if let Some(acme) = acme {
            acme.abort();
        }
        match drain.finish(timeout, UNWIND).await {
            Drained::Finished => tracing::info!("work in flight finished"),
            Drained::Cancelled(n) => tracing::warn!(
                in_flight = n,
                "pushes and deploys still running at shutdown_timeout were cancelled"
            ),
            Drained::Abandoned(n) => tracing::error!(
                in_flight = n,
                "pushes and deploys did not wind down after their cancel; stopping anyway"
            ),
        }
        ssh.shutdown().await;
        hooks.abort();
        let _ = std::fs::remove_file(self.services.git.socket_path());
        // Answers to requests whose deploys were just waited for go out now; connections that
        // stay open (followed logs) do not hold the stop any longer.
        if tokio::time::timeout(HTTP_GRACE, http).await.is_err() {
            tracing::warn!("HTTP connections still open after the stop are dropped");
        }
        for r in routers {
            let _ = r.await;
        }
        reconciler.abort();
        if let Some(backups) = backups {
            backups.abort();
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// How long cancelled pushes and deploys get, after `shutdown_timeout`, to remove what they
/// created, record that they were cancelled and tell their pusher.
pub const UNWIND: std::time::Duration = std::time::Duration::from_secs(20);

/// How long HTTP requests still open once the work in flight is over may take to finish.
const HTTP_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Binds a listener for the tokio runtime, naming the setting when the address is unusable.
fn bind_async(
    addr: std::net::SocketAddr,
    setting: &str,
) -> anyhow::Result<tokio::net::TcpListener> {
    let l =
        TcpListener::bind(addr).with_context(|| format!("cannot listen on {setting} {addr}"))?;
    l.set_nonblocking(true)?;
    Ok(tokio::net::TcpListener::from_std(l)?)
}

fn create_data_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if !dir.exists() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create data_dir {}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
