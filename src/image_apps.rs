//! Image apps and deploy hooks: deploying an app from an image reference (with a registry login
//! kept sealed per app), creating an app from an image (the panel's `/api/instances/deploy`),
//! and each app's deploy hook for CI — a secret URL, or a GitHub-style signed request — that
//! redeploys the app's image (a new tag when the request names one) or the head of its deploy
//! branch.
//!
//! Deploys run in a task of their own: a client that hangs up does not cut a deploy short
//! (half-started processes would be left for reconcile).

use crate::accounts::{Principal, require_admin};
use crate::apps::Apps;
use crate::deploy::{Deployer, ImageDeploy, Settings};
use crate::domain::{
    self, AppName, AuditAction, Channel, DeployHook, Error, ImageRef, ImageSource, Instance,
    Origin, RegistryLogin, Release, Result, StoredLogin,
};
use crate::git::Repos;
use crate::images::Images;
use crate::seal::Sealer;
use crate::store::{Store, Writer};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Who a hook's deploys are recorded as.
pub const HOOK_USER: &str = "deploy-hook";

/// An image deploy as a transport reads it.
#[derive(Debug, Default, Clone)]
pub struct DeployRequest {
    pub image: String,
    /// A login for the image's registry; an empty username forgets the stored one, and the
    /// stored user without a password keeps the stored password.
    pub registry_username: Option<String>,
    pub registry_password: Option<String>,
    /// The port the image serves on; else one it exposes, else the app's.
    pub port: Option<u16>,
}

/// The panel's `/api/instances/deploy` body, as text: every field is required.
#[derive(Debug, Clone)]
pub struct PanelDeploy<'a> {
    pub image: &'a str,
    pub memory: &'a str,
    pub cpu: &'a str,
    pub ports: &'a str,
    pub node_id: &'a str,
    pub name: &'a str,
    pub user: &'a str,
    pub primary: &'a str,
    /// Optional, beyond the document: a login for a private registry.
    pub registry_username: Option<&'a str>,
    pub registry_password: Option<&'a str>,
}

/// A finished deploy: the release it made and the build record holding its log.
#[derive(Debug, Clone)]
pub struct Deployed {
    pub app: String,
    pub release: Release,
    /// The build record (its log is the pull's or the build's output); `None` for a git deploy
    /// whose build id the release names.
    pub build: Option<u64>,
}

/// A new deploy hook, shown once: the token of the secret URL and the HMAC key.
#[derive(Debug, Clone)]
pub struct HookSecrets {
    pub token: String,
    pub secret: String,
}

#[derive(Clone)]
pub struct ImageApps {
    store: Store,
    sealer: Sealer,
    apps: Apps,
    deployer: Deployer,
    repos: Repos,
    /// The catalog and `image_policy`: which references a user may deploy.
    images: Images,
}

impl ImageApps {
    pub fn new(
        store: Store,
        sealer: Sealer,
        apps: Apps,
        deployer: Deployer,
        repos: Repos,
        images: Images,
    ) -> ImageApps {
        ImageApps {
            store,
            sealer,
            apps,
            deployer,
            repos,
            images,
        }
    }

    /// The one place an image reference is accepted for a deploy by `who`: it must parse, and
    /// the installation's image policy must let `who` deploy it (admins: anything; others: the
    /// catalog's images, or anything under `image_policy = "any"`). Without a tag, `:latest`.
    pub fn accept_image(&self, who: &Principal, reference: &str) -> Result<ImageRef> {
        Ok(self.images.check_deployable(who, reference)?.or_latest())
    }

    /// Deploys `req.image` as the next release of `app`. The image and login are kept for the
    /// app's hook once the deploy succeeds.
    pub async fn deploy(&self, who: &Principal, app: &str, req: DeployRequest) -> Result<Deployed> {
        let inst = self.apps.get(who, app)?;
        let image = self.accept_image(who, &req.image)?;
        let login = self.login_for(&inst.name, &image, &req)?;
        self.deploy_pulled(&inst, who, &who.user.username, image, login, req.port)
            .await
    }

