//! Scalefog: a self-hosted platform-as-a-service in one binary.
//!
//! Module map (each module uses only modules above it in this list):
//!
//! - `domain`   — parsed names, settings and stored records (audit entries among them), the one
//!   [`domain::Error`]. No I/O.
//! - `locks`, `fsutil` — taking std locks whatever their poisoning; private files and dirs.
//! - `seal`     — encrypting secrets at rest (config vars, registry credentials) under the
//!   data dir's key.
//! - `metrics`  — the Prometheus registry that the core and the transports record into; each
//!   app's router traffic and its per-minute samples (the console's sparklines).
//! - `drain`    — pushes and deploys in flight, which a stop waits for or cancels.
//! - `store`    — the redb file; typed reads and single-transaction writes; config var values
//!   sealed on their way in (`seal`), and the audit log each change writes in its transaction.
//! - `docker`   — the Docker Engine interface (bollard), one per node: images, containers, builds.
//! - `runtime`  — running an app: start a release's processes, their state and endpoints, stop
//!   them. One trait; `runtime::Containers` (containers on one Docker engine) and
//!   `runtime::Swarm` (Docker Swarm services, once the cluster is on) implement it, and
//!   `runtime::Placed` picks between them.
//! - `accounts` — users, passwords, tokens, API keys, JWTs, SSH keys.
//! - `apps`     — apps ("instances"): create, list, access checks, custom domains, delete.
//! - `nodes`    — regions and nodes (Docker endpoints); the cluster: swarm init, node joins,
//!   drains and removals.
//! - `images`   — the image catalog, the node's images, and who may deploy which image.
//! - `push`     — a git push as the core sees it, and the handler that decides it.
//! - `git`      — apps' bare repositories, running receive-pack/upload-pack for an authorized
//!   user, the per-app push lock, the pre-receive callback (unix socket) that records pushes.
//! - `routing`  — the host → upstream table, kept in step with the apps' records by `RouteSync`.
//! - `deploy`   — push → image → health-checked processes → route switch; releases, lifecycle,
//!   logs, image clean-up, reconciling with Docker at start (its `mod.rs` shows its files).
//! - `image_apps` — apps deployed from an image reference (registry logins sealed per app), and
//!   each app's deploy hook for CI (secret URL or HMAC-signed request).
//! - `router`   — the app router: the reverse proxy on `proxy_listen`/`https_listen` (hyper).
//! - `backup`   — one archive of everything the data dir holds (a store snapshot, the apps'
//!   repositories, keys, certificates), restoring it, automatic backups.
//! - `config`   — settings from flags, environment and file (uses the router's timeouts).
//! - `services` — the bundle of the core handed to every transport.
//! - `acme`     — certificates for custom domains from an ACME CA, answered through the router's
//!   challenge table; started by `startup` when `acme_email` is set.
//! - `api`      — JSON over HTTP (actix-web); the one HTTP error mapping.
//! - `console`  — the web console (actix-web + askama; `templates/`, `static/`) under `/console`.
//! - `ssh`      — SSH (russh): key authentication, git command routing, the one SSH error mapping.
//! - `control`  — the local control socket (backups while running).
//! - `startup`  — wiring everything to listeners.
//!
//! The core (`domain` … `image_apps`) never imports actix-web, askama or russh (only the `ssh-key`
//! types russh re-exports, for parsing keys); transports never touch redb.
// Unsafe code is refused everywhere but where a module allows it and says why (only
// `accounts::hashing`, for one madvise call).
#![deny(unsafe_code)]

pub mod accounts;
pub mod acme;
pub mod api;
pub mod apps;
pub mod backup;
pub mod config;
pub mod console;
pub mod control;
pub mod deploy;
pub mod docker;
pub mod domain;
pub mod drain;
pub mod fsutil;
pub mod git;
pub mod image_apps;
pub mod images;
pub mod locks;
pub mod metrics;
pub mod nodes;
pub mod push;
pub mod router;
pub mod routing;
pub mod runtime;
pub mod seal;
pub mod services;
pub mod ssh;
pub mod startup;
pub mod store;
