//! Upstream connections, one per client connection.
//!
//! An HTTP/1.1 client connection carries one request at a time, so one upstream connection per
//! client connection is all it can use. Each client connection therefore owns its upstream
//! connection (a plain `hyper::client::conn::http1` handshake), keeps it while both stay
//! alive and the app's address does not change, and opens a new one otherwise.
//!
//! The upstream connection is driven by the client connection's own task ([`Slot::poll_driver`],
//! called after the server side when the connection has woken the task), not by a task of its
//! own: a request and its response then never hop between tasks or threads, which is what a
//! shared pool (its own connection tasks, a checkout, a channel per request) costs on every
//! request. The lifetime of an idle upstream connection is that of its idle client connection
//! (`client_headers`).
//!
//! Upgrades (websockets) are the exception: their upstream connection must outlive the client
//! connection's HTTP task (the two sockets are spliced after it ends), so it gets a task.

use super::proxy::RequestBody;
use crate::locks;
use crate::routing::{Backends, Lease};
use hyper::body::Incoming;
use hyper::client::conn::http1::{Connection, SendRequest};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use prometheus_client::metrics::counter::Counter;
use std::error::Error as _;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;

type Conn = Connection<TokioIo<TcpStream>, RequestBody>;
type Driver = Pin<Box<Conn>>;

/// Why a request could not be sent upstream (answered with a 502, or a 400 if the request's
/// own body failed).
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("connecting timed out")]
    ConnectTimeout,
    #[error("{}", chain(.0))]
    Http(#[from] hyper::Error),
}

impl UpstreamError {
    /// Whether no connection was made: nothing of the request reached the app.
    pub(super) fn is_connect(&self) -> bool {
        matches!(
            self,
            UpstreamError::Connect(_) | UpstreamError::ConnectTimeout
        )
    }

    /// Whether the request failed because its own body did (the client sent a malformed body
    /// or stopped sending it), rather than the app or the connection to it. hyper reports the
    /// body's error as a "user" error caused by it, and our body's only errors are those of
    /// the client's incoming body.
    pub(super) fn is_request_body_error(&self) -> bool {
        matches!(self, UpstreamError::Http(e) if e.is_user()
            && e.source().is_some_and(|c| c.is::<hyper::Error>()))
    }
}

/// An error with its causes (hyper's top-level messages are terse).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// The upstream connection of one client connection. The mutex is never contended: only the
/// client connection's task touches it, and never across an `await`.
#[derive(Default)]
pub(super) struct Slot {
    inner: Mutex<Inner>,
    /// A connection was opened since [`Slot::take_new`] last looked: its driver must be
    /// polled once to start (nothing else wakes it).
    new: AtomicBool,
    /// An upstream connection of this client connection has ended on the app's side (closed
    /// or failed): its kept connections may close under a request (see [`replay`]).
    closes: AtomicBool,
}

#[derive(Default)]
struct Inner {
    /// Where the current connection goes and its sender; `None` while a request is being
    /// handed to it, or when there is no connection.
    sender: Option<(SocketAddr, SendRequest<RequestBody>, Lease)>,
    driver: Option<Driver>,
}