    /// The panel's deploy: creates the app for `user` with its resources, then deploys the image.
    /// A first deploy that fails removes the app again, so the same request can be retried.
    pub async fn create_and_deploy(&self, who: &Principal, p: PanelDeploy<'_>) -> Result<Instance> {
        require_admin(who)?;
        let required = [
            ("image", p.image),
            ("memory", p.memory),
            ("cpu", p.cpu),
            ("ports", p.ports),
            ("nodeId", p.node_id),
            ("name", p.name),
            ("user", p.user),
            ("primary", p.primary),
        ];
        if let Some((field, _)) = required.iter().find(|(_, v)| v.trim().is_empty()) {
            return Err(Error::missing(field));
        }
        let image = self.accept_image(who, p.image)?;
        let login = match p.registry_username.map(str::trim).filter(|u| !u.is_empty()) {
            None => None,
            Some(username) => Some(RegistryLogin {
                username: username.to_string(),
                password: p
                    .registry_password
                    .filter(|pw| !pw.is_empty())
                    .ok_or_else(|| Error::missing("registry_password"))?
                    .to_string(),
            }),
        };
        let memory_mb = parse_memory(p.memory)?;
        let cpu: f64 = p
            .cpu
            .trim()
            .parse()
            .map_err(|_| Error::invalid("cpu", "'cpu' must be a number of cores, like 0.5"))?;
        domain::container_port_of_mapping(p.ports)?;
        let port = domain::parse_port("primary", p.primary)?;
        let node = p
            .node_id
            .trim()
            .parse::<u64>()
            .ok()
            .and_then(|id| self.store.read(|r| r.node(id)).ok().flatten())
            .ok_or_else(|| Error::invalid("nodeId", format!("no node with id '{}'", p.node_id)))?;
        let owner = self
            .store
            .read(|r| match p.user.trim().parse::<u64>() {
                Ok(id) => r.user(id),
                Err(_) => r.user_by_name(p.user.trim()),
            })?
            .ok_or_else(|| Error::invalid("user", format!("no user '{}'", p.user)))?;
        let owner = Principal {
            user: owner,
            token_hash: None,
            origin: who.origin,
        };
        let inst = self
            .apps
            .create(&owner, Some(p.name), Some(&node.region_id.to_string()))
            .await?;
        let made = async {
            let node_id = node.id;
            let name = inst.name.clone();
            self.store
                .write_async(move |w| {
                    let mut i = w
                        .instance(&name)?
                        .ok_or_else(|| Error::NotFound(format!("app '{name}' was deleted")))?;
                    i.node_id = node_id;
                    w.put_instance(&i)
                })
                .await?;
            let inst = self.apps.get(who, &inst.name)?;
            let settings = Settings {
                memory_mb: Some(memory_mb),
                cpu: Some(cpu),
                ..Default::default()
            };
            let inst = self.deployer.update_settings(&inst, who, settings).await?;
            self.deploy_pulled(&inst, who, &who.user.username, image, login, Some(port))
                .await
        }
        .await;
        match made {
            Ok(_) => self.apps.get(who, &inst.name),
            Err(e) => {
                if let Err(undo) = self.apps.delete(who, &inst.name).await {
                    tracing::error!(app = %inst.name, error = %undo, "removing an app whose first deploy failed");
                }
                Err(e)
            }
        }
    }

