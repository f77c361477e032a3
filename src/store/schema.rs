//! The store's layout: the tables of the records kept here (the other modules of `store` keep
//! their own and list them below), the schema version, and the two places every table is
//! named: [`migrate`], which creates them when the store opens, and [`copy_tables`], which a
//! backup copies.

use super::{
    Writer, audit, cluster, cron, db_err, image_apps, images, pushes, releases, runs, sealed_env,
    sessions,
};
use crate::domain::{Error, Result};
use redb::{ReadOnlyTable, ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};

/// Bump when the layout changes, and add a step to [`migrate`].
pub const SCHEMA_VERSION: u64 = 2;

pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(super) const USERS: TableDefinition<u64, &[u8]> = TableDefinition::new("users");
pub(super) const USERS_BY_NAME: TableDefinition<&str, u64> = TableDefinition::new("users_by_name");
pub(super) const USERS_BY_EMAIL: TableDefinition<&str, u64> =
    TableDefinition::new("users_by_email");
/// A user's [`User::external_id`] → id.
pub(super) const USERS_BY_EXTERNAL_ID: TableDefinition<&str, u64> =
    TableDefinition::new("users_by_external_id");
pub(super) const TOKENS: TableDefinition<&str, &[u8]> = TableDefinition::new("tokens");
pub(super) const TOKENS_BY_USER: TableDefinition<(u64, &str), ()> =
    TableDefinition::new("tokens_by_user");
pub(super) const API_KEYS: TableDefinition<u64, &[u8]> = TableDefinition::new("api_keys");
pub(super) const API_KEYS_BY_USER: TableDefinition<(u64, u64), ()> =
    TableDefinition::new("api_keys_by_user");
pub(super) const SSH_KEYS: TableDefinition<u64, &[u8]> = TableDefinition::new("ssh_keys");
pub(super) const SSH_KEYS_BY_FP: TableDefinition<&str, u64> =
    TableDefinition::new("ssh_keys_by_fp");
pub(super) const SSH_KEYS_BY_USER: TableDefinition<(u64, u64), ()> =
    TableDefinition::new("ssh_keys_by_user");
pub(super) const INSTANCES: TableDefinition<&str, &[u8]> = TableDefinition::new("instances");
pub(super) const INSTANCES_BY_OWNER: TableDefinition<(u64, &str), ()> =
    TableDefinition::new("instances_by_owner");
pub(super) const REGIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("regions");
pub(super) const NODES: TableDefinition<u64, &[u8]> = TableDefinition::new("nodes");

/// Copies every table (those that exist) from a backup's read transaction into the new file.
pub(super) fn copy_tables(rtx: &ReadTransaction, wtx: &WriteTransaction) -> Result<()> {
    copy_table(rtx, wtx, META)?;
    copy_table(rtx, wtx, USERS)?;
    copy_table(rtx, wtx, USERS_BY_NAME)?;
    copy_table(rtx, wtx, USERS_BY_EMAIL)?;
    copy_table(rtx, wtx, USERS_BY_EXTERNAL_ID)?;
    copy_table(rtx, wtx, TOKENS)?;
    copy_table(rtx, wtx, TOKENS_BY_USER)?;
    copy_table(rtx, wtx, API_KEYS)?;
    copy_table(rtx, wtx, API_KEYS_BY_USER)?;
    copy_table(rtx, wtx, SSH_KEYS)?;
    copy_table(rtx, wtx, SSH_KEYS_BY_FP)?;
    copy_table(rtx, wtx, SSH_KEYS_BY_USER)?;
    copy_table(rtx, wtx, INSTANCES)?;
    copy_table(rtx, wtx, INSTANCES_BY_OWNER)?;
    copy_table(rtx, wtx, REGIONS)?;
    copy_table(rtx, wtx, NODES)?;
    copy_table(rtx, wtx, cluster::CLUSTER)?;
    releases::copy_tables(rtx, wtx)?;
    pushes::copy_tables(rtx, wtx)?;
    cron::copy_tables(rtx, wtx)?;
    runs::copy_tables(rtx, wtx)?;
    images::copy_tables(rtx, wtx)?;
    copy_table(rtx, wtx, sessions::SESSIONS)?;
    copy_table(rtx, wtx, sessions::SESSIONS_BY_USER)?;
    image_apps::copy_tables(rtx, wtx)?;
    audit::copy_tables(rtx, wtx)?;
    Ok(())
}

