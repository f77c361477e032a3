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
//! - `git`      — apps' bare repositories, running receive-pack/upload-pack for an authorized
//!   user, the per-app push lock, the pre-receive callback (unix socket) that records pushes.
//! - `deploy`   — push → image → health-checked container → switch; releases, lifecycle, reconcile.
//! - `routing`  — the host → upstream table the deploy engine writes and the router reads.
//! - `router`   — the app router: the reverse proxy on `proxy_listen`/`https_listen` (hyper).
//! - `services` — the bundle of the above handed to every transport.
//! - `api`      — JSON over HTTP (actix-web); the one HTTP error mapping.
//! - `console`  — the web console (actix-web + askama) under `/console`, on the same listener.
//! - `ssh`      — SSH (russh): key authentication, git command routing, the one SSH error mapping.
//! - `control`  — the local control socket (backups while running).
//! - `config`, `startup` — settings, and wiring everything to listeners.
//!
//! The core (`domain` … `git`) never imports actix-web, askama or russh (only the `ssh-key` types
//! russh re-exports, for parsing keys); transports never touch redb.
#![forbid(unsafe_code)]

pub mod accounts;
pub mod acme;
pub mod api;
pub mod apps;
pub mod config;
pub mod console;
pub mod control;
pub mod deploy;
pub mod docker;
pub mod domain;
pub mod fsutil;
pub mod git;
pub mod locks;
pub mod nodes;
pub mod push;
pub mod router;
pub mod routing;
pub mod runtime;
pub mod services;
pub mod ssh;
pub mod startup;
pub mod store;
