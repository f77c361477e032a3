//! The admin page of the image catalog: what users may deploy, and the images the node already
//! holds (to add one in a click). The core decides who may change it (`require_admin`).

use super::error::{ConsoleError, PageResult, inline};
use super::notice::Flash;
use super::pages::Layout;
use super::render::{PageTemplate, render};
use super::request::{Ctx, SignedForm};
use crate::domain::rfc3339;
use crate::images::{ImageEntry, ImageSource};
use actix_web::http::StatusCode;
use actix_web::web;
use askama::Template;

/// One row of the page.
pub struct ImageRow {
    /// The catalog id, for catalog rows.
    pub id: Option<u64>,
    pub reference: String,
    pub description: String,
    pub on_node: bool,
    pub other_tags: String,
    /// `2026-12-03`
    pub date: String,
}

impl From<&ImageEntry> for ImageRow {
    fn from(e: &ImageEntry) -> Self {
        ImageRow {
            id: e.catalog.as_ref().map(|c| c.id),
            reference: e.reference.clone(),
            description: e
                .catalog
                .as_ref()
                .map(|c| c.description.clone())
                .unwrap_or_default(),
            on_node: e.docker_id.is_some(),
            other_tags: e.other_tags.join(", "),
            date: rfc3339(e.created_at).chars().take(10).collect(),
        }
    }
}

#[derive(Template)]
#[template(path = "admin_images.html")]
pub struct ImagesPage {
    pub layout: Layout,
    pub catalog: Vec<ImageRow>,
    pub node: Vec<ImageRow>,
    /// `catalog` or `any`.
    pub policy: &'static str,
    pub error: Option<String>,
    pub form_reference: String,
    pub form_description: String,
}

impl PageTemplate for ImagesPage {
    fn shows_flash(&self) -> bool {
        self.layout.flash.is_some()
    }
}

async fn page(
    ctx: &Ctx,
    error: Option<String>,
    reference: String,
    description: String,
) -> Result<ImagesPage, ConsoleError> {
    crate::accounts::require_admin(&ctx.who)?;
    let images = &ctx.services.images;
    let all = images.list(&ctx.who).await?;
    let (catalog, node): (Vec<_>, Vec<_>) =
        all.iter().partition(|e| e.source == ImageSource::Catalog);
    Ok(ImagesPage {
        layout: Layout::signed_in(ctx, "Images", "images"),
        catalog: catalog.into_iter().map(ImageRow::from).collect(),
        node: node.into_iter().map(ImageRow::from).collect(),
        policy: images.policy().as_str(),
        error,
        form_reference: reference,
        form_description: description,
    })
}

pub async fn show(ctx: Ctx) -> PageResult {
    let p = page(&ctx, None, String::new(), String::new()).await?;
    render(&ctx.req, StatusCode::OK, &p)
}

pub async fn add(form: SignedForm) -> PageResult {
    let (ctx, f) = (&form.ctx, &form.fields);
    let added = ctx
        .services
        .images
        .add(&ctx.who, f.get("reference"), f.get("description"))
        .await;
    match added {
        Ok(image) => Ok(ctx.redirect(
            "/console/admin/images",
            Flash::ok(format!("Added {} to the catalog.", image.reference)),
        )),
        Err(e) => {
            let (status, message, _) = inline(e)?;
            let p = page(
                ctx,
                Some(message),
                f.get("reference").trim().to_string(),
                f.get("description").trim().to_string(),
            )
            .await?;
            render(&ctx.req, status, &p)
        }
    }
}

pub async fn remove(form: SignedForm, id: web::Path<String>) -> PageResult {
    let ctx = &form.ctx;
    let image = ctx.services.images.remove(&ctx.who, &id).await?;
    Ok(ctx.redirect(
        "/console/admin/images",
        Flash::ok(format!(
            "Removed {} from the catalog. Apps already deployed from it keep running.",
            image.reference
        )),
    ))
}
