//! A service's slots: each replica of a set is a slot of its service, and which slots the deploy
//! engine stopped or removed is kept in the service's labels (`1,2`), so it survives a restart of
//! Scalefog. A slot's process (its id, label and state) is read from the service and its tasks.

use super::{PREFIX, Swarm, parse};
use crate::docker::{LABEL_APP, LABEL_PROCESS, LABEL_RELEASE, ServiceInfo, TaskInfo};
use crate::domain::{Error, Result};
use crate::runtime::{ProcessState, ProcessStatus};
use std::collections::BTreeSet;

/// On a service: how many replicas it was created with (its slots are 1 to that). A service
/// without it is one process of id `swarm:<service id>` (as they were before sets).
pub(super) const REPLICAS_LABEL: &str = "scalefog.replicas";
/// On a service: its slots the deploy engine stopped (`1,2`), and those it removed.
const STOPPED_LABEL: &str = "scalefog.stopped";
const REMOVED_LABEL: &str = "scalefog.removed";

/// The slots of a service as the deploy engine left them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Slots {
    pub(super) replicas: u64,
    /// Holds the removed ones too.
    pub(super) stopped: BTreeSet<u64>,
    pub(super) removed: BTreeSet<u64>,
    /// It has slots in its process ids.
    sets: bool,
}

impl Slots {
    pub(super) fn of(svc: &ServiceInfo) -> Slots {
        let set = |key: &str| -> BTreeSet<u64> {
            svc.labels
                .get(key)
                .map(|v| v.split(',').filter_map(|x| x.parse().ok()).collect())
                .unwrap_or_default()
        };
        let replicas = svc.labels.get(REPLICAS_LABEL).and_then(|r| r.parse().ok());
        Slots {
            replicas: replicas.unwrap_or(1),
            stopped: set(STOPPED_LABEL),
            removed: set(REMOVED_LABEL),
            sets: replicas.is_some(),
        }
    }

    /// How many tasks the service should run.
    fn running(&self) -> u64 {
        (1..=self.replicas)
            .filter(|s| !self.stopped.contains(s))
            .count() as u64
    }

    fn id(&self, sid: &str, slot: u64) -> String {
        if self.sets {
            format!("{PREFIX}{sid}/{slot}")
        } else {
            format!("{PREFIX}{sid}")
        }
    }
}

