//! Console sessions: sign in with a password, resolve the session cookie, sign out.
//!
//! A session id is 128 random bits, handed to the browser once; the store keys the session by
//! the id's SHA-256, like API tokens. Signing out deletes the record, so a stolen cookie stops
//! working at once (a signed, stateless cookie could not be revoked).

use super::{Accounts, Principal, generate_token, hash_token, secrets};
use crate::domain::{self, AuditAction, AuditRecord, Origin, Result, SESSION_TTL_SECS, Session};
use std::net::IpAddr;

/// What the browser gets after signing in.
#[derive(Debug)]
pub struct NewSession {
    /// The cookie value; never stored.
    pub id: String,
    pub session: Session,
    pub principal: Principal,
}

impl Accounts {
    /// Checks a username and password (rate-limited like the API's login) and opens a session.
    pub async fn sign_in(
        &self,
        username: &str,
        password: &str,
        origin: Origin,
    ) -> Result<NewSession> {
        let client = origin.address.unwrap_or(IpAddr::from([127, 0, 0, 1]));
        let user = self
            .check_credentials(username.trim(), password, client)
            .await?;
        let id = generate_token();
        let now = domain::now();
        let session = Session {
            user_id: user.id,
            csrf: generate_token(),
            created_at: now,
            expires_at: now + SESSION_TTL_SECS,
        };
        let (hash, rec) = (hash_token(&id), session.clone());
        let audit = AuditRecord::new(&user, origin, AuditAction::SignIn, None, "console session");
        self.inner
            .store
            .write_async(move |w| {
                // Sweep this account's expired sessions so the table cannot grow without end.
                for h in w.session_hashes_of(rec.user_id)? {
                    if w.session(&h)?.is_none_or(|s| s.expired(now)) {
                        w.delete_session(&h)?;
                    }
                }
                w.put_session(&hash, &rec)?;
                w.audit(audit)
            })
            .await?;
        Ok(NewSession {
            id,
            session,
            principal: Principal {
                user,
                token_hash: None,
                origin,
            },
        })
    }

    /// The signed-in user of a session cookie, or `None` when the session is unknown, expired,
    /// or its user was deleted (the browser is then simply signed out).
    pub fn session(&self, id: &str, origin: Origin) -> Result<Option<(Principal, Session)>> {
        let id = id.trim();
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let hash = hash_token(id);
        let found = self.inner.store.read(|r| {
            let Some(s) = r.session(&hash)? else {
                return Ok(None);
            };
            Ok(r.user(s.user_id)?.map(|u| (u, s)))
        })?;
        let Some((user, session)) = found else {
            return Ok(None);
        };
        // The record is found by its hash; compare in constant time anyway, as for tokens.
        if session.expired(domain::now()) || !secrets::ct_eq(&hash, &hash_token(id)) {
            return Ok(None);
        }
        Ok(Some((
            Principal {
                user,
                token_hash: None,
                origin,
            },
            session,
        )))
    }

    /// Ends a session; unknown ids are fine (signing out twice is not an error).
    pub async fn sign_out(&self, id: &str) -> Result<()> {
        let hash = hash_token(id.trim());
        self.inner
            .store
            .write_async(move |w| w.delete_session(&hash))
            .await
    }
}
