//! The web console, driven like a person would: a real chromium through chromedriver
//! (fantoccini) against the real server, with and without JavaScript; plus plain HTTP checks of
//! the security properties (CSRF, headers, cookies, access) that a browser would hide.

use crate::dockerapp::{DockerCleanup, SERVE, docker, dockerfile};
use crate::gitssh::{Key, commit, git, keygen, ok};
use crate::helpers::*;
use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::StatusCode;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

// ----- a browser per test -----

/// Two chromiums at once on a small machine only make both slow; browser tests take turns.
pub(crate) static BROWSER_TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub(crate) struct Browser {
    pub(crate) client: Client,
    driver: Child,
    shots: PathBuf,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver on a free port, waits until it answers, and opens a headless chromium
    /// session (JavaScript on or off). Screenshots go to `shots` and to /tmp/console-shots/.
    pub(crate) async fn start(javascript: bool, shots: &Path) -> Browser {
        use std::os::unix::process::CommandExt;
        let port = free_port();
        let profile = tempfile::tempdir().expect("profile dir");
        let log = std::fs::File::create(profile.path().join("chromedriver.log")).unwrap();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            // Its own process group, so that dropping the browser ends chromium too.
            .process_group(0)
            .spawn()
            .expect("chromedriver is installed (apt-get install chromium-driver)");
        let mut driver_guard = DriverGuard(Some(driver));
        let addr = format!("127.0.0.1:{port}");
        let mut up = false;
        for _ in 0..300 {
            if std::net::TcpStream::connect(&addr).is_ok() {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(up, "chromedriver did not open port {port}");

        let mut args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-default-apps".into(),
            "--disable-extensions".into(),
            "--no-first-run".into(),
            "--no-default-browser-check".into(),
            "--window-size=1280,900".into(),
            format!(
                "--user-data-dir={}",
                profile.path().join("profile").display()
            ),
        ];
        let mut prefs = json!({});
        if !javascript {
            args.push("--blink-settings=scriptEnabled=false".into());
            prefs = json!({"profile.managed_default_content_settings.javascript": 2});
        }
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"binary": "/usr/bin/chromium", "args": args, "prefs": prefs}),
        );
        let mut client = None;
        let mut last_err = String::new();
        for _ in 0..20 {
            match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&format!("http://{addr}"))
                .await
            {
                Ok(c) => {
                    client = Some(c);
                    break;
                }
                Err(e) => {
                    last_err = e.to_string();
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
        let client = client.unwrap_or_else(|| panic!("no chromium session: {last_err}"));
        std::fs::create_dir_all(shots).unwrap();
        std::fs::create_dir_all("/tmp/console-shots").unwrap();
        Browser {
            client,
            driver: driver_guard.0.take().unwrap(),
            shots: shots.to_path_buf(),
            _profile: profile,
        }
    }

    pub(crate) async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
    }

    pub(crate) async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
    }

    pub(crate) async fn fill(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        e.clear().await.unwrap();
        e.send_keys(text).await.unwrap();
    }

    /// Clicks and waits for the next page (identified by an element on it).
    pub(crate) async fn click_then(&self, css: &str, next: &str) {
        // The page may already show a `next` (the flash of the previous action): wait for the
        // page the click leads to, whose elements replace this one's, not for that one.
        let old = self.client.find(Locator::Css(next)).await.ok();
        self.find(css).await.click().await.unwrap();
        if let Some(old) = old {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while std::time::Instant::now() < deadline {
                match old.text().await {
                    Err(fantoccini::error::CmdError::Standard(e))
                        if e.error == fantoccini::error::ErrorStatus::StaleElementReference =>
                    {
                        break;
                    }
                    _ => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        }
        self.find(next).await;
    }

    pub(crate) async fn text(&self, css: &str) -> String {
        // Live sections replace their elements as updates arrive: an element found a moment
        // ago may be gone (stale) when its text is read, so find it again.
        for _ in 0..50 {
            match self.find(css).await.text().await {
                Ok(t) => return t,
                Err(fantoccini::error::CmdError::Standard(e))
                    if e.error == fantoccini::error::ErrorStatus::StaleElementReference =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("text of {css}: {e}"),
            }
        }
        panic!("{css} kept going stale")
    }

    /// The room the element's scrollbars take (vertical bar's width, horizontal bar's height),
    /// in CSS pixels: what a user sees as scroll widgets. (The browser shows scrollbars.)
    pub(crate) async fn scrollbars(&self, css: &str) -> (i64, i64) {
        let v = self
            .client
            .execute(
                "const e = document.querySelector(arguments[0]); const s = getComputedStyle(e);\
                 const bx = parseFloat(s.borderLeftWidth) + parseFloat(s.borderRightWidth);\
                 const by = parseFloat(s.borderTopWidth) + parseFloat(s.borderBottomWidth);\
                 return [Math.round(e.offsetWidth - e.clientWidth - bx),\
                         Math.round(e.offsetHeight - e.clientHeight - by)];",
                vec![json!(css)],
            )
            .await
            .unwrap();
        (v[0].as_i64().unwrap(), v[1].as_i64().unwrap())
    }

    /// Waits (up to `secs`) until the element's text contains `needle`; returns the text.
    pub(crate) async fn wait_text(&self, css: &str, needle: &str, secs: u64) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        let mut last = String::new();
        while std::time::Instant::now() < deadline {
            if let Ok(e) = self.client.find(Locator::Css(css)).await
                && let Ok(t) = e.text().await
            {
                if t.contains(needle) {
                    return t;
                }
                last = t;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("{css} never contained {needle:?}; last text: {last:?}");
    }

    /// Waits (up to `secs`) for an element that may take a deploy to appear.
    pub(crate) async fn wait_for(&self, css: &str, secs: u64) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(secs))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css} within {secs} s: {e}"))
    }

    pub(crate) async fn sign_in(&self, app: &TestApp, username: &str, password: &str) {
        self.goto(&app.url("/console/sign-in")).await;
        self.fill("#username", username).await;
        self.fill("#password", password).await;
        self.click_then("form button[type=submit]", ".app-shell")
            .await;
    }

    pub(crate) async fn source(&self) -> String {
        self.client.source().await.unwrap()
    }

    pub(crate) async fn path(&self) -> String {
        self.client.current_url().await.unwrap().path().to_string()
    }

    pub(crate) async fn shot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::write(self.shots.join(format!("{name}.png")), &png).unwrap();
        std::fs::write(format!("/tmp/console-shots/{name}.png"), &png).unwrap();
    }

    /// Just one element (a section of a page).
    pub(crate) async fn shot_of(&self, css: &str, name: &str) {
        let png = self.find(css).await.screenshot().await.expect("screenshot");
        std::fs::write(self.shots.join(format!("{name}.png")), &png).unwrap();
        std::fs::write(format!("/tmp/console-shots/{name}.png"), &png).unwrap();
    }

    /// The whole page, however long: the window grows to fit it for the shot.
    pub(crate) async fn shot_full(&self, name: &str) {
        let (w, h) = self.client.get_window_size().await.unwrap();
        let height = self
            .client
            .execute("return document.documentElement.scrollHeight", vec![])
            .await
            .unwrap()
            .as_u64()
            .unwrap_or(h);
        let grown = (height + 160).clamp(h, 9000);
        self.client
            .set_window_size(w as u32, grown as u32)
            .await
            .unwrap();
        self.shot(name).await;
        self.client
            .set_window_size(w as u32, h as u32)
            .await
            .unwrap();
    }

    pub(crate) async fn close(mut self) {
        let _ = self.client.clone().close().await;
        kill_group(&mut self.driver);
    }
}

