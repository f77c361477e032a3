//! A release's image built again from its commit when Docker no longer has it (a restore onto an
//! engine without the images, images removed by hand): the same tag and labels as the build that
//! first made it, so the release runs as it did.

use super::{Deployer, Reporter, source};
use crate::domain::{AppName, Error, Instance, Release, Result, short_commit};

impl Deployer {
    /// Makes sure the image `release` runs exists, rebuilding it from the app's repository if not.
    /// Called under the app's lock, before any of the release's processes start.
    pub(super) async fn ensure_release_image(
        &self,
        app: &Instance,
        release: &Release,
        rep: &Reporter,
    ) -> Result<()> {
        if self.0.docker.image_exists(&release.image).await? {
            return Ok(());
        }
        // Config changes and rollbacks reuse an earlier release's image: its tag says which
        // build made it, and so the labels the rebuilt image gets.
        let Some(built_as) = built_as(&app.name, &release.image) else {
            return Err(Error::DeployFailed(format!(
                "the image {} of v{} is gone and scalefog did not build it",
                release.image, release.version
            )));
        };
        let repo_dir = self.0.settings.repos.dir(&AppName::parse(&app.name)?);
        if !source::has_commit(&repo_dir, &release.commit).await {
            return Err(Error::DeployFailed(format!(
                "the image of v{} is gone and its commit {} is not in the repository: push it again",
                release.version,
                short_commit(&release.commit)
            )));
        }
        rep.line(format!(
            "-----> The image of v{} is gone; building it again from {}",
            release.version,
            short_commit(&release.commit)
        ));
        tracing::info!(app = %app.name, release = release.version, image = %release.image, "rebuilding a release's missing image");
        let _slot = self.build_slot(rep).await?;
        self.build_image(
            app,
            built_as,
            &release.image,
            &repo_dir,
            &[],
            &release.commit,
            rep,
        )
        .await
    }
}

/// The release number in a tag Scalefog gave an image (`scalefog/<app>:v<N>`).
fn built_as(app: &str, image: &str) -> Option<u32> {
    image
        .strip_prefix("scalefog/")?
        .strip_prefix(app)?
        .strip_prefix(":v")?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::built_as;

    #[test]
    fn the_build_an_image_came_from_is_read_from_its_tag() {
        assert_eq!(built_as("blog", "scalefog/blog:v3"), Some(3));
        assert_eq!(built_as("blog", "scalefog/blog-two:v3"), None);
        assert_eq!(built_as("blog", "nginx:latest"), None);
        assert_eq!(built_as("blog", "scalefog/blog:latest"), None);
    }
}
