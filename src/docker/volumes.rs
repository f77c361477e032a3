//! Named Docker volumes of apps: created labelled, listed by label, removed only when unused.

use super::engine::{Engine, label_filter};
use crate::domain::{Error, Result};
use bollard::models::VolumeCreateRequest;
use bollard::query_parameters::{ListVolumesOptions, RemoveVolumeOptions};
use std::collections::HashMap;

impl Engine {
    pub(super) async fn create_volume_now(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
    ) -> Result<()> {
        let docker = self.api().await?;
        docker
            .create_volume(VolumeCreateRequest {
                name: Some(name.to_string()),
                labels: Some(labels.clone()),
                ..Default::default()
            })
            .await
            .map(|_| ())
            .map_err(|e| self.map_err(e))
    }

    pub(super) async fn remove_volume_now(&self, name: &str) -> Result<bool> {
        let docker = self.api().await?;
        match docker
            .remove_volume(name, Some(RemoveVolumeOptions { force: false }))
            .await
        {
            Ok(()) => Ok(true),
            Err(e) => match self.map_err(e) {
                Error::NotFound(_) => Ok(true),
                // A container (even a stopped one) still mounts it.
                Error::Conflict(_) => Ok(false),
                e => Err(e),
            },
        }
    }

    pub(super) async fn volumes_now(&self, labels: &[String]) -> Result<Vec<String>> {
        let docker = self.api().await?;
        let list = docker
            .list_volumes(Some(ListVolumesOptions {
                filters: Some(label_filter(labels)),
            }))
            .await
            .map_err(|e| self.map_err(e))?;
        Ok(list
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name)
            .collect())
    }
}
