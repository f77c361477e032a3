//! The OpenAPI 3.1 document of the HTTP API, generated from the handlers' `#[utoipa::path]`
//! annotations and served at `GET /v1/openapi.json`.
//!
//! [`ApiDoc`]'s `paths(...)` is the one list of documented handlers: a route added without its
//! handler here fails `every_route_is_documented`, which walks the routes actix registered.
//! Handlers annotate their success answers only; [`Conventions`] adds to every operation what
//! they share: the error answers (one JSON shape, [`ErrorBody`]), the three credential headers
//! and an operation id made from the method and path.

use actix_web::{HttpResponse, web};
use std::sync::OnceLock;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder};
use utoipa::openapi::security::{SecurityRequirement, SecurityScheme};
use utoipa::openapi::{RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

pub fn routes(cfg: &mut web::ServiceConfig) {
    // Registered ahead of the `/v1` scope, which would otherwise answer 404 for it.
    cfg.route("/v1/openapi.json", web::get().to(openapi_json));
}

/// The body of every error answer (`src/api/error.rs`).
#[derive(ToSchema)]
#[allow(dead_code)] // a schema only: errors are rendered by `error::body_of`
pub struct ErrorBody {
    /// A stable code: `invalid`, `missing`, `unauthorized`, `forbidden`, `not_found`, …
    error: String,
    /// What went wrong, for people.
    message: String,
    /// The parameter at fault, for `400` answers about one.
    field: Option<String>,
    /// Why the request was refused, for `403` answers.
    reason: Option<String>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Scalefog API",
        description = "The Scalefog API (`/account`, `/instances`), the REST API (`/v1`) and the \
            admin panel API (`/api`). Parameters are accepted as JSON or form bodies (and in the \
            query string); errors answer `{\"error\", \"message\"}`."
    ),
    paths(
        crate::api::healthz,
        openapi_json,
        // The Scalefog API.
        crate::api::scalefog::register,
        crate::api::scalefog::get_token,
        crate::api::scalefog::add_key,
        crate::api::scalefog::list,
        crate::api::scalefog::create,
        crate::api::scalefog::regions,
        crate::api::scalefog::delete,
        crate::api::deploys::scalefog_start,
        crate::api::deploys::scalefog_stop,
        crate::api::deploys::scalefog_restart,
        // /v1: accounts, keys, regions, nodes.
        crate::api::v1::register,
        crate::api::v1::users,
        crate::api::v1::user,
        crate::api::v1::patch_user,
        crate::api::v1::delete_user,
        crate::api::v1::login,
        crate::api::v1::logout,
        crate::api::v1::exchange,
        crate::api::v1::account,
        crate::api::v1::ssh_keys,
        crate::api::v1::add_ssh_key,
        crate::api::v1::delete_ssh_key,
        crate::api::v1::api_keys,
        crate::api::v1::create_api_key,
        crate::api::v1::revoke_api_key,
        crate::api::v1::regions,
        crate::api::v1::region_instances,
        crate::api::v1::nodes,
        crate::api::v1::create_node,
        crate::api::v1::delete_node,
        crate::api::cluster::show,
        crate::api::cluster::enable,
        crate::api::cluster::create_region,
        crate::api::cluster_registry::show,
        crate::api::cluster_registry::set,
        crate::api::cluster_registry::remove,
        crate::api::hostkey::ssh_host_key,
        // /v1: instances.
        crate::api::v1::instances,
        crate::api::v1::create_instance,
        crate::api::v1::instance,
        crate::api::v1::delete_instance,
        crate::api::deploys::patch_instance,
        crate::api::deploys::start,
        crate::api::deploys::stop,
        crate::api::deploys::restart,
        crate::api::deploys::rollback,
        crate::api::deploys::releases,
        crate::api::deploys::builds,
        crate::api::deploys::build_log,
        crate::api::deploys::logs,
        crate::api::deploys::get_env,
        crate::api::deploys::put_env,
        crate::api::deploys::patch_env,
        crate::api::deploys::delete_env,
        crate::api::deploys::cancel,
        crate::api::account::change_password,
        // Images: the catalog, image deploys and deploy hooks.
        crate::api::images::list,
        crate::api::images::add,
        crate::api::images::remove,
        crate::api::image_apps::deploy,
        crate::api::image_apps::image,
        crate::api::image_apps::hook,
        crate::api::image_apps::rotate_hook,
        crate::api::image_apps::delete_hook,
        crate::api::image_apps::token_hook,
        crate::api::image_apps::signed_hook,
        // Operations.
        crate::api::audit::list,
        crate::api::metrics::metrics,
        crate::api::domains::list,
        crate::api::domains::add,
        crate::api::domains::remove,
        crate::api::cron::show,
        crate::api::formation::show,
        crate::api::formation::scale,
        crate::api::volumes::list,
        crate::api::volumes::add,
        crate::api::volumes::remove,
        crate::api::runs::list,
        crate::api::runs::start,
        crate::api::runs::show,
        // The panel API.
        crate::api::panel::users,
        crate::api::panel::get_user,
        crate::api::panel::create_user,
        crate::api::panel::instances,
        crate::api::panel::delete_instance,
        crate::api::panel::user_instances,
        crate::api::panel::instance,
        crate::api::panel::nodes,
        crate::api::panel::create_node,
        crate::api::panel::delete_node,
        crate::api::images::panel_list,
        crate::api::image_apps::panel_deploy,
    ),
    components(schemas(ErrorBody)),
    modifiers(&Conventions),
    tags(
        (name = "scalefog", description = "The Scalefog API: `{\"success\": ...}` answers"),
        (name = "accounts", description = "Users, tokens, SSH keys and API keys"),
        (name = "instances", description = "Apps: lifecycle, releases, config, domains, scaling"),
        (name = "nodes", description = "Regions, nodes and images"),
        (name = "panel", description = "The admin panel API (an admin's key in `x-api-key`)"),
        (name = "meta", description = "Health and this document"),
    )
)]
pub struct ApiDoc;

