//! The admin "panel" API (`/api/...`): users (`/api/users`, `/api/getUser`, `/api/users/create`),
//! instances (`/api/instances`, `/api/getInstance`, `/api/getUserInstance`,
//! `/api/instance/delete`) and nodes (`/api/nodes`, `/api/nodes/create`, `/api/nodes/delete`);
//! `/api/images` is in `api::images`. Users carry the panel's `userId` beside Scalefog's fields,
//! with the bodies and status codes of the panel it was designed from, authenticated by an
//! admin's key in `x-api-key` (the other credential headers work too). Its quirks are the reference's: lookups answer `201`,
//! and a missing record is a `400`, not a `404`.

use super::error::{ApiError, ApiResult};
use super::extract::{Auth, Params};
use super::v1::new_node;
use super::views::{InstanceRenderer, NodeView, UserView};
use crate::accounts::{ChosenId, NewUser, Principal, Registrar, require_admin};
use crate::domain::Error;
use crate::domain::User;
use crate::services::Services;
use crate::store::Slice;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
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

/// A user as the panel shows one: Scalefog's fields and the panel's `userId` (the id the panel
/// chose at creation, else Scalefog's id), which `/api/getUserInstance` takes.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PanelUserView {
    #[serde(flatten)]
    pub user: UserView,
    #[serde(rename = "userId")]
    pub user_id: String,
}

impl From<&User> for PanelUserView {
    fn from(u: &User) -> Self {
        PanelUserView {
            user: UserView::from(u),
            user_id: u.external_id.clone().unwrap_or_else(|| u.id.to_string()),
        }
    }
}

#[utoipa::path(get, path = "/api/users", tag = "panel", responses((status = 200, description = "Users (admins)", body = Vec<crate::api::views::UserView>)))]
async fn users(s: web::Data<Services>, Auth(who): Auth) -> ApiResult<HttpResponse> {
    let users: Vec<PanelUserView> = s
        .accounts
        .users(&who, Slice::ALL)?
        .items
        .iter()
        .map(PanelUserView::from)
        .collect();
    Ok(HttpResponse::Ok().json(users))
}

#[utoipa::path(post, path = "/api/getUser", tag = "panel", request_body(content((crate::api::schemas::GetUserBody = "application/json"), (crate::api::schemas::GetUserBody = "application/x-www-form-urlencoded"))), responses((status = 201, description = "The user", body = crate::api::views::UserView)))]
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
    Ok(HttpResponse::Created().json(PanelUserView::from(&user)))
}

#[utoipa::path(post, path = "/api/users/create", tag = "panel", request_body(content((crate::api::schemas::PanelNewUserBody = "application/json"), (crate::api::schemas::PanelNewUserBody = "application/x-www-form-urlencoded"))), responses((status = 201, description = "The new user", body = crate::api::views::UserView)))]
async fn create_user(
    s: web::Data<Services>,
    Auth(who): Auth,
    req: HttpRequest,
    p: Params,
) -> ApiResult<HttpResponse> {
    admin(&who)?;
    let user = s
        .accounts
        .register_with_id(
            Registrar::Admin,
            NewUser {
                username: p.require("username")?,
                email: p.require("email")?,
                password: p.require("password")?,
                admin: p.flag("admin"),
            },
            ChosenId::parse(p.get("userId"))?,
            super::origin(&req),
        )
        .await?;
    Ok(HttpResponse::Created().json(PanelUserView::from(&user)))
}

#[utoipa::path(get, path = "/api/instances", tag = "panel", responses((status = 200, description = "Every app", body = Vec<crate::api::views::InstanceView>)))]
async fn instances(s: web::Data<Services>, Auth(who): Auth) -> ApiResult<HttpResponse> {
    admin(&who)?;
    let page = s.apps.list(&who, true, Slice::ALL)?;
    Ok(HttpResponse::Ok().json(InstanceRenderer::new(&s).render_all(&page.items)))
}

#[utoipa::path(delete, path = "/api/instance/delete", tag = "panel", request_body(content((crate::api::schemas::IdBody = "application/json"), (crate::api::schemas::IdBody = "application/x-www-form-urlencoded"))), responses((status = 201, description = "Deleted", body = crate::api::schemas::PanelDeleted)))]
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

#[utoipa::path(post, path = "/api/getUserInstance", tag = "panel", request_body(content((crate::api::schemas::UserIdBody = "application/json"), (crate::api::schemas::UserIdBody = "application/x-www-form-urlencoded"))), responses((status = 200, description = "The user's apps", body = Vec<crate::api::views::InstanceView>)))]
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
        origin: who.origin,
    };
    let page = s.apps.list(&owner, false, Slice::ALL)?;
    Ok(HttpResponse::Ok().json(InstanceRenderer::new(&s).render_all(&page.items)))
}

#[utoipa::path(post, path = "/api/getInstance", tag = "panel", request_body(content((crate::api::schemas::IdBody = "application/json"), (crate::api::schemas::IdBody = "application/x-www-form-urlencoded"))), responses((status = 200, description = "The app", body = crate::api::views::InstanceView)))]
async fn instance(s: web::Data<Services>, Auth(who): Auth, p: Params) -> ApiResult<HttpResponse> {
    admin(&who)?;
    let inst = s
        .apps
        .get(&who, p.require("id")?)
        .map_err(not_found_is_400)?;
    Ok(HttpResponse::Ok().json(InstanceRenderer::new(&s).render(&inst)))
}

#[utoipa::path(get, path = "/api/nodes", tag = "panel", responses((status = 200, description = "Nodes", body = Vec<crate::api::views::NodeView>)))]
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

#[utoipa::path(post, path = "/api/nodes/create", tag = "panel", request_body(content((crate::api::schemas::NodeBody = "application/json"), (crate::api::schemas::NodeBody = "application/x-www-form-urlencoded"))), responses((status = 201, description = "The node", body = crate::api::views::NodeView)))]
async fn create_node(
    s: web::Data<Services>,
    Auth(who): Auth,
    p: Params,
) -> ApiResult<HttpResponse> {
    admin(&who)?;
    let node = s.nodes.create(&who, new_node(&p)?).await?;
    Ok(HttpResponse::Created().json(NodeView::from(&node)))
}

#[utoipa::path(delete, path = "/api/nodes/delete", tag = "panel", request_body(content((crate::api::schemas::NodeIdBody = "application/json"), (crate::api::schemas::NodeIdBody = "application/x-www-form-urlencoded"))), responses((status = 201, description = "Deleted", body = crate::api::schemas::PanelDeleted)))]
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
