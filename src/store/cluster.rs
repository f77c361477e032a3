//! The cluster record: one row, present once an admin turned the cluster on.

use super::{Reader, Writer, db_err, encode, get_json};
use crate::domain::{Cluster, Result};
use redb::TableDefinition;

pub(super) const CLUSTER: TableDefinition<&str, &[u8]> = TableDefinition::new("cluster");
const KEY: &str = "cluster";

impl Reader {
    pub fn cluster(&self) -> Result<Option<Cluster>> {
        get_json(&self.ro(CLUSTER)?, KEY)
    }
}

impl Writer {
    pub fn cluster(&self) -> Result<Option<Cluster>> {
        get_json(&self.rw(CLUSTER)?, KEY)
    }

    pub fn put_cluster(&mut self, c: &Cluster) -> Result<()> {
        self.rw(CLUSTER)?
            .insert(KEY, encode(c)?.as_slice())
            .map_err(db_err)?;
        Ok(())
    }
}
