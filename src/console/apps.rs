//! The instances list, creating an instance, its detail page, and deleting it.

use super::error::PageResult;
use super::request::{Ctx, Flash, SignedForm};
use super::views::{AppPage, AppRows, AppsPage, Layout, NewAppPage, RegionOption, trim_float};
use super::{inline, render};
use crate::store::Slice;
use actix_web::http::StatusCode;
use actix_web::web;
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

fn region_options(ctx: &Ctx, selected: &str) -> Vec<RegionOption> {
    ctx.services
        .apps
        .regions()
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, r)| RegionOption {
            selected: r.id.to_string() == selected || (selected.is_empty() && i == 0),
            id: r.id.to_string(),
            name: r.name,
        })
        .collect()
}

pub async fn new(ctx: Ctx) -> PageResult {
    let page = NewAppPage {
        layout: Layout::signed_in(&ctx, "Create an app", "apps"),
        name: String::new(),
        regions: region_options(&ctx, ""),
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
            &format!("/console/apps/{}", app.name),
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
                regions: region_options(ctx, f.get("region")),
                error: Some(message),
            };
            render(&ctx.req, status, &page)
        }
    }
}

pub async fn show(ctx: Ctx, name: web::Path<String>) -> PageResult {
    // The core decides access: someone else's app is NotFound, exactly like a missing one.
    let app = ctx.services.apps.get(&ctx.who, &name)?;
    let mut rows = AppRows::new(&ctx.services);
    let node = ctx
        .services
        .nodes
        .get(app.node_id)?
        .map_or_else(|| format!("node {}", app.node_id), |n| n.name);
    let has_ssh_key = ctx
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
        > 0;
    let page = AppPage {
        layout: Layout::signed_in(&ctx, app.name.clone(), "apps"),
        git_remote: ctx.services.apps.links().git_remote(&app.name),
        memory: format!("{} MiB", app.memory_mb),
        cpu: format!(
            "{} {}",
            trim_float(app.cpu),
            if app.cpu == 1.0 { "core" } else { "cores" }
        ),
        port: app.port,
        node,
        deploy_branch: app.deploy_branch.clone(),
        health_path: app.health_path.clone(),
        created: super::views::date(app.created_at),
        has_ssh_key,
        app: rows.row(&app),
    };
    render(&ctx.req, StatusCode::OK, &page)
}

/// Deleting asks for the app's name to be typed: a guard against the wrong tab, checked here
/// because it is about the form, not about the app.
pub async fn delete(form: SignedForm, name: web::Path<String>) -> PageResult {
    let (ctx, f) = (&form.ctx, &form.fields);
    let app = ctx.services.apps.get(&ctx.who, &name)?;
    if f.get("confirm").trim() != app.name {
        return Ok(ctx.redirect(
            &format!("/console/apps/{}", app.name),
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
