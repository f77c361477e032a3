//! A signed-in browser session of the web console. Only the SHA-256 of the session id is ever
//! stored (as the record's key), so a copy of the store cannot be used to take over sessions.

use super::UserId;
use serde::{Deserialize, Serialize};

/// How long a console session lives after sign-in, whatever the activity.
pub const SESSION_TTL_SECS: i64 = 7 * 24 * 3600;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub user_id: UserId,
    /// The anti-CSRF token every form of this session must carry. Kept server-side rather than
    /// in a cookie: apps are served on subdomains of the console's domain, and a subdomain can
    /// plant cookies for its parent, which would defeat a double-submit cookie.
    pub csrf: String,
    pub created_at: i64,
    pub expires_at: i64,
}

impl Session {
    pub fn expired(&self, now: i64) -> bool {
        now >= self.expires_at
    }
}
