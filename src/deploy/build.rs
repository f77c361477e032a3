//! A pushed commit → an image → a release: the push handler, the build (its context comes from
//! `source`), and the bookkeeping of the build record and its log.

use super::control::SharedAttempt;
use super::report::shown;
use super::switch::Record;
use super::{Deployer, Reporter, source};
use crate::docker::BuildLimits;
use crate::domain::{
    self, AuditAction, AuditRecord, Build, BuildStatus, Error, Instance, InstanceStatus, Release,
    ReleaseStatus, Result, short_commit,
};
use crate::locks;
use crate::metrics::{DeployOutcome, Phase};
use crate::push::{Progress, Push, PushHandler, RefUpdate, Verdict};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use locks::lock;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

/// Logs of builds in progress, readable before they are stored.
#[derive(Default)]
pub(super) struct LiveLogs(pub(super) Mutex<HashMap<u64, Reporter>>);

impl LiveLogs {
    pub fn get(&self, build: u64) -> Option<String> {
        lock(&self.0).get(&build).map(Reporter::text)
    }
}

/// How a deploy of a commit ended, for whoever started it.
pub enum Deployed {
    Released(Release),
    /// It failed, and the reporter has already said why: `reason` is the one line to record.
    Rejected {
        error: Error,
        reason: String,
    },
}

/// Whether a build failed because an image layer it used as cache was deleted meanwhile.
/// Docker says so in one of two ways, depending on the step it was at.
fn lost_cached_layer(message: &str) -> bool {
    message.contains("unknown parent image ID")
        || (message.contains("failed to get destination image")
            && message.contains("No such image: sha256:"))
}

impl Deployer {
    /// Builds and releases `sha` (a commit in `repo_dir`, visible with `git_env`). Not audited:
    /// no caller stands behind it (pushes go through [`PushHandler`], which records the pusher).
    #[allow(clippy::too_many_arguments)]
    pub async fn deploy_commit(
        &self,
        app_name: &str,
        user: &str,
        branch: &str,
        sha: &str,
        repo_dir: &Path,
        git_env: &[(String, String)],
        progress: Option<Progress>,
        audit: Option<AuditRecord>,
    ) -> Result<Release> {
        let deployed = self
            .deploy_reported(
                app_name, user, branch, sha, repo_dir, git_env, progress, audit,
            )
            .await?;
        match deployed {
            Deployed::Released(r) => Ok(r),
            Deployed::Rejected { error, .. } => Err(error),
        }
    }

    /// [`Deployer::deploy_commit`], telling apart a failure the pusher has already read about.
    /// `audit` is written with the new release, in its switch's transaction.
    #[allow(clippy::too_many_arguments)]
    async fn deploy_reported(
        &self,
        app_name: &str,
        user: &str,
        branch: &str,
        sha: &str,
        repo_dir: &Path,
        git_env: &[(String, String)],
        progress: Option<Progress>,
        audit: Option<AuditRecord>,
    ) -> Result<Deployed> {
        if !source::valid_commit(sha) {
            return Err(Error::invalid("commit", "not a full commit id"));
        }
        let rep = Reporter::new(progress);
        let _guard = self.acquire(app_name, &rep).await?;
        let _slot = self.build_slot(&rep).await?;
        let app = self.instance(app_name)?;
        let build = self
            .record_build_start(&app, user, branch, sha, None)
            .await?;
        lock(&self.0.live_logs.0).insert(build.id, rep.clone());
        let this = self.clone();
        let (r2, b2, user2) = (rep.clone(), build.clone(), user.to_string());
        let (repo_dir, git_env) = (repo_dir.to_path_buf(), git_env.to_vec());
        let result = self
            .controlled(&app.name, move |attempt| {
                async move {
                    this.build_and_release(&b2, &user2, &repo_dir, &git_env, &r2, attempt, audit)
                        .await
                }
                .boxed()
            })
            .await;
        lock(&self.0.live_logs.0).remove(&build.id);
        self.0.metrics.deploy(match &result {
            Ok(_) => DeployOutcome::Succeeded,
            Err(Error::Cancelled(_)) => DeployOutcome::Cancelled,
            Err(_) => DeployOutcome::Failed,
        });
        match result {
            Ok(release) => {
                rep.line(format!("=====> Deployed: {}", self.0.links.url(&app.name)));
                Ok(Deployed::Released(release))
            }
            Err(e) => {
                let message = self
                    .report_failure(&app, &build, &e, &rep, "Push rejected")
                    .await;
                let error = match e {
                    Error::Internal(_)
                    | Error::Unavailable(_)
                    | Error::DeployFailed(_)
                    | Error::Cancelled(_) => e,
                    other => Error::DeployFailed(other.to_string()),
                };
                Ok(Deployed::Rejected {
                    error,
                    reason: format!("scalefog: {message}"),
                })
            }
        }
    }

