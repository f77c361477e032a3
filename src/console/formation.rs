//! Scaling from the app page: the replicas of each process type. The rules and the switch to
//! the new set are the deploy engine's, as for the JSON API.

use super::apps::app_path;
use super::error::{PageResult, outcome};
use super::request::{Ctx, SignedForm, redirect_with};
use crate::domain::Error;
use actix_web::web;
use std::collections::BTreeMap;

fn section(app: &str) -> String {
    format!("{}#formation", app_path(app))
}

pub async fn scale(form: SignedForm, name: web::Path<String>) -> PageResult {
    let (ctx, f) = (&form.ctx, &form.fields);
    let app = ctx.services.apps.get(&ctx.who, &name)?;
    // Every process type of the app has a field `scale-<type>`.
    let mut change = BTreeMap::new();
    let mut bad = None;
    for kind in ctx.services.deployer.formation(&app)?.into_keys() {
        let text = f.get(&format!("scale-{kind}"));
        match text.trim().parse::<i64>() {
            Ok(n) => {
                change.insert(kind, n);
            }
            Err(_) => {
                bad = Some(Error::invalid(
                    &kind,
                    format!("replicas of {kind} must be a whole number, got '{text}'"),
                ));
            }
        }
    }
    let scaled = match bad {
        Some(e) => Err(e),
        None => ctx.services.deployer.scale(&app, &ctx.who, change).await,
    };
    let flash = outcome(
        scaled,
        |f| {
            let parts: Vec<String> = f.iter().map(|(k, n)| format!("{k}={n}")).collect();
            format!("{} now runs {}.", app.name, parts.join(", "))
        },
        "The formation was not changed",
    )?;
    Ok(ctx.redirect(&section(&app.name), flash))
}

/// A bookmarked or reloaded form address leads back to the app page.
pub async fn show(ctx: Ctx, name: web::Path<String>) -> PageResult {
    let app = ctx.services.apps.get(&ctx.who, &name)?;
    Ok(redirect_with(&ctx.req, &section(&app.name), None))
}
