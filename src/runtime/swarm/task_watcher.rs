//! The task watcher: Docker has no events for a swarm's tasks, so changes in them are found by
//! checking the swarm every [`POLL`], and only while the cluster is on.

use super::{PREFIX, Swarm};
use crate::docker::LABEL_APP;
use crate::domain::Result;
use crate::runtime::ProcessEvent;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use std::collections::HashMap;
use std::time::Duration;

/// How often the swarm's tasks are checked for changes (Docker has no task events).
pub(super) const POLL: Duration = Duration::from_secs(2);

impl Swarm {
    /// Tells the task watcher the cluster is now on (called once it is recorded).
    pub fn announce_on(&self) {
        self.on.send_replace(true);
    }

    /// Completes once the cluster is on: at once when it is, else when [`Swarm::announce_on`]
    /// is called. Waiting takes no timer.
    pub async fn until_on(&self) {
        let mut on = self.on.subscribe();
        // The sender lives as long as `self`: the wait cannot fail.
        let _ = on.wait_for(|on| *on).await;
    }

    /// Changes in the services' tasks, found by checking the swarm every [`POLL`]: a task that
    /// starts, stops or moves to another node is reported as `start` or `die` of its process.
    /// While the cluster is off nothing is checked and no timer runs: the watcher sleeps until
    /// it is turned on.
    pub fn events(&self) -> BoxStream<'static, Result<ProcessEvent>> {
        let this = self.clone();
        let seen: HashMap<String, (String, String)> = HashMap::new();
        futures_util::stream::unfold((this, seen, true), |(this, mut seen, first)| async move {
            this.until_on().await;
            if !first {
                tokio::time::sleep(POLL).await;
            }
            let mut events = Vec::new();
            if this.enabled() {
                match this.snapshot().await {
                    Ok(now) => {
                        for (sid, (app, key)) in &now {
                            if seen.get(sid).map(|(_, k)| k) != Some(key) {
                                events.push(Ok(ProcessEvent {
                                    action: if key.ends_with("running") {
                                        "start"
                                    } else {
                                        "die"
                                    }
                                    .into(),
                                    process: format!("{PREFIX}{sid}"),
                                    app: Some(app.clone()),
                                }));
                            }
                        }
                        for (sid, (app, _)) in &seen {
                            if !now.contains_key(sid) {
                                events.push(Ok(ProcessEvent {
                                    action: "destroy".into(),
                                    process: format!("{PREFIX}{sid}"),
                                    app: Some(app.clone()),
                                }));
                            }
                        }
                        if first {
                            events.clear();
                        }
                        seen = now;
                    }
                    Err(e) => tracing::debug!(error = %e, "checking the swarm's tasks failed"),
                }
            }
            Some((futures_util::stream::iter(events), (this, seen, false)))
        })
        .flatten()
        .boxed()
    }

    /// Per service: its app, and its current tasks' slots, ids, nodes, ports and states (the
    /// last state last, so a key that ends with `running` is a service whose tasks run).
    async fn snapshot(&self) -> Result<HashMap<String, (String, String)>> {
        let services = self
            .manager
            .services(&self.installation.filters(None))
            .await?;
        let mut now = HashMap::with_capacity(services.len());
        for s in services {
            let mut tasks = self.manager.tasks(Some(&s.id), None).await?;
            tasks.retain(|t| t.desired_running);
            tasks.sort_by_key(|t| (t.state == "running", t.slot));
            let key = tasks
                .iter()
                .map(|t| {
                    format!(
                        "{:?} {} {:?} {:?} {}",
                        t.slot, t.id, t.node_id, t.published_port, t.state
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
            let app = s.labels.get(LABEL_APP).cloned().unwrap_or_default();
            now.insert(s.id, (app, key));
        }
        Ok(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::{Engine, Installation};
    use crate::domain::Cluster;
    use crate::store::Store;
    use futures_util::FutureExt;
    use futures_util::task::ArcWake;
    use std::path::Path;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Context;

    /// Counts the wake-ups of the task polled with it.
    struct Wakes(AtomicUsize);

    impl ArcWake for Wakes {
        fn wake_by_ref(w: &Arc<Self>) {
            w.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn swarm(dir: &Path, on: bool) -> Swarm {
        let store = Store::open(&dir.join("s.redb")).unwrap();
        if on {
            let c = Cluster {
                advertise: "10.0.0.1".into(),
                manager_id: "m".into(),
                since: 0,
            };
            store.write(|w| w.put_cluster(&c)).unwrap();
        }
        Swarm::new(
            Engine::new("unix:///nonexistent/docker.sock"),
            store,
            Installation { id: "t".into() },
            dir.join("nodes"),
        )
    }

    #[test]
    fn while_the_cluster_is_off_the_task_watcher_arms_no_timer_and_wakes_when_it_is_turned_on() {
        // A runtime without a time driver: a timer armed by the watcher would panic here.
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let swarm = swarm(dir.path(), false);
            let mut events = swarm.events();
            let wakes = Arc::new(Wakes(AtomicUsize::new(0)));
            let waker = futures_util::task::waker(wakes.clone());
            let mut cx = Context::from_waker(&waker);
            assert!(events.poll_next_unpin(&mut cx).is_pending());
            assert!(events.poll_next_unpin(&mut cx).is_pending());
            assert_eq!(wakes.0.load(Ordering::SeqCst), 0);
            assert!(swarm.until_on().now_or_never().is_none());
            // Turned on through another clone (the one `nodes` holds).
            swarm.clone().announce_on();
            assert_eq!(wakes.0.load(Ordering::SeqCst), 1, "the watcher is woken");
            assert!(swarm.until_on().now_or_never().is_some());
        });
    }

    #[test]
    fn a_server_started_with_the_cluster_on_watches_at_once() {
        let dir = tempfile::tempdir().unwrap();
        assert!(swarm(dir.path(), true).until_on().now_or_never().is_some());
    }
}
