//! An app's persistent volumes from the app page: add one (name and path), remove one. The rules
//! and the restart with the new mounts are the deploy engine's, as for the JSON API.

use super::apps::app_path;
use super::error::{PageResult, outcome};
use super::request::{Ctx, SignedForm, redirect_with};
use actix_web::web;

/// Where the forms send the browser back to: the volumes section of the app page.
fn section(app: &str) -> String {
    format!("{}#volumes", app_path(app))
}

pub async fn add(form: SignedForm, name: web::Path<String>) -> PageResult {
    let (ctx, f) = (&form.ctx, &form.fields);
    // Someone else's app is the 404 page, whatever the form says.
    let app = ctx.services.apps.get(&ctx.who, &name)?;
    let added = ctx
        .services
        .deployer
        .add_volume(&app, &ctx.who, f.get("name"), f.get("path"))
        .await;
    let flash = outcome(
        added,
        |v| {
            format!(
                "Added volume {} at {}; every process of {} mounts it from now on.",
                v.name, v.path, app.name
            )
        },
        "No volume was added",
    )?;
    Ok(ctx.redirect(&section(&app.name), flash))
}

pub async fn remove(form: SignedForm, name: web::Path<String>) -> PageResult {
    let (ctx, f) = (&form.ctx, &form.fields);
    let app = ctx.services.apps.get(&ctx.who, &name)?;
    let volume = f.get("volume");
    let removed = ctx
        .services
        .deployer
        .remove_volume(&app, &ctx.who, volume)
        .await;
    let flash = outcome(
        removed,
        |()| {
            format!(
                "Removed volume {} from {}; its data is deleted.",
                volume.trim(),
                app.name
            )
        },
        "Nothing was removed",
    )?;
    Ok(ctx.redirect(&section(&app.name), flash))
}

/// A bookmarked or reloaded form address leads back to the app page.
pub async fn show(ctx: Ctx, name: web::Path<String>) -> PageResult {
    let app = ctx.services.apps.get(&ctx.who, &name)?;
    Ok(redirect_with(&ctx.req, &section(&app.name), None))
}
