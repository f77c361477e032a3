//! The test harness: every test starts its own real server on port 0 with a temp data dir.

use reqwest::{Client, RequestBuilder, Response, StatusCode};
use scalefog::config::Config;
use scalefog::startup::Application;
use serde_json::{Value, json};
use std::path::PathBuf;

/// The router's memory test measures this process's RSS; the router tests and the other tests
/// that move a lot of data through this process (the 100 MB push) hold this shared while it
/// holds it alone, so their allocations do not blur its measurement.
pub static MEMORY_GATE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// A server started for one test on its own ports and data dir, stopped when dropped. Tests
/// drive it through its [`Api`], which it derefs to.
pub struct TestApp {
    api: Api,
    pub http_port: u16,
    pub ssh_port: u16,
    /// The app router's port (`proxy_listen`), and its HTTPS port when `https_listen` is set.
    pub proxy_port: u16,
    pub https_port: Option<u16>,
    pub router: scalefog::router::Router,
    pub data_dir: PathBuf,
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
        api: Api::new(format!("http://127.0.0.1:{http_port}")),
        http_port,
        ssh_port,
        proxy_port,
        https_port,
        router,
        data_dir,
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

/// `app.create_app(..)`, `app.get(..)`: a test server is driven through its API.
impl std::ops::Deref for TestApp {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

/// A registered user with a token.
pub struct TestUser {
    pub username: String,
    pub password: String,
    pub token: String,
}

/// A client of one Scalefog server's HTTP API: named methods for the routes the tests use most,
/// and the raw verbs (with any path and body) for tests of odd input. [`TestApp`] derefs to one;
/// a server started otherwise (again on a data dir, or the real binary) gets one from
/// [`Api::new`].
pub struct Api {
    /// `http://127.0.0.1:<port>`
    pub base: String,
    /// Follows no redirects, so that tests see them.
    pub client: Client,
}

impl Api {
    pub fn new(base: impl Into<String>) -> Api {
        Api {
            base: base.into(),
            client: Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                // The server closes a connection idle for 5 s (actix's keep-alive); a pooled one
                // reused just then fails with IncompleteMessage. Forget idle ones well before.
                .pool_idle_timeout(std::time::Duration::from_secs(2))
                .build()
                .unwrap(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    // ----- the raw verbs -----

    async fn send(&self, r: RequestBuilder, token: Option<&str>) -> Response {
        let r = match token {
            Some(t) => r.bearer_auth(t),
            None => r,
        };
        r.send().await.expect("request")
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.send(self.client.get(self.url(path)), token).await
    }

    pub async fn post_form(
        &self,
        path: &str,
        form: &[(&str, &str)],
        token: Option<&str>,
    ) -> Response {
        self.send(self.client.post(self.url(path)).form(form), token)
            .await
    }

    pub async fn post_json(&self, path: &str, body: &Value, token: Option<&str>) -> Response {
        self.send(self.client.post(self.url(path)).json(body), token)
            .await
    }

    pub async fn patch_json(&self, path: &str, body: &Value, token: Option<&str>) -> Response {
        self.send(self.client.patch(self.url(path)).json(body), token)
            .await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Response {
        self.send(self.client.delete(self.url(path)), token).await
    }

    // ----- accounts, tokens and keys -----

    /// `POST /account/register`
    pub async fn register(&self, username: &str, email: &str, password: &str) -> Response {
        self.post_form(
            "/account/register",
            &[
                ("username", username),
                ("email", email),
                ("password", password),
            ],
            None,
        )
        .await
    }

    /// `POST /account/getToken`
    pub async fn get_token(&self, username: &str, password: &str) -> Response {
        self.post_form(
            "/account/getToken",
            &[("username", username), ("password", password)],
            None,
        )
        .await
    }

    /// A new API token of `name`.
    pub async fn token(&self, name: &str, password: &str) -> String {
        let r = self.get_token(name, password).await;
        assert_eq!(r.status(), StatusCode::OK);
        let body: Value = r.json().await.unwrap();
        body[0]["token"].as_str().expect("token").to_string()
    }

    /// Registers `name` (password `password-<name>`) and logs in.
    pub async fn user(&self, name: &str) -> TestUser {
        let password = format!("password-{name}");
        let r = self
            .register(name, &format!("{name}@example.com"), &password)
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

    /// `GET /v1/audit?{query}`: the audit log as the token's user may read it.
    pub async fn audit(&self, token: &str, query: &str) -> Response {
        self.get(&format!("/v1/audit?{query}"), Some(token)).await
    }

    /// `GET /v1/account`: who the token is.
    pub async fn account(&self, token: &str) -> Response {
        self.get("/v1/account", Some(token)).await
    }

    /// `POST /v1/auth/exchange`: a JWT pair for a token (or for a refresh token).
    pub async fn exchange(&self, token: Option<&str>) -> Response {
        self.send(self.client.post(self.url("/v1/auth/exchange")), token)
            .await
    }

    /// `POST /v1/api-keys`
    pub async fn create_api_key(&self, token: &str, name: &str) -> Response {
        self.post_form("/v1/api-keys", &[("name", name)], Some(token))
            .await
    }

    /// `DELETE /v1/api-keys/{id}`
    pub async fn revoke_api_key(&self, token: &str, id: &str) -> Response {
        self.delete(&format!("/v1/api-keys/{id}"), Some(token))
            .await
    }

    /// `POST /account/addkey`: registers an SSH public key (an OpenSSH line).
    pub async fn add_ssh_key(&self, token: &str, public_key: &str) -> Response {
        self.post_form("/account/addkey", &[("sshkey", public_key)], Some(token))
            .await
    }

    /// `GET /v1/ssh-keys`
    pub async fn ssh_keys(&self, token: &str) -> Response {
        self.get("/v1/ssh-keys", Some(token)).await
    }

    /// `DELETE /v1/ssh-keys/{id or URL-encoded fingerprint}`
    pub async fn delete_ssh_key(&self, token: &str, id: &str) -> Response {
        self.delete(&format!("/v1/ssh-keys/{id}"), Some(token))
            .await
    }

    /// `GET /v1/users` (admins only).
    pub async fn users(&self, token: &str) -> Response {
        self.get("/v1/users", Some(token)).await
    }

    /// `GET /v1/users/{name}` (admins only).
    pub async fn get_user(&self, token: &str, name: &str) -> Response {
        self.get(&format!("/v1/users/{name}"), Some(token)).await
    }

    // ----- apps through the Scalefog routes -----

    /// `POST /instances/create` with these fields (`appname`, `region`).
    pub async fn create_instance(&self, token: &str, form: &[(&str, &str)]) -> Response {
        self.post_form("/instances/create", form, Some(token)).await
    }

    /// Creates an app and returns its JSON.
    pub async fn create_app(&self, token: &str, name: &str) -> Value {
        let r = self.create_instance(token, &[("appname", name)]).await;
        assert_eq!(r.status(), StatusCode::OK, "create {name}");
        r.json().await.unwrap()
    }

    /// `GET /instances`: the caller's apps.
    pub async fn instances(&self, token: &str) -> Response {
        self.get("/instances", Some(token)).await
    }

    /// `GET /instances/delete/{name}`
    pub async fn delete_instance(&self, token: &str, name: &str) -> Response {
        self.get(&format!("/instances/delete/{name}"), Some(token))
            .await
    }

    /// `GET /instances/stop/{name}`
    pub async fn stop_instance(&self, token: &str, name: &str) -> Response {
        self.get(&format!("/instances/stop/{name}"), Some(token))
            .await
    }

    /// `GET /instances/start/{name}`
    pub async fn start_instance(&self, token: &str, name: &str) -> Response {
        self.get(&format!("/instances/start/{name}"), Some(token))
            .await
    }

    // ----- an app through /v1/instances/{name} -----

    fn app_path(name: &str, rest: &str) -> String {
        format!("/v1/instances/{name}{rest}")
    }

    /// `GET /v1/instances/{name}`
    pub async fn get_app(&self, token: &str, name: &str) -> Response {
        self.get(&Self::app_path(name, ""), Some(token)).await
    }

    /// `PATCH /v1/instances/{name}`: its settings (memory, cpu, health path, deploy branch).
    pub async fn update_app(&self, token: &str, name: &str, settings: &Value) -> Response {
        self.patch_json(&Self::app_path(name, ""), settings, Some(token))
            .await
    }

    /// `DELETE /v1/instances/{name}`
    pub async fn delete_app(&self, token: &str, name: &str) -> Response {
        self.delete(&Self::app_path(name, ""), Some(token)).await
    }

    /// `GET /v1/instances/{name}/env`: its config vars.
    pub async fn config(&self, token: &str, name: &str) -> Response {
        self.get(&Self::app_path(name, "/env"), Some(token)).await
    }

    /// `PATCH /v1/instances/{name}/env`: sets config vars (a new release).
    pub async fn set_config(&self, token: &str, name: &str, vars: &Value) -> Response {
        self.patch_json(&Self::app_path(name, "/env"), vars, Some(token))
            .await
    }

    /// `DELETE /v1/instances/{name}/env/{key}` (a new release).
    pub async fn unset_config(&self, token: &str, name: &str, key: &str) -> Response {
        self.delete(&Self::app_path(name, &format!("/env/{key}")), Some(token))
            .await
    }

    /// `POST /v1/instances/{name}/start`
    pub async fn start_app(&self, token: &str, name: &str) -> Response {
        self.post_json(&Self::app_path(name, "/start"), &json!({}), Some(token))
            .await
    }

    /// `POST /v1/instances/{name}/restart`
    pub async fn restart_app(&self, token: &str, name: &str) -> Response {
        self.post_json(&Self::app_path(name, "/restart"), &json!({}), Some(token))
            .await
    }

    /// `POST /v1/instances/{name}/rollback` with `{}` (the previous release) or
    /// `{"release": "vN"}`.
    pub async fn rollback(&self, token: &str, name: &str, body: &Value) -> Response {
        self.post_json(&Self::app_path(name, "/rollback"), body, Some(token))
            .await
    }

    /// `POST /v1/instances/{name}/deploys/current/cancel`
    pub async fn cancel_deploy(&self, token: &str, name: &str) -> Response {
        self.post_json(
            &Self::app_path(name, "/deploys/current/cancel"),
            &json!({}),
            Some(token),
        )
        .await
    }

    /// `GET /v1/instances/{name}/releases`, newest first.
    pub async fn releases(&self, token: &str, name: &str) -> Response {
        self.get(&Self::app_path(name, "/releases"), Some(token))
            .await
    }

    /// `GET /v1/instances/{name}/builds`, newest first.
    pub async fn builds(&self, token: &str, name: &str) -> Response {
        self.get(&Self::app_path(name, "/builds"), Some(token))
            .await
    }

    /// `GET /v1/instances/{name}/builds/{id}/log`
    pub async fn build_log(&self, token: &str, name: &str, id: &str) -> Response {
        self.get(
            &Self::app_path(name, &format!("/builds/{id}/log")),
            Some(token),
        )
        .await
    }

    /// `GET /v1/instances/{name}/logs?{query}` (`tail=N`, `follow=1`: a stream of events).
    pub async fn logs(&self, token: &str, name: &str, query: &str) -> Response {
        self.get(
            &Self::app_path(name, &format!("/logs?{query}")),
            Some(token),
        )
        .await
    }

    /// `GET /v1/instances/{name}/domains`
    pub async fn domains(&self, token: &str, name: &str) -> Response {
        self.get(&Self::app_path(name, "/domains"), Some(token))
            .await
    }

    /// `POST /v1/instances/{name}/domains` with the form `domain=...`.
    pub async fn add_domain(&self, token: &str, name: &str, domain: &str) -> Response {
        self.post_form(
            &Self::app_path(name, "/domains"),
            &[("domain", domain)],
            Some(token),
        )
        .await
    }

    /// `DELETE /v1/instances/{name}/domains/{domain}`
    pub async fn remove_domain(&self, token: &str, name: &str, domain: &str) -> Response {
        self.delete(
            &Self::app_path(name, &format!("/domains/{domain}")),
            Some(token),
        )
        .await
    }

    /// `GET /v1/instances/{name}/volumes`
    pub async fn volumes(&self, token: &str, name: &str) -> Response {
        self.get(&Self::app_path(name, "/volumes"), Some(token))
            .await
    }

    /// `POST /v1/instances/{name}/volumes` with `{"name": ..., "path": ...}`.
    /// `GET /v1/instances/{name}/formation`.
    pub async fn formation(&self, token: &str, name: &str) -> Response {
        self.get(&Self::app_path(name, "/formation"), Some(token))
            .await
    }

    /// `PATCH /v1/instances/{name}/formation` with `{"web": 3, …}`.
    pub async fn scale(&self, token: &str, name: &str, body: &Value) -> Response {
        self.patch_json(&Self::app_path(name, "/formation"), body, Some(token))
            .await
    }

    pub async fn add_volume(&self, token: &str, name: &str, volume: &str, path: &str) -> Response {
        self.post_json(
            &Self::app_path(name, "/volumes"),
            &serde_json::json!({"name": volume, "path": path}),
            Some(token),
        )
        .await
    }

    /// `DELETE /v1/instances/{name}/volumes/{volume}`
    pub async fn remove_volume(&self, token: &str, name: &str, volume: &str) -> Response {
        self.delete(
            &Self::app_path(name, &format!("/volumes/{volume}")),
            Some(token),
        )
        .await
    }

    // ----- images and the account's password -----

    /// `GET /v1/images?per_page=100`: the catalog (admins: and the node's images).
    pub async fn images(&self, token: &str) -> Response {
        self.get("/v1/images?per_page=100", Some(token)).await
    }

    /// `POST /v1/images` with `{"reference", "description"}` (admins only).
    pub async fn add_image(&self, token: &str, reference: &str, description: &str) -> Response {
        self.post_json(
            "/v1/images",
            &json!({"reference": reference, "description": description}),
            Some(token),
        )
        .await
    }

    /// `DELETE /v1/images/{id or reference}` (admins only).
    pub async fn remove_image(&self, token: &str, id: &str) -> Response {
        self.delete(&format!("/v1/images/{id}"), Some(token)).await
    }

    /// `PUT /v1/account/password` with `{"current_password", "new_password"}`.
    pub async fn change_password(&self, token: &str, current: &str, new: &str) -> Response {
        let body = json!({"current_password": current, "new_password": new});
        self.send(
            self.client
                .put(self.url("/v1/account/password"))
                .json(&body),
            Some(token),
        )
        .await
    }

    // ----- the rest -----

    /// `GET /healthz`
    pub async fn health(&self) -> Response {
        self.get("/healthz", None).await
    }

    /// `GET /console/sign-in`: the page, with a new anonymous CSRF cookie.
    pub async fn sign_in_page(&self) -> Response {
        self.get("/console/sign-in", None).await
    }

    /// `POST /console/sign-in` as the console's form sends it: `csrf` both as the anonymous
    /// CSRF cookie and in the form.
    pub async fn sign_in(&self, csrf: &str, username: &str, password: &str) -> Response {
        self.client
            .post(self.url("/console/sign-in"))
            .header("cookie", format!("scalefog_csrf={csrf}"))
            .form(&[
                ("csrf", csrf),
                ("username", username),
                ("password", password),
            ])
            .send()
            .await
            .expect("request")
    }
}

/// A port nothing listens on right now, for servers whose port must be known before they start
/// (or an address that refuses connections).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
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
