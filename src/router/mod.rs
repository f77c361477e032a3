//! The app router: an HTTP/1.1 reverse proxy (hyper) on `proxy_listen`, and optionally HTTPS on
//! `https_listen`, sending each request by its `Host` to the app's current upstream.
//!
//! - It reads only the [`RouteTable`] (written by the deploy engine and the domains API), never
//!   the store or Docker: one lock-free snapshot load per request.
//! - Bodies stream both ways; upstream connections are pooled and kept alive.
//! - `Upgrade` (websockets) is passed through: after both sides switch protocols the two
//!   connections are spliced.
//! - Shutdown: stop accepting, let every connection finish its current request (bounded by a
//!   grace period), as in mini-redis: each connection task holds a sender, and shutdown waits
//!   until all senders are dropped.

pub mod acme;
pub mod pages;
mod proxy;
pub mod tls;

use crate::routing::RouteTable;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

/// Time limits of the router.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Connecting to an upstream.
    pub connect: Duration,
    /// Waiting for an upstream's response headers once the request is sent.
    pub upstream_headers: Duration,
    /// A client sending its request headers; also how long an idle keep-alive connection is
    /// kept (hyper starts this timer when it waits for the next request).
    pub client_headers: Duration,
    /// Idle pooled upstream connections are closed after this.
    pub upstream_idle: Duration,
    /// A TLS handshake.
    pub tls_handshake: Duration,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            upstream_headers: Duration::from_secs(60),
            client_headers: Duration::from_secs(30),
            upstream_idle: Duration::from_secs(60),
            tls_handshake: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Whether a listener speaks plain HTTP or HTTPS (for `X-Forwarded-Proto` and ACME).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// The router's shared state; cheap to clone.
#[derive(Clone)]
pub struct Router {
    shared: Arc<Shared>,
}

struct Shared {
    routes: RouteTable,
    /// The platform domain: apps are `<app>.<domain>`.
    domain: String,
    client: Client<HttpConnector, proxy::RequestBody>,
    challenges: acme::Challenges,
    timeouts: Timeouts,
}

impl Router {
    pub fn new(routes: RouteTable, domain: &str, timeouts: Timeouts) -> Router {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeouts.connect));
        connector.set_nodelay(true);
        // Upstreams are addresses from the route table, never names: no DNS on the hot path.
        connector.enforce_http(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(timeouts.upstream_idle)
            .pool_max_idle_per_host(256)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Router {
            shared: Arc::new(Shared {
                routes,
                domain: domain.trim_end_matches('.').to_ascii_lowercase(),
                client,
                challenges: acme::Challenges::default(),
                timeouts,
            }),
        }
    }

    /// Pending ACME http-01 challenges this router answers.
    pub fn challenges(&self) -> &acme::Challenges {
        &self.shared.challenges
    }

    pub fn routes(&self) -> &RouteTable {
        &self.shared.routes
    }

    /// Serves `listener` until `shutdown` completes, then stops accepting and waits (at most
    /// the grace period) for open connections to finish their current request. With `tls`,
    /// every connection is a TLS connection.
    pub async fn serve(
        self,
        listener: TcpListener,
        tls: Option<tokio_rustls::TlsAcceptor>,
        shutdown: impl Future<Output = ()>,
    ) {
        let scheme = if tls.is_some() {
            Scheme::Https
        } else {
            Scheme::Http
        };
        let (stop_tx, stop_rx) = watch::channel(false);
        let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                _ = &mut shutdown => break,
                r = listener.accept() => r,
            };
            match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let router = self.clone();
                    let tls = tls.clone();
                    let stop = stop_rx.clone();
                    let done = done_tx.clone();
                    tokio::spawn(async move {
                        let _done = done;
                        match tls {
                            None => router.serve_connection(stream, peer, scheme, stop).await,
                            Some(acceptor) => {
                                let hs = tokio::time::timeout(
                                    router.shared.timeouts.tls_handshake,
                                    acceptor.accept(stream),
                                )
                                .await;
                                match hs {
                                    Ok(Ok(s)) => {
                                        router.serve_connection(s, peer, scheme, stop).await
                                    }
                                    Ok(Err(e)) => {
                                        tracing::debug!(%peer, error = %e, "TLS handshake failed")
                                    }
                                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                                }
                            }
                        }
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "router cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        drop(listener);
        let _ = stop_tx.send(true);
        drop(done_tx);
        let grace = self.shared.timeouts.shutdown_grace;
        if tokio::time::timeout(grace, done_rx.recv()).await.is_err() {
            tracing::warn!("router connections still open after the shutdown grace period");
        }
    }

    async fn serve_connection<I>(
        &self,
        io: I,
        peer: SocketAddr,
        scheme: Scheme,
        mut stop: watch::Receiver<bool>,
    ) where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let router = self.clone();
        let service = hyper::service::service_fn(move |req| {
            let router = router.clone();
            async move {
                Ok::<_, std::convert::Infallible>(
                    proxy::handle(&router.shared, req, peer, scheme).await,
                )
            }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(self.shared.timeouts.client_headers)
            .keep_alive(true)
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades();
        tokio::pin!(conn);
        let result = tokio::select! {
            r = conn.as_mut() => r,
            _ = async { let _ = stop.wait_for(|s| *s).await; } => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(e) = result {
            // Clients that vanish or time out are routine for a proxy: not worth a warning.
            tracing::debug!(%peer, error = %e, "router connection ended with an error");
        }
    }
}
