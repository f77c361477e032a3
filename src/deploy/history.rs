//! What happened to an app, for the API and the console: its releases, its builds and their logs
//! (live while a build runs), and the output of the process serving it.

use super::Deployer;
use crate::domain::{Build, DeployedProcess, Deployment, Error, Instance, Release, Result};
use crate::store::{Page, Slice};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

impl Deployer {
    pub fn releases(&self, app: &Instance, slice: Slice) -> Result<Page<Release>> {
        self.0.store.read(|r| r.releases_of(&app.name, slice))
    }

    pub fn builds(&self, app: &Instance, slice: Slice) -> Result<Page<Build>> {
        self.0.store.read(|r| r.builds_of(&app.name, slice))
    }

    /// A build and its log (live while it runs).
    pub fn build_log(&self, app: &Instance, id: &str) -> Result<(Build, String)> {
        let not_found = || Error::NotFound(format!("'{}' has no build {id}", app.name));
        let id: u64 = id.trim().parse().map_err(|_| not_found())?;
        let build = self
            .0
            .store
            .read(|r| r.build(id))?
            .filter(|b| b.app == app.name)
            .ok_or_else(not_found)?;
        if let Some(text) = self.0.live_logs.get(id) {
            return Ok((build, text));
        }
        let log = self.0.store.read(|r| r.build_log(id))?.unwrap_or_default();
        Ok((build, log))
    }

    /// The current processes' output, each line prefixed with the process it comes from
    /// (`[web.1] `): the last `tail` lines of each, then new ones when `follow`. A followed
    /// stream outlives the processes: when a deploy, rollback, restart or scale replaces them,
    /// it carries on with the new set's output from its first line; it ends when the app's
    /// processes stop without successors.
    pub async fn logs(
        &self,
        app: &Instance,
        tail: Option<u64>,
        follow: bool,
    ) -> Result<BoxStream<'static, Result<String>>> {
        let d = self
            .0
            .store
            .read(|r| r.deployment(&app.name))?
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "'{}' has no container yet: push to deploy it",
                    app.name
                ))
            })?;
        // Fail early (503, 404) rather than inside the stream.
        let mut alive = Vec::with_capacity(d.processes.len());
        for p in &d.processes {
            if self.0.runtime.status(&p.id).await?.is_some() {
                alive.push(p.clone());
            }
        }
        if alive.is_empty() {
            return Err(Error::NotFound(format!(
                "the containers of '{}' are gone; restart the app",
                app.name
            )));
        }
        let stream = self.merged_logs(&alive, tail, follow);
        if !follow {
            return Ok(stream);
        }
        struct Follow {
            this: Deployer,
            app: String,
            processes: Deployment,
            stream: BoxStream<'static, Result<String>>,
        }
        let state = Follow {
            this: self.clone(),
            app: app.name.clone(),
            processes: d,
            stream,
        };
        Ok(futures_util::stream::unfold(state, |mut f| async move {
            loop {
                if let Some(item) = f.stream.next().await {
                    return Some((item, f));
                }
                // These processes' output ended: they stopped, or were retired after a switch
                // (the store names their successors before the old ones are stopped).
                let next = match f.this.0.store.read(|r| r.deployment(&f.app)) {
                    Ok(Some(d)) if d.processes != f.processes.processes => d,
                    _ => return None,
                };
                f.stream = f.this.merged_logs(&next.processes, None, true);
                f.processes = next;
            }
        })
        .boxed())
    }

    /// The output of `processes`, interleaved as it comes, each line marked with its process.
    fn merged_logs(
        &self,
        processes: &[DeployedProcess],
        tail: Option<u64>,
        follow: bool,
    ) -> BoxStream<'static, Result<String>> {
        futures_util::stream::select_all(processes.iter().map(|p| {
            let mark = format!("[{}] ", p.label());
            self.0
                .runtime
                .logs(&p.id, tail, follow)
                .map(move |line| line.map(|l| format!("{mark}{l}")))
        }))
        .boxed()
    }
}
