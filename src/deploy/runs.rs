//! One-off runs (`ssh … run APP -- COMMAND`, `POST /v1/instances/{name}/runs`): a command in a
//! new process of the app's current release, with its config, volumes and memory limit, for at
//! most `run_timeout`.
//!
//! A run is recorded as running (one transaction) before its process starts, so reconcile leaves
//! its process (`run.<id>`) alone; when it ends, the process is removed and the record gets the
//! exit code and the output's last 64 KiB. Runs still recorded as running when Scalefog starts
//! were cut short by its stop: they are marked interrupted and their processes removed.

use super::{Deployer, STOP_GRACE};
use crate::accounts::Principal;
use crate::domain::{
    self, AuditAction, Error, Instance, MAX_RUNNING_RUNS_PER_APP, OutputTail, RUN, Result,
    RunRecord, RunStatus,
};
use crate::locks::lock;
use crate::runtime::{Output, ProcessState};
use crate::store::{Page, Slice};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::AsyncWrite;
use tokio::task::JoinHandle;

/// Output lines read back from the log of a run whose watcher is gone.
const RECOVERED_LINES: u64 = 2000;

/// The terminal an SSH client asked for (`ssh -t`).
#[derive(Debug, Clone)]
pub struct Terminal {
    /// `TERM` inside the run.
    pub term: String,
    pub cols: u16,
    pub rows: u16,
}

/// What this process knows of a run while it runs.
#[derive(Default)]
struct Live {
    tail: Mutex<OutputTail>,
    timed_out: AtomicBool,
    interrupted: AtomicBool,
}

/// The runs this process is watching, by id: their output so far, and which runs recorded as
/// running are not leftovers of an earlier start.
#[derive(Default)]
pub(super) struct LiveRuns(Mutex<HashMap<u64, Arc<Live>>>);

/// A run whose streams its caller holds: it writes `input`, drains `output` to its end, then
/// calls [`RunHandle::finish`].
pub struct AttachedRun {
    pub run: RunHandle,
    /// Everything the command writes, until it exits.
    pub output: BoxStream<'static, Result<Output>>,
    /// Its stdin, when asked for; shutting it down is the end of input.
    pub input: Option<Pin<Box<dyn AsyncWrite + Send>>>,
}

/// A started run, to resize, interrupt and finish.
pub struct RunHandle {
    pub record: RunRecord,
    process: String,
    live: Arc<Live>,
    /// Stops the process at `run_timeout`.
    deadline: JoinHandle<()>,
    deployer: Deployer,
}

impl RunHandle {
    /// Follows the size of the caller's terminal.
    pub async fn resize(&self, cols: u16, rows: u16) -> Result<()> {
        self.deployer
            .0
            .runtime
            .resize(&self.process, cols, rows)
            .await
    }

    /// Stops the run because its caller went away; its output then ends.
    pub async fn interrupt(&self) {
        self.live.interrupted.store(true, Ordering::SeqCst);
        if let Err(e) = self
            .deployer
            .0
            .runtime
            .stop(&self.process, STOP_GRACE)
            .await
        {
            tracing::warn!(run = self.record.id, error = %e, "cannot stop an abandoned run");
        }
    }

    /// Waits for the command to exit, removes its process and records how it ended.
    pub async fn finish(self) -> Result<RunRecord> {
        let runtime = &self.deployer.0.runtime;
        let waited = runtime.wait(&self.process).await;
        self.deadline.abort();
        let oom = matches!(
            runtime.status(&self.process).await,
            Ok(Some(s)) if matches!(s.state, ProcessState::Exited { oom: true, .. })
        );
        if let Err(e) = runtime.remove(&self.process).await {
            tracing::warn!(run = self.record.id, error = %e, "cannot remove a finished run; reconcile will");
        }
        let mut rec = self.record.clone();
        rec.finished_at = Some(domain::now());
        {
            let tail = lock(&self.live.tail);
            rec.output = tail.text();
            rec.output_truncated = tail.truncated;
        }
        let limit = self.deployer.0.settings.run_timeout.as_secs();
        match waited {
            Ok(code) => {
                rec.exit_code = Some(code);
                (rec.status, rec.error) = if self.live.timed_out.load(Ordering::SeqCst) {
                    let why = format!("it ran longer than run_timeout ({limit} s) and was stopped");
                    (RunStatus::TimedOut, Some(why))
                } else if self.live.interrupted.load(Ordering::SeqCst) {
                    let why = "its SSH session ended, so it was stopped".to_string();
                    (RunStatus::Interrupted, Some(why))
                } else if oom {
                    let why = format!(
                        "it was killed for exceeding the app's memory limit ({} MB)",
                        self.deployer.instance_memory(&rec.app)
                    );
                    (RunStatus::Failed, Some(why))
                } else if code == 0 {
                    (RunStatus::Succeeded, None)
                } else {
                    (RunStatus::Failed, None)
                };
            }
            Err(e) => {
                rec.status = RunStatus::Interrupted;
                rec.error = Some(format!("its end could not be observed: {e}"));
            }
        }
        self.deployer.record_finished(&rec).await;
        lock(&self.deployer.0.live_runs.0).remove(&rec.id);
        Ok(rec)
    }
}

