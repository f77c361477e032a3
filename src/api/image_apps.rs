//! Image apps and deploy hooks over HTTP: the panel's `POST /api/instances/deploy`,
//! `POST /v1/instances/{name}/deploys` (deploy an image), `GET /v1/instances/{name}/image`,
//! `GET|POST|DELETE /v1/instances/{name}/hook` (the app's deploy hook, its secrets shown once),
//! and the hook itself: `POST /v1/hooks/{token}` and the signed `POST /v1/hooks/app/{name}`.
//!
//! Handlers parse and translate; `image_apps` checks access and does the work.

use super::error::ApiResult;
use super::extract::{Auth, Params};
use super::views::InstanceRenderer;
use crate::domain::rfc3339;
use crate::image_apps::{DeployRequest, Deployed, PanelDeploy};
use crate::services::Services;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

/// A hook's body is small: at most a tag (GitHub's push payloads stay well below this).
const HOOK_BODY_LIMIT: usize = 256 * 1024;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/instances/deploy", web::post().to(panel_deploy))
        .route("/v1/instances/{name}/deploys", web::post().to(deploy))
        .route("/v1/instances/{name}/image", web::get().to(image))
        .route("/v1/instances/{name}/hook", web::get().to(hook))
        .route("/v1/instances/{name}/hook", web::post().to(rotate_hook))
        .route("/v1/instances/{name}/hook", web::delete().to(delete_hook))
        .service(
            web::resource("/v1/hooks/app/{name}")
                .app_data(web::PayloadConfig::new(HOOK_BODY_LIMIT))
                .route(web::post().to(signed_hook)),
        )
        .service(
            web::resource("/v1/hooks/{token}")
                .app_data(web::PayloadConfig::new(HOOK_BODY_LIMIT))
                .route(web::post().to(token_hook)),
        );
}

/// The body of `POST /v1/instances/{name}/deploys` (JSON or form).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct DeployBody {
    /// `[registry/]repository[:tag|@digest]`; without a tag, `:latest`.
    pub image: String,
    /// A login for the image's registry, kept sealed for later deploys of the app; an empty
    /// username forgets the stored one.
    pub registry_username: Option<String>,
    pub registry_password: Option<String>,
    /// The port the image serves on (`port` works too); default: one it exposes, else the app's.
    pub primary: Option<String>,
}

/// The body of the panel's `POST /api/instances/deploy` (every field of its document required).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PanelDeployBody {
    pub image: String,
    /// MiB: `512`, `512m`, `1g`.
    pub memory: String,
    /// Cores: `0.5`.
    pub cpu: String,
    /// Port mapping, `host:container` or `container`; the first counts.
    pub ports: String,
    pub node_id: String,
    pub name: String,
    /// Owner: user id or username.
    pub user: String,
    /// The port the router sends requests to.
    pub primary: String,
    /// Beyond the document: a login for a private registry, kept sealed for the app.
    pub registry_username: Option<String>,
    pub registry_password: Option<String>,
}

/// A finished deploy.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeployedView {
    pub app: String,
    /// `v3`
    pub release: String,
    pub version: u32,
    /// The image pulled (absent for a git deploy).
    pub source_image: Option<String>,
    /// The commit built (absent for an image deploy).
    pub commit: Option<String>,
    /// The build record whose log is the deploy's output.
    pub build_id: Option<String>,
    pub url: String,
}

fn deployed_view(s: &Services, d: &Deployed) -> DeployedView {
    DeployedView {
        app: d.app.clone(),
        release: format!("v{}", d.release.version),
        version: d.release.version,
        source_image: d.release.source_image.clone(),
        commit: Some(d.release.commit.clone()).filter(|c| !c.is_empty()),
        build_id: d.build.map(|b| b.to_string()),
        url: s.apps.links().url(&d.app),
    }
}

/// The image an app deploys, and who it pulls as (never the password).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ImageView {
    pub image: Option<String>,
    pub registry: Option<String>,
    pub registry_username: Option<String>,
}

/// A new deploy hook: shown once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HookSecretsView {
    /// POST here to deploy; the token in it is the secret.
    pub url: String,
    pub token: String,
    /// Or POST to `signed_url` with `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`
    /// under this key.
    pub secret: String,
    pub signed_url: String,
}

/// Whether an app has a deploy hook.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HookView {
    pub enabled: bool,
    pub created_by: Option<String>,
    pub created_at: Option<String>,
    pub signed_url: String,
}

fn base_url(req: &HttpRequest) -> String {
    let info = req.connection_info();
    format!("{}://{}", info.scheme(), info.host())
}

/// Where `app`'s hook takes signed calls.
fn signed_url(req: &HttpRequest, app: &str) -> String {
    format!("{}/v1/hooks/app/{app}", base_url(req))
}

/// A deploy done: `201 Created` with its release.
fn created(s: &Services, done: &Deployed) -> HttpResponse {
    HttpResponse::Created().json(deployed_view(s, done))
}

#[utoipa::path(
    post,
    path = "/api/instances/deploy",
    request_body = PanelDeployBody,
    responses(
        (status = 201, description = "Instance created and deployed"),
        (status = 400, description = "Missing or invalid parameter (named in `field`)"),
        (status = 401, description = "API key missing or invalid"),
        (status = 409, description = "Name taken"),
        (status = 422, description = "The pull or the health check failed (Docker's reason)"),
    ),
    tag = "panel"
)]
async fn panel_deploy(
    s: web::Data<Services>,
    Auth(who): Auth,
    p: Params,
) -> ApiResult<HttpResponse> {
    let field = |n: &str| p.get(n).unwrap_or("");
    let inst = s
        .image_apps
        .create_and_deploy(
            &who,
            PanelDeploy {
                image: field("image"),
                memory: field("memory"),
                cpu: field("cpu"),
                ports: field("ports"),
                node_id: field("nodeId"),
                name: field("name"),
                user: field("user"),
                primary: field("primary"),
                registry_username: p.get("registry_username"),
                registry_password: p.get("registry_password"),
            },
        )
        .await?;
    Ok(HttpResponse::Created().json(InstanceRenderer::new(&s).render(&inst)))
}

