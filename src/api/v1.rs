//! The versioned REST API (`/v1`): proper verbs, `201` with the created object, `204` on delete,
//! paginated lists with `X-Total-Count`.

use super::error::ApiResult;
use super::extract::{Auth, Params, credential_of};
use super::list_cache::ListCache;
use super::pagination::{page_of, paged, pagination, slice_of};
use super::views::{
    ApiKeyView, InstanceRenderer, NodeView, QuotaView, RegionView, SshKeyView, UserView,
};
use crate::accounts::{NewUser, QuotaChange, Registrar, require_admin};
use crate::domain::Error;
use crate::nodes::{NewNode, TlsFiles};
use crate::services::Services;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/v1")
            .route("/users", web::post().to(register))
            .route("/users", web::get().to(users))
            .route("/users/{id}", web::get().to(user))
            .route("/users/{id}", web::patch().to(patch_user))
            .route("/users/{id}", web::delete().to(delete_user))
            .route("/tokens", web::post().to(login))
            .route("/tokens/current", web::delete().to(logout))
            .route("/auth/exchange", web::post().to(exchange))
            .route("/account", web::get().to(account))
            .route("/ssh-keys", web::get().to(ssh_keys))
            .route("/ssh-keys", web::post().to(add_ssh_key))
            .route("/ssh-keys/{id}", web::delete().to(delete_ssh_key))
            .route("/api-keys", web::get().to(api_keys))
            .route("/api-keys", web::post().to(create_api_key))
            .route("/api-keys/{id}", web::delete().to(revoke_api_key))
            .route("/instances", web::get().to(instances))
            .route("/instances", web::post().to(create_instance))
            .route("/instances/{name}", web::get().to(instance))
            .route("/instances/{name}", web::delete().to(delete_instance))
            .route("/regions", web::get().to(regions))
            .route("/regions", web::post().to(super::cluster::create_region))
            .route(
                "/regions/{region}/instances",
                web::get().to(region_instances),
            )
            .route("/nodes", web::get().to(nodes))
            .route("/nodes", web::post().to(create_node))
            .route("/nodes/{id}", web::delete().to(delete_node)),
    );
}

#[utoipa::path(post, path = "/v1/users", tag = "accounts", request_body(content((crate::api::schemas::NewUserAdminBody = "application/json"), (crate::api::schemas::NewUserAdminBody = "application/x-www-form-urlencoded"))), security(()), responses((status = 201, description = "The new account", body = crate::api::views::UserView)))]
async fn register(
    req: HttpRequest,
    s: web::Data<Services>,
    who: Option<Auth>,
    p: Params,
) -> ApiResult<HttpResponse> {
    // An admin creating a user may grant admin rights and bypasses closed registration.
    let registrar = match &who {
        Some(Auth(w)) if w.is_admin() => Registrar::Admin,
        _ => Registrar::Public,
    };
    let user = s
        .accounts
        .register(
            registrar,
            NewUser {
                username: p.require("username")?,
                email: p.require("email")?,
                password: p.require("password")?,
                admin: p.flag("admin"),
            },
            super::origin(&req),
        )
        .await?;
    Ok(HttpResponse::Created().json(UserView::from(&user)))
}

#[utoipa::path(post, path = "/v1/tokens", tag = "accounts", request_body(content((crate::api::schemas::LoginBody = "application/json"), (crate::api::schemas::LoginBody = "application/x-www-form-urlencoded"))), security(()), responses((status = 201, description = "A login token", body = crate::api::schemas::LoginAnswer)))]
async fn login(req: HttpRequest, s: web::Data<Services>, p: Params) -> ApiResult<HttpResponse> {
    let client = super::origin(&req);
    let (token, user) = s
        .accounts
        .login(p.require("username")?, p.require("password")?, client)
        .await?;
    Ok(HttpResponse::Created().json(json!({"token": token, "user": UserView::from(&user)})))
}

