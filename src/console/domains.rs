//! An app's custom domains: adding and removing them from the app page. The rules (a valid
//! name, not under the platform domain, one app per domain) are the core's
//! (`apps::domains`), reached through the same `Services` methods as the JSON API, which also
//! keep the route table in step.

use super::apps::{app_page, app_path};
use super::error::{PageResult, inline, outcome};
use super::notice::Flash;
use super::ops::Operations;
use super::render::render;
use super::request::{Ctx, SignedForm, redirect_with};
use super::views::DomainForm;
use crate::domain::Error;
use actix_web::web;

/// Where the forms send the browser back to: the domains section of the app page.
fn section(app: &str) -> String {
    format!("{}#domains", app_path(app))
}

/// A refused domain is shown in the form, with what was typed, rather than as a flash.
pub async fn add(
    form: SignedForm,
    ops: web::Data<Operations>,
    name: web::Path<String>,
) -> PageResult {
    let (ctx, f) = (&form.ctx, &form.fields);
    // Someone else's app is the 404 page, whatever the form says.
    let app = ctx.services.apps.get(&ctx.who, &name)?;
    let typed = f.get("domain");
    match ctx
        .services
        .apps
        .add_domain(&ctx.who, &app.name, typed)
        .await
    {
        Ok((app, domain, added)) => {
            let cname = ctx.services.apps.links().cname(&app.name);
            let message = if added {
                format!(
                    "Added {domain} to {}. Point a CNAME record for it at {cname}.",
                    app.name
                )
            } else {
                format!("{domain} is already a domain of {}.", app.name)
            };
            Ok(ctx.redirect(&section(&app.name), Flash::ok(message)))
        }
        Err(e @ (Error::Invalid { .. } | Error::Missing { .. } | Error::Conflict(_))) => {
            let (status, message, _) = inline(e)?;
            let mut page = app_page(ctx, &ops, &app.name).await?;
            page.domain_form = DomainForm {
                value: typed.trim().to_string(),
                error: Some(message),
            };
            render(&ctx.req, status, &page)
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn remove(form: SignedForm, name: web::Path<String>) -> PageResult {
    let (ctx, f) = (&form.ctx, &form.fields);
    let app = ctx.services.apps.get(&ctx.who, &name)?;
    let domain = f.get("domain");
    let removed = ctx
        .services
        .apps
        .remove_domain(&ctx.who, &app.name, domain)
        .await;
    let flash = outcome(
        removed,
        |app| {
            format!(
                "Removed {} from {}; requests for it are no longer routed to the app.",
                domain.trim(),
                app.name
            )
        },
        "Nothing was removed",
    )?;
    Ok(ctx.redirect(&section(&app.name), flash))
}

/// A bookmarked or reloaded form address (after a refused add) leads back to the app page.
pub async fn show(ctx: Ctx, name: web::Path<String>) -> PageResult {
    let app = ctx.services.apps.get(&ctx.who, &name)?;
    Ok(redirect_with(&ctx.req, &section(&app.name), None))
}
