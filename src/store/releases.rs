//! Tables of the deploy engine: releases, builds with their logs, and the deployment (container)
//! serving each app. Kept apart from `mod.rs` so the deploy work stays in its own file.

use super::{Page, Reader, Slice, Writer, copy_table, db_err, decode, encode, get_json, page_of};
use crate::domain::{Build, BuildStatus, Deployment, Release, Result};
use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};

/// (app, version) → Release
pub(super) const RELEASES: TableDefinition<(&str, u32), &[u8]> = TableDefinition::new("releases");
/// build id → Build
const BUILDS: TableDefinition<u64, &[u8]> = TableDefinition::new("builds");
/// (app, build id) → ()
const BUILDS_BY_APP: TableDefinition<(&str, u64), ()> = TableDefinition::new("builds_by_app");
/// build id → log text
const BUILD_LOGS: TableDefinition<u64, &[u8]> = TableDefinition::new("build_logs");
/// app → Deployment
const DEPLOYMENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("deployments");

/// Called from `migrate`: opening a table in a write transaction creates it.
pub(super) fn create_tables(tx: &WriteTransaction) -> Result<()> {
    tx.open_table(RELEASES).map_err(db_err)?;
    tx.open_table(BUILDS).map_err(db_err)?;
    tx.open_table(BUILDS_BY_APP).map_err(db_err)?;
    tx.open_table(BUILD_LOGS).map_err(db_err)?;
    tx.open_table(DEPLOYMENTS).map_err(db_err)?;
    Ok(())
}

/// Called from `backup_to`, inside its one read transaction.
pub(super) fn copy_tables(rtx: &ReadTransaction, wtx: &WriteTransaction) -> Result<()> {
    copy_table(rtx, wtx, RELEASES)?;
    copy_table(rtx, wtx, BUILDS)?;
    copy_table(rtx, wtx, BUILDS_BY_APP)?;
    copy_table(rtx, wtx, BUILD_LOGS)?;
    copy_table(rtx, wtx, DEPLOYMENTS)?;
    Ok(())
}

macro_rules! deploy_readers {
    ($t:ty, $open:ident) => {
        impl $t {
            pub fn release(&self, app: &str, version: u32) -> Result<Option<Release>> {
                match self.$open(RELEASES)?.get((app, version)).map_err(db_err)? {
                    Some(v) => super::sealed_env::decode_release(&self.sealer, v.value()).map(Some),
                    None => Ok(None),
                }
            }
            /// An app's releases, newest first.
            pub fn releases_of(&self, app: &str, slice: Slice) -> Result<Page<Release>> {
                let t = self.$open(RELEASES)?;
                let rows = t.range((app, 0)..=(app, u32::MAX)).map_err(db_err)?.rev();
                let (raw, total) =
                    page_of(rows.map(|r| r.map(|(_, v)| v.value().to_vec())), slice)?;
                let items = raw
                    .iter()
                    .map(|b| super::sealed_env::decode_release(&self.sealer, b))
                    .collect::<Result<_>>()?;
                Ok(Page { items, total })
            }
            /// The highest release number an app ever had (0 when none).
            pub fn last_release_number(&self, app: &str) -> Result<u32> {
                let t = self.$open(RELEASES)?;
                let last = t
                    .range((app, 0)..=(app, u32::MAX))
                    .map_err(db_err)?
                    .next_back()
                    .transpose()
                    .map_err(db_err)?
                    .map(|(k, _)| k.value().1);
                Ok(last.unwrap_or(0))
            }
            pub fn build(&self, id: u64) -> Result<Option<Build>> {
                get_json(&self.$open(BUILDS)?, id)
            }
            /// An app's builds, newest first.
            pub fn builds_of(&self, app: &str, slice: Slice) -> Result<Page<Build>> {
                let idx = self.$open(BUILDS_BY_APP)?;
                let rows = idx.range((app, 0)..=(app, u64::MAX)).map_err(db_err)?.rev();
                let (ids, total) = page_of(rows.map(|r| r.map(|(k, _)| k.value().1)), slice)?;
                let mut items = Vec::with_capacity(ids.len());
                for id in ids {
                    items.extend(self.build(id)?);
                }
                Ok(Page { items, total })
            }
            /// Builds still marked running (after a crash: interrupted ones).
            pub fn running_builds(&self) -> Result<Vec<Build>> {
                let t = self.$open(BUILDS)?;
                let mut out = Vec::new();
                for row in t.iter().map_err(db_err)? {
                    let b: Build = decode(row.map_err(db_err)?.1.value())?;
                    if b.status == BuildStatus::Running {
                        out.push(b);
                    }
                }
                Ok(out)
            }
            pub fn build_log(&self, id: u64) -> Result<Option<String>> {
                Ok(self
                    .$open(BUILD_LOGS)?
                    .get(id)
                    .map_err(db_err)?
                    .map(|v| String::from_utf8_lossy(v.value()).into_owned()))
            }
            pub fn deployment(&self, app: &str) -> Result<Option<Deployment>> {
                get_json(&self.$open(DEPLOYMENTS)?, app)
            }
            /// Every app's deployment (for the metrics' replica counts).
            pub fn deployments(&self) -> Result<Vec<Deployment>> {
                let t = self.$open(DEPLOYMENTS)?;
                let mut out = Vec::new();
                for row in t.iter().map_err(db_err)? {
                    out.push(decode(row.map_err(db_err)?.1.value())?);
                }
                Ok(out)
            }
        }
    };
}

