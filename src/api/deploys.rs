//! Deploy and lifecycle routes: the Scalefog `GET /instances/{start,stop,restart}/:appname`, and
//! under `/v1/instances/{name}`: start/stop/restart, rollback, releases, builds and their logs,
//! runtime logs (optionally streamed as server-sent events), config vars, settings (PATCH) and
//! cancelling the current deploy.
//!
//! Handlers only parse, check access through `apps.get`, and call the deployer.

use super::error::{ApiError, ApiResult};
use super::extract::{Auth, Params};
use super::pagination::{page_of, slice_of};
use super::views::InstanceRenderer;
use crate::deploy::Settings;
use crate::domain::{Build, ConfigChange, ConfigValue, Error, Instance, Release, rfc3339};
use crate::services::Services;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, guard, web};
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::json;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/instances/start/{name}", web::get().to(scalefog_start))
        .route("/instances/stop/{name}", web::get().to(scalefog_stop))
        .route("/instances/restart/{name}", web::get().to(scalefog_restart))
        // Registered ahead of the `/v1` scope, and guarded at the resource level so that other
        // methods on this path still reach the scope's GET and DELETE.
        .service(
            web::resource("/v1/instances/{name}")
                .guard(guard::Patch())
                .route(web::patch().to(patch_instance)),
        )
        .route("/v1/instances/{name}/start", web::post().to(start))
        .route("/v1/instances/{name}/stop", web::post().to(stop))
        .route("/v1/instances/{name}/restart", web::post().to(restart))
        .route("/v1/instances/{name}/rollback", web::post().to(rollback))
        .route("/v1/instances/{name}/releases", web::get().to(releases))
        .route("/v1/instances/{name}/builds", web::get().to(builds))
        .route(
            "/v1/instances/{name}/builds/{id}/log",
            web::get().to(build_log),
        )
        .route("/v1/instances/{name}/logs", web::get().to(logs))
        .route("/v1/instances/{name}/env", web::get().to(get_env))
        .route("/v1/instances/{name}/env", web::put().to(put_env))
        .route("/v1/instances/{name}/env", web::patch().to(patch_env))
        .route(
            "/v1/instances/{name}/env/{key}",
            web::delete().to(delete_env),
        )
        .route(
            "/v1/instances/{name}/deploys/current/cancel",
            web::post().to(cancel),
        );
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct ReleaseView {
    id: String,
    version: u32,
    status: &'static str,
    current: bool,
    description: String,
    image: String,
    commit: String,
    /// Names only: values are secrets as far as listings go.
    config_keys: Vec<String>,
    created_by: String,
    created_at: String,
    build_id: Option<String>,
}

