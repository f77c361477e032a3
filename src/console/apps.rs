//! The instances list, creating an instance, its detail page (with its releases, builds,
//! output, config vars and custom domains), and deleting it. The deploy actions are in `deploys`.

use super::error::{PageResult, inline, sentence};
use super::notice::Flash;
use super::ops::Operations;
use super::pages::{AppPage, AppsPage, Layout, NewAppPage};
use super::render::render;
use super::request::{Ctx, SignedForm};
use super::views::{
    AppRows, BuildRow, ConfigVar, CronJobRow, CronRunRow, DomainForm, LiveBuild, LogView,
    PlacementRow, RegionOption, ReleaseRow, RunRow, actions, date, region_options, trim_float,
};
use crate::domain::{BuildStatus, Error, Instance, InstanceStatus};
use crate::services::Services;
use crate::store::Slice;
use actix_web::http::StatusCode;
use actix_web::web;
use futures_util::StreamExt;
use serde::Deserialize;

#[derive(Deserialize)]
pub struct ListQuery {
    all: Option<String>,
}

pub async fn list(ctx: Ctx, q: web::Query<ListQuery>) -> PageResult {
    let all = ctx.who.is_admin() && q.all.as_deref() == Some("1");
    let page = ctx.services.apps.list(&ctx.who, all, Slice::ALL)?;
    let mut rows = AppRows::new(&ctx.services);
    let apps = page.items.iter().map(|i| rows.row(i)).collect();
    let page = AppsPage {
        layout: Layout::signed_in(&ctx, "Apps", "apps"),
        apps,
        all,
        show_owner: all,
        has_ssh_key: has_ssh_key(&ctx)?,
    };
    render(&ctx.req, StatusCode::OK, &page)
}

fn has_ssh_key(ctx: &Ctx) -> Result<bool, crate::domain::Error> {
    Ok(ctx
        .services
        .accounts
        .ssh_keys(
            &ctx.who,
            Slice {
                offset: 0,
                limit: 1,
            },
        )?
        .total
        > 0)
}

/// The new-app form's region choices; a store that cannot list them leaves the list empty.
fn region_choices(ctx: &Ctx, selected: &str) -> Vec<RegionOption> {
    region_options(&ctx.services.apps.regions().unwrap_or_default(), selected)
}

/// The app's page, where its forms send the browser back to.
pub(super) fn app_path(app: &str) -> String {
    format!("/console/apps/{app}")
}

pub async fn new(ctx: Ctx) -> PageResult {
    let page = NewAppPage {
        layout: Layout::signed_in(&ctx, "Create an app", "apps"),
        name: String::new(),
        regions: region_choices(&ctx, ""),
        error: None,
    };
    render(&ctx.req, StatusCode::OK, &page)
}

pub async fn create(form: SignedForm) -> PageResult {
    let (ctx, f) = (&form.ctx, &form.fields);
    let name = f.get("appname").trim().to_ascii_lowercase();
    match ctx
        .services
        .apps
        .create(&ctx.who, Some(&name), Some(f.get("region")))
        .await
    {
        Ok(app) => Ok(ctx.redirect(
            &app_path(&app.name),
            Flash::ok(format!(
                "Created {}. Push your code to deploy its first release.",
                app.name
            )),
        )),
        Err(e) => {
            let (status, message, _) = inline(e)?;
            let page = NewAppPage {
                layout: Layout::signed_in(ctx, "Create an app", "apps"),
                name,
                regions: region_choices(ctx, f.get("region")),
                error: Some(message),
            };
            render(&ctx.req, status, &page)
        }
    }
}

pub async fn show(ctx: Ctx, ops: web::Data<Operations>, name: web::Path<String>) -> PageResult {
    let page = app_page(&ctx, &ops, &name).await?;
    render(&ctx.req, StatusCode::OK, &page)
}

