//! The admin "panel" API (`/api/...`): users (`/api/users`, `/api/getUser`, `/api/users/create`),
//! instances (`/api/instances`, `/api/getInstance`, `/api/getUserInstance`,
//! `/api/instance/delete`) and nodes (`/api/nodes`, `/api/nodes/create`, `/api/nodes/delete`),
//! with the bodies and status codes of the panel it was designed from, authenticated by an
//! admin's key in `x-api-key` (the other credential headers work too). Its quirks are the reference's: lookups answer `201`,
//! and a missing record is a `400`, not a `404`.

use super::error::{ApiError, ApiResult};
use super::extract::{Auth, Params};
use super::v1::new_node;
use super::views::{InstanceRenderer, NodeView, UserView};
use crate::accounts::{NewUser, Principal, Registrar, require_admin};
use crate::domain::Error;
use crate::services::Services;
use crate::store::Slice;
use actix_web::{HttpResponse, web};
use serde_json::json;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api")
            .route("/users", web::get().to(users))
            .route("/getUser", web::post().to(get_user))
            .route("/users/create", web::post().to(create_user))
            .route("/instances", web::get().to(instances))
            .route("/instance/delete", web::delete().to(delete_instance))
            .route("/getUserInstance", web::post().to(user_instances))
            .route("/getInstance", web::post().to(instance))
            .route("/nodes", web::get().to(nodes))
            .route("/nodes/create", web::post().to(create_node))
            .route("/nodes/delete", web::delete().to(delete_node)),
    );
}

/// The panel reports a missing record as a bad request.
fn not_found_is_400(e: Error) -> ApiError {
    match e {
        Error::NotFound(m) => ApiError(Error::invalid("id", m)),
        other => ApiError(other),
    }
}

fn admin(who: &Principal) -> ApiResult<()> {
    require_admin(who).map_err(ApiError)
}

async fn users(s: web::Data<Services>, Auth(who): Auth) -> ApiResult<HttpResponse> {
    let users: Vec<UserView> = s
        .accounts
        .users(&who, Slice::ALL)?
        .items
        .iter()
        .map(UserView::from)
        .collect();
    Ok(HttpResponse::Ok().json(users))
}

async fn get_user(s: web::Data<Services>, Auth(who): Auth, p: Params) -> ApiResult<HttpResponse> {
    admin(&who)?;
    let value = p.require("value")?;
    let user = match p.require("type")? {
        "email" => s.accounts.find_user_by_email(&who, value),
        "username" => s.accounts.find_user(&who, value),
        _ => return Err(Error::invalid("type", "type must be 'email' or 'username'").into()),
    }
    .map_err(|e| match e {
        Error::NotFound(m) => ApiError(Error::invalid("value", m)),
        other => ApiError(other),
    })?;
    Ok(HttpResponse::Created().json(UserView::from(&user)))
}

async fn create_user(
    s: web::Data<Services>,
    Auth(who): Auth,
    p: Params,
) -> ApiResult<HttpResponse> {
    admin(&who)?;
    if p.get("userId").is_some_and(|v| !v.trim().is_empty()) {
        return Err(
            Error::invalid("userId", "userId is assigned by the server; leave it out").into(),
        );
    }
    let user = s
        .accounts
        .register(
            Registrar::Admin,
            NewUser {
                username: p.require("username")?,
                email: p.require("email")?,
                password: p.require("password")?,
                admin: p.flag("admin"),
            },
        )
        .await?;
    Ok(HttpResponse::Created().json(UserView::from(&user)))
}

async fn instances(s: web::Data<Services>, Auth(who): Auth) -> ApiResult<HttpResponse> {
    admin(&who)?;
    let page = s.apps.list(&who, true, Slice::ALL)?;
    Ok(HttpResponse::Ok().json(InstanceRenderer::new(&s).render_all(&page.items)))
}

async fn delete_instance(
    s: web::Data<Services>,
    Auth(who): Auth,
    p: Params,
) -> ApiResult<HttpResponse> {
    admin(&who)?;
    let id = p.require("id")?;
    s.apps.delete(&who, id).await.map_err(not_found_is_400)?;
    Ok(HttpResponse::Created().json(json!({"success": true, "deleted": id})))
}

async fn user_instances(
    s: web::Data<Services>,
    Auth(who): Auth,
    p: Params,
) -> ApiResult<HttpResponse> {
    admin(&who)?;
    let id = p.require("userId")?;
    let user = s.accounts.find_user(&who, id).map_err(|e| match e {
        Error::NotFound(m) => ApiError(Error::invalid("userId", m)),
        other => ApiError(other),
    })?;
    let owner = Principal {
        user,
        token_hash: None,
    };
    let page = s.apps.list(&owner, false, Slice::ALL)?;
    Ok(HttpResponse::Ok().json(InstanceRenderer::new(&s).render_all(&page.items)))
}

async fn instance(s: web::Data<Services>, Auth(who): Auth, p: Params) -> ApiResult<HttpResponse> {
    admin(&who)?;
    let inst = s
        .apps
        .get(&who, p.require("id")?)
        .map_err(not_found_is_400)?;
    Ok(HttpResponse::Ok().json(InstanceRenderer::new(&s).render(&inst)))
}

async fn nodes(s: web::Data<Services>, Auth(who): Auth) -> ApiResult<HttpResponse> {
    let nodes: Vec<NodeView> = s
        .nodes
        .list_with_state(&who)
        .await?
        .iter()
        .map(|(n, st)| NodeView::with_state(n, st.as_ref()))
        .collect();
    Ok(HttpResponse::Ok().json(nodes))
}

async fn create_node(
    s: web::Data<Services>,
    Auth(who): Auth,
    p: Params,
) -> ApiResult<HttpResponse> {
    admin(&who)?;
    let node = s.nodes.create(&who, new_node(&p)?).await?;
    Ok(HttpResponse::Created().json(NodeView::from(&node)))
}

async fn delete_node(
    s: web::Data<Services>,
    Auth(who): Auth,
    p: Params,
) -> ApiResult<HttpResponse> {
    admin(&who)?;
    let id = p.require("nodeId")?;
    s.nodes.delete(&who, id).await.map_err(|e| match e {
        Error::NotFound(m) => ApiError(Error::invalid("nodeId", m)),
        other => ApiError(other),
    })?;
    Ok(HttpResponse::Created().json(json!({"success": true, "deleted": id})))
}
