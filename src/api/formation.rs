//! Scaling an app: `GET|PATCH /v1/instances/{name}/formation` with `{"web": 3, "worker": 1}`
//! (replicas per process type, Heroku's word). The rules are the deploy engine's
//! (`deploy::formation`); this file translates.

use super::error::ApiResult;
use super::extract::{Auth, Params};
use crate::domain::Error;
use crate::services::Services;
use actix_web::{HttpResponse, web};
use std::collections::BTreeMap;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/instances/{name}/formation", web::get().to(show))
        .route("/v1/instances/{name}/formation", web::patch().to(scale));
}

#[utoipa::path(get, path = "/v1/instances/{name}/formation", tag = "instances", responses((status = 200, description = "Replicas per process type", body = std::collections::BTreeMap<String, u8>)))]
async fn show(
    s: web::Data<Services>,
    Auth(who): Auth,
    name: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let inst = s.apps.get(&who, &name)?;
    Ok(HttpResponse::Ok().json(s.deployer.formation(&inst)?))
}

#[utoipa::path(patch, path = "/v1/instances/{name}/formation", tag = "instances", request_body(content((crate::api::schemas::FormationBody = "application/json"), (crate::api::schemas::FormationBody = "application/x-www-form-urlencoded"))), responses((status = 200, description = "Replicas per process type, changed", body = std::collections::BTreeMap<String, u8>)))]
async fn scale(
    s: web::Data<Services>,
    Auth(who): Auth,
    name: web::Path<String>,
    p: Params,
) -> ApiResult<HttpResponse> {
    let inst = s.apps.get(&who, &name)?;
    let mut change = BTreeMap::new();
    for (kind, count) in p.pairs() {
        let n: i64 = count.trim().parse().map_err(|_| {
            Error::invalid(
                kind,
                format!("replicas must be a whole number, got '{count}'"),
            )
        })?;
        change.insert(kind.to_string(), n);
    }
    Ok(HttpResponse::Ok().json(s.deployer.scale(&inst, &who, change).await?))
}