    /// A new build record, running; the app shows as building meanwhile.
    pub(super) async fn record_build_start(
        &self,
        app: &Instance,
        user: &str,
        branch: &str,
        sha: &str,
        source_image: Option<String>,
    ) -> Result<Build> {
        let (name, sha, user, branch) = (
            app.name.clone(),
            sha.to_string(),
            user.to_string(),
            branch.to_string(),
        );
        self.0
            .store
            .write_async(move |w| {
                let build = Build {
                    id: w.next_id("build")?,
                    app: name.clone(),
                    commit: sha,
                    branch,
                    status: BuildStatus::Running,
                    release: None,
                    created_by: user,
                    started_at: domain::now(),
                    finished_at: None,
                    error: None,
                    source_image,
                };
                w.put_build(&build)?;
                if let Some(mut i) = w.instance(&name)? {
                    i.status = InstanceStatus::Building;
                    w.put_instance(&i)?;
                }
                Ok(build)
            })
            .await
    }

    /// Tells `rep` why the build failed and what the app serves now (`outcome` names the
    /// failure: "Push rejected", "Deploy failed"), then records the failure with its log.
    /// Returns the error as shown.
    pub(super) async fn report_failure(
        &self,
        app: &Instance,
        build: &Build,
        e: &Error,
        rep: &Reporter,
        outcome: &str,
    ) -> String {
        let message = shown(e);
        rep.line(format!(" !     {message}"));
        rep.line(if app.release.is_some() {
            format!(
                " !     {outcome}: {} keeps serving what it served before",
                app.name
            )
        } else {
            format!(" !     {outcome}: {} has no release yet", app.name)
        });
        self.record_build_failure(app, build, e, &message, rep)
            .await;
        message
    }

