//! The bundle of core services that every transport is handed. Built once by `startup`.

use crate::accounts::{Accounts, JwtKeys, Principal, require_admin};
use crate::apps::{Apps, Links};
use crate::config::Config;
use crate::deploy::{DeploySettings, Deployer};
use crate::docker::Engine;
use crate::domain::sshkey::ParsedKey;
use crate::domain::{Error, Result};
use crate::git::Git;
use crate::image_apps::ImageApps;
use crate::images::Images;
use crate::metrics::{Metrics, Readings};
use crate::nodes::Nodes;
use crate::push::PushHandlers;
use crate::routing::{RouteSync, RouteTable};
use crate::runtime::Swarm;
use crate::seal::Sealer;
use crate::store::{Slice, Store};

pub struct Services {
    pub config: Config,
    pub store: Store,
    pub accounts: Accounts,
    pub apps: Apps,
    pub nodes: Nodes,
    /// The image catalog, the node's images, and who may deploy which.
    pub images: Images,
    /// The local node's engine.
    pub engine: Engine,
    /// Host → upstream, written by the deploy engine, read by the router.
    pub routes: RouteTable,
    /// Builds, runs and switches releases; also the push handler and an app resource.
    pub deployer: Deployer,
    /// Apps' git repositories and the pre-receive callback.
    pub git: Git,
    /// Decides every push (accepts by default; the deploy engine replaces it).
    pub push_handler: PushHandlers,
    /// The SSH server's host key (public half), for the API and console.
    pub ssh_host_key: ParsedKey,
    /// Seals secrets kept in the store (config vars, registry credentials).
    pub sealer: Sealer,
    /// What every part counts, for `GET /metrics` and the console's sparklines.
    pub metrics: Metrics,
    /// Pushes and deploys in flight, which a stop lets finish (or cancels).
    pub drain: crate::drain::Drain,
    /// Deploys from image references, and apps' deploy hooks.
    pub image_apps: ImageApps,
}

impl Services {
    /// Opens the store under the data dir and builds every service on it.
    pub fn build(config: Config, links: Links, ssh_host_key: ParsedKey) -> Result<Services> {
        let store = Store::open_sealed(
            &config.store_path(),
            Sealer::load_or_create(&config.secrets_key_path())?,
        )?;
        let metrics = Metrics::new();
        let engine = Engine::new(&config.docker_host);
        let swarm = Swarm::new(
            engine.clone(),
            store.clone(),
            crate::docker::Installation {
                id: crate::deploy::install_id(&config.data_dir)?,
            },
            config.nodes_dir(),
        );
        let nodes = Nodes::new(store.clone(), swarm.clone());
        nodes.ensure_local(&config.region_name, &config.docker_host)?;
        let jwt = JwtKeys::load_or_create(&config.jwt_secret_path())?;
        let sealer = store.sealer().clone();
        let accounts = Accounts::new(store.clone(), config.registration, jwt)?;
        let apps = Apps::new(store.clone(), links, config.limits);
        let images = Images::new(
            store.clone(),
            std::sync::Arc::new(engine.clone()),
            config.image_policy,
        );
        let push_handler = PushHandlers::default();
        let drain = crate::drain::Drain::default();
        let git = Git::new(
            &config.data_dir,
            apps.clone(),
            store.clone(),
            push_handler.clone(),
            metrics.clone(),
            drain.clone(),
        );
        let routes = RouteTable::new(metrics.traffic().clone());
        let deployer = Deployer::new(
            store.clone(),
            std::sync::Arc::new(engine.clone()),
            routes.clone(),
            apps.links().clone(),
            DeploySettings {
                max_concurrent: config.max_concurrent_deploys,
                timeout: std::time::Duration::from_secs(config.deploy_timeout),
                health_timeout: std::time::Duration::from_secs(config.health_timeout),
                run_timeout: std::time::Duration::from_secs(config.run_timeout),
                build_memory_mb: config.build_memory,
                build_cpus: config.build_cpus,
                install_id: crate::deploy::install_id(&config.data_dir)?,
                log_rotation: config.log_rotation.clone(),
                limits: config.limits,
                repos: git.repos().clone(),
            },
            crate::deploy::Shared {
                metrics: metrics.clone(),
                drain: drain.clone(),
                swarm,
            },
        );
        // Removed in this order when an app is deleted: its containers, images and volumes,
        // then its repository, then (last, see below) its routes.
        apps.register_resources(std::sync::Arc::new(deployer.clone()));
        apps.register_resources(git.resources());
        // Last, so that on deletion the routes go only once the containers are gone.
        let route_sync = RouteSync(routes.clone());
        route_sync.load(&apps)?;
        apps.register_resources(std::sync::Arc::new(route_sync));
        push_handler.set(std::sync::Arc::new(deployer.clone()));
        let image_apps = ImageApps::new(
            store.clone(),
            sealer.clone(),
            apps.clone(),
            deployer.clone(),
            git.repos().clone(),
            images.clone(),
        );
        Ok(Services {
            image_apps,
            config,
            store,
            accounts,
            apps,
            nodes,
            images,
            engine,
            routes,
            deployer,
            git,
            push_handler,
            ssh_host_key,
            sealer,
            metrics,
            drain,
        })
    }

