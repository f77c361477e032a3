//! The end every change of what serves an app goes through: start the release's process through
//! the runtime, health-check it while the old one keeps serving, make it current in one store
//! transaction, point the route table at it, and retire the old process after a grace period.

use super::control::SharedAttempt;
use super::report::shown;
use super::{Deployer, RETIRE_GRACE, Reporter, STOP_GRACE, app_in, health, supersede};
use crate::domain::{
    self, AuditRecord, BuildStatus, DeployedProcess, Deployment, Error, Instance, InstanceStatus,
    Release, Result, WEB,
};
use crate::locks;
use crate::metrics::Phase;
use crate::routing::Target;
use crate::runtime::{ProcessSpec, ProcessState};
use futures_util::StreamExt;
use locks::lock;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

/// What an app's hosts say while its formation runs no `web` process.
pub(super) const SCALED_TO_ZERO: &str = "scaled to zero (no web process)";

/// What the switch records besides the new processes.
#[derive(Debug, Clone, Copy)]
pub(super) enum Record {
    /// A new release, from a build that now succeeded (its log is the reporter's).
    Built(u64),
    /// A new release made of an earlier one's image (rollback, config change).
    Release,
    /// The current release again, in a new process (restart, start, reconcile).
    Current,
}

/// Old processes in their grace period: reconcile leaves them alone.
#[derive(Default)]
pub(super) struct Retiring(Mutex<HashSet<String>>);

impl Retiring {
    pub fn snapshot(&self) -> HashSet<String> {
        lock(&self.0).clone()
    }
}

/// A process of a new set, started and passed its check; `endpoint` is where the router
/// reaches a `web` replica.
struct Launched {
    process: DeployedProcess,
    endpoint: Option<SocketAddr>,
}

impl Deployer {
    /// Starts `release` as a new set of processes (its formation), health-checks each and
    /// switches to them; the processes serving before are retired. A failure leaves the
    /// previous release serving. `audit`, when given, is written in the switch's transaction
    /// (for a new release, an empty detail becomes the release's number and description).
    pub(super) async fn roll_out(
        &self,
        app: &Instance,
        release: &Release,
        record: Record,
        rep: &Reporter,
        attempt: &SharedAttempt,
        audit: Option<AuditRecord>,
    ) -> Result<()> {
        self.ensure_release_image(app, release, rep).await?;
        // Timed only when there is a command: a phase that does nothing is no sample.
        if !matches!(record, Record::Current) && release.release_command.is_some() {
            self.timed(
                Phase::ReleasePhase,
                self.release_phase(app, release, rep, attempt),
            )
            .await?;
        }
        let set = self.launch(app, release, rep, attempt).await?;
        self.timed(
            Phase::Switch,
            self.switch(app, release, record, set, rep, attempt, audit),
        )
        .await
    }

    /// Starts a new set of the app's current release and switches to it: a restart with no
    /// gap, also how a changed set of volumes or a new formation reaches a running app.
    pub(super) async fn relaunch_current(
        &self,
        app: &Instance,
        attempt: &SharedAttempt,
        audit: Option<AuditRecord>,
    ) -> Result<()> {
        let release = self.current_release(app)?;
        self.roll_out(
            app,
            &release,
            Record::Current,
            &Reporter::silent(),
            attempt,
            audit,
        )
        .await
    }

    /// What one process of `release` runs: its command, `PORT` and the config, limits and
    /// volumes.
    pub(super) fn process_spec(
        app: &Instance,
        release: &Release,
        kind: &str,
        replica: u64,
        command: Option<&str>,
    ) -> Result<ProcessSpec> {
        let mut env = vec![("PORT".to_string(), app.port.to_string())];
        env.extend(release.env.iter().map(|(k, v)| (k.to_string(), v.clone())));
        let command = match command {
            Some(c) => Some(
                domain::split_command(c)
                    .ok_or_else(|| {
                        Error::DeployFailed(format!("the command of '{kind}' does not parse: {c}"))
                    })?
                    .into_iter()
                    .map(|arg| expand_vars(&arg, &env))
                    .collect(),
            ),
            None => None,
        };
        Ok(ProcessSpec {
            app: app.name.clone(),
            release: release.version,
            kind: kind.to_string(),
            replica,
            replicas: 1,
            command,
            once: false,
            node: app.node_id,
            image: release.image.clone(),
            env,
            port: app.port,
            memory_mb: app.memory_mb,
            cpu: app.cpu,
            volumes: app
                .volumes
                .iter()
                .map(|v| (v.name.to_string(), v.path.to_string()))
                .collect(),
            read_only_rootfs: app.read_only_rootfs,
        })
    }

