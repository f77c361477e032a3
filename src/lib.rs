//! Scalefog: a self-hosted platform-as-a-service in one binary.
//!
//! Module map (dependencies point up this list, never down):
//!
//! - `domain`   — parsed names, stored records, the one [`domain::Error`]. No I/O.
//! - `store`    — the redb file; typed reads and single-transaction writes.
//! - `docker`   — the Docker Engine interface (bollard), one per node.
//! - `accounts` — users, passwords, tokens, API keys, JWTs, SSH keys.
//! - `apps`     — apps ("instances"): create, list, access checks, delete.
//! - `nodes`    — regions and nodes (Docker endpoints).
//! - `push`     — a git push as the core sees it, and the handler that decides it.
//! - `routing`  — the host → upstream table the deploy engine writes and the router reads.
//! - `router`   — the app router: the reverse proxy on `proxy_listen`/`https_listen` (hyper).
//! - `services` — the bundle of the above handed to every transport.
//! - `api`      — JSON over HTTP (actix-web); the one HTTP error mapping.
//! - `control`  — the local control socket (backups while running).
//! - `config`, `startup` — settings, and wiring everything to listeners.
//!
//! The core (`domain` … `nodes`) never imports actix-web or askama; transports never touch redb.
#![forbid(unsafe_code)]

pub mod accounts;
pub mod api;
pub mod apps;
pub mod config;
pub mod control;
pub mod docker;
pub mod domain;
pub mod fsutil;
pub mod nodes;
pub mod push;
pub mod router;
pub mod routing;
pub mod services;
pub mod startup;
pub mod store;
