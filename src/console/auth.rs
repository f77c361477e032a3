//! Sign in, register, sign out.

use super::error::{ConsoleError, PageResult, inline};
use super::notice::Flash;
use super::pages::{Layout, RegisterPage, SignInPage};
use super::render::render;
use super::request::{
    AnonForm, Ctx, SignedForm, Visitor, redirect_with, session_cookie, session_removal,
};
use crate::accounts::{NewUser, Registrar, Registration};
use actix_web::cookie::Cookie;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, web};
use serde::Deserialize;

#[derive(Deserialize)]
pub struct Next {
    next: Option<String>,
}

/// Only our own pages are valid places to return to after sign-in (no open redirect).
fn safe_next(next: &str) -> &str {
    let ok = next.starts_with("/console/")
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.starts_with("/console/sign-");
    if ok { next } else { "/console/apps" }
}

pub async fn sign_in_page(v: Visitor, q: web::Query<Next>) -> PageResult {
    let next = q.next.clone().unwrap_or_default();
    if v.signed_in {
        return Ok(redirect_with(&v.req, safe_next(&next), None));
    }
    let page = SignInPage {
        layout: Layout::visitor(&v, "Sign in"),
        username: String::new(),
        next,
        error: None,
        registration_open: v.services.accounts.registration() == Registration::Open,
    };
    Ok(v.finish(render(&v.req, StatusCode::OK, &page)?))
}

pub async fn sign_in(form: AnonForm) -> PageResult {
    let (v, f) = (&form.visitor, &form.fields);
    let ip = super::request::origin(&v.req);
    match v
        .services
        .accounts
        .sign_in(f.get("username"), f.get("password"), ip)
        .await
    {
        Ok(s) => {
            let signed_in = session_cookie(&v.req, s.id);
            redirect_setting(&v.req, safe_next(f.get("next")), None, signed_in)
        }
        Err(e) => {
            let (status, message, _) = inline(e)?;
            let page = SignInPage {
                layout: Layout::visitor(v, "Sign in"),
                username: f.get("username").trim().to_string(),
                next: f.get("next").to_string(),
                error: Some(message),
                registration_open: v.services.accounts.registration() == Registration::Open,
            };
            render(&v.req, status, &page)
        }
    }
}

pub async fn register_page(v: Visitor) -> PageResult {
    if v.signed_in {
        return Ok(redirect_with(&v.req, "/console/apps", None));
    }
    let open = v.services.accounts.registration() == Registration::Open;
    let page = RegisterPage {
        layout: Layout::visitor(&v, "Create your account"),
        open,
        username: String::new(),
        email: String::new(),
        error: None,
        field: String::new(),
    };
    let status = if open {
        StatusCode::OK
    } else {
        StatusCode::FORBIDDEN
    };
    Ok(v.finish(render(&v.req, status, &page)?))
}

pub async fn register(form: AnonForm) -> PageResult {
    let (v, f) = (&form.visitor, &form.fields);
    let accounts = &v.services.accounts;
    let new = NewUser {
        username: f.get("username"),
        email: f.get("email"),
        password: f.get("password"),
        admin: false,
    };
    let result = match accounts
        .register(Registrar::Public, new, super::request::origin(&v.req))
        .await
    {
        Ok(user) => {
            accounts
                .sign_in(
                    &user.username,
                    f.get("password"),
                    super::request::origin(&v.req),
                )
                .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(s) => {
            let welcome = format!(
                "Welcome to Scalefog, {}! Add an SSH key, then create your first app.",
                s.principal.user.username
            );
            let signed_in = session_cookie(&v.req, s.id);
            redirect_setting(&v.req, "/console/apps", Some(Flash::ok(welcome)), signed_in)
        }
        Err(e) => {
            let (status, message, field) = inline(e)?;
            let page = RegisterPage {
                layout: Layout::visitor(v, "Create your account"),
                open: accounts.registration() == Registration::Open,
                username: f.get("username").trim().to_string(),
                email: f.get("email").trim().to_string(),
                error: Some(message),
                field,
            };
            render(&v.req, status, &page)
        }
    }
}

/// Ends the session server-side, so the cookie is worthless even if it was copied.
pub async fn sign_out(form: SignedForm) -> PageResult {
    let ctx: &Ctx = &form.ctx;
    ctx.services.accounts.sign_out(&ctx.session_id).await?;
    let req: &HttpRequest = &ctx.req;
    redirect_setting(
        req,
        "/console/sign-in",
        Some(Flash::ok("You are signed out. See you soon.")),
        session_removal(req),
    )
}

/// A redirect (with its flash) that also sets `cookie`: the new session, or its removal.
fn redirect_setting(
    req: &HttpRequest,
    to: &str,
    flash: Option<Flash>,
    cookie: Cookie<'_>,
) -> PageResult {
    let mut resp = redirect_with(req, to, flash);
    resp.add_cookie(&cookie).map_err(ConsoleError::internal)?;
    Ok(resp)
}
