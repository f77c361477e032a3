//! Writes of credentials: login tokens, API keys and SSH keys, each with its per-user index.

use super::{
    API_KEYS, API_KEYS_BY_USER, SSH_KEYS, SSH_KEYS_BY_FP, SSH_KEYS_BY_USER, TOKENS, TOKENS_BY_USER,
    Writer, db_err, encode,
};
use crate::domain::{ApiKey, Result, SshKey, TokenKind, TokenRecord, UserId};
use redb::ReadableTable;

impl Writer {
    /// The hashes of a user's login tokens (not API keys).
    pub fn login_token_hashes_of(&mut self, user: UserId) -> Result<Vec<String>> {
        let hashes: Vec<String> = {
            let idx = self.rw(TOKENS_BY_USER)?;
            let rows = idx.range((user, "")..(user + 1, "")).map_err(db_err)?;
            rows.map(|r| r.map(|(k, _)| k.value().1.to_string()))
                .collect::<Result<_, _>>()
                .map_err(db_err)?
        };
        let mut login = Vec::with_capacity(hashes.len());
        for h in hashes {
            if self.token(&h)?.is_some_and(|t| t.kind == TokenKind::Login) {
                login.push(h);
            }
        }
        Ok(login)
    }
    pub fn put_token(&mut self, hash: &str, rec: &TokenRecord) -> Result<()> {
        self.rw(TOKENS)?
            .insert(hash, encode(rec)?.as_slice())
            .map_err(db_err)?;
        self.rw(TOKENS_BY_USER)?
            .insert((rec.user_id, hash), ())
            .map_err(db_err)?;
        Ok(())
    }

    pub fn delete_token(&mut self, hash: &str) -> Result<()> {
        if let Some(rec) = self.token(hash)? {
            self.rw(TOKENS_BY_USER)?
                .remove((rec.user_id, hash))
                .map_err(db_err)?;
        }
        self.rw(TOKENS)?.remove(hash).map_err(db_err)?;
        Ok(())
    }

    pub fn put_api_key(&mut self, key: &ApiKey) -> Result<()> {
        self.rw(API_KEYS)?
            .insert(key.id, encode(key)?.as_slice())
            .map_err(db_err)?;
        self.rw(API_KEYS_BY_USER)?
            .insert((key.user_id, key.id), ())
            .map_err(db_err)?;
        Ok(())
    }

    /// Removes the key record and the token hash it authenticates with.
    pub fn delete_api_key(&mut self, key: &ApiKey) -> Result<()> {
        self.delete_token(&key.token_hash)?;
        self.rw(API_KEYS)?.remove(key.id).map_err(db_err)?;
        self.rw(API_KEYS_BY_USER)?
            .remove((key.user_id, key.id))
            .map_err(db_err)?;
        Ok(())
    }

    pub fn put_ssh_key(&mut self, key: &SshKey) -> Result<()> {
        self.rw(SSH_KEYS)?
            .insert(key.id, encode(key)?.as_slice())
            .map_err(db_err)?;
        self.rw(SSH_KEYS_BY_FP)?
            .insert(key.fingerprint.as_str(), key.id)
            .map_err(db_err)?;
        self.rw(SSH_KEYS_BY_USER)?
            .insert((key.user_id, key.id), ())
            .map_err(db_err)?;
        Ok(())
    }

    pub fn delete_ssh_key(&mut self, key: &SshKey) -> Result<()> {
        self.rw(SSH_KEYS)?.remove(key.id).map_err(db_err)?;
        self.rw(SSH_KEYS_BY_FP)?
            .remove(key.fingerprint.as_str())
            .map_err(db_err)?;
        self.rw(SSH_KEYS_BY_USER)?
            .remove((key.user_id, key.id))
            .map_err(db_err)?;
        Ok(())
    }
}