#[utoipa::path(
    post,
    path = "/v1/instances/{name}/deploys",
    request_body = DeployBody,
    params(("name" = String, Path, description = "App name")),
    responses(
        (status = 201, description = "Deployed as a new release", body = DeployedView),
        (status = 400, description = "Missing or invalid parameter"),
        (status = 404, description = "No such app"),
        (status = 422, description = "The pull or the health check failed; the previous release keeps serving"),
    ),
    tag = "deploys"
)]
async fn deploy(
    s: web::Data<Services>,
    Auth(who): Auth,
    name: web::Path<String>,
    p: Params,
) -> ApiResult<HttpResponse> {
    let port = p
        .first(&["primary", "port"])
        .map(|v| crate::domain::parse_port("primary", v))
        .transpose()?;
    let req = DeployRequest {
        image: p.require("image")?.to_string(),
        registry_username: p.get("registry_username").map(str::to_string),
        registry_password: p.get("registry_password").map(str::to_string),
        port,
    };
    let done = s.image_apps.deploy(&who, &name, req).await?;
    Ok(created(&s, &done))
}

#[utoipa::path(
    get,
    path = "/v1/instances/{name}/image",
    params(("name" = String, Path, description = "App name")),
    responses((status = 200, description = "The app's image", body = ImageView), (status = 404, description = "No such app")),
    tag = "deploys"
)]
async fn image(
    s: web::Data<Services>,
    Auth(who): Auth,
    name: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let source = s.image_apps.source(&who, &name)?;
    let login = source.as_ref().and_then(|s| s.login.as_ref());
    Ok(HttpResponse::Ok().json(ImageView {
        image: source.as_ref().map(|s| s.image.to_string()),
        registry: login.map(|l| l.registry.clone()),
        registry_username: login.map(|l| l.username.clone()),
    }))
}

#[utoipa::path(
    get,
    path = "/v1/instances/{name}/hook",
    params(("name" = String, Path, description = "App name")),
    responses((status = 200, description = "Whether the app has a deploy hook", body = HookView), (status = 404, description = "No such app")),
    tag = "deploys"
)]
async fn hook(
    req: HttpRequest,
    s: web::Data<Services>,
    Auth(who): Auth,
    name: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let hook = s.image_apps.hook(&who, &name)?;
    Ok(HttpResponse::Ok().json(HookView {
        enabled: hook.is_some(),
        created_by: hook.as_ref().map(|h| h.created_by.clone()),
        created_at: hook.as_ref().map(|h| rfc3339(h.created_at)),
        signed_url: signed_url(&req, &name),
    }))
}

#[utoipa::path(
    post,
    path = "/v1/instances/{name}/hook",
    params(("name" = String, Path, description = "App name")),
    responses((status = 201, description = "A new hook; the previous one stops working. Shown once.", body = HookSecretsView), (status = 404, description = "No such app")),
    tag = "deploys"
)]
async fn rotate_hook(
    req: HttpRequest,
    s: web::Data<Services>,
    Auth(who): Auth,
    name: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let secrets = s.image_apps.rotate_hook(&who, &name).await?;
    Ok(HttpResponse::Created()
        .insert_header(("Cache-Control", "no-store"))
        .json(HookSecretsView {
            url: format!("{}/v1/hooks/{}", base_url(&req), secrets.token),
            token: secrets.token,
            secret: secrets.secret,
            signed_url: signed_url(&req, &name),
        }))
}

#[utoipa::path(
    delete,
    path = "/v1/instances/{name}/hook",
    params(("name" = String, Path, description = "App name")),
    responses((status = 204, description = "The hook no longer works"), (status = 404, description = "No such app")),
    tag = "deploys"
)]
async fn delete_hook(
    s: web::Data<Services>,
    Auth(who): Auth,
    name: web::Path<String>,
) -> ApiResult<HttpResponse> {
    s.image_apps.delete_hook(&who, &name).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The body a hook may carry.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct HookBody {
    /// Deploy this tag of the app's image (image apps only).
    pub tag: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/hooks/{token}",
    request_body = Option<HookBody>,
    params(("token" = String, Path, description = "The hook's secret token")),
    responses(
        (status = 201, description = "Deployed", body = DeployedView),
        (status = 401, description = "Unknown or revoked hook"),
        (status = 422, description = "The deploy failed; the previous release keeps serving"),
    ),
    security(()),
    tag = "hooks"
)]
async fn token_hook(
    s: web::Data<Services>,
    token: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let done = s.image_apps.hook_by_token(&token, &body).await?;
    Ok(created(&s, &done))
}

#[utoipa::path(
    post,
    path = "/v1/hooks/app/{name}",
    request_body = Option<HookBody>,
    params(
        ("name" = String, Path, description = "App name"),
        ("X-Hub-Signature-256" = String, Header, description = "sha256=<hex HMAC-SHA256 of the body under the hook's secret>"),
    ),
    responses(
        (status = 201, description = "Deployed", body = DeployedView),
        (status = 401, description = "Bad or missing signature"),
        (status = 422, description = "The deploy failed; the previous release keeps serving"),
    ),
    security(()),
    tag = "hooks"
)]
async fn signed_hook(
    req: HttpRequest,
    s: web::Data<Services>,
    name: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let signature = req
        .headers()
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    let done = s.image_apps.hook_signed(&name, signature, &body).await?;
    Ok(created(&s, &done))
}
