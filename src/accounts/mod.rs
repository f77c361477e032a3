//! Accounts: users, passwords, login tokens, named API keys, JWT exchange and SSH keys.
//!
//! Secrets are never stored: passwords as argon2id hashes, tokens and API keys as SHA-256
//! hashes. Hashing and verifying passwords is deliberately slow, so it runs off the async workers.

mod chosen_id;
mod hashing;
mod limiter;
mod password;
mod secrets;
mod sessions;

pub use chosen_id::{ChosenId, MAX_CHOSEN_ID};
pub use limiter::LoginLimiter;
pub use secrets::{JwtKeys, generate_token, hash_token};
pub use sessions::NewSession;

use crate::domain::{
    self, ApiKey, AuditAction, AuditRecord, Email, Error, Origin, Password, Result, SshKey,
    TokenKind, TokenRecord, User, UserId, Username,
};
use crate::store::{Page, Slice, Store};
use std::net::IpAddr;
use std::sync::Arc;

/// Whether strangers may create accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Registration {
    Open,
    Closed,
}

/// Who is calling, with what credential, and from where.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: User,
    /// The stored hash of the token used, when it was a token or API key (not a JWT).
    pub token_hash: Option<String>,
    /// The channel and address the call came through, for the audit log. Set by the transport
    /// where it authenticates.
    pub origin: Origin,
}

impl Principal {
    /// User `id` (`user<id>`, an admin or not) calling from the command line: for unit tests
    /// of the core's rules.
    #[cfg(test)]
    pub fn for_tests(id: u64, admin: bool) -> Principal {
        Principal {
            user: User {
                id,
                username: format!("user{id}"),
                email: format!("u{id}@x.io"),
                password_hash: String::new(),
                admin,
                created_at: 0,
                quota: Default::default(),
                external_id: None,
            },
            token_hash: None,
            origin: Origin::CLI,
        }
    }

    /// An audit entry of `action` by this caller, to write in the transaction of the change:
    /// `w.audit(who.audit(AuditAction::AppScale, Some(app), "web=3"))`.
    pub fn audit(
        &self,
        action: AuditAction,
        app: Option<&str>,
        detail: impl Into<String>,
    ) -> AuditRecord {
        AuditRecord::new(&self.user, self.origin, action, app, detail)
    }

    /// What this caller may read of the audit log: admins all of it, others what they did and
    /// what was done to their apps; newest first.
    pub fn audit_log(&self, store: &Store, slice: Slice) -> Result<Page<AuditRecord>> {
        if self.is_admin() {
            store.read(|r| r.audit_log(slice))
        } else {
            store.read(|r| r.audit_log_of(self.id(), slice))
        }
    }

    pub fn id(&self) -> UserId {
        self.user.id
    }
    pub fn is_admin(&self) -> bool {
        self.user.admin
    }
}

/// Who may ask for a new account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registrar {
    /// Anyone, through the public routes; refused when registration is closed.
    Public,
    /// An admin (API or CLI): always allowed, and may grant admin rights.
    Admin,
}

pub struct NewUser<'a> {
    pub username: &'a str,
    pub email: &'a str,
    pub password: &'a str,
    pub admin: bool,
}

#[derive(Clone)]
pub struct Accounts {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    registration: Registration,
    limiter: LoginLimiter,
    jwt: JwtKeys,
    /// A real argon2 hash to verify against when the username does not exist, so that a wrong
    /// username takes as long as a wrong password.
    dummy_hash: String,
}

impl Accounts {
    pub fn new(store: Store, registration: Registration, jwt: JwtKeys) -> Result<Accounts> {
        let dummy_hash = hashing::hash_password("scalefog-dummy-password")?;
        Ok(Accounts {
            inner: Arc::new(Inner {
                store,
                registration,
                limiter: LoginLimiter::default(),
                jwt,
                dummy_hash,
            }),
        })
    }

    pub fn registration(&self) -> Registration {
        self.inner.registration
    }

    /// Creates an account. The very first account is an admin whatever was asked. The audit
    /// entry is the new user's, from `origin`; its detail says whether an admin created it.
    pub async fn register(&self, who: Registrar, new: NewUser<'_>, origin: Origin) -> Result<User> {
        self.register_with_id(who, new, None, origin).await
    }