    /// Pulls and releases `image` in a task of its own; on success the app's image source
    /// becomes `image` with `login`.
    async fn deploy_pulled(
        &self,
        inst: &Instance,
        who: &Principal,
        user: &str,
        image: ImageRef,
        login: Option<RegistryLogin>,
        port: Option<u16>,
    ) -> Result<Deployed> {
        let stored = login
            .as_ref()
            .map(|l| self.seal_login(&inst.name, &image, l));
        let deployer = self.deployer.clone();
        let (app, user) = (inst.name.clone(), user.to_string());
        let deploy = ImageDeploy {
            audit: Some(who.audit(
                AuditAction::AppDeploy,
                Some(&inst.name),
                format!("image {image} (by {user})"),
            )),
            image: image.clone(),
            login,
            port,
        };
        let done = tokio::spawn(async move { deployer.deploy_image(&app, &user, deploy).await })
            .await
            .map_err(|e| Error::internal(format!("deploy task: {e}")))??;
        let release = done.result?;
        let source = ImageSource {
            app: inst.name.clone(),
            image,
            login: stored,
        };
        self.store
            .write_async(move |w| w.put_image_source(&source))
            .await?;
        Ok(Deployed {
            app: inst.name.clone(),
            release,
            build: Some(done.build),
        })
    }

    /// The login to pull `image` with: the one in the request, else the app's stored one when it
    /// is for the same registry.
    fn login_for(
        &self,
        app: &str,
        image: &ImageRef,
        req: &DeployRequest,
    ) -> Result<Option<RegistryLogin>> {
        match req.registry_username.as_deref().map(str::trim) {
            Some("") => Ok(None),
            Some(username) => match req.registry_password.as_deref().filter(|p| !p.is_empty()) {
                Some(password) => Ok(Some(RegistryLogin {
                    username: username.to_string(),
                    password: password.to_string(),
                })),
                // The stored login's user again (as the console's form shows it): its password.
                None => match self.stored_login(app, image)? {
                    Some(stored) if stored.username == username => Ok(Some(stored)),
                    _ => Err(Error::missing("registry_password")),
                },
            },
            None => self.stored_login(app, image),
        }
    }

    fn stored_login(&self, app: &str, image: &ImageRef) -> Result<Option<RegistryLogin>> {
        let registry = image.registry();
        let Some(login) = self
            .store
            .read(|r| r.image_source(app))?
            .and_then(|s| s.login)
            .filter(|l| l.registry == registry)
        else {
            return Ok(None);
        };
        let password = self.sealer.open(
            &StoredLogin::seal_context(app, registry),
            &login.sealed_password,
        )?;
        Ok(Some(RegistryLogin {
            username: login.username,
            password,
        }))
    }

    fn seal_login(&self, app: &str, image: &ImageRef, login: &RegistryLogin) -> StoredLogin {
        let registry = image.registry().to_string();
        StoredLogin {
            sealed_password: self
                .sealer
                .seal(&StoredLogin::seal_context(app, &registry), &login.password),
            registry,
            username: login.username.clone(),
        }
    }

    /// The image an app deploys and the registry user it pulls as (never the password).
    pub fn source(&self, who: &Principal, app: &str) -> Result<Option<ImageSource>> {
        let inst = self.apps.get(who, app)?;
        self.store.read(|r| r.image_source(&inst.name))
    }

    /// Makes a new deploy hook for the app (the previous one stops working).
    pub async fn rotate_hook(&self, who: &Principal, app: &str) -> Result<HookSecrets> {
        let inst = self.apps.get(who, app)?;
        let secrets = HookSecrets {
            token: hex::encode(rand::random::<[u8; 32]>()),
            secret: hex::encode(rand::random::<[u8; 32]>()),
        };
        let hook = DeployHook {
            app: inst.name.clone(),
            token_hash: crate::accounts::hash_token(&secrets.token),
            sealed_secret: self
                .sealer
                .seal(&DeployHook::seal_context(&inst.name), &secrets.secret),
            created_by: who.user.username.clone(),
            created_at: domain::now(),
        };
        self.change_hook(who, &inst.name, "created or rotated", move |w| {
            w.put_deploy_hook(&hook)
        })
        .await?;
        Ok(secrets)
    }

    /// Whether the app has a hook, and since when.
    pub fn hook(&self, who: &Principal, app: &str) -> Result<Option<DeployHook>> {
        let inst = self.apps.get(who, app)?;
        self.store.read(|r| r.deploy_hook(&inst.name))
    }

