//! `GET /metrics` (Prometheus text format, for an admin or the `metrics_token`), and the
//! middleware that counts every request of this listener by route template and status.
//! Served on the API listener only: the app router never answers it.

use super::error::ApiError;
use super::extract::credential_of;
use crate::services::Services;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, web};
use std::time::Instant;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(metrics));
}

/// The server's metrics.
#[utoipa::path(
    get,
    path = "/metrics",
    responses(
        (status = 200, description = "Prometheus text format (version 0.0.4)", content_type = "text/plain", body = String),
        (status = 401, description = "Neither an admin's token nor the metrics_token"),
    ),
    security(("bearer" = [])),
    tag = "metrics"
)]
pub async fn metrics(req: HttpRequest, s: web::Data<Services>) -> Result<HttpResponse, ApiError> {
    let credential = credential_of(&req);
    let text = web::block(move || s.metrics_text(credential.as_deref()))
        .await
        .map_err(crate::domain::Error::internal)??;
    Ok(HttpResponse::Ok()
        .content_type(crate::metrics::CONTENT_TYPE)
        .body(text))
}

/// Counts a request once it is answered: method, the route template that matched (not the
/// path: `/v1/instances/{id}`, so series stay bounded), status, and time to the response.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let metrics = req
        .app_data::<web::Data<Services>>()
        .map(|s| s.metrics.clone());
    let method = req.method().clone();
    let res = next.call(req).await;
    if let Some(m) = metrics {
        let (route, status) = match &res {
            Ok(r) => (r.request().match_pattern(), r.status()),
            Err(e) => (None, e.as_response_error().status_code()),
        };
        m.api_request(
            method.as_str(),
            route.as_deref(),
            status.as_u16(),
            started.elapsed(),
        );
    }
    res
}
