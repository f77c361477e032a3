//! The audit log page: what the signed-in user did and what was done to their apps (admins:
//! everything), newest first, a page at a time.

use super::error::PageResult;
use super::pages::Layout;
use super::render::{PageTemplate, render};
use super::request::Ctx;
use super::views::datetime;
use crate::store::Slice;
use actix_web::http::StatusCode;
use actix_web::web;
use askama::Template;

const PER_PAGE: u64 = 50;

#[derive(serde::Deserialize)]
pub struct PageQuery {
    page: Option<u64>,
}

pub struct AuditRow {
    pub at: String,
    pub username: String,
    pub channel: &'static str,
    pub address: String,
    pub action: &'static str,
    pub app: String,
    pub detail: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
pub struct AuditPage {
    pub layout: Layout,
    pub rows: Vec<AuditRow>,
    pub total: u64,
    pub page: u64,
    pub prev: Option<u64>,
    pub next: Option<u64>,
    pub everyone: bool,
}

impl PageTemplate for AuditPage {
    fn shows_flash(&self) -> bool {
        self.layout.flash.is_some()
    }
}

pub async fn show(ctx: Ctx, q: web::Query<PageQuery>) -> PageResult {
    let page = q.page.unwrap_or(1).clamp(1, u64::MAX / PER_PAGE);
    let slice = Slice {
        offset: (page - 1) * PER_PAGE,
        limit: PER_PAGE,
    };
    let log = ctx.who.audit_log(&ctx.services.store, slice)?;
    let rows = log
        .items
        .iter()
        .map(|r| AuditRow {
            at: datetime(r.at),
            username: r.username.clone(),
            channel: r.channel.as_str(),
            address: r.address.map(|a| a.to_string()).unwrap_or_default(),
            action: r.action.as_str(),
            app: r.app.clone().unwrap_or_default(),
            detail: r.detail.clone(),
        })
        .collect();
    let p = AuditPage {
        layout: Layout::signed_in(&ctx, "Audit log", "audit"),
        rows,
        total: log.total,
        page,
        prev: (page > 1).then(|| page - 1),
        next: (page * PER_PAGE < log.total).then(|| page + 1),
        everyone: ctx.who.is_admin(),
    };
    render(&ctx.req, StatusCode::OK, &p)
}