    /// Removes the app's hook.
    pub async fn delete_hook(&self, who: &Principal, app: &str) -> Result<()> {
        let inst = self.apps.get(who, app)?;
        let name = inst.name.clone();
        self.change_hook(who, &inst.name, "removed", move |w| {
            w.delete_deploy_hook(&name)
        })
        .await
    }

    /// Writes `change` to `app`'s hook in one transaction with its audit entry (`what` was done).
    async fn change_hook(
        &self,
        who: &Principal,
        app: &str,
        what: &str,
        change: impl FnOnce(&mut Writer) -> Result<()> + Send + 'static,
    ) -> Result<()> {
        let entry = who.audit(AuditAction::AppHook, Some(app), what);
        self.store
            .write_async(move |w| {
                change(w)?;
                w.audit(entry)
            })
            .await
    }

    /// A call of the secret URL `/v1/hooks/{token}`.
    pub async fn hook_by_token(&self, token: &str, body: &[u8]) -> Result<Deployed> {
        let refused = || Error::Unauthorized("unknown or revoked deploy hook".into());
        let hash = crate::accounts::hash_token(token.trim());
        let app = self
            .store
            .read(|r| r.app_of_hook(&hash))?
            .ok_or_else(refused)?;
        let hook = self
            .store
            .read(|r| r.deploy_hook(&app))?
            .ok_or_else(refused)?;
        if !bool::from(hook.token_hash.as_bytes().ct_eq(hash.as_bytes())) {
            return Err(refused());
        }
        self.redeploy(&app, body).await
    }

    /// A signed call of `/v1/hooks/app/{name}`: `signature` is the `X-Hub-Signature-256` header,
    /// `sha256=<hex HMAC-SHA256 of the body under the hook's secret>`.
    pub async fn hook_signed(
        &self,
        app: &str,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<Deployed> {
        let refused = || Error::Unauthorized("bad or missing X-Hub-Signature-256".into());
        let name = AppName::parse(app).map_err(|_| refused())?;
        let hook = self
            .store
            .read(|r| r.deploy_hook(name.as_str()))?
            .ok_or_else(refused)?;
        let secret = self
            .sealer
            .open(&DeployHook::seal_context(&hook.app), &hook.sealed_secret)?;
        let given = signature
            .and_then(|s| s.trim().strip_prefix("sha256="))
            .and_then(|h| hex::decode(h).ok())
            .ok_or_else(refused)?;
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
            .map_err(|_| Error::internal("HMAC key"))?;
        mac.update(body);
        // `verify_slice` compares in constant time.
        mac.verify_slice(&given).map_err(|_| refused())?;
        self.redeploy(&hook.app, body).await
    }

    /// What a hook does: an image app deploys its image again (at `{"tag": …}` when the body
    /// names one); a git app deploys the head of its deploy branch.
    async fn redeploy(&self, app: &str, body: &[u8]) -> Result<Deployed> {
        let tag = hook_tag(body)?;
        let inst = self
            .store
            .read(|r| r.instance(app))?
            .ok_or_else(|| Error::NotFound(format!("no app named '{app}'")))?;
        let owner = self
            .store
            .read(|r| r.user(inst.owner_id))?
            .ok_or_else(|| Error::internal(format!("the owner of {app} is missing")))?;
        // The hook's caller proves only the app's secret: the entry is the owner's, over the API.
        let owner = Principal {
            user: owner,
            token_hash: None,
            origin: Origin {
                channel: Channel::Api,
                address: None,
            },
        };
        let source = self.store.read(|r| r.image_source(app))?;
        let current_from_git = match inst.release {
            Some(v) => self
                .store
                .read(|r| r.release(app, v))?
                .is_some_and(|r| r.source_image.is_none()),
            None => false,
        };
        match source {
            Some(source) if !current_from_git => {
                let image = match &tag {
                    Some(t) => source.image.with_tag(t)?,
                    None => source.image.clone(),
                };
                let image = self.accept_image(&owner, &image.to_string())?;
                let login = self.stored_login(app, &image)?;
                self.deploy_pulled(&inst, &owner, HOOK_USER, image, login, None)
                    .await
            }
            _ => {
                if tag.is_some() {
                    return Err(Error::invalid(
                        "tag",
                        format!(
                            "{app} deploys from git: a hook deploys its branch head, not a tag"
                        ),
                    ));
                }
                self.deploy_branch_head(&inst, &owner).await
            }
        }
    }

    async fn deploy_branch_head(&self, inst: &Instance, owner: &Principal) -> Result<Deployed> {
        let dir = self.repos.dir(&AppName::parse(&inst.name)?);
        let branch = inst.deploy_branch.as_str().to_string();
        let mut head = branch_head(&dir, &branch).await?;
        let mut deployed_branch = branch.clone();
        if head.is_none() && branch == "main" {
            head = branch_head(&dir, "master").await?;
            deployed_branch = "master".into();
        }
        let sha = head.ok_or_else(|| {
            Error::Conflict(format!(
                "nothing has been pushed to '{branch}' of {} yet",
                inst.name
            ))
        })?;
        let audit = Some(owner.audit(
            AuditAction::AppDeploy,
            Some(&inst.name),
            format!("{} by the deploy hook", domain::short_commit(&sha)),
        ));
        let deployer = self.deployer.clone();
        let app = inst.name.clone();
        let release = tokio::spawn(async move {
            deployer
                .deploy_commit(
                    &app,
                    HOOK_USER,
                    &deployed_branch,
                    &sha,
                    &dir,
                    &[],
                    None,
                    audit,
                )
                .await
        })
        .await
        .map_err(|e| Error::internal(format!("deploy task: {e}")))??;
        Ok(Deployed {
            app: inst.name.clone(),
            build: release.build_id,
            release,
        })
    }
}

/// The `tag` a hook's JSON body names, if any; an empty body names none.
fn hook_tag(body: &[u8]) -> Result<Option<String>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|_| Error::invalid("body", "a hook's body is empty or a JSON object"))?;
    match v.get("tag") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(t)) if !t.trim().is_empty() => Ok(Some(t.trim().into())),
        Some(_) => Err(Error::invalid("tag", "'tag' must be a non-empty string")),
    }
}

