//! A slot's output: its own task's lines, not its service's (a set's replicas are one service,
//! and its logs would give every replica's lines to each process). Following goes on with the
//! task that replaces it in the slot (the swarm restarted it, or moved it off a lost node), and
//! ends when the service goes, when it does not replace its tasks (a run-once service), or when
//! the deploy engine stopped the slot.

use super::slots::Slots;
use super::{Swarm, parse};
use crate::docker::{Engine, TaskInfo};
use crate::domain::Result;
use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};
use std::time::{Duration, Instant};

/// How long following waits for the task that replaces one whose output ended: the swarm
/// creates it at once and starts it after the 1 s restart delay.
const REPLACEMENT_WAIT: Duration = Duration::from_secs(10);
/// How often it looks meanwhile.
const LOOK_EVERY: Duration = Duration::from_millis(250);
/// A task's past output is read within this (a task on a lost node never answers).
const READ_LIMIT: Duration = Duration::from_secs(10);
/// How long a followed task's last lines may trail its end.
const LAST_LINES: Duration = Duration::from_millis(500);
/// The states of a task that has ended.
const ENDED: &[&str] = &[
    "complete", "failed", "shutdown", "rejected", "orphaned", "remove",
];

/// Resolves once `task` has ended or is gone, and [`LAST_LINES`] more. The swarm's followed log
/// streams never end by themselves, even when their task has.
async fn ended(manager: Engine, sid: String, task: String) {
    loop {
        tokio::time::sleep(LOOK_EVERY * 2).await;
        if let Ok(tasks) = manager.tasks(Some(&sid), None).await
            && tasks
                .iter()
                .find(|t| t.id == task)
                .is_none_or(|t| ENDED.contains(&t.state.as_str()))
        {
            break;
        }
    }
    tokio::time::sleep(LAST_LINES).await;
}

/// The slot's tasks, oldest first.
async fn slot_tasks(manager: &Engine, sid: &str, slot: u64) -> Result<Vec<TaskInfo>> {
    let mut tasks: Vec<TaskInfo> = manager
        .tasks(Some(sid), None)
        .await?
        .into_iter()
        .filter(|t| t.slot.unwrap_or(1) == slot)
        .collect();
    tasks.reverse();
    Ok(tasks)
}

/// The last `tail` lines of the slot: its current task's, after those of the task it replaced
/// (a crashed task's last words say why it was replaced).
async fn last_lines(
    manager: Engine,
    sid: String,
    slot: u64,
    tail: Option<u64>,
) -> Result<Vec<String>> {
    let tasks = slot_tasks(&manager, &sid, slot).await?;
    let mut lines = Vec::new();
    let recent = &tasks[tasks.len().saturating_sub(2)..];
    for (i, task) in recent.iter().enumerate() {
        let current = i + 1 == recent.len();
        let mut output = manager.task_logs(&task.id, tail, false);
        let read = tokio::time::timeout(READ_LIMIT, async {
            while let Some(line) = output.next().await {
                match line {
                    Ok(l) => lines.push(l),
                    Err(e) if current => return Err(e),
                    Err(_) => break,
                }
            }
            Ok(())
        })
        .await;
        if let Ok(Err(e)) = read {
            return Err(e);
        }
    }
    if let Some(n) = tail.and_then(|n| usize::try_from(n).ok()) {
        lines.drain(..lines.len().saturating_sub(n));
    }
    Ok(lines)
}

/// Following a slot: the task being streamed, and what is needed to find its successor.
struct Follow {
    manager: Engine,
    sid: String,
    slot: u64,
    tail: Option<u64>,
    /// The task whose output is being streamed (or was, last).
    task: Option<String>,
    output: Option<BoxStream<'static, Result<String>>>,
}

/// The task of the slot to stream next: its latest, when it is not `last`, the one streamed
/// last. `None` when no other comes.
async fn next_task(
    manager: &Engine,
    sid: &str,
    slot: u64,
    last: Option<&str>,
) -> Result<Option<String>> {
    let give_up = Instant::now() + REPLACEMENT_WAIT;
    loop {
        let Some(svc) = manager.service(sid).await? else {
            return Ok(None);
        };
        let tasks = slot_tasks(manager, sid, slot).await?;
        match tasks.last() {
            Some(t) if Some(t.id.as_str()) != last => return Ok(Some(t.id.clone())),
            _ if last.is_some() && (!svc.restarts || Slots::of(&svc).stopped.contains(&slot)) => {
                return Ok(None);
            }
            _ if Instant::now() >= give_up => return Ok(None),
            _ => tokio::time::sleep(LOOK_EVERY).await,
        }
    }
}

impl Swarm {
    /// The output of the slot's task (see the module doc).
    pub fn logs(
        &self,
        id: &str,
        tail: Option<u64>,
        follow: bool,
    ) -> BoxStream<'static, Result<String>> {
        let (sid, slot) = parse(id);
        let (sid, manager) = (sid.to_string(), self.manager.clone());
        if !follow {
            return stream::once(last_lines(manager, sid, slot, tail))
                .flat_map(|lines| match lines {
                    Ok(lines) => stream::iter(lines.into_iter().map(Ok)).boxed(),
                    Err(e) => stream::iter([Err(e)]).boxed(),
                })
                .boxed();
        }
        let start = Follow {
            manager,
            sid,
            slot,
            tail,
            task: None,
            output: None,
        };
        stream::unfold(Some(start), |f| async move {
            let mut f = f?;
            loop {
                if let Some(output) = f.output.as_mut() {
                    if let Some(line) = output.next().await {
                        return Some((line, Some(f)));
                    }
                    f.output = None;
                }
                match next_task(&f.manager, &f.sid, f.slot, f.task.as_deref()).await {
                    Ok(Some(task)) => {
                        // The first task from its last `tail` lines; a successor from its start.
                        let tail = if f.task.is_none() { f.tail } else { None };
                        let end = ended(f.manager.clone(), f.sid.clone(), task.clone());
                        let output = f.manager.task_logs(&task, tail, true).take_until(end);
                        f.output = Some(output.boxed());
                        f.task = Some(task);
                    }
                    Ok(None) => return None,
                    Err(e) => return Some((Err(e), None)),
                }
            }
        })
        .boxed()
    }
}