    /// Starts every process of `release`'s formation and waits until each passes its check:
    /// `web` replicas the health check, the others running. The processes are recorded in
    /// `attempt`, so a failure removes them.
    async fn launch(
        &self,
        app: &Instance,
        release: &Release,
        rep: &Reporter,
        attempt: &SharedAttempt,
    ) -> Result<Vec<Launched>> {
        let scales = domain::scales(&release.processes, &app.formation);
        let mut started = Vec::new();
        for scale in &scales {
            for replica in 1..=scale.replicas {
                let mut spec = Self::process_spec(
                    app,
                    release,
                    &scale.kind,
                    replica.into(),
                    scale.command.as_deref(),
                )?;
                spec.replicas = scale.replicas.into();
                let id = self.0.runtime.start(&spec).await?;
                lock(attempt).processes.push(id.clone());
                started.push(DeployedProcess {
                    kind: scale.kind.clone(),
                    replica,
                    id,
                });
            }
        }
        let several = started.len() > 1;
        if several {
            let names: Vec<String> = started.iter().map(DeployedProcess::label).collect();
            rep.line(format!("-----> Starting {}", names.join(", ")));
        }
        let checks = started.into_iter().map(|process| async move {
            let label = if several {
                process.label()
            } else {
                String::new()
            };
            let endpoint = if process.kind == WEB {
                Some(self.healthy_endpoint(app, &process.id, &label, rep).await?)
            } else {
                self.running(&process, rep).await?;
                None
            };
            Ok::<_, Error>(Launched { process, endpoint })
        });
        futures_util::future::try_join_all(checks).await
    }

    /// Waits until a process nothing routes to runs (it has no health check of its own); one
    /// that exits instead fails the deploy with its last output.
    async fn running(&self, process: &DeployedProcess, rep: &Reporter) -> Result<()> {
        let started = std::time::Instant::now();
        loop {
            let status = self.0.runtime.status(&process.id).await?.ok_or_else(|| {
                Error::DeployFailed(format!("{} disappeared as it started", process.label()))
            })?;
            match status.state {
                ProcessState::Running => {
                    rep.line(format!("-----> {} is running", process.label()));
                    return Ok(());
                }
                ProcessState::Starting if started.elapsed() < self.0.settings.health_timeout => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                state => {
                    let e = Error::DeployFailed(format!(
                        "{} did not start: {state:?}",
                        process.label()
                    ));
                    self.show_last_output(&process.id, &e, rep).await;
                    return Err(e);
                }
            }
        }
    }

    /// Waits until `process` passes the app's health check, and returns where the router reaches
    /// it. On failure the pusher sees the process's last output.
    pub(super) async fn healthy_endpoint(
        &self,
        app: &Instance,
        process: &str,
        label: &str,
        rep: &Reporter,
    ) -> Result<SocketAddr> {
        let checked = self
            .timed(
                Phase::HealthCheck,
                health::wait_healthy(
                    self.0.runtime.as_ref(),
                    process,
                    &app.health_path,
                    app.port,
                    self.0.settings.health_timeout,
                    rep,
                ),
            )
            .await
            .and_then(|status| {
                status
                    .endpoint
                    .ok_or_else(|| Error::internal("the new process has no published port"))
            });
        match checked {
            Ok(endpoint) => {
                rep.line(if label.is_empty() {
                    "-----> Health check passed".to_string()
                } else {
                    format!("-----> Health check passed ({label})")
                });
                Ok(endpoint)
            }
            Err(e) => {
                self.show_last_output(process, &e, rep).await;
                Err(e)
            }
        }
    }

    /// Shows the pusher why a new process failed, with its last output.
    async fn show_last_output(&self, process: &str, e: &Error, rep: &Reporter) {
        rep.line(format!(" !     {}", shown(e)));
        rep.line(" !     Last output of the new process:");
        let mut tail = self.0.runtime.logs(process, Some(30), false);
        let mut any = false;
        while let Ok(Some(Ok(line))) =
            tokio::time::timeout(Duration::from_secs(2), tail.next()).await
        {
            rep.line(format!(" !     | {line}"));
            any = true;
        }
        if !any {
            rep.line(" !     | (no output)");
        }
    }

