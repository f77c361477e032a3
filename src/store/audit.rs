//! The audit log: `audit` (id → record, ids growing with time) and `audit_by_user`, which
//! indexes each record under the user who acted and under the owner of the app acted on, so a
//! user's view of the log is one range read.

use super::{Page, Reader, Slice, Writer, copy_table, db_err, decode, encode, page_of};
use crate::domain::{AuditRecord, Result, UserId};
use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};

const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
/// (user id, record id) → ()
const AUDIT_BY_USER: TableDefinition<(u64, u64), ()> = TableDefinition::new("audit_by_user");

pub(super) fn create_tables(tx: &WriteTransaction) -> Result<()> {
    tx.open_table(AUDIT).map_err(db_err)?;
    tx.open_table(AUDIT_BY_USER).map_err(db_err)?;
    Ok(())
}

pub(super) fn copy_tables(rtx: &ReadTransaction, wtx: &WriteTransaction) -> Result<()> {
    copy_table(rtx, wtx, AUDIT)?;
    copy_table(rtx, wtx, AUDIT_BY_USER)?;
    Ok(())
}

macro_rules! audit_readers {
    ($t:ty, $open:ident) => {
        impl $t {
            /// The whole log, newest first (admins).
            pub fn audit_log(&self, slice: Slice) -> Result<Page<AuditRecord>> {
                let t = self.$open(AUDIT)?;
                let rows = t.iter().map_err(db_err)?.rev();
                let (raw, total) =
                    page_of(rows.map(|r| r.map(|(_, v)| v.value().to_vec())), slice)?;
                let items = raw.iter().map(|b| decode(b)).collect::<Result<_>>()?;
                Ok(Page { items, total })
            }
            /// What `user` did and what was done to their apps, newest first.
            pub fn audit_log_of(&self, user: UserId, slice: Slice) -> Result<Page<AuditRecord>> {
                let idx = self.$open(AUDIT_BY_USER)?;
                let rows = idx
                    .range((user, 0)..=(user, u64::MAX))
                    .map_err(db_err)?
                    .rev();
                let (ids, total) = page_of(rows.map(|r| r.map(|(k, _)| k.value().1)), slice)?;
                let t = self.$open(AUDIT)?;
                let mut items = Vec::with_capacity(ids.len());
                for id in ids {
                    if let Some(v) = t.get(id).map_err(db_err)? {
                        items.push(decode(v.value())?);
                    }
                }
                Ok(Page { items, total })
            }
        }
    };
}

audit_readers!(Reader, ro);
audit_readers!(Writer, rw);

impl Writer {
    /// Adds `record` to the audit log, in this transaction: it is kept exactly when the change
    /// it describes is. The owner of the record's app is looked up here, so call it while the
    /// app's record still exists (before deleting it).
    pub fn audit(&mut self, mut record: AuditRecord) -> Result<()> {
        record.id = self.next_id("audit")?;
        record.app_owner = match &record.app {
            Some(app) => self.instance(app)?.map(|i| i.owner_id),
            None => None,
        };
        self.rw(AUDIT)?
            .insert(record.id, encode(&record)?.as_slice())
            .map_err(db_err)?;
        let mut idx = self.rw(AUDIT_BY_USER)?;
        idx.insert((record.user_id, record.id), ())
            .map_err(db_err)?;
        if let Some(owner) = record.app_owner {
            idx.insert((owner, record.id), ()).map_err(db_err)?;
        }
        Ok(())
    }
}
