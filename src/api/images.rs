//! Images users may deploy: `GET /v1/images` (the catalog, and for admins the node's images too),
//! `POST /v1/images` and `DELETE /v1/images/{id-or-reference}` (admins keep the catalog), and the
//! panel's `GET /api/images` in its own shape.

use super::error::ApiResult;
use super::extract::{Auth, Params};
use super::pagination::{page_in, page_of, slice_of};
use crate::accounts::require_admin;
use crate::domain::{CatalogImage, rfc3339};
use crate::images::ImageEntry;
use crate::services::Services;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/images", web::get().to(list))
        .route("/v1/images", web::post().to(add))
        // A reference has slashes (`ghcr.io/org/app`); the id is a number.
        .route("/v1/images/{id:.+}", web::delete().to(remove))
        .route("/api/images", web::get().to(panel_list));
}

/// An image a user may choose, as `/v1` lists it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ImageView {
    /// The catalog entry's id (what `DELETE /v1/images/{id}` takes); null for a node image.
    pub id: Option<String>,
    /// What to deploy.
    pub reference: String,
    /// `catalog` or `node`.
    pub source: &'static str,
    pub description: String,
    /// Whether the caller may deploy it under the server's `image_policy`.
    pub deployable: bool,
    /// Whether the local node holds it already.
    pub on_node: bool,
    /// Docker's image id, when on the node.
    pub docker_id: Option<String>,
    /// The node's other tags of the same image.
    pub other_tags: Vec<String>,
    /// Bytes, when on the node.
    pub size: Option<i64>,
    pub created_at: String,
}

impl From<&ImageEntry> for ImageView {
    fn from(e: &ImageEntry) -> Self {
        ImageView {
            id: e.catalog.as_ref().map(|c| c.id.to_string()),
            reference: e.reference.clone(),
            source: e.source.as_str(),
            description: e
                .catalog
                .as_ref()
                .map(|c| c.description.clone())
                .unwrap_or_default(),
            deployable: e.deployable,
            on_node: e.docker_id.is_some(),
            docker_id: e.docker_id.clone(),
            other_tags: e.other_tags.clone(),
            size: e.size,
            created_at: rfc3339(e.created_at),
        }
    }
}

/// A catalog entry, as `POST /v1/images` answers it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CatalogImageView {
    pub id: String,
    pub reference: String,
    pub description: String,
    pub created_at: String,
}

impl From<&CatalogImage> for CatalogImageView {
    fn from(c: &CatalogImage) -> Self {
        CatalogImageView {
            id: c.id.to_string(),
            reference: c.reference.clone(),
            description: c.description.clone(),
            created_at: rfc3339(c.created_at),
        }
    }
}

/// An image in the panel's shape (its image objects are capitalised; `Image` is what
/// `/api/instances/deploy` takes).
#[derive(Serialize, utoipa::ToSchema)]
pub struct PanelImageView {
    /// The catalog id, or Docker's image id for a node image.
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Image")]
    pub image: String,
    #[serde(rename = "Description")]
    pub description: String,
    /// Other tags of the same image on the node.
    #[serde(rename = "AltImages")]
    pub alt_images: Vec<String>,
    /// `catalog` or `node`.
    #[serde(rename = "Source")]
    pub source: &'static str,
}

impl From<&ImageEntry> for PanelImageView {
    fn from(e: &ImageEntry) -> Self {
        let v = ImageView::from(e);
        PanelImageView {
            id: v.id.or(v.docker_id).unwrap_or_default(),
            name: v.reference.clone(),
            image: v.reference,
            description: v.description,
            alt_images: v.other_tags,
            source: v.source,
        }
    }
}

#[utoipa::path(
    get,
    path = "/v1/images",
    params(
        ("page" = Option<u64>, Query, description = "page, from 1"),
        ("per_page" = Option<u64>, Query, description = "at most 100")
    ),
    responses(
        (status = 200, description = "the catalog (admins: and the node's images), total in X-Total-Count", body = [ImageView]),
        (status = 401, description = "no or bad credentials")
    ),
    tag = "images"
)]
pub async fn list(
    req: HttpRequest,
    s: web::Data<Services>,
    Auth(who): Auth,
) -> ApiResult<HttpResponse> {
    let page = page_in(s.images.list(&who).await?, slice_of(&req)?);
    Ok(page_of(page, |e| ImageView::from(e)))
}

#[utoipa::path(
    post,
    path = "/v1/images",
    request_body(content = inline(CatalogImageForm), content_type = "application/json"),
    responses(
        (status = 201, description = "added to the catalog", body = CatalogImageView),
        (status = 400, description = "not an image reference, or a bad description"),
        (status = 403, description = "not an admin"),
        (status = 409, description = "already in the catalog")
    ),
    tag = "images"
)]
pub async fn add(s: web::Data<Services>, Auth(who): Auth, p: Params) -> ApiResult<HttpResponse> {
    let image = s
        .images
        .add(
            &who,
            p.require("reference")?,
            p.get("description").unwrap_or(""),
        )
        .await?;
    Ok(HttpResponse::Created().json(CatalogImageView::from(&image)))
}

/// The body of `POST /v1/images` (form-encoded or JSON). It describes the body for the OpenAPI
/// document; the handler reads it through `Params`, so that errors name the field.
#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
pub struct CatalogImageForm {
    /// `busybox:1.36`, or a repository (`ghcr.io/org/app`) for every tag of it.
    pub reference: String,
    pub description: Option<String>,
}

#[utoipa::path(
    delete,
    path = "/v1/images/{id}",
    params(("id" = String, Path, description = "the catalog id, or the reference")),
    responses(
        (status = 204, description = "removed from the catalog"),
        (status = 403, description = "not an admin"),
        (status = 404, description = "no such catalog entry")
    ),
    tag = "images"
)]
pub async fn remove(
    s: web::Data<Services>,
    Auth(who): Auth,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    s.images.remove(&who, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    get,
    path = "/api/images",
    responses(
        (status = 200, description = "the images instances can be deployed from", body = [PanelImageView]),
        (status = 401, description = "no or bad key"),
        (status = 403, description = "not an admin's key")
    ),
    tag = "panel"
)]
pub async fn panel_list(s: web::Data<Services>, Auth(who): Auth) -> ApiResult<HttpResponse> {
    require_admin(&who)?;
    let all = s.images.list(&who).await?;
    let views: Vec<PanelImageView> = all.iter().map(PanelImageView::from).collect();
    Ok(HttpResponse::Ok().json(views))
}
