//! The runtime the deploy engine uses: plain containers on the local engine while the cluster is
//! off (the default, and nothing in Docker's swarm state is touched), swarm services once an
//! admin turned it on. Each process id says which one holds it, so the containers of apps
//! deployed before the cluster was turned on keep being managed until their next deploy.
//!
//! One-off runs with a terminal (`start_attached`) always run as a container on the local engine.

use super::swarm::{PREFIX, Swarm};
use super::{Attached, Containers, ProcessEvent, ProcessSpec, ProcessStatus, Runtime};
use crate::domain::Result;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use std::time::Duration;

#[derive(Clone)]
pub struct Placed {
    containers: Containers,
    swarm: Swarm,
}

impl Placed {
    pub fn new(containers: Containers, swarm: Swarm) -> Placed {
        Placed { containers, swarm }
    }

    pub fn swarm(&self) -> &Swarm {
        &self.swarm
    }
}

fn in_swarm(id: &str) -> bool {
    id.starts_with(PREFIX)
}

impl Runtime for Placed {
    fn start<'a>(&'a self, spec: &'a ProcessSpec) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            if self.swarm.enabled() {
                self.swarm.start(spec).await
            } else {
                self.containers.start(spec).await
            }
        })
    }

    fn status<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<ProcessStatus>>> {
        if in_swarm(id) {
            Box::pin(self.swarm.status(id))
        } else {
            self.containers.status(id)
        }
    }

    fn list<'a>(&'a self, app: Option<&'a str>) -> BoxFuture<'a, Result<Vec<ProcessStatus>>> {
        Box::pin(async move {
            let mut all = self.containers.list(app).await?;
            all.extend(self.swarm.list(app).await?);
            Ok(all)
        })
    }

    fn start_attached<'a>(
        &'a self,
        spec: &'a ProcessSpec,
        stdin: bool,
        tty: bool,
    ) -> BoxFuture<'a, Result<Attached>> {
        self.containers.start_attached(spec, stdin, tty)
    }

    fn resize<'a>(&'a self, id: &'a str, cols: u16, rows: u16) -> BoxFuture<'a, Result<()>> {
        self.containers.resize(id, cols, rows)
    }

    fn wait<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<i64>> {
        if in_swarm(id) {
            Box::pin(self.swarm.wait(id))
        } else {
            self.containers.wait(id)
        }
    }

    fn resume<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>> {
        if in_swarm(id) {
            Box::pin(self.swarm.resume(id))
        } else {
            self.containers.resume(id)
        }
    }

    fn stop<'a>(&'a self, id: &'a str, grace: Duration) -> BoxFuture<'a, Result<()>> {
        if in_swarm(id) {
            Box::pin(self.swarm.stop(id))
        } else {
            self.containers.stop(id, grace)
        }
    }

    fn remove<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>> {
        if in_swarm(id) {
            Box::pin(self.swarm.remove(id))
        } else {
            self.containers.remove(id)
        }
    }

    fn update_limits<'a>(
        &'a self,
        id: &'a str,
        memory_mb: u32,
        cpu: f64,
    ) -> BoxFuture<'a, Result<()>> {
        if in_swarm(id) {
            Box::pin(self.swarm.update_limits(id, memory_mb, cpu))
        } else {
            self.containers.update_limits(id, memory_mb, cpu)
        }
    }

    fn logs(
        &self,
        id: &str,
        tail: Option<u64>,
        follow: bool,
    ) -> BoxStream<'static, Result<String>> {
        if in_swarm(id) {
            self.swarm.logs(id, tail, follow)
        } else {
            self.containers.logs(id, tail, follow)
        }
    }

    fn events(&self) -> BoxStream<'static, Result<ProcessEvent>> {
        futures_util::stream::select(self.containers.events(), self.swarm.events()).boxed()
    }

    fn remove_volume<'a>(&'a self, app: &'a str, name: &'a str) -> BoxFuture<'a, Result<bool>> {
        self.containers.remove_volume(app, name)
    }

    fn volumes<'a>(&'a self, app: &'a str) -> BoxFuture<'a, Result<Vec<String>>> {
        self.containers.volumes(app)
    }
}