/// The instance detail page as it stands; a form that fails shows it again with its error.
pub(super) async fn app_page(ctx: &Ctx, ops: &Operations, name: &str) -> Result<AppPage, Error> {
    // The core decides access: someone else's app is NotFound, exactly like a missing one.
    let app = ctx.services.apps.get(&ctx.who, name)?;
    let s = &ctx.services;
    let mut rows = AppRows::new(s);
    let node = s
        .nodes
        .get(app.node_id)?
        .map_or_else(|| format!("node {}", app.node_id), |n| n.name);
    let (pending, outcome) = ops.page(&ctx.session_id, &app.name);
    let mut layout = Layout::signed_in(ctx, app.name.clone(), "apps");
    // The outcome of an operation that outlasted its request is newer than any cookie flash.
    if outcome.is_some() {
        layout.flash = outcome;
    }
    let recent = |limit| Slice { offset: 0, limit };
    let releases = s.deployer.releases(&app, recent(RELEASES_SHOWN))?;
    let builds = s.deployer.builds(&app, recent(BUILDS_SHOWN))?;
    let (cron_jobs, cron_runs) = s.deployer.cron(&app, recent(CRON_RUNS_SHOWN))?;
    let live_build = match builds.items.first() {
        Some(b) if b.status == BuildStatus::Running => {
            let (b, log) = s.deployer.build_log(&app, &b.id.to_string())?;
            Some(LiveBuild {
                build: BuildRow::from(&b),
                log,
            })
        }
        _ => None,
    };
    let config_effect = match (app.release, app.status) {
        (None, _) => "waits",
        (Some(_), InstanceStatus::Running) => "deploys",
        _ => "recorded",
    };
    let logs = recent_output(s, &app).await;
    let source = s.image_apps.source(&ctx.who, &app.name)?;
    let placement = s.nodes.placement(&app).await?;
    let page = AppPage {
        pinned: placement.pin_reason().map(|r| sentence(&r)),
        placement: placement
            .processes
            .iter()
            .map(|p| PlacementRow {
                process: p.label(),
                node: p.node.as_ref().map_or_else(
                    || "not placed yet".to_string(),
                    |n| format!("{} (node {})", n.name, n.id),
                ),
            })
            .collect(),
        image: source
            .as_ref()
            .map(|s| s.image.to_string())
            .unwrap_or_default(),
        registry_username: source
            .and_then(|s| s.login)
            .map(|l| l.username)
            .unwrap_or_default(),
        layout,
        actions: actions(&app),
        busy: app.status == InstanceStatus::Building || pending.is_some(),
        pending,
        git_remote: s.apps.links().git_remote(&app.name),
        host_key_fingerprint: s.ssh_host_key.fingerprint.clone(),
        host_key_algorithm: s.ssh_host_key.algorithm.clone(),
        memory_mb: app.memory_mb,
        cpu: trim_float(app.cpu),
        port: app.port,
        node,
        deploy_branch: app.deploy_branch.to_string(),
        health_path: app.health_path.to_string(),
        read_only_rootfs: app.read_only_rootfs,
        created: date(app.created_at),
        has_ssh_key: has_ssh_key(ctx)?,
        releases: releases
            .items
            .iter()
            .map(|r| ReleaseRow::new(r, app.release))
            .collect(),
        releases_total: releases.total,
        builds: builds.items.iter().map(BuildRow::from).collect(),
        builds_total: builds.total,
        live_build,
        config: app
            .env
            .iter()
            .map(|(k, v)| ConfigVar {
                key: k.to_string(),
                secret: app.is_secret(k),
                // A secret value never reaches the page.
                value: if app.is_secret(k) {
                    String::new()
                } else {
                    v.clone()
                },
            })
            .collect(),
        config_effect,
        domains: app.domains.clone(),
        cname: s.apps.links().cname(&app.name),
        domain_form: DomainForm::default(),
        formation: s.deployer.formation(&app)?.into_iter().collect(),
        cron_jobs: cron_jobs
            .into_iter()
            .map(|j| CronJobRow {
                next: j
                    .next_run_at
                    .map(|t| t.replace('T', " ").replace('Z', " UTC"))
                    .unwrap_or_default(),
                command: j.command,
                schedule: j.schedule,
            })
            .collect(),
        cron_runs: cron_runs.items.iter().map(CronRunRow::new).collect(),
        runs: s
            .deployer
            .runs_of(&app.name, recent(RUNS_SHOWN))?
            .items
            .iter()
            .map(RunRow::new)
            .collect(),
        max_replicas: crate::domain::MAX_REPLICAS,
        volumes: app
            .volumes
            .iter()
            .map(|v| (v.name.to_string(), v.path.to_string()))
            .collect(),
        logs_live: app.status == InstanceStatus::Running && logs.unavailable.is_none(),
        logs,
        traffic: super::sparkline::TrafficCard::new(s.metrics.traffic().series(&app.name)),
        app: rows.row(&app),
    };
    Ok(page)
}

const RELEASES_SHOWN: u64 = 10;
const BUILDS_SHOWN: u64 = 5;
const CRON_RUNS_SHOWN: u64 = 10;
const RUNS_SHOWN: u64 = 10;
/// The app's recent output is read while the page renders; a slow Docker must not hold it up.
const OUTPUT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The last lines the app printed, or a sentence saying why there are none.
async fn recent_output(s: &Services, app: &Instance) -> LogView {
    let unavailable = |why: String| LogView {
        lines: String::new(),
        unavailable: Some(why),
    };
    if app.release.is_none() {
        return unavailable("No output yet: the app runs once its first push is deployed.".into());
    }
    let read = async {
        let lines: Vec<_> = s
            .deployer
            .logs(app, Some(100), false)
            .await?
            .collect()
            .await;
        lines.into_iter().collect::<Result<Vec<String>, Error>>()
    };
    match tokio::time::timeout(OUTPUT_WAIT, read).await {
        Ok(Ok(lines)) => LogView {
            lines: lines.join("\n"),
            unavailable: None,
        },
        Ok(Err(Error::Internal(cause))) => {
            tracing::error!(error = format!("{cause:#}"), app = %app.name, "cannot read output");
            unavailable("The output cannot be read right now; the server log says why.".into())
        }
        Ok(Err(e)) => unavailable(sentence(&e.to_string())),
        Err(_) => unavailable("The output took too long to read; refresh to try again.".into()),
    }
}

/// Deleting asks for the app's name to be typed: a guard against the wrong tab, checked here
/// because it is about the form, not about the app.
pub async fn delete(form: SignedForm, name: web::Path<String>) -> PageResult {
    let (ctx, f) = (&form.ctx, &form.fields);
    let app = ctx.services.apps.get(&ctx.who, &name)?;
    if f.get("confirm").trim() != app.name {
        return Ok(ctx.redirect(
            &app_path(&app.name),
            Flash::err(format!(
                "Nothing was deleted: type {} exactly to confirm.",
                app.name
            )),
        ));
    }
    ctx.services.apps.delete(&ctx.who, &app.name).await?;
    Ok(ctx.redirect(
        "/console/apps",
        Flash::ok(format!(
            "Deleted {} with its repository and containers.",
            app.name
        )),
    ))
}
