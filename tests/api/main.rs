//! One integration-test binary (faster to link than one per file); each module is a feature.

// The harness offers helpers that only some features' tests use.
#[allow(dead_code)]
mod dockerapp;
#[allow(dead_code)]
mod gitssh;
#[allow(dead_code)]
mod helpers;

mod accounts;
mod acme;
mod cli;
mod console;
mod deploy;
mod e2e;
mod instances;
mod panel;
mod router;
mod ssh;
mod ssh_keys;
