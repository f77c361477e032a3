//! Domain values and records shared by every layer: parsed newtypes, the stored records, and the
//! one error type. No I/O happens here.

mod app_settings;
mod audit;
mod cluster_registry;
mod cron;
mod deploys;
mod error;
mod hostname;
mod image_apps;
mod images;
mod names;
mod processes;
mod push_record;
mod quotas;
mod records;
mod runs;
mod session;
pub mod sshkey;
mod volumes;

pub use app_settings::*;
pub use audit::{AuditAction, AuditRecord, Channel, Origin};
pub use cluster_registry::{ClusterRegistry, parse_registry_address};
pub use cron::*;
pub use deploys::*;
pub use error::{Error, Result};
pub use hostname::{DomainName, is_dns_label};
pub use image_apps::*;
pub use images::{CatalogImage, ImagePolicy, ImageRef};
pub use names::{AppName, Email, Password, Username};
pub use processes::*;
pub use push_record::*;
pub use quotas::{Limits, QuotaUse, UserQuota};
pub use records::*;
pub use runs::*;
pub use session::{SESSION_TTL_SECS, Session};
pub use volumes::{AppVolume, MAX_VOLUMES_PER_APP, MountPath, VolumeName};

/// Seconds since the Unix epoch, the one clock every record uses.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The short form of a commit id people read (`abc1234`).
pub fn short_commit(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

/// RFC 3339 rendering of a record time, for JSON and pages.
pub fn rfc3339(ts: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ts)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}