    /// Marks the build failed (or cancelled) with its log, and puts the app back to the state it
    /// had before (`app` as it was when the build started).
    async fn record_build_failure(
        &self,
        app: &Instance,
        build: &Build,
        e: &Error,
        message: &str,
        rep: &Reporter,
    ) {
        let status = if matches!(e, Error::Cancelled(_)) {
            BuildStatus::Cancelled
        } else {
            BuildStatus::Failed
        };
        let prior_status = app.status;
        let (id, log, msg, name) = (
            build.id,
            rep.text(),
            message.lines().next().unwrap_or("").to_string(),
            app.name.clone(),
        );
        let recorded = self
            .0
            .store
            .write_async(move |w| {
                if let Some(mut b) = w.build(id)? {
                    b.status = status;
                    b.finished_at = Some(domain::now());
                    b.error = Some(msg);
                    w.put_build(&b)?;
                }
                w.put_build_log(id, &log)?;
                if let Some(mut i) = w.instance(&name)?
                    && i.status != InstanceStatus::Deleting
                {
                    i.status = if i.release.is_none() {
                        InstanceStatus::Failed
                    } else if prior_status == InstanceStatus::Building {
                        InstanceStatus::Running
                    } else {
                        prior_status
                    };
                    w.put_instance(&i)?;
                }
                Ok(())
            })
            .await;
        if let Err(se) = recorded {
            tracing::error!(error = %se, build = build.id, "cannot record a failed build");
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn build_and_release(
        &self,
        build: &Build,
        user: &str,
        repo_dir: &Path,
        git_env: &[(String, String)],
        rep: &Reporter,
        attempt: SharedAttempt,
        audit: Option<AuditRecord>,
    ) -> Result<Release> {
        let app = self.instance(&build.app)?;
        let sha = build.commit.as_str();
        rep.line(format!(
            "-----> Building {} ({})",
            app.name,
            short_commit(sha)
        ));
        let procfile = source::read_procfile(repo_dir, git_env, sha).await?;
        if !procfile.processes.is_empty() {
            let types: Vec<&str> = procfile.processes.keys().map(String::as_str).collect();
            rep.line(format!(
                "-----> Procfile declares process types: {}",
                types.join(", ")
            ));
        }
        if procfile.release.is_some() {
            rep.line("-----> Procfile declares a release command");
        }
        let cron = source::read_cron_jobs(repo_dir, git_env, sha).await?;
        if !cron.is_empty() {
            rep.line(format!(
                "-----> app.json declares {} cron job(s)",
                cron.len()
            ));
        }
        let version = self.next_release(&app.name)?;
        let tag = format!("scalefog/{}:v{version}", app.name);
        lock(&attempt).image = Some(tag.clone());
        self.timed(
            Phase::Build,
            self.build_image(&app, version, &tag, repo_dir, git_env, sha, rep),
        )
        .await?;
        rep.line(format!("-----> Releasing v{version}"));
        let release = Release {
            app: app.name.clone(),
            version,
            image: tag,
            commit: sha.to_string(),
            env: app.env.clone(),
            created_by: user.to_string(),
            created_at: domain::now(),
            status: ReleaseStatus::Current,
            description: format!("deploy {}", short_commit(sha)),
            build_id: Some(build.id),
            processes: procfile.processes,
            release_command: procfile.release,
            cron,
            source_image: None,
        };
        self.roll_out(
            &app,
            &release,
            Record::Built(build.id),
            rep,
            &attempt,
            audit,
        )
        .await?;
        self.prune_images(&app.name).await;
        Ok(release)
    }

    /// Builds `sha` into the image `tag`, labelled as release `version` of the app.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn build_image(
        &self,
        app: &Instance,
        version: u32,
        tag: &str,
        repo_dir: &Path,
        git_env: &[(String, String)],
        sha: &str,
        rep: &Reporter,
    ) -> Result<()> {
        let dockerfile = source::read_dockerfile(repo_dir, git_env, sha).await?;
        let labels = self
            .0
            .installation
            .labels(&app.name, app.node_id, Some(version));
        // The labels go into the image through the build's own Dockerfile when they can (one
        // step), else as build options (one step each).
        let (labelled, build_file, build_labels) =
            match source::labelled_dockerfile(&dockerfile, &labels) {
                Some(d) => (Some(d), source::BUILD_DOCKERFILE, HashMap::new()),
                None => (None, "Dockerfile", labels),
            };
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
        let out = |line: &str| rep.line(format!("       {line}"));
        let mut first_try = true;
        let archived = loop {
            let (child, context) = source::archive(repo_dir, git_env, sha, labelled.as_deref())?;
            let built = {
                // Image clean-up waits while any build runs (see `images`).
                let _building = super::images::building().await;
                self.0
                    .docker
                    .build(
                        tag,
                        build_file,
                        build_labels.clone(),
                        &limits,
                        context,
                        &out,
                    )
                    .await
            };
            let archived = child.wait_with_output().await;
            match built {
                // Builds of different apps share cached layers; deleting an image outside
                // Scalefog (`docker image prune`) can remove a layer this build was about to
                // build on. Building again rebuilds that layer.
                Err(Error::DeployFailed(msg)) if first_try && lost_cached_layer(&msg) => {
                    first_try = false;
                    rep.line("-----> A cached layer was deleted during the build; building again");
                }
                built => {
                    built?;
                    break archived;
                }
            }
        };
        match archived {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => Err(Error::DeployFailed(format!(
                "git archive of {} failed: {}",
                short_commit(sha),
                String::from_utf8_lossy(&o.stderr).trim()
            ))),
            Err(e) => Err(Error::internal(format!("git archive: {e}"))),
        }
    }

    /// Which ref update of a push deploys, if any: the deploy branch, or `master` when the deploy
    /// branch is the default `main` and `master` is the only branch pushed.
    fn deploy_update<'p>(app: &Instance, push: &'p Push) -> Option<&'p RefUpdate> {
        let branch = app.deploy_branch.as_str();
        push.updates
            .iter()
            .find(|u| u.branch() == Some(branch))
            .or_else(|| {
                let branches: Vec<_> = push.updates.iter().filter_map(|u| u.branch()).collect();
                (branch == "main" && branches == ["master"])
                    .then(|| push.updates.iter().find(|u| u.branch() == Some("master")))
                    .flatten()
            })
    }
}