    /// Makes a healthy set current: one store transaction, then the route table, then the
    /// previous processes are retired after a grace period.
    #[allow(clippy::too_many_arguments)]
    async fn switch(
        &self,
        app: &Instance,
        release: &Release,
        record: Record,
        set: Vec<Launched>,
        rep: &Reporter,
        attempt: &SharedAttempt,
        audit: Option<AuditRecord>,
    ) -> Result<()> {
        let name = app.name.clone();
        let web: Vec<SocketAddr> = set.iter().filter_map(|l| l.endpoint).collect();
        let deployment = Deployment {
            app: name.clone(),
            release: release.version,
            processes: set.into_iter().map(|l| l.process).collect(),
        };
        let current = deployment.clone();
        let release = release.clone();
        let log = matches!(record, Record::Built(_)).then(|| rep.text());
        lock(attempt).switching = true;
        let port = app.port;
        let previous = self
            .0
            .store
            .write_async(move |w| {
                let mut inst = w
                    .instance(&name)?
                    .ok_or_else(|| Error::NotFound(format!("app '{name}' was deleted")))?;
                if !matches!(record, Record::Current) {
                    supersede(w, &mut inst, &release)?;
                }
                if let (Record::Built(id), Some(log)) = (record, &log) {
                    if let Some(mut b) = w.build(id)? {
                        b.status = BuildStatus::Succeeded;
                        b.release = Some(release.version);
                        b.finished_at = Some(domain::now());
                        w.put_build(&b)?;
                    }
                    w.put_build_log(id, log)?;
                }
                let previous = w.deployment(&name)?;
                w.put_deployment(&deployment)?;
                inst.release = Some(release.version);
                inst.status = InstanceStatus::Running;
                // The processes now serving listen where they were started to (an image app's
                // deploy may have chosen the port its image exposes).
                inst.port = port;
                w.put_instance(&inst)?;
                if let Some(a) = audit {
                    w.audit(described(a, &release, record))?;
                }
                Ok(previous)
            })
            .await?;
        lock(attempt).commit();
        self.0
            .routes
            .set_app(&app.name, Target::serving_or(web, SCALED_TO_ZERO));
        for old in previous.iter().flat_map(|p| p.ids()) {
            if !current.contains(old) {
                self.retire(old.to_string());
            }
        }
        Ok(())
    }

    /// Stops and removes an old process after the grace period, in the background.
    fn retire(&self, process: String) {
        lock(&self.0.retiring.0).insert(process.clone());
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(RETIRE_GRACE).await;
            let _ = this.0.runtime.stop(&process, STOP_GRACE).await;
            if let Err(e) = this.0.runtime.remove(&process).await {
                tracing::warn!(%process, error = %e, "cannot remove a retired process; reconcile will");
            }
            lock(&this.0.retiring.0).remove(&process);
        });
    }

    /// Records a release of an app that is not running: it takes effect at the next start. The
    /// stopped process of the release it replaces is removed.
    pub(super) async fn record_offline_release(
        &self,
        app: &Instance,
        release: Release,
        audit: Option<AuditRecord>,
    ) -> Result<()> {
        let name = app.name.clone();
        let old = self
            .0
            .store
            .write_async(move |w| {
                let mut i = app_in(w, &name)?;
                supersede(w, &mut i, &release)?;
                w.put_instance(&i)?;
                let old = w.deployment(&name)?;
                w.delete_deployment(&name)?;
                if let Some(a) = audit {
                    w.audit(described(a, &release, Record::Release))?;
                }
                Ok(old)
            })
            .await?;
        for id in old.iter().flat_map(|d| d.ids()) {
            self.0.runtime.remove(id).await?;
        }
        Ok(())
    }
}

/// An audit entry of a switch, its detail naming the new release when it has none yet.
fn described(mut audit: AuditRecord, release: &Release, record: Record) -> AuditRecord {
    if audit.detail.is_empty() {
        audit.detail = match record {
            Record::Current => format!("v{}", release.version),
            _ => format!("v{}: {}", release.version, release.description),
        };
    }
    audit
}

/// `arg` with `$NAME` and `${NAME}` replaced by the value of `NAME` in `env` (`PORT` and the
/// config vars), as a shell would, since no shell runs a Procfile command. Any other `$` stays
/// as written, for a shell the command itself starts (`sh -c '… $i …'`).
fn expand_vars(arg: &str, env: &[(String, String)]) -> String {
    let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let mut out = String::with_capacity(arg.len());
    let mut rest = arg;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, len) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        match lookup(name).filter(|_| !name.is_empty()) {
            Some(value) => {
                out.push_str(value);
                rest = &after[len..];
            }
            None => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::expand_vars;

    #[test]
    fn procfile_arguments_get_port_and_config_but_keep_other_dollars() {
        let env = vec![
            ("PORT".to_string(), "5000".to_string()),
            ("DB".to_string(), "pg://x".to_string()),
        ];
        assert_eq!(expand_vars("0.0.0.0:$PORT", &env), "0.0.0.0:5000");
        assert_eq!(expand_vars("${DB}/app", &env), "pg://x/app");
        assert_eq!(
            expand_vars("for i in 1 2; do echo $i; done", &env),
            "for i in 1 2; do echo $i; done"
        );
        assert_eq!(expand_vars("cost $5 ${NOPE} $", &env), "cost $5 ${NOPE} $");
    }
}
