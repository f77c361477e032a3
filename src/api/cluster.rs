//! The cluster (admins): `GET|POST /v1/cluster` (turn it on with the address other machines
//! reach this one at; the answer holds the `docker swarm join` command and how many running apps
//! are moving into it) and `POST /v1/regions`.
//! The rules are `nodes`' (`nodes/cluster.rs`); this file translates.

use super::error::ApiResult;
use super::extract::{Auth, Params};
use super::views::RegionView;
use crate::domain::rfc3339;
use crate::nodes::ClusterInfo;
use crate::services::Services;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/cluster", web::get().to(show))
        .route("/v1/cluster", web::post().to(enable));
}

/// The cluster as `GET|POST /v1/cluster` show it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ClusterView {
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertise: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manager_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// What to run on a machine Scalefog cannot reach over its Engine API.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub join_command: Option<String>,
    /// Apps that still run as plain containers: they are moving into the cluster, one at a
    /// time in the background (a move that failed is in the audit log as `app.move`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apps_to_move: Option<usize>,
    /// Scalefog's public SSH key: add it to `~/.ssh/authorized_keys` of the user named in a
    /// node's `ssh://user@host` endpoint (a user that may run `docker`).
    pub ssh_public_key: String,
}

impl ClusterView {
    fn new(c: Option<ClusterInfo>, apps_to_move: usize, ssh_public_key: String) -> Self {
        match c {
            None => ClusterView {
                enabled: false,
                advertise: None,
                manager_id: None,
                since: None,
                join_command: None,
                apps_to_move: None,
                ssh_public_key,
            },
            Some(c) => ClusterView {
                enabled: true,
                advertise: Some(c.cluster.advertise),
                manager_id: Some(c.cluster.manager_id),
                since: Some(rfc3339(c.cluster.since)),
                join_command: Some(c.join_command),
                apps_to_move: Some(apps_to_move),
                ssh_public_key,
            },
        }
    }
}

/// `POST /v1/cluster`. (Read through `Params`, which takes forms and JSON alike; the type
/// describes the body for the OpenAPI document.)
#[allow(dead_code)]
#[derive(Deserialize, utoipa::ToSchema)]
pub struct EnableCluster {
    /// The IP address other machines reach this one at.
    pub advertise: String,
}

/// `POST /v1/regions` (described as [`EnableCluster`] is).
#[allow(dead_code)]
#[derive(Deserialize, utoipa::ToSchema)]
pub struct NewRegion {
    pub name: String,
}

#[utoipa::path(get, path = "/v1/cluster", responses((status = 200, body = ClusterView), (status = 403)), tag = "cluster")]
async fn show(s: web::Data<Services>, Auth(who): Auth) -> ApiResult<HttpResponse> {
    let info = s.nodes.cluster_info(&who).await?;
    let moving = s.deployer.apps_to_move()?.len();
    let key = s.nodes.ssh_public_key(&who)?;
    Ok(HttpResponse::Ok().json(ClusterView::new(info, moving, key)))
}

#[utoipa::path(post, path = "/v1/cluster", request_body = EnableCluster, responses((status = 201, body = ClusterView), (status = 400), (status = 403), (status = 409)), tag = "cluster")]
async fn enable(s: web::Data<Services>, Auth(who): Auth, p: Params) -> ApiResult<HttpResponse> {
    crate::accounts::require_admin(&who)?;
    let advertise = p.require("advertise")?;
    let (info, moving) = s.enable_cluster(&who, advertise).await?;
    let key = s.nodes.ssh_public_key(&who)?;
    Ok(HttpResponse::Created().json(ClusterView::new(Some(info), moving, key)))
}

#[utoipa::path(post, path = "/v1/regions", request_body = NewRegion, responses((status = 201, body = RegionView), (status = 400), (status = 403), (status = 409)), tag = "regions")]
pub(super) async fn create_region(
    s: web::Data<Services>,
    Auth(who): Auth,
    p: Params,
) -> ApiResult<HttpResponse> {
    let region = s.nodes.create_region(&who, p.require("name")?).await?;
    Ok(HttpResponse::Created().json(RegionView::from(&region)))
}
