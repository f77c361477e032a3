//! Pushing images to a registry (the cluster's), and the login a swarm service carries so that
//! every node pulls its image (Docker's `X-Registry-Auth`, kept by the swarm with the service).

use super::engine::Engine;
use crate::domain::{Error, RegistryLogin, Result};
use bollard::auth::DockerCredentials;
use bollard::query_parameters::{PushImageOptions, TagImageOptions};
use futures_util::StreamExt;

/// A registry login and the registry host it is for.
#[derive(Debug, Clone)]
pub struct RegistryAuth {
    /// `host[:port]`, as image names start.
    pub server: String,
    pub login: RegistryLogin,
}

impl RegistryAuth {
    pub(super) fn credentials(&self) -> DockerCredentials {
        DockerCredentials {
            username: Some(self.login.username.clone()),
            password: Some(self.login.password.clone()),
            serveraddress: Some(self.server.clone()),
            ..Default::default()
        }
    }
}

/// `name[:tag]` split into its repository and tag (`latest` when it names none).
fn repo_and_tag(reference: &str) -> (&str, &str) {
    match reference.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (reference, "latest"),
    }
}

impl Engine {
    /// Gives image `source` the name `target` (`repo[:tag]`) too.
    pub async fn tag_image(&self, source: &str, target: &str) -> Result<()> {
        let (repo, tag) = repo_and_tag(target);
        self.api()
            .await?
            .tag_image(
                source,
                Some(TagImageOptions {
                    repo: Some(repo.to_string()),
                    tag: Some(tag.to_string()),
                }),
            )
            .await
            .map_err(|e| self.map_err(e))
    }

    /// Pushes `reference` to the registry its name starts with, logged in with `auth` when set.
    /// A refused or failed push is `DeployFailed` in Docker's words.
    pub async fn push_image(&self, reference: &str, auth: Option<&RegistryAuth>) -> Result<()> {
        let (repo, tag) = repo_and_tag(reference);
        let docker = self.api().await?;
        let mut stream = docker.push_image(
            repo,
            Some(PushImageOptions {
                tag: Some(tag.to_string()),
                ..Default::default()
            }),
            auth.map(RegistryAuth::credentials),
        );
        let failed =
            |cause: String| Error::DeployFailed(format!("cannot push {reference}: {cause}"));
        while let Some(step) = stream.next().await {
            let info = step.map_err(|e| match self.map_err(e) {
                Error::Unavailable(m) => Error::Unavailable(m),
                Error::Internal(cause) => failed(format!("{cause:#}")),
                other => failed(other.to_string()),
            })?;
            if let Some(detail) = info.error_detail {
                return Err(failed(detail.message.unwrap_or_default()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::repo_and_tag;

    #[test]
    fn a_reference_splits_at_its_tag_not_at_a_registry_port() {
        assert_eq!(
            repo_and_tag("10.0.0.1:5000/i/scalefog/web:v3"),
            ("10.0.0.1:5000/i/scalefog/web", "v3")
        );
        assert_eq!(
            repo_and_tag("10.0.0.1:5000/i/web"),
            ("10.0.0.1:5000/i/web", "latest")
        );
        assert_eq!(repo_and_tag("web"), ("web", "latest"));
    }
}
