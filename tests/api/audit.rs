//! The audit log and sealed config vars, end to end: changes made through the API, the console
//! (its form posts) and an SSH push are each recorded with who, the channel and the address;
//! a user reads only their own part of the log; a secret config var is masked in the API and
//! the console, reaches the app's container in clear, and is in clear nowhere in the store file.

use crate::dockerapp::*;
use crate::gitssh::*;
use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The entries of the audit log `token` may read (at most 100, newest first).
async fn audit_of(app: &TestApp, token: &str) -> Vec<Value> {
    let r = app.audit(token, "per_page=100").await;
    assert_eq!(r.status(), StatusCode::OK);
    let total: u64 = r.headers()["x-total-count"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let items: Vec<Value> = r.json().await.unwrap();
    assert_eq!(items.len() as u64, total.min(100));
    items
}

/// The newest entry with this action by this user (on this app, when given).
fn entry<'a>(log: &'a [Value], user: &str, action: &str, app: Option<&str>) -> &'a Value {
    log.iter()
        .find(|e| {
            e["username"] == user && e["action"] == action && app.is_none_or(|a| e["app"] == a)
        })
        .unwrap_or_else(|| panic!("no {action} entry of {user} in {log:#?}"))
}

fn assert_from(e: &Value, username: &str, channel: &str) {
    assert_eq!(e["username"], username, "{e}");
    assert_eq!(e["channel"], channel, "{e}");
    assert_eq!(e["address"], "127.0.0.1", "{e}");
}

fn set_cookie(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .unwrap_or_else(|| panic!("no {name} cookie"))
        .to_string()
}

fn hidden_csrf(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[at..at + 32].to_string()
}

/// Signs in through the console's form; the session cookie and the session's CSRF token.
async fn console_sign_in(app: &TestApp, username: &str, password: &str) -> (String, String) {
    let page = app.sign_in_page().await;
    let anon = set_cookie(&page, "scalefog_csrf");
    let r = app.sign_in(&anon, username, password).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "sign in as {username}");
    let cookie = format!("scalefog_session={}", set_cookie(&r, "scalefog_session"));
    let html = console_get(app, &cookie, "/console/apps").await;
    (cookie, hidden_csrf(&html))
}

