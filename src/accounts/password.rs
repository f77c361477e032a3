//! Changing one's own password.

use super::{Accounts, Principal, hash_token, hashing};
use crate::domain::{Error, Password, Result};
use std::net::IpAddr;

impl Accounts {
    /// Replaces the caller's password after checking the current one, and signs out everywhere
    /// else: every other console session of the account (`keep_session` is the id of the one
    /// making the change), every login token but the caller's, and every JWT (they are bound to
    /// the password). Named API keys stay: they are deliberate credentials, revoked one by one.
    pub async fn change_password(
        &self,
        who: &Principal,
        current: &str,
        new: &str,
        keep_session: Option<&str>,
        client: IpAddr,
    ) -> Result<()> {
        if current.is_empty() {
            return Err(Error::missing("current_password"));
        }
        let new = Password::parse(new).map_err(|e| match e {
            Error::Invalid { message, .. } => Error::invalid("new_password", message),
            other => other,
        })?;
        // The same limiter as sign-in: an open session must not become a password oracle.
        let user = self
            .check_credentials(&who.user.username, current, client)
            .await
            .map_err(|e| match e {
                Error::Unauthorized(_) => {
                    Error::invalid("current_password", "the current password is not right")
                }
                other => other,
            })?;
        let hash = hashing::hashing(move || hashing::hash_password(new.expose())).await??;
        let keep = keep_session.map(hash_token);
        let keep_token = who.token_hash.clone();
        let id = user.id;
        let audit = who.audit(
            crate::domain::AuditAction::UserPassword,
            None,
            "password changed; other sessions and login tokens signed out",
        );
        self.inner
            .store
            .write_async(move |w| {
                let mut user = w
                    .user(id)?
                    .ok_or_else(|| Error::Unauthorized("the account no longer exists".into()))?;
                user.password_hash = hash;
                w.put_user(&user)?;
                w.audit(audit)?;
                for h in w.session_hashes_of(id)? {
                    if keep.as_deref() != Some(h.as_str()) {
                        w.delete_session(&h)?;
                    }
                }
                for h in w.login_token_hashes_of(id)? {
                    if keep_token.as_deref() != Some(h.as_str()) {
                        w.delete_token(&h)?;
                    }
                }
                Ok(())
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::super::{JwtKeys, NewUser, Registrar, Registration};
    use super::*;
    use crate::store::Store;

    async fn setup() -> (tempfile::TempDir, Accounts, Principal) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let a = Accounts::new(store, Registration::Open, JwtKeys::from_secret(&[1u8; 32])).unwrap();
        let user = a
            .register(
                Registrar::Public,
                NewUser {
                    username: "alice",
                    email: "a@x.io",
                    password: "password1",
                    admin: false,
                },
                CONSOLE,
            )
            .await
            .unwrap();
        let p = Principal {
            user,
            token_hash: None,
            origin: CONSOLE,
        };
        (dir, a, p)
    }

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    const CONSOLE: crate::domain::Origin = crate::domain::Origin {
        channel: crate::domain::Channel::Console,
        address: Some(IP),
    };

    #[tokio::test]
    async fn a_new_password_works_and_signs_out_the_other_sessions() {
        let (_d, a, p) = setup().await;
        let here = a.sign_in("alice", "password1", CONSOLE).await.unwrap();
        let elsewhere = a.sign_in("alice", "password1", CONSOLE).await.unwrap();
        a.change_password(&p, "password1", "password2", Some(&here.id), IP)
            .await
            .unwrap();
        assert!(a.session(&here.id, CONSOLE).unwrap().is_some());
        assert!(a.session(&elsewhere.id, CONSOLE).unwrap().is_none());
        assert!(a.sign_in("alice", "password1", CONSOLE).await.is_err());
        assert!(a.sign_in("alice", "password2", CONSOLE).await.is_ok());
    }

    #[tokio::test]
    async fn a_wrong_current_password_or_a_short_new_one_names_the_field() {
        let (_d, a, p) = setup().await;
        for (cur, new, field) in [
            ("nope-nope", "password2", "current_password"),
            ("password1", "short", "new_password"),
        ] {
            match a.change_password(&p, cur, new, None, IP).await {
                Err(Error::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn signing_out_ends_the_session() {
        let (_d, a, _p) = setup().await;
        let s = a.sign_in("alice", "password1", CONSOLE).await.unwrap();
        assert_eq!(
            a.session(&s.id, CONSOLE).unwrap().unwrap().0.user.username,
            "alice"
        );
        a.sign_out(&s.id).await.unwrap();
        assert!(a.session(&s.id, CONSOLE).unwrap().is_none());
        assert!(a.session("not-a-session", CONSOLE).unwrap().is_none());
    }
}
