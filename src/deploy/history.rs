//! What happened to an app, for the API and the console: its releases, its builds and their logs
//! (live while a build runs), and the output of the process serving it.

use super::Deployer;
use crate::domain::{Build, Error, Instance, Release, Result};
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

    /// The current process's output: the last `tail` lines, then new ones when `follow`.
    /// A followed stream outlives the process: when a deploy, rollback or restart replaces it,
    /// the stream carries on with the new process's output from its first line; it ends when
    /// the app's process stops without a successor.
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
        if self.0.runtime.status(&d.container).await?.is_none() {
            return Err(Error::NotFound(format!(
                "the container of '{}' is gone; restart the app",
                app.name
            )));
        }
        let stream = self.0.runtime.logs(&d.container, tail, follow);
        if !follow {
            return Ok(stream);
        }
        struct Follow {
            this: Deployer,
            app: String,
            process: String,
            stream: BoxStream<'static, Result<String>>,
        }
        let state = Follow {
            this: self.clone(),
            app: app.name.clone(),
            process: d.container,
            stream,
        };
        Ok(futures_util::stream::unfold(state, |mut f| async move {
            loop {
                if let Some(item) = f.stream.next().await {
                    return Some((item, f));
                }
                // This process's output ended: it stopped, or was retired after a switch (the
                // store names its successor before the old one is stopped).
                let next = match f.this.0.store.read(|r| r.deployment(&f.app)) {
                    Ok(Some(d)) if d.container != f.process => d.container,
                    _ => return None,
                };
                f.stream = f.this.0.runtime.logs(&next, None, true);
                f.process = next;
            }
        })
        .boxed())
    }
}