pub(super) fn copy_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    rtx: &ReadTransaction,
    wtx: &WriteTransaction,
    def: TableDefinition<K, V>,
) -> Result<()>
where
    for<'a> K::SelfType<'a>: std::borrow::Borrow<K::SelfType<'a>>,
{
    let src: ReadOnlyTable<K, V> = match rtx.open_table(def) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
        Err(e) => return Err(db_err(e)),
    };
    let mut dst = wtx.open_table(def).map_err(db_err)?;
    for row in src.iter().map_err(db_err)? {
        let (k, v) = row.map_err(db_err)?;
        dst.insert(k.value(), v.value()).map_err(db_err)?;
    }
    Ok(())
}

/// What opening the store had to convert.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Migrated {
    Nothing,
    /// Config vars of a store before version 2 were sealed.
    SealedClearValues,
}

/// Creates every table and records the schema version; later versions add their steps here.
pub(super) fn migrate(w: &mut Writer) -> Result<Migrated> {
    let tx = &w.tx;
    // Opening a table in a write transaction creates it.
    tx.open_table(USERS).map_err(db_err)?;
    tx.open_table(USERS_BY_NAME).map_err(db_err)?;
    tx.open_table(USERS_BY_EMAIL).map_err(db_err)?;
    tx.open_table(USERS_BY_EXTERNAL_ID).map_err(db_err)?;
    tx.open_table(TOKENS).map_err(db_err)?;
    tx.open_table(TOKENS_BY_USER).map_err(db_err)?;
    tx.open_table(API_KEYS).map_err(db_err)?;
    tx.open_table(API_KEYS_BY_USER).map_err(db_err)?;
    tx.open_table(SSH_KEYS).map_err(db_err)?;
    tx.open_table(SSH_KEYS_BY_FP).map_err(db_err)?;
    tx.open_table(SSH_KEYS_BY_USER).map_err(db_err)?;
    tx.open_table(INSTANCES).map_err(db_err)?;
    tx.open_table(INSTANCES_BY_OWNER).map_err(db_err)?;
    tx.open_table(REGIONS).map_err(db_err)?;
    tx.open_table(NODES).map_err(db_err)?;
    tx.open_table(cluster::CLUSTER).map_err(db_err)?;
    releases::create_tables(tx)?;
    tx.open_table(sessions::SESSIONS).map_err(db_err)?;
    tx.open_table(sessions::SESSIONS_BY_USER).map_err(db_err)?;
    pushes::create_tables(tx)?;
    cron::create_tables(tx)?;
    runs::create_tables(tx)?;
    images::create_tables(tx)?;
    image_apps::create_tables(tx)?;
    audit::create_tables(tx)?;
    let current = tx
        .open_table(META)
        .map_err(db_err)?
        .get("schema_version")
        .map_err(db_err)?
        .map(|v| v.value())
        .unwrap_or(0);
    if current > SCHEMA_VERSION {
        return Err(Error::internal(format!(
            "store schema version {current} is newer than this scalefog ({SCHEMA_VERSION}); upgrade scalefog"
        )));
    }
    // Version 0 → 1: the tables above. Nothing to convert.
    // Version 1 → 2: config var values sealed (and the audit tables, above).
    let mut migrated = Migrated::Nothing;
    if current < 2 && sealed_env::seal_clear_values(tx, &w.sealer)? {
        migrated = Migrated::SealedClearValues;
    }
    let mut meta = tx.open_table(META).map_err(db_err)?;
    meta.insert("schema_version", SCHEMA_VERSION)
        .map_err(db_err)?;
    Ok(migrated)
}