#[utoipa::path(delete, path = "/v1/tokens/current", tag = "accounts", responses((status = 204, description = "The token (or API key) sent is revoked")))]
async fn logout(s: web::Data<Services>, Auth(who): Auth) -> ApiResult<HttpResponse> {
    s.accounts.logout(&who).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(post, path = "/v1/auth/exchange", tag = "accounts", responses((status = 200, description = "An access JWT", body = crate::api::schemas::JwtPair)))]
async fn exchange(req: HttpRequest, s: web::Data<Services>) -> ApiResult<HttpResponse> {
    let cred = credential_of(&req).ok_or_else(|| {
        Error::Unauthorized("send the API token as 'Authorization: Bearer <token>'".into())
    })?;
    Ok(HttpResponse::Ok().json(s.accounts.exchange(&cred)?))
}

#[utoipa::path(get, path = "/v1/account", tag = "accounts", responses((status = 200, description = "The caller", body = crate::api::views::UserView)))]
async fn account(Auth(who): Auth) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(UserView::from(&who.user)))
}

#[utoipa::path(get, path = "/v1/ssh-keys", tag = "accounts", params(("page" = Option<u64>, Query, minimum = 1, description = "From 1"), ("per_page" = Option<u64>, Query, minimum = 1, maximum = 100, description = "1 to 100, default 50")), responses((status = 200, description = "The caller's SSH keys", body = Vec<crate::api::views::SshKeyView>, headers(("X-Total-Count" = u64, description = "Items in all pages")))))]
async fn ssh_keys(
    req: HttpRequest,
    s: web::Data<Services>,
    Auth(who): Auth,
) -> ApiResult<HttpResponse> {
    let slice = slice_of(&req)?;
    Ok(page_of(s.accounts.ssh_keys(&who, slice)?, |k| {
        SshKeyView::from(k)
    }))
}

#[utoipa::path(post, path = "/v1/ssh-keys", tag = "accounts", request_body(content((crate::api::schemas::SshKeyBody = "application/json"), (crate::api::schemas::SshKeyBody = "application/x-www-form-urlencoded"))), responses((status = 201, description = "The key", body = crate::api::views::SshKeyView)))]
async fn add_ssh_key(
    s: web::Data<Services>,
    Auth(who): Auth,
    p: Params,
) -> ApiResult<HttpResponse> {
    let text = p
        .first(&["public_key", "sshkey", "key"])
        .ok_or_else(|| Error::missing("public_key"))?;
    let key = s.accounts.add_ssh_key(&who, text).await?;
    Ok(HttpResponse::Created().json(SshKeyView::from(&key)))
}

