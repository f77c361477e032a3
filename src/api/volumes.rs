//! Persistent volumes of an app: `GET|POST /v1/instances/{name}/volumes` (`{"name": "data",
//! "path": "/data"}`), `DELETE /v1/instances/{name}/volumes/{volume}`. The rules and the
//! remounting are the deploy engine's (`deploy::volumes`); this file translates.

use super::error::ApiResult;
use super::extract::{Auth, Params};
use crate::domain::{AppVolume, Error};
use crate::services::Services;
use actix_web::{HttpResponse, web};
use serde::Serialize;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/instances/{name}/volumes", web::get().to(list))
        .route("/v1/instances/{name}/volumes", web::post().to(add))
        .route(
            "/v1/instances/{name}/volumes/{volume}",
            web::delete().to(remove),
        );
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct VolumeView {
    name: String,
    path: String,
    app: String,
    created_at: i64,
}

fn view(app: &str, v: &AppVolume) -> VolumeView {
    VolumeView {
        name: v.name.to_string(),
        path: v.path.to_string(),
        app: app.to_string(),
        created_at: v.created_at,
    }
}

#[utoipa::path(get, path = "/v1/instances/{name}/volumes", tag = "instances", responses((status = 200, description = "Volumes", body = Vec<VolumeView>, headers(("X-Total-Count" = u64, description = "Items in all pages")))))]
async fn list(
    s: web::Data<Services>,
    Auth(who): Auth,
    name: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let inst = s.apps.get(&who, &name)?;
    let items: Vec<VolumeView> = inst.volumes.iter().map(|v| view(&inst.name, v)).collect();
    Ok(HttpResponse::Ok()
        .insert_header(("X-Total-Count", items.len().to_string()))
        .json(items))
}

#[utoipa::path(post, path = "/v1/instances/{name}/volumes", tag = "instances", request_body(content((crate::api::schemas::VolumeBody = "application/json"), (crate::api::schemas::VolumeBody = "application/x-www-form-urlencoded"))), responses((status = 201, description = "Added", body = VolumeView)))]
async fn add(
    s: web::Data<Services>,
    Auth(who): Auth,
    name: web::Path<String>,
    p: Params,
) -> ApiResult<HttpResponse> {
    let inst = s.apps.get(&who, &name)?;
    let volume = p.first(&["name"]).ok_or_else(|| Error::missing("name"))?;
    let path = p.first(&["path"]).ok_or_else(|| Error::missing("path"))?;
    let added = s.deployer.add_volume(&inst, &who, volume, path).await?;
    Ok(HttpResponse::Created().json(view(&inst.name, &added)))
}

#[utoipa::path(delete, path = "/v1/instances/{name}/volumes/{volume}", tag = "instances", params(("name" = String, Path, description = "The app"), ("volume" = String, Path, description = "The volume")), responses((status = 204, description = "Removed")))]
async fn remove(
    s: web::Data<Services>,
    Auth(who): Auth,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (name, volume) = path.into_inner();
    let inst = s.apps.get(&who, &name)?;
    s.deployer.remove_volume(&inst, &who, &volume).await?;
    Ok(HttpResponse::NoContent().finish())
}