async fn console_get(app: &TestApp, cookie: &str, path: &str) -> String {
    let r = app
        .client
        .get(app.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{path}");
    r.text().await.unwrap()
}

fn store_file_holds(app: &TestApp, needle: &str) -> bool {
    let bytes = std::fs::read(app.data_dir.join("scalefog.redb")).unwrap();
    bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn changes_through_the_api_the_console_and_a_push_are_audited_and_secrets_stay_sealed() {
    let app = spawn_app().await;
    let _cleanup = DockerCleanup::of(&app);
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let name = unique("audited");
    let bobs_app = unique("bobs");
    app.create_app(&alice.token, &name).await;
    app.create_app(&bob.token, &bobs_app).await;

    // API: a plain and a secret config var before the first deploy.
    let r = app
        .set_config(
            &alice.token,
            &name,
            &json!({"GREETING": "hello", "DB_PASSWORD": {"value": "api-secret-4711", "secret": true}}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let shown: Value = r.json().await.unwrap();
    assert_eq!(
        shown,
        json!({"GREETING": "hello", "DB_PASSWORD": "********"})
    );
    let r = app.config(&alice.token, &name).await;
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"GREETING": "hello", "DB_PASSWORD": "********"})
    );

    // SSH: a push deploys; the container gets the clear values.
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "alice").await;
    add_key(&app, &alice.token, &key).await;
    let wt = dir.path().join("app");
    std::fs::create_dir_all(wt.join("www")).unwrap();
    std::fs::copy("/bin/busybox", wt.join("busybox")).expect("/bin/busybox exists");
    std::fs::write(wt.join("www/index.html"), "audited").unwrap();
    std::fs::write(wt.join("Dockerfile"), dockerfile("", SERVE)).unwrap();
    ok(git(&wt, &key, app.ssh_port, &["init", "-q", "-b", "main"]).await);
    commit(&wt, &key, app.ssh_port, "first").await;
    let remote = format!("ssh://git@127.0.0.1:{}/{name}.git", app.ssh_port);
    ok(git(&wt, &key, app.ssh_port, &["push", &remote, "main"]).await);
    let deployment = app
        .services
        .store
        .read(|r| r.deployment(&name))
        .unwrap()
        .expect("deployed");
    let env = inspect(&deployment.processes[0].id)["Config"]["Env"].clone();
    let env: Vec<&str> = env
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(env.contains(&"DB_PASSWORD=api-secret-4711"), "{env:?}");

    // Console: sign in, set a secret var with the form; the page never shows it.
    let (cookie, csrf) = console_sign_in(&app, "alice", &alice.password).await;
    let r = app
        .client
        .post(app.url(&format!("/console/apps/{name}/config")))
        .header("cookie", &cookie)
        .form(&[
            ("csrf", csrf.as_str()),
            ("key", "STRIPE_KEY"),
            ("value", "console-secret-0815"),
            ("secret", "on"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let page = console_get(&app, &cookie, &format!("/console/apps/{name}")).await;
    assert!(
        page.contains("STRIPE_KEY") && page.contains("hello"),
        "{page}"
    );
    assert!(!page.contains("console-secret-0815") && !page.contains("api-secret-4711"));
    let r = app.config(&alice.token, &name).await;
    let shown: Value = r.json().await.unwrap();
    assert_eq!(shown["STRIPE_KEY"], "********");
    let deployment = app
        .services
        .store
        .read(|r| r.deployment(&name))
        .unwrap()
        .unwrap();
    let env = inspect(&deployment.processes[0].id)["Config"]["Env"].to_string();
    assert!(env.contains("STRIPE_KEY=console-secret-0815"), "{env}");

    // More of the API: a custom domain, and a rollback to the pushed release.
    let r = app
        .add_domain(&alice.token, &name, "audited.example.org")
        .await;
    assert!(r.status().is_success());
    let r = app
        .rollback(&alice.token, &name, &json!({"release": "v1"}))
        .await;
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());

    // At rest: neither value is anywhere in the store file.
    for secret in ["api-secret-4711", "console-secret-0815", "hello"] {
        assert!(
            !store_file_holds(&app, secret),
            "{secret} is in the store file"
        );
    }

    // The log as alice reads it: who, channel and address of each change.
    let log = audit_of(&app, &alice.token).await;
    assert_from(entry(&log, "alice", "user.register", None), "alice", "api");
    assert_from(
        entry(&log, "alice", "app.create", Some(&name)),
        "alice",
        "api",
    );
    assert_from(entry(&log, "alice", "ssh_key.add", None), "alice", "api");
    let deploy = entry(&log, "alice", "app.deploy", Some(&name));
    assert_from(deploy, "alice", "ssh");
    assert!(
        deploy["detail"].as_str().unwrap().starts_with("v1: deploy"),
        "{deploy}"
    );
    let rollback = entry(&log, "alice", "app.rollback", Some(&name));
    assert_from(rollback, "alice", "api");
    assert_eq!(rollback["detail"], "v3: rollback to v1");
    let domain = entry(&log, "alice", "app.domain_add", Some(&name));
    assert_eq!(domain["detail"], "audited.example.org");
    let configs: Vec<&Value> = log.iter().filter(|e| e["action"] == "app.config").collect();
    assert_eq!(configs.len(), 2, "{configs:#?}");
    assert_from(configs[0], "alice", "console");
    assert_from(configs[1], "alice", "api");
    assert!(
        configs[1]["detail"]
            .as_str()
            .unwrap()
            .contains("DB_PASSWORD secret")
    );
    assert!(
        log.iter().all(|e| !e.to_string().contains("secret-")),
        "no value in the log"
    );
    let sign_ins: Vec<&Value> = log
        .iter()
        .filter(|e| e["action"] == "sign_in" && e["username"] == "alice")
        .collect();
    assert_eq!(sign_ins.len(), 2, "{sign_ins:#?}");
    assert_from(sign_ins[0], "alice", "console");
    assert_from(sign_ins[1], "alice", "api");
    let page = console_get(&app, &cookie, "/console/audit").await;
    assert!(
        page.contains("app.deploy") && page.contains(&name),
        "{page}"
    );

    // Bob sees his own entries and none of alice's.
    let bobs = audit_of(&app, &bob.token).await;
    assert!(!bobs.is_empty());
    for e in &bobs {
        assert_eq!(e["username"], "bob", "{e}");
        assert_ne!(e["app"], name.as_str(), "{e}");
    }
    // Alice, the first user, is an admin: she reads everyone's, bob's app among them.
    assert!(log.iter().any(|e| e["app"] == bobs_app.as_str()));
    assert_eq!(
        app.audit(&bob.token, "per_page=0").await.status(),
        StatusCode::BAD_REQUEST
    );
}