#[utoipa::path(delete, path = "/v1/ssh-keys/{id}", tag = "accounts", params(("id" = String, Path, description = "The key")), responses((status = 204, description = "Deleted")))]
async fn delete_ssh_key(
    s: web::Data<Services>,
    Auth(who): Auth,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    s.accounts.delete_ssh_key(&who, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(get, path = "/v1/api-keys", tag = "accounts", params(("page" = Option<u64>, Query, minimum = 1, description = "From 1"), ("per_page" = Option<u64>, Query, minimum = 1, maximum = 100, description = "1 to 100, default 50")), responses((status = 200, description = "The caller's API keys", body = Vec<crate::api::views::ApiKeyView>, headers(("X-Total-Count" = u64, description = "Items in all pages")))))]
async fn api_keys(
    req: HttpRequest,
    s: web::Data<Services>,
    Auth(who): Auth,
) -> ApiResult<HttpResponse> {
    let slice = slice_of(&req)?;
    Ok(page_of(s.accounts.api_keys(&who, slice)?, |k| {
        ApiKeyView::of(k, None)
    }))
}

#[utoipa::path(post, path = "/v1/api-keys", tag = "accounts", request_body(content((crate::api::schemas::ApiKeyBody = "application/json"), (crate::api::schemas::ApiKeyBody = "application/x-www-form-urlencoded"))), responses((status = 201, description = "The key, with its secret (shown once)", body = crate::api::views::ApiKeyView)))]
async fn create_api_key(
    s: web::Data<Services>,
    Auth(who): Auth,
    p: Params,
) -> ApiResult<HttpResponse> {
    let (key, secret) = s.accounts.create_api_key(&who, p.require("name")?).await?;
    Ok(HttpResponse::Created().json(ApiKeyView::of(&key, Some(secret))))
}

#[utoipa::path(delete, path = "/v1/api-keys/{id}", tag = "accounts", params(("id" = String, Path, description = "The key")), responses((status = 204, description = "Revoked")))]
async fn revoke_api_key(
    s: web::Data<Services>,
    Auth(who): Auth,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    s.accounts.revoke_api_key(&who, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(get, path = "/v1/instances", tag = "instances", params(("all" = Option<bool>, Query, description = "Every user's apps (admins)"), ("page" = Option<u64>, Query, minimum = 1, description = "From 1"), ("per_page" = Option<u64>, Query, minimum = 1, maximum = 100, description = "1 to 100, default 50")), responses((status = 200, description = "The caller's apps", body = Vec<crate::api::views::InstanceView>, headers(("X-Total-Count" = u64, description = "Items in all pages")))))]
async fn instances(
    req: HttpRequest,
    s: web::Data<Services>,
    cache: web::Data<ListCache>,
    Auth(who): Auth,
) -> ApiResult<HttpResponse> {
    let q = Params::from_query(&req)?;
    let (slice, ..) = pagination(&q)?;
    let (body, total) = super::instance_list(&s, &cache, &who, "v1", q.flag("all"), slice)?;
    Ok(HttpResponse::Ok()
        .insert_header(("X-Total-Count", total.to_string()))
        .content_type("application/json")
        .body(body))
}

#[utoipa::path(post, path = "/v1/instances", tag = "instances", request_body(content((Option<crate::api::schemas::CreateInstanceBody> = "application/json"), (Option<crate::api::schemas::CreateInstanceBody> = "application/x-www-form-urlencoded"))), responses((status = 201, description = "The new app", body = crate::api::views::InstanceView)))]
async fn create_instance(
    s: web::Data<Services>,
    Auth(who): Auth,
    p: Params,
) -> ApiResult<HttpResponse> {
    let inst = s
        .apps
        .create(&who, p.first(&["name", "appname"]), p.get("region"))
        .await?;
    Ok(HttpResponse::Created().json(InstanceRenderer::new(&s).render(&inst)))
}

#[utoipa::path(get, path = "/v1/instances/{name}", tag = "instances", responses((status = 200, description = "The app, with where its processes run (`processes`) and, with the cluster on, the node its volumes pin it to (`pinned_to`)", body = crate::api::views::InstanceView)))]
async fn instance(
    s: web::Data<Services>,
    Auth(who): Auth,
    name: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let inst = s.apps.get(&who, &name)?;
    let placement = s.nodes.placement(&inst).await?;
    Ok(HttpResponse::Ok().json(
        InstanceRenderer::new(&s)
            .render(&inst)
            .with_placement(&placement),
    ))
}

#[utoipa::path(delete, path = "/v1/instances/{name}", tag = "instances", responses((status = 204, description = "Deleted with its containers, images and repository")))]
async fn delete_instance(
    s: web::Data<Services>,
    Auth(who): Auth,
    name: web::Path<String>,
) -> ApiResult<HttpResponse> {
    s.apps.delete(&who, &name).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(get, path = "/v1/regions", tag = "nodes", security(()), responses((status = 200, description = "Regions", body = Vec<crate::api::views::RegionView>, headers(("X-Total-Count" = u64, description = "Items in all pages")))))]
async fn regions(s: web::Data<Services>) -> ApiResult<HttpResponse> {
    let regions: Vec<RegionView> = s.apps.regions()?.iter().map(RegionView::from).collect();
    let total = regions.len() as u64;
    Ok(paged(regions, total))
}

#[utoipa::path(get, path = "/v1/regions/{region}/instances", tag = "instances", params(("region" = String, Path, description = "A region id or name"), ("all" = Option<bool>, Query, description = "Every user's apps (admins)"), ("page" = Option<u64>, Query, minimum = 1, description = "From 1"), ("per_page" = Option<u64>, Query, minimum = 1, maximum = 100, description = "1 to 100, default 50")), responses((status = 200, description = "The caller's apps in the region", body = Vec<crate::api::views::InstanceView>, headers(("X-Total-Count" = u64, description = "Items in all pages")))))]
async fn region_instances(
    req: HttpRequest,
    s: web::Data<Services>,
    Auth(who): Auth,
    region: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let q = Params::from_query(&req)?;
    let (slice, ..) = pagination(&q)?;
    let page = s.apps.list_in_region(&who, &region, q.flag("all"), slice)?;
    let mut r = InstanceRenderer::new(&s);
    Ok(paged(r.render_all(&page.items), page.total))
}

#[utoipa::path(get, path = "/v1/users", tag = "accounts", params(("page" = Option<u64>, Query, minimum = 1, description = "From 1"), ("per_page" = Option<u64>, Query, minimum = 1, maximum = 100, description = "1 to 100, default 50")), responses((status = 200, description = "Users (admins)", body = Vec<crate::api::views::UserView>, headers(("X-Total-Count" = u64, description = "Items in all pages")))))]
async fn users(
    req: HttpRequest,
    s: web::Data<Services>,
    Auth(who): Auth,
) -> ApiResult<HttpResponse> {
    let slice = slice_of(&req)?;
    Ok(page_of(s.accounts.users(&who, slice)?, |u| {
        UserView::from(u)
    }))
}

#[utoipa::path(get, path = "/v1/users/{id}", tag = "accounts", params(("id" = String, Path, description = "A user id or username")), responses((status = 200, description = "The user with their quota (admins)", body = crate::api::schemas::UserWithQuota)))]
async fn user(
    s: web::Data<Services>,
    Auth(who): Auth,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let user = s.accounts.find_user(&who, &id)?;
    Ok(HttpResponse::Ok().json(user_with_quota(&s, &user)?))
}

/// A user as `GET /v1/users/{id}` shows one: with their quota.
fn user_with_quota(s: &Services, user: &crate::domain::User) -> Result<serde_json::Value, Error> {
    let used = s.store.read(|r| r.quota_use(user.id))?;
    let mut v = serde_json::to_value(UserView::from(user)).map_err(Error::internal)?;
    v["quota"] = serde_json::to_value(QuotaView::new(s.apps.limits(), &user.quota, used))
        .map_err(Error::internal)?;
    Ok(v)
}

/// Sets a user's own limits (admins only): `max_apps`, `max_memory` (MiB) and `max_replicas`,
/// each a number,
/// or `default` for the installation's.
#[utoipa::path(patch, path = "/v1/users/{id}", tag = "accounts", request_body(content((crate::api::schemas::QuotaBody = "application/json"), (crate::api::schemas::QuotaBody = "application/x-www-form-urlencoded"))), params(("id" = String, Path, description = "A user id or username")), responses((status = 200, description = "The user with their new quota (admins)", body = crate::api::schemas::UserWithQuota)))]
async fn patch_user(
    s: web::Data<Services>,
    Auth(who): Auth,
    id: web::Path<String>,
    p: Params,
) -> ApiResult<HttpResponse> {
    fn limit<T: std::str::FromStr>(p: &Params, field: &str) -> Result<Option<Option<T>>, Error> {
        match p.get(field).map(str::trim) {
            None => Ok(None),
            Some("default") => Ok(Some(None)),
            Some(v) => v.parse::<T>().map(|n| Some(Some(n))).map_err(|_| {
                Error::invalid(
                    field,
                    format!(
                        "'{field}' must be a whole number, or 'default' for the installation's"
                    ),
                )
            }),
        }
    }
    require_admin(&who)?;
    let change = QuotaChange {
        max_apps: limit(&p, "max_apps")?,
        max_memory_mb: limit(&p, "max_memory")?,
        max_replicas: limit(&p, "max_replicas")?,
    };
    if change.max_apps.is_none() && change.max_memory_mb.is_none() && change.max_replicas.is_none()
    {
        return Err(Error::invalid(
            "max_apps",
            "give max_apps, max_memory or max_replicas to change",
        )
        .into());
    }
    let user = s.accounts.set_quota(&who, &id, change).await?;
    Ok(HttpResponse::Ok().json(user_with_quota(&s, &user)?))
}

#[utoipa::path(delete, path = "/v1/users/{id}", tag = "accounts", params(("id" = String, Path, description = "A user id or username")), responses((status = 204, description = "Deleted with their apps (admins)")))]
async fn delete_user(
    s: web::Data<Services>,
    Auth(who): Auth,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    s.delete_user(&who, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(get, path = "/v1/nodes", tag = "nodes", responses((status = 200, description = "Nodes (admins)", body = Vec<crate::api::views::NodeView>, headers(("X-Total-Count" = u64, description = "Items in all pages")))))]
async fn nodes(s: web::Data<Services>, Auth(who): Auth) -> ApiResult<HttpResponse> {
    let nodes: Vec<NodeView> = s
        .nodes
        .list_with_state(&who)
        .await?
        .iter()
        .map(|(n, st)| NodeView::with_state(n, st.as_ref()))
        .collect();
    let total = nodes.len() as u64;
    Ok(paged(nodes, total))
}

pub(super) fn new_node(p: &Params) -> Result<NewNode, Error> {
    let mut endpoint = p
        .first(&["address", "endpoint"])
        .ok_or_else(|| Error::missing("address"))?
        .trim()
        .to_string();
    let port = p.get("port").map(str::trim).unwrap_or("").to_string();
    if !port.is_empty() {
        if !endpoint.contains("://") {
            endpoint = format!("tcp://{endpoint}:{port}");
        }
    } else if !endpoint.contains("://") {
        endpoint = format!("tcp://{endpoint}");
    }
    let text = |name: &str| p.get(name).unwrap_or("").trim().to_string();
    let tls = match (p.get("ca"), p.get("cert"), p.get("key")) {
        (None, None, None) => None,
        (Some(ca), Some(cert), Some(key)) => Some(TlsFiles {
            ca: ca.to_string(),
            cert: cert.to_string(),
            key: key.to_string(),
        }),
        _ => {
            return Err(Error::invalid(
                "ca",
                "TLS needs all three of ca, cert and key (PEM text)",
            ));
        }
    };
    Ok(NewNode {
        name: p.require("name")?.to_string(),
        region: p.get("region").map(str::to_string),
        endpoint,
        tags: p
            .get("tags")
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(String::from)
            .collect(),
        ram: text("ram"),
        disk: text("disk"),
        processor: text("processor"),
        port,
        insecure: p.flag("insecure"),
        tls,
    })
}

#[utoipa::path(post, path = "/v1/nodes", tag = "nodes", request_body(content((crate::api::schemas::NodeBody = "application/json"), (crate::api::schemas::NodeBody = "application/x-www-form-urlencoded"))), responses((status = 201, description = "The node (admins)", body = crate::api::views::NodeView)))]
async fn create_node(
    s: web::Data<Services>,
    Auth(who): Auth,
    p: Params,
) -> ApiResult<HttpResponse> {
    crate::accounts::require_admin(&who)?;
    let node = s.nodes.create(&who, new_node(&p)?).await?;
    Ok(HttpResponse::Created().json(NodeView::from(&node)))
}

#[utoipa::path(delete, path = "/v1/nodes/{id}", tag = "nodes", params(("id" = String, Path, description = "The node")), responses((status = 204, description = "Deleted (admins)")))]
async fn delete_node(
    s: web::Data<Services>,
    Auth(who): Auth,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    s.nodes.delete(&who, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}
