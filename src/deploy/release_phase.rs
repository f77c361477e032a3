//! The release phase: the Procfile's `release:` command runs once from the new image with the
//! new config, after the build and before the switch (migrations, asset uploads). Its output
//! goes to the pusher; a non-zero exit or running past the deploy timeout rejects the release
//! while the old one keeps serving.

use super::control::SharedAttempt;
use super::{Deployer, Reporter};
use crate::domain::{Error, Instance, RELEASE, Release, Result};
use crate::locks::lock;
use crate::runtime::ProcessState;
use futures_util::StreamExt;
use std::time::Duration;

impl Deployer {
    /// Runs `release`'s release command, if it has one, to completion.
    pub(super) async fn release_phase(
        &self,
        app: &Instance,
        release: &Release,
        rep: &Reporter,
        attempt: &SharedAttempt,
    ) -> Result<()> {
        let Some(command) = &release.release_command else {
            return Ok(());
        };
        rep.line(format!("-----> Running release command: {command}"));
        let spec = Self::process_spec(app, release, RELEASE, 1, Some(command))?;
        let limit = self.0.settings.timeout;
        let ran = self
            .run_to_end(spec, limit, attempt, |line| {
                rep.line(format!("       {line}"))
            })
            .await;
        let outcome = match ran {
            Ok((_, 0)) => Ok(()),
            Ok((_, code)) => Err(Error::DeployFailed(format!(
                "the release command failed (exit code {code}); v{} was not deployed",
                release.version
            ))),
            Err(Error::DeployFailed(why)) => Err(Error::DeployFailed(format!(
                "the release command {why}; v{} was not deployed",
                release.version
            ))),
            Err(e) => Err(e),
        };
        if outcome.is_ok() {
            rep.line("-----> Release command succeeded");
        }
        outcome
    }

    /// Runs `spec` once to completion (no restart), passing each line of its output to
    /// `output`, and removes it; its id and exit code. Past `limit` it is removed and the run
    /// fails. The process is recorded in `attempt` while it runs.
    pub(super) async fn run_to_end(
        &self,
        mut spec: crate::runtime::ProcessSpec,
        limit: Duration,
        attempt: &SharedAttempt,
        mut output: impl FnMut(String),
    ) -> Result<(String, i64)> {
        spec.once = true;
        let id = self.0.runtime.start(&spec).await?;
        lock(attempt).processes.push(id.clone());
        let mut lines = self.0.runtime.logs(&id, None, true);
        let streamed = tokio::time::timeout(limit, async {
            while let Some(line) = lines.next().await {
                output(line?);
            }
            Ok::<_, Error>(())
        })
        .await;
        let outcome = match streamed {
            Err(_) => Err(Error::DeployFailed(format!(
                "ran longer than {} s",
                limit.as_secs()
            ))),
            Ok(Err(e)) => Err(e),
            Ok(Ok(())) => self.exit_code(&id).await,
        };
        // Done either way: a failure's undo would remove it too, a success's would not.
        let _ = self.0.runtime.remove(&id).await;
        outcome.map(|code| (id, code))
    }

    /// The exit code of a process whose output has ended (it may take a moment to be
    /// recorded as exited).
    async fn exit_code(&self, id: &str) -> Result<i64> {
        for _ in 0..100 {
            match self.0.runtime.status(id).await? {
                Some(s) => {
                    if let ProcessState::Exited { code, oom } = s.state {
                        if oom {
                            return Err(Error::DeployFailed(
                                "was killed for exceeding the app's memory limit".into(),
                            ));
                        }
                        return Ok(code.unwrap_or(-1));
                    }
                }
                None => return Err(Error::DeployFailed("vanished before it ended".into())),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(Error::DeployFailed(
            "ended its output but did not exit".into(),
        ))
    }
}
