//! The images Scalefog builds: listing them, pruning old releases' images, removing an app's,
//! and cleaning up the build cache they leave behind.
//!
//! Docker's classic builder keeps each step of a build as an untagged image, and builds of
//! different apps share the steps they have in common (`FROM`, `COPY busybox …`). Removing an
//! image with Docker's default pruning also removes the untagged images it was built on, even
//! when another build has just found one of them in its cache and is about to build on it: that
//! build then fails ("unable to find image sha256:…"). So an image is removed without its parents,
//! and the parents it leaves ([`Leftovers`]) are removed later, one by one and only when nothing
//! uses them, at a moment when no build runs.

use super::Deployer;
use crate::docker::ImageInfo;
use crate::domain::Result;
use crate::locks;
use crate::store::Slice;
use locks::lock;
use std::collections::HashSet;
use std::sync::Mutex;
use tokio::sync::{RwLock, RwLockReadGuard};

/// Held shared by every build in this process, and alone by the clean-up of leftovers. It is
/// process-wide, not per installation, because the build cache is the engine's: several
/// installations on one engine (as in the test suite) share layers.
static BUILDS: RwLock<()> = RwLock::const_new(());

/// Taken by a build for as long as Docker builds.
pub(super) async fn building() -> RwLockReadGuard<'static, ()> {
    BUILDS.read().await
}

/// Images that removed images were built on, nearest first: build cache to remove once no build
/// can be using it.
#[derive(Default)]
pub(super) struct Leftovers(Mutex<Vec<String>>);

impl Deployer {
    /// Every image of this installation.
    pub async fn images(&self) -> Result<Vec<ImageInfo>> {
        self.0
            .docker
            .images(&self.0.installation.filters(None))
            .await
    }

    /// The images of one app.
    pub(super) async fn app_images(&self, app: &str) -> Result<Vec<ImageInfo>> {
        self.0
            .docker
            .images(&self.0.installation.filters(Some(app)))
            .await
    }

    /// Removes an image reference (a tag, or an id) and, when no build runs, the build cache
    /// only it used. Best effort: a failure is logged.
    pub(super) async fn remove_image(&self, reference: &str) {
        if let Err(e) = self.remove_image_and_cache(&[reference]).await {
            tracing::warn!(image = %reference, error = %e, "cannot remove an image");
        }
    }

    /// Removes an image entirely: each of its tags, then the image itself by id (an untagged
    /// leftover of an interrupted build has only the id).
    pub(super) async fn remove_whole_image(&self, img: &ImageInfo) -> Result<()> {
        let mut references: Vec<&str> = img.tagged().collect();
        references.push(&img.id);
        self.remove_image_and_cache(&references).await
    }

    /// Removes `references` (all naming one image) in order, then its build cache when it can.
    async fn remove_image_and_cache(&self, references: &[&str]) -> Result<()> {
        let Some(first) = references.first() else {
            return Ok(());
        };
        // Asked before the image goes: its history names the images it was built on.
        let ancestors = self.0.docker.image_ancestors(first).await?;
        for r in references {
            self.0.docker.remove_image(r).await?;
        }
        lock(&self.0.leftovers.0).extend(ancestors);
        self.collect_leftovers().await;
        Ok(())
    }

    /// Removes the leftover build cache that nothing uses any more, unless a build runs now (it
    /// could be about to build on any of it): then the next clean-up does it.
    pub(super) async fn collect_leftovers(&self) {
        let Ok(_alone) = BUILDS.try_write() else {
            return;
        };
        let candidates = std::mem::take(&mut *lock(&self.0.leftovers.0));
        let mut seen = HashSet::new();
        let mut retry = Vec::new();
        for id in candidates {
            if !seen.insert(id.clone()) {
                continue;
            }
            match self.0.docker.remove_unused_image(&id).await {
                // Removed, or in use by another image or container (whose own removal lists it
                // again): either way not ours to keep track of.
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(image = %id, error = %e, "cannot remove build cache yet");
                    retry.push(id);
                }
            }
        }
        lock(&self.0.leftovers.0).extend(retry);
    }

    /// Removes images of releases older than the last [`super::KEEP_RELEASE_IMAGES`], and the
    /// app's images no release names any more (untagged ones). Best effort.
    pub(super) async fn prune_images(&self, app: &str) {
        let keep: HashSet<String> = match self.0.store.read(|r| {
            r.releases_of(
                app,
                Slice {
                    offset: 0,
                    limit: super::KEEP_RELEASE_IMAGES as u64,
                },
            )
        }) {
            Ok(p) => p.items.into_iter().map(|r| r.image).collect(),
            Err(_) => return,
        };
        let Ok(images) = self.app_images(app).await else {
            return;
        };
        let kept = |tag: &str| is_kept(&keep, tag);
        for img in images {
            let result = if img.tagged().any(kept) {
                let mut r = Ok(());
                for tag in img.tagged().filter(|t| !kept(t)) {
                    r = r.and(self.remove_image_and_cache(&[tag]).await);
                }
                r
            } else {
                self.remove_whole_image(&img).await
            };
            if let Err(e) = result {
                tracing::warn!(image = %img.id, error = %e, "cannot prune an old image");
            }
        }
        self.prune_node_images(app, keep);
    }

    /// Removes an app's processes, images (on the cluster's other nodes too) and deploy records
    /// (the app record itself is removed by `apps`). A running deploy of the app is cancelled
    /// first.
    pub async fn remove_app(&self, name: &str) -> Result<()> {
        self.0.controls.cancel(name);
        let _guard = self.0.controls.app_lock(name).lock_owned().await;
        for p in self.0.runtime.list(Some(name)).await? {
            self.0.runtime.remove(&p.id).await?;
        }
        self.prune_node_images(name, HashSet::new());
        self.remove_app_volumes(name).await?;
        for img in self.app_images(name).await? {
            self.remove_whole_image(&img).await?;
        }
        let n = name.to_string();
        self.0
            .store
            .write_async(move |w| {
                w.delete_deploy_records(&n)?;
                w.delete_runs_of(&n)
            })
            .await?;
        self.0.controls.forget(name);
        Ok(())
    }
}

/// Whether `tag` names a kept image: one of `keep`, or the name the cluster's registry gave it
/// (`<registry>/<installation>/<image>`), under which its services run and nodes pulled it.
pub(super) fn is_kept(keep: &std::collections::HashSet<String>, tag: &str) -> bool {
    keep.contains(tag)
        || keep.iter().any(|k| {
            tag.strip_suffix(k.as_str())
                .is_some_and(|head| head.ends_with('/'))
        })
}

#[cfg(test)]
mod tests {
    use super::is_kept;

    #[test]
    fn a_kept_release_keeps_its_registry_name_and_nothing_else_does() {
        let keep = ["scalefog/shop:v2".to_string()].into_iter().collect();
        assert!(is_kept(&keep, "scalefog/shop:v2"));
        assert!(is_kept(&keep, "10.0.0.1:5000/abc123/scalefog/shop:v2"));
        assert!(!is_kept(&keep, "10.0.0.1:5000/abc123/scalefog/shop:v1"));
        assert!(!is_kept(&keep, "xscalefog/shop:v2"));
    }
}
