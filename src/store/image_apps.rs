//! Tables of image apps: the image each deploys (with its sealed registry login), and deploy
//! hooks with their index by token hash.

use super::{Reader, Writer, copy_table, db_err, encode, get_json};
use crate::domain::{DeployHook, ImageSource, Result};
use redb::{ReadTransaction, TableDefinition, WriteTransaction};

/// app → ImageSource
const IMAGE_SOURCES: TableDefinition<&str, &[u8]> = TableDefinition::new("image_sources");
/// app → DeployHook
const DEPLOY_HOOKS: TableDefinition<&str, &[u8]> = TableDefinition::new("deploy_hooks");
/// token hash → app
const DEPLOY_HOOKS_BY_TOKEN: TableDefinition<&str, &str> =
    TableDefinition::new("deploy_hooks_by_token");

/// Called from `migrate`: opening a table in a write transaction creates it.
pub(super) fn create_tables(tx: &WriteTransaction) -> Result<()> {
    tx.open_table(IMAGE_SOURCES).map_err(db_err)?;
    tx.open_table(DEPLOY_HOOKS).map_err(db_err)?;
    tx.open_table(DEPLOY_HOOKS_BY_TOKEN).map_err(db_err)?;
    Ok(())
}

/// Called from `backup_to`, inside its one read transaction.
pub(super) fn copy_tables(rtx: &ReadTransaction, wtx: &WriteTransaction) -> Result<()> {
    copy_table(rtx, wtx, IMAGE_SOURCES)?;
    copy_table(rtx, wtx, DEPLOY_HOOKS)?;
    copy_table(rtx, wtx, DEPLOY_HOOKS_BY_TOKEN)
}

impl Reader {
    pub fn image_source(&self, app: &str) -> Result<Option<ImageSource>> {
        get_json(&self.ro(IMAGE_SOURCES)?, app)
    }
    pub fn deploy_hook(&self, app: &str) -> Result<Option<DeployHook>> {
        get_json(&self.ro(DEPLOY_HOOKS)?, app)
    }
    /// The app whose hook token hashes to `hash`.
    pub fn app_of_hook(&self, hash: &str) -> Result<Option<String>> {
        Ok(self
            .ro(DEPLOY_HOOKS_BY_TOKEN)?
            .get(hash)
            .map_err(db_err)?
            .map(|v| v.value().to_string()))
    }
}

impl Writer {
    pub fn image_source(&mut self, app: &str) -> Result<Option<ImageSource>> {
        get_json(&self.rw(IMAGE_SOURCES)?, app)
    }
    pub fn put_image_source(&mut self, source: &ImageSource) -> Result<()> {
        self.rw(IMAGE_SOURCES)?
            .insert(source.app.as_str(), encode(source)?.as_slice())
            .map_err(db_err)?;
        Ok(())
    }

    /// Replaces the app's hook (the old token stops working in the same transaction).
    pub fn put_deploy_hook(&mut self, hook: &DeployHook) -> Result<()> {
        self.delete_deploy_hook(&hook.app)?;
        self.rw(DEPLOY_HOOKS)?
            .insert(hook.app.as_str(), encode(hook)?.as_slice())
            .map_err(db_err)?;
        self.rw(DEPLOY_HOOKS_BY_TOKEN)?
            .insert(hook.token_hash.as_str(), hook.app.as_str())
            .map_err(db_err)?;
        Ok(())
    }

    pub fn delete_deploy_hook(&mut self, app: &str) -> Result<()> {
        let old: Option<DeployHook> = get_json(&self.rw(DEPLOY_HOOKS)?, app)?;
        if let Some(old) = old {
            self.rw(DEPLOY_HOOKS_BY_TOKEN)?
                .remove(old.token_hash.as_str())
                .map_err(db_err)?;
            self.rw(DEPLOY_HOOKS)?.remove(app).map_err(db_err)?;
        }
        Ok(())
    }

    /// Removes an app's image source and hook (the app is being deleted).
    pub fn delete_image_app_records(&mut self, app: &str) -> Result<()> {
        self.rw(IMAGE_SOURCES)?.remove(app).map_err(db_err)?;
        self.delete_deploy_hook(app)
    }
}