impl Slot {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        locks::lock(&self.inner)
    }

    /// Whether a connection was opened since the last call.
    pub(super) fn take_new(&self) -> bool {
        self.new.load(Relaxed) && self.new.swap(false, Relaxed)
    }

    /// Drives the current upstream connection; called by the client connection's task when
    /// the connection woke it (see `wakeups`), or is new.
    pub(super) fn poll_driver(&self, cx: &mut Context<'_>) {
        let mut inner = self.lock();
        if let Some(driver) = inner.driver.as_mut()
            && let Poll::Ready(r) = driver.as_mut().poll(cx)
        {
            if let Err(e) = r {
                tracing::debug!(error = %chain(&e), "upstream connection ended");
            }
            inner.driver = None;
            inner.sender = None;
            self.closes.store(true, Relaxed);
        }
    }

    /// Sends `req` to `addr`: over the kept connection when it goes there and is still open,
    /// else over a new one. A request the kept connection turned down unsent (the app closed it
    /// meanwhile) goes once more over a new connection; so does one that was sent and got no
    /// answer, if it can be repeated safely (see [`replay`]) and the connection may well have
    /// been closed under it: it was `idle` for [`LONG_IDLE`] or more, or the app has closed
    /// connections of this client connection before.
    ///
    /// With several replicas, the kept connection's replica serves while it is in the set and
    /// up; a new connection goes to the next replica in turn, skipping those that are down and
    /// one that refuses or does not accept in time (nothing was sent yet, so any request goes
    /// on, a body too), and a request that can be repeated safely goes once to another replica
    /// when a new connection fails before its answer.
    pub(super) async fn send(
        &self,
        backends: &Backends,
        mut req: Request<RequestBody>,
        connect_timeout: Duration,
        idle: Duration,
        app: App<'_>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let kept = {
            let mut inner = self.lock();
            match inner.sender.take() {
                Some((a, s, l)) if backends.is_live(a) => Some((a, s, l)),
                // Another address (a new release), or one that is down: the old connection
                // is done with, since its client connection sends one request at a time.
                _ => {
                    inner.driver = None;
                    None
                }
            }
        };
        if let Some((addr, mut sender, lease)) = kept {
            // Ready at once in the common case; else the driver (polled by this same task)
            // is finishing the previous response, or the connection has closed. The rare
            // paths (this wait, connecting) are boxed: every request's future is moved into
            // place by hyper, and their timers and handshakes would make it kilobytes.
            let ready = sender.is_ready()
                || matches!(
                    Box::pin(tokio::time::timeout(connect_timeout, sender.ready())).await,
                    Ok(Ok(()))
                );
            if ready {
                // A copy costs 5 % of a request: made only where the race is likely.
                let again = if idle >= LONG_IDLE || self.closes.load(Relaxed) {
                    replay(&req)
                } else {
                    None
                };
                let response = sender.try_send_request(req);
                self.lock().sender = Some((addr, sender, lease));
                match response.await {
                    Ok(r) => return Ok(r),
                    Err(mut e) => match (e.take_message(), again) {
                        (Some(unsent), _) => req = unsent,
                        // Sent, and the connection failed before an answer: most likely the
                        // app closed it just as the request went (its keep-alive time ran
                        // out), which looks the same as a failure of the app.
                        (None, Some(again)) => {
                            tracing::debug!(error = %chain(e.error()), "repeating a request on a new connection");
                            req = again;
                        }
                        (None, None) => return Err(e.into_error().into()),
                    },
                }
            }
        }
        let replicas = backends.addrs().len();
        let mut tried: Vec<SocketAddr> = Vec::new();
        // A replica that got the request and failed before its answer: the failure to report
        // if no other replica accepts it then (something was sent).
        let mut failed: Option<hyper::Error> = None;
        loop {
            let (addr, lease, mut sender, driver) =
                match Box::pin(connect_any(backends, &mut tried, connect_timeout, app)).await {
                    Ok(c) => c,
                    Err(e) => return Err(failed.map_or(e, UpstreamError::from)),
                };
            let again = if tried.len() < replicas {
                replay(&req)
            } else {
                None
            };
            let response = sender.send_request(req);
            {
                let mut inner = self.lock();
                inner.sender = Some((addr, sender, lease));
                inner.driver = Some(Box::pin(driver));
            }
            self.new.store(true, Relaxed);
            match (response.await, again) {
                (Ok(r), _) => return Ok(r),
                (Err(e), Some(again)) => {
                    tracing::debug!(%addr, error = %chain(&e), "replica failed; repeating the request on the next");
                    self.lock().driver = None;
                    self.lock().sender = None;
                    failed = Some(e);
                    req = again;
                }
                (Err(e), None) => return Err(e.into()),
            }
        }
    }
}

