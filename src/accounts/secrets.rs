//! Password hashing, token generation and hashing, and JWTs.

use crate::domain::{Error, Result, UserId};
use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;

/// How many password hashes run at once. Each holds 19 MiB while it runs, so without a bound
/// twenty sign-ins at once would need ~380 MiB; more than two at once would not finish sooner on
/// the small machines Scalefog is for, as each keeps a core busy.
const HASHES_AT_ONCE: usize = 2;
static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(HASHES_AT_ONCE);

/// Runs `f` (a password hash or check) on a blocking thread, at most [`HASHES_AT_ONCE`] at once;
/// the others wait their turn.
pub async fn hashing<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let _turn = HASHING.acquire().await.map_err(Error::internal)?;
    tokio::task::spawn_blocking(f)
        .await
        .map_err(Error::internal)
}

/// argon2id with the crate's defaults, which are OWASP's (m=19 MiB, t=2, p=1).
pub fn hash_password(password: &str) -> Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(Error::internal)
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A new API token: 128 random bits as 32 lowercase hex characters.
pub fn generate_token() -> String {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// What the store keeps of a token: its SHA-256, hex.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub fn ct_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Lifetime of an access JWT.
pub const ACCESS_TTL_SECS: i64 = 15 * 60;
/// Lifetime of a refresh JWT.
pub const REFRESH_TTL_SECS: i64 = 7 * 24 * 3600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JwtUse {
    Access,
    Refresh,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: UserId,
    pub exp: i64,
    pub iat: i64,
    #[serde(rename = "use")]
    pub use_: JwtUse,
    pub iss: String,
    /// The stored hash of the token or API key the pair was exchanged from: revoking that
    /// credential ends the JWTs at once.
    pub cred: String,
    /// [`password_mark`] of the account when the pair was issued: a password change ends them.
    pub pwd: String,
}

/// A short mark of a password hash, for binding JWTs to the password they were issued under
/// without carrying the hash itself.
pub fn password_mark(password_hash: &str) -> String {
    hex::encode(&Sha256::digest(password_hash.as_bytes())[..8])
}

/// What a JWT pair is bound to: the account, the credential it came from, the password.
#[derive(Debug, Clone)]
pub struct Bound {
    pub sub: UserId,
    pub cred: String,
    pub pwd: String,
}

#[derive(Debug, Serialize)]
pub struct JwtPair {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub refresh_token: String,
    pub account_id: String,
}

/// The HS256 secret, generated once into the data dir.
#[derive(Clone)]
pub struct JwtKeys {
    enc: EncodingKey,
    dec: DecodingKey,
}

const ISSUER: &str = "scalefog";

impl JwtKeys {
    pub fn load_or_create(path: &Path) -> Result<JwtKeys> {
        let secret = match std::fs::read(path) {
            Ok(s) if s.len() >= 32 => s,
            Ok(_) => {
                return Err(Error::internal(format!(
                    "{} is too short; delete it to regenerate",
                    path.display()
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut s = vec![0u8; 32];
                rand::rng().fill_bytes(&mut s);
                crate::fsutil::write_private(path, &s)?;
                s
            }
            Err(e) => return Err(Error::internal(format!("reading {}: {e}", path.display()))),
        };
        Ok(JwtKeys::from_secret(&secret))
    }

    pub fn from_secret(secret: &[u8]) -> JwtKeys {
        JwtKeys {
            enc: EncodingKey::from_secret(secret),
            dec: DecodingKey::from_secret(secret),
        }
    }

    fn sign(&self, bound: &Bound, use_: JwtUse, ttl: i64) -> Result<String> {
        let now = crate::domain::now();
        let claims = Claims {
            sub: bound.sub,
            exp: now + ttl,
            iat: now,
            use_,
            iss: ISSUER.into(),
            cred: bound.cred.clone(),
            pwd: bound.pwd.clone(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.enc)
            .map_err(Error::internal)
    }

    pub fn issue(&self, bound: &Bound) -> Result<JwtPair> {
        Ok(JwtPair {
            access_token: self.sign(bound, JwtUse::Access, ACCESS_TTL_SECS)?,
            token_type: "Bearer",
            expires_in: ACCESS_TTL_SECS,
            refresh_token: self.sign(bound, JwtUse::Refresh, REFRESH_TTL_SECS)?,
            account_id: bound.sub.to_string(),
        })
    }

    /// Checks signature (constant time), expiry, issuer and intended use.
    pub fn verify(&self, token: &str, want: JwtUse) -> Result<Claims> {
        let mut v = Validation::new(Algorithm::HS256);
        v.set_issuer(&[ISSUER]);
        v.leeway = 5;
        let data = jsonwebtoken::decode::<Claims>(token, &self.dec, &v)
            .map_err(|_| Error::Unauthorized("invalid or expired JWT".into()))?;
        if data.claims.use_ != want {
            return Err(Error::Unauthorized("this JWT cannot be used here".into()));
        }
        Ok(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn no_more_than_two_hashes_run_at_once_and_every_one_gets_its_turn() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let (now, most) = (now.clone(), most.clone());
                tokio::spawn(hashing(move || {
                    let running = now.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(running, Ordering::SeqCst);
                    let ok = verify_password("wrong", &hash_password(&format!("pw{i}")).unwrap());
                    now.fetch_sub(1, Ordering::SeqCst);
                    ok
                }))
            })
            .collect();
        for t in tasks {
            assert!(!t.await.unwrap().unwrap());
        }
        assert_eq!(most.load(Ordering::SeqCst), HASHES_AT_ONCE);
    }

    #[test]
    fn tokens_are_32_lowercase_hex_and_differ() {
        let a = generate_token();
        assert_eq!(a.len(), 32);
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        assert_ne!(a, generate_token());
    }

    #[test]
    fn token_hashes_are_sha256_hex_and_never_the_token() {
        let h = hash_token("6e8c5284926716591f9efb0935db8298");
        assert_eq!(h.len(), 64);
        assert_eq!(h, hash_token("6e8c5284926716591f9efb0935db8298"));
        assert_ne!(h, hash_token("6e8c5284926716591f9efb0935db8299"));
    }

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong horse", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn a_refresh_jwt_is_not_an_access_jwt_and_another_secret_rejects_both() {
        let keys = JwtKeys::from_secret(&[7u8; 32]);
        let bound = Bound {
            sub: 42,
            cred: hash_token("t"),
            pwd: password_mark("h"),
        };
        let pair = keys.issue(&bound).unwrap();
        assert_eq!(
            keys.verify(&pair.access_token, JwtUse::Access).unwrap().sub,
            42
        );
        assert!(keys.verify(&pair.refresh_token, JwtUse::Access).is_err());
        assert!(keys.verify(&pair.refresh_token, JwtUse::Refresh).is_ok());
        let other = JwtKeys::from_secret(&[8u8; 32]);
        assert!(other.verify(&pair.access_token, JwtUse::Access).is_err());
    }
}
