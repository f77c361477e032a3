//! SSH keys (add by pasting, list with fingerprints, delete) and API keys (create, shown once;
//! list; revoke).

use super::error::{ConsoleError, PageResult, inline};
use super::notice::Flash;
use super::pages::{ApiKeysPage, Layout, SshKeysPage};
use super::render::render;
use super::request::{Ctx, SignedForm};
use super::views::{ApiKeyRow, SshKeyRow};
use crate::store::Slice;
use actix_web::http::StatusCode;
use actix_web::web;

fn ssh_page(ctx: &Ctx, pasted: String, error: Option<String>) -> Result<SshKeysPage, ConsoleError> {
    let keys = ctx.services.accounts.ssh_keys(&ctx.who, Slice::ALL)?;
    Ok(SshKeysPage {
        layout: Layout::signed_in(ctx, "SSH keys", "ssh-keys"),
        keys: keys.items.iter().map(SshKeyRow::from).collect(),
        pasted,
        error,
    })
}

pub async fn ssh_keys(ctx: Ctx) -> PageResult {
    render(
        &ctx.req,
        StatusCode::OK,
        &ssh_page(&ctx, String::new(), None)?,
    )
}

pub async fn add_ssh_key(form: SignedForm) -> PageResult {
    let (ctx, f) = (&form.ctx, &form.fields);
    match ctx
        .services
        .accounts
        .add_ssh_key(&ctx.who, f.get("sshkey"))
        .await
    {
        Ok(k) => Ok(ctx.redirect(
            "/console/ssh-keys",
            Flash::ok(format!(
                "Added key {}. You can now git push.",
                k.fingerprint
            )),
        )),
        Err(e) => {
            let (status, message, _) = inline(e)?;
            // The core names the API parameter; the page has a "Public key" box.
            let message = message.replace("Sshkey is not", "That is not").replace(
                "Please fill in the sshkey field.",
                "Paste a public key first.",
            );
            let page = ssh_page(ctx, f.get("sshkey").to_string(), Some(message))?;
            render(&ctx.req, status, &page)
        }
    }
}

pub async fn delete_ssh_key(form: SignedForm, id: web::Path<String>) -> PageResult {
    let ctx = &form.ctx;
    ctx.services.accounts.delete_ssh_key(&ctx.who, &id).await?;
    Ok(ctx.redirect(
        "/console/ssh-keys",
        Flash::ok("Deleted the key. It can no longer push."),
    ))
}

fn api_page(
    ctx: &Ctx,
    new_key: Option<(String, String)>,
    name: String,
    error: Option<String>,
) -> Result<ApiKeysPage, ConsoleError> {
    let keys = ctx.services.accounts.api_keys(&ctx.who, Slice::ALL)?;
    let info = ctx.req.connection_info();
    Ok(ApiKeysPage {
        layout: Layout::signed_in(ctx, "API keys", "api-keys"),
        keys: keys.items.iter().map(ApiKeyRow::from).collect(),
        new_key,
        name,
        error,
        api_base: format!("{}://{}", info.scheme(), info.host()),
    })
}

pub async fn api_keys(ctx: Ctx) -> PageResult {
    render(
        &ctx.req,
        StatusCode::OK,
        &api_page(&ctx, None, String::new(), None)?,
    )
}

/// Shows the new key on the response to the POST itself (not after a redirect): the key is
/// shown exactly once and must never travel in a cookie or a URL. Pages are `no-store`.
pub async fn create_api_key(form: SignedForm) -> PageResult {
    let (ctx, f) = (&form.ctx, &form.fields);
    match ctx
        .services
        .accounts
        .create_api_key(&ctx.who, f.get("name"))
        .await
    {
        Ok((key, token)) => {
            let page = api_page(ctx, Some((key.name, token)), String::new(), None)?;
            render(&ctx.req, StatusCode::OK, &page)
        }
        Err(e) => {
            let (status, message, _) = inline(e)?;
            let page = api_page(ctx, None, f.get("name").to_string(), Some(message))?;
            render(&ctx.req, status, &page)
        }
    }
}

pub async fn revoke_api_key(form: SignedForm, id: web::Path<String>) -> PageResult {
    let ctx = &form.ctx;
    ctx.services.accounts.revoke_api_key(&ctx.who, &id).await?;
    Ok(ctx.redirect(
        "/console/api-keys",
        Flash::ok("Revoked the key. Anything using it is now refused."),
    ))
}
