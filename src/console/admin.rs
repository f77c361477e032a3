//! Admin pages: users, nodes with the cluster (turning it on, its join command, each node's
//! state from the swarm), regions. The core refuses non-admins (`require_admin`); the
//! navigation merely hides the links.

use super::error::{ConsoleError, PageResult, inline, sentence};
use super::notice::Flash;
use super::pages::{Layout, NodesPage, RegionsPage, UsersPage};
use super::render::render;
use super::request::{Ctx, Fields, SignedForm, redirect_with};
use super::views::{
    ClusterCard, NodeRow, RegionRow, UserRow, datetime, region_name, region_options,
};
use crate::accounts::{NewUser, Registrar};
use crate::domain::{Error, Instance};
use crate::nodes::{NewNode, TlsFiles};
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

/// What the Nodes page shows besides the nodes: the turn-on form's error and typed address.
#[derive(Default)]
struct ClusterForm {
    error: Option<String>,
    advertise: String,
}

async fn nodes_page(
    ctx: &Ctx,
    error: Option<String>,
    form: HashMap<&'static str, String>,
    cluster_form: ClusterForm,
) -> Result<NodesPage, ConsoleError> {
    let nodes = ctx.services.nodes.list_with_state(&ctx.who).await?;
    let apps = all_apps(ctx)?;
    let regions = ctx.services.apps.regions()?;
    let selected = form.get("region").cloned().unwrap_or_default();
    let cluster = cluster_card(ctx, &nodes).await?;
    // With the cluster on, each node lists the processes the swarm runs there.
    let mut runs: HashMap<u64, Vec<String>> = HashMap::new();
    if cluster.is_some() {
        let mut placements: Vec<_> = ctx
            .services
            .nodes
            .placements(&apps)
            .await?
            .into_iter()
            .collect();
        placements.sort_by(|a, b| a.0.cmp(&b.0));
        for (app, placement) in placements {
            for p in placement.processes {
                if let Some(node) = &p.node {
                    runs.entry(node.id)
                        .or_default()
                        .push(format!("{app} {}", p.label()));
                }
            }
        }
    }
    Ok(NodesPage {
        layout: Layout::signed_in(ctx, "Nodes", "nodes"),
        nodes: nodes
            .iter()
            .map(|(n, state)| {
                let count = apps.iter().filter(|a| a.node_id == n.id).count() as u64;
                let mut row = NodeRow::new(n, region_name(&regions, n.region_id), count)
                    .with_state(state.as_ref());
                row.processes = runs.remove(&n.id).unwrap_or_default();
                row
            })
            .collect(),
        regions: region_options(&regions, &selected),
        error,
        form,
        cluster,
        cluster_error: cluster_form.error,
        advertise: cluster_form.advertise,
        ssh_public_key: ctx
            .services
            .nodes
            .ssh_public_key(&ctx.who)
            .unwrap_or_default(),
    })
}

/// The cluster card: `None` while the cluster is off. A swarm that does not answer for the
/// join command leaves the rest of the card shown.
async fn cluster_card(
    ctx: &Ctx,
    nodes: &[(crate::domain::Node, Option<crate::nodes::NodeState>)],
) -> Result<Option<ClusterCard>, ConsoleError> {
    let s = &ctx.services.nodes;
    let (cluster, join_command) = match s.cluster_info(&ctx.who).await {
        Ok(None) => return Ok(None),
        Ok(Some(info)) => (info.cluster, Ok(info.join_command)),
        Err(e @ Error::Forbidden(_)) => return Err(e.into()),
        Err(e) => match s.cluster()? {
            Some(c) => (
                c,
                Err(format!(
                    "The join command is not available now: {}",
                    sentence(&e.to_string())
                )),
            ),
            None => return Ok(None),
        },
    };
    let manager = nodes
        .iter()
        .find(|(n, _)| n.swarm_id.as_deref() == Some(cluster.manager_id.as_str()))
        .map_or_else(
            || cluster.manager_id.clone(),
            |(n, _)| {
                format!(
                    "{} (node {}, swarm id {})",
                    n.name, n.id, cluster.manager_id
                )
            },
        );
    Ok(Some(ClusterCard {
        advertise: cluster.advertise,
        since: datetime(cluster.since),
        manager,
        join_command,
    }))
}

