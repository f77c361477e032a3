//! The time limits of one client connection, kept by one timer per connection instead of
//! timers per request.
//!
//! Two limits apply: a client must send a complete request head within `client_headers` of
//! the connection opening or of its previous answer ending (slow clients, idle keep-alive
//! connections), and an app must send its response head within `upstream_headers` of having
//! received the whole request (the 504 page).
//!
//! Arming, polling and cancelling a timer for each of those on every request was 6.6 % of the
//! instructions of a proxied request. Instead the requests only write down when they start
//! and stop waiting ([`Watch`]: a few relaxed atomics), and one [`watchdog`] per connection
//! wakes now and then — at the next deadline it knows of, and at least every quarter of the
//! shorter limit, so a wait that started since is caught at most that much late.

use crate::metrics::AppTraffic;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::watch;

static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Milliseconds since the process's first use of this clock; never 0 (0 means "not set").
fn now_ms() -> u64 {
    EPOCH.elapsed().as_millis() as u64 + 1
}

/// What the requests of one connection tell its watchdog, and what it tells them back.
/// Everything runs in the connection's task: the atomics are for `Sync`, not for threads.
#[derive(Debug)]
pub(super) struct Watch {
    /// Requests whose head has arrived and whose answer has not been sent completely.
    in_flight: AtomicU32,
    /// When the connection last had no request in flight.
    idle_since: AtomicU64,
    /// When the current request started waiting for the app's response head; 0 if none is.
    waiting_since: AtomicU64,
    /// Set by the watchdog: the waiting request has waited longer than `upstream_headers`.
    expired: AtomicBool,
}

impl Default for Watch {
    fn default() -> Self {
        Watch {
            in_flight: AtomicU32::new(0),
            idle_since: AtomicU64::new(now_ms()),
            waiting_since: AtomicU64::new(0),
            expired: AtomicBool::new(false),
        }
    }
}

impl Watch {
    /// A request's head has arrived; the request lasts until the guard is dropped, which the
    /// router does when the answer's body has been sent (or the client has gone).
    pub fn request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Relaxed);
        InFlight(self.clone())
    }

    /// The request has been sent to the app completely: its time for an answer starts.
    pub fn start_waiting(&self) {
        self.expired.store(false, Relaxed);
        self.waiting_since.store(now_ms(), Relaxed);
    }

    /// How long the connection was idle before the current request started waiting (zero if
    /// it does not wait yet).
    pub fn idle_before_wait(&self) -> Duration {
        let waiting = self.waiting_since.load(Relaxed);
        Duration::from_millis(waiting.saturating_sub(self.idle_since.load(Relaxed)))
    }

    /// The app answered (or failed): no time limit runs for it any more.
    pub fn stop_waiting(&self) {
        self.waiting_since.store(0, Relaxed);
    }

    /// Completes when the watchdog finds the current wait too long. It needs no waker of its
    /// own: the watchdog runs in the connection's task, which polls the client side (and so
    /// the request in flight) after every poll of the watchdog.
    pub fn expired(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(|_| {
            if self.expired.load(Relaxed) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }
}

/// One request in flight; see [`Watch::request`].
pub(super) struct InFlight(Arc<Watch>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Relaxed) == 1 {
            self.0.idle_since.store(now_ms(), Relaxed);
        }
    }
}

/// Why a watchdog ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Ending {
    /// The router is shutting down: finish the current request, take no other.
    Stop,
    /// No complete request head within `client_headers`: close the connection.
    Idle,
}

/// Keeps the limits of `state` until the connection is idle too long or `stop` turns true. A
/// wait it marks expired is seen by the request in the same poll of the task (see `expired`).
pub(super) async fn watchdog(
    state: Arc<Watch>,
    stop: Option<watch::Receiver<bool>>,
    client_headers: Duration,
    upstream_headers: Duration,
) -> Ending {
    let nap = (client_headers.min(upstream_headers) / 4).max(Duration::from_millis(1));
    let stop = async move {
        match stop {
            Some(mut s) => {
                let _ = s.wait_for(|stopped| *stopped).await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::pin!(stop);
    let (client_ms, upstream_ms) = (
        client_headers.as_millis() as u64,
        upstream_headers.as_millis() as u64,
    );
    loop {
        let now = now_ms();
        let mut next = nap.as_millis() as u64;
        let waiting = state.waiting_since.load(Relaxed);
        if waiting != 0 && !state.expired.load(Relaxed) {
            let due = waiting + upstream_ms;
            if now >= due {
                state.expired.store(true, Relaxed);
            } else {
                next = next.min(due - now);
            }
        }
        if state.in_flight.load(Relaxed) == 0 {
            let due = state.idle_since.load(Relaxed) + client_ms;
            if now >= due {
                return Ending::Idle;
            }
            next = next.min(due - now);
        }
        tokio::select! {
            biased;
            _ = &mut stop => return Ending::Stop,
            _ = tokio::time::sleep(Duration::from_millis(next.max(1))) => {}
        }
    }
}

/// A response body that ends its request's [`InFlight`] when it is dropped: after its last
/// frame has been sent, or when the client has gone. It counts its bytes into the app's
/// traffic, when the request went to an app.
pub(super) struct Tracked<B> {
    body: B,
    _request: InFlight,
    traffic: Option<Arc<AppTraffic>>,
}

impl<B> Tracked<B> {
    pub fn new(body: B, request: InFlight, traffic: Option<Arc<AppTraffic>>) -> Self {
        Tracked {
            body,
            _request: request,
            traffic,
        }
    }
}

impl<B: hyper::body::Body + Unpin> hyper::body::Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<B::Data>, B::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let (Some(traffic), Poll::Ready(Some(Ok(frame)))) = (&self.traffic, &polled)
            && let Some(data) = frame.data_ref()
        {
            use bytes::Buf as _;
            traffic.response_bytes().inc_by(data.remaining() as u64);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(3600);

    #[tokio::test]
    async fn an_idle_connection_ends_and_one_with_a_request_in_flight_does_not() {
        let watch = Arc::new(Watch::default());
        let request = watch.request();
        let dog = watchdog(watch.clone(), None, Duration::from_millis(50), LONG);
        tokio::pin!(dog);
        let early = tokio::time::timeout(Duration::from_millis(300), &mut dog).await;
        assert!(early.is_err(), "ended with a request in flight: {early:?}");
        drop(request);
        let ended = tokio::time::timeout(Duration::from_secs(10), dog).await;
        assert_eq!(ended, Ok(Ending::Idle));
    }

    #[tokio::test]
    async fn a_wait_longer_than_the_limit_expires_and_a_new_wait_starts_afresh() {
        let watch = Arc::new(Watch::default());
        let _request = watch.request();
        let dog = tokio::spawn(watchdog(
            watch.clone(),
            None,
            LONG,
            Duration::from_millis(50),
        ));
        watch.start_waiting();
        // `expired` has no waker of its own (see there): this task looks now and then.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !watch.expired.load(Relaxed) {
            assert!(Instant::now() < deadline, "the wait never expired");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        watch.stop_waiting();
        watch.start_waiting();
        assert!(!watch.expired.load(Relaxed), "a new wait is not expired");
        dog.abort();
    }

    #[tokio::test]
    async fn the_stop_signal_ends_the_watchdog() {
        let (tx, rx) = watch::channel(false);
        let watch = Arc::new(Watch::default());
        let dog = tokio::spawn(watchdog(watch, Some(rx), LONG, LONG));
        tx.send(true).unwrap();
        assert_eq!(dog.await.unwrap(), Ending::Stop);
    }
}