fn release_view(r: &Release, current: Option<u32>) -> ReleaseView {
    ReleaseView {
        id: format!("v{}", r.version),
        version: r.version,
        status: match r.status {
            crate::domain::ReleaseStatus::Current => "current",
            crate::domain::ReleaseStatus::Superseded => "superseded",
        },
        current: current == Some(r.version),
        description: r.description.clone(),
        image: r.image.clone(),
        commit: r.commit.clone(),
        config_keys: r.env.keys().map(ToString::to_string).collect(),
        created_by: r.created_by.clone(),
        created_at: rfc3339(r.created_at),
        build_id: r.build_id.map(|b| b.to_string()),
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct BuildView {
    id: String,
    commit: String,
    branch: String,
    status: &'static str,
    release: Option<u32>,
    created_by: String,
    started_at: String,
    finished_at: Option<String>,
    error: Option<String>,
}

fn build_view(b: &Build) -> BuildView {
    BuildView {
        id: b.id.to_string(),
        commit: b.commit.clone(),
        branch: b.branch.clone(),
        status: b.status.as_str(),
        release: b.release,
        created_by: b.created_by.clone(),
        started_at: rfc3339(b.started_at),
        finished_at: b.finished_at.map(rfc3339),
        error: b.error.clone(),
    }
}

fn instance_json(s: &Services, i: &Instance) -> serde_json::Value {
    serde_json::to_value(InstanceRenderer::new(s).render(i)).unwrap_or_default()
}

/// The Scalefog routes answer in their own shape: `{"success": "true", ...instance}`.
fn scalefog_ok(s: &Services, i: &Instance) -> HttpResponse {
    let mut v = instance_json(s, i);
    if let Some(o) = v.as_object_mut() {
        o.insert("success".into(), json!("true"));
    }
    HttpResponse::Ok().json(v)
}

#[utoipa::path(get, path = "/instances/start/{name}", tag = "scalefog", responses((status = 200, description = "The app, started, with `success`", body = crate::api::schemas::Object)))]
async fn scalefog_start(
    s: web::Data<Services>,
    Auth(who): Auth,
    name: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let app = s.apps.get(&who, &name)?;
    Ok(scalefog_ok(&s, &s.deployer.start(&app, &who).await?))
}

#[utoipa::path(get, path = "/instances/stop/{name}", tag = "scalefog", responses((status = 200, description = "The app, stopped, with `success`", body = crate::api::schemas::Object)))]
async fn scalefog_stop(
    s: web::Data<Services>,
    Auth(who): Auth,
    name: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let app = s.apps.get(&who, &name)?;
    Ok(scalefog_ok(&s, &s.deployer.stop(&app, &who).await?))
}

#[utoipa::path(get, path = "/instances/restart/{name}", tag = "scalefog", responses((status = 200, description = "The app, restarted, with `success`", body = crate::api::schemas::Object)))]
async fn scalefog_restart(
    s: web::Data<Services>,
    Auth(who): Auth,
    name: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let app = s.apps.get(&who, &name)?;
    Ok(scalefog_ok(&s, &s.deployer.restart(&app, &who).await?))
}

#[utoipa::path(post, path = "/v1/instances/{name}/start", tag = "instances", responses((status = 200, description = "The app, started", body = crate::api::views::InstanceView)))]
async fn start(
    s: web::Data<Services>,
    Auth(who): Auth,
    name: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let app = s.apps.get(&who, &name)?;
    let app = s.deployer.start(&app, &who).await?;
    Ok(HttpResponse::Ok().json(instance_json(&s, &app)))
}

#[utoipa::path(post, path = "/v1/instances/{name}/stop", tag = "instances", responses((status = 200, description = "The app, stopped", body = crate::api::views::InstanceView)))]
async fn stop(
    s: web::Data<Services>,
    Auth(who): Auth,
    name: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let app = s.apps.get(&who, &name)?;
    let app = s.deployer.stop(&app, &who).await?;
    Ok(HttpResponse::Ok().json(instance_json(&s, &app)))
}

#[utoipa::path(post, path = "/v1/instances/{name}/restart", tag = "instances", responses((status = 200, description = "The app, restarted", body = crate::api::views::InstanceView)))]
async fn restart(
    s: web::Data<Services>,
    Auth(who): Auth,
    name: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let app = s.apps.get(&who, &name)?;
    let app = s.deployer.restart(&app, &who).await?;
    Ok(HttpResponse::Ok().json(instance_json(&s, &app)))
}

/// `release` (or `version`): `v2` or `2`; absent → the release before the current one.
#[utoipa::path(post, path = "/v1/instances/{name}/rollback", tag = "instances", request_body(content((Option<crate::api::schemas::RollbackBody> = "application/json"), (Option<crate::api::schemas::RollbackBody> = "application/x-www-form-urlencoded"))), responses((status = 201, description = "The new release", body = ReleaseView)))]
async fn rollback(
    s: web::Data<Services>,
    Auth(who): Auth,
    name: web::Path<String>,
    p: Params,
) -> ApiResult<HttpResponse> {
    let app = s.apps.get(&who, &name)?;
    let version = match p.first(&["release", "version"]) {
        None => None,
        Some(v) => Some(
            v.trim()
                .trim_start_matches(['v', 'V'])
                .parse::<u32>()
                .map_err(|_| Error::invalid("release", "release must look like v2 or 2"))?,
        ),
    };
    let r = s.deployer.rollback(&app, &who, version).await?;
    Ok(HttpResponse::Created().json(release_view(&r, Some(r.version))))
}

#[utoipa::path(get, path = "/v1/instances/{name}/releases", tag = "instances", params(("name" = String, Path, description = "The app"), ("page" = Option<u64>, Query, minimum = 1, description = "From 1"), ("per_page" = Option<u64>, Query, minimum = 1, maximum = 100, description = "1 to 100, default 50")), responses((status = 200, description = "Releases, newest first", body = Vec<ReleaseView>, headers(("X-Total-Count" = u64, description = "Items in all pages")))))]
async fn releases(
    req: HttpRequest,
    s: web::Data<Services>,
    Auth(who): Auth,
    name: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let app = s.apps.get(&who, &name)?;
    let page = s.deployer.releases(&app, slice_of(&req)?)?;
    Ok(page_of(page, |r| release_view(r, app.release)))
}

#[utoipa::path(get, path = "/v1/instances/{name}/builds", tag = "instances", params(("name" = String, Path, description = "The app"), ("page" = Option<u64>, Query, minimum = 1, description = "From 1"), ("per_page" = Option<u64>, Query, minimum = 1, maximum = 100, description = "1 to 100, default 50")), responses((status = 200, description = "Builds, newest first", body = Vec<BuildView>, headers(("X-Total-Count" = u64, description = "Items in all pages")))))]
async fn builds(
    req: HttpRequest,
    s: web::Data<Services>,
    Auth(who): Auth,
    name: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let app = s.apps.get(&who, &name)?;
    let page = s.deployer.builds(&app, slice_of(&req)?)?;
    Ok(page_of(page, build_view))
}

#[utoipa::path(get, path = "/v1/instances/{name}/builds/{id}/log", tag = "instances", params(("name" = String, Path, description = "The app"), ("id" = String, Path, description = "The build")), responses((status = 200, description = "The build and its log", body = crate::api::schemas::BuildLog)))]
async fn build_log(
    s: web::Data<Services>,
    Auth(who): Auth,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (name, id) = path.into_inner();
    let app = s.apps.get(&who, &name)?;
    let (build, log) = s.deployer.build_log(&app, &id)?;
    Ok(HttpResponse::Ok().json(json!({"build": build_view(&build), "log": log})))
}

/// `tail` (default 100, at most 10000); `follow=1` streams new lines as `text/event-stream`.
#[utoipa::path(get, path = "/v1/instances/{name}/logs", tag = "instances", params(("name" = String, Path, description = "The app"), ("tail" = Option<u64>, Query, maximum = 10000, description = "0 to 10000, default 100"), ("follow" = Option<bool>, Query, description = "Stream new lines as server-sent events")), responses((status = 200, description = "The last lines (`follow=1`: `text/event-stream`)", body = crate::api::schemas::Logs)))]
async fn logs(
    req: HttpRequest,
    s: web::Data<Services>,
    Auth(who): Auth,
    name: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let app = s.apps.get(&who, &name)?;
    let q = Params::from_query(&req)?;
    let tail = match q.get("tail").map(str::trim).filter(|t| !t.is_empty()) {
        None => 100,
        Some(t) => t
            .parse::<u64>()
            .ok()
            .filter(|n| *n <= 10_000)
            .ok_or_else(|| Error::invalid("tail", "tail must be a whole number from 0 to 10000"))?,
    };
    let follow = q.flag("follow");
    let stream = s.deployer.logs(&app, Some(tail), follow).await?;
    if follow {
        let events = stream.map(|line| {
            let frame = match line {
                Ok(l) => format!("data: {l}\n\n"),
                Err(e) => format!("event: error\ndata: {e}\n\n"),
            };
            Ok::<_, actix_web::Error>(web::Bytes::from(frame))
        });
        return Ok(HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, "text/event-stream"))
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .insert_header(("X-Accel-Buffering", "no"))
            .streaming(events));
    }
    let lines: Vec<String> = stream
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    Ok(HttpResponse::Ok().json(json!({"app": app.name, "lines": lines})))
}