deploy_readers!(Reader, ro);
deploy_readers!(Writer, rw);

impl Writer {
    pub fn put_release(&mut self, r: &Release) -> Result<()> {
        self.rw(RELEASES)?
            .insert(
                (r.app.as_str(), r.version),
                super::sealed_env::encode_release(&self.sealer, r)?.as_slice(),
            )
            .map_err(db_err)?;
        Ok(())
    }

    pub fn put_build(&mut self, b: &Build) -> Result<()> {
        self.rw(BUILDS)?
            .insert(b.id, encode(b)?.as_slice())
            .map_err(db_err)?;
        self.rw(BUILDS_BY_APP)?
            .insert((b.app.as_str(), b.id), ())
            .map_err(db_err)?;
        Ok(())
    }

    pub fn put_build_log(&mut self, id: u64, log: &str) -> Result<()> {
        self.rw(BUILD_LOGS)?
            .insert(id, log.as_bytes())
            .map_err(db_err)?;
        Ok(())
    }

    pub fn put_deployment(&mut self, d: &Deployment) -> Result<()> {
        self.rw(DEPLOYMENTS)?
            .insert(d.app.as_str(), encode(d)?.as_slice())
            .map_err(db_err)?;
        Ok(())
    }

    pub fn delete_deployment(&mut self, app: &str) -> Result<()> {
        self.rw(DEPLOYMENTS)?.remove(app).map_err(db_err)?;
        Ok(())
    }

    /// Removes every release, build, build log and deployment of an app.
    pub fn delete_deploy_records(&mut self, app: &str) -> Result<()> {
        let versions: Vec<u32> = {
            let t = self.rw(RELEASES)?;
            t.range((app, 0)..=(app, u32::MAX))
                .map_err(db_err)?
                .map(|r| r.map(|(k, _)| k.value().1))
                .collect::<Result<_, _>>()
                .map_err(db_err)?
        };
        for v in versions {
            self.rw(RELEASES)?.remove((app, v)).map_err(db_err)?;
        }
        let ids: Vec<u64> = {
            let t = self.rw(BUILDS_BY_APP)?;
            t.range((app, 0)..=(app, u64::MAX))
                .map_err(db_err)?
                .map(|r| r.map(|(k, _)| k.value().1))
                .collect::<Result<_, _>>()
                .map_err(db_err)?
        };
        for id in ids {
            self.rw(BUILDS_BY_APP)?.remove((app, id)).map_err(db_err)?;
            self.rw(BUILDS)?.remove(id).map_err(db_err)?;
            self.rw(BUILD_LOGS)?.remove(id).map_err(db_err)?;
        }
        self.delete_cron_runs(app)?;
        self.delete_image_app_records(app)?;
        self.delete_deployment(app)
    }
}
