//! One integration-test binary (faster to link than one per file); each module is a feature.

// Shared by the features' tests below.
mod dockerapp;
mod gitssh;
mod helpers;

mod accounts;
mod acme;
mod cli;
mod console;
mod deploy;
mod e2e;
mod instances;
mod openapi;
mod panel;
mod quotas;
mod router;
mod runs;
mod ssh;
mod ssh_keys;
