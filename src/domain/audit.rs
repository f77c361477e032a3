//! The audit log's records: who changed what, when, and from where. Each is written by the core
//! in the same store transaction as the change it describes, so the log never tells of a change
//! that did not happen, nor misses one that did.

use super::{User, UserId};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// The way a change reached Scalefog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Api,
    Console,
    Ssh,
    /// The `scalefog` command on the server itself (`admin create-user`).
    Cli,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Api => "api",
            Channel::Console => "console",
            Channel::Ssh => "ssh",
            Channel::Cli => "cli",
        }
    }
}

/// Where a caller is: the channel and, for network channels, the client's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub channel: Channel,
    pub address: Option<IpAddr>,
}

impl Origin {
    pub fn new(channel: Channel, address: IpAddr) -> Origin {
        Origin {
            channel,
            address: Some(address),
        }
    }
    /// The server's own command line.
    pub const CLI: Origin = Origin {
        channel: Channel::Cli,
        address: None,
    };
}

/// What was done. Stored as the dotted name [`AuditAction::as_str`] gives (`app.rollback`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuditAction {
    #[serde(rename = "user.register")]
    UserRegister,
    #[serde(rename = "user.delete")]
    UserDelete,
    #[serde(rename = "user.quota")]
    UserQuota,
    #[serde(rename = "user.password")]
    UserPassword,
    #[serde(rename = "sign_in")]
    SignIn,
    #[serde(rename = "sign_out")]
    SignOut,
    #[serde(rename = "api_key.create")]
    ApiKeyCreate,
    #[serde(rename = "api_key.revoke")]
    ApiKeyRevoke,
    #[serde(rename = "ssh_key.add")]
    SshKeyAdd,
    #[serde(rename = "ssh_key.delete")]
    SshKeyDelete,
    #[serde(rename = "app.create")]
    AppCreate,
    #[serde(rename = "app.delete")]
    AppDelete,
    #[serde(rename = "app.deploy")]
    AppDeploy,
    #[serde(rename = "app.rollback")]
    AppRollback,
    #[serde(rename = "app.config")]
    AppConfig,
    #[serde(rename = "app.scale")]
    AppScale,
    #[serde(rename = "app.start")]
    AppStart,
    #[serde(rename = "app.stop")]
    AppStop,
    #[serde(rename = "app.restart")]
    AppRestart,
    #[serde(rename = "app.settings")]
    AppSettings,
    #[serde(rename = "app.domain_add")]
    AppDomainAdd,
    #[serde(rename = "app.domain_remove")]
    AppDomainRemove,
    #[serde(rename = "app.volume_add")]
    AppVolumeAdd,
    #[serde(rename = "app.volume_remove")]
    AppVolumeRemove,
    /// A one-off run started (`ssh … run`, `POST …/runs`).
    #[serde(rename = "app.run")]
    AppRun,
    #[serde(rename = "node.create")]
    NodeCreate,
    #[serde(rename = "node.delete")]
    NodeDelete,
    /// An image added to or removed from the admins' catalog.
    #[serde(rename = "image.add")]
    ImageAdd,
    #[serde(rename = "image.remove")]
    ImageRemove,
    /// An app's deploy hook created, rotated or removed.
    #[serde(rename = "app.hook")]
    AppHook,
    /// An app moved into the cluster when it was turned on (or a move that failed).
    #[serde(rename = "app.move")]
    AppMove,
    /// The cluster's image registry set or removed.
    #[serde(rename = "cluster.registry")]
    ClusterRegistry,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::UserRegister => "user.register",
            AuditAction::UserDelete => "user.delete",
            AuditAction::UserQuota => "user.quota",
            AuditAction::UserPassword => "user.password",
            AuditAction::SignIn => "sign_in",
            AuditAction::SignOut => "sign_out",
            AuditAction::ApiKeyCreate => "api_key.create",
            AuditAction::ApiKeyRevoke => "api_key.revoke",
            AuditAction::SshKeyAdd => "ssh_key.add",
            AuditAction::SshKeyDelete => "ssh_key.delete",
            AuditAction::AppCreate => "app.create",
            AuditAction::AppDelete => "app.delete",
            AuditAction::AppDeploy => "app.deploy",
            AuditAction::AppRollback => "app.rollback",
            AuditAction::AppConfig => "app.config",
            AuditAction::AppScale => "app.scale",
            AuditAction::AppStart => "app.start",
            AuditAction::AppStop => "app.stop",
            AuditAction::AppRestart => "app.restart",
            AuditAction::AppSettings => "app.settings",
            AuditAction::AppDomainAdd => "app.domain_add",
            AuditAction::AppDomainRemove => "app.domain_remove",
            AuditAction::AppVolumeAdd => "app.volume_add",
            AuditAction::AppVolumeRemove => "app.volume_remove",
            AuditAction::AppRun => "app.run",
            AuditAction::NodeCreate => "node.create",
            AuditAction::NodeDelete => "node.delete",
            AuditAction::ImageAdd => "image.add",
            AuditAction::ImageRemove => "image.remove",
            AuditAction::AppHook => "app.hook",
            AuditAction::AppMove => "app.move",
            AuditAction::ClusterRegistry => "cluster.registry",
        }
    }
}

/// One entry of the audit log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuditRecord {
    /// Given by the store when the entry is written (0 before).
    pub id: u64,
    pub at: i64,
    pub user_id: UserId,
    pub username: String,
    pub channel: Channel,
    /// The client's address, for network channels.
    pub address: Option<IpAddr>,
    pub action: AuditAction,
    /// The app the change was made to, for app actions.
    pub app: Option<String>,
    /// Who owns that app, filled in by the store from the app's record in the same
    /// transaction: owners see what others (admins) did to their apps.
    #[serde(default)]
    pub app_owner: Option<UserId>,
    /// What exactly: the key, the release, the vars (never their values).
    pub detail: String,
}

impl AuditRecord {
    /// An entry for `action` by `user` from `origin`, stamped now.
    pub fn new(
        user: &User,
        origin: Origin,
        action: AuditAction,
        app: Option<&str>,
        detail: impl Into<String>,
    ) -> AuditRecord {
        AuditRecord {
            id: 0,
            at: super::now(),
            user_id: user.id,
            username: user.username.clone(),
            channel: origin.channel,
            address: origin.address,
            action,
            app: app.map(str::to_string),
            app_owner: None,
            detail: detail.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_are_stored_by_their_dotted_names() {
        for a in [
            AuditAction::AppRollback,
            AuditAction::SignIn,
            AuditAction::SshKeyAdd,
            AuditAction::AppVolumeRemove,
        ] {
            assert_eq!(
                serde_json::to_string(&a).unwrap(),
                format!("\"{}\"", a.as_str())
            );
        }
        assert_eq!(serde_json::to_string(&Channel::Ssh).unwrap(), "\"ssh\"");
    }
}
