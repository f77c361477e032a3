//! Console sessions: `sessions` keyed by the SHA-256 of the session id, and `sessions_by_user`
//! so that every session of one account can be revoked at once (password change).

use super::{Reader, Writer, db_err, decode, encode};
use crate::domain::{Result, Session, UserId};
use redb::{ReadableTable, TableDefinition};

pub(super) const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
pub(super) const SESSIONS_BY_USER: TableDefinition<(u64, &str), ()> =
    TableDefinition::new("sessions_by_user");

fn get_session(
    t: &impl ReadableTable<&'static str, &'static [u8]>,
    hash: &str,
) -> Result<Option<Session>> {
    match t.get(hash).map_err(db_err)? {
        Some(v) => decode(v.value()).map(Some),
        None => Ok(None),
    }
}

impl Reader {
    pub fn session(&self, hash: &str) -> Result<Option<Session>> {
        get_session(&self.tx.open_table(SESSIONS).map_err(db_err)?, hash)
    }
}

impl Writer {
    pub fn session(&self, hash: &str) -> Result<Option<Session>> {
        get_session(&self.tx.open_table(SESSIONS).map_err(db_err)?, hash)
    }

    pub fn put_session(&mut self, hash: &str, s: &Session) -> Result<()> {
        self.tx
            .open_table(SESSIONS)
            .map_err(db_err)?
            .insert(hash, encode(s)?.as_slice())
            .map_err(db_err)?;
        self.tx
            .open_table(SESSIONS_BY_USER)
            .map_err(db_err)?
            .insert((s.user_id, hash), ())
            .map_err(db_err)?;
        Ok(())
    }

    pub fn delete_session(&mut self, hash: &str) -> Result<()> {
        let mut t = self.tx.open_table(SESSIONS).map_err(db_err)?;
        let user = match t.remove(hash).map_err(db_err)? {
            Some(v) => Some(decode::<Session>(v.value())?.user_id),
            None => None,
        };
        drop(t);
        if let Some(user) = user {
            self.tx
                .open_table(SESSIONS_BY_USER)
                .map_err(db_err)?
                .remove((user, hash))
                .map_err(db_err)?;
        }
        Ok(())
    }

    /// The hashes of every session of `user`, expired or not.
    pub fn session_hashes_of(&self, user: UserId) -> Result<Vec<String>> {
        let idx = self.tx.open_table(SESSIONS_BY_USER).map_err(db_err)?;
        let rows = idx.range((user, "")..(user + 1, "")).map_err(db_err)?;
        rows.map(|r| r.map(|(k, _)| k.value().1.to_string()))
            .collect::<Result<_, _>>()
            .map_err(db_err)
    }
}
