//! The app router: an HTTP/1.1 reverse proxy (hyper) on `proxy_listen`, and optionally HTTPS on
//! `https_listen`, sending each request by its `Host` to the app's current upstream.
//!
//! - It reads only the [`RouteTable`] (written by the deploy engine and the domains API), never
//!   the store or Docker: one lock-free snapshot load per request.
//! - Bodies stream both ways; each client connection keeps its own upstream connection alive
//!   and drives it from its own task (see [`upstream`]), on one of the router's per-core
//!   single-threaded runtimes (see [`workers`]).
//! - `Upgrade` (websockets) is passed through: after both sides switch protocols the two
//!   connections are spliced.
//! - Shutdown: stop accepting, let every connection finish its current request (bounded by a
//!   grace period), as in mini-redis: each connection task holds a sender, and shutdown waits
//!   until all senders are dropped.

pub mod acme;
pub mod pages;
mod proxy;
pub mod tls;
mod upstream;
mod wakeups;
mod watchdog;
mod workers;

use crate::routing::RouteTable;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use wakeups::Wakeups;

/// The most a request's head (request line and header fields; also a chunked body's
/// trailers) may take: hyper answers more with a `431` and closes the connection, so it never
/// reaches an app. As much as AWS's load balancers allow. Without it the limit would be
/// hyper's read buffer (~400 KB): heads far larger than apps expect would be passed on to them.
pub const MAX_REQUEST_HEAD: usize = 64 * 1024;

/// How many times one poll of a connection's task goes round its parts before yielding.
const MAX_ROUNDS: usize = 8;

/// Time limits of the router.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Connecting to an upstream (`router_connect_timeout_ms`): a replica that does not accept
    /// a connection in this time is passed over like one that refuses (its machine may be
    /// gone). On a LAN a healthy one accepts in milliseconds.
    pub connect: Duration,
    /// Waiting for an upstream's response headers once the request is sent.
    pub upstream_headers: Duration,
    /// A client sending its request headers, counted from the connection's start or its
    /// previous answer: also how long an idle keep-alive connection is kept (see `watchdog`).
    pub client_headers: Duration,
    /// A TLS handshake.
    pub tls_handshake: Duration,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(1),
            upstream_headers: Duration::from_secs(60),
            client_headers: Duration::from_secs(30),
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
    challenges: acme::Challenges,
    timeouts: Timeouts,
    /// Where connections run; the threads end when the last clone of the router is gone.
    workers: workers::Workers,
}

impl Router {
    /// A router and its worker threads (one per core).
    pub fn new(routes: RouteTable, domain: &str, timeouts: Timeouts) -> std::io::Result<Router> {
        Ok(Router {
            shared: Arc::new(Shared {
                routes,
                domain: domain.trim_end_matches('.').to_ascii_lowercase(),
                challenges: acme::Challenges::default(),
                timeouts,
                workers: workers::Workers::start()?,
            }),
        })
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
                    // Off this runtime's epoll; the worker registers it with its own.
                    let stream = match stream.into_std() {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::debug!(%peer, error = %e, "cannot hand a connection over");
                            continue;
                        }
                    };
                    let router = self.clone();
                    let tls = tls.clone();
                    let stop = stop_rx.clone();
                    let done = done_tx.clone();
                    self.shared.workers.spawn(async move {
                        let _done = done;
                        let stream = match tokio::net::TcpStream::from_std(stream) {
                            Ok(s) => s,
                            Err(e) => {
                                tracing::debug!(%peer, error = %e, "cannot take a connection over");
                                return;
                            }
                        };
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
        stop: watch::Receiver<bool>,
    ) where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let client = Arc::new(proxy::Client::new(peer, scheme));
        let shared = self.shared.clone();
        let service_client = client.clone();
        let service = hyper::service::service_fn(move |req| {
            let shared = shared.clone();
            let client = service_client.clone();
            async move {
                let request = client.watch.request();
                let (response, traffic) = proxy::handle(&shared, &client, req).await;
                Ok::<_, std::convert::Infallible>(
                    response.map(|body| watchdog::Tracked::new(body, request, traffic)),
                )
            }
        });
        // No header read timeout of hyper's: the watchdog keeps it (hyper's arms a timer for
        // every request).
        let conn = hyper::server::conn::http1::Builder::new()
            .header_read_timeout(None)
            .max_header_size(MAX_REQUEST_HEAD)
            .keep_alive(true)
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades();
        tokio::pin!(conn);
        let timeouts = self.shared.timeouts;
        let new_watchdog = |stop| {
            watchdog::watchdog(
                client.watch.clone(),
                stop,
                timeouts.client_headers,
                timeouts.upstream_headers,
            )
        };
        let mut watchdog = std::pin::pin!(new_watchdog(Some(stop)));
        let wakeups = Wakeups::new();
        // Each poll polls the parts that woke (see `wakeups`), in this order: the watchdog
        // first, so a request sees an expired wait in the same round; then the client side; then
        // the upstream connection it may just have created or sent a request on.
        let result = std::future::poll_fn(|cx| {
            let mut woken = wakeups.begin(cx);
            for _ in 0..MAX_ROUNDS {
                if woken.has(wakeups::WATCHDOG) {
                    let mut wcx = wakeups.context(wakeups::WATCHDOG);
                    loop {
                        match watchdog.as_mut().poll(&mut wcx) {
                            Poll::Pending => break,
                            Poll::Ready(watchdog::Ending::Idle) => {
                                tracing::debug!(%peer, "closing a connection without a request in time");
                                return Poll::Ready(Ok(()));
                            }
                            Poll::Ready(watchdog::Ending::Stop) => {
                                conn.as_mut().graceful_shutdown();
                                // The limits still hold while the current request finishes.
                                watchdog.set(new_watchdog(None));
                            }
                        }
                    }
                    // A request waiting for its app looks at the watchdog's verdict when the
                    // client side is polled.
                    woken.add(wakeups::CLIENT);
                }
                if woken.has(wakeups::CLIENT) {
                    let mut ccx = wakeups.context(wakeups::CLIENT);
                    if let Poll::Ready(r) = conn.as_mut().poll(&mut ccx) {
                        return Poll::Ready(r);
                    }
                    // A new upstream connection has not been polled yet: nothing woke it.
                    if client.upstream.take_new() {
                        woken.add(wakeups::UPSTREAM);
                    }
                }
                if woken.has(wakeups::UPSTREAM) {
                    client
                        .upstream
                        .poll_driver(&mut wakeups.context(wakeups::UPSTREAM));
                }
                woken = wakeups.take();
                if woken.is_empty() {
                    woken = wakeups.end();
                    if woken.is_empty() {
                        return Poll::Pending;
                    }
                }
            }
            // Parts that keep waking each other (a long body streaming through) give the
            // other connections on this thread their turn now and then.
            wakeups.yield_with(woken, cx);
            Poll::Pending
        })
        .await;
        if let Err(e) = result {
            // Clients that vanish or time out are routine for a proxy: not worth a warning.
            tracing::debug!(%peer, error = %e, "router connection ended with an error");
        }
    }
}
