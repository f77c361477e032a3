//! Admin pages: users, nodes, regions. The core refuses non-admins (`require_admin`); the
//! navigation merely hides the links.

use super::error::{ConsoleError, PageResult, inline};
use super::notice::Flash;
use super::pages::{Layout, NodesPage, RegionsPage, UsersPage};
use super::render::render;
use super::request::{Ctx, SignedForm};
use super::views::{NodeRow, RegionRow, UserRow, region_name, region_options};
use crate::accounts::{NewUser, Registrar};
use crate::domain::{Error, Instance};
use crate::nodes::NewNode;
use crate::store::Slice;
use actix_web::http::StatusCode;
use actix_web::web;
use std::collections::HashMap;

/// Every app on the platform (admins only, checked by the core through `list`).
fn all_apps(ctx: &Ctx) -> Result<Vec<Instance>, ConsoleError> {
    crate::accounts::require_admin(&ctx.who)?;
    Ok(ctx.services.apps.list(&ctx.who, true, Slice::ALL)?.items)
}

fn users_page(
    ctx: &Ctx,
    error: Option<String>,
    username: String,
    email: String,
) -> Result<UsersPage, ConsoleError> {
    let users = ctx.services.accounts.users(&ctx.who, Slice::ALL)?;
    let apps = all_apps(ctx)?;
    let rows = users
        .items
        .iter()
        .map(|u| {
            let n = apps.iter().filter(|a| a.owner_id == u.id).count() as u64;
            UserRow::new(u, n, ctx.who.id())
        })
        .collect();
    Ok(UsersPage {
        layout: Layout::signed_in(ctx, "Users", "users"),
        users: rows,
        error,
        form_username: username,
        form_email: email,
    })
}

pub async fn users(ctx: Ctx) -> PageResult {
    let page = users_page(&ctx, None, String::new(), String::new())?;
    render(&ctx.req, StatusCode::OK, &page)
}

pub async fn create_user(form: SignedForm) -> PageResult {
    let (ctx, f) = (&form.ctx, &form.fields);
    crate::accounts::require_admin(&ctx.who)?;
    let new = NewUser {
        username: f.get("username"),
        email: f.get("email"),
        password: f.get("password"),
        admin: f.checked("admin"),
    };
    match ctx
        .services
        .accounts
        .register(Registrar::Admin, new, ctx.who.origin)
        .await
    {
        Ok(u) => Ok(ctx.redirect(
            "/console/admin/users",
            Flash::ok(format!("Created the account {}.", u.username)),
        )),
        Err(e) => {
            let (status, message, _) = inline(e)?;
            let page = users_page(
                ctx,
                Some(message),
                f.get("username").trim().to_string(),
                f.get("email").trim().to_string(),
            )?;
            render(&ctx.req, status, &page)
        }
    }
}

pub async fn delete_user(form: SignedForm, id: web::Path<String>) -> PageResult {
    let (ctx, f) = (&form.ctx, &form.fields);
    let user = ctx.services.accounts.find_user(&ctx.who, &id)?;
    if f.get("confirm").trim() != user.username {
        return Ok(ctx.redirect(
            "/console/admin/users",
            Flash::err(format!(
                "Nothing was deleted: type {} exactly to confirm.",
                user.username
            )),
        ));
    }
    match ctx.services.delete_user(&ctx.who, &id).await {
        Ok(()) => Ok(ctx.redirect(
            "/console/admin/users",
            Flash::ok(format!("Deleted {} and their apps.", user.username)),
        )),
        Err(Error::Forbidden(m)) => Ok(ctx.redirect("/console/admin/users", Flash::err(m))),
        Err(e) => Err(e.into()),
    }
}

fn nodes_page(
    ctx: &Ctx,
    error: Option<String>,
    form: HashMap<&'static str, String>,
) -> Result<NodesPage, ConsoleError> {
    let nodes = ctx.services.nodes.list(&ctx.who)?;
    let apps = all_apps(ctx)?;
    let regions = ctx.services.apps.regions()?;
    let selected = form.get("region").cloned().unwrap_or_default();
    Ok(NodesPage {
        layout: Layout::signed_in(ctx, "Nodes", "nodes"),
        nodes: nodes
            .iter()
            .map(|n| {
                let count = apps.iter().filter(|a| a.node_id == n.id).count() as u64;
                NodeRow::new(n, region_name(&regions, n.region_id), count)
            })
            .collect(),
        regions: region_options(&regions, &selected),
        error,
        form,
    })
}

pub async fn nodes(ctx: Ctx) -> PageResult {
    let page = nodes_page(&ctx, None, HashMap::new())?;
    render(&ctx.req, StatusCode::OK, &page)
}

pub async fn create_node(form: SignedForm) -> PageResult {
    let (ctx, f) = (&form.ctx, &form.fields);
    let new = NewNode {
        name: f.get("name").to_string(),
        region: Some(f.get("region").to_string()).filter(|r| !r.is_empty()),
        endpoint: f.get("endpoint").to_string(),
        tags: f
            .get("tags")
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(String::from)
            .collect(),
        // Kept as given, as the panel API keeps them.
        ram: f.get("ram_mb").trim().to_string(),
        disk: f.get("disk_gb").trim().to_string(),
        processor: f.get("cpus").trim().to_string(),
        port: String::new(),
        insecure: f.get("insecure") == "on",
        tls: None,
    };
    let result = ctx.services.nodes.create(&ctx.who, new).await;
    match result {
        Ok(n) => Ok(ctx.redirect(
            "/console/admin/nodes",
            Flash::ok(format!("Added node {}.", n.name)),
        )),
        Err(e) => {
            let (status, mut message, _) = inline(e)?;
            // The core names the endpoint field as the panel API does ("address").
            message = message.replace(
                "Missing required parameter 'address'",
                "Please fill in the endpoint",
            );
            let form: HashMap<&'static str, String> = [
                "name", "region", "endpoint", "tags", "ram_mb", "disk_gb", "cpus", "insecure",
            ]
            .into_iter()
            .map(|k| (k, f.get(k).to_string()))
            .collect();
            let page = nodes_page(ctx, Some(message), form)?;
            render(&ctx.req, status, &page)
        }
    }
}

pub async fn delete_node(form: SignedForm, id: web::Path<String>) -> PageResult {
    let ctx = &form.ctx;
    match ctx.services.nodes.delete(&ctx.who, &id).await {
        Ok(()) => Ok(ctx.redirect(
            "/console/admin/nodes",
            Flash::ok(format!("Removed node {id}.")),
        )),
        Err(e @ (Error::Forbidden(_) | Error::Conflict(_) | Error::NotFound(_))) => {
            let (_, message, _) = inline(e)?;
            Ok(ctx.redirect("/console/admin/nodes", Flash::err(message)))
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn regions(ctx: Ctx) -> PageResult {
    let nodes = ctx.services.nodes.list(&ctx.who)?;
    let apps = all_apps(&ctx)?;
    let regions = ctx
        .services
        .apps
        .regions()?
        .into_iter()
        .map(|r| RegionRow {
            nodes: nodes.iter().filter(|n| n.region_id == r.id).count() as u64,
            apps: apps.iter().filter(|a| a.region_id == r.id).count() as u64,
            id: r.id,
            name: r.name,
        })
        .collect();
    let page = RegionsPage {
        layout: Layout::signed_in(&ctx, "Regions", "regions"),
        regions,
    };
    render(&ctx.req, StatusCode::OK, &page)
}
