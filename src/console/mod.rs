//! The web console: server-rendered pages (askama) beside the JSON API, on the same listener.
//!
//! A transport like `api`: handlers turn form posts into calls on the core services and render
//! the result; every rule (who may see an app, what a valid key is) is decided by the core.
//! Every action is a plain HTML form with POST-redirect-GET and a flash message, so nothing
//! needs JavaScript; `static/console.js` only adds conveniences (copy buttons, enabling the
//! delete button once the name is typed, following build logs and the app's output live, and
//! reloading the page when a deploy or an action finishes). Actions that take seconds run in
//! the background ([`ops`]) so no request waits longer than a few seconds.
//!
//! Pages live under `/console/…` so that no console path can shadow an API path
//! (`/account/*`, `/instances/*`, `/v1/*`, `/api/*`, `/healthz`); `/` redirects to the console.
//!
//! Security: a server-side session (revoked at sign out) in an `HttpOnly`, `SameSite=Lax`
//! cookie, `Secure` over TLS; a CSRF token in every form plus an `Origin` check; askama escapes
//! all output; every response carries a CSP without inline script, `X-Frame-Options: DENY` and
//! a strict referrer policy.
//!
//! A module uses only those before it in this order (a test below checks it): `notice`,
//! `sparkline`, `views`, `error`, `ops`, `request`, `pages`, `render`, `apps`, then the other
//! page handlers.

mod account;
mod admin;
mod apps;
mod audit;
mod auth;
mod deploys;
mod domains;
mod error;
mod formation;
mod image_apps;
mod images;
mod keys;
mod notice;
pub mod ops;
mod pages;
mod render;
mod request;
mod runs;
mod sparkline;
mod views;
mod volumes;

use actix_web::http::{StatusCode, header};
use actix_web::middleware::DefaultHeaders;
use actix_web::{HttpRequest, HttpResponse, web};
use render::error_page;

/// The console's Content-Security-Policy: only our own scripts and styles, no framing.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
                   frame-ancestors 'none'";

fn security_headers() -> DefaultHeaders {
    // DefaultHeaders only adds a header the handler did not set, so static files keep their
    // own Cache-Control while pages (which may show a new API key) are never cached.
    DefaultHeaders::new()
        .add((header::CONTENT_SECURITY_POLICY, CSP))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((header::REFERRER_POLICY, "same-origin"))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::CACHE_CONTROL, "no-store"))
}

/// Registers the console's routes: `/` and everything under `/console`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/")
            .wrap(security_headers())
            .route(web::get().to(home)),
    );
    cfg.service(
        web::scope("/console")
            .wrap(security_headers())
            .route("", web::get().to(home))
            .route("/static/{file}", web::get().to(asset))
            .route("/sign-in", web::get().to(auth::sign_in_page))
            .route("/sign-in", web::post().to(auth::sign_in))
            .route("/register", web::get().to(auth::register_page))
            .route("/register", web::post().to(auth::register))
            .route("/sign-out", web::post().to(auth::sign_out))
            .route("/apps", web::get().to(apps::list))
            .route("/apps", web::post().to(apps::create))
            .route("/apps/new", web::get().to(apps::new))
            .route("/apps/{name}", web::get().to(apps::show))
            .route("/apps/{name}/delete", web::post().to(apps::delete))
            .route("/apps/{name}/start", web::post().to(deploys::start))
            .route("/apps/{name}/stop", web::post().to(deploys::stop))
            .route("/apps/{name}/restart", web::post().to(deploys::restart))
            .route("/apps/{name}/rollback", web::post().to(deploys::rollback))
            .route("/apps/{name}/image", web::post().to(image_apps::deploy))
            .route("/apps/{name}/config", web::post().to(deploys::set_config))
            .route(
                "/apps/{name}/config/unset",
                web::post().to(deploys::unset_config),
            )
            .route("/apps/{name}/domains", web::get().to(domains::show))
            .route("/apps/{name}/domains", web::post().to(domains::add))
            .route(
                "/apps/{name}/domains/remove",
                web::post().to(domains::remove),
            )
            .route("/apps/{name}/runs", web::get().to(runs::show))
            .route("/apps/{name}/runs", web::post().to(runs::start))
            .route("/apps/{name}/formation", web::get().to(formation::show))
            .route("/apps/{name}/formation", web::post().to(formation::scale))
            .route("/apps/{name}/volumes", web::get().to(volumes::show))
            .route("/apps/{name}/volumes", web::post().to(volumes::add))
            .route(
                "/apps/{name}/volumes/remove",
                web::post().to(volumes::remove),
            )
            .route("/apps/{name}/settings", web::post().to(deploys::settings))
            .route("/apps/{name}/status", web::get().to(deploys::status))
            .route(
                "/apps/{name}/logs/stream",
                web::get().to(deploys::logs_stream),
            )
            .route(
                "/apps/{name}/builds/current/cancel",
                web::post().to(deploys::cancel_build),
            )
            .route("/apps/{name}/builds/{id}", web::get().to(deploys::build))
            .route(
                "/apps/{name}/builds/{id}/stream",
                web::get().to(deploys::build_stream),
            )
            .route("/ssh-keys", web::get().to(keys::ssh_keys))
            .route("/ssh-keys", web::post().to(keys::add_ssh_key))
            .route(
                "/ssh-keys/{id}/delete",
                web::post().to(keys::delete_ssh_key),
            )
            .route("/api-keys", web::get().to(keys::api_keys))
            .route("/api-keys", web::post().to(keys::create_api_key))
            .route(
                "/api-keys/{id}/revoke",
                web::post().to(keys::revoke_api_key),
            )
            .route("/account", web::get().to(account::show))
            .route(
                "/account/password",
                web::post().to(account::change_password),
            )
            .route("/admin/users", web::get().to(admin::users))
            .route("/admin/users", web::post().to(admin::create_user))
            .route(
                "/admin/users/{id}/delete",
                web::post().to(admin::delete_user),
            )
            .route("/admin/nodes", web::get().to(admin::nodes))
            .route("/admin/nodes", web::post().to(admin::create_node))
            .route(
                "/admin/nodes/{id}/delete",
                web::post().to(admin::delete_node),
            )
            .route("/admin/regions", web::get().to(admin::regions))
            .route("/admin/regions", web::post().to(admin::create_region))
            .route("/admin/cluster", web::get().to(admin::cluster))
            .route("/admin/cluster", web::post().to(admin::enable_cluster))
            .route("/admin/images", web::get().to(images::show))
            .route("/admin/images", web::post().to(images::add))
            .route("/admin/images/{id}/delete", web::post().to(images::remove))
            .route("/audit", web::get().to(audit::show))
            .default_service(web::to(not_found)),
    );
}

