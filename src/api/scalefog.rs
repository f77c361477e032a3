//! The Scalefog API, the product's documented contract: `/account/*` (register, token, keys) and
//! `/instances/*` (create, list, get, delete, regions), parameters from the query string or a
//! form/JSON body, answers in its `{"success": ...}` shapes.

use super::error::ApiResult;
use super::extract::{Auth, Params};
use super::list_cache::ListCache;
use super::views::InstanceRenderer;
use crate::accounts::{NewUser, Registrar};
use crate::services::Services;
use crate::store::Slice;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/account/register", web::post().to(register))
        .route("/account/getToken", web::post().to(get_token))
        .route("/account/addkey", web::post().to(add_key))
        .route("/instances", web::get().to(list))
        .route("/instances/create", web::post().to(create))
        .route("/instances/regions", web::get().to(regions))
        .route("/instances/delete/{appname}", web::get().to(delete));
}

#[utoipa::path(post, path = "/account/register", tag = "scalefog", request_body(content((crate::api::schemas::NewUserBody = "application/json"), (crate::api::schemas::NewUserBody = "application/x-www-form-urlencoded"))), security(()), responses((status = 200, description = "The new account", body = Vec<crate::api::schemas::ScalefogUser>)))]
async fn register(req: HttpRequest, s: web::Data<Services>, p: Params) -> ApiResult<HttpResponse> {
    let user = s
        .accounts
        .register(
            Registrar::Public,
            NewUser {
                username: p.require("username")?,
                email: p.require("email")?,
                password: p.require("password")?,
                admin: false,
            },
            super::origin(&req),
        )
        .await?;
    Ok(HttpResponse::Ok().json(json!([{
        "success": "true",
        "id": user.id.to_string(),
        "username": user.username,
        "email": user.email,
        "admin": user.admin,
    }])))
}

#[utoipa::path(post, path = "/account/getToken", tag = "scalefog", request_body(content((crate::api::schemas::LoginBody = "application/json"), (crate::api::schemas::LoginBody = "application/x-www-form-urlencoded"))), security(()), responses((status = 200, description = "A login token", body = Vec<crate::api::schemas::ScalefogToken>)))]
async fn get_token(req: HttpRequest, s: web::Data<Services>, p: Params) -> ApiResult<HttpResponse> {
    let client = super::origin(&req);
    let (token, _) = s
        .accounts
        .login(p.require("username")?, p.require("password")?, client)
        .await?;
    Ok(HttpResponse::Ok().json(json!([{"success": "true", "token": token}])))
}

#[utoipa::path(post, path = "/account/addkey", tag = "scalefog", request_body(content((crate::api::schemas::AddKeyBody = "application/json"), (crate::api::schemas::AddKeyBody = "application/x-www-form-urlencoded"))), responses((status = 200, description = "The key was added", body = Vec<crate::api::schemas::ScalefogKey>)))]
async fn add_key(s: web::Data<Services>, Auth(who): Auth, p: Params) -> ApiResult<HttpResponse> {
    let key = s.accounts.add_ssh_key(&who, p.require("sshkey")?).await?;
    Ok(HttpResponse::Ok().json(json!([{
        "success": "true",
        "id": key.id.to_string(),
        "fingerprint": key.fingerprint,
    }])))
}

#[utoipa::path(get, path = "/instances", tag = "scalefog", params(("all" = Option<bool>, Query, description = "Every user's apps (admins)")), responses((status = 200, description = "The caller's apps (`all=1`: every app, for admins)", body = Vec<crate::api::views::InstanceView>)))]
async fn list(
    req: HttpRequest,
    s: web::Data<Services>,
    cache: web::Data<ListCache>,
    Auth(who): Auth,
) -> ApiResult<HttpResponse> {
    let q = Params::from_query(&req)?;
    let (body, _) = super::instance_list(&s, &cache, &who, "scalefog", q.flag("all"), Slice::ALL)?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(body))
}

#[utoipa::path(post, path = "/instances/create", tag = "scalefog", request_body(content((Option<crate::api::schemas::ScalefogCreateBody> = "application/json"), (Option<crate::api::schemas::ScalefogCreateBody> = "application/x-www-form-urlencoded"))), responses((status = 200, description = "The new app", body = crate::api::views::InstanceView)))]
async fn create(s: web::Data<Services>, Auth(who): Auth, p: Params) -> ApiResult<HttpResponse> {
    let inst = s
        .apps
        .create(&who, p.first(&["appname", "name"]), p.get("region"))
        .await?;
    Ok(HttpResponse::Ok().json(InstanceRenderer::new(&s).render(&inst)))
}

#[utoipa::path(get, path = "/instances/delete/{appname}", tag = "scalefog", responses((status = 200, description = "The app was deleted", body = crate::api::schemas::ScalefogDeleted)))]
async fn delete(
    s: web::Data<Services>,
    Auth(who): Auth,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    s.apps.delete(&who, &path).await?;
    Ok(HttpResponse::Ok().json(json!({"success": "true", "deleted": path.into_inner()})))
}

#[utoipa::path(get, path = "/instances/regions", tag = "scalefog", security(()), responses((status = 200, description = "Region id → name", body = Vec<crate::api::schemas::Object>)))]
async fn regions(s: web::Data<Services>) -> ApiResult<HttpResponse> {
    let map: serde_json::Map<String, serde_json::Value> = s
        .apps
        .regions()?
        .into_iter()
        .map(|r| (r.id.to_string(), json!(r.name)))
        .collect();
    Ok(HttpResponse::Ok().json(json!([map])))
}
