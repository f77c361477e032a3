//! The record of one `git push` as the pre-receive callback saw it.

use serde::{Deserialize, Serialize};

/// One pushed ref update: `old new ref`, as git's pre-receive hook reads it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PushedRef {
    pub old: String,
    pub new: String,
    pub name: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PushOutcome {
    /// The handler is still deciding (or the server stopped while it was).
    Running,
    Accepted,
    Rejected,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PushRecord {
    /// Store sequence number.
    pub id: u64,
    /// The push's unique id, as handed to the handler ([`crate::push::Push::id`]).
    pub push_id: String,
    pub app: String,
    pub user_id: super::UserId,
    pub username: String,
    pub refs: Vec<PushedRef>,
    pub outcome: PushOutcome,
    /// Why it was rejected, as shown to the pusher.
    pub message: Option<String>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
}
