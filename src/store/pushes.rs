//! Push records: one row per `git push` that reached the pre-receive callback, indexed by app.

use super::{Page, Reader, Slice, Writer, db_err, encode, get_json, page_of};
use crate::domain::{PushOutcome, PushRecord, Result};
use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};

const PUSHES: TableDefinition<u64, &[u8]> = TableDefinition::new("pushes");
const PUSHES_BY_APP: TableDefinition<(&str, u64), ()> = TableDefinition::new("pushes_by_app");
/// Ids of pushes still `running`: what a crash can leave unfinished, found without a scan.
const RUNNING_PUSHES: TableDefinition<u64, ()> = TableDefinition::new("running_pushes");

/// Creates the tables (called by `migrate`).
pub(super) fn create_tables(tx: &WriteTransaction) -> Result<()> {
    tx.open_table(PUSHES).map_err(db_err)?;
    tx.open_table(PUSHES_BY_APP).map_err(db_err)?;
    tx.open_table(RUNNING_PUSHES).map_err(db_err)?;
    Ok(())
}

/// Copies the tables into a backup (called by `backup_to`).
pub(super) fn copy_tables(rtx: &ReadTransaction, wtx: &WriteTransaction) -> Result<()> {
    super::copy_table(rtx, wtx, PUSHES)?;
    super::copy_table(rtx, wtx, PUSHES_BY_APP)?;
    super::copy_table(rtx, wtx, RUNNING_PUSHES)
}

impl Reader {
    pub fn push_record(&self, id: u64) -> Result<Option<PushRecord>> {
        get_json(&self.ro(PUSHES)?, id)
    }

    /// An app's pushes, newest first.
    pub fn pushes_of(&self, app: &str, slice: Slice) -> Result<Page<PushRecord>> {
        let idx = self.ro(PUSHES_BY_APP)?;
        let rows = idx.range((app, 0)..=(app, u64::MAX)).map_err(db_err)?.rev();
        let (ids, total) = page_of(rows.map(|r| r.map(|(k, _)| k.value().1)), slice)?;
        let t = self.ro(PUSHES)?;
        let mut items = Vec::with_capacity(ids.len());
        for id in ids {
            items.extend(get_json::<u64, PushRecord>(&t, id)?);
        }
        Ok(Page { items, total })
    }
}

impl Writer {
    /// Inserts or replaces a push record (by its `id`).
    pub fn put_push_record(&mut self, rec: &PushRecord) -> Result<()> {
        self.rw(PUSHES)?
            .insert(rec.id, encode(rec)?.as_slice())
            .map_err(db_err)?;
        self.rw(PUSHES_BY_APP)?
            .insert((rec.app.as_str(), rec.id), ())
            .map_err(db_err)?;
        let mut running = self.rw(RUNNING_PUSHES)?;
        if rec.outcome == PushOutcome::Running {
            running.insert(rec.id, ()).map_err(db_err)?;
        } else {
            running.remove(rec.id).map_err(db_err)?;
        }
        Ok(())
    }

    /// Marks every push still `running` as rejected with `message`: called at start, when no
    /// push can be running, so these are pushes the server stopped or crashed during.
    /// Returns how many there were.
    pub fn fail_running_pushes(&mut self, message: &str, at: i64) -> Result<usize> {
        let ids: Vec<u64> = self
            .rw(RUNNING_PUSHES)?
            .iter()
            .map_err(db_err)?
            .map(|r| r.map(|(k, _)| k.value()))
            .collect::<std::result::Result<_, _>>()
            .map_err(db_err)?;
        for id in &ids {
            let rec = get_json::<u64, PushRecord>(&self.rw(PUSHES)?, *id)?;
            match rec {
                Some(mut rec) => {
                    rec.outcome = PushOutcome::Rejected;
                    rec.message = Some(message.to_string());
                    rec.finished_at = Some(at);
                    self.put_push_record(&rec)?;
                }
                None => {
                    self.rw(RUNNING_PUSHES)?.remove(*id).map_err(db_err)?;
                }
            }
        }
        Ok(ids.len())
    }

    /// Forgets every push of an app (the app is being deleted).
    pub fn delete_push_records_of(&mut self, app: &str) -> Result<()> {
        self.delete_records_of(app, PUSHES, PUSHES_BY_APP, RUNNING_PUSHES)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Store;
    use super::*;
    use crate::domain::PushedRef;

    fn rec(id: u64, app: &str) -> PushRecord {
        PushRecord {
            id,
            push_id: format!("p{id}"),
            app: app.into(),
            user_id: 1,
            username: "alice".into(),
            refs: vec![PushedRef {
                old: "0".repeat(40),
                new: "a".repeat(40),
                name: "refs/heads/main".into(),
            }],
            outcome: PushOutcome::Running,
            message: None,
            started_at: 1,
            finished_at: None,
        }
    }

    #[test]
    fn pushes_are_listed_newest_first_per_app_and_deleted_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        store
            .write(|w| {
                w.put_push_record(&rec(1, "app-one"))?;
                w.put_push_record(&rec(2, "app-two"))?;
                w.put_push_record(&rec(3, "app-one"))
            })
            .unwrap();
        let page = store.read(|r| r.pushes_of("app-one", Slice::ALL)).unwrap();
        assert_eq!(page.total, 2);
        assert_eq!(
            page.items.iter().map(|p| p.id).collect::<Vec<_>>(),
            vec![3, 1]
        );
        store
            .write(|w| w.delete_push_records_of("app-one"))
            .unwrap();
        assert_eq!(
            store
                .read(|r| r.pushes_of("app-one", Slice::ALL))
                .unwrap()
                .total,
            0
        );
        assert!(store.read(|r| r.push_record(2)).unwrap().is_some());
    }

    #[test]
    fn pushes_left_running_are_marked_rejected_and_finished_ones_are_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let mut done = rec(2, "app-one");
        done.outcome = PushOutcome::Accepted;
        done.finished_at = Some(5);
        store
            .write(|w| {
                w.put_push_record(&rec(1, "app-one"))?;
                w.put_push_record(&done)?;
                w.put_push_record(&rec(3, "app-two"))
            })
            .unwrap();
        let n = store
            .write(|w| w.fail_running_pushes("interrupted", 9))
            .unwrap();
        assert_eq!(n, 2);
        for id in [1, 3] {
            let r = store.read(|r| r.push_record(id)).unwrap().unwrap();
            assert_eq!(r.outcome, PushOutcome::Rejected);
            assert_eq!(r.message.as_deref(), Some("interrupted"));
            assert_eq!(r.finished_at, Some(9));
        }
        let r = store.read(|r| r.push_record(2)).unwrap().unwrap();
        assert_eq!((r.outcome, r.finished_at), (PushOutcome::Accepted, Some(5)));
        // Nothing is left to fail the next time.
        assert_eq!(
            store.write(|w| w.fail_running_pushes("again", 10)).unwrap(),
            0
        );
    }
}
