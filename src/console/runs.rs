//! One-off runs from the app page: start a command detached (as `POST …/runs` does) and see
//! the latest runs with their output. Interactive runs are `ssh … run`; the rules are the
//! deploy engine's.

use super::apps::app_path;
use super::error::{PageResult, outcome};
use super::request::{Ctx, SignedForm, redirect_with};
use crate::domain::{self, Error};
use actix_web::web;

fn section(app: &str) -> String {
    format!("{}#runs", app_path(app))
}

pub async fn start(form: SignedForm, name: web::Path<String>) -> PageResult {
    let (ctx, f) = (&form.ctx, &form.fields);
    let app = ctx.services.apps.get(&ctx.who, &name)?;
    let line = f.get("command");
    let started = match domain::split_command(line) {
        Some(command) => {
            ctx.services
                .deployer
                .run_detached(&app, &ctx.who, command)
                .await
        }
        None => Err(Error::invalid(
            "command",
            "give a command; quotes must be closed",
        )),
    };
    let flash = outcome(
        started,
        |r| {
            format!(
                "Started run {} of {}: {}",
                r.id,
                app.name,
                r.command.join(" ")
            )
        },
        "Nothing was run",
    )?;
    Ok(ctx.redirect(&section(&app.name), flash))
}

/// A bookmarked or reloaded form address leads back to the app page.
pub async fn show(ctx: Ctx, name: web::Path<String>) -> PageResult {
    let app = ctx.services.apps.get(&ctx.who, &name)?;
    Ok(redirect_with(&ctx.req, &section(&app.name), None))
}
