//! Scheduled jobs: each running app's current release's `app.json` cron jobs, run at the
//! minutes their schedules name (UTC) as one-off containers of that release (its image, config,
//! memory limit), removed when they end. A job whose previous run is still going is skipped,
//! and the skip is recorded; every run's times, exit code and output tail are kept.
//!
//! The scheduler reads its own clock, the system's shifted by an offset ([`CronClock`]), so a
//! test can move time forward instead of waiting for the next minute.

use super::Deployer;
use super::control::SharedAttempt;
use crate::domain::{
    self, CRON_OUTPUT_TAIL, CronJob, CronRun, CronStatus, Error, Instance, InstanceStatus, Release,
    Result,
};
use crate::locks::lock;
use crate::store::{Page, Slice};
use chrono::{DateTime, TimeZone, Utc};
use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// The process type cron runs are started as (`cron.1`).
pub const CRON: &str = "cron";

/// The scheduler's time: the system clock plus an offset, zero unless a test moves it.
#[derive(Default)]
pub struct CronClock {
    offset_secs: AtomicI64,
}

impl CronClock {
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::seconds(self.offset_secs.load(Ordering::Relaxed))
    }

    /// Moves the scheduler's time forward by `secs`.
    pub fn advance(&self, secs: i64) {
        self.offset_secs.fetch_add(secs, Ordering::Relaxed);
    }
}

/// The jobs running now, by app and job, so that an overlapping run is skipped.
#[derive(Default)]
pub(super) struct CronRunning(Mutex<HashSet<(String, CronJob)>>);

/// A job's schedule as the API shows it, with when it runs next.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CronJobView {
    pub command: String,
    pub schedule: String,
    /// RFC 3339, UTC.
    pub next_run_at: Option<String>,
}

impl Deployer {
    pub fn cron_clock(&self) -> &CronClock {
        &self.0.cron_clock
    }

    /// The app's jobs (of its current release) and its runs, newest first.
    pub fn cron(&self, app: &Instance, slice: Slice) -> Result<(Vec<CronJobView>, Page<CronRun>)> {
        let jobs = match app.release {
            Some(_) => self.current_release(app)?.cron,
            None => Vec::new(),
        };
        let now = self.0.cron_clock.now();
        let views = jobs
            .into_iter()
            .map(|j| CronJobView {
                next_run_at: j
                    .cron()
                    .ok()
                    .and_then(|c| c.find_next_occurrence(&now, false).ok())
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                command: j.command,
                schedule: j.schedule,
            })
            .collect();
        let runs = self.0.store.read(|r| r.cron_runs_of(&app.name, slice))?;
        Ok((views, runs))
    }

    /// Runs due jobs every minute until the task is dropped.
    pub async fn run_cron(self) {
        let at = domain::now();
        if let Err(e) = self.0.store.write(|w| {
            w.fail_running_cron_runs("\n(interrupted: scalefog stopped during the run)", at)
        }) {
            tracing::warn!(error = %e, "cannot close the cron runs a stop interrupted");
        }
        let mut last = minute_of(self.0.cron_clock.now());
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let minute = minute_of(self.0.cron_clock.now());
            if minute <= last {
                continue;
            }
            // Minutes missed while the machine slept are not caught up: the latest runs.
            last = minute;
            if let Err(e) = self.fire(minute) {
                tracing::warn!(error = %e, "cron: cannot read the apps' jobs");
            }
        }
    }

    /// Starts (or skips) every job due at `minute`.
    fn fire(&self, minute: DateTime<Utc>) -> Result<()> {
        let apps = self.0.store.read(|r| {
            r.instances_where(Slice::ALL, |i| {
                i.status == InstanceStatus::Running && i.release.is_some()
            })
        })?;
        for app in apps.items {
            let release = self.current_release(&app)?;
            for job in &release.cron {
                let due = job
                    .cron()
                    .and_then(|c| {
                        c.is_time_matching(&minute)
                            .map_err(|e| Error::internal(e.to_string()))
                    })
                    .unwrap_or(false);
                if due {
                    self.start_job(&app, &release, job.clone(), minute.timestamp());
                }
            }
        }
        Ok(())
    }

    /// Records the run and starts it in the background, or records it skipped while the same
    /// job still runs.
    fn start_job(&self, app: &Instance, release: &Release, job: CronJob, due_at: i64) {
        let key = (app.name.clone(), job.clone());
        let overlapping = !lock(&self.0.cron_running.0).insert(key.clone());
        let mut run = CronRun {
            id: 0,
            app: app.name.clone(),
            release: release.version,
            command: job.command.clone(),
            schedule: job.schedule.clone(),
            due_at,
            started_at: domain::now(),
            finished_at: None,
            status: CronStatus::Running,
            exit_code: None,
            output: String::new(),
        };
        if overlapping {
            run.status = CronStatus::Skipped;
            run.finished_at = Some(run.started_at);
            run.output = "skipped: the previous run of this job is still running".into();
        }
        let recorded = self.0.store.write(|w| {
            run.id = w.next_id("cron_run")?;
            w.put_cron_run(&run)
        });
        if let Err(e) = recorded {
            tracing::warn!(app = %app.name, error = %e, "cron: cannot record a run");
            if !overlapping {
                lock(&self.0.cron_running.0).remove(&key);
            }
            return;
        }
        if overlapping {
            tracing::info!(app = %app.name, command = %job.command, "cron: skipped, still running");
            return;
        }
        let (this, app, release) = (self.clone(), app.clone(), release.clone());
        tokio::spawn(async move {
            let finished = this.run_job(&app, &release, &job, run).await;
            lock(&this.0.cron_running.0).remove(&key);
            if let Err(e) = finished {
                tracing::warn!(app = %app.name, error = %e, "cron: cannot record a run's end");
            }
        });
    }

    async fn run_job(
        &self,
        app: &Instance,
        release: &Release,
        job: &CronJob,
        mut run: CronRun,
    ) -> Result<()> {
        let mut output = String::new();
        let ran = match Self::process_spec(app, release, CRON, 1, Some(&job.command)) {
            Ok(spec) => {
                let attempt = SharedAttempt::default();
                let r = self
                    .run_to_end(spec, self.0.settings.timeout, &attempt, |line| {
                        output.push_str(&line);
                        output.push('\n');
                        if output.len() > 2 * CRON_OUTPUT_TAIL {
                            output = tail(&output).to_string();
                        }
                    })
                    .await;
                if r.is_err() {
                    self.undo(&attempt).await;
                }
                r
            }
            Err(e) => Err(e),
        };
        run.output = tail(&output).to_string();
        run.finished_at = Some(domain::now());
        match ran {
            Ok((_, code)) => {
                run.exit_code = Some(code);
                run.status = if code == 0 {
                    CronStatus::Succeeded
                } else {
                    CronStatus::Failed
                };
            }
            Err(e) => {
                run.status = CronStatus::Failed;
                run.output.push_str(&format!("(the run {e})\n"));
            }
        }
        self.0
            .store
            .write_async(move |w| w.put_cron_run(&run))
            .await
    }
}

/// The start of the minute `t` is in.
fn minute_of(t: DateTime<Utc>) -> DateTime<Utc> {
    Utc.timestamp_opt(t.timestamp() - t.timestamp().rem_euclid(60), 0)
        .single()
        .unwrap_or(t)
}

/// The last [`CRON_OUTPUT_TAIL`] bytes of `s`, from a character boundary.
fn tail(s: &str) -> &str {
    let mut at = s.len().saturating_sub(CRON_OUTPUT_TAIL);
    while !s.is_char_boundary(at) {
        at += 1;
    }
    &s[at..]
}
