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
        let mut spec = Self::process_spec(app, release, RELEASE, 1, Some(command))?;
        spec.once = true;
        let id = self.0.runtime.start(&spec).await?;
        lock(attempt).processes.push(id.clone());
        let limit = self.0.settings.timeout;
        let mut output = self.0.runtime.logs(&id, None, true);
        let streamed = tokio::time::timeout(limit, async {
            while let Some(line) = output.next().await {
                match line {
                    Ok(line) => rep.line(format!("       {line}")),
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        })
        .await;
        let outcome = match streamed {
            Err(_) => Err(Error::DeployFailed(format!(
                "the release command ran longer than {} s; v{} was not deployed",
                limit.as_secs(),
                release.version
            ))),
            Ok(Err(e)) => Err(e),
            Ok(Ok(())) => self.exit_code(&id).await.and_then(|code| match code {
                0 => Ok(()),
                code => Err(Error::DeployFailed(format!(
                    "the release command failed (exit code {code}); v{} was not deployed",
                    release.version
                ))),
            }),
        };
        // Done either way: a failure's undo would remove it too, a success's would not.
        let _ = self.0.runtime.remove(&id).await;
        if outcome.is_ok() {
            rep.line("-----> Release command succeeded");
        }
        outcome
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
                                "the release command was killed for exceeding the app's memory limit"
                                    .into(),
                            ));
                        }
                        return Ok(code.unwrap_or(-1));
                    }
                }
                None => return Err(Error::DeployFailed("the release command vanished".into())),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(Error::DeployFailed(
            "the release command's output ended but it did not exit".into(),
        ))
    }
}
