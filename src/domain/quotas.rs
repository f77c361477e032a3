//! Abuse limits: the most memory one app may have, and per user how many apps, how many
//! processes (replicas of every type) and how much memory (each replica's limit) in all. The installation's limits are settings; an admin may give one user others.

use super::Error;
use serde::{Deserialize, Serialize};

/// The installation's limits, from the settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// MiB one app may have (`max_app_memory`).
    pub max_app_memory_mb: u32,
    /// Apps one user may own (`max_apps_per_user`); `None`: no limit.
    pub max_apps_per_user: Option<u32>,
    /// MiB one user's apps may have together (`max_memory_per_user`); `None`: no limit.
    pub max_memory_per_user_mb: Option<u64>,
    /// Processes one user's apps may run together (`max_replicas_per_user`); `None`: no limit.
    pub max_replicas_per_user: Option<u32>,
}

/// 16 GiB per app; users unlimited, so an installation's own heavy users (and its benchmarks)
/// are not cut off by an upgrade.
impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_app_memory_mb: 16 * 1024,
            max_apps_per_user: None,
            max_memory_per_user_mb: None,
            max_replicas_per_user: None,
        }
    }
}

/// One user's limits, set by an admin; each one not set is the installation's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserQuota {
    pub max_apps: Option<u32>,
    pub max_memory_mb: Option<u64>,
    #[serde(default)]
    pub max_replicas: Option<u32>,
}

/// What a user's apps take: how many, their processes (replicas of every type, by their
/// formation), and the memory limits of those processes added up (MiB).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuotaUse {
    pub apps: u64,
    pub memory_mb: u64,
    pub replicas: u64,
}

impl Limits {
    /// An app's memory limit, refused above `max_app_memory`.
    pub fn check_app_memory(&self, mb: u32) -> Result<u32, Error> {
        if mb > self.max_app_memory_mb {
            return Err(Error::invalid(
                "memory",
                format!(
                    "memory must be at most {} MiB on this installation (max_app_memory)",
                    self.max_app_memory_mb
                ),
            ));
        }
        Ok(mb)
    }

    /// The apps `quota`'s user may own, if limited.
    pub fn max_apps(&self, quota: &UserQuota) -> Option<u32> {
        quota.max_apps.or(self.max_apps_per_user)
    }

    /// The MiB `quota`'s user's apps may have together, if limited.
    pub fn max_memory_mb(&self, quota: &UserQuota) -> Option<u64> {
        quota.max_memory_mb.or(self.max_memory_per_user_mb)
    }

    /// The processes `quota`'s user's apps may run together, if limited.
    pub fn max_replicas(&self, quota: &UserQuota) -> Option<u32> {
        quota.max_replicas.or(self.max_replicas_per_user)
    }

    /// Whether a change taking `username`'s use from `before` to `after` fits their quota: a
    /// `Forbidden` naming the quota otherwise. Only what grows is checked, so a user over a
    /// lowered quota can still shrink or delete apps.
    pub fn check(
        &self,
        quota: &UserQuota,
        username: &str,
        before: QuotaUse,
        after: QuotaUse,
    ) -> Result<(), Error> {
        if let Some(max) = self.max_apps(quota)
            && after.apps > before.apps
            && after.apps > u64::from(max)
        {
            return Err(Error::Forbidden(format!(
                "quota max_apps exceeded: {username} may own at most {max} apps"
            )));
        }
        if let Some(max) = self.max_memory_mb(quota)
            && after.memory_mb > before.memory_mb
            && after.memory_mb > max
        {
            return Err(Error::Forbidden(format!(
                "quota max_memory exceeded: the apps of {username} may have at most {max} MiB \
                 of memory together, and this would make {} MiB",
                after.memory_mb
            )));
        }
        if let Some(max) = self.max_replicas(quota)
            && after.replicas > before.replicas
            && after.replicas > u64::from(max)
        {
            return Err(Error::Forbidden(format!(
                "quota max_replicas exceeded: the apps of {username} may run at most {max} \
                 processes together, and this would make {}",
                after.replicas
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn used(apps: u64, memory_mb: u64) -> QuotaUse {
        QuotaUse {
            apps,
            memory_mb,
            replicas: apps,
        }
    }

    #[test]
    fn a_users_own_quota_wins_over_the_installations_and_only_growth_is_refused() {
        let limits = Limits {
            max_apps_per_user: Some(2),
            max_memory_per_user_mb: Some(512),
            ..Limits::default()
        };
        let none = UserQuota::default();
        assert!(limits.check(&none, "a", used(1, 256), used(2, 512)).is_ok());
        let e = limits
            .check(&none, "a", used(2, 512), used(3, 768))
            .unwrap_err();
        assert!(
            matches!(&e, Error::Forbidden(m) if m.contains("max_apps")),
            "{e}"
        );
        let e = limits
            .check(&none, "a", used(1, 256), used(1, 600))
            .unwrap_err();
        assert!(
            matches!(&e, Error::Forbidden(m) if m.contains("max_memory")),
            "{e}"
        );
        // Over a lowered quota, shrinking is still allowed.
        assert!(
            limits
                .check(&none, "a", used(5, 2048), used(5, 1024))
                .is_ok()
        );
        let more = UserQuota {
            max_apps: Some(10),
            max_memory_mb: Some(4096),
            max_replicas: None,
        };
        let few = UserQuota {
            max_replicas: Some(3),
            ..more
        };
        let grow = |replicas| QuotaUse {
            replicas,
            ..used(2, 512)
        };
        assert!(limits.check(&few, "a", grow(2), grow(3)).is_ok());
        let e = limits.check(&few, "a", grow(3), grow(4)).unwrap_err();
        assert!(
            matches!(&e, Error::Forbidden(m) if m.contains("max_replicas")),
            "{e}"
        );
        assert!(limits.check(&more, "a", used(2, 512), used(3, 768)).is_ok());
    }

    #[test]
    fn an_apps_memory_above_max_app_memory_is_refused_naming_the_field_and_limit() {
        let e = Limits::default().check_app_memory(1_048_576).unwrap_err();
        assert_eq!(e.field(), Some("memory"));
        assert!(e.to_string().contains("16384 MiB"), "{e}");
        assert_eq!(Limits::default().check_app_memory(512).unwrap(), 512);
    }
}
