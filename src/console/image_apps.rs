//! Deploying an image from the app page (the card under "Deploy with git push"): the same
//! `image_apps` call as `POST /v1/instances/{name}/deploys`, run as this visitor's operation so
//! the page follows the pull's log like a push's.

use super::apps::app_path;
use super::deploys::{act, failed};
use super::error::PageResult;
use super::notice::Flash;
use super::ops::Operations;
use super::request::SignedForm;
use crate::image_apps::DeployRequest;
use actix_web::web;

/// `image`, and optionally `registry_username` and `registry_password`.
pub async fn deploy(
    form: SignedForm,
    ops: web::Data<Operations>,
    name: web::Path<String>,
) -> PageResult {
    let (ctx, f) = (&form.ctx, &form.fields);
    let app = ctx.services.apps.get(&ctx.who, &name)?;
    let given = |field: &str| Some(f.get(field).to_string()).filter(|v| !v.trim().is_empty());
    let req = DeployRequest {
        image: f.get("image").to_string(),
        registry_username: given("registry_username"),
        registry_password: given("registry_password"),
        port: None,
    };
    if req.image.trim().is_empty() {
        let e = crate::domain::Error::missing("image");
        return Ok(ctx.redirect(&app_path(&app.name), failed("Deploying", e)));
    }
    let (image_apps, who, app_name) = (
        ctx.services.image_apps.clone(),
        ctx.who.clone(),
        app.name.clone(),
    );
    let work = async move {
        match image_apps.deploy(&who, &app_name, req).await {
            Ok(d) => Flash::ok(format!(
                "Deployed {} as v{} of {}.",
                d.release.source_image.as_deref().unwrap_or_default(),
                d.release.version,
                d.app
            )),
            Err(e) => failed("Deploying the image", e),
        }
    };
    Ok(act(ctx, &ops, &app, "Deploying an image to".into(), work).await)
}
