//! Custom domains of an app: `GET|POST /v1/instances/{name}/domains`,
//! `DELETE /v1/instances/{name}/domains/{domain}`. The rules live in `apps::domains` and
//! `routing::RouteSync` keeps the route table in step; this file translates.

use super::error::ApiResult;
use super::extract::{Auth, Params};
use crate::domain::Error;
use crate::services::Services;
use actix_web::{HttpResponse, web};
use serde::Serialize;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/instances/{name}/domains", web::get().to(list))
        .route("/v1/instances/{name}/domains", web::post().to(add))
        .route(
            "/v1/instances/{name}/domains/{domain}",
            web::delete().to(remove),
        );
}

/// A custom domain as the API shows it: where to point its DNS record.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct DomainView {
    domain: String,
    app: String,
    /// The name a CNAME record for `domain` should point to.
    cname: String,
}

fn view(s: &Services, app: &str, domain: &str) -> DomainView {
    DomainView {
        domain: domain.to_string(),
        app: app.to_string(),
        cname: s.apps.links().cname(app),
    }
}

#[utoipa::path(get, path = "/v1/instances/{name}/domains", tag = "instances", responses((status = 200, description = "Custom domains", body = Vec<DomainView>, headers(("X-Total-Count" = u64, description = "Items in all pages")))))]
async fn list(
    s: web::Data<Services>,
    Auth(who): Auth,
    name: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let inst = s.apps.get(&who, &name)?;
    let items: Vec<DomainView> = inst
        .domains
        .iter()
        .map(|d| view(&s, &inst.name, d))
        .collect();
    Ok(HttpResponse::Ok()
        .insert_header(("X-Total-Count", items.len().to_string()))
        .json(items))
}

#[utoipa::path(post, path = "/v1/instances/{name}/domains", tag = "instances", request_body(content((crate::api::schemas::DomainBody = "application/json"), (crate::api::schemas::DomainBody = "application/x-www-form-urlencoded"))), responses((status = 201, description = "Added", body = DomainView), (status = 200, description = "It was there already", body = DomainView)))]
async fn add(
    s: web::Data<Services>,
    Auth(who): Auth,
    name: web::Path<String>,
    p: Params,
) -> ApiResult<HttpResponse> {
    let domain = p
        .first(&["domain", "hostname", "name"])
        .ok_or_else(|| Error::missing("domain"))?;
    let (inst, domain, added) = s.apps.add_domain(&who, &name, domain).await?;
    let body = view(&s, &inst.name, &domain);
    Ok(if added {
        HttpResponse::Created().json(body)
    } else {
        HttpResponse::Ok().json(body)
    })
}

#[utoipa::path(delete, path = "/v1/instances/{name}/domains/{domain}", tag = "instances", params(("name" = String, Path, description = "The app"), ("domain" = String, Path, description = "The domain")), responses((status = 204, description = "Removed")))]
async fn remove(
    s: web::Data<Services>,
    Auth(who): Auth,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (name, domain) = path.into_inner();
    s.apps.remove_domain(&who, &name, &domain).await?;
    Ok(HttpResponse::NoContent().finish())
}
