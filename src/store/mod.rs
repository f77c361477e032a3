//! The embedded store: one redb file in the data dir, opened once and shared.
//!
//! Every state change is one call to [`Store::write`], which is one redb write transaction: it
//! commits when the closure returns `Ok` and rolls back otherwise. redb types never leave this
//! module; callers see [`Reader`] and [`Writer`], which speak in domain records.
//!
//! Records are stored as JSON bytes. Secondary indexes (by name, by owner, by fingerprint) are
//! tables of their own, kept in step inside the same transaction as the record.

use crate::domain::{
    ApiKey, Error, Instance, InstanceStatus, Node, QuotaUse, Region, Result, SshKey, TokenRecord,
    User, UserId,
};
use crate::seal::Sealer;
use redb::{
    Database, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable,
    ReadableTableMetadata, Table, TableDefinition, WriteTransaction,
};
use serde::{Serialize, de::DeserializeOwned};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

mod releases;

mod audit;
mod sealed_env;

mod cron;
mod image_apps;
mod images;
mod pushes;

mod runs;
mod schema;

pub use schema::SCHEMA_VERSION;
use schema::*;

/// The key config vars are sealed under, beside the store file (the data dir's `secrets.key`).
const SECRETS_KEY_FILE: &str = "secrets.key";

mod cluster;
mod cluster_registry;
mod credentials;
mod sessions;

fn db_err(e: impl Into<redb::Error>) -> Error {
    Error::Internal(anyhow::Error::new(e.into()).context("store"))
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| Error::internal(format!("store encode: {e}")))
}

fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T> {
    serde_json::from_slice(b).map_err(|e| Error::internal(format!("store decode: {e}")))
}

/// A page of a list, with the total for `X-Total-Count`.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: u64,
}

/// Which slice of a list to return: `offset` items skipped, at most `limit` returned.
#[derive(Debug, Clone, Copy)]
pub struct Slice {
    pub offset: u64,
    pub limit: u64,
}

impl Slice {
    pub const ALL: Slice = Slice {
        offset: 0,
        limit: u64::MAX,
    };
}

#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
    /// Bumped after every committed write: readers that cache derived data (rendered lists)
    /// compare it to know whether their copy is still current.
    generation: Arc<AtomicU64>,
    /// Seals config var values on their way into the file and opens them on the way out.
    sealer: Sealer,
}

impl Store {
    /// Opens (creating if needed) the store file and brings its schema up to date.
    /// redb takes an exclusive lock: a second server on the same data dir fails here, clearly.
    /// Config vars are sealed under the `secrets.key` beside the file (created when missing).
    pub fn open(path: &Path) -> Result<Store> {
        let sealer = Sealer::load_or_create(&path.with_file_name(SECRETS_KEY_FILE))?;
        Store::open_sealed(path, sealer)
    }

    /// [`Store::open`] with the sealing key given.
    pub fn open_sealed(path: &Path, sealer: Sealer) -> Result<Store> {
        let db = Database::create(path).map_err(|e| {
            Error::Internal(anyhow::anyhow!(
                "cannot open store {} (is another scalefog running on this data dir?): {e}",
                path.display()
            ))
        })?;
        let mut store = Store {
            db: Arc::new(db),
            generation: Arc::default(),
            sealer,
        };
        if store.write(migrate)? == Migrated::SealedClearValues {
            // The clear values stay in the pages the migration freed until redb reuses them;
            // compacting rewrites the file without them.
            if let Some(db) = Arc::get_mut(&mut store.db) {
                db.compact().map_err(db_err)?;
            }
        }
        Ok(store)
    }

    /// Runs `f` in one read transaction: a consistent snapshot, never blocked by writers.
    pub fn read<T>(&self, f: impl FnOnce(&Reader) -> Result<T>) -> Result<T> {
        let tx = self.db.begin_read().map_err(db_err)?;
        f(&Reader {
            tx,
            sealer: self.sealer.clone(),
        })
    }

    /// Runs `f` in one write transaction, committed only if `f` succeeds. Blocks the thread while
    /// another write runs: call it from blocking context ([`Store::write_async`] does that).
    pub fn write<T>(&self, f: impl FnOnce(&mut Writer) -> Result<T>) -> Result<T> {
        let tx = self.db.begin_write().map_err(db_err)?;
        let mut w = Writer {
            tx,
            sealer: self.sealer.clone(),
        };
        let out = f(&mut w)?;
        w.tx.commit().map_err(db_err)?;
        self.generation.fetch_add(1, Ordering::Release);
        Ok(out)
    }

