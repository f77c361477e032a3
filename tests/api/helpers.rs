//! The test harness: every test starts its own real server on port 0 with a temp data dir.

use reqwest::{Client, Response, StatusCode};
use scalefog::config::Config;
use scalefog::startup::Application;
use serde_json::Value;
use std::path::PathBuf;

/// The router's memory test measures this process's RSS; the router tests and the other tests
/// that move a lot of data through this process (the 100 MB push) hold this shared while it
/// holds it alone, so their allocations do not blur its measurement.
pub static MEMORY_GATE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

// Not every test module uses every field.
#[allow(dead_code)]
pub struct TestApp {
    pub base: String,
    pub http_port: u16,
    pub ssh_port: u16,
    /// The app router's port (`proxy_listen`), and its HTTPS port when `https_listen` is set.
    pub proxy_port: u16,
    pub https_port: Option<u16>,
    pub router: scalefog::router::Router,
    pub data_dir: PathBuf,
    pub client: Client,
    pub services: actix_web::web::Data<scalefog::services::Services>,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

/// Starts a server with test settings; `tweak` may change them before start.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::for_tests(&dir.path().join("data"));
    tweak(&mut config);
    let data_dir = config.data_dir.clone();
    let app = Application::build(config).await.expect("server builds");
    let http_port = app.http_port();
    let ssh_port = app.ssh_port();
    let (proxy_port, https_port, router) = (app.proxy_port(), app.https_port(), app.router());
    let services = app.services();
    // Git hooks exec the hook program; in tests the running executable is the test harness.
    services
        .git
        .set_hook_program(env!("CARGO_BIN_EXE_scalefog"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    TestApp {
        base: format!("http://127.0.0.1:{http_port}"),
        http_port,
        ssh_port,
        proxy_port,
        https_port,
        router,
        data_dir,
        client: Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // The server closes a connection idle for 5 s (actix's keep-alive); a pooled one
            // reused just then fails with IncompleteMessage. Forget idle ones well before.
            .pool_idle_timeout(std::time::Duration::from_secs(2))
            .build()
            .unwrap(),
        services,
        _dir: dir,
        stop: Some(stop),
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// A registered user with a token.
#[allow(dead_code)]
pub struct TestUser {
    pub username: String,
    pub password: String,
    pub token: String,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn post_form(
        &self,
        path: &str,
        form: &[(&str, &str)],
        token: Option<&str>,
    ) -> Response {
        let mut r = self.client.post(self.url(path)).form(form);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().await.expect("request")
    }

    pub async fn post_json(&self, path: &str, body: &Value, token: Option<&str>) -> Response {
        let mut r = self.client.post(self.url(path)).json(body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().await.expect("request")
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        let mut r = self.client.get(self.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().await.expect("request")
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Response {
        let mut r = self.client.delete(self.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().await.expect("request")
    }

    /// Registers `name` (password `password-<name>`) and logs in.
    pub async fn user(&self, name: &str) -> TestUser {
        let password = format!("password-{name}");
        let email = format!("{name}@example.com");
        let r = self
            .post_form(
                "/account/register",
                &[
                    ("username", name),
                    ("email", &email),
                    ("password", &password),
                ],
                None,
            )
            .await;
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "register {name}: {}",
            r.text().await.unwrap()
        );
        let token = self.token(name, &password).await;
        TestUser {
            username: name.to_string(),
            password,
            token,
        }
    }

    pub async fn token(&self, name: &str, password: &str) -> String {
        let r = self
            .post_form(
                "/account/getToken",
                &[("username", name), ("password", password)],
                None,
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let body: Value = r.json().await.unwrap();
        body[0]["token"].as_str().expect("token").to_string()
    }

    /// Creates an app and returns its JSON.
    pub async fn create_app(&self, token: &str, name: &str) -> Value {
        let r = self
            .post_form("/instances/create", &[("appname", name)], Some(token))
            .await;
        assert_eq!(r.status(), StatusCode::OK, "create {name}");
        r.json().await.unwrap()
    }
}

/// Reads a JSON error body and checks its shape: `{"error", "message"}`.
pub async fn error_body(r: Response) -> Value {
    let body: Value = r.json().await.expect("error bodies are JSON");
    assert!(body["error"].is_string(), "error code in {body}");
    assert!(body["message"].is_string(), "message in {body}");
    body
}

/// A TLS client configuration trusting only `roots`.
pub fn tls_client_config(
    roots: &[rustls::pki_types::CertificateDer<'static>],
) -> rustls::ClientConfig {
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        store.add(r.clone()).unwrap();
    }
    rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(store)
    .with_no_client_auth()
}

/// A port nothing listens on right now, for servers whose port must be known before they start
/// (or an address that refuses connections).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}
