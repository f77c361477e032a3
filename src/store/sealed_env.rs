//! Config vars at rest: the values of an app's and each release's config vars are sealed
//! ([`crate::seal`]) when their record is written and opened when it is read, so the store file
//! never holds them in clear text while every caller keeps seeing plain records.
//!
//! Each value is bound to `env:<app>:<KEY>`: a sealed value moved to another var or app does not
//! open. Values written before sealing existed are read as they are and sealed by the schema
//! migration to version 2 ([`seal_clear_values`]).

use super::{db_err, decode, encode};
use crate::domain::{ConfigKey, Instance, Release, Result};
use crate::seal::Sealer;
use redb::{ReadableTable, WriteTransaction};
use std::collections::BTreeMap;

fn context(app: &str, key: &ConfigKey) -> String {
    format!("env:{app}:{key}")
}

fn seal_env(
    s: &Sealer,
    app: &str,
    env: &BTreeMap<ConfigKey, String>,
) -> BTreeMap<ConfigKey, String> {
    env.iter()
        .map(|(k, v)| (k.clone(), s.seal(&context(app, k), v)))
        .collect()
}

fn open_env(s: &Sealer, app: &str, env: &mut BTreeMap<ConfigKey, String>) -> Result<()> {
    for (k, v) in env.iter_mut() {
        if Sealer::is_sealed(v) {
            *v = s.open(&context(app, k), v)?;
        }
    }
    Ok(())
}

pub(super) fn encode_instance(s: &Sealer, inst: &Instance) -> Result<Vec<u8>> {
    let mut stored = inst.clone();
    stored.env = seal_env(s, &inst.name, &inst.env);
    encode(&stored)
}

pub(super) fn decode_instance(s: &Sealer, bytes: &[u8]) -> Result<Instance> {
    let mut inst: Instance = decode(bytes)?;
    open_env(s, &inst.name, &mut inst.env)?;
    Ok(inst)
}

pub(super) fn encode_release(s: &Sealer, r: &Release) -> Result<Vec<u8>> {
    let mut stored = r.clone();
    stored.env = seal_env(s, &r.app, &r.env);
    encode(&stored)
}

pub(super) fn decode_release(s: &Sealer, bytes: &[u8]) -> Result<Release> {
    let mut r: Release = decode(bytes)?;
    open_env(s, &r.app, &mut r.env)?;
    Ok(r)
}

/// Schema 1 → 2: seals the config vars every app and release holds in clear text, inside the
/// migration's transaction. Whether there was any.
pub(super) fn seal_clear_values(tx: &WriteTransaction, s: &Sealer) -> Result<bool> {
    let mut apps = tx.open_table(super::INSTANCES).map_err(db_err)?;
    let mut rows = Vec::new();
    let mut clear = false;
    for row in apps.iter().map_err(db_err)? {
        let (k, v) = row.map_err(db_err)?;
        let inst = decode_instance(s, v.value())?;
        clear |= !inst.env.is_empty();
        rows.push((k.value().to_string(), inst));
    }
    for (k, inst) in rows {
        apps.insert(k.as_str(), encode_instance(s, &inst)?.as_slice())
            .map_err(db_err)?;
    }
    let mut releases = tx.open_table(super::releases::RELEASES).map_err(db_err)?;
    let mut rows = Vec::new();
    for row in releases.iter().map_err(db_err)? {
        let (k, v) = row.map_err(db_err)?;
        let (app, version) = k.value();
        let r = decode_release(s, v.value())?;
        clear |= !r.env.is_empty();
        rows.push((app.to_string(), version, r));
    }
    for (app, version, r) in rows {
        releases
            .insert((app.as_str(), version), encode_release(s, &r)?.as_slice())
            .map_err(db_err)?;
    }
    Ok(clear)
}