#[utoipa::path(get, path = "/v1/instances/{name}/env", tag = "instances", responses((status = 200, description = "Config vars", body = std::collections::HashMap<String, String>)))]
async fn get_env(
    s: web::Data<Services>,
    Auth(who): Auth,
    name: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let app = s.apps.get(&who, &name)?;
    Ok(HttpResponse::Ok().json(app.shown_env()))
}

/// Config vars from a JSON object or a form (`KEY=value`). In JSON, a value is a string (or
/// number or boolean), `null` to unset, or `{"value": "...", "secret": true}`: `secret` marks
/// the name secret (`false` unmarks it), and without `value` only the mark changes.
fn env_body(req: &HttpRequest, body: &[u8]) -> Result<Vec<ConfigChange>, Error> {
    let ctype = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let trimmed = body.trim_ascii();
    if trimmed.is_empty() {
        return Ok(vec![]);
    }
    if ctype.contains("json") || (ctype.is_empty() && trimmed.first() == Some(&b'{')) {
        let v: serde_json::Value = serde_json::from_slice(trimmed)
            .map_err(|e| Error::invalid("body", format!("malformed JSON body: {e}")))?;
        let serde_json::Value::Object(map) = v else {
            return Err(Error::invalid(
                "body",
                "the body must be a JSON object of config vars, e.g. {\"KEY\": \"value\"}",
            ));
        };
        map.into_iter().map(|(k, v)| env_entry(k, v)).collect()
    } else {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(trimmed)
            .map_err(|_| Error::invalid("body", "the body is not valid form encoding"))?;
        Ok(pairs
            .into_iter()
            .map(|(k, v)| ConfigChange::set(k, v))
            .collect())
    }
}

