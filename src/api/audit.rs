//! `GET /v1/audit`: the audit log, newest first, paginated like every `/v1` list. Admins read
//! all of it; others what they did and what was done to their apps.

use super::error::ApiResult;
use super::extract::Auth;
use super::pagination::{page_of, slice_of};
use crate::domain::{AuditRecord, rfc3339};
use crate::services::Services;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/audit", web::get().to(list));
}

/// One audit entry as the API shows it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditView {
    pub id: u64,
    /// RFC 3339.
    pub at: String,
    pub user_id: u64,
    pub username: String,
    /// `api`, `console`, `ssh` or `cli`.
    pub channel: String,
    /// The client's address, when the change came over the network.
    pub address: Option<String>,
    /// What was done: `app.deploy`, `ssh_key.add`, ... (README lists them).
    pub action: String,
    pub app: Option<String>,
    pub detail: String,
}

impl From<&AuditRecord> for AuditView {
    fn from(r: &AuditRecord) -> AuditView {
        AuditView {
            id: r.id,
            at: rfc3339(r.at),
            user_id: r.user_id,
            username: r.username.clone(),
            channel: r.channel.as_str().to_string(),
            address: r.address.map(|a| a.to_string()),
            action: r.action.as_str().to_string(),
            app: r.app.clone(),
            detail: r.detail.clone(),
        }
    }
}

#[utoipa::path(
    get,
    path = "/v1/audit",
    params(
        ("page" = Option<u64>, Query, description = "page number, from 1"),
        ("per_page" = Option<u64>, Query, description = "entries per page, at most 100")
    ),
    responses(
        (status = 200, description = "audit entries, newest first; the total in X-Total-Count", body = [AuditView]),
        (status = 401, description = "no or bad credentials")
    ),
    tag = "audit"
)]
pub async fn list(
    req: HttpRequest,
    s: web::Data<Services>,
    Auth(who): Auth,
) -> ApiResult<HttpResponse> {
    let page = who.audit_log(&s.store, slice_of(&req)?)?;
    Ok(page_of(page, |r| AuditView::from(r)))
}
