//! ACME http-01 challenge responses. Whoever runs an ACME order puts the key authorization of
//! each pending challenge here; the router answers
//! `GET /.well-known/acme-challenge/<token>` from it on the plain HTTP listener, for any host,
//! before routing to apps. ACME validation needs a public DNS name that resolves to this host
//! and the router reachable on port 80.

use crate::locks;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// The path prefix of http-01 challenges (RFC 8555 §8.3).
pub const CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// Pending http-01 challenges: token → key authorization.
#[derive(Clone, Default)]
pub struct Challenges {
    pending: Arc<RwLock<HashMap<String, String>>>,
}

impl Challenges {
    /// Publishes the key authorization for `token` until [`Challenges::remove`].
    pub fn insert(&self, token: &str, key_authorization: &str) {
        locks::write(&self.pending).insert(token.to_string(), key_authorization.to_string());
    }

    pub fn remove(&self, token: &str) {
        locks::write(&self.pending).remove(token);
    }

    /// The answer for a request path, if it is a pending challenge.
    pub fn answer(&self, path: &str) -> Option<String> {
        let token = path.strip_prefix(CHALLENGE_PREFIX)?;
        locks::read(&self.pending).get(token).cloned()
    }

    pub fn is_empty(&self) -> bool {
        locks::read(&self.pending).is_empty()
    }
}