fn joined(set: &BTreeSet<u64>) -> String {
    set.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

/// The process label (`web.2`) of a slot: the service's label names its first replica.
fn process_label(svc: &ServiceInfo, slot: u64) -> Option<String> {
    let first = svc.labels.get(LABEL_PROCESS)?;
    if slot == 1 {
        return Some(first.clone());
    }
    let (kind, n) = first.rsplit_once('.')?;
    Some(format!("{kind}.{}", n.parse::<u64>().ok()? + slot - 1))
}

impl Swarm {
    /// Applies a change to the slots of a process's service: the service runs as many tasks as
    /// it has slots not stopped, and goes when every slot is removed. Nothing is updated when
    /// nothing changes, so the swarm is left alone while it restarts or moves tasks itself.
    pub(super) async fn change_slots(
        &self,
        id: &str,
        change: impl FnOnce(&mut Slots, u64),
    ) -> Result<()> {
        let (sid, slot) = parse(id);
        let _one = self.slots.lock().await;
        let Some(svc) = self.manager.service(sid).await? else {
            return Ok(());
        };
        let before = Slots::of(&svc);
        let mut after = before.clone();
        change(&mut after, slot);
        if (1..=after.replicas).all(|s| after.removed.contains(&s)) {
            return self.manager.remove_service(sid).await;
        }
        let running = after.running() as i64;
        if after == before && svc.replicas == running {
            return Ok(());
        }
        let labels = [
            (STOPPED_LABEL, joined(&after.stopped)),
            (REMOVED_LABEL, joined(&after.removed)),
        ];
        match self.manager.scale_service(sid, running, &labels).await {
            Err(Error::NotFound(_)) => Ok(()),
            r => r,
        }
    }
}

/// A slot of a service as its tasks say: `None` when the deploy engine removed it.
pub(super) fn found(svc: &ServiceInfo, tasks: &[TaskInfo], slot: u64) -> Option<Found> {
    let slots = Slots::of(svc);
    if slot == 0 || slot > slots.replicas || slots.removed.contains(&slot) {
        return None;
    }
    // Latest first: the slot's current task, and the one it replaced.
    let mut mine = tasks.iter().filter(|t| t.slot.unwrap_or(1) == slot);
    let latest = mine.clone().next();
    let current = mine.clone().find(|t| t.desired_running);
    let previous_failed = mine
        .find(|t| !t.desired_running)
        .filter(|t| t.state == "failed");
    let state = match current {
        _ if slots.stopped.contains(&slot) => ProcessState::Exited {
            code: None,
            oom: false,
        },
        None if svc.replicas == 0 => ProcessState::Exited {
            code: None,
            oom: false,
        },
        // A run-once task that ended is no longer meant to run, and nothing replaces it.
        None if !svc.restarts => latest.map_or(ProcessState::Starting, |t| task_state(t, None)),
        None => ProcessState::Starting,
        Some(t) => task_state(t, previous_failed),
    };
    let endpoint_parts = current.and_then(|t| Some((t.node_id.clone()?, t.published_port?)));
    Some(Found {
        status: ProcessStatus {
            id: slots.id(&svc.id, slot),
            app: svc.labels.get(LABEL_APP).cloned(),
            release: svc.labels.get(LABEL_RELEASE).and_then(|r| r.parse().ok()),
            process: process_label(svc, slot),
            state,
            endpoint: None,
            direct: None,
        },
        endpoint_parts,
    })
}

/// What [`Swarm::status_of`] found: the status, and the task's node and port.
pub(super) struct Found {
    pub(super) status: ProcessStatus,
    pub(super) endpoint_parts: Option<(String, u16)>,
}

fn task_state(t: &TaskInfo, previous_failed: Option<&TaskInfo>) -> ProcessState {
    match t.state.as_str() {
        "running" => ProcessState::Running,
        "complete" | "failed" | "shutdown" | "rejected" | "orphaned" | "remove" => {
            ProcessState::Exited {
                code: t.exit_code,
                oom: false,
            }
        }
        _ => match previous_failed {
            Some(p) => ProcessState::Restarting {
                code: p.exit_code,
                oom: false,
            },
            None => ProcessState::Starting,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(labels: &[(&str, &str)], replicas: i64) -> ServiceInfo {
        ServiceInfo {
            id: "s1".into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            replicas,
            image: "img".into(),
            restarts: true,
        }
    }

    fn task(slot: u64, state: &str, desired_running: bool, index: u64) -> TaskInfo {
        TaskInfo {
            id: format!("t{index}"),
            service_id: "s1".into(),
            node_id: Some(format!("node{slot}")),
            state: state.into(),
            desired_running,
            published_port: Some(30000 + slot as u16),
            index,
            slot: Some(slot),
            ..Default::default()
        }
    }

    #[test]
    fn slots_come_from_the_services_labels() {
        let svc = service(
            &[
                (REPLICAS_LABEL, "3"),
                (STOPPED_LABEL, "1,2"),
                (REMOVED_LABEL, "2"),
                (LABEL_PROCESS, "web.1"),
            ],
            1,
        );
        let slots = Slots::of(&svc);
        assert_eq!(slots.replicas, 3);
        assert_eq!(slots.running(), 1);
        assert_eq!(slots.id("s1", 3), "swarm:s1/3");
        assert_eq!(process_label(&svc, 3).as_deref(), Some("web.3"));
        // A service from before sets: one process, its id without a slot.
        let old = service(&[(LABEL_PROCESS, "run.17")], 1);
        assert_eq!(Slots::of(&old).id("s1", 1), "swarm:s1");
        assert_eq!(process_label(&old, 1).as_deref(), Some("run.17"));
    }

    #[test]
    fn a_slot_is_its_current_task_and_a_removed_one_is_gone() {
        let svc = service(
            &[
                (REPLICAS_LABEL, "3"),
                (REMOVED_LABEL, "3"),
                (STOPPED_LABEL, "3"),
            ],
            2,
        );
        // Slot 2's first task was on a node that died; the swarm runs it again elsewhere.
        let tasks = vec![
            task(2, "starting", true, 9),
            task(2, "running", false, 5),
            task(1, "running", true, 4),
        ];
        let one = found(&svc, &tasks, 1).unwrap();
        assert_eq!(one.status.state, ProcessState::Running);
        assert_eq!(one.endpoint_parts, Some(("node1".into(), 30001)));
        let two = found(&svc, &tasks, 2).unwrap();
        assert_eq!(two.status.state, ProcessState::Starting);
        assert_eq!(two.status.id, "swarm:s1/2");
        assert!(found(&svc, &tasks, 3).is_none());
        assert!(found(&svc, &tasks, 4).is_none());
    }

    #[test]
    fn a_stopped_slot_has_exited() {
        let svc = service(&[(REPLICAS_LABEL, "2"), (STOPPED_LABEL, "1,2")], 0);
        let s = found(&svc, &[], 1).unwrap();
        assert!(matches!(s.status.state, ProcessState::Exited { .. }));
    }

    #[test]
    fn a_run_once_task_that_ended_has_exited_with_its_code() {
        let mut svc = service(&[(REPLICAS_LABEL, "1")], 1);
        svc.restarts = false;
        let mut done = task(1, "complete", false, 7);
        done.exit_code = Some(3);
        let s = found(&svc, &[done.clone()], 1).unwrap();
        assert_eq!(
            s.status.state,
            ProcessState::Exited {
                code: Some(3),
                oom: false
            }
        );
        // Not yet scheduled: starting.
        let s = found(&svc, &[], 1).unwrap();
        assert_eq!(s.status.state, ProcessState::Starting);
        // A restarting service's ended task is about to be replaced: starting, not exited.
        svc.restarts = true;
        let s = found(&svc, &[done], 1).unwrap();
        assert_eq!(s.status.state, ProcessState::Starting);
    }
}