    /// A number that changes after every committed write. Read it *before* reading the data a
    /// cache entry is built from, so a write racing with the read can only make the entry stale
    /// (and so unused), never wrongly current.
    /// The key config vars are sealed under, for the other secrets the core keeps.
    pub fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// [`Store::write`] off the async workers.
    pub async fn write_async<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Writer) -> Result<T> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.write(f))
            .await
            .map_err(|e| Error::internal(format!("store task: {e}")))?
    }

    /// Writes a consistent copy of every table into a new store file at `dest`.
    /// redb has no backup API; one read transaction gives the snapshot.
    pub fn backup_to(&self, dest: &Path) -> Result<()> {
        if dest.exists() {
            return Err(Error::invalid(
                "path",
                format!("{} already exists", dest.display()),
            ));
        }
        let out = Database::create(dest).map_err(db_err)?;
        let rtx = self.db.begin_read().map_err(db_err)?;
        let wtx = out.begin_write().map_err(db_err)?;
        schema::copy_tables(&rtx, &wtx)?;
        wtx.commit().map_err(db_err)?;
        Ok(())
    }
}

fn get_json<'a, K, T>(
    table: &impl ReadableTable<K, &'static [u8]>,
    key: impl std::borrow::Borrow<K::SelfType<'a>>,
) -> Result<Option<T>>
where
    K: redb::Key + 'static,
    T: DeserializeOwned,
{
    match table.get(key).map_err(db_err)? {
        Some(v) => decode(v.value()).map(Some),
        None => Ok(None),
    }
}

/// Collects a slice of the index rows in `range`, resolving each through `fetch`.
fn page_of<T>(
    rows: impl Iterator<Item = std::result::Result<T, redb::StorageError>>,
    slice: Slice,
) -> Result<(Vec<T>, u64)> {
    let mut items = Vec::new();
    let mut total = 0u64;
    for row in rows {
        let row = row.map_err(db_err)?;
        if total >= slice.offset && (items.len() as u64) < slice.limit {
            items.push(row);
        }
        total += 1;
    }
    Ok((items, total))
}

