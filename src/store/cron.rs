//! Cron run records: one row per run (or skipped run) of an app's scheduled job, by app.

use super::{Page, Reader, Slice, Writer, db_err, encode, get_json, page_of};
use crate::domain::{CronRun, CronStatus, Result};
use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};

const CRON_RUNS: TableDefinition<u64, &[u8]> = TableDefinition::new("cron_runs");
const CRON_RUNS_BY_APP: TableDefinition<(&str, u64), ()> = TableDefinition::new("cron_runs_by_app");
/// Ids of runs still `running`: what a crash can leave unfinished, found without a scan.
const RUNNING_CRON_RUNS: TableDefinition<u64, ()> = TableDefinition::new("running_cron_runs");

/// Creates the tables (called by `migrate`).
pub(super) fn create_tables(tx: &WriteTransaction) -> Result<()> {
    tx.open_table(CRON_RUNS).map_err(db_err)?;
    tx.open_table(CRON_RUNS_BY_APP).map_err(db_err)?;
    tx.open_table(RUNNING_CRON_RUNS).map_err(db_err)?;
    Ok(())
}

/// Copies the tables into a backup (called by `backup_to`).
pub(super) fn copy_tables(rtx: &ReadTransaction, wtx: &WriteTransaction) -> Result<()> {
    super::copy_table(rtx, wtx, CRON_RUNS)?;
    super::copy_table(rtx, wtx, CRON_RUNS_BY_APP)?;
    super::copy_table(rtx, wtx, RUNNING_CRON_RUNS)
}

impl Reader {
    /// An app's cron runs, newest first.
    pub fn cron_runs_of(&self, app: &str, slice: Slice) -> Result<Page<CronRun>> {
        let idx = self.ro(CRON_RUNS_BY_APP)?;
        let rows = idx.range((app, 0)..=(app, u64::MAX)).map_err(db_err)?.rev();
        let (ids, total) = page_of(rows.map(|r| r.map(|(k, _)| k.value().1)), slice)?;
        let t = self.ro(CRON_RUNS)?;
        let mut items = Vec::with_capacity(ids.len());
        for id in ids {
            items.extend(get_json::<u64, CronRun>(&t, id)?);
        }
        Ok(Page { items, total })
    }
}

impl Writer {
    /// Inserts or replaces a cron run (by its `id`).
    pub fn put_cron_run(&mut self, run: &CronRun) -> Result<()> {
        self.rw(CRON_RUNS)?
            .insert(run.id, encode(run)?.as_slice())
            .map_err(db_err)?;
        self.rw(CRON_RUNS_BY_APP)?
            .insert((run.app.as_str(), run.id), ())
            .map_err(db_err)?;
        let mut running = self.rw(RUNNING_CRON_RUNS)?;
        if run.status == CronStatus::Running {
            running.insert(run.id, ()).map_err(db_err)?;
        } else {
            running.remove(run.id).map_err(db_err)?;
        }
        Ok(())
    }

    /// Marks every run still `running` failed with `why`: called at start, when none can be.
    pub fn fail_running_cron_runs(&mut self, why: &str, at: i64) -> Result<()> {
        let ids: Vec<u64> = self
            .rw(RUNNING_CRON_RUNS)?
            .iter()
            .map_err(db_err)?
            .map(|r| r.map(|(k, _)| k.value()))
            .collect::<std::result::Result<_, _>>()
            .map_err(db_err)?;
        for id in ids {
            let found = get_json::<u64, CronRun>(&self.rw(CRON_RUNS)?, id)?;
            if let Some(mut run) = found {
                run.status = CronStatus::Failed;
                run.finished_at = Some(at);
                run.output.push_str(why);
                self.put_cron_run(&run)?;
            } else {
                self.rw(RUNNING_CRON_RUNS)?.remove(id).map_err(db_err)?;
            }
        }
        Ok(())
    }

    /// Removes every cron run of an app.
    pub fn delete_cron_runs(&mut self, app: &str) -> Result<()> {
        self.delete_records_of(app, CRON_RUNS, CRON_RUNS_BY_APP, RUNNING_CRON_RUNS)
    }
}
