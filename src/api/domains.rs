//! Custom domains of an app: `GET|POST /v1/instances/{name}/domains`,
//! `DELETE /v1/instances/{name}/domains/{domain}`. The rules are in `apps::domains`; this file
//! translates, and keeps the route table in step with what was stored.

use super::error::ApiResult;
use super::extract::{Auth, Params};
use crate::domain::Error;
use crate::routing::Target;
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
#[derive(Serialize)]
struct DomainView {
    domain: String,
    app: String,
    /// The name a CNAME record for `domain` should point to.
    cname: String,
}

fn view(s: &Services, app: &str, domain: &str) -> DomainView {
    DomainView {
        domain: domain.to_string(),
        app: app.to_string(),
        cname: format!("{app}.{}", s.config.domain),
    }
}

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

async fn add(
    s: web::Data<Services>,
    Auth(who): Auth,
    name: web::Path<String>,
    p: Params,
) -> ApiResult<HttpResponse> {
    let domain = p
        .first(&["domain", "hostname", "name"])
        .ok_or_else(|| Error::missing("domain"))?;
    let (inst, added) = s.apps.add_domain(&who, &name, domain).await?;
    s.routes.set_domains(&inst.name, &inst.domains);
    // An app that was never deployed must still answer on its new domain (503, not 404).
    s.routes
        .set_app_if_absent(&inst.name, Target::unrouted(&inst));
    let d = crate::domain::DomainName::parse(domain)?;
    let body = view(&s, &inst.name, d.as_str());
    Ok(if added {
        HttpResponse::Created().json(body)
    } else {
        HttpResponse::Ok().json(body)
    })
}

async fn remove(
    s: web::Data<Services>,
    Auth(who): Auth,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (name, domain) = path.into_inner();
    let inst = s.apps.remove_domain(&who, &name, &domain).await?;
    s.routes.set_domains(&inst.name, &inst.domains);
    Ok(HttpResponse::NoContent().finish())
}
