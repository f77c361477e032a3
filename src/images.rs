//! The images users may deploy: the admin-managed catalog, the images already on the local node,
//! and the one check ([`Images::check_deployable`]) every image deploy goes through.
//!
//! Policy (`image_policy`): admins may deploy any reference; other users only what a catalog
//! entry admits (a repository entry admits each of its tags), unless the policy is `any`.
//!
//! Images Scalefog built for apps (labelled `scalefog`, or named `scalefog/…`) are not listed:
//! they hold one app's code and config, belong to its owner and go with its releases.

use crate::accounts::{Principal, require_admin};
use crate::docker::{DockerNode, ImageInfo, LABEL};
use crate::domain::{self, AuditAction, CatalogImage, Error, ImagePolicy, ImageRef, Result};
use crate::store::Store;
use std::sync::Arc;

/// Where a listed image comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageSource {
    /// An entry of the catalog (it may or may not be on the node yet).
    Catalog,
    /// On the local node's engine, not in the catalog.
    Node,
}

impl ImageSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ImageSource::Catalog => "catalog",
            ImageSource::Node => "node",
        }
    }
}

/// One image as the listings show it.
#[derive(Debug, Clone)]
pub struct ImageEntry {
    /// What to deploy: the catalog's reference, or the node image's tag.
    pub reference: String,
    pub source: ImageSource,
    /// The catalog entry, for catalog images.
    pub catalog: Option<CatalogImage>,
    /// Docker's image id, when the image is on the node.
    pub docker_id: Option<String>,
    /// The other tags the node holds of the same image.
    pub other_tags: Vec<String>,
    /// Bytes, when on the node.
    pub size: Option<i64>,
    /// When Docker created the image (on the node), else when it was added to the catalog.
    pub created_at: i64,
    /// Whether the caller may deploy it.
    pub deployable: bool,
}

#[derive(Clone)]
pub struct Images {
    store: Store,
    /// The local node's engine, whose images are listed.
    docker: Arc<dyn DockerNode>,
    policy: ImagePolicy,
}

/// Longest catalog description.
const MAX_DESCRIPTION: usize = 200;

impl Images {
    pub fn new(store: Store, docker: Arc<dyn DockerNode>, policy: ImagePolicy) -> Images {
        Images {
            store,
            docker,
            policy,
        }
    }

    pub fn policy(&self) -> ImagePolicy {
        self.policy
    }

    /// The catalog, oldest first. Everyone signed in may read it: it is what they may deploy.
    pub fn catalog(&self, _who: &Principal) -> Result<Vec<CatalogImage>> {
        self.store.read(|r| r.catalog_images())
    }