/// One `"KEY": value` of a JSON body.
fn env_entry(key: String, v: serde_json::Value) -> Result<ConfigChange, Error> {
    use serde_json::Value;
    let scalar = |v: Value| match v {
        Value::Null => Some(ConfigValue::Unset),
        Value::String(s) => Some(ConfigValue::Set(s)),
        Value::Number(n) => Some(ConfigValue::Set(n.to_string())),
        Value::Bool(b) => Some(ConfigValue::Set(b.to_string())),
        _ => None,
    };
    let bad = |key: &str| {
        Error::invalid(
            "env",
            format!(
                "the value of {key} must be a string, number, boolean, null or {{\"value\": ..., \"secret\": true}}"
            ),
        )
    };
    match v {
        Value::Object(mut o) => {
            let secret = match o.remove("secret") {
                None => None,
                Some(Value::Bool(b)) => Some(b),
                Some(_) => {
                    return Err(Error::invalid(
                        "env",
                        format!("'secret' of {key} must be true or false"),
                    ));
                }
            };
            let value = match o.remove("value") {
                None => ConfigValue::Keep,
                Some(v) => scalar(v).ok_or_else(|| bad(&key))?,
            };
            if let Some(other) = o.keys().next() {
                return Err(Error::invalid(
                    "env",
                    format!("unknown field '{other}' for {key}: only value and secret"),
                ));
            }
            Ok(ConfigChange { key, value, secret })
        }
        v => {
            let value = scalar(v).ok_or_else(|| bad(&key))?;
            Ok(ConfigChange {
                key,
                value,
                secret: None,
            })
        }
    }
}

#[utoipa::path(patch, path = "/v1/instances/{name}/env", tag = "instances", request_body(content((Option<crate::api::schemas::ConfigVarsBody> = "application/json"), (Option<crate::api::schemas::ConfigVarsBody> = "application/x-www-form-urlencoded"))), responses((status = 200, description = "Config vars, changed", body = std::collections::HashMap<String, String>)))]
async fn patch_env(
    req: HttpRequest,
    s: web::Data<Services>,
    Auth(who): Auth,
    name: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let app = s.apps.get(&who, &name)?;
    let changes = env_body(&req, &body)?;
    let app = s.deployer.set_env(&app, &who, changes).await?;
    Ok(HttpResponse::Ok().json(app.shown_env()))
}