    /// [`Accounts::register`] with the id an admin client chose (see [`ChosenId`]): `409` when
    /// that id (or an id above it) was handed out, or that external id is taken (an external id
    /// may not be anyone's username either, so a lookup by name or id is never ambiguous).
    pub async fn register_with_id(
        &self,
        who: Registrar,
        new: NewUser<'_>,
        chosen: Option<ChosenId>,
        origin: Origin,
    ) -> Result<User> {
        if chosen.is_some() && who != Registrar::Admin {
            return Err(Error::Forbidden(
                "only an administrator may choose a user id".into(),
            ));
        }
        if who == Registrar::Public && self.inner.registration == Registration::Closed {
            return Err(Error::Forbidden(
                "registration is closed on this server; ask an administrator for an account".into(),
            ));
        }
        let username = Username::parse(new.username.trim())?;
        let email = Email::parse(new.email)?;
        let password = Password::parse(new.password)?;
        // Cheap conflict check before the expensive hash; the transaction checks again.
        let taken = self
            .inner
            .store
            .read(|r| Ok(r.user_by_name(username.as_str())?.is_some()))?;
        if taken {
            return Err(Error::Conflict(format!(
                "username '{username}' is already taken"
            )));
        }
        let hash = hashing::hashing(move || hashing::hash_password(password.expose())).await??;
        let want_admin = who == Registrar::Admin && new.admin;
        self.inner
            .store
            .write_async(move |w| {
                if w.user_by_name(username.as_str())?.is_some() {
                    return Err(Error::Conflict(format!(
                        "username '{username}' is already taken"
                    )));
                }
                if w.user_by_email(email.as_str())?.is_some() {
                    return Err(Error::Conflict(format!(
                        "email '{email}' is already registered"
                    )));
                }
                if w.user_by_external_id(username.as_str())?.is_some() {
                    return Err(Error::Conflict(format!(
                        "username '{username}' is already taken"
                    )));
                }
                let (id, external_id) = match chosen {
                    None => (w.next_id("user")?, None),
                    Some(ChosenId::Number(id)) => {
                        if !w.claim_id("user", id)? {
                            return Err(Error::Conflict(format!(
                                "user id {id} is taken, or was by an account since deleted"
                            )));
                        }
                        (id, None)
                    }
                    Some(ChosenId::External(x)) => {
                        if w.user_by_external_id(&x)?.is_some() || w.user_by_name(&x)?.is_some() {
                            return Err(Error::Conflict(format!("user id '{x}' is already taken")));
                        }
                        (w.next_id("user")?, Some(x))
                    }
                };
                let first = w.user_count()? == 0;
                let user = User {
                    id,
                    username: username.into_string(),
                    email: email.into_string(),
                    password_hash: hash,
                    admin: first || want_admin,
                    created_at: domain::now(),
                    quota: Default::default(),
                    external_id,
                };
                w.put_user(&user)?;
                let how = match who {
                    Registrar::Public => "registered",
                    Registrar::Admin => "created by an administrator",
                };
                let admin = if user.admin { ", admin" } else { "" };
                w.audit(AuditRecord::new(
                    &user,
                    origin,
                    AuditAction::UserRegister,
                    None,
                    format!("{how}{admin}"),
                ))?;
                Ok(user)
            })
            .await
    }

