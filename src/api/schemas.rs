//! Shapes the OpenAPI document names that no Rust type has: the parameters handlers read by
//! name through `Params` (sent as a JSON object or a form, both documented), and the answers
//! they build with `json!`. Schemas only: nothing is (de)serialized through these types.
#![allow(dead_code)]

use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Schema};

/// Declares a schema-only type as an object with any properties of the given kind (utoipa's
/// derive does not take field-less structs).
macro_rules! free_object {
    ($name:ident, $doc:literal, $values:expr) => {
        #[doc = $doc]
        pub struct $name;
        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new()
                    .description(Some($doc))
                    .additional_properties(Some($values))
                    .into()
            }
        }
        impl ToSchema for $name {}
    };
}

free_object!(
    Object,
    "A JSON object.",
    AdditionalProperties::<Schema>::FreeForm(true)
);
free_object!(
    ConfigVarsBody,
    "Config vars to set: `KEY` → a string, number or boolean (kept as text), or `null` to unset (JSON); or `KEY=value` pairs (form).",
    AdditionalProperties::<Schema>::FreeForm(true)
);
free_object!(
    FormationBody,
    "Replicas per process type, e.g. `{\"web\": 2, \"worker\": 1}`.",
    AdditionalProperties::RefOr(RefOr::T(Schema::Object(
        ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::Integer)
            .minimum(Some(0))
            .maximum(Some(20))
            .build()
    )))
);

// ---- Request bodies ----

/// A new account.
#[derive(ToSchema)]
pub struct NewUserBody {
    #[schema(pattern = r"^[a-z][a-z0-9-]{1,31}$")]
    username: String,
    #[schema(format = Email, max_length = 254)]
    email: String,
    #[schema(min_length = 8, max_length = 1024)]
    password: String,
}

/// A new account, as an admin may create one.
#[derive(ToSchema)]
pub struct NewUserAdminBody {
    #[schema(pattern = r"^[a-z][a-z0-9-]{1,31}$")]
    username: String,
    #[schema(format = Email, max_length = 254)]
    email: String,
    #[schema(min_length = 8, max_length = 1024)]
    password: String,
    /// Grants admin rights (admins only).
    admin: Option<bool>,
}

/// A new account through the panel API; `userId` is assigned by the server.
#[derive(ToSchema)]
pub struct PanelNewUserBody {
    #[schema(pattern = r"^[a-z][a-z0-9-]{1,31}$")]
    username: String,
    #[schema(format = Email, max_length = 254)]
    email: String,
    #[schema(min_length = 8, max_length = 1024)]
    password: String,
    admin: Option<bool>,
}

#[derive(ToSchema)]
pub struct LoginBody {
    username: String,
    #[schema(min_length = 8, max_length = 1024)]
    password: String,
}

/// An OpenSSH public key line, e.g. `ssh-ed25519 AAAA… me@laptop`.
#[derive(ToSchema)]
pub struct AddKeyBody {
    #[schema(min_length = 1)]
    sshkey: String,
}

/// An OpenSSH public key line (`sshkey` and `key` are accepted too).
#[derive(ToSchema)]
pub struct SshKeyBody {
    #[schema(min_length = 1)]
    public_key: String,
}

#[derive(ToSchema)]
pub struct ApiKeyBody {
    /// What the key is for.
    #[schema(min_length = 1)]
    name: String,
}

/// A new app; without a name one is made up. `name` is accepted for `appname`.
#[derive(ToSchema)]
pub struct ScalefogCreateBody {
    #[schema(pattern = r"^[a-z][a-z0-9-]{1,29}[a-z0-9]$")]
    appname: Option<String>,
    /// A region's id or name.
    region: Option<String>,
}

/// A new app; without a name one is made up. `appname` is accepted for `name`.
#[derive(ToSchema)]
pub struct CreateInstanceBody {
    #[schema(pattern = r"^[a-z][a-z0-9-]{1,29}[a-z0-9]$")]
    name: Option<String>,
    /// A region's id or name.
    region: Option<String>,
}

/// A user's own limits: a whole number, or `default` for the installation's.
#[derive(ToSchema)]
pub struct QuotaBody {
    max_apps: Option<String>,
    /// MiB
    max_memory: Option<String>,
    max_replicas: Option<String>,
}

/// A node: a Docker engine (`address` as `host`, `tcp://host:port` or `unix:///path`).
#[derive(ToSchema)]
pub struct NodeBody {
    #[schema(min_length = 1)]
    name: String,
    #[schema(min_length = 1)]
    address: String,
    /// Joined to `address` when it has no scheme.
    port: Option<String>,
    /// A region's id or name; a new name creates the region.
    region: Option<String>,
    /// Comma-separated.
    tags: Option<String>,
    /// MiB
    ram: Option<u64>,
    /// GB
    disk: Option<u64>,
    /// Cores.
    processor: Option<f64>,
}