async fn home() -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/console/apps"))
        .finish()
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    if req.method() != actix_web::http::Method::GET {
        return error_page(
            StatusCode::METHOD_NOT_ALLOWED,
            "Not here",
            "This address does not accept that kind of request.",
        );
    }
    error_page(
        StatusCode::NOT_FOUND,
        "Page not found",
        "There is no console page at this address. It may have moved, or the link was mistyped.",
    )
}

/// A file of the top-level `static/` folder with its content type, compiled into the binary
/// (one file to install). The file is named once: its name is also its address.
macro_rules! static_file {
    ($name:literal, $ctype:literal) => {
        (
            $name,
            $ctype,
            include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/static/", $name)),
        )
    };
}

/// The stylesheet, the script and the icon: name, content type, body.
const STATIC_FILES: [(&str, &str, &[u8]); 3] = [
    static_file!("console.css", "text/css; charset=utf-8"),
    static_file!("console.js", "text/javascript; charset=utf-8"),
    static_file!("favicon.svg", "image/svg+xml"),
];

async fn asset(file: web::Path<String>) -> HttpResponse {
    let Some((_, ctype, body)) = STATIC_FILES
        .iter()
        .find(|(name, ..)| *name == file.as_str())
    else {
        return error_page(StatusCode::NOT_FOUND, "Not found", "No such file.");
    };
    HttpResponse::Ok()
        .content_type(*ctype)
        // Links carry `?v=<version>`, so an upgrade is fetched fresh; within one version the
        // files never change.
        .insert_header((header::CACHE_CONTROL, "public, max-age=86400"))
        .body(*body)
}

#[cfg(test)]
mod tests {
    /// The order of the module doc, with each module's source.
    const ORDER: [(&str, &str); 21] = [
        ("notice", include_str!("notice.rs")),
        ("sparkline", include_str!("sparkline.rs")),
        ("views", include_str!("views.rs")),
        ("error", include_str!("error.rs")),
        ("ops", include_str!("ops.rs")),
        ("request", include_str!("request.rs")),
        ("pages", include_str!("pages.rs")),
        ("render", include_str!("render.rs")),
        ("apps", include_str!("apps.rs")),
        ("account", include_str!("account.rs")),
        ("admin", include_str!("admin.rs")),
        ("auth", include_str!("auth.rs")),
        ("deploys", include_str!("deploys.rs")),
        ("domains", include_str!("domains.rs")),
        ("keys", include_str!("keys.rs")),
        ("volumes", include_str!("volumes.rs")),
        ("formation", include_str!("formation.rs")),
        ("runs", include_str!("runs.rs")),
        ("images", include_str!("images.rs")),
        ("image_apps", include_str!("image_apps.rs")),
        ("audit", include_str!("audit.rs")),
    ];

    /// What a module's source reaches through `super::` or `crate::console::` (before its own
    /// `mod tests`, where `super` is the module itself): the name after the prefix, or the
    /// character there when it is no name (`{`, `*`), which no module is called.
    fn uses(src: &str) -> Vec<String> {
        let src = src.split("\n#[cfg(test)]\nmod tests").next().unwrap_or(src);
        let mut names = vec![];
        for prefix in ["super::", "crate::console::"] {
            for (at, _) in src.match_indices(prefix) {
                let rest = &src[at + prefix.len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                names.push(if name.is_empty() {
                    rest.chars().take(1).collect()
                } else {
                    name
                });
            }
        }
        names
    }

    #[test]
    fn a_console_module_uses_only_modules_before_it_in_the_documented_order() {
        for (i, (module, src)) in ORDER.iter().enumerate() {
            for used in uses(src) {
                let before = ORDER[..i].iter().any(|(m, _)| *m == used);
                assert!(
                    before,
                    "console::{module} uses `{used}`, which is not a module before it in the \
                     order of console/mod.rs (name each module in its own path, no `super::{{…}}`)"
                );
            }
        }
    }

    #[test]
    fn every_console_module_is_in_the_documented_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/console");
        for entry in std::fs::read_dir(dir).unwrap() {
            let file = entry.unwrap().file_name().into_string().unwrap();
            if let Some(module) = file.strip_suffix(".rs").filter(|m| *m != "mod") {
                assert!(
                    ORDER.iter().any(|(m, _)| *m == module),
                    "{module} is missing from ORDER"
                );
            }
        }
    }
}