fn kill_group(child: &mut Child) {
    // The group we created for this chromedriver: it and the chromium it started.
    let _ = Command::new("kill")
        .args(["-TERM", "--", &format!("-{}", child.id())])
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

struct DriverGuard(Option<Child>);
impl Drop for DriverGuard {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            kill_group(c);
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        kill_group(&mut self.driver);
    }
}

fn ssh_port(app: &TestApp) -> u16 {
    app.services.apps.links().ssh_port
}

// ----- deploying with real git over SSH -----

/// A work tree with one commit: the busybox app serving `page`, with `extra` Dockerfile lines.
/// Its git pushes over SSH to `port` with `key`.
async fn busybox_app(dir: &Path, key: &Key, port: u16, page: &str, extra: &str) -> PathBuf {
    let work = dir.join("work");
    std::fs::create_dir_all(work.join("www")).unwrap();
    std::fs::copy("/bin/busybox", work.join("busybox")).expect("/bin/busybox exists");
    std::fs::write(work.join("www/index.html"), page).unwrap();
    std::fs::write(work.join("Dockerfile"), dockerfile(extra, SERVE)).unwrap();
    ok(git(&work, key, port, &["init", "-q", "-b", "main"]).await);
    commit(&work, key, port, page).await;
    work
}

/// Takes the app out of the store when a test ends, before [`DockerCleanup`] removes its
/// containers: the server's reconciler runs until the test's runtime ends, and would start a
/// missing container of an app that should run (when a test fails before deleting its app).
struct ForgetApp(actix_web::web::Data<scalefog::services::Services>, String);

impl Drop for ForgetApp {
    fn drop(&mut self) {
        let _ = self.0.store.write(|w| w.delete_instance(&self.1));
    }
}

/// What the app answers at `path`, asked where the router would send the request.
async fn served(app: &TestApp, name: &str, path: &str) -> String {
    let Some(scalefog::routing::Target::Serving(addr)) = app.services.routes.get(name) else {
        panic!("{name} is not serving: {:?}", app.services.routes.get(name));
    };
    let r = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
    r.text().await.unwrap().trim().to_string()
}

// ----- plain HTTP helpers -----

fn cookie_from(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.to_string())
}

fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_string()
}

fn hidden_csrf(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[at..at + 32].to_string()
}

/// A browser-less console session: the session cookie and the session's CSRF token.
pub(crate) struct Console {
    pub(crate) cookie: String,
    pub(crate) csrf: String,
}

pub(crate) async fn console_sign_in(app: &TestApp, username: &str, password: &str) -> Console {
    let page = app.sign_in_page().await;
    let anon = cookie_value(&cookie_from(&page, "scalefog_csrf").expect("csrf cookie"));
    let token = hidden_csrf(&page.text().await.unwrap());
    assert_eq!(anon, token);
    let r = app.sign_in(&token, username, password).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "sign in as {username}");
    let cookie = format!(
        "scalefog_session={}",
        cookie_value(&cookie_from(&r, "scalefog_session").expect("session cookie"))
    );
    let apps = app
        .client
        .get(app.url("/console/apps"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(apps.status(), StatusCode::OK);
    let csrf = hidden_csrf(&apps.text().await.unwrap());
    Console { cookie, csrf }
}

impl Console {
    pub(crate) async fn get(&self, app: &TestApp, path: &str) -> reqwest::Response {
        app.client
            .get(app.url(path))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap()
    }
    pub(crate) async fn post(
        &self,
        app: &TestApp,
        path: &str,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        app.client
            .post(app.url(path))
            .header("cookie", &self.cookie)
            .form(form)
            .send()
            .await
            .unwrap()
    }
    /// Follows a form's 303 as a browser does (with the flash cookie it set); the page's HTML.
    pub(crate) async fn follow(&self, app: &TestApp, r: reqwest::Response) -> String {
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "a redirect");
        let to = r.headers()["location"].to_str().unwrap();
        let path = to.split('#').next().unwrap();
        let mut cookie = self.cookie.clone();
        if let Some(flash) = cookie_from(&r, "scalefog_flash") {
            cookie = format!("{cookie}; scalefog_flash={}", cookie_value(&flash));
        }
        let page = app
            .client
            .get(app.url(path))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::OK, "{path}");
        page.text().await.unwrap()
    }
}

// ----- in a real browser -----

