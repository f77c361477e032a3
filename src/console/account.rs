//! The account page: who you are, and changing your password.

use super::error::{PageResult, inline};
use super::notice::Flash;
use super::pages::{AccountPage, Layout};
use super::render::render;
use super::request::{Ctx, SignedForm};
use super::views::date;
use actix_web::http::StatusCode;

fn page(ctx: &Ctx, error: Option<String>, field: String) -> AccountPage {
    let u = &ctx.who.user;
    AccountPage {
        layout: Layout::signed_in(ctx, "Account", "account"),
        username: u.username.clone(),
        email: u.email.clone(),
        admin: u.admin,
        created: date(u.created_at),
        error,
        field,
    }
}

pub async fn show(ctx: Ctx) -> PageResult {
    render(&ctx.req, StatusCode::OK, &page(&ctx, None, String::new()))
}

pub async fn change_password(form: SignedForm) -> PageResult {
    let (ctx, f) = (&form.ctx, &form.fields);
    // Typing the new password twice is a property of the form, not of accounts.
    if f.get("new_password") != f.get("confirm_password") {
        let p = page(
            ctx,
            Some("The two new passwords do not match.".into()),
            "confirm_password".into(),
        );
        return render(&ctx.req, StatusCode::BAD_REQUEST, &p);
    }
    let result = ctx
        .services
        .accounts
        .change_password(
            &ctx.who,
            f.get("current_password"),
            f.get("new_password"),
            Some(&ctx.session_id),
            crate::api::client_ip(&ctx.req),
        )
        .await;
    match result {
        Ok(()) => Ok(ctx.redirect(
            "/console/account",
            Flash::ok("Password changed. Your other browser sessions were signed out."),
        )),
        Err(e) => {
            let (status, message, field) = inline(e)?;
            render(&ctx.req, status, &page(ctx, Some(message), field))
        }
    }
}