macro_rules! readers {
    ($t:ty, $open:ident) => {
        impl $t {
            pub fn user(&self, id: UserId) -> Result<Option<User>> {
                get_json(&self.$open(USERS)?, id)
            }
            pub fn user_by_name(&self, name: &str) -> Result<Option<User>> {
                let id = self
                    .$open(USERS_BY_NAME)?
                    .get(name)
                    .map_err(db_err)?
                    .map(|v| v.value());
                match id {
                    Some(id) => self.user(id),
                    None => Ok(None),
                }
            }
            pub fn user_by_email(&self, email: &str) -> Result<Option<User>> {
                let id = self
                    .$open(USERS_BY_EMAIL)?
                    .get(email)
                    .map_err(db_err)?
                    .map(|v| v.value());
                match id {
                    Some(id) => self.user(id),
                    None => Ok(None),
                }
            }
            pub fn user_by_external_id(&self, external: &str) -> Result<Option<User>> {
                let id = self
                    .$open(USERS_BY_EXTERNAL_ID)?
                    .get(external)
                    .map_err(db_err)?
                    .map(|v| v.value());
                match id {
                    Some(id) => self.user(id),
                    None => Ok(None),
                }
            }
            pub fn user_count(&self) -> Result<u64> {
                self.$open(USERS)?.len().map_err(db_err)
            }
            pub fn users(&self, slice: Slice) -> Result<Page<User>> {
                let t = self.$open(USERS)?;
                let (rows, total) = page_of(
                    t.iter()
                        .map_err(db_err)?
                        .map(|r| r.map(|(_, v)| v.value().to_vec())),
                    slice,
                )?;
                let items = rows.iter().map(|b| decode(b)).collect::<Result<_>>()?;
                Ok(Page { items, total })
            }
            pub fn token(&self, hash: &str) -> Result<Option<TokenRecord>> {
                get_json(&self.$open(TOKENS)?, hash)
            }
            pub fn api_key(&self, id: u64) -> Result<Option<ApiKey>> {
                get_json(&self.$open(API_KEYS)?, id)
            }
            pub fn api_keys_of(&self, user: UserId, slice: Slice) -> Result<Page<ApiKey>> {
                let idx = self.$open(API_KEYS_BY_USER)?;
                let rows = idx.range((user, 0)..=(user, u64::MAX)).map_err(db_err)?;
                let (ids, total) = page_of(rows.map(|r| r.map(|(k, _)| k.value().1)), slice)?;
                let mut items = Vec::with_capacity(ids.len());
                for id in ids {
                    items.extend(self.api_key(id)?);
                }
                Ok(Page { items, total })
            }
            pub fn ssh_key(&self, id: u64) -> Result<Option<SshKey>> {
                get_json(&self.$open(SSH_KEYS)?, id)
            }
            pub fn ssh_key_by_fingerprint(&self, fp: &str) -> Result<Option<SshKey>> {
                let id = self
                    .$open(SSH_KEYS_BY_FP)?
                    .get(fp)
                    .map_err(db_err)?
                    .map(|v| v.value());
                match id {
                    Some(id) => self.ssh_key(id),
                    None => Ok(None),
                }
            }
            pub fn ssh_keys_of(&self, user: UserId, slice: Slice) -> Result<Page<SshKey>> {
                let idx = self.$open(SSH_KEYS_BY_USER)?;
                let rows = idx.range((user, 0)..=(user, u64::MAX)).map_err(db_err)?;
                let (ids, total) = page_of(rows.map(|r| r.map(|(k, _)| k.value().1)), slice)?;
                let mut items = Vec::with_capacity(ids.len());
                for id in ids {
                    items.extend(self.ssh_key(id)?);
                }
                Ok(Page { items, total })
            }
            pub fn instance(&self, name: &str) -> Result<Option<Instance>> {
                match self.$open(INSTANCES)?.get(name).map_err(db_err)? {
                    Some(v) => sealed_env::decode_instance(&self.sealer, v.value()).map(Some),
                    None => Ok(None),
                }
            }
            /// Instances of one owner, in name order.
            pub fn instances_of(&self, owner: UserId, slice: Slice) -> Result<Page<Instance>> {
                let idx = self.$open(INSTANCES_BY_OWNER)?;
                let rows = idx.range((owner, "")..(owner + 1, "")).map_err(db_err)?;
                let (names, total) =
                    page_of(rows.map(|r| r.map(|(k, _)| k.value().1.to_string())), slice)?;
                let mut items = Vec::with_capacity(names.len());
                for n in names {
                    items.extend(self.instance(&n)?);
                }
                Ok(Page { items, total })
            }
            /// What `owner`'s apps take, for their quota: how many, and their memory together.
            /// How many processes an app runs: its current release's types at its formation.
            pub fn replicas_of(&self, inst: &Instance) -> Result<u64> {
                let processes = match inst.release {
                    Some(v) => self
                        .release(&inst.name, v)?
                        .map(|r| r.processes)
                        .unwrap_or_default(),
                    None => Default::default(),
                };
                Ok(crate::domain::scales(&processes, &inst.formation)
                    .iter()
                    .map(|s| u64::from(s.replicas))
                    .sum())
            }
            pub fn quota_use(&self, owner: UserId) -> Result<QuotaUse> {
                let mut used = QuotaUse::default();
                for inst in self.instances_of(owner, Slice::ALL)?.items {
                    let replicas = self.replicas_of(&inst)?;
                    used.apps += 1;
                    used.replicas += replicas;
                    used.memory_mb += u64::from(inst.memory_mb) * replicas;
                }
                Ok(used)
            }
            /// Every instance, in name order, optionally only those matching `keep`.
            pub fn instances_where(
                &self,
                slice: Slice,
                keep: impl Fn(&Instance) -> bool,
            ) -> Result<Page<Instance>> {
                let t = self.$open(INSTANCES)?;
                let mut items = Vec::new();
                let mut total = 0u64;
                for row in t.iter().map_err(db_err)? {
                    let (_, v) = row.map_err(db_err)?;
                    let inst = sealed_env::decode_instance(&self.sealer, v.value())?;
                    if !keep(&inst) {
                        continue;
                    }
                    if total >= slice.offset && (items.len() as u64) < slice.limit {
                        items.push(inst);
                    }
                    total += 1;
                }
                Ok(Page { items, total })
            }
            pub fn region(&self, id: u64) -> Result<Option<Region>> {
                get_json(&self.$open(REGIONS)?, id)
            }
            pub fn regions(&self) -> Result<Vec<Region>> {
                let t = self.$open(REGIONS)?;
                let mut out = Vec::new();
                for row in t.iter().map_err(db_err)? {
                    out.push(decode(row.map_err(db_err)?.1.value())?);
                }
                Ok(out)
            }
            pub fn node(&self, id: u64) -> Result<Option<Node>> {
                get_json(&self.$open(NODES)?, id)
            }
            pub fn nodes(&self) -> Result<Vec<Node>> {
                let t = self.$open(NODES)?;
                let mut out = Vec::new();
                for row in t.iter().map_err(db_err)? {
                    out.push(decode(row.map_err(db_err)?.1.value())?);
                }
                Ok(out)
            }
        }
    };
}

