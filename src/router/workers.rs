//! The router's worker threads: one single-threaded tokio runtime per core, each running the
//! client connections dealt to it, as nginx runs one worker process per core.
//!
//! A proxied request wakes its connection's task several times (client readable, upstream
//! writable, upstream readable, client writable). On the shared multi-thread runtime each
//! wake-up goes through its work-stealing queues, parks and unparks worker threads and may move
//! the task to another core; on a runtime of its own a connection stays on one thread, its two
//! sockets on that thread's own epoll. `bench/router.sh` measured about 10 % more requests/s
//! for the same work.
//!
//! Connections are dealt out in turn, and a busy worker keeps its connections (no stealing):
//! the price, as with nginx, of not sharing queues.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

pub(super) struct Workers {
    handles: Vec<Handle>,
    next: AtomicUsize,
    /// Dropped with the workers: each thread then leaves its runtime, which drops any task
    /// still on it.
    _stop: Vec<oneshot::Sender<()>>,
}

impl Workers {
    /// Starts one worker per core.
    pub fn start() -> std::io::Result<Workers> {
        let count = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut handles = Vec::with_capacity(count);
        let mut stop = Vec::with_capacity(count);
        for i in 0..count {
            // Built here rather than on its thread, so that a failure is this call's error.
            let runtime = Builder::new_current_thread().enable_all().build()?;
            let (stop_tx, stop_rx) = oneshot::channel::<()>();
            handles.push(runtime.handle().clone());
            stop.push(stop_tx);
            std::thread::Builder::new()
                .name(format!("router-{i}"))
                .spawn(move || {
                    // Tasks spawned through the handle run while this blocks.
                    runtime.block_on(async {
                        let _ = stop_rx.await;
                    });
                })?;
        }
        Ok(Workers {
            handles,
            next: AtomicUsize::new(0),
            _stop: stop,
        })
    }

    /// Runs `task` on the next worker.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        drop(self.handles[i].spawn(task));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn tasks_are_dealt_to_every_worker_and_workers_end_when_dropped() {
        let workers = Workers::start().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        for _ in 0..workers.handles.len() {
            let tx = tx.clone();
            workers.spawn(async move {
                tokio::task::yield_now().await;
                tx.send(std::thread::current().name().map(str::to_string))
                    .unwrap();
            });
        }
        drop(tx);
        let names: HashSet<_> = rx.iter().map(Option::unwrap).collect();
        assert_eq!(names.len(), workers.handles.len(), "{names:?}");
        assert!(names.iter().all(|n| n.starts_with("router-")), "{names:?}");

        // A task still pending when the workers go is dropped with its runtime.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        workers.spawn(async move {
            let _tx = tx;
            std::future::pending::<()>().await;
        });
        drop(workers);
        assert_eq!(
            rx.recv_timeout(std::time::Duration::from_secs(10)),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected)
        );
    }
}