impl PushHandler for Deployer {
    fn handle<'a>(
        &'a self,
        push: &'a Push,
        progress: &'a Progress,
    ) -> BoxFuture<'a, Result<Verdict>> {
        Box::pin(async move {
            let app = self.instance(&push.app.name)?;
            let Some(update) = Self::deploy_update(&app, push) else {
                progress.line(format!(
                    "-----> Not deploying: only pushes to '{}' deploy {}",
                    app.deploy_branch, app.name
                ));
                return Ok(Verdict::Accepted);
            };
            if update.is_delete() {
                return Err(Error::DeployFailed(format!(
                    "deleting '{}', the deploy branch of {}, is not allowed",
                    app.deploy_branch, app.name
                )));
            }
            let deployed = self
                .deploy_reported(
                    &app.name,
                    &push.user.username,
                    update.branch().unwrap_or_default(),
                    &update.new,
                    &push.repo_dir,
                    &push.git_env,
                    Some(progress.clone()),
                    Some(AuditRecord::new(
                        &push.user,
                        push.origin,
                        AuditAction::AppDeploy,
                        Some(&app.name),
                        "",
                    )),
                )
                .await?;
            Ok(match deployed {
                Deployed::Released(_) => Verdict::Accepted,
                Deployed::Rejected { reason, .. } => Verdict::Rejected { reason },
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{DeployBranch, HealthPath};

    fn app(branch: &str) -> Instance {
        Instance {
            name: "blog".into(),
            owner_id: 1,
            region_id: 1,
            node_id: 1,
            status: InstanceStatus::Created,
            release: None,
            memory_mb: 256,
            cpu: 1.0,
            health_path: HealthPath::default(),
            deploy_branch: DeployBranch::parse(branch).unwrap(),
            port: 5000,
            env: Default::default(),
            secret_env: Default::default(),
            domains: vec![],
            created_at: 0,
            volumes: vec![],
            read_only_rootfs: false,
            formation: Default::default(),
        }
    }

    fn push(branches: &[&str]) -> Push {
        Push {
            id: "p".into(),
            app: app("main"),
            user: crate::domain::User {
                id: 1,
                username: "alice".into(),
                email: "a@example.com".into(),
                password_hash: String::new(),
                admin: false,
                created_at: 0,
                quota: Default::default(),
                external_id: None,
            },
            origin: crate::domain::Origin::CLI,
            updates: branches
                .iter()
                .map(|b| RefUpdate {
                    old: "0".repeat(40),
                    new: "a".repeat(40),
                    name: format!("refs/heads/{b}"),
                })
                .collect(),
            repo_dir: "/nonexistent".into(),
            git_env: vec![],
        }
    }

    #[test]
    fn the_deploy_branch_deploys_and_master_only_when_it_is_the_only_branch_pushed() {
        let pick = |a: &Instance, p: &Push| {
            Deployer::deploy_update(a, p).map(|u| u.branch().unwrap().to_string())
        };
        assert_eq!(
            pick(&app("main"), &push(&["main", "dev"])).as_deref(),
            Some("main")
        );
        assert_eq!(
            pick(&app("main"), &push(&["master"])).as_deref(),
            Some("master")
        );
        assert_eq!(pick(&app("main"), &push(&["master", "dev"])), None);
        assert_eq!(pick(&app("prod"), &push(&["master"])), None);
        assert_eq!(
            pick(&app("prod"), &push(&["prod"])).as_deref(),
            Some("prod")
        );
    }

    #[test]
    fn a_build_that_lost_its_cached_parent_layer_is_recognised_for_a_second_try() {
        assert!(lost_cached_layer(
            "failed to export image: failed to set parent sha256:fe04: unknown parent image ID sha256:fe04"
        ));
        assert!(lost_cached_layer(
            "failed to get destination image \"sha256:def8\": No such image: sha256:def8"
        ));
        assert!(!lost_cached_layer(
            "The command '/bin/sh -c make' returned a non-zero code: 2"
        ));
    }
}