/// The commit a branch of a bare repository points at, if it exists.
async fn branch_head(repo: &std::path::Path, branch: &str) -> Result<Option<String>> {
    let out = crate::git::repo::git_command()
        .arg("--git-dir")
        .arg(repo)
        .args(["rev-parse", "--verify", "--quiet"])
        .arg(format!("refs/heads/{branch}^{{commit}}"))
        .output()
        .await
        .map_err(|e| Error::internal(format!("cannot run git: {e}")))?;
    Ok(out
        .status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty()))
}

/// The panel's memory: MiB as a number (`512`), or with a unit (`512m`, `512MB`, `1g`, `1GB`).
fn parse_memory(s: &str) -> Result<u32> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (digits, factor) = match t.strip_suffix('g') {
        Some(d) => (d, 1024),
        None => (t.strip_suffix('m').unwrap_or(t), 1),
    };
    digits
        .trim()
        .parse::<u32>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .ok_or_else(|| Error::invalid("memory", "'memory' must be MiB, like 512, 512m or 1g"))
        .and_then(domain::check_memory_mb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hook_body_may_name_a_tag_and_nothing_else_is_required() {
        assert_eq!(hook_tag(b"").unwrap(), None);
        assert_eq!(hook_tag(b"{}").unwrap(), None);
        assert_eq!(hook_tag(br#"{"tag":"2"}"#).unwrap().as_deref(), Some("2"));
        assert!(hook_tag(b"tag=2").is_err());
        assert!(hook_tag(br#"{"tag":3}"#).is_err());
    }

    #[test]
    fn panel_memory_is_mib_with_an_optional_unit() {
        assert_eq!(parse_memory("512").unwrap(), 512);
        assert_eq!(parse_memory("256m").unwrap(), 256);
        assert_eq!(parse_memory("1GB").unwrap(), 1024);
        assert!(parse_memory("lots").is_err());
    }
}
