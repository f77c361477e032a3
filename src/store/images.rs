//! The image catalog: images admins allow users to deploy, by id, with an index by reference.

use super::{Reader, Writer, db_err, decode, encode, get_json};
use crate::domain::{CatalogImage, Result};
use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};

const CATALOG_IMAGES: TableDefinition<u64, &[u8]> = TableDefinition::new("catalog_images");
/// [`crate::domain::ImageRef::key`] → id: one entry per reference however it was written.
const CATALOG_IMAGES_BY_REF: TableDefinition<&str, u64> =
    TableDefinition::new("catalog_images_by_ref");

/// Creates the tables (called by `migrate`).
pub(super) fn create_tables(tx: &WriteTransaction) -> Result<()> {
    tx.open_table(CATALOG_IMAGES).map_err(db_err)?;
    tx.open_table(CATALOG_IMAGES_BY_REF).map_err(db_err)?;
    Ok(())
}

/// Copies the tables into a backup (called by `backup_to`).
pub(super) fn copy_tables(rtx: &ReadTransaction, wtx: &WriteTransaction) -> Result<()> {
    super::copy_table(rtx, wtx, CATALOG_IMAGES)?;
    super::copy_table(rtx, wtx, CATALOG_IMAGES_BY_REF)
}

macro_rules! catalog_readers {
    ($t:ty, $open:ident) => {
        impl $t {
            pub fn catalog_image(&self, id: u64) -> Result<Option<CatalogImage>> {
                get_json(&self.$open(CATALOG_IMAGES)?, id)
            }
            /// The entry stored under a reference key, if any.
            pub fn catalog_image_by_key(&self, key: &str) -> Result<Option<CatalogImage>> {
                let id = self
                    .$open(CATALOG_IMAGES_BY_REF)?
                    .get(key)
                    .map_err(db_err)?
                    .map(|v| v.value());
                match id {
                    Some(id) => self.catalog_image(id),
                    None => Ok(None),
                }
            }
            /// The whole catalog, oldest first (admins keep it short: tens of entries).
            pub fn catalog_images(&self) -> Result<Vec<CatalogImage>> {
                let t = self.$open(CATALOG_IMAGES)?;
                let mut out = Vec::new();
                for row in t.iter().map_err(db_err)? {
                    out.push(decode(row.map_err(db_err)?.1.value())?);
                }
                Ok(out)
            }
        }
    };
}

catalog_readers!(Reader, ro);
catalog_readers!(Writer, rw);

impl Writer {
    /// Adds an entry under `key` (the caller checked it is free).
    pub fn put_catalog_image(&mut self, key: &str, image: &CatalogImage) -> Result<()> {
        self.rw(CATALOG_IMAGES)?
            .insert(image.id, encode(image)?.as_slice())
            .map_err(db_err)?;
        self.rw(CATALOG_IMAGES_BY_REF)?
            .insert(key, image.id)
            .map_err(db_err)?;
        Ok(())
    }

    pub fn delete_catalog_image(&mut self, key: &str, id: u64) -> Result<()> {
        self.rw(CATALOG_IMAGES)?.remove(id).map_err(db_err)?;
        self.rw(CATALOG_IMAGES_BY_REF)?
            .remove(key)
            .map_err(db_err)?;
        Ok(())
    }
}
