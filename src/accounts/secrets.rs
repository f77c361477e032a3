//! Token generation and hashing, and JWTs. (Passwords are hashed in `hashing`.)

use crate::domain::{Error, Result, UserId};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;

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

/// What the JWT exchange answers, in the shape of Civo's: the access and refresh JWTs, and an
/// OpenID Connect ID token saying who the account is.
#[derive(Debug, Serialize)]
pub struct JwtPair {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub refresh_token: String,
    pub id_token: String,
    pub account_id: String,
}

/// Who an ID token describes.
#[derive(Debug, Clone)]
pub struct Identity {
    pub username: String,
    pub email: String,
}

/// The claims of an ID token (OpenID Connect Core §2). It is for the client to read, never a
/// credential: its `use` is `id`, which no verification accepts.
#[derive(Debug, Serialize, Deserialize)]
pub struct IdClaims {
    pub iss: String,
    /// The account id, as a string (OIDC's `sub` is one).
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    #[serde(rename = "use")]
    pub use_: String,
    pub preferred_username: String,
    pub email: String,
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

    pub fn issue(&self, bound: &Bound, who: &Identity) -> Result<JwtPair> {
        Ok(JwtPair {
            access_token: self.sign(bound, JwtUse::Access, ACCESS_TTL_SECS)?,
            token_type: "Bearer",
            expires_in: ACCESS_TTL_SECS,
            refresh_token: self.sign(bound, JwtUse::Refresh, REFRESH_TTL_SECS)?,
            id_token: self.sign_id(bound.sub, who)?,
            account_id: bound.sub.to_string(),
        })
    }

    /// An ID token for the account, valid as long as the access token.
    fn sign_id(&self, sub: UserId, who: &Identity) -> Result<String> {
        let now = crate::domain::now();
        let claims = IdClaims {
            iss: ISSUER.into(),
            sub: sub.to_string(),
            aud: ISSUER.into(),
            exp: now + ACCESS_TTL_SECS,
            iat: now,
            use_: "id".into(),
            preferred_username: who.username.clone(),
            email: who.email.clone(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.enc)
            .map_err(Error::internal)
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
    fn a_refresh_jwt_is_not_an_access_jwt_and_another_secret_rejects_both() {
        let keys = JwtKeys::from_secret(&[7u8; 32]);
        let bound = Bound {
            sub: 42,
            cred: hash_token("t"),
            pwd: password_mark("h"),
        };
        let who = Identity {
            username: "alice".into(),
            email: "a@x.io".into(),
        };
        let pair = keys.issue(&bound, &who).unwrap();
        assert_eq!(
            keys.verify(&pair.access_token, JwtUse::Access).unwrap().sub,
            42
        );
        assert!(keys.verify(&pair.refresh_token, JwtUse::Access).is_err());
        assert!(keys.verify(&pair.refresh_token, JwtUse::Refresh).is_ok());
        // The ID token tells who the account is and is no credential.
        assert!(keys.verify(&pair.id_token, JwtUse::Access).is_err());
        assert!(keys.verify(&pair.id_token, JwtUse::Refresh).is_err());
        let mut v = Validation::new(Algorithm::HS256);
        v.set_audience(&[ISSUER]);
        let id = jsonwebtoken::decode::<IdClaims>(&pair.id_token, &keys.dec, &v)
            .unwrap()
            .claims;
        assert_eq!(
            (
                id.sub.as_str(),
                id.preferred_username.as_str(),
                id.email.as_str()
            ),
            ("42", "alice", "a@x.io")
        );
        let other = JwtKeys::from_secret(&[8u8; 32]);
        assert!(other.verify(&pair.access_token, JwtUse::Access).is_err());
    }
}