impl Deployer {
    /// Starts `command` in a new process of the app's current release, attached to the caller:
    /// with its stdin when `stdin`, in a terminal when `terminal`.
    pub async fn run_attached(
        &self,
        app: &Instance,
        who: &Principal,
        command: Vec<String>,
        terminal: Option<Terminal>,
        stdin: bool,
    ) -> Result<AttachedRun> {
        check_command(&command)?;
        let app = self.instance(&app.name)?;
        let release = self.current_release(&app)?;
        let record = RunRecord {
            id: 0,
            app: app.name.clone(),
            release: release.version,
            command: command.clone(),
            user: who.user.username.clone(),
            detached: !stdin && terminal.is_none(),
            tty: terminal.is_some(),
            status: RunStatus::Running,
            exit_code: None,
            error: None,
            started_at: domain::now(),
            finished_at: None,
            output: String::new(),
            output_truncated: false,
        };
        let who = who.clone();
        let record = self
            .0
            .store
            .write_async(move |w| {
                let mut record = record;
                let app = super::app_in(w, &record.app)?;
                if app.status == domain::InstanceStatus::Deleting {
                    return Err(Error::Conflict(format!("'{}' is being deleted", app.name)));
                }
                record.id = w.next_id("run")?;
                w.add_run(&record, MAX_RUNNING_RUNS_PER_APP)?;
                w.audit(who.audit(
                    AuditAction::AppRun,
                    Some(&record.app),
                    format!(
                        "run {} of v{}: {}",
                        record.id,
                        record.release,
                        record.command.join(" ")
                    ),
                ))?;
                Ok(record)
            })
            .await?;
        let live = Arc::new(Live::default());
        lock(&self.0.live_runs.0).insert(record.id, live.clone());
        let started = self
            .start_run_process(&app, &release, &record, command, terminal.as_ref(), stdin)
            .await;
        let attached = match started {
            Ok(a) => a,
            Err(e) => {
                let mut failed = record.clone();
                failed.status = RunStatus::Failed;
                failed.error = Some(format!("it could not start: {e}"));
                failed.finished_at = Some(domain::now());
                self.record_finished(&failed).await;
                lock(&self.0.live_runs.0).remove(&record.id);
                return Err(e);
            }
        };
        let process = attached.id.clone();
        if let Some(t) = terminal.as_ref().filter(|t| t.cols > 0 && t.rows > 0) {
            // Before any input reaches the command, so that input sent after a size change
            // finds the terminal at that size.
            if let Err(e) = self.0.runtime.resize(&process, t.cols, t.rows).await {
                tracing::warn!(run = record.id, error = %e, "cannot size a run's terminal");
            }
        }
        let deadline = {
            let (this, process, live) = (self.clone(), process.clone(), live.clone());
            tokio::spawn(async move {
                tokio::time::sleep(this.0.settings.run_timeout).await;
                live.timed_out.store(true, Ordering::SeqCst);
                if let Err(e) = this.0.runtime.stop(&process, STOP_GRACE).await {
                    tracing::warn!(%process, error = %e, "cannot stop a run past run_timeout");
                }
            })
        };
        let tail = live.clone();
        let output = attached
            .output
            .inspect(move |item| {
                if let Ok(Output::Stdout(b) | Output::Stderr(b)) = item {
                    lock(&tail.tail).push(b);
                }
            })
            .boxed();
        Ok(AttachedRun {
            run: RunHandle {
                record,
                process,
                live,
                deadline,
                deployer: self.clone(),
            },
            output,
            input: stdin.then_some(attached.input),
        })
    }

    /// Starts `command` as a run that nobody attaches to: its output is kept with its record,
    /// which is returned at once (status running).
    pub async fn run_detached(
        &self,
        app: &Instance,
        who: &Principal,
        command: Vec<String>,
    ) -> Result<RunRecord> {
        let AttachedRun {
            run, mut output, ..
        } = self.run_attached(app, who, command, None, false).await?;
        let record = run.record.clone();
        tokio::spawn(async move {
            while let Some(item) = output.next().await {
                if let Err(e) = item {
                    tracing::warn!(run = run.record.id, error = %e, "lost a run's output");
                    break;
                }
            }
            if let Err(e) = run.finish().await {
                tracing::warn!(error = %e, "cannot record the end of a run");
            }
        });
        Ok(record)
    }

