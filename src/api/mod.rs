//! The JSON API over HTTP (actix-web): the Scalefog routes, the `/v1` REST routes, the admin
//! panel routes (`/api`) and the health check. Handlers translate requests into calls on the core services and back.

mod account;
mod audit;
mod cluster;
mod cluster_registry;
mod cron;
mod deploys;
mod domains;
pub mod error;
pub mod extract;
mod formation;
mod hostkey;
pub mod image_apps;
mod images;
pub mod list_cache;
pub mod metrics;
pub mod openapi;
mod pagination;
mod panel;
mod runs;
mod scalefog;
mod schemas;
mod v1;
pub mod views;
mod volumes;

use crate::services::Services;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;
use std::net::IpAddr;

/// Registers every API route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz));
    metrics::routes(cfg);
    scalefog::routes(cfg);
    // Before the `/v1` scope: a scope that matches a prefix answers 404 for the rest.
    deploys::routes(cfg);
    account::routes(cfg);
    hostkey::routes(cfg);
    images::routes(cfg);
    openapi::routes(cfg);
    domains::routes(cfg);
    cron::routes(cfg);
    formation::routes(cfg);
    volumes::routes(cfg);
    runs::routes(cfg);
    image_apps::routes(cfg);
    audit::routes(cfg);
    cluster::routes(cfg);
    cluster_registry::routes(cfg);
    v1::routes(cfg);
    panel::routes(cfg);
}

/// Renders an instance list, or serves it from the cache when the store has not changed since.
pub(crate) fn instance_list(
    s: &Services,
    cache: &list_cache::ListCache,
    who: &crate::accounts::Principal,
    route: &'static str,
    all: bool,
    slice: crate::store::Slice,
) -> Result<(bytes::Bytes, u64), crate::domain::Error> {
    let key = (
        who.id(),
        route,
        all && who.is_admin(),
        slice.offset,
        slice.limit,
    );
    let generation = s.store.generation();
    if let Some(hit) = cache.get(&key, generation) {
        return Ok(hit);
    }
    let page = s.apps.list(who, all, slice)?;
    let views = views::InstanceRenderer::new(s).render_all(&page.items);
    let body =
        bytes::Bytes::from(serde_json::to_vec(&views).map_err(crate::domain::Error::internal)?);
    cache.put(key, generation, body.clone(), page.total);
    Ok((body, page.total))
}

/// The JSON 404 for paths no route serves, and 405 for a path served with other methods (with
/// `Allow` from the OpenAPI document when the path is the API's).
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    let map = req.resource_map();
    if map.has_resource(req.path()) {
        let allowed = map
            .match_pattern(req.path())
            .map(|pattern| openapi::methods_of(&pattern))
            .unwrap_or_default();
        let mut r = error::plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            &format!("{} is not served on this path", req.method()),
        );
        if !allowed.is_empty() {
            r.headers_mut().insert(
                actix_web::http::header::ALLOW,
                actix_web::http::header::HeaderValue::from_str(&allowed.join(", "))
                    .expect("method names are header-safe"),
            );
        }
        return r;
    }
    error::plain(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such route; see README.md for the API",
    )
}

/// The peer address; proxies in front are not trusted for rate limiting.
pub fn client_ip(req: &HttpRequest) -> IpAddr {
    req.peer_addr()
        .map(|a| a.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

/// Where an API request comes from, for the audit log.
pub fn origin(req: &HttpRequest) -> crate::domain::Origin {
    crate::domain::Origin::new(crate::domain::Channel::Api, client_ip(req))
}

/// Store and Docker reachability. `503` only when the store itself fails; an unreachable Docker
/// is reported but the API keeps serving what does not need it.
#[utoipa::path(get, path = "/healthz", tag = "meta", security(()), responses((status = 200, description = "Store and Docker reachability", body = crate::api::schemas::Health), (status = 503, description = "The store fails", body = crate::api::schemas::Health)))]
async fn healthz(s: web::Data<Services>) -> HttpResponse {
    let store = s
        .store
        .read(|r| r.user_count())
        .map(|_| "ok")
        .map_err(|e| e.to_string());
    let docker = s.engine.ping().await;
    let body = json!({
        "status": if store.is_ok() && docker.is_ok() { "ok" } else { "degraded" },
        "version": env!("CARGO_PKG_VERSION"),
        "store": match &store { Ok(_) => json!({"ok": true}), Err(e) => json!({"ok": false, "error": e}) },
        "docker": {
            "endpoint": s.engine.endpoint(),
            "ok": docker.is_ok(),
            "error": docker.err().map(|e| e.to_string()),
        },
    });
    let status = if store.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    HttpResponse::build(status).json(body)
}
