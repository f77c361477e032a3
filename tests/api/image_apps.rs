//! Image apps and deploy hooks against a real registry (Debian's `docker-registry`, started by
//! each test on 127.0.0.1) and real Docker: a busybox image built here, pushed, then deployed
//! by reference and served through the app router.

use crate::console::console_sign_in;
use crate::dockerapp::*;
use crate::helpers::*;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;
use std::process::{Child, Command, Stdio};

/// Label on every image these tests build, so they can be found and removed.
const TEST_LABEL: &str = "scalefog-test=image-apps";

/// A `docker-registry` serving on a free loopback port from a temp dir, stopped when dropped.
pub(crate) struct Registry {
    host: String,
    port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Starts one; with `login`, it wants HTTP basic auth (htpasswd, bcrypt) for everything.
    pub(crate) fn start(login: Option<(&str, &str)>) -> Registry {
        Registry::start_at("127.0.0.1", free_port(), login)
    }

    /// [`Registry::start`] listening on `host:port` (an address of this machine).
    pub(crate) fn start_at(host: &str, port: u16, login: Option<(&str, &str)>) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let mut config = format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {host}:{port}\n",
            dir.path().join("data").display()
        );
        if let Some((user, password)) = login {
            let hash = bcrypt::hash(password, 5).unwrap();
            let htpasswd = dir.path().join("htpasswd");
            std::fs::write(&htpasswd, format!("{user}:{hash}\n")).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry is installed");
        let registry = Registry {
            host: host.to_string(),
            port,
            child,
            _dir: dir,
        };
        let ready = (0..200).any(|_| {
            let up = std::net::TcpStream::connect((host, port)).is_ok();
            if !up {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            up
        });
        assert!(ready, "docker-registry did not start on {host}:{port}");
        registry
    }

    pub(crate) fn repo(&self, name: &str) -> String {
        format!("{}/{name}", self.address())
    }

    /// `host:port`, as image names start.
    pub(crate) fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Builds a busybox httpd image serving `page` on port 8080 (its `EXPOSE`), tags it `reference`,
/// pushes it (logged in when `login`), and removes it locally so that a deploy must pull it.
pub(crate) fn push_image(reference: &str, page: &str, login: Option<(&str, &str)>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("www")).unwrap();
    std::fs::copy("/bin/busybox", dir.path().join("busybox")).unwrap();
    std::fs::write(dir.path().join("www/index.html"), page).unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        dockerfile(
            "EXPOSE 8080\n",
            r#"CMD ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]"#,
        ),
    )
    .unwrap();
    let built = Command::new("docker")
        .args(["build", "-q", "--label", TEST_LABEL, "-t", reference, "."])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    // A private login goes into a config dir of its own, never the user's.
    let config = tempfile::tempdir().unwrap();
    let config_dir = config.path().to_str().unwrap();
    if let Some((user, password)) = login {
        let registry = reference.split('/').next().unwrap();
        let mut child = Command::new("docker")
            .args([
                "--config",
                config_dir,
                "login",
                "-u",
                user,
                "--password-stdin",
                registry,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(password.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "docker login");
    }
    let pushed = Command::new("docker")
        .args(["--config", config_dir, "push", reference])
        .output()
        .unwrap();
    assert!(
        pushed.status.success(),
        "{}",
        String::from_utf8_lossy(&pushed.stderr)
    );
    docker(&["rmi", "--no-prune", reference]);
}

/// Removes every image these tests built or pulled under `repo`.
pub(crate) struct ImageCleanup(pub(crate) String);

impl Drop for ImageCleanup {
    fn drop(&mut self) {
        let refs = docker(&["images", "--format", "{{.Repository}}:{{.Tag}}", &self.0]);
        for r in refs.split_whitespace() {
            docker(&["rmi", "-f", "--no-prune", r]);
        }
    }
}

impl TestApp {
    /// A GET of `/` of `app` through the app router: status and body.
    pub(crate) async fn routed(&self, app: &str) -> (StatusCode, String) {
        let r = self
            .client
            .get(format!("http://127.0.0.1:{}/", self.proxy_port))
            .header("Host", format!("{app}.localhost"))
            .send()
            .await
            .expect("router answers");
        (r.status(), r.text().await.unwrap().trim().to_string())
    }

    async fn deploy_image(&self, token: &str, app: &str, body: &Value) -> reqwest::Response {
        self.post_json(&format!("/v1/instances/{app}/deploys"), body, Some(token))
            .await
    }

    async fn release_count(&self, token: &str, app: &str) -> usize {
        let r: Value = self.releases(token, app).await.json().await.unwrap();
        r.as_array().unwrap().len()
    }
}

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn an_image_deploys_through_the_panel_and_v1_serves_through_the_router_and_rolls_back() {
    let registry = Registry::start(None);
    let repo = registry.repo(&unique("web"));
    let _images = ImageCleanup(repo.clone());
    push_image(&format!("{repo}:1"), "one", None);
    push_image(&format!("{repo}:2"), "two", None);
    let app = spawn_app_with(|c| c.health_timeout = 10).await;
    let _cleanup = DockerCleanup::of(&app);
    let admin = app.user("admin").await;
    let bob = app.user("bob").await;
    let name = unique("img");

    let form = [
        ("image", format!("{repo}:1")),
        ("memory", "128".to_string()),
        ("cpu", "0.5".to_string()),
        ("ports", "80:8080".to_string()),
        ("nodeId", "1".to_string()),
        ("name", name.clone()),
        ("user", "bob".to_string()),
        ("primary", "8080".to_string()),
    ];
    // Every field of the panel's document is required, and a missing one is named.
    let without_primary: Vec<(&str, &str)> =
        form[..7].iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = app
        .post_form(
            "/api/instances/deploy",
            &without_primary,
            Some(&admin.token),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_body(r).await["field"], "primary");
    // Only an admin uses the panel.
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = app
        .post_form("/api/instances/deploy", &pairs, Some(&bob.token))
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    let r = app
        .post_form("/api/instances/deploy", &pairs, Some(&admin.token))
        .await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
    let inst: Value = r.json().await.unwrap();
    assert_eq!(inst["name"], name.as_str());
    assert_eq!(inst["owner"], "bob");
    assert_eq!(inst["memory"], 128);
    assert_eq!(app.routed(&name).await, (StatusCode::OK, "one".into()));

    // Users deploy only what the admins' catalog holds (`image_policy = "catalog"`, the default):
    // until the repository is in it, bob's deploy is refused with the reason.
    let r = app
        .deploy_image(&bob.token, &name, &json!({"image": format!("{repo}:2")}))
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let e = error_body(r).await;
    assert!(e["message"].as_str().unwrap().contains("catalog"), "{e}");
    let r = app
        .post_json(
            "/v1/images",
            &json!({"reference": repo, "description": "the test app, every tag"}),
            Some(&admin.token),
        )
        .await;
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());

    // The owner deploys the next tag through /v1; the pull's progress is the build's log.
    let r = app
        .deploy_image(&bob.token, &name, &json!({"image": format!("{repo}:2")}))
        .await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
    let done: Value = r.json().await.unwrap();
    assert_eq!(done["release"], "v2");
    assert_eq!(done["source_image"], format!("{repo}:2"));
    assert_eq!(app.routed(&name).await, (StatusCode::OK, "two".into()));
    let log: Value = app
        .build_log(&bob.token, &name, done["build_id"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    let log = log["log"].as_str().unwrap();
    assert!(log.contains(&format!("-----> Pulling {repo}:2")), "{log}");
    assert!(
        log.contains("Pull complete") || log.contains("Downloaded newer image"),
        "{log}"
    );

    // Another user can neither deploy to it nor take its hook.
    let r = app
        .deploy_image(&admin.token, "no-such-app", &json!({"image": "x:1"}))
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let carol = app.user("carol").await;
    let r = app
        .deploy_image(&carol.token, &name, &json!({"image": format!("{repo}:1")}))
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = app
        .post_json(
            &format!("/v1/instances/{name}/hook"),
            &json!({}),
            Some(&carol.token),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // A tag that does not exist is a clear error with Docker's reason; v2 keeps serving.
    let r = app
        .deploy_image(&bob.token, &name, &json!({"image": format!("{repo}:nope")}))
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let e = error_body(r).await;
    let message = e["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("cannot pull {repo}:nope")),
        "{message}"
    );
    assert!(
        message.contains("not found") || message.contains("unknown"),
        "{message}"
    );
    let r = app
        .deploy_image(&bob.token, &name, &json!({"image": "Not An Image"}))
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_body(r).await["field"], "image");
    assert_eq!(app.routed(&name).await, (StatusCode::OK, "two".into()));
    assert_eq!(app.release_count(&bob.token, &name).await, 2);

    // Rollback is a git app's rollback.
    let r = app.rollback(&bob.token, &name, &json!({})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(app.routed(&name).await, (StatusCode::OK, "one".into()));
    let releases: Value = app.releases(&bob.token, &name).await.json().await.unwrap();
    assert_eq!(releases[0]["description"], "rollback to v1");
    assert_eq!(releases[2]["description"], format!("deploy image {repo}:1"));

    // The hook: a secret URL, shown once, redeploying a tag named in the body.
    let r = app
        .post_json(
            &format!("/v1/instances/{name}/hook"),
            &json!({}),
            Some(&bob.token),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let hook: Value = r.json().await.unwrap();
    let token = hook["token"].as_str().unwrap().to_string();
    let secret = hook["secret"].as_str().unwrap().to_string();
    assert!(
        hook["url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/v1/hooks/{token}"))
    );
    let shown: Value = app
        .get(&format!("/v1/instances/{name}/hook"), Some(&bob.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown["enabled"], true);
    assert!(!shown.to_string().contains(&token) && !shown.to_string().contains(&secret));

    let r = app
        .post_json(&format!("/v1/hooks/{token}"), &json!({"tag": "2"}), None)
        .await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
    assert_eq!(app.routed(&name).await, (StatusCode::OK, "two".into()));
    let r = app
        .post_json(&format!("/v1/hooks/{}", "0".repeat(64)), &json!({}), None)
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // The signed form: GitHub's X-Hub-Signature-256 over the exact body.
    let body = br#"{"tag":"1"}"#.to_vec();
    let signed = |sig: String, body: Vec<u8>| {
        app.client
            .post(app.url(&format!("/v1/hooks/app/{name}")))
            .header("Content-Type", "application/json")
            .header("X-Hub-Signature-256", sig)
            .body(body)
            .send()
    };
    let before = app.release_count(&bob.token, &name).await;
    let r = signed(sign("not-the-secret", &body), body.clone())
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = signed(sign(&secret, b"{}"), body.clone()).await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "a signature of another body"
    );
    assert_eq!(
        app.release_count(&bob.token, &name).await,
        before,
        "a refused hook does nothing"
    );
    assert_eq!(app.routed(&name).await, (StatusCode::OK, "two".into()));
    let r = signed(sign(&secret, &body), body.clone()).await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
    assert_eq!(app.routed(&name).await, (StatusCode::OK, "one".into()));

    // Rotating revokes the old token.
    let r = app
        .post_json(
            &format!("/v1/instances/{name}/hook"),
            &json!({}),
            Some(&bob.token),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = app
        .post_json(&format!("/v1/hooks/{token}"), &json!({}), None)
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // The console's card deploys the same way, showing the image the app deploys now.
    let console = console_sign_in(&app, "bob", &bob.password).await;
    let page = console
        .get(&app, &format!("/console/apps/{name}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("Deploy an image"), "the image card");
    assert!(
        page.contains(&format!("image <span class=\"mono\">{repo}:1</span>")),
        "releases and builds name the image they came from"
    );
    assert!(
        page.contains(&format!("value=\"{repo}:1\"")),
        "the current image is filled in"
    );
    let before = app.release_count(&bob.token, &name).await;
    let r = console
        .post(
            &app,
            &format!("/console/apps/{name}/image"),
            &[("csrf", &console.csrf), ("image", &format!("{repo}:2"))],
        )
        .await;
    let page = console.follow(&app, r).await;
    assert!(
        page.contains(&format!("Deployed {repo}:2 as v{} of {name}.", before + 1))
            || page.contains("Deploying an image to"),
        "the outcome, or the progress banner while it runs"
    );
    let mut served = String::new();
    for _ in 0..600 {
        served = app.routed(&name).await.1;
        if served == "two" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(served, "two", "the console's deploy serves");
    assert_eq!(app.release_count(&bob.token, &name).await, before + 1);

    let r = app.delete_app(&bob.token, &name).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let left = docker(&["images", "-q", "--filter", &_cleanup.filter()]);
    assert!(left.is_empty(), "images left after delete: {left}");
    let left = docker(&["images", "-q", &repo]);
    assert!(left.is_empty(), "pulled references left: {left}");
}

#[tokio::test]
async fn a_private_registry_needs_the_login_which_is_kept_sealed_and_reused_by_the_hook() {
    let (user, password) = ("ci", "s3cret-registry-pass");
    let registry = Registry::start(Some((user, password)));
    let repo = registry.repo(&unique("private"));
    let _images = ImageCleanup(repo.clone());
    push_image(&format!("{repo}:1"), "private one", Some((user, password)));
    push_image(&format!("{repo}:2"), "private two", Some((user, password)));
    let app = spawn_app_with(|c| c.health_timeout = 10).await;
    let _cleanup = DockerCleanup::of(&app);
    let alice = app.user("alice").await;
    let name = unique("priv");
    app.create_app(&alice.token, &name).await;

    let r = app
        .deploy_image(&alice.token, &name, &json!({"image": format!("{repo}:1")}))
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let message = error_body(r).await["message"].as_str().unwrap().to_string();
    assert!(
        message.contains("no basic auth credentials") || message.contains("unauthorized"),
        "{message}"
    );
    let r = app
        .deploy_image(
            &alice.token,
            &name,
            &json!({"image": format!("{repo}:1"), "registry_username": user, "registry_password": "wrong"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        app.get_app(&alice.token, &name)
            .await
            .json::<Value>()
            .await
            .unwrap()["status"],
        "failed"
    );

    let r = app
        .deploy_image(
            &alice.token,
            &name,
            &json!({"image": format!("{repo}:1"), "registry_username": user, "registry_password": password}),
        )
        .await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
    assert_eq!(
        app.routed(&name).await,
        (StatusCode::OK, "private one".into())
    );

    // The login is shown by name only, and is not in the store file in clear.
    let shown: Value = app
        .get(&format!("/v1/instances/{name}/image"), Some(&alice.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown["registry_username"], user);
    assert_eq!(shown["image"], format!("{repo}:1"));
    assert!(!shown.to_string().contains(password));
    let store = std::fs::read(app.data_dir.join("scalefog.redb")).unwrap_or_default();
    assert!(!store.is_empty(), "the store file is where the test looks");
    assert!(
        !store
            .windows(password.len())
            .any(|w| w == password.as_bytes())
    );

    // The hook pulls the next tag with the stored login.
    let hook: Value = app
        .post_json(
            &format!("/v1/instances/{name}/hook"),
            &json!({}),
            Some(&alice.token),
        )
        .await
        .json()
        .await
        .unwrap();
    let r = app
        .post_json(
            &format!("/v1/hooks/{}", hook["token"].as_str().unwrap()),
            &json!({"tag": "2"}),
            None,
        )
        .await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
    assert_eq!(
        app.routed(&name).await,
        (StatusCode::OK, "private two".into())
    );
    let r = app.delete_app(&alice.token, &name).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    // The panel takes a login too (alice, the first account, is the admin).
    let other = unique("panel");
    let image = format!("{repo}:2");
    let mut form = vec![
        ("image", image.as_str()),
        ("memory", "64m"),
        ("cpu", "0.25"),
        ("ports", "8080"),
        ("nodeId", "1"),
        ("name", other.as_str()),
        ("user", "alice"),
        ("primary", "8080"),
        ("registry_username", user),
    ];
    let r = app
        .post_form("/api/instances/deploy", &form, Some(&alice.token))
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_body(r).await["field"], "registry_password");
    form.push(("registry_password", password));
    let r = app
        .post_form("/api/instances/deploy", &form, Some(&alice.token))
        .await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
    assert_eq!(
        app.routed(&other).await,
        (StatusCode::OK, "private two".into())
    );
    let r = app.delete_app(&alice.token, &other).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
}

fn git(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_git_apps_hook_deploys_the_head_of_its_deploy_branch() {
    let app = spawn_app_with(|c| c.health_timeout = 10).await;
    let _cleanup = DockerCleanup::of(&app);
    let alice = app.user("alice").await;
    let name = unique("gitapp");
    app.create_app(&alice.token, &name).await;
    let hook: Value = app
        .post_json(
            &format!("/v1/instances/{name}/hook"),
            &json!({}),
            Some(&alice.token),
        )
        .await
        .json()
        .await
        .unwrap();
    let url = format!("/v1/hooks/{}", hook["token"].as_str().unwrap());
    let r = app.post_json(&url, &json!({}), None).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert!(
        error_body(r).await["message"]
            .as_str()
            .unwrap()
            .contains("nothing has been pushed")
    );

    // A commit lands on main without deploying (the app repository's own hook skipped), as
    // when a push's deploy is left to CI.
    let work = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(work.path().join("www")).unwrap();
    std::fs::copy("/bin/busybox", work.path().join("busybox")).unwrap();
    std::fs::write(work.path().join("www/index.html"), "from git").unwrap();
    std::fs::write(work.path().join("Dockerfile"), dockerfile("", SERVE)).unwrap();
    git(work.path(), &["init", "-q", "-b", "main"]);
    git(work.path(), &["add", "-A"]);
    git(work.path(), &["commit", "-q", "-m", "first"]);
    let bare = app
        .services
        .git
        .repos()
        .dir(&scalefog::domain::AppName::parse(&name).unwrap());
    git(
        work.path(),
        &[
            "push",
            "-q",
            "--receive-pack=git -c core.hooksPath=/dev/null receive-pack",
            bare.to_str().unwrap(),
            "HEAD:refs/heads/main",
        ],
    );

    let r = app.post_json(&url, &json!({"tag": "2"}), None).await;
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "a git app has no tag to deploy"
    );
    let r = app.post_json(&url, &json!({}), None).await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
    let done: Value = r.json().await.unwrap();
    assert_eq!(done["release"], "v1");
    assert_eq!(done["commit"].as_str().unwrap().len(), 40);
    assert_eq!(app.routed(&name).await, (StatusCode::OK, "from git".into()));
    let builds: Value = app.builds(&alice.token, &name).await.json().await.unwrap();
    assert_eq!(builds[0]["created_by"], "deploy-hook");
}