    /// Run `id` of `app`, with its output so far while it runs.
    pub fn run_of(&self, app: &str, id: u64) -> Result<RunRecord> {
        let mut rec = self
            .0
            .store
            .read(|r| r.run(id))?
            .filter(|r| r.app == app)
            .ok_or_else(|| Error::NotFound(format!("'{app}' has no run {id}")))?;
        if rec.status == RunStatus::Running
            && let Some(live) = lock(&self.0.live_runs.0).get(&id)
        {
            let tail = lock(&live.tail);
            rec.output = tail.text();
            rec.output_truncated = tail.truncated;
        }
        Ok(rec)
    }

    /// The app's runs, newest first.
    pub fn runs_of(&self, app: &str, slice: Slice) -> Result<Page<RunRecord>> {
        self.0.store.read(|r| r.runs_of(app, slice))
    }

    /// The process names (`run.<id>`) of the app's runs recorded as running: reconcile keeps
    /// them.
    pub(super) fn running_run_processes(&self, app: &str) -> Result<HashSet<String>> {
        Ok(self
            .0
            .store
            .read(|r| r.running_runs())?
            .into_iter()
            .filter(|r| r.app == app)
            .map(|r| format!("{RUN}.{}", r.id))
            .collect())
    }

    /// Runs recorded as running that no task of this process watches were cut short by a stop
    /// of Scalefog: each is marked interrupted, with what its log still holds, and its process
    /// removed. Called by reconcile at start.
    pub(super) async fn end_interrupted_runs(&self) -> Result<()> {
        let watched: HashSet<u64> = lock(&self.0.live_runs.0).keys().copied().collect();
        let orphans: Vec<RunRecord> = self
            .0
            .store
            .read(|r| r.running_runs())?
            .into_iter()
            .filter(|r| !watched.contains(&r.id))
            .collect();
        if orphans.is_empty() {
            return Ok(());
        }
        let processes = self.0.runtime.list(None).await?;
        for mut rec in orphans {
            let name = format!("{RUN}.{}", rec.id);
            let found = processes.iter().find(|p| {
                p.app.as_deref() == Some(&rec.app) && p.process.as_deref() == Some(&name)
            });
            let mut tail = OutputTail::default();
            if let Some(p) = found {
                if let ProcessState::Exited { code, .. } = p.state {
                    rec.exit_code = code;
                }
                let mut lines = self.0.runtime.logs(&p.id, Some(RECOVERED_LINES), false);
                while let Some(Ok(line)) = lines.next().await {
                    tail.push(line.as_bytes());
                    tail.push(b"\n");
                }
                self.0.runtime.remove(&p.id).await?;
            }
            rec.status = RunStatus::Interrupted;
            rec.error = Some("Scalefog stopped while it ran".into());
            rec.finished_at = Some(domain::now());
            rec.output = tail.text();
            rec.output_truncated = tail.truncated;
            tracing::info!(run = rec.id, app = %rec.app, "a run was interrupted by a stop");
            self.record_finished(&rec).await;
        }
        Ok(())
    }

    /// The process of run `record`, started attached.
    async fn start_run_process(
        &self,
        app: &Instance,
        release: &domain::Release,
        record: &RunRecord,
        command: Vec<String>,
        terminal: Option<&Terminal>,
        stdin: bool,
    ) -> Result<crate::runtime::Attached> {
        let mut spec = Self::process_spec(app, release, RUN, record.id, None)?;
        // The arguments as the caller gave them: their shell has expanded them already.
        spec.command = Some(command);
        spec.once = true;
        if let Some(t) = terminal {
            spec.env.push(("TERM".into(), t.term.clone()));
        }
        self.0
            .runtime
            .start_attached(&spec, stdin, terminal.is_some())
            .await
    }

    /// Writes a run's end (one transaction), unless its app is gone or going: a run ended by
    /// its app's deletion must not leave a record behind it.
    async fn record_finished(&self, rec: &RunRecord) {
        let rec = rec.clone();
        let id = rec.id;
        let written = self
            .0
            .store
            .write_async(move |w| match w.instance(&rec.app)? {
                Some(i) if i.status != domain::InstanceStatus::Deleting => w.put_run(&rec),
                _ => Ok(()),
            })
            .await;
        if let Err(e) = written {
            tracing::warn!(run = id, error = %e, "cannot record the end of a run");
        }
    }

    /// The app's memory limit, for messages.
    fn instance_memory(&self, app: &str) -> u32 {
        self.0
            .store
            .read(|r| r.instance(app))
            .ok()
            .flatten()
            .map_or(0, |i| i.memory_mb)
    }
}

/// A run's command: at least the program, no NUL byte (no process could receive it).
fn check_command(command: &[String]) -> Result<()> {
    if command.first().is_none_or(|p| p.is_empty()) {
        return Err(Error::invalid(
            "command",
            "a run needs a command: the program and its arguments",
        ));
    }
    if command.iter().any(|a| a.contains('\0')) {
        return Err(Error::invalid("command", "the command contains a NUL byte"));
    }
    Ok(())
}
