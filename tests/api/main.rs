//! One integration-test binary (faster to link than one per file); each module is a feature.

// The harness offers helpers that only some features' tests use.
#[allow(dead_code)]
mod helpers;
#[allow(dead_code)]
mod dockerapp;
#[allow(dead_code)]
mod gitssh;

mod accounts;
mod cli;
mod console;
mod deploy;
mod instances;
mod panel;
mod ssh;
mod ssh_keys;
