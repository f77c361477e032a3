//! The cluster's image registry (admins): `GET|PUT|DELETE /v1/cluster/registry`. The rules are
//! `nodes`' (`nodes/registry.rs`); this file translates. The password goes in, never out.

use super::error::ApiResult;
use super::extract::{Auth, Params};
use crate::domain::rfc3339;
use crate::nodes::{RegistryInfo, RegistrySettings};
use crate::services::Services;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/cluster/registry", web::get().to(show))
        .route("/v1/cluster/registry", web::put().to(set))
        .route("/v1/cluster/registry", web::delete().to(remove));
}

/// The cluster's registry as the API shows it (no password, ever).
#[derive(Serialize, utoipa::ToSchema)]
pub struct RegistryView {
    /// Whether one is set: without one, images are streamed to the nodes.
    pub configured: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set_at: Option<String>,
}

impl From<Option<RegistryInfo>> for RegistryView {
    fn from(r: Option<RegistryInfo>) -> Self {
        match r {
            None => RegistryView {
                configured: false,
                address: None,
                push_address: None,
                username: None,
                set_by: None,
                set_at: None,
            },
            Some(r) => RegistryView {
                configured: true,
                address: Some(r.address),
                push_address: r.push_address,
                username: r.username,
                set_by: Some(r.set_by),
                set_at: Some(rfc3339(r.set_at)),
            },
        }
    }
}

/// `PUT /v1/cluster/registry`. (Read through `Params`, which takes forms and JSON alike; the
/// type describes the body for the OpenAPI document.)
#[allow(dead_code)]
#[derive(Deserialize, utoipa::ToSchema)]
pub struct SetRegistry {
    /// `host[:port]` every node pulls from (image names start with it).
    pub address: String,
    /// `host[:port]` this machine's engine pushes to, when it reaches the registry by another
    /// name (e.g. `127.0.0.1:5000` for a registry on this machine).
    pub push_address: Option<String>,
    /// Empty or missing: the registry needs no login.
    pub username: Option<String>,
    /// Required with a new username; the same username again keeps the stored password.
    pub password: Option<String>,
}

#[utoipa::path(get, path = "/v1/cluster/registry", responses((status = 200, body = RegistryView), (status = 403)), tag = "cluster")]
pub(super) async fn show(s: web::Data<Services>, Auth(who): Auth) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(RegistryView::from(s.nodes.registry(&who)?)))
}

#[utoipa::path(put, path = "/v1/cluster/registry", request_body = SetRegistry, responses((status = 200, body = RegistryView), (status = 400), (status = 403)), tag = "cluster")]
pub(super) async fn set(
    s: web::Data<Services>,
    Auth(who): Auth,
    p: Params,
) -> ApiResult<HttpResponse> {
    let settings = RegistrySettings {
        address: p.require("address")?.to_string(),
        push_address: p.get("push_address").map(str::to_string),
        username: p.get("username").map(str::to_string),
        password: p.get("password").map(str::to_string),
    };
    let info = s.nodes.set_registry(&who, settings).await?;
    Ok(HttpResponse::Ok().json(RegistryView::from(Some(info))))
}

#[utoipa::path(delete, path = "/v1/cluster/registry", responses((status = 204), (status = 403), (status = 404)), tag = "cluster")]
pub(super) async fn remove(s: web::Data<Services>, Auth(who): Auth) -> ApiResult<HttpResponse> {
    s.nodes.remove_registry(&who).await?;
    Ok(HttpResponse::NoContent().finish())
}
