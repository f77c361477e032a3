//! The cluster's image registry: one row of the cluster table, its password sealed by the
//! caller before it gets here.

use super::cluster::CLUSTER;
use super::{Reader, Writer, db_err, encode, get_json};
use crate::domain::{ClusterRegistry, Result};

const KEY: &str = "registry";

impl Reader {
    pub fn cluster_registry(&self) -> Result<Option<ClusterRegistry>> {
        get_json(&self.ro(CLUSTER)?, KEY)
    }
}

impl Writer {
    pub fn cluster_registry(&self) -> Result<Option<ClusterRegistry>> {
        get_json(&self.rw(CLUSTER)?, KEY)
    }

    pub fn put_cluster_registry(&mut self, r: &ClusterRegistry) -> Result<()> {
        self.rw(CLUSTER)?
            .insert(KEY, encode(r)?.as_slice())
            .map_err(db_err)?;
        Ok(())
    }

    /// Whether there was one.
    pub fn delete_cluster_registry(&mut self) -> Result<bool> {
        Ok(self.rw(CLUSTER)?.remove(KEY).map_err(db_err)?.is_some())
    }
}