    /// The images the caller may choose from: for admins, the catalog and then every tagged image
    /// on the local node not in it (newest first); for others, the catalog. The catalog is still
    /// listed when Docker cannot be reached (without what the node holds).
    pub async fn list(&self, who: &Principal) -> Result<Vec<ImageEntry>> {
        let catalog = self.catalog(who)?;
        let node = if who.is_admin() {
            match self.docker.images(&[]).await {
                Ok(list) => list,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot list the node's images");
                    vec![]
                }
            }
        } else {
            vec![]
        };
        let node: Vec<&ImageInfo> = node.iter().filter(|i| !built_by_scalefog(i)).collect();
        let on_node = |r: &ImageRef| {
            node.iter().find(|i| {
                i.tagged()
                    .any(|t| ImageRef::parse(t).is_ok_and(|x| x.key() == r.key()))
            })
        };
        let mut out = Vec::with_capacity(catalog.len() + node.len());
        let mut listed = std::collections::HashSet::new();
        for c in catalog {
            let parsed = c.image_ref();
            let found = parsed.as_ref().and_then(&on_node);
            if let Some(r) = &parsed {
                listed.insert(r.key());
            }
            out.push(ImageEntry {
                reference: c.reference.clone(),
                source: ImageSource::Catalog,
                docker_id: found.map(|i| i.id.clone()),
                other_tags: found.map(|i| others(i, &c.reference)).unwrap_or_default(),
                size: found.map(|i| i.size),
                created_at: c.created_at,
                deployable: true,
                catalog: Some(c),
            });
        }
        let mut node_entries = vec![];
        for img in node {
            for tag in img.tagged() {
                let Ok(r) = ImageRef::parse(tag) else {
                    continue;
                };
                if !listed.insert(r.key()) {
                    continue;
                }
                node_entries.push(ImageEntry {
                    reference: r.familiar(),
                    source: ImageSource::Node,
                    catalog: None,
                    docker_id: Some(img.id.clone()),
                    other_tags: others(img, tag),
                    size: Some(img.size),
                    created_at: img.created,
                    deployable: self.allows(who, &r)?,
                });
            }
        }
        node_entries.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| a.reference.cmp(&b.reference))
        });
        out.extend(node_entries);
        Ok(out)
    }

    /// Adds `reference` to the catalog (admins only); `409` when an entry of the same reference
    /// (however written) exists.
    pub async fn add(
        &self,
        who: &Principal,
        reference: &str,
        description: &str,
    ) -> Result<CatalogImage> {
        require_admin(who)?;
        let r = ImageRef::parse(reference)?;
        let description = description.trim().to_string();
        if description.chars().count() > MAX_DESCRIPTION
            || description.chars().any(char::is_control)
        {
            return Err(Error::invalid(
                "description",
                format!("description must be at most {MAX_DESCRIPTION} printable characters"),
            ));
        }
        let created_by = who.id();
        let who = who.clone();
        self.store
            .write_async(move |w| {
                let key = r.key();
                if w.catalog_image_by_key(&key)?.is_some() {
                    return Err(Error::Conflict(format!(
                        "'{}' is already in the image catalog",
                        r.familiar()
                    )));
                }
                let image = CatalogImage {
                    id: w.next_id("catalog_image")?,
                    reference: r.familiar(),
                    description,
                    created_by,
                    created_at: domain::now(),
                };
                w.put_catalog_image(&key, &image)?;
                w.audit(who.audit(AuditAction::ImageAdd, None, image.reference.clone()))?;
                Ok(image)
            })
            .await
    }

    /// Removes a catalog entry, named by id or by reference (admins only). Apps already deployed
    /// from it keep running; only new deploys are refused.
    pub async fn remove(&self, who: &Principal, id_or_reference: &str) -> Result<CatalogImage> {
        require_admin(who)?;
        let wanted = id_or_reference.trim().to_string();
        let who = who.clone();
        self.store
            .write_async(move |w| {
                let found = match wanted.parse::<u64>() {
                    Ok(id) => w.catalog_image(id)?,
                    Err(_) => match ImageRef::parse(&wanted) {
                        Ok(r) => w.catalog_image_by_key(&r.key())?,
                        Err(_) => None,
                    },
                };
                let image = found.ok_or_else(|| {
                    Error::NotFound(format!("no image '{wanted}' in the catalog"))
                })?;
                let key = image
                    .image_ref()
                    .map(|r| r.key())
                    .ok_or_else(|| Error::internal("a catalog reference no longer parses"))?;
                w.delete_catalog_image(&key, image.id)?;
                w.audit(who.audit(AuditAction::ImageRemove, None, image.reference.clone()))?;
                Ok(image)
            })
            .await
    }

    /// Whether `who` may deploy `reference`: `400` naming `image` when it is not a reference,
    /// `403` when the policy does not allow it. Every image deploy calls this first; it returns
    /// the parsed reference.
    pub fn check_deployable(&self, who: &Principal, reference: &str) -> Result<ImageRef> {
        let r = ImageRef::parse_as("image", reference)?;
        if self.allows(who, &r)? {
            return Ok(r);
        }
        Err(Error::Forbidden(format!(
            "the image '{}' is not in this server's image catalog; ask an administrator to add it",
            r.familiar()
        )))
    }

    fn allows(&self, who: &Principal, r: &ImageRef) -> Result<bool> {
        if who.is_admin() || self.policy == ImagePolicy::Any {
            return Ok(true);
        }
        let catalog = self.store.read(|s| s.catalog_images())?;
        Ok(catalog
            .iter()
            .filter_map(CatalogImage::image_ref)
            .any(|entry| entry.admits(r)))
    }
}

/// An app's image: built by some Scalefog installation (labelled), or named like one.
fn built_by_scalefog(img: &ImageInfo) -> bool {
    img.labels.contains_key(LABEL)
        || img
            .tagged()
            .any(|t| t.starts_with("scalefog/") || t.starts_with("docker.io/scalefog/"))
}

/// The image's tags other than `reference`.
fn others(img: &ImageInfo, reference: &str) -> Vec<String> {
    let me = ImageRef::parse(reference).ok().map(|r| r.key());
    img.tagged()
        .filter(|t| ImageRef::parse(t).ok().map(|r| r.key()) != me)
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests;
