//! One-off runs of an app: `POST /v1/instances/{name}/runs` starts one detached
//! (`{"command": "rake db:migrate"}`, split like a Procfile line, or `{"command": ["sh", "-c",
//! "…"]}`) and answers 202 with its record; `GET /v1/instances/{name}/runs` lists them, newest
//! first; `GET /v1/instances/{name}/runs/{id}` gives one with its status, exit code and output.
//! The runs themselves are the deploy engine's (`deploy::runs`); this file translates.

use super::error::ApiResult;
use super::extract::Auth;
use super::pagination::{page_of, slice_of};
use crate::domain::{self, Error, RunRecord};
use crate::services::Services;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/instances/{name}/runs", web::get().to(list))
        .route("/v1/instances/{name}/runs", web::post().to(start))
        .route("/v1/instances/{name}/runs/{id}", web::get().to(show));
}

/// A run as JSON; `output` only when asked (one run, not lists).
fn view(r: &RunRecord, output: bool) -> Value {
    let mut v = json!({
        "id": r.id,
        "app": r.app,
        "release": format!("v{}", r.release),
        "command": r.command,
        "user": r.user,
        "detached": r.detached,
        "tty": r.tty,
        "status": r.status.as_str(),
        "exit_code": r.exit_code,
        "error": r.error,
        "started_at": domain::rfc3339(r.started_at),
        "finished_at": r.finished_at.map(domain::rfc3339),
    });
    if output {
        v["output"] = json!(r.output);
        v["output_truncated"] = json!(r.output_truncated);
    }
    v
}

/// The command of a request body: a string split like a Procfile line, or a list of strings.
fn command_of(body: &[u8]) -> Result<Vec<String>, Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::missing("command"));
    }
    let value: Value = serde_json::from_slice(body).map_err(|_| {
        Error::invalid(
            "body",
            "the body must be JSON: {\"command\": \"COMMAND ARGS\"} or {\"command\": [\"COMMAND\", \"ARG\"]}",
        )
    })?;
    match value.get("command") {
        None | Some(Value::Null) => Err(Error::missing("command")),
        Some(Value::String(line)) => domain::split_command(line).ok_or_else(|| {
            Error::invalid("command", "the command is empty or has an unclosed quote")
        }),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| Error::invalid("command", "a command list must hold only strings")),
        Some(_) => Err(Error::invalid(
            "command",
            "the command must be a string or a list of strings",
        )),
    }
}

#[utoipa::path(post, path = "/v1/instances/{name}/runs", tag = "instances", request_body(content = crate::api::schemas::RunBody, content_type = "application/json"), responses((status = 202, description = "Started", body = crate::api::schemas::Run, headers( ("Location" = String, description = "The run")))))]
async fn start(
    s: web::Data<Services>,
    Auth(who): Auth,
    name: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let inst = s.apps.get(&who, &name)?;
    let command = command_of(&body)?;
    let run = s.deployer.run_detached(&inst, &who, command).await?;
    Ok(HttpResponse::Accepted()
        .insert_header((
            "Location",
            format!("/v1/instances/{}/runs/{}", inst.name, run.id),
        ))
        .json(view(&run, true)))
}

#[utoipa::path(get, path = "/v1/instances/{name}/runs", tag = "instances", params(("name" = String, Path, description = "The app"), ("page" = Option<u64>, Query, minimum = 1, description = "From 1"), ("per_page" = Option<u64>, Query, minimum = 1, maximum = 100, description = "1 to 100, default 50")), responses((status = 200, description = "Runs, newest first", body = Vec<crate::api::schemas::Run>, headers(("X-Total-Count" = u64, description = "Items in all pages")))))]
async fn list(
    req: HttpRequest,
    s: web::Data<Services>,
    Auth(who): Auth,
    name: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let inst = s.apps.get(&who, &name)?;
    let page = s.deployer.runs_of(&inst.name, slice_of(&req)?)?;
    Ok(page_of(page, |r| view(r, false)))
}

#[utoipa::path(get, path = "/v1/instances/{name}/runs/{id}", tag = "instances", params(("name" = String, Path, description = "The app"), ("id" = String, Path, description = "The run")), responses((status = 200, description = "The run with its output", body = crate::api::schemas::Run)))]
async fn show(
    s: web::Data<Services>,
    Auth(who): Auth,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (name, id) = path.into_inner();
    let inst = s.apps.get(&who, &name)?;
    let id: u64 = id
        .parse()
        .map_err(|_| Error::invalid("id", format!("'{id}' is not a run id (a number)")))?;
    let run = s.deployer.run_of(&inst.name, id)?;
    Ok(HttpResponse::Ok().json(view(&run, true)))
}
