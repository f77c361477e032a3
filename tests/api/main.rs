//! One integration-test binary (faster to link than one per file); each module is a feature.

mod helpers;

mod accounts;
mod router;