/// A reloaded form address leads back to the Nodes page.
pub async fn cluster(ctx: Ctx) -> PageResult {
    Ok(redirect_with(&ctx.req, "/console/admin/nodes", None))
}

pub async fn nodes(ctx: Ctx) -> PageResult {
    let page = nodes_page(&ctx, None, HashMap::new(), ClusterForm::default()).await?;
    render(&ctx.req, StatusCode::OK, &page)
}

/// Turns the cluster on with the address other machines reach this one at.
pub async fn enable_cluster(form: SignedForm) -> PageResult {
    let (ctx, f) = (&form.ctx, &form.fields);
    let advertise = f.get("advertise").trim().to_string();
    match ctx.services.enable_cluster(&ctx.who, &advertise).await {
        Ok((info, moving)) => Ok(ctx.redirect(
            "/console/admin/nodes",
            Flash::ok(format!(
                "The cluster is on, advertised at {}. {}",
                info.cluster.advertise,
                match moving {
                    0 => "No running app needed moving.".to_string(),
                    1 => "1 running app is moving to swarm services.".to_string(),
                    n => format!("{n} running apps are moving to swarm services, one at a time."),
                }
            )),
        )),
        Err(e) => {
            let (status, message, _) = inline(e)?;
            let cluster_form = ClusterForm {
                error: Some(message),
                advertise,
            };
            let page = nodes_page(ctx, None, HashMap::new(), cluster_form).await?;
            render(&ctx.req, status, &page)
        }
    }
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
        port: f.get("port").trim().to_string(),
        insecure: f.get("insecure") == "on",
        tls: tls_files(f),
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
            // The TLS files are not sent back: a key belongs in no page.
            let form: HashMap<&'static str, String> = [
                "name", "region", "endpoint", "tags", "ram_mb", "disk_gb", "cpus", "port",
                "insecure",
            ]
            .into_iter()
            .map(|k| (k, f.get(k).to_string()))
            .collect();
            let page = nodes_page(ctx, Some(message), form, ClusterForm::default()).await?;
            render(&ctx.req, status, &page)
        }
    }
}

/// The TLS client files pasted in the form: none when all three are empty, otherwise all three
/// (the core says which one is not a PEM file).
fn tls_files(f: &Fields) -> Option<TlsFiles> {
    let [ca, cert, key] = ["tls_ca", "tls_cert", "tls_key"].map(|k| f.get(k).trim().to_string());
    (!(ca.is_empty() && cert.is_empty() && key.is_empty())).then_some(TlsFiles { ca, cert, key })
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

fn regions_page(
    ctx: &Ctx,
    error: Option<String>,
    form_name: String,
) -> Result<RegionsPage, ConsoleError> {
    let nodes = ctx.services.nodes.list(&ctx.who)?;
    let apps = all_apps(ctx)?;
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
    Ok(RegionsPage {
        layout: Layout::signed_in(ctx, "Regions", "regions"),
        regions,
        error,
        form_name,
    })
}

pub async fn regions(ctx: Ctx) -> PageResult {
    let page = regions_page(&ctx, None, String::new())?;
    render(&ctx.req, StatusCode::OK, &page)
}

pub async fn create_region(form: SignedForm) -> PageResult {
    let (ctx, f) = (&form.ctx, &form.fields);
    match ctx
        .services
        .nodes
        .create_region(&ctx.who, f.get("name"))
        .await
    {
        Ok(r) => Ok(ctx.redirect(
            "/console/admin/regions",
            Flash::ok(format!(
                "Added region {} (id {}). Add a node to it before creating apps there.",
                r.name, r.id
            )),
        )),
        Err(e) => {
            let (status, message, _) = inline(e)?;
            let page = regions_page(ctx, Some(message), f.get("name").trim().to_string())?;
            render(&ctx.req, status, &page)
        }
    }
}
