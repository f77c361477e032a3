//! The caller's own account beyond `GET /v1/account`: `PUT /v1/account/password`, which the
//! console's account page also offers (the Scaleway conventions: what the console does, the API
//! does).

use super::error::ApiResult;
use super::extract::{Auth, Params};
use super::views::UserView;
use crate::services::Services;
use actix_web::{HttpRequest, HttpResponse, web};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/account/password", web::put().to(change_password));
}

/// The body of `PUT /v1/account/password` (form-encoded or JSON). It describes the body for the
/// OpenAPI document; the handler reads it through `Params`, so that errors name the field.
#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
pub struct PasswordChange {
    pub current_password: String,
    /// At least 8 characters.
    pub new_password: String,
}

/// Changes the caller's password. The credential making the call keeps working (a script that
/// changes its password is not signed out by it); the account's other login tokens and console
/// sessions are revoked, and every JWT ends, the caller's too (JWTs are bound to the password).
/// Named API keys stay: each is revoked on its own.
#[utoipa::path(
    put,
    path = "/v1/account/password",
    request_body(content = inline(PasswordChange), content_type = "application/json"),
    responses(
        (status = 200, description = "changed; the account", body = UserView),
        (status = 400, description = "the current password is wrong, or the new one too short (`field` names which)"),
        (status = 401, description = "no or bad credentials"),
        (status = 429, description = "too many wrong current passwords")
    ),
    tag = "account"
)]
pub async fn change_password(
    req: HttpRequest,
    s: web::Data<Services>,
    Auth(who): Auth,
    p: Params,
) -> ApiResult<HttpResponse> {
    s.accounts
        .change_password(
            &who,
            p.get("current_password").unwrap_or(""),
            p.require("new_password")?,
            None,
            super::client_ip(&req),
        )
        .await?;
    Ok(HttpResponse::Ok().json(UserView::from(&who.user)))
}