/// A read-only snapshot.
pub struct Reader {
    tx: ReadTransaction,
    sealer: Sealer,
}

impl Reader {
    fn ro<K: redb::Key + 'static, V: redb::Value + 'static>(
        &self,
        def: TableDefinition<K, V>,
    ) -> Result<ReadOnlyTable<K, V>> {
        self.tx.open_table(def).map_err(db_err)
    }
}

/// One write transaction. Reads through it see its own uncommitted writes.
pub struct Writer {
    tx: WriteTransaction,
    sealer: Sealer,
}

impl Writer {
    fn rw<K: redb::Key + 'static, V: redb::Value + 'static>(
        &self,
        def: TableDefinition<K, V>,
    ) -> Result<Table<'_, K, V>> {
        self.tx.open_table(def).map_err(db_err)
    }

    /// Removes every record of `app` from a table of records by id, its per-app index and its
    /// index of records still running: the shape pushes, runs and cron runs share.
    fn delete_records_of(
        &mut self,
        app: &str,
        records: TableDefinition<u64, &[u8]>,
        by_app: TableDefinition<(&str, u64), ()>,
        running: TableDefinition<u64, ()>,
    ) -> Result<()> {
        let ids: Vec<u64> = {
            let idx = self.rw(by_app)?;
            idx.range((app, 0)..=(app, u64::MAX))
                .map_err(db_err)?
                .map(|r| r.map(|(k, _)| k.value().1))
                .collect::<std::result::Result<_, _>>()
                .map_err(db_err)?
        };
        let mut t = self.rw(records)?;
        let mut idx = self.rw(by_app)?;
        let mut running = self.rw(running)?;
        for id in ids {
            t.remove(id).map_err(db_err)?;
            idx.remove((app, id)).map_err(db_err)?;
            running.remove(id).map_err(db_err)?;
        }
        Ok(())
    }

    /// Claims `id`, chosen by a client, in the sequence `seq`: `false` when the sequence has
    /// reached it already (the id is someone's, or was: ids are never reused, so that old
    /// records naming it never point at a new owner); otherwise the sequence continues after it.
    pub fn claim_id(&mut self, seq: &str, id: u64) -> Result<bool> {
        let key = format!("seq:{seq}");
        let mut meta = self.rw(META)?;
        let current = meta
            .get(key.as_str())
            .map_err(db_err)?
            .map(|v| v.value())
            .unwrap_or(0);
        if id <= current {
            return Ok(false);
        }
        meta.insert(key.as_str(), id).map_err(db_err)?;
        Ok(true)
    }

    /// The next id of a sequence (`user`, `ssh_key`, ...), starting at 1.
    pub fn next_id(&mut self, seq: &str) -> Result<u64> {
        let key = format!("seq:{seq}");
        let mut meta = self.rw(META)?;
        let next = meta
            .get(key.as_str())
            .map_err(db_err)?
            .map(|v| v.value())
            .unwrap_or(0)
            + 1;
        meta.insert(key.as_str(), next).map_err(db_err)?;
        Ok(next)
    }

    pub fn put_user(&mut self, user: &User) -> Result<()> {
        if let Some(old) = self.user(user.id)? {
            self.rw(USERS_BY_NAME)?
                .remove(old.username.as_str())
                .map_err(db_err)?;
            self.rw(USERS_BY_EMAIL)?
                .remove(old.email.as_str())
                .map_err(db_err)?;
            if let Some(x) = &old.external_id {
                self.rw(USERS_BY_EXTERNAL_ID)?
                    .remove(x.as_str())
                    .map_err(db_err)?;
            }
        }
        if let Some(x) = &user.external_id {
            self.rw(USERS_BY_EXTERNAL_ID)?
                .insert(x.as_str(), user.id)
                .map_err(db_err)?;
        }
        self.rw(USERS)?
            .insert(user.id, encode(user)?.as_slice())
            .map_err(db_err)?;
        self.rw(USERS_BY_NAME)?
            .insert(user.username.as_str(), user.id)
            .map_err(db_err)?;
        self.rw(USERS_BY_EMAIL)?
            .insert(user.email.as_str(), user.id)
            .map_err(db_err)?;
        Ok(())
    }

    /// Removes a user with their tokens, API keys and SSH keys (not their instances).
    pub fn delete_user(&mut self, id: UserId) -> Result<()> {
        let Some(user) = self.user(id)? else {
            return Ok(());
        };
        let hashes: Vec<String> = {
            let idx = self.rw(TOKENS_BY_USER)?;
            let rows = idx.range((id, "")..(id + 1, "")).map_err(db_err)?;
            rows.map(|r| r.map(|(k, _)| k.value().1.to_string()))
                .collect::<Result<_, _>>()
                .map_err(db_err)?
        };
        for h in hashes {
            self.delete_token(&h)?;
        }
        for k in self.api_keys_of(id, Slice::ALL)?.items {
            self.delete_api_key(&k)?;
        }
        for k in self.ssh_keys_of(id, Slice::ALL)?.items {
            self.delete_ssh_key(&k)?;
        }
        self.rw(USERS)?.remove(id).map_err(db_err)?;
        self.rw(USERS_BY_NAME)?
            .remove(user.username.as_str())
            .map_err(db_err)?;
        self.rw(USERS_BY_EMAIL)?
            .remove(user.email.as_str())
            .map_err(db_err)?;
        if let Some(x) = &user.external_id {
            self.rw(USERS_BY_EXTERNAL_ID)?
                .remove(x.as_str())
                .map_err(db_err)?;
        }
        Ok(())
    }

    /// Writes an app's record. A record marked `Deleting` stays so: a deploy, an event or a
    /// setting racing the deletion must not bring the app back to life (its resources are
    /// going), so such a write fails and its transaction rolls back.
    pub fn put_instance(&mut self, inst: &Instance) -> Result<()> {
        if let Some(old) = self.instance(&inst.name)? {
            if old.status == InstanceStatus::Deleting && inst.status != InstanceStatus::Deleting {
                return Err(Error::Conflict(format!("'{}' is being deleted", inst.name)));
            }
            if old.owner_id != inst.owner_id {
                self.rw(INSTANCES_BY_OWNER)?
                    .remove((old.owner_id, old.name.as_str()))
                    .map_err(db_err)?;
            }
        }
        self.rw(INSTANCES)?
            .insert(
                inst.name.as_str(),
                sealed_env::encode_instance(&self.sealer, inst)?.as_slice(),
            )
            .map_err(db_err)?;
        self.rw(INSTANCES_BY_OWNER)?
            .insert((inst.owner_id, inst.name.as_str()), ())
            .map_err(db_err)?;
        Ok(())
    }

    pub fn delete_instance(&mut self, name: &str) -> Result<()> {
        if let Some(old) = self.instance(name)? {
            self.rw(INSTANCES_BY_OWNER)?
                .remove((old.owner_id, name))
                .map_err(db_err)?;
        }
        self.rw(INSTANCES)?.remove(name).map_err(db_err)?;
        Ok(())
    }

    pub fn put_region(&mut self, r: &Region) -> Result<()> {
        self.rw(REGIONS)?
            .insert(r.id, encode(r)?.as_slice())
            .map_err(db_err)?;
        Ok(())
    }

    pub fn put_node(&mut self, n: &Node) -> Result<()> {
        self.rw(NODES)?
            .insert(n.id, encode(n)?.as_slice())
            .map_err(db_err)?;
        Ok(())
    }

    pub fn delete_node(&mut self, id: u64) -> Result<()> {
        self.rw(NODES)?.remove(id).map_err(db_err)?;
        Ok(())
    }
}

readers!(Reader, ro);
readers!(Writer, rw);

#[cfg(test)]
mod tests;
