//! An image app's deploy: the image is pulled instead of built, then given the app's labels and
//! tag (`scalefog/<app>:v<N>`, like a built image, so clean-up and rollback treat it alike), and
//! released through the same switch and history as a push. Its own `CMD`, `ENTRYPOINT` and
//! `EXPOSE` apply.

use super::control::SharedAttempt;
use super::switch::Record;
use super::{Deployer, Reporter};
use crate::docker::BuildLimits;
use crate::domain::{
    self, AuditRecord, Build, Error, ImageRef, Instance, RegistryLogin, Release, ReleaseStatus,
    Result,
};
use crate::locks::lock;
use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::StreamExt;
use std::collections::HashMap;

/// What to deploy for an image app.
#[derive(Debug, Clone)]
pub struct ImageDeploy {
    pub image: ImageRef,
    /// The login for the image's registry, when it needs one.
    pub login: Option<RegistryLogin>,
    /// The port the image serves on, when the deployer says so; else one it `EXPOSE`s (the app's
    /// port when it is among them, else the lowest), else the app's port.
    pub port: Option<u16>,
    /// The audit entry written with the switch, when someone stands behind the deploy.
    pub audit: Option<AuditRecord>,
}

/// How a pulled image's deploy ended, with its build record (its log is the pull's progress).
pub struct ImageDeployed {
    pub build: u64,
    pub result: Result<Release>,
}

impl Deployer {
    /// Pulls `deploy.image` and releases it as the app's next release, under the app's lock like
    /// a push. A failure (the pull, the health check) is recorded as a failed build with its log
    /// and leaves the previous release serving.
    pub async fn deploy_image(
        &self,
        app_name: &str,
        user: &str,
        deploy: ImageDeploy,
    ) -> Result<ImageDeployed> {
        let rep = Reporter::new(None);
        let _guard = self.acquire(app_name, &rep).await?;
        let _slot = self.build_slot(&rep).await?;
        let app = self.instance(app_name)?;
        let build = self
            .record_build_start(&app, user, "", "", Some(deploy.image.to_string()))
            .await?;
        lock(&self.0.live_logs.0).insert(build.id, rep.clone());
        let this = self.clone();
        let (r2, b2, user2) = (rep.clone(), build.clone(), user.to_string());
        let result = self
            .controlled(&app.name, move |attempt| {
                async move {
                    this.pull_and_release(&b2, &user2, &deploy, &r2, attempt)
                        .await
                }
                .boxed()
            })
            .await;
        lock(&self.0.live_logs.0).remove(&build.id);
        let result = match result {
            Ok(release) => {
                rep.line(format!("=====> Deployed: {}", self.0.links.url(&app.name)));
                Ok(release)
            }
            Err(e) => {
                self.report_failure(&app, &build, &e, &rep, "Deploy failed")
                    .await;
                Err(e)
            }
        };
        Ok(ImageDeployed {
            build: build.id,
            result,
        })
    }

    async fn pull_and_release(
        &self,
        build: &Build,
        user: &str,
        deploy: &ImageDeploy,
        rep: &Reporter,
        attempt: SharedAttempt,
    ) -> Result<Release> {
        let mut app = self.instance(&build.app)?;
        let image = &deploy.image.to_string();
        rep.line(format!("-----> Pulling {image}"));
        // An image that was here before the pull is someone else's too: its tag stays.
        let was_here = self.0.docker.image_exists(image).await?;
        let registry = deploy.image.registry();
        let out = |line: &str| rep.line(format!("       {line}"));
        self.0
            .docker
            .pull(image, deploy.login.as_ref().map(|l| (l, registry)), &out)
            .await?;
        let labelled = self.label_pulled(&app, image, rep, &attempt).await;
        if !was_here {
            // The pulled layers stay, under the labelled image; only the name goes.
            self.remove_image(image).await;
        }
        let (version, tag, exposed) = labelled?;
        app.port = deploy
            .port
            .or_else(|| {
                (!exposed.contains(&app.port))
                    .then(|| exposed.first().copied())
                    .flatten()
            })
            .unwrap_or(app.port);
        rep.line(format!(
            "-----> Releasing v{version} (serving on port {})",
            app.port
        ));
        let release = Release {
            app: app.name.clone(),
            version,
            image: tag,
            commit: String::new(),
            env: app.env.clone(),
            created_by: user.to_string(),
            created_at: domain::now(),
            status: ReleaseStatus::Current,
            description: format!("deploy image {image}"),
            build_id: Some(build.id),
            processes: Default::default(),
            release_command: None,
            cron: Vec::new(),
            source_image: Some(image.to_string()),
        };
        self.roll_out(
            &app,
            &release,
            Record::Built(build.id),
            rep,
            &attempt,
            deploy.audit.clone(),
        )
        .await?;
        self.prune_images(&app.name).await;
        Ok(release)
    }