/// App settings to change.
#[derive(ToSchema)]
pub struct SettingsBody {
    /// MiB
    memory: Option<u32>,
    /// Cores.
    cpu: Option<f64>,
    health_path: Option<String>,
    deploy_branch: Option<String>,
    read_only_rootfs: Option<bool>,
}

/// The release to roll back to (`v2` or `2`; `version` is accepted too); absent: the one
/// before the current one.
#[derive(ToSchema)]
pub struct RollbackBody {
    release: Option<String>,
}

#[derive(ToSchema)]
pub struct DomainBody {
    #[schema(format = Hostname)]
    domain: String,
}

#[derive(ToSchema)]
pub struct VolumeBody {
    #[schema(pattern = r"^[a-z]([a-z0-9-]{0,30}[a-z0-9])?$")]
    name: String,
    /// Where the volume is mounted in the app's containers (absolute, not `/`).
    #[schema(pattern = r"^/[a-z0-9_/.-]{1,199}$")]
    path: String,
}

/// A command line (split like a Procfile line) or a list of arguments.
#[derive(ToSchema)]
pub struct RunBody {
    #[schema(value_type = Vec<String>, min_items = 1)]
    command: String,
}

#[derive(ToSchema)]
pub struct GetUserBody {
    /// `email` or `username`
    #[schema(rename = "type", pattern = "^(email|username)$")]
    kind: String,
    #[schema(min_length = 1)]
    value: String,
}

#[derive(ToSchema)]
pub struct IdBody {
    #[schema(min_length = 1)]
    id: String,
}

#[derive(ToSchema)]
pub struct UserIdBody {
    #[schema(rename = "userId", min_length = 1)]
    user_id: String,
}

#[derive(ToSchema)]
pub struct NodeIdBody {
    #[schema(rename = "nodeId", min_length = 1)]
    node_id: String,
}

// ---- Answers built with json! ----

/// The Scalefog API's success marker.
#[derive(ToSchema)]
pub struct ScalefogUser {
    success: String,
    id: String,
    username: String,
    email: String,
    admin: bool,
}

#[derive(ToSchema)]
pub struct ScalefogToken {
    success: String,
    token: String,
}

#[derive(ToSchema)]
pub struct ScalefogKey {
    success: String,
    id: String,
    fingerprint: String,
}

#[derive(ToSchema)]
pub struct ScalefogDeleted {
    success: String,
    deleted: String,
}

#[derive(ToSchema)]
pub struct PanelDeleted {
    success: bool,
    deleted: String,
}

#[derive(ToSchema)]
pub struct LoginAnswer {
    token: String,
    user: super::views::UserView,
}

#[derive(ToSchema)]
pub struct HostKey {
    algorithm: String,
    fingerprint: String,
    public_key: String,
}

#[derive(ToSchema)]
pub struct Health {
    /// `ok` or `degraded`
    status: String,
    version: String,
    #[schema(value_type = Object)]
    store: String,
    #[schema(value_type = Object)]
    docker: String,
}

#[derive(ToSchema)]
pub struct Logs {
    app: String,
    lines: Vec<String>,
}

#[derive(ToSchema)]
pub struct Cancelled {
    app: String,
    cancelled: bool,
}

#[derive(ToSchema)]
pub struct Image {
    id: String,
    tags: Vec<String>,
    app: Option<String>,
    release: Option<String>,
    size: i64,
    created_at: String,
}

#[derive(ToSchema)]
pub struct Cron {
    #[schema(value_type = Vec<Object>)]
    jobs: String,
    #[schema(value_type = Vec<Object>)]
    runs: String,
    page: u64,
    per_page: u64,
    total: u64,
}

#[derive(ToSchema)]
pub struct Run {
    id: u64,
    app: String,
    /// `v3`
    release: String,
    command: Vec<String>,
    user: String,
    detached: bool,
    tty: bool,
    status: String,
    exit_code: Option<i64>,
    error: Option<String>,
    started_at: String,
    finished_at: Option<String>,
    /// One run only.
    output: Option<String>,
    output_truncated: Option<bool>,
}

/// A user as an admin reads one: with their quota.
#[derive(ToSchema)]
pub struct UserWithQuota {
    id: String,
    username: String,
    email: String,
    admin: bool,
    created_at: String,
    quota: super::views::QuotaView,
}

/// An access JWT and its refresh token (the Civo JWT conventions).
#[derive(ToSchema)]
pub struct JwtPair {
    access_token: String,
    /// `Bearer`
    token_type: String,
    /// Seconds.
    expires_in: i64,
    refresh_token: String,
    account_id: String,
}

/// A build and its log.
#[derive(ToSchema)]
pub struct BuildLog {
    build: super::deploys::BuildView,
    log: String,
}
