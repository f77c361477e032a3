//! One integration-test binary (faster to link than one per file); each module is a feature.

// Shared by the features' tests below.
mod dockerapp;
mod gitssh;
mod helpers;

mod accounts;
mod acme;
mod audit;
mod backup;
mod cli;
mod console;
mod console_ops;
mod deploy;
mod e2e;
mod fidelity;
mod image_apps;
mod images;
mod instances;
mod metrics;
mod openapi;
mod packaging;
mod panel;
mod quotas;
mod router;
mod runs;
mod shutdown;
mod ssh;
mod ssh_keys;
