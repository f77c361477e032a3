//! The cluster's image registry as admins set it: its address (and the one this machine pushes
//! to, when it differs) and a login whose password is sealed at rest and never shown again.
//! Using it is the runtime's (`runtime/swarm/registry.rs`).

use super::Nodes;
use crate::accounts::{Principal, require_admin};
use crate::domain::{self, AuditAction, ClusterRegistry, Error, Result, parse_registry_address};

/// What an admin sends to set the registry.
#[derive(Debug, Default, Clone)]
pub struct RegistrySettings {
    pub address: String,
    pub push_address: Option<String>,
    /// An empty or missing username: the registry needs no login.
    pub username: Option<String>,
    /// Required with a new username or address; the same username at the same address keeps
    /// the stored password when this is missing.
    pub password: Option<String>,
}

/// The registry as admins see it: never the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryInfo {
    pub address: String,
    pub push_address: Option<String>,
    pub username: Option<String>,
    pub set_by: String,
    pub set_at: i64,
}

impl From<ClusterRegistry> for RegistryInfo {
    fn from(r: ClusterRegistry) -> Self {
        RegistryInfo {
            address: r.address,
            push_address: r.push_address,
            username: r.username,
            set_by: r.set_by,
            set_at: r.set_at,
        }
    }
}

impl Nodes {
    /// The cluster's registry (admins), `None` when images are streamed to the nodes.
    pub fn registry(&self, who: &Principal) -> Result<Option<RegistryInfo>> {
        require_admin(who)?;
        Ok(self
            .store
            .read(|r| r.cluster_registry())?
            .map(RegistryInfo::from))
    }

    /// Sets (or replaces) the cluster's registry (admins). Later deploys push there.
    pub async fn set_registry(&self, who: &Principal, s: RegistrySettings) -> Result<RegistryInfo> {
        require_admin(who)?;
        let address = parse_registry_address("address", &s.address)?;
        let push_address = match s.push_address.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(p) => Some(parse_registry_address("push_address", p)?).filter(|p| *p != address),
        };
        let username = s
            .username
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_string);
        if username.as_deref().is_some_and(|u| u.contains(':')) {
            return Err(Error::invalid("username", "a registry username has no ':'"));
        }
        let password = s.password.filter(|p| !p.is_empty());
        let sealer = self.store.sealer().clone();
        let context = ClusterRegistry::seal_context(&address);
        let (user, addr) = (who.user.username.clone(), address.clone());
        let detail = match &username {
            Some(u) => format!("{address} as {u}"),
            None => format!("{address} without a login"),
        };
        let entry = who.audit(AuditAction::ClusterRegistry, None, detail);
        let saved = self
            .store
            .write_async(move |w| {
                let stored = w.cluster_registry()?;
                let sealed_password = match (&username, password) {
                    (None, _) => None,
                    (Some(_), Some(p)) => Some(sealer.seal(&context, &p)),
                    // The same login again (as a form shows it): its password stays.
                    (Some(u), None) => Some(
                        stored
                            .filter(|r| r.address == addr && r.username.as_ref() == Some(u))
                            .and_then(|r| r.sealed_password)
                            .ok_or_else(|| Error::missing("password"))?,
                    ),
                };
                let record = ClusterRegistry {
                    address: addr,
                    push_address,
                    username,
                    sealed_password,
                    set_by: user,
                    set_at: domain::now(),
                };
                w.put_cluster_registry(&record)?;
                w.audit(entry)?;
                Ok(record)
            })
            .await?;
        Ok(saved.into())
    }

    /// Removes the cluster's registry (admins): later deploys stream images again.
    pub async fn remove_registry(&self, who: &Principal) -> Result<()> {
        require_admin(who)?;
        let entry = who.audit(AuditAction::ClusterRegistry, None, "removed");
        self.store
            .write_async(move |w| {
                if !w.delete_cluster_registry()? {
                    return Err(Error::NotFound("the cluster has no registry".into()));
                }
                w.audit(entry)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::{Engine, Installation};
    use crate::runtime::Swarm;
    use crate::store::Store;

    fn nodes(dir: &tempfile::TempDir) -> Nodes {
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        // Nothing here talks to Docker.
        let engine = Engine::new("unix:///nonexistent/docker.sock");
        let swarm = Swarm::new(
            engine,
            store.clone(),
            Installation { id: "test".into() },
            dir.path().join("nodes"),
        );
        Nodes::new(store, swarm)
    }

    #[tokio::test]
    async fn the_registry_password_is_sealed_at_rest_and_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let n = nodes(&dir);
        let (admin, user) = (
            Principal::for_tests(1, true),
            Principal::for_tests(2, false),
        );
        let secret = "registry-pass-5e1b";
        let settings = RegistrySettings {
            address: "10.0.0.1:5000".into(),
            push_address: Some("127.0.0.1:5000".into()),
            username: Some("ci".into()),
            password: Some(secret.into()),
        };
        assert!(matches!(
            n.set_registry(&user, settings.clone()).await,
            Err(Error::Forbidden(_))
        ));
        assert!(matches!(n.registry(&user), Err(Error::Forbidden(_))));
        let shown = n.set_registry(&admin, settings.clone()).await.unwrap();
        assert_eq!(shown.username.as_deref(), Some("ci"));
        assert_eq!(shown.push_address.as_deref(), Some("127.0.0.1:5000"));
        assert!(!format!("{shown:?}").contains(secret));
        assert_eq!(n.registry(&admin).unwrap(), Some(shown));

        // At rest: sealed in the record, and nowhere in the store's file in clear.
        let record = n.store.read(|r| r.cluster_registry()).unwrap().unwrap();
        let sealed = record.sealed_password.clone().unwrap();
        assert!(crate::seal::Sealer::is_sealed(&sealed));
        assert_eq!(
            n.store
                .sealer()
                .open(&ClusterRegistry::seal_context("10.0.0.1:5000"), &sealed)
                .unwrap(),
            secret
        );
        // Bound to its address: moved to another, it does not open.
        assert!(
            n.store
                .sealer()
                .open(&ClusterRegistry::seal_context("10.0.0.2:5000"), &sealed)
                .is_err()
        );
        let file = std::fs::read(dir.path().join("s.redb")).unwrap();
        assert!(!file.windows(secret.len()).any(|w| w == secret.as_bytes()));

        // The same user again without a password keeps it; another user needs one.
        let again = RegistrySettings {
            password: None,
            ..settings.clone()
        };
        n.set_registry(&admin, again).await.unwrap();
        let kept = n.store.read(|r| r.cluster_registry()).unwrap().unwrap();
        assert_eq!(kept.sealed_password, record.sealed_password);
        let other = RegistrySettings {
            username: Some("other".into()),
            password: None,
            ..settings.clone()
        };
        assert!(matches!(
            n.set_registry(&admin, other).await,
            Err(Error::Missing { .. })
        ));
        let bad = RegistrySettings {
            address: "https://r.example.com".into(),
            ..settings
        };
        assert!(matches!(
            n.set_registry(&admin, bad).await,
            Err(Error::Invalid { .. })
        ));

        n.remove_registry(&admin).await.unwrap();
        assert_eq!(n.registry(&admin).unwrap(), None);
        assert!(matches!(
            n.remove_registry(&admin).await,
            Err(Error::NotFound(_))
        ));
    }
}