#[tokio::test]
async fn a_person_registers_adds_a_key_creates_an_app_sees_its_remote_deletes_it_and_signs_out() {
    let _turn = BROWSER_TURN.lock().await;
    let app = spawn_app().await;
    let tmp = tempfile::tempdir().unwrap();
    let key = keygen(tmp.path(), "alice@laptop").await;
    let (public_key, fingerprint) = (key.public.trim(), key.fingerprint().await);
    let b = Browser::start(true, &tmp.path().join("shots")).await;

    // Unsigned visitors land on the sign-in page, which offers registration.
    b.goto(&app.url("/")).await;
    b.find("#signin-title").await;
    assert_eq!(b.path().await, "/console/sign-in");
    b.shot("01-sign-in").await;
    b.click_then("a[href='/console/register']", "#register-title")
        .await;
    b.fill("#username", "alice").await;
    b.fill("#email", "alice@example.com").await;
    b.fill("#password", "short").await;
    b.shot("02-register").await;
    // The browser's own checks stop a short password; the server's message is tested below
    // without them, by removing the attribute.
    b.client
        .execute(
            "document.getElementById('password').removeAttribute('minlength')",
            vec![],
        )
        .await
        .unwrap();
    b.click_then("form button[type=submit]", ".form-error")
        .await;
    assert!(
        b.text(".form-error")
            .await
            .contains("at least 8 characters")
    );
    b.shot("02b-register-error").await;
    b.fill("#password", "correct horse battery").await;
    b.click_then("form button[type=submit]", ".empty").await;

    // The empty state teaches the next step.
    assert!(
        b.text(".flash")
            .await
            .contains("Welcome to Scalefog, alice")
    );
    assert!(
        b.text(".empty h2")
            .await
            .contains("No apps yet — create one, then git push")
    );
    b.shot("03-apps-empty").await;

    // SSH keys: a bad paste explains itself and keeps the text; a good key shows its fingerprint.
    b.click_then("nav a[href='/console/ssh-keys']", "#sshkey")
        .await;
    b.fill("#sshkey", "ssh-ed25519 not-a-key").await;
    b.click_then("form[action='/console/ssh-keys'] button", ".form-error")
        .await;
    assert!(b.text(".form-error").await.contains("OpenSSH public key"));
    assert_eq!(
        b.find("#sshkey")
            .await
            .prop("value")
            .await
            .unwrap()
            .unwrap(),
        "ssh-ed25519 not-a-key"
    );
    b.shot("04-ssh-key-error").await;
    b.fill("#sshkey", public_key).await;
    b.click_then("form[action='/console/ssh-keys'] button", ".flash")
        .await;
    let flash = b.text(".flash").await;
    assert!(flash.contains(&fingerprint), "{flash} / {fingerprint}");
    assert_eq!(b.text(".fingerprint").await, fingerprint);
    b.shot("05-ssh-keys").await;

    // Create an app and find the exact commands to deploy it.
    b.click_then("nav a[href='/console/apps']", ".empty").await;
    b.click_then("a[href='/console/apps/new']", "#appname")
        .await;
    b.shot("06-new-app").await;
    b.fill("#appname", "Bad Name!").await;
    b.click_then("form[action='/console/apps'] button", ".form-error")
        .await;
    assert!(b.text(".form-error").await.contains("App name must be"));
    b.fill("#appname", "shop-one").await;
    b.click_then("form[action='/console/apps'] button", "#git-remote")
        .await;
    assert_eq!(b.path().await, "/console/apps/shop-one");
    let remote = format!("ssh://git@127.0.0.1:{}/shop-one.git", ssh_port(&app));
    assert_eq!(
        b.find("#git-remote")
            .await
            .prop("value")
            .await
            .unwrap()
            .unwrap(),
        remote
    );
    let commands = b.text("#deploy-commands").await;
    assert!(
        commands.contains(&format!("git remote add scalefog {remote}")),
        "{commands}"
    );
    assert!(commands.contains("git push scalefog main"), "{commands}");
    assert!(
        b.find("button.copy").await.is_displayed().await.unwrap(),
        "with JavaScript, copy buttons appear"
    );
    assert!(b.text(".badge").await.contains("Waiting for first push"));
    b.shot("07-app").await;

    // The same pages on a phone.
    b.client.set_window_size(390, 844).await.unwrap();
    b.goto(&app.url("/console/apps/shop-one")).await;
    b.find("#git-remote").await;
    b.shot("08-app-phone").await;
    b.goto(&app.url("/console/apps")).await;
    b.find(".apps-table").await;
    b.shot("09-apps-phone").await;
    b.client.set_window_size(1280, 900).await.unwrap();
    b.goto(&app.url("/console/apps")).await;
    assert!(b.text(".apps-table").await.contains("shop-one"));
    b.shot("10-apps").await;

    // API keys: shown once, then only a prefix.
    b.click_then("nav a[href='/console/api-keys']", "#name")
        .await;
    b.fill("#name", "GitHub Actions").await;
    b.click_then("form[action='/console/api-keys'] button", "#new-key-value")
        .await;
    let key = b
        .find("#new-key-value")
        .await
        .prop("value")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(key.len(), 32);
    let api = app.account(&key).await;
    assert_eq!(
        api.status(),
        StatusCode::OK,
        "the shown key works on the API"
    );
    b.shot("11-api-keys").await;
    b.goto(&app.url("/console/api-keys")).await;
    b.find(".item").await;
    assert!(
        !b.source().await.contains(&key),
        "the key is shown only once"
    );

    // Account and the admin pages (the first account is an admin).
    b.click_then("a.whoami", "#current_password").await;
    b.shot("12-account").await;
    for (path, name) in [
        ("/console/admin/users", "13-users"),
        ("/console/admin/nodes", "14-nodes"),
        ("/console/admin/regions", "15-regions"),
    ] {
        b.goto(&app.url(path)).await;
        b.find(".table").await;
        b.shot(name).await;
    }
    b.goto(&app.url("/console/apps/no-such-app")).await;
    b.find(".error-code").await;
    assert_eq!(b.text(".error-code").await, "404");
    b.shot("16-not-found").await;

    // Delete: the button waits for the name.
    b.goto(&app.url("/console/apps/shop-one")).await;
    let button = b.find("#delete-app").await;
    assert!(!button.is_enabled().await.unwrap());
    b.fill("#confirm", "shop-one").await;
    assert!(button.is_enabled().await.unwrap());
    b.click_then("#delete-app", ".empty").await;
    assert!(b.text(".flash").await.contains("Deleted shop-one"));
    assert!(app.services.apps.regions().is_ok());
    let r = app.instances(&key).await;
    assert_eq!(r.json::<serde_json::Value>().await.unwrap(), json!([]));

    // Sign out ends the session: the console asks to sign in again.
    b.click_then("form[action='/console/sign-out'] button", "#signin-title")
        .await;
    assert!(b.text(".flash").await.contains("signed out"));
    b.shot("17-signed-out").await;
    b.goto(&app.url("/console/apps")).await;
    b.find("#signin-title").await;
    assert_eq!(b.path().await, "/console/sign-in");
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_git_push_shows_live_then_config_stop_start_rollback_and_delete_work_with_and_without_javascript()
 {
    let _turn = BROWSER_TURN.lock().await;
    let app = spawn_app_with(|c| c.health_timeout = 10).await;
    let _cleanup = DockerCleanup::of(&app);
    let dave = app.user("dave").await;
    let tmp = tempfile::tempdir().unwrap();
    let key = keygen(tmp.path(), "dave@laptop").await;
    let name = format!("web-{}", hex::encode(rand::random::<[u8; 3]>()));
    let page = format!("/console/apps/{name}");
    let _forget = ForgetApp(app.services.clone(), name.clone());
    let b = Browser::start(true, &tmp.path().join("shots")).await;

    b.sign_in(&app, "dave", &dave.password).await;
    b.goto(&app.url("/console/ssh-keys")).await;
    b.fill("#sshkey", key.public.trim()).await;
    b.click_then("form[action='/console/ssh-keys'] button", ".fingerprint")
        .await;
    b.goto(&app.url("/console/apps/new")).await;
    b.fill("#appname", &name).await;
    b.click_then("form[action='/console/apps'] button", "#git-remote")
        .await;
    // The host key fingerprint sits by the remote, so the first push can be checked.
    assert_eq!(
        b.text("#host-key-fingerprint").await,
        app.services.ssh_host_key.fingerprint
    );
    assert!(b.text("#releases").await.contains("No releases yet"));
    assert!(b.text("#builds").await.contains("No builds yet"));
    b.shot("30-app-before-push").await;

    // A real git push over SSH. The build sleeps a little (its RUN line is unique, so never
    // cached), so the page can be seen following it.
    let token = hex::encode(rand::random::<[u8; 4]>());
    // The output line is only in the build's output, not in the Dockerfile it echoes.
    let run =
        format!("RUN [\"/bin/busybox\", \"sh\", \"-c\", \"T={token}; echo built-$T; sleep 4\"]\n");
    let work = busybox_app(tmp.path(), &key, app.ssh_port, "hello from v1", &run).await;
    // A scheduled job, shown on the app page with its runs.
    std::fs::write(
        work.join("app.json"),
        r#"{"cron": [{"command": "/bin/busybox echo tick", "schedule": "* * * * *"}]}"#,
    )
    .unwrap();
    commit(&work, &key, app.ssh_port, "a scheduled job").await;
    let remote = b
        .find("#git-remote")
        .await
        .prop("value")
        .await
        .unwrap()
        .unwrap();
    let (port, wt) = (app.ssh_port, work.clone());
    let push = tokio::spawn(async move {
        let out = ok(git(&wt, &key, port, &["push", &remote, "main"]).await);
        String::from_utf8_lossy(&out.stderr).into_owned()
    });
    // The page shows the running build with its log, which follows the build live; when the
    // build is done, the page reloads itself and shows the new release.
    let mut live = false;
    for _ in 0..300 {
        b.goto(&app.url(&page)).await;
        if b.client.find(Locator::Css("#live-build")).await.is_ok() {
            live = true;
            break;
        }
        if b.client.find(Locator::Css("#release-v1")).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(live, "the running build was shown");
    assert!(b.text("#app-status").await.contains("Building"));
    b.wait_text("#build-log", &format!("built-{token}"), 60)
        .await;
    b.shot("31-live-build").await;
    b.wait_for("#release-v1", 120).await;
    let pushed = push.await.unwrap();
    assert!(pushed.contains("=====> Deployed"), "{pushed}");
    b.wait_text("#app-status", "Running", 20).await;
    let release = b.text("#release-v1").await;
    assert!(
        release.contains("current") && release.contains("deploy "),
        "{release}"
    );
    assert_eq!(served(&app, &name, "/").await, "hello from v1");
    assert!(b.text("#builds").await.contains("Succeeded"));

    // The app's output follows live: a request made now shows up without a reload.
    let marker = format!("/marker-{}", hex::encode(rand::random::<[u8; 4]>()));
    let addr = match app.services.routes.get(&name) {
        Some(scalefog::routing::Target::Serving(a)) => a,
        other => panic!("not serving: {other:?}"),
    };
    let url = format!("http://{addr}{marker}");
    let producer = tokio::spawn(async move {
        loop {
            let _ = reqwest::get(&url).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    b.wait_text("#runtime-log", &marker, 30).await;
    producer.abort();
    b.shot_full("32-app-running").await;

    // The build's own page has its whole log.
    b.click_then(".build-list .item-title a", "#build-log")
        .await;
    let log = b.text("#build-log").await;
    assert!(log.contains(&format!("-----> Building {name} (")), "{log}");
    assert!(log.contains(&format!("built-{token}")), "{log}");
    assert!(log.contains("-----> Health check passed"), "{log}");
    assert!(b.text("#build-status").await.contains("Succeeded"));
    b.shot("33-build-log").await;

    // A config var: a new release, the value masked until revealed.
    b.goto(&app.url(&page)).await;
    b.fill("#config-key", "GREETING").await;
    b.fill("#config-value", "hello console").await;
    b.find("#config-set").await.click().await.unwrap();
    let flash = b.wait_text(".flash", "Set GREETING", 30).await;
    assert!(flash.contains("release v2 is serving with it"), "{flash}");
    assert!(b.text("#release-v2").await.contains("config: GREETING"));
    let value = b.find("#config-GREETING .config-value").await;
    assert!(!value.is_displayed().await.unwrap(), "masked at first");
    b.find("#config-GREETING summary")
        .await
        .click()
        .await
        .unwrap();
    assert!(value.is_displayed().await.unwrap(), "shown once revealed");
    assert_eq!(value.text().await.unwrap(), "hello console");
    assert_eq!(served(&app, &name, "/env.txt").await, "hello console");
    b.shot_full("34-config").await;
    b.shot_of("#config", "34b-config-revealed").await;

    // Stop (after a confirmation), then start.
    b.find("#stop-app").await.click().await.unwrap();
    b.shot("35-stop-confirm").await;
    b.find("#stop-confirm").await.click().await.unwrap();
    b.wait_text(".flash", &format!("Stopped {name}"), 30).await;
    assert!(b.text("#app-status").await.contains("Stopped"));
    assert!(b.client.find(Locator::Css("#start-app")).await.is_ok());
    b.shot("36-stopped").await;
    b.find("#start-app").await.click().await.unwrap();
    b.wait_text(".flash", &format!("Started {name}"), 30).await;
    assert!(b.text("#app-status").await.contains("Running"));
    assert_eq!(served(&app, &name, "/env.txt").await, "hello console");

    // Roll back to v1 (after a confirmation): v1's code and config vars, as release v3.
    b.find("#rollback-v1").await.click().await.unwrap();
    b.shot("37-rollback-confirm").await;
    b.find("#rollback-confirm-v1").await.click().await.unwrap();
    let flash = b.wait_text(".flash", "Rolled back to v1", 30).await;
    assert!(flash.contains("release v3"), "{flash}");
    let v3 = b.text("#release-v3").await;
    assert!(
        v3.contains("rollback to v1") && v3.contains("current"),
        "{v3}"
    );
    assert_eq!(served(&app, &name, "/env.txt").await, "");
    assert!(b.text("#config").await.contains("No config vars yet"));
    b.shot_full("38-rolled-back").await;
    b.shot_of("#releases", "38b-releases").await;
    b.shot_of("#builds", "38c-builds").await;
    b.shot_of("#logs", "38d-logs").await;
    b.shot_of("#settings", "38e-settings").await;
    // The Traffic card: requests through the router show in its sparklines, drawn as SVG on
    // the server (the page's total holds every minute so far, however the minutes fell).
    let before = app.services.routes.counts().get(&name);
    for _ in 0..2 {
        let r = app
            .client
            .get(format!("http://127.0.0.1:{}/env.txt", app.proxy_port))
            .header("host", format!("{name}.localhost"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    b.goto(&app.url(&page)).await;
    let requests = b.text("#traffic-requests").await;
    assert!(
        requests.contains(&format!("· {} in ", before + 2)),
        "{requests}"
    );
    assert_eq!(
        b.client
            .find_all(Locator::Css("#traffic svg.sparkline polyline"))
            .await
            .unwrap()
            .len(),
        2
    );
    b.shot_of("#traffic", "38j-traffic").await;
    // The tabs at 1280 px: every one shows, and no scroll widget beside them.
    assert_eq!(
        b.scrollbars(".section-nav").await,
        (0, 0),
        "tab bar at 1280 px"
    );
    b.shot_of(".section-nav", "38f-tabs").await;

    // Scaling from the Processes card: two web replicas, both routed; then back to one.
    b.fill("#scale-web", "2").await;
    b.find("#formation-save").await.click().await.unwrap();
    b.wait_text(".flash", &format!("{name} now runs web=2"), 60)
        .await;
    match app.services.routes.get(&name) {
        Some(scalefog::routing::Target::Serving(set)) => assert_eq!(set.addrs().len(), 2),
        other => panic!("not serving: {other:?}"),
    }
    b.shot_of("#formation", "38g-processes").await;
    b.fill("#scale-web", "1").await;
    b.find("#formation-save").await.click().await.unwrap();
    b.wait_text(".flash", &format!("{name} now runs web=1"), 60)
        .await;

    // The scheduled job is listed; when its minute comes (the clock moved on, not waited
    // for), its run shows with its output.
    assert!(b.text("#cron").await.contains("/bin/busybox echo tick"));
    app.services.deployer.cron_clock().advance(60);
    let mut shown = false;
    for _ in 0..60 {
        b.goto(&app.url(&page)).await;
        if b.text("#cron").await.contains("succeeded") {
            shown = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(shown, "the cron run shows: {}", b.text("#cron").await);
    b.shot_of("#cron", "38h-cron").await;

    // A one-off run from the Runs card: it starts detached, and its outcome and output show.
    b.fill(
        "#run-command",
        "/bin/busybox sh -c 'echo from-console; exit 5'",
    )
    .await;
    b.find("#run-start").await.click().await.unwrap();
    b.wait_text(".flash", "Started run", 30).await;
    let mut done = false;
    for _ in 0..60 {
        b.goto(&app.url(&page)).await;
        if b.text("#run-list").await.contains("failed (exit 5)") {
            done = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(done, "the run shows: {}", b.text("#runs").await);
    assert!(b.source().await.contains("from-console"));
    b.shot_of("#runs", "38i-runs").await;

    b.client.set_window_size(390, 844).await.unwrap();
    b.goto(&app.url(&page)).await;
    b.find("#releases").await;
    // On a phone the top navigation and the tabs scroll sideways, without bare scrollbars.
    assert_eq!(
        b.scrollbars(".section-nav").await,
        (0, 0),
        "tab bar on a phone"
    );
    assert_eq!(
        b.scrollbars(".mainnav").await,
        (0, 0),
        "navigation on a phone"
    );
    b.shot_of(".topbar", "39a-nav-phone").await;
    b.shot_of(".section-nav", "39e-tabs-phone").await;
    b.shot_full("39-app-phone").await;
    b.shot_of("#releases", "39b-releases-phone").await;
    b.shot_of("#config", "39c-config-phone").await;
    b.client.set_window_size(1280, 900).await.unwrap();
    b.close().await;

    // The same app without JavaScript: everything is on the page, and every action is a form.
    let b = Browser::start(false, &tmp.path().join("shots")).await;
    b.sign_in(&app, "dave", &dave.password).await;
    served(&app, &name, "/from-a-browser-without-js").await;
    b.goto(&app.url(&page)).await;
    assert!(
        b.text("#runtime-log")
            .await
            .contains("url:/from-a-browser-without-js"),
        "the page carries the recent output"
    );
    assert!(b.text("#release-v3").await.contains("current"));
    b.shot_full("40-nojs-app").await;
    b.click_then("#restart-app", ".flash").await;
    let flash = b.text(".flash").await;
    assert!(
        flash.contains(&format!("Restarted {name}")) && flash.contains("v3"),
        "{flash}"
    );
    b.fill("#config-key", "MODE=quiet").await;
    b.click_then("#config-set", ".flash").await;
    assert!(b.text(".flash").await.contains("Set MODE: release v4"));
    b.find("#config-MODE summary").await.click().await.unwrap();
    assert_eq!(b.text("#config-MODE .config-value").await, "quiet");
    b.click_then("#config-MODE button[type=submit]", ".flash")
        .await;
    assert!(b.text(".flash").await.contains("Unset MODE: release v5"));
    b.fill("#memory", "128").await;
    b.click_then("#save-settings", ".flash").await;
    assert!(b.text(".flash").await.contains("Saved the settings"));
    assert_eq!(
        b.find("#memory")
            .await
            .prop("value")
            .await
            .unwrap()
            .unwrap(),
        "128"
    );
    b.find("#rollback-v2").await.click().await.unwrap();
    b.click_then("#rollback-confirm-v2", ".flash").await;
    assert!(
        b.text(".flash")
            .await
            .contains("Rolled back to v2: release v6")
    );
    assert_eq!(served(&app, &name, "/env.txt").await, "hello console");
    b.click_then(".build-list .item-title a", "#build-log")
        .await;
    assert!(b.text("#build-log").await.contains("Health check passed"));
    b.goto(&app.url(&page)).await;
    b.find("#stop-app").await.click().await.unwrap();
    b.click_then("#stop-confirm", ".flash").await;
    assert!(b.text("#app-status").await.contains("Stopped"));
    b.shot("41-nojs-stopped").await;

    // Deleting the app through the console removes its containers.
    b.fill("#confirm", &name).await;
    b.click_then("#delete-app", ".empty").await;
    let left = docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=scalefog.app={name}"),
    ]);
    assert_eq!(left, "", "no container of {name} is left");
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_queued_behind_a_running_build_answers_at_once_shows_progress_then_its_outcome() {
    let _turn = BROWSER_TURN.lock().await;
    let app = spawn_app_with(|c| c.health_timeout = 10).await;
    let _cleanup = DockerCleanup::of(&app);
    let erin = app.user("erin").await;
    let tmp = tempfile::tempdir().unwrap();
    let key = keygen(tmp.path(), "erin@laptop").await;
    let r = app.add_ssh_key(&erin.token, key.public.trim()).await;
    assert!(r.status().is_success());
    let name = format!("slow-{}", hex::encode(rand::random::<[u8; 3]>()));
    let _forget = ForgetApp(app.services.clone(), name.clone());
    let remote = app.create_app(&erin.token, &name).await["git_remote"]
        .as_str()
        .unwrap()
        .to_string();
    let b = Browser::start(true, &tmp.path().join("shots")).await;
    b.sign_in(&app, "erin", &erin.password).await;
    // v1 deploys; then v2's build takes longer than the console waits for an action.
    let port = app.ssh_port;
    let work = busybox_app(tmp.path(), &key, port, "first", "").await;
    ok(git(&work, &key, port, &["push", &remote, "main"]).await);
    let token = hex::encode(rand::random::<[u8; 4]>());
    let run =
        format!("RUN [\"/bin/busybox\", \"sh\", \"-c\", \"T={token}; echo slow-$T; sleep 20\"]\n");
    std::fs::write(work.join("Dockerfile"), dockerfile(&run, SERVE)).unwrap();
    ok(git(&work, &key, port, &["commit", "-qam", "slow"]).await);
    let push = tokio::spawn(async move {
        ok(git(&work, &key, port, &["push", &remote, "main"]).await);
    });
    let building = || {
        app.services
            .store
            .read(|r| r.instance(&name))
            .unwrap()
            .is_some_and(|i| i.status == scalefog::domain::InstanceStatus::Building)
    };
    while !building() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    b.goto(&app.url(&format!("/console/apps/{name}"))).await;
    b.find("#live-build").await;
    // The restart waits for the build; the browser gets its answer without waiting that long.
    b.find("#restart-app").await.click().await.unwrap();
    let progress = b.wait_text("#progress", "Restarting", 30).await;
    assert!(
        progress.contains(&format!("Restarting {name}…")),
        "{progress}"
    );
    b.shot("42-action-in-progress").await;
    // When it is done, the page reloads by itself and says how it went.
    let flash = b.wait_text(".flash", "Restarted", 120).await;
    assert!(flash.contains("v2"), "restarted after the build: {flash}");
    assert!(b.client.find(Locator::Css("#progress")).await.is_err());
    assert!(b.text("#app-status").await.contains("Running"));
    b.shot("43-action-done").await;
    push.await.unwrap();
    b.close().await;
}

#[tokio::test]
async fn every_form_works_with_javascript_disabled() {
    let _turn = BROWSER_TURN.lock().await;
    let app = spawn_app().await;
    let tmp = tempfile::tempdir().unwrap();
    let key = keygen(tmp.path(), "carol@desk").await;
    let b = Browser::start(false, &tmp.path().join("shots")).await;

    b.goto(&app.url("/console/register")).await;
    b.fill("#username", "carol").await;
    b.fill("#email", "carol@example.com").await;
    b.fill("#password", "password-carol").await;
    b.click_then("form button[type=submit]", ".empty").await;

    b.goto(&app.url("/console/ssh-keys")).await;
    b.fill("#sshkey", key.public.trim()).await;
    b.click_then("form[action='/console/ssh-keys'] button", ".fingerprint")
        .await;

    // No name: the server picks a readable one.
    b.goto(&app.url("/console/apps/new")).await;
    b.click_then("form[action='/console/apps'] button", "#git-remote")
        .await;
    let name = b
        .path()
        .await
        .trim_start_matches("/console/apps/")
        .to_string();
    assert!(name.contains('-'), "generated name {name}");
    assert!(
        !b.find("button.copy").await.is_displayed().await.unwrap(),
        "without JavaScript, copy buttons stay hidden (the commands are selectable text)"
    );
    b.shot("20-nojs-app").await;

    // A custom domain: a refused name is explained at the field; an added one is listed with
    // where its DNS should point, and the browser is back at the domains section.
    b.fill("#domain", "not a domain!").await;
    b.click_then("#domain-add", "#domain-error").await;
    assert!(
        b.text("#domain-error")
            .await
            .contains("is not a valid domain name")
    );
    b.shot_of("#domains", "22-nojs-domain-error").await;
    b.fill("#domain", "www.Example.org").await;
    b.click_then("#domain-add", ".domain-name").await;
    assert_eq!(b.text(".domain-name").await, "www.example.org");
    assert!(
        b.text(".domain-dns")
            .await
            .contains(&format!("{name}.localhost"))
    );
    assert_eq!(
        app.services
            .routes
            .lookup("www.example.org", "localhost")
            .map(|(n, _)| n),
        Some(name.clone())
    );
    b.shot("23-nojs-domain-added").await;
    // Removing asks first (a <details>, so no script is needed).
    b.find("#domains summary").await.click().await.unwrap();
    b.shot_of("#domains", "24-nojs-domain-remove").await;
    b.click_then("#domains .popover-panel button", "#domains .empty-inline")
        .await;
    assert!(b.text(".flash").await.contains("Removed www.example.org"));

    // A volume: a refused path is said in the flash; an added one is listed with its path and
    // removed after a confirmation, like a domain.
    b.fill("#volume-name", "data").await;
    b.fill("#volume-path", "relative").await;
    b.click_then("#volume-add", ".flash-err").await;
    assert!(
        b.text(".flash-err")
            .await
            .contains("No volume was added: 'relative' cannot be a volume's path")
    );
    b.fill("#volume-name", "data").await;
    b.fill("#volume-path", "/data").await;
    b.click_then("#volume-add", "[data-volume=data]").await;
    assert!(b.text("[data-volume=data]").await.contains("/data"));
    assert_eq!(
        app.services
            .store
            .read(|r| r.instance(&name))
            .unwrap()
            .unwrap()
            .volumes[0]
            .path
            .as_str(),
        "/data"
    );
    b.shot_of("#volumes", "25-nojs-volume-added").await;
    b.find("#volumes summary").await.click().await.unwrap();
    b.click_then("#volumes .popover-panel button", "#volumes .empty-inline")
        .await;
    assert!(b.text(".flash").await.contains("Removed volume data"));

    // The delete button is enabled without JS; the server checks the typed name.
    b.fill("#confirm", "wrong-name").await;
    b.click_then("#delete-app", ".flash").await;
    assert!(b.text(".flash-err").await.contains("Nothing was deleted"));
    b.shot("21-nojs-delete-refused").await;
    b.fill("#confirm", &name).await;
    b.click_then("#delete-app", ".empty").await;
    assert!(b.text(".flash").await.contains(&format!("Deleted {name}")));

    b.goto(&app.url("/console/account")).await;
    b.fill("#current_password", "password-carol").await;
    b.fill("#new_password", "password-carol-2").await;
    b.fill("#confirm_password", "password-carol-2").await;
    b.click_then("form[action='/console/account/password'] button", ".flash")
        .await;
    assert!(b.text(".flash").await.contains("Password changed"));

    b.click_then("form[action='/console/sign-out'] button", "#signin-title")
        .await;
    b.fill("#username", "carol").await;
    b.fill("#password", "password-carol-2").await;
    b.click_then("form button[type=submit]", ".empty").await;
    b.close().await;
}

// ----- over plain HTTP -----

#[tokio::test]
async fn a_second_user_gets_a_404_page_for_the_first_users_app() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    app.create_app(&alice.token, "alices-app").await;
    let bob = app.user("bob").await;
    let console = console_sign_in(&app, "bob", &bob.password).await;
    for path in [
        "/console/apps/alices-app",
        "/console/apps/no-such-app",
        "/console/apps/alices-app/status",
        "/console/apps/alices-app/builds/1",
        "/console/apps/alices-app/builds/1/stream",
        "/console/apps/alices-app/logs/stream",
    ] {
        let r = console.get(&app, path).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        let html = r.text().await.unwrap();
        assert!(
            html.contains("Not found") && html.contains("<html"),
            "{path}"
        );
    }
    for action in [
        "delete",
        "start",
        "stop",
        "restart",
        "rollback",
        "config",
        "config/unset",
        "settings",
        "builds/current/cancel",
        "domains",
        "domains/remove",
        "volumes",
        "volumes/remove",
    ] {
        let r = console
            .post(
                &app,
                &format!("/console/apps/alices-app/{action}"),
                &[
                    ("csrf", console.csrf.as_str()),
                    ("confirm", "alices-app"),
                    ("release", "v1"),
                    ("key", "SECRET"),
                    ("value", "stolen"),
                    ("memory", "64"),
                    ("domain", "stolen.example.org"),
                    ("name", "stolen"),
                    ("path", "/stolen"),
                    ("volume", "stolen"),
                ],
            )
            .await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{action}");
    }
    let alices = app
        .services
        .store
        .read(|r| r.instance("alices-app"))
        .unwrap();
    let alices = alices.unwrap();
    assert!(alices.env.is_empty(), "nothing was changed");
    assert!(alices.domains.is_empty(), "nothing was changed");
    assert!(alices.volumes.is_empty(), "nothing was changed");
    let list = console
        .get(&app, "/console/apps")
        .await
        .text()
        .await
        .unwrap();
    assert!(!list.contains("alices-app"));
    assert!(app.services.apps.regions().is_ok());
}

/// The custom domains of an app, as the store has them.
fn stored_domains(app: &TestApp, name: &str) -> Vec<String> {
    app.services
        .store
        .read(|r| r.instance(name))
        .unwrap()
        .expect("the app exists")
        .domains
}

/// Which app the router sends a host to.
fn routed_to(app: &TestApp, host: &str) -> Option<String> {
    app.services
        .routes
        .lookup(host, "localhost")
        .map(|(name, _)| name)
}

#[tokio::test]
async fn custom_domains_are_added_listed_routed_and_removed_on_the_app_page() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    app.create_app(&alice.token, "blog").await;
    let console = console_sign_in(&app, "alice", &alice.password).await;

    let page = console
        .get(&app, "/console/apps/blog")
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("href=\"#domains\""), "in the section nav");
    assert!(page.contains("No custom domains yet"));
    let (config, domains, settings) = (
        page.find("id=\"config\"").unwrap(),
        page.find("id=\"domains\"").unwrap(),
        page.find("id=\"settings\"").unwrap(),
    );
    assert!(
        config < domains && domains < settings,
        "between config vars and settings"
    );

    // Added as typed, stored and shown in its canonical form, routed at once.
    let r = console
        .post(
            &app,
            "/console/apps/blog/domains",
            &[("csrf", &console.csrf), ("domain", " WWW.Example.org. ")],
        )
        .await;
    assert_eq!(r.headers()["location"], "/console/apps/blog#domains");
    let page = console.follow(&app, r).await;
    assert!(
        page.contains(
            "Added www.example.org to blog. Point a CNAME record for it at blog.localhost."
        ),
        "the flash says what to do next"
    );
    assert!(page.contains("<span class=\"mono domain-name\">www.example.org</span>"));
    assert!(
        page.contains("<code>blog.localhost</code>"),
        "what DNS points at"
    );
    assert!(
        page.contains("name=\"domain\" value=\"www.example.org\""),
        "a remove form"
    );
    assert!(!page.contains("No custom domains yet"));
    assert_eq!(stored_domains(&app, "blog"), ["www.example.org"]);
    assert_eq!(routed_to(&app, "www.example.org").as_deref(), Some("blog"));

    // Adding it again changes nothing, and says so.
    let r = console
        .post(
            &app,
            "/console/apps/blog/domains",
            &[("csrf", &console.csrf), ("domain", "www.example.org")],
        )
        .await;
    let page = console.follow(&app, r).await;
    assert!(page.contains("www.example.org is already a domain of blog."));
    assert_eq!(stored_domains(&app, "blog"), ["www.example.org"]);

    // An invalid name and a platform subdomain: the page again, the error at the field, the
    // typed text kept, nothing stored.
    for (typed, says) in [
        ("not a domain!", "is not a valid domain name"),
        ("shop.localhost", "under the platform domain"),
    ] {
        let r = console
            .post(
                &app,
                "/console/apps/blog/domains",
                &[("csrf", &console.csrf), ("domain", typed)],
            )
            .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{typed}");
        let page = r.text().await.unwrap();
        let at = page
            .find("id=\"domain-error\"")
            .expect("an error at the form");
        let error = &page[at..at + page[at..].find("</div>").unwrap()];
        assert!(error.contains(says), "{typed}: {error}");
        assert!(
            page.contains(&format!("value=\"{typed}\"")),
            "{typed} is kept"
        );
        assert!(page.contains("aria-invalid=\"true\""));
        assert!(page.contains("<span class=\"mono domain-name\">www.example.org</span>"));
        assert_eq!(stored_domains(&app, "blog"), ["www.example.org"], "{typed}");
    }
    assert_eq!(routed_to(&app, "shop.localhost"), None);
    // Reloading the address the refused form was sent to goes back to the app page.
    let r = console.get(&app, "/console/apps/blog/domains").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/console/apps/blog#domains");

    // A domain another user's app has is refused with the core's 409 message.
    let bob = app.user("bob").await;
    app.create_app(&bob.token, "shop").await;
    let r = app.add_domain(&bob.token, "shop", "shop.example.org").await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = console
        .post(
            &app,
            "/console/apps/blog/domains",
            &[("csrf", &console.csrf), ("domain", "Shop.Example.org")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("is already attached to another app."),
        "the 409 message"
    );
    assert!(!page.contains("shop</"), "which app has it is not said");
    assert_eq!(stored_domains(&app, "blog"), ["www.example.org"]);
    assert_eq!(stored_domains(&app, "shop"), ["shop.example.org"]);
    assert_eq!(routed_to(&app, "shop.example.org").as_deref(), Some("shop"));

    // Removing: routed no more, and the empty state is back.
    let r = console
        .post(
            &app,
            "/console/apps/blog/domains/remove",
            &[("csrf", &console.csrf), ("domain", "www.example.org")],
        )
        .await;
    assert_eq!(r.headers()["location"], "/console/apps/blog#domains");
    let page = console.follow(&app, r).await;
    assert!(page.contains("Removed www.example.org from blog"));
    assert!(page.contains("No custom domains yet"));
    assert!(stored_domains(&app, "blog").is_empty());
    assert_eq!(routed_to(&app, "www.example.org"), None);
    // A domain the app does not have: a flash, nothing else removed.
    let r = console
        .post(
            &app,
            "/console/apps/blog/domains/remove",
            &[("csrf", &console.csrf), ("domain", "shop.example.org")],
        )
        .await;
    let page = console.follow(&app, r).await;
    assert!(page.contains("Nothing was removed"), "a flash");
    assert_eq!(stored_domains(&app, "shop"), ["shop.example.org"]);
}

#[tokio::test]
async fn another_user_cannot_touch_an_apps_domains_and_a_forged_domain_form_is_refused() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    app.create_app(&alice.token, "blog").await;
    let alice_console = console_sign_in(&app, "alice", &alice.password).await;
    let r = alice_console
        .post(
            &app,
            "/console/apps/blog/domains",
            &[("csrf", &alice_console.csrf), ("domain", "www.example.org")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);

    // Bob gets the 404 page, for adding, removing and the form's address alike.
    let bob = app.user("bob").await;
    let bob_console = console_sign_in(&app, "bob", &bob.password).await;
    for (path, domain) in [
        ("/console/apps/blog/domains", "bob.example.org"),
        ("/console/apps/blog/domains/remove", "www.example.org"),
    ] {
        let r = bob_console
            .post(
                &app,
                path,
                &[("csrf", &bob_console.csrf), ("domain", domain)],
            )
            .await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(r.text().await.unwrap().contains("Not found"), "{path}");
    }
    let r = bob_console.get(&app, "/console/apps/blog/domains").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(stored_domains(&app, "blog"), ["www.example.org"]);
    assert_eq!(routed_to(&app, "www.example.org").as_deref(), Some("blog"));
    assert_eq!(routed_to(&app, "bob.example.org"), None);

    // Alice's own session, without the token or with a wrong one: 403, nothing changes.
    for (path, domain) in [
        ("/console/apps/blog/domains", "forged.example.org"),
        ("/console/apps/blog/domains/remove", "www.example.org"),
    ] {
        for csrf in [None, Some("0123456789abcdef0123456789abcdef")] {
            let mut form = vec![("domain", domain)];
            form.extend(csrf.map(|c| ("csrf", c)));
            let r = alice_console.post(&app, path, &form).await;
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
            assert!(r.text().await.unwrap().contains("This form has expired"));
        }
    }
    assert_eq!(stored_domains(&app, "blog"), ["www.example.org"]);
    assert_eq!(routed_to(&app, "www.example.org").as_deref(), Some("blog"));
    assert_eq!(routed_to(&app, "forged.example.org"), None);
}

#[tokio::test]
async fn a_post_without_the_right_csrf_token_or_from_another_origin_is_refused() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let console = console_sign_in(&app, "alice", &alice.password).await;
    for form in [
        vec![("appname", "forged")],
        vec![
            ("appname", "forged"),
            ("csrf", "0123456789abcdef0123456789abcdef"),
        ],
    ] {
        let r = console.post(&app, "/console/apps", &form).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert!(r.text().await.unwrap().contains("This form has expired"));
    }
    let r = app
        .client
        .post(app.url("/console/apps"))
        .header("cookie", &console.cookie)
        .header("origin", "http://evil.localhost:8000")
        .form(&[("appname", "forged"), ("csrf", &console.csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Sign-in needs its token too (no login CSRF).
    let r = app
        .post_form(
            "/console/sign-in",
            &[("username", "alice"), ("password", &alice.password)],
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = app.instances(&alice.token).await;
    assert_eq!(r.json::<serde_json::Value>().await.unwrap(), json!([]));
    // With the token, the same post works.
    let r = console
        .post(
            &app,
            "/console/apps",
            &[("appname", "real-one"), ("csrf", &console.csrf)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/console/apps/real-one");
}

#[tokio::test]
async fn console_pages_send_security_headers_and_a_locked_down_session_cookie() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let page = app.sign_in_page().await;
    let h = page.headers();
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"));
    assert_eq!(h["x-frame-options"], "DENY");
    assert!(h.contains_key("referrer-policy"));
    assert_eq!(h["x-content-type-options"], "nosniff");

    let anon = cookie_value(&cookie_from(&page, "scalefog_csrf").unwrap());
    let token = hidden_csrf(&page.text().await.unwrap());
    assert_eq!(anon, token, "the form carries the cookie's token");
    let r = app.sign_in(&token, "alice", &alice.password).await;
    let set = cookie_from(&r, "scalefog_session").unwrap();
    assert!(set.contains("HttpOnly"), "{set}");
    assert!(set.contains("SameSite=Lax"), "{set}");
    assert!(
        !set.contains("Secure"),
        "plain http cannot use Secure cookies: {set}"
    );
    // Behind a TLS-terminating proxy, the cookie is Secure.
    let page = app
        .client
        .get(app.url("/console/sign-in"))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    assert!(
        cookie_from(&page, "scalefog_csrf")
            .unwrap()
            .contains("Secure")
    );
    // The JSON API is unchanged beside the console.
    let r = app.get("/instances", None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    error_body(r).await;
    assert_eq!(app.get("/nope", None).await.status(), StatusCode::NOT_FOUND);
    let r = app.get("/console/nope", None).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.text().await.unwrap().contains("Page not found"));
}

#[tokio::test]
async fn signing_out_revokes_the_session_on_the_server() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let console = console_sign_in(&app, "alice", &alice.password).await;
    let r = console
        .post(&app, "/console/sign-out", &[("csrf", &console.csrf)])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    // The old cookie, replayed, no longer signs anyone in.
    let r = console.get(&app, "/console/apps").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/console/sign-in");
}

#[tokio::test]
async fn too_many_failed_sign_ins_get_a_friendly_429_page() {
    let app = spawn_app().await;
    // Registered but never signed in, so no address is exempt from the username's lock.
    let r = app
        .register("alice", "alice@example.com", "password-alice")
        .await;
    assert!(r.status().is_success());
    let page = app.sign_in_page().await;
    let anon = cookie_value(&cookie_from(&page, "scalefog_csrf").unwrap());
    let mut last = StatusCode::OK;
    let mut body = String::new();
    for _ in 0..11 {
        let r = app.sign_in(&anon, "alice", "wrong-password").await;
        last = r.status();
        body = r.text().await.unwrap();
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
    assert!(body.contains("Too many failed sign-in attempts"), "{body}");
    assert!(body.contains("id=\"username\" name=\"username\" value=\"alice\""));
}

#[tokio::test]
async fn closed_registration_hides_the_register_page() {
    let app = spawn_app_with(|c| c.registration = scalefog::accounts::Registration::Closed).await;
    let html = app.sign_in_page().await.text().await.unwrap();
    assert!(!html.contains("/console/register"));
    let r = app.get("/console/register", None).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.unwrap().contains("Registration is closed"));
}

/// Changing the password signs the account out everywhere else: other login tokens and every
/// JWT stop working at once; the session that made the change and named API keys stay.
#[tokio::test]
async fn a_password_change_revokes_other_tokens_and_every_jwt() {
    let app = spawn_app().await;
    let u = app.user("alice").await;
    let created: serde_json::Value = app
        .create_api_key(&u.token, "ci")
        .await
        .json()
        .await
        .unwrap();
    let key = created["key"].as_str().unwrap().to_string();
    let pair: serde_json::Value = app.exchange(Some(&u.token)).await.json().await.unwrap();
    let from_key: serde_json::Value = app.exchange(Some(&key)).await.json().await.unwrap();
    let console = console_sign_in(&app, "alice", "password-alice").await;

    let r = console
        .post(
            &app,
            "/console/account/password",
            &[
                ("csrf", console.csrf.as_str()),
                ("current_password", "password-alice"),
                ("new_password", "password-alice-2"),
                ("confirm_password", "password-alice-2"),
            ],
        )
        .await;
    let page = console.follow(&app, r).await;
    assert!(page.contains("Password changed"), "{page}");

    assert_eq!(
        app.account(&u.token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    for p in [&pair, &from_key] {
        let access = p["access_token"].as_str().unwrap();
        assert_eq!(app.account(access).await.status(), StatusCode::UNAUTHORIZED);
        let r = app.exchange(p["refresh_token"].as_str()).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        app.account(&key).await.status(),
        StatusCode::OK,
        "API keys stay"
    );
    assert_eq!(
        console.get(&app, "/console/apps").await.status(),
        StatusCode::OK,
        "the session that made the change stays"
    );
    let fresh = app.token("alice", "password-alice-2").await;
    assert_eq!(app.account(&fresh).await.status(), StatusCode::OK);
}