/// The document, built once.
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOC: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOC.get_or_init(ApiDoc::openapi)
}

/// A route pattern as the document writes it: actix's `{id:.+}` (a segment with a pattern of
/// its own) is `{id}`.
pub fn plain_pattern(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut in_param = false;
    let mut skipping = false;
    for c in pattern.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push(c);
            }
            '}' if in_param => {
                in_param = false;
                skipping = false;
                out.push(c);
            }
            ':' if in_param => skipping = true,
            _ if skipping => {}
            _ => out.push(c),
        }
    }
    out
}

/// The methods the document has for a path pattern (`/v1/instances/{name}`), upper case.
pub fn methods_of(pattern: &str) -> Vec<&'static str> {
    let Some(item) = document().paths.paths.get(&plain_pattern(pattern)) else {
        return vec![];
    };
    [
        ("GET", &item.get),
        ("PUT", &item.put),
        ("POST", &item.post),
        ("DELETE", &item.delete),
        ("PATCH", &item.patch),
    ]
    .into_iter()
    .filter(|(_, op)| op.is_some())
    .map(|(m, _)| m)
    .collect()
}

/// The OpenAPI 3.1 document of this API.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "meta", security(()),
    responses((status = 200, description = "The OpenAPI document", body = crate::api::schemas::Object)))]
pub(super) async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(document())
}

/// The names of the security schemes; an operation takes any one of them.
const SCHEMES: [&str; 3] = ["bearer", "api_key", "auth_token"];

/// Statuses any operation may answer with the error body; which ones a route really gives
/// depends on its input, so all are listed on each.
const ERRORS: [(&str, &str); 10] = [
    (
        "400",
        "A parameter is missing or invalid (`field` names it)",
    ),
    ("401", "No valid credentials"),
    ("403", "The caller may not do this (`reason` says why)"),
    ("404", "No such record, or not the caller's"),
    ("405", "Method not allowed"),
    (
        "409",
        "Conflicts with the current state (e.g. the name is taken)",
    ),
    ("413", "The request body is too large"),
    ("422", "The deploy failed or was cancelled"),
    ("429", "Too many attempts; try again later"),
    ("503", "A node's Docker engine is unavailable"),
];

struct Conventions;

impl Modify for Conventions {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            SCHEMES[0],
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "`Authorization: Bearer <t>`: a login token, an API key or an access JWT",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            SCHEMES[1],
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "x-api-key",
                "An API key (or any token), as the panel API sends it",
            ))),
        );
        components.add_security_scheme(
            SCHEMES[2],
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Auth-Token",
                "A token, as the Scaleway conventions send it",
            ))),
        );
        doc.security = Some(
            SCHEMES
                .iter()
                .map(|s| SecurityRequirement::new(*s, Vec::<String>::new()))
                .collect(),
        );
        for (path, item) in doc.paths.paths.iter_mut() {
            let ops = [
                ("get", &mut item.get),
                ("put", &mut item.put),
                ("post", &mut item.post),
                ("delete", &mut item.delete),
                ("patch", &mut item.patch),
            ];
            for (method, op) in ops {
                if let Some(op) = op {
                    conventions_of(method, path, op);
                }
            }
        }
    }
}