    /// Checks a username and password and issues a new login token.
    /// The error never tells whether the username exists.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        origin: Origin,
    ) -> Result<(String, User)> {
        let client = origin.address.unwrap_or(IpAddr::from([127, 0, 0, 1]));
        let user = self.check_credentials(username, password, client).await?;
        let token = generate_token();
        let rec = TokenRecord {
            user_id: user.id,
            kind: TokenKind::Login,
            created_at: domain::now(),
        };
        let hash = hash_token(&token);
        let audit = AuditRecord::new(&user, origin, AuditAction::SignIn, None, "API token");
        self.inner
            .store
            .write_async(move |w| {
                w.put_token(&hash, &rec)?;
                w.audit(audit)
            })
            .await?;
        Ok((token, user))
    }

    /// The user a username and password belong to, under the failed-login rate limits.
    /// Shared by API login and console sign-in, so both are limited by the same counters.
    async fn check_credentials(
        &self,
        username: &str,
        password: &str,
        client: IpAddr,
    ) -> Result<User> {
        if username.is_empty() {
            return Err(Error::missing("username"));
        }
        if password.is_empty() {
            return Err(Error::missing("password"));
        }
        self.inner.limiter.check(username, client)?;
        let user = self.inner.store.read(|r| r.user_by_name(username))?;
        let hash = user
            .as_ref()
            .map_or(self.inner.dummy_hash.clone(), |u| u.password_hash.clone());
        let pw = password.to_string();
        let ok = hashing::hashing(move || hashing::verify_password(&pw, &hash)).await?;
        let user = match (ok, user) {
            (true, Some(user)) => user,
            _ => {
                self.inner.limiter.failed(username, client);
                return Err(Error::Unauthorized("invalid username or password".into()));
            }
        };
        self.inner.limiter.succeeded(username, client);
        Ok(user)
    }

    /// Resolves a bearer credential: a login token, an API key, or an access JWT.
    pub fn authenticate(&self, credential: &str, origin: Origin) -> Result<Principal> {
        let bad = || Error::Unauthorized("invalid or expired credentials".into());
        let credential = credential.trim();
        if credential.contains('.') {
            let claims = self
                .inner
                .jwt
                .verify(credential, secrets::JwtUse::Access)
                .map_err(|_| bad())?;
            let user = self.bound_user(&claims).ok_or_else(bad)?;
            return Ok(Principal {
                user,
                token_hash: None,
                origin,
            });
        }
        if credential.len() != 32 || !credential.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let hash = hash_token(credential);
        // Tokens are located by their SHA-256, so lookup timing can only reveal hash prefixes,
        // which say nothing about any token; the stored hash is then compared in constant time.
        let (rec, user) = self.inner.store.read(|r| {
            let Some(rec) = r.token(&hash)? else {
                return Ok((None, None));
            };
            let user = r.user(rec.user_id)?;
            Ok((Some(rec), user))
        })?;
        let (Some(_rec), Some(user)) = (rec, user) else {
            return Err(bad());
        };
        if !secrets::ct_eq(&hash, &hash_token(credential)) {
            return Err(bad());
        }
        Ok(Principal {
            user,
            token_hash: Some(hash),
            origin,
        })
    }

    /// Revokes the token the caller authenticated with.
    pub async fn logout(&self, who: &Principal) -> Result<()> {
        let Some(hash) = who.token_hash.clone() else {
            return Err(Error::invalid(
                "authorization",
                "a JWT cannot be revoked; it expires by itself. Revoke the token it was exchanged from",
            ));
        };
        // An API key signing itself out is revoked as a whole: its record goes with its hash,
        // so the key list does not show a key that no longer works.
        let who = who.clone();
        self.inner
            .store
            .write_async(move |w| {
                let key = match w.token(&hash)?.map(|t| t.kind) {
                    Some(TokenKind::ApiKey(id)) => w.api_key(id)?,
                    _ => None,
                };
                match key {
                    Some(key) => {
                        w.delete_api_key(&key)?;
                        w.audit(who.audit(
                            AuditAction::ApiKeyRevoke,
                            None,
                            format!("'{}' (#{}), signing itself out", key.name, key.id),
                        ))
                    }
                    None => {
                        w.delete_token(&hash)?;
                        w.audit(who.audit(AuditAction::SignOut, None, "API token revoked"))
                    }
                }
            })
            .await
    }

    /// Exchanges a token (or a refresh JWT) for a short-lived access JWT and a refresh JWT, both
    /// bound to the token and the password: revoking the token, or changing the password, ends
    /// them at once.
    pub fn exchange(&self, credential: &str) -> Result<secrets::JwtPair> {
        let credential = credential.trim();
        let (bound, user) = if credential.contains('.') {
            let expired = || Error::Unauthorized("invalid or expired refresh token".into());
            let claims = self
                .inner
                .jwt
                .verify(credential, secrets::JwtUse::Refresh)
                .map_err(|_| expired())?;
            let user = self.bound_user(&claims).ok_or_else(expired)?;
            let bound = secrets::Bound {
                sub: user.id,
                cred: claims.cred,
                pwd: secrets::password_mark(&user.password_hash),
            };
            (bound, user)
        } else {
            // Only to resolve the token: nothing is changed, so nothing is audited.
            let who = self.authenticate(credential, Origin::CLI)?;
            let bound = secrets::Bound {
                sub: who.user.id,
                cred: who.token_hash.unwrap_or_default(),
                pwd: secrets::password_mark(&who.user.password_hash),
            };
            (bound, who.user)
        };
        let identity = secrets::Identity {
            username: user.username,
            email: user.email,
        };
        self.inner.jwt.issue(&bound, &identity)
    }

    /// The account a verified JWT speaks for, if the credential it came from still exists for
    /// that account and the password is still the one it was issued under.
    fn bound_user(&self, claims: &secrets::Claims) -> Option<User> {
        let (token, user) = self
            .inner
            .store
            .read(|r| Ok((r.token(&claims.cred)?, r.user(claims.sub)?)))
            .ok()?;
        let (token, user) = (token?, user?);
        let same_password =
            secrets::ct_eq(&secrets::password_mark(&user.password_hash), &claims.pwd);
        (token.user_id == user.id && same_password).then_some(user)
    }

    pub async fn create_api_key(&self, who: &Principal, name: &str) -> Result<(ApiKey, String)> {
        let name = name.trim();
        if name.is_empty() {
            return Err(Error::missing("name"));
        }
        if name.chars().count() > 64 || name.chars().any(char::is_control) {
            return Err(Error::invalid(
                "name",
                "name must be 1-64 printable characters",
            ));
        }
        let token = generate_token();
        let hash = hash_token(&token);
        let (user_id, name, prefix) = (who.id(), name.to_string(), token[..6].to_string());
        let who = who.clone();
        let key = self
            .inner
            .store
            .write_async(move |w| {
                let key = ApiKey {
                    id: w.next_id("api_key")?,
                    user_id,
                    name,
                    token_hash: hash.clone(),
                    prefix,
                    created_at: domain::now(),
                };
                w.put_api_key(&key)?;
                w.put_token(
                    &hash,
                    &TokenRecord {
                        user_id,
                        kind: TokenKind::ApiKey(key.id),
                        created_at: key.created_at,
                    },
                )?;
                w.audit(who.audit(
                    AuditAction::ApiKeyCreate,
                    None,
                    format!("'{}' (#{})", key.name, key.id),
                ))?;
                Ok(key)
            })
            .await?;
        Ok((key, token))
    }

    pub fn api_keys(&self, who: &Principal, slice: Slice) -> Result<Page<ApiKey>> {
        self.inner.store.read(|r| r.api_keys_of(who.id(), slice))
    }

    pub async fn revoke_api_key(&self, who: &Principal, id: &str) -> Result<()> {
        let not_found = || Error::NotFound(format!("no API key '{id}'"));
        let id: u64 = id.parse().map_err(|_| not_found())?;
        let (user_id, who) = (who.id(), who.clone());
        self.inner
            .store
            .write_async(move |w| match w.api_key(id)? {
                Some(k) if k.user_id == user_id => {
                    w.delete_api_key(&k)?;
                    w.audit(who.audit(
                        AuditAction::ApiKeyRevoke,
                        None,
                        format!("'{}' (#{})", k.name, k.id),
                    ))
                }
                _ => Err(Error::NotFound(format!("no API key '{id}'"))),
            })
            .await
    }

    /// Adds an SSH public key; a key can belong to one account only.
    pub async fn add_ssh_key(&self, who: &Principal, text: &str) -> Result<SshKey> {
        let parsed = domain::sshkey::parse(text)?;
        let (user_id, who) = (who.id(), who.clone());
        self.inner
            .store
            .write_async(move |w| {
                if w.ssh_key_by_fingerprint(&parsed.fingerprint)?.is_some() {
                    return Err(Error::Conflict(format!(
                        "key {} is already registered to an account",
                        parsed.fingerprint
                    )));
                }
                let key = SshKey {
                    id: w.next_id("ssh_key")?,
                    user_id,
                    fingerprint: parsed.fingerprint,
                    algorithm: parsed.algorithm,
                    public_key: parsed.public_key,
                    comment: parsed.comment,
                    created_at: domain::now(),
                };
                w.put_ssh_key(&key)?;
                w.audit(who.audit(
                    AuditAction::SshKeyAdd,
                    None,
                    format!("{} {}", key.algorithm, key.fingerprint),
                ))?;
                Ok(key)
            })
            .await
    }

    pub fn ssh_keys(&self, who: &Principal, slice: Slice) -> Result<Page<SshKey>> {
        self.inner.store.read(|r| r.ssh_keys_of(who.id(), slice))
    }

    /// Deletes one of the caller's keys, named by id or by `SHA256:…` fingerprint.
    pub async fn delete_ssh_key(&self, who: &Principal, id_or_fp: &str) -> Result<()> {
        let (user_id, who) = (who.id(), who.clone());
        let wanted = id_or_fp.trim().to_string();
        self.inner
            .store
            .write_async(move |w| {
                let key = match wanted.parse::<u64>() {
                    Ok(id) => w.ssh_key(id)?,
                    Err(_) => w.ssh_key_by_fingerprint(&wanted)?,
                };
                match key {
                    Some(k) if k.user_id == user_id => {
                        w.delete_ssh_key(&k)?;
                        w.audit(who.audit(
                            AuditAction::SshKeyDelete,
                            None,
                            format!("{} {}", k.algorithm, k.fingerprint),
                        ))
                    }
                    _ => Err(Error::NotFound(format!("no SSH key '{wanted}'"))),
                }
            })
            .await
    }

    /// The account an SSH key (by SHA-256 fingerprint) belongs to, for the SSH server.
    pub fn user_for_ssh_key(&self, fingerprint: &str) -> Result<Option<User>> {
        self.inner
            .store
            .read(|r| match r.ssh_key_by_fingerprint(fingerprint)? {
                Some(k) => r.user(k.user_id),
                None => Ok(None),
            })
    }

    pub fn user(&self, id: UserId) -> Result<Option<User>> {
        self.inner.store.read(|r| r.user(id))
    }

    // ----- admin -----

    pub fn users(&self, who: &Principal, slice: Slice) -> Result<Page<User>> {
        require_admin(who)?;
        self.inner.store.read(|r| r.users(slice))
    }

    /// Finds a user by numeric id, username or external id (admins only).
    pub fn find_user(&self, who: &Principal, id_or_name: &str) -> Result<User> {
        require_admin(who)?;
        self.inner
            .store
            .read(|r| match id_or_name.parse::<u64>() {
                Ok(id) => r.user(id),
                Err(_) => match r.user_by_name(id_or_name)? {
                    Some(u) => Ok(Some(u)),
                    None => r.user_by_external_id(id_or_name),
                },
            })?
            .ok_or_else(|| Error::NotFound(format!("no user '{id_or_name}'")))
    }

    /// Gives a user limits of their own (admins only): `change` replaces each limit it names,
    /// `Some(None)` returning that one to the installation's. One transaction.
    pub async fn set_quota(
        &self,
        who: &Principal,
        id_or_name: &str,
        change: QuotaChange,
    ) -> Result<User> {
        let id = self.find_user(who, id_or_name)?.id;
        let who = who.clone();
        self.inner
            .store
            .write_async(move |w| {
                let mut user = w
                    .user(id)?
                    .ok_or_else(|| Error::NotFound(format!("no user '{id}'")))?;
                if let Some(v) = change.max_apps {
                    user.quota.max_apps = v;
                }
                if let Some(v) = change.max_replicas {
                    user.quota.max_replicas = v;
                }
                if let Some(v) = change.max_memory_mb {
                    user.quota.max_memory_mb = v;
                }
                w.put_user(&user)?;
                w.audit(who.audit(
                    AuditAction::UserQuota,
                    None,
                    format!("{} (#{}): {:?}", user.username, user.id, user.quota),
                ))?;
                Ok(user)
            })
            .await
    }

    pub fn find_user_by_email(&self, who: &Principal, email: &str) -> Result<User> {
        require_admin(who)?;
        let email = email.trim().to_ascii_lowercase();
        self.inner
            .store
            .read(|r| r.user_by_email(&email))?
            .ok_or_else(|| Error::NotFound(format!("no user with email '{email}'")))
    }
}

/// A change of one user's limits: each outer `None` keeps that limit as it is, `Some(None)`
/// returns it to the installation's.
#[derive(Debug, Default, Clone, Copy)]
pub struct QuotaChange {
    pub max_apps: Option<Option<u32>>,
    pub max_memory_mb: Option<Option<u64>>,
    pub max_replicas: Option<Option<u32>>,
}

/// The one check for admin-only operations.
pub fn require_admin(who: &Principal) -> Result<()> {
    if who.is_admin() {
        Ok(())
    } else {
        Err(Error::Forbidden(
            "this needs an administrator account".into(),
        ))
    }
}

#[cfg(test)]
mod tests;
