//! One-off runs: one row per run, indexed by app, and the ids of those still running (what
//! reconcile must leave alone, and what a stop of Scalefog can leave unfinished).

use super::{Page, Reader, Slice, Writer, db_err, encode, get_json, page_of};
use crate::domain::{Error, KEEP_FINISHED_RUNS, Result, RunRecord, RunStatus};
use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};

const RUNS: TableDefinition<u64, &[u8]> = TableDefinition::new("runs");
const RUNS_BY_APP: TableDefinition<(&str, u64), ()> = TableDefinition::new("runs_by_app");
/// Ids of runs still `running`, found without a scan.
const RUNNING_RUNS: TableDefinition<u64, ()> = TableDefinition::new("running_runs");

/// Creates the tables (called by `migrate`).
pub(super) fn create_tables(tx: &WriteTransaction) -> Result<()> {
    tx.open_table(RUNS).map_err(db_err)?;
    tx.open_table(RUNS_BY_APP).map_err(db_err)?;
    tx.open_table(RUNNING_RUNS).map_err(db_err)?;
    Ok(())
}

/// Copies the tables into a backup (called by `backup_to`).
pub(super) fn copy_tables(rtx: &ReadTransaction, wtx: &WriteTransaction) -> Result<()> {
    super::copy_table(rtx, wtx, RUNS)?;
    super::copy_table(rtx, wtx, RUNS_BY_APP)?;
    super::copy_table(rtx, wtx, RUNNING_RUNS)
}

macro_rules! run_readers {
    ($t:ty, $open:ident) => {
        impl $t {
            pub fn run(&self, id: u64) -> Result<Option<RunRecord>> {
                get_json(&self.$open(RUNS)?, id)
            }

            /// An app's runs, newest first.
            pub fn runs_of(&self, app: &str, slice: Slice) -> Result<Page<RunRecord>> {
                let idx = self.$open(RUNS_BY_APP)?;
                let rows = idx.range((app, 0)..=(app, u64::MAX)).map_err(db_err)?.rev();
                let (ids, total) = page_of(rows.map(|r| r.map(|(k, _)| k.value().1)), slice)?;
                let mut items = Vec::with_capacity(ids.len());
                for id in ids {
                    items.extend(self.run(id)?);
                }
                Ok(Page { items, total })
            }

            /// Every run recorded as running, of every app.
            pub fn running_runs(&self) -> Result<Vec<RunRecord>> {
                let ids: Vec<u64> = self
                    .$open(RUNNING_RUNS)?
                    .iter()
                    .map_err(db_err)?
                    .map(|r| r.map(|(k, _)| k.value()))
                    .collect::<std::result::Result<_, _>>()
                    .map_err(db_err)?;
                let mut out = Vec::with_capacity(ids.len());
                for id in ids {
                    out.extend(self.run(id)?);
                }
                Ok(out)
            }
        }
    };
}

run_readers!(Reader, ro);
run_readers!(Writer, rw);

impl Writer {
    /// Records a new run, refused when `limit` runs of its app are running already.
    pub fn add_run(&mut self, rec: &RunRecord, limit: usize) -> Result<()> {
        let running = self
            .running_runs()?
            .iter()
            .filter(|r| r.app == rec.app)
            .count();
        if running >= limit {
            return Err(Error::Conflict(format!(
                "'{}' has {running} runs running already, the most it may have at once; wait for one to end",
                rec.app
            )));
        }
        self.put_run(rec)
    }

    /// Inserts or replaces a run (by its `id`). A finished run makes the app's oldest finished
    /// runs beyond [`KEEP_FINISHED_RUNS`] go.
    pub fn put_run(&mut self, rec: &RunRecord) -> Result<()> {
        self.rw(RUNS)?
            .insert(rec.id, encode(rec)?.as_slice())
            .map_err(db_err)?;
        self.rw(RUNS_BY_APP)?
            .insert((rec.app.as_str(), rec.id), ())
            .map_err(db_err)?;
        if rec.status == RunStatus::Running {
            self.rw(RUNNING_RUNS)?.insert(rec.id, ()).map_err(db_err)?;
            return Ok(());
        }
        self.rw(RUNNING_RUNS)?.remove(rec.id).map_err(db_err)?;
        let finished: Vec<u64> = self
            .runs_of(&rec.app, Slice::ALL)?
            .items
            .into_iter()
            .filter(|r| r.status != RunStatus::Running)
            .map(|r| r.id)
            .skip(KEEP_FINISHED_RUNS)
            .collect();
        for id in finished {
            self.rw(RUNS)?.remove(id).map_err(db_err)?;
            self.rw(RUNS_BY_APP)?
                .remove((rec.app.as_str(), id))
                .map_err(db_err)?;
        }
        Ok(())
    }

    /// Forgets every run of an app (the app is being deleted).
    pub fn delete_runs_of(&mut self, app: &str) -> Result<()> {
        self.delete_records_of(app, RUNS, RUNS_BY_APP, RUNNING_RUNS)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Store;
    use super::*;

    fn rec(id: u64, app: &str, status: RunStatus) -> RunRecord {
        RunRecord {
            id,
            app: app.into(),
            release: 1,
            command: vec!["true".into()],
            user: "alice".into(),
            detached: true,
            tty: false,
            status,
            exit_code: None,
            error: None,
            started_at: 0,
            finished_at: None,
            output: String::new(),
            output_truncated: false,
        }
    }

    #[test]
    fn running_runs_are_indexed_capped_per_app_and_old_finished_ones_go() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        store
            .write(|w| {
                w.add_run(&rec(1, "a", RunStatus::Running), 2)?;
                w.add_run(&rec(2, "a", RunStatus::Running), 2)?;
                w.add_run(&rec(3, "b", RunStatus::Running), 2)
            })
            .unwrap();
        let e = store
            .write(|w| w.add_run(&rec(4, "a", RunStatus::Running), 2))
            .unwrap_err();
        assert!(matches!(e, Error::Conflict(_)), "{e}");
        store
            .write(|w| w.put_run(&rec(1, "a", RunStatus::Succeeded)))
            .unwrap();
        let running: Vec<u64> = store
            .read(|r| r.running_runs())
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(running, [2, 3]);
        store
            .write(|w| {
                for id in 10..10 + KEEP_FINISHED_RUNS as u64 + 3 {
                    w.put_run(&rec(id, "a", RunStatus::Failed))?;
                }
                Ok(())
            })
            .unwrap();
        let runs = store.read(|r| r.runs_of("a", Slice::ALL)).unwrap();
        // The running one stays; of the finished ones, the newest KEEP_FINISHED_RUNS.
        assert_eq!(runs.total as usize, KEEP_FINISHED_RUNS + 1);
        assert!(runs.items.iter().any(|r| r.id == 2));
        assert!(!runs.items.iter().any(|r| r.id == 1 || r.id == 10));
        store.write(|w| w.delete_runs_of("a")).unwrap();
        assert_eq!(store.read(|r| r.runs_of("a", Slice::ALL)).unwrap().total, 0);
        assert_eq!(store.read(|r| r.running_runs()).unwrap().len(), 1);
    }
}
