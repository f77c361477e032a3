//! An app's scheduled jobs: `GET /v1/instances/{name}/cron` gives the jobs of its current
//! release (from `app.json`) with their next run, and the history of runs, newest first
//! (paginated). The scheduling is the deploy engine's (`deploy::cron`).

use super::error::ApiResult;
use super::extract::{Auth, Params};
use super::pagination::pagination;
use crate::domain::rfc3339;
use crate::services::Services;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/instances/{name}/cron", web::get().to(show));
}

#[utoipa::path(get, path = "/v1/instances/{name}/cron", tag = "instances", params(("name" = String, Path, description = "The app"), ("page" = Option<u64>, Query, minimum = 1, description = "From 1"), ("per_page" = Option<u64>, Query, minimum = 1, maximum = 100, description = "1 to 100, default 50")), responses((status = 200, description = "Jobs and runs", body = crate::api::schemas::Cron)))]
async fn show(
    s: web::Data<Services>,
    Auth(who): Auth,
    name: web::Path<String>,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    let inst = s.apps.get(&who, &name)?;
    let (slice, page, per_page) = pagination(&Params::from_query(&req)?)?;
    let (jobs, runs) = s.deployer.cron(&inst, slice)?;
    let total = runs.total;
    let runs: Vec<_> = runs
        .items
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "command": r.command,
                "schedule": r.schedule,
                "release": r.release,
                "due_at": rfc3339(r.due_at),
                "started_at": rfc3339(r.started_at),
                "finished_at": r.finished_at.map(rfc3339),
                "status": r.status,
                "exit_code": r.exit_code,
                "output": r.output,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "jobs": jobs,
        "runs": runs,
        "page": page,
        "per_page": per_page,
        "total": total,
    })))
}