/// Replaces every config var: those absent from the body are unset.
#[utoipa::path(put, path = "/v1/instances/{name}/env", tag = "instances", request_body(content((Option<crate::api::schemas::ConfigVarsBody> = "application/json"), (Option<crate::api::schemas::ConfigVarsBody> = "application/x-www-form-urlencoded"))), responses((status = 200, description = "Config vars: exactly those sent", body = std::collections::HashMap<String, String>)))]
async fn put_env(
    req: HttpRequest,
    s: web::Data<Services>,
    Auth(who): Auth,
    name: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let app = s.apps.get(&who, &name)?;
    let mut changes = env_body(&req, &body)?;
    for k in app.env.keys() {
        if !changes.iter().any(|c| k == c.key.as_str()) {
            changes.push(ConfigChange::unset(k.to_string()));
        }
    }
    let app = s.deployer.set_env(&app, &who, changes).await?;
    Ok(HttpResponse::Ok().json(app.shown_env()))
}

#[utoipa::path(delete, path = "/v1/instances/{name}/env/{key}", tag = "instances", params(("name" = String, Path, description = "The app"), ("key" = String, Path, description = "The config var")), responses((status = 204, description = "Unset")))]
async fn delete_env(
    s: web::Data<Services>,
    Auth(who): Auth,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (name, key) = path.into_inner();
    let app = s.apps.get(&who, &name)?;
    if !app.env.contains_key(key.as_str()) {
        crate::domain::ConfigKey::parse(&key)?;
        return Err(ApiError(Error::NotFound(format!(
            "'{name}' has no config var {key}"
        ))));
    }
    s.deployer
        .set_env(&app, &who, vec![ConfigChange::unset(key)])
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// memory (MiB), cpu (cores), health_path, deploy_branch, read_only_rootfs.
#[utoipa::path(patch, path = "/v1/instances/{name}", tag = "instances", request_body(content((Option<crate::api::schemas::SettingsBody> = "application/json"), (Option<crate::api::schemas::SettingsBody> = "application/x-www-form-urlencoded"))), responses((status = 200, description = "The app with its new settings", body = crate::api::views::InstanceView)))]
async fn patch_instance(
    s: web::Data<Services>,
    Auth(who): Auth,
    name: web::Path<String>,
    p: Params,
) -> ApiResult<HttpResponse> {
    let app = s.apps.get(&who, &name)?;
    let number = |field: &str| -> Result<Option<f64>, Error> {
        match p.get(field).map(str::trim).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite())
                .map(Some)
                .ok_or_else(|| Error::invalid(field, format!("'{field}' must be a number"))),
        }
    };
    let memory_mb = match number("memory")? {
        None => None,
        Some(m) if m.fract() == 0.0 && m >= 0.0 && m <= f64::from(u32::MAX) => Some(m as u32),
        Some(_) => {
            return Err(ApiError(Error::invalid(
                "memory",
                "memory must be a whole number of MiB",
            )));
        }
    };
    let settings = Settings {
        memory_mb,
        cpu: number("cpu")?,
        health_path: p
            .first(&["health_path", "health_check_path"])
            .map(|s| s.trim().to_string()),
        deploy_branch: p
            .first(&["deploy_branch", "branch"])
            .map(|s| s.trim().to_string()),
        read_only_rootfs: p.boolean("read_only_rootfs")?,
    };
    let app = s.deployer.update_settings(&app, &who, settings).await?;
    Ok(HttpResponse::Ok().json(instance_json(&s, &app)))
}

#[utoipa::path(post, path = "/v1/instances/{name}/deploys/current/cancel", tag = "instances", responses((status = 202, description = "The deploy is being cancelled", body = crate::api::schemas::Cancelled)))]
async fn cancel(
    s: web::Data<Services>,
    Auth(who): Auth,
    name: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let app = s.apps.get(&who, &name)?;
    s.deployer.cancel(&app)?;
    Ok(HttpResponse::Accepted().json(json!({"app": app.name, "cancelled": true})))
}
