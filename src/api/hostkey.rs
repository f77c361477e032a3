//! `GET /v1/ssh-host-key`: the SSH server's host key, so users can check the fingerprint their
//! client shows on first connection. Public: it is what any SSH client is shown anyway.

use crate::services::Services;
use actix_web::{HttpResponse, web};
use serde_json::json;

pub fn routes(cfg: &mut web::ServiceConfig) {
    // Registered ahead of the `/v1` scope, which would otherwise answer 404 for it.
    cfg.route("/v1/ssh-host-key", web::get().to(ssh_host_key));
}

#[utoipa::path(get, path = "/v1/ssh-host-key", tag = "accounts", security(()), responses((status = 200, description = "The SSH server's host key", body = crate::api::schemas::HostKey)))]
async fn ssh_host_key(s: web::Data<Services>) -> HttpResponse {
    let k = &s.ssh_host_key;
    HttpResponse::Ok().json(json!({
        "algorithm": k.algorithm,
        "fingerprint": k.fingerprint,
        "public_key": k.public_key,
    }))
}