fn conventions_of(method: &str, path: &str, op: &mut Operation) {
    let id: String = format!("{method}{path}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    op.operation_id = Some(id.replace("__", "_").trim_end_matches('_').to_string());
    let error_body = || {
        utoipa::openapi::ContentBuilder::new()
            .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
            .build()
    };
    for (status, description) in ERRORS {
        let response = op
            .responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| {
                RefOr::T(
                    ResponseBuilder::new()
                        .description(description)
                        .content("application/json", error_body())
                        .build(),
                )
            });
        // A handler that names an error status for its own description still answers it with
        // the one error body.
        if let RefOr::T(r) = response
            && r.content.is_empty()
        {
            r.content
                .insert("application/json".into(), RefOr::T(error_body()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::App;
    use actix_web::test as call;
    use std::collections::BTreeSet;

    /// Every route registered by `api::routes`, as `METHOD /path/{param}`: the resource patterns
    /// come from actix's resource map, the methods from asking each pattern with each method
    /// (a route answers anything but the default 404 and 405, whatever its handler makes of a
    /// request without credentials or services).
    async fn registered_routes() -> BTreeSet<String> {
        let app = call::init_service(App::new().configure(crate::api::routes).default_service(
            web::to(|req: actix_web::HttpRequest| async move {
                // The map of the whole tree is on every request; print it for the test.
                HttpResponse::NotFound()
                    .insert_header(("x-route-map", "1"))
                    .body(format!("{:#?}", req.resource_map()))
            }),
        ))
        .await;
        let map = call::call_and_read_body(
            &app,
            call::TestRequest::get()
                .uri("/no/such/route/anywhere")
                .to_request(),
        )
        .await;
        let patterns = patterns_of(&String::from_utf8_lossy(&map));
        assert!(
            patterns.len() > 50,
            "the resource map lists the routes: {patterns:?}"
        );
        let mut routes = BTreeSet::new();
        for pattern in patterns {
            let concrete = pattern.replace('{', "x").replace('}', "");
            for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
                let req = call::TestRequest::default()
                    .method(method.parse().expect("method"))
                    .uri(&concrete)
                    .to_request();
                let res = call::call_service(&app, req).await;
                let unrouted = res.headers().contains_key("x-route-map")
                    || res.status() == actix_web::http::StatusCode::METHOD_NOT_ALLOWED;
                if !unrouted {
                    routes.insert(format!("{method} {pattern}"));
                }
            }
        }
        routes
    }

    /// The full path patterns of the edge nodes of a `{:#?}`-printed `ResourceMap`: each node
    /// prints its pattern (`patterns: Single(` and the quoted pattern on the next line) deeper
    /// than its parent's, and scopes' children are joined to their prefix.
    fn patterns_of(map: &str) -> Vec<String> {
        let mut stack: Vec<(usize, String)> = vec![];
        let mut all: Vec<(usize, String)> = vec![];
        let mut lines = map.lines();
        while let Some(line) = lines.next() {
            let trimmed = line.trim_start();
            if trimmed != "patterns: Single(" {
                continue;
            }
            let indent = line.len() - trimmed.len();
            let Some(quoted) = lines.next() else { break };
            let pattern = quoted
                .trim()
                .trim_end_matches(',')
                .trim_matches('"')
                .to_string();
            while stack.last().is_some_and(|(i, _)| *i >= indent) {
                stack.pop();
            }
            let full = plain_pattern(&format!(
                "{}{pattern}",
                stack.iter().map(|(_, p)| p.as_str()).collect::<String>()
            ));
            stack.push((indent, pattern));
            all.push((indent, full));
        }
        // A node followed by a deeper one is a scope, not a route.
        all.iter()
            .enumerate()
            .filter(|(n, (indent, _))| all.get(n + 1).is_none_or(|(next, _)| next <= indent))
            .map(|(_, (_, p))| p.clone())
            .filter(|p| !p.is_empty())
            .collect()
    }

    fn documented_routes() -> BTreeSet<String> {
        let mut routes = BTreeSet::new();
        for (path, item) in &document().paths.paths {
            let ops = [
                ("GET", &item.get),
                ("POST", &item.post),
                ("PUT", &item.put),
                ("PATCH", &item.patch),
                ("DELETE", &item.delete),
            ];
            for (method, op) in ops {
                if op.is_some() {
                    routes.insert(format!("{method} {path}"));
                }
            }
        }
        routes
    }

    #[actix_web::test]
    async fn every_route_is_documented() {
        let registered = registered_routes().await;
        let documented = documented_routes();
        let missing: Vec<_> = registered.difference(&documented).collect();
        let extra: Vec<_> = documented.difference(&registered).collect();
        assert!(
            missing.is_empty(),
            "routes without a #[utoipa::path] listed in api::openapi::ApiDoc: {missing:#?}"
        );
        assert!(
            extra.is_empty(),
            "documented routes that are not registered: {extra:#?}"
        );
    }

    #[test]
    fn every_operation_has_a_unique_id_errors_and_credentials() {
        let doc = document();
        let json = serde_json::to_value(doc).expect("serializes");
        assert_eq!(json["openapi"], "3.1.0");
        let schemes = json["components"]["securitySchemes"]
            .as_object()
            .expect("security schemes");
        assert_eq!(schemes["bearer"]["scheme"], "bearer");
        assert_eq!(schemes["api_key"]["name"], "x-api-key");
        assert_eq!(schemes["auth_token"]["name"], "X-Auth-Token");
        let mut ids = BTreeSet::new();
        for (path, item) in json["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                let id = op["operationId"].as_str().expect("operation id");
                assert!(ids.insert(id.to_string()), "{method} {path}: id {id} twice");
                assert_eq!(
                    op["responses"]["400"]["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{method} {path}"
                );
            }
        }
    }
}