    /// Makes the pulled image the app's next release image: `FROM <its id>` plus the app's
    /// labels, tagged `scalefog/<app>:v<N>`. Returns the version, the tag and the ports the image
    /// exposes.
    async fn label_pulled(
        &self,
        app: &Instance,
        image: &str,
        rep: &Reporter,
        attempt: &SharedAttempt,
    ) -> Result<(u32, String, Vec<u16>)> {
        let config = self.0.docker.image_config(image).await?.ok_or_else(|| {
            Error::DeployFailed(format!("{image} is not on the engine after its pull"))
        })?;
        let version = self.next_release(&app.name)?;
        let tag = format!("scalefog/{}:v{version}", app.name);
        lock(attempt).image = Some(tag.clone());
        let labels = self
            .0
            .installation
            .labels(&app.name, app.node_id, Some(version));
        // The id, not the name: the name is removed after this build, and may be re-pulled
        // (moved) meanwhile by another deploy of the same reference.
        let dockerfile = format!("FROM {}\n", config.id);
        let dockerfile = super::source::labelled_dockerfile(dockerfile.as_bytes(), &labels)
            .ok_or_else(|| Error::internal("the labelling Dockerfile does not fit"))?;
        let context = single_file_tar("Dockerfile", &dockerfile);
        let installation = &self.0.installation;
        let limits = BuildLimits {
            memory_mb: self.0.settings.build_memory_mb,
            cpus: self.0.settings.build_cpus,
            network: installation.build_network(),
        };
        self.0
            .docker
            .ensure_isolated_network(&limits.network, &installation.own_labels())
            .await?;
        let quiet = |_: &str| {};
        {
            let _building = super::images::building().await;
            self.0
                .docker
                .build(
                    &tag,
                    "Dockerfile",
                    HashMap::new(),
                    &limits,
                    futures_util::stream::once(async move { Ok(Bytes::from(context)) }).boxed(),
                    &quiet,
                )
                .await?;
        }
        rep.line(format!("-----> Tagged {tag}"));
        Ok((version, tag, config.exposed_ports))
    }
}

/// A tar archive (ustar) holding one regular file: the build context of a labelling build.
fn single_file_tar(name: &str, content: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 512];
    let put =
        |h: &mut [u8; 512], at: usize, bytes: &[u8]| h[at..at + bytes.len()].copy_from_slice(bytes);
    put(&mut header, 0, name.as_bytes());
    put(&mut header, 100, b"0000644\0");
    put(&mut header, 108, b"0000000\0");
    put(&mut header, 116, b"0000000\0");
    put(
        &mut header,
        124,
        format!("{:011o}\0", content.len()).as_bytes(),
    );
    put(&mut header, 136, b"00000000000\0");
    put(&mut header, 148, b"        ");
    header[156] = b'0';
    put(&mut header, 257, b"ustar\0");
    put(&mut header, 263, b"00");
    let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    put(&mut header, 148, format!("{sum:06o}\0 ").as_bytes());
    let mut out = header.to_vec();
    out.extend_from_slice(content);
    out.resize(out.len().div_ceil(512) * 512 + 1024, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::single_file_tar;

    #[test]
    fn the_labelling_context_is_a_tar_that_tar_reads() {
        let tar = single_file_tar("Dockerfile", b"FROM sha256:00\n");
        assert_eq!(tar.len() % 512, 0);
        let dir = std::env::temp_dir().join(format!("sf-tar-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.tar");
        std::fs::write(&path, &tar).unwrap();
        let out = std::process::Command::new("tar")
            .args(["-xOf", path.to_str().unwrap(), "Dockerfile"])
            .output()
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, b"FROM sha256:00\n");
    }
}