    /// The metrics in Prometheus text format, for the admin or the holder of `metrics_token`;
    /// anyone else (other users too) is `Unauthorized`.
    pub fn metrics_text(&self, credential: Option<&str>) -> Result<String> {
        let refused = || {
            Error::Unauthorized(
                "metrics need an admin's token or the metrics_token setting: send 'Authorization: Bearer <token>'"
                    .into(),
            )
        };
        let credential = credential.ok_or_else(refused)?;
        let by_token = self
            .config
            .metrics_token
            .as_deref()
            .is_some_and(|t| token_matches(t, credential));
        if !by_token {
            let admin = match self
                .accounts
                .authenticate(credential, crate::domain::Origin::CLI)
            {
                Ok(who) => who.is_admin(),
                Err(Error::Unauthorized(_)) => false,
                Err(e) => return Err(e),
            };
            if !admin {
                return Err(refused());
            }
        }
        let deployments = self.store.read(|r| r.deployments())?;
        let mut replicas = Vec::new();
        for d in deployments {
            let mut by_type: std::collections::BTreeMap<&str, u64> = Default::default();
            for p in &d.processes {
                *by_type.entry(p.kind.as_str()).or_default() += 1;
            }
            replicas.extend(
                by_type
                    .into_iter()
                    .map(|(kind, n)| (d.app.clone(), kind.to_string(), n)),
            );
        }
        let store_bytes = std::fs::metadata(self.config.store_path()).map_or(0, |m| m.len());
        Ok(self.metrics.render(&Readings {
            replicas,
            store_bytes,
        }))
    }

    /// Turns the cluster on (admins; see `Nodes::turn_on`) and starts moving every running app
    /// into it, one at a time in the background (see `Deployer::move_into_cluster`). The
    /// cluster, and how many apps still run as containers. The API and the console call this.
    pub async fn enable_cluster(
        &self,
        who: &Principal,
        advertise: &str,
    ) -> Result<(crate::nodes::ClusterInfo, usize)> {
        let info = self.nodes.enable_cluster(who, advertise).await?;
        let moving = self.deployer.move_into_cluster(Some(who.clone()))?;
        Ok((info, moving))
    }

    /// Deletes a user and everything they own (admins only; not oneself).
    pub async fn delete_user(&self, who: &Principal, id_or_name: &str) -> Result<()> {
        require_admin(who)?;
        let user = self.accounts.find_user(who, id_or_name)?;
        if user.id == who.id() {
            return Err(Error::Forbidden(
                "you cannot delete your own account".into(),
            ));
        }
        for inst in self
            .apps
            .list(
                &Principal {
                    user: user.clone(),
                    token_hash: None,
                    origin: who.origin,
                },
                false,
                Slice::ALL,
            )?
            .items
        {
            self.apps.delete(who, &inst.name).await?;
        }
        let uid = user.id;
        let audit = who.audit(
            crate::domain::AuditAction::UserDelete,
            None,
            format!("{} (#{})", user.username, user.id),
        );
        self.store
            .write_async(move |w| {
                w.delete_user(uid)?;
                w.audit(audit)
            })
            .await
    }
}

/// Compares the SHA-256 of both in constant time: neither the content nor the length of the
/// expected token shows in the time taken.
fn token_matches(expected: &str, given: &str) -> bool {
    use subtle::ConstantTimeEq;
    let (a, b) = (
        crate::accounts::hash_token(expected),
        crate::accounts::hash_token(given),
    );
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}