/// The app whose replicas a request goes to: named in the log, and counting the connections
/// its replicas did not accept.
#[derive(Clone, Copy)]
pub(super) struct App<'a> {
    pub name: &'a str,
    pub failures: &'a Counter,
}

/// A new connection to one of the replicas not in `tried` (each one tried is added), passing
/// over those that do not accept it: nothing was sent to them, so any request may go on to the
/// next. Each failure is counted and marks its replica down (see `routing::DOWN_FOR`), logged
/// when it goes down and when it comes back, not on every request. The last error when no
/// replica accepts.
async fn connect_any(
    backends: &Backends,
    tried: &mut Vec<SocketAddr>,
    timeout: Duration,
    app: App<'_>,
) -> Result<(SocketAddr, Lease, SendRequest<RequestBody>, Conn), UpstreamError> {
    let mut last = None;
    while let Some((addr, lease)) = backends.pick_excluding(tried) {
        tried.push(addr);
        match connect(addr, timeout).await {
            Ok((sender, driver)) => {
                if lease.connected() {
                    tracing::info!(app = app.name, %addr, "a replica accepts connections again");
                }
                return Ok((addr, lease, sender, driver));
            }
            Err(e) => {
                app.failures.inc();
                if lease.failed() {
                    tracing::warn!(app = app.name, %addr, error = %e, "a replica does not accept connections; new connections go to the app's other replicas until it does");
                } else {
                    tracing::debug!(app = app.name, %addr, error = %e, "a replica that is down does not accept connections yet");
                }
                last = Some(e);
            }
        }
    }
    Err(last
        .unwrap_or_else(|| UpstreamError::Connect(std::io::Error::other("no replica left to try"))))
}

/// Apps close idle connections after some seconds (gunicorn 2 s; Node, Apache, uvicorn 5 s); a
/// request can cross such a close only on a connection idle for at least that long.
const LONG_IDLE: Duration = Duration::from_secs(1);

/// A copy of a request that may be sent again if the kept connection it goes over fails before
/// an answer: one without a body (nothing streamed is lost) and with an idempotent method
/// (RFC 9110 §9.2.2: repeating it is safe even if the app did get it), as nginx repeats
/// requests that fail on its kept connections.
fn replay(req: &Request<RequestBody>) -> Option<Request<RequestBody>> {
    use hyper::body::Body as _;
    if !req.body().is_end_stream() || !req.method().is_idempotent() {
        return None;
    }
    let mut again = Request::new(RequestBody::empty());
    *again.method_mut() = req.method().clone();
    *again.uri_mut() = req.uri().clone();
    *again.version_mut() = req.version();
    *again.headers_mut() = req.headers().clone();
    Some(again)
}

/// A new upstream connection. `TCP_NODELAY`: a proxy writes whole messages, and waiting to
/// coalesce them only adds latency.
async fn connect(
    addr: SocketAddr,
    timeout: Duration,
) -> Result<(SendRequest<RequestBody>, Conn), UpstreamError> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| UpstreamError::ConnectTimeout)?
        .map_err(UpstreamError::Connect)?;
    let _ = stream.set_nodelay(true);
    Ok(hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?)
}

/// Sends an `Upgrade` request over a connection of its own, driven by its own task so that it
/// can hand its socket over after `101 Switching Protocols`.
pub(super) async fn send_upgrade(
    backends: &Backends,
    req: Request<RequestBody>,
    connect_timeout: Duration,
    app: App<'_>,
) -> Result<Response<Incoming>, UpstreamError> {
    let (_, lease, mut sender, driver) =
        connect_any(backends, &mut Vec::new(), connect_timeout, app).await?;
    tokio::spawn(async move {
        // Counted at its replica for as long as the upgraded connection lasts.
        let _lease = lease;
        if let Err(e) = driver.with_upgrades().await {
            tracing::debug!(error = %chain(&e), "upgraded upstream connection ended");
        }
    });
    Ok(sender.send_request(req).await?)
}
