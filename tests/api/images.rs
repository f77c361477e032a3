//! The images users may deploy: the admins' catalog (`/v1/images`, the console's Images page),
//! the local engine's images, and the panel's `GET /api/images`.

use crate::console::console_sign_in;
use crate::dockerapp::{docker, unique};
use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::io::Write;
use std::process::{Command, Stdio};

/// Images a test built, removed (by their label) when it ends, even when it fails.
struct TestImages(String);

impl TestImages {
    fn new() -> TestImages {
        TestImages(unique("images-test"))
    }

    /// Builds an empty `FROM scratch` image tagged `tags`, with this test's label and `labels`.
    fn build(&self, tags: &[&str], labels: &[&str]) -> String {
        let mut args = vec!["build", "-q", "--label"];
        let mine = format!("scalefog-test={}", self.0);
        args.push(&mine);
        for l in labels {
            args.extend(["--label", l]);
        }
        for t in tags {
            args.extend(["-t", t]);
        }
        args.push("-");
        let mut child = Command::new("docker")
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker build");
        // A different file per image, so that two builds are two images.
        let dockerfile = format!(
            "FROM scratch\nLABEL scalefog-test-tags=\"{}\"\n",
            tags.join(" ")
        );
        child
            .stdin
            .take()
            .unwrap()
            .write_all(dockerfile.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "docker build {tags:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }
}

impl Drop for TestImages {
    fn drop(&mut self) {
        let ids = docker(&[
            "images",
            "-q",
            "--filter",
            &format!("label=scalefog-test={}", self.0),
        ]);
        for id in ids.split_whitespace() {
            docker(&["rmi", "-f", "--no-prune", id]);
        }
    }
}

async fn list(app: &TestApp, token: &str) -> Vec<Value> {
    let r = app.images(token).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json::<Value>().await.unwrap().as_array().unwrap().clone()
}

fn find<'a>(list: &'a [Value], reference: &str) -> Option<&'a Value> {
    list.iter().find(|i| i["reference"] == reference)
}

async fn panel_images(app: &TestApp, key: &str) -> reqwest::Response {
    app.client
        .get(app.url("/api/images"))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn admins_keep_the_catalog_and_users_read_it() {
    let app = spawn_app().await;
    let admin = app.user("alice").await;
    let bob = app.user("bob").await;
    let (a, b) = (admin.token.as_str(), bob.token.as_str());

    let r = app.add_image(b, "busybox", "").await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = app
        .add_image(a, "registry.example.com/team/app", "CI builds")
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let added: Value = r.json().await.unwrap();
    assert_eq!(added["reference"], "registry.example.com/team/app");
    assert_eq!(added["description"], "CI builds");
    let r = app.add_image(a, "docker.io/library/busybox:1.36", "").await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(
        r.json::<Value>().await.unwrap()["reference"],
        "busybox:1.36"
    );
    // The same reference however written is one entry.
    let r = app.add_image(a, "busybox:1.36", "again").await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let r = app.add_image(a, "Not/An Image", "").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_body(r).await["field"], "reference");
    let r = app
        .post_json("/v1/images", &json!({"description": "x"}), Some(a))
        .await;
    assert_eq!(error_body(r).await["field"], "reference");

    // A user sees the catalog, deployable, and nothing of the node.
    let seen = list(&app, b).await;
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen.iter().all(|i| i["source"] == "catalog"));
    assert!(seen.iter().all(|i| i["deployable"] == true));
    let r = app.images(b).await;
    assert_eq!(r.headers()["x-total-count"], "2");
    let r = app.get("/v1/images?per_page=1&page=2", Some(b)).await;
    assert_eq!(
        r.json::<Value>().await.unwrap().as_array().unwrap().len(),
        1
    );
    assert_eq!(
        app.get("/v1/images", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // The panel's listing is for admins' keys.
    assert_eq!(panel_images(&app, b).await.status(), StatusCode::FORBIDDEN);

    // Removed by id or by reference, by admins only.
    let id = added["id"].as_str().unwrap();
    assert_eq!(
        app.remove_image(b, id).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.remove_image(a, id).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.remove_image(a, id).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.remove_image(a, "docker.io/library/busybox:1.36")
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert!(list(&app, b).await.is_empty());
}

#[tokio::test]
async fn the_node_images_are_listed_for_admins_without_the_images_built_for_apps() {
    let app = spawn_app().await;
    let admin = app.user("alice").await;
    let bob = app.user("bob").await;
    let images = TestImages::new();
    let repo = format!("scalefog-test/{}", images.0);
    let (v1, v2) = (format!("{repo}:v1"), format!("{repo}:v2"));
    images.build(&[&v1, &v2], &[]);
    let built = format!("scalefog-test/{}-app:v1", images.0);
    // What a Scalefog build leaves: labelled `scalefog`.
    images.build(&[&built], &["scalefog=1"]);

    let all = list(&app, &admin.token).await;
    let node = find(&all, &v1).unwrap_or_else(|| panic!("{v1} in {all:?}"));
    assert_eq!(node["source"], "node");
    assert_eq!(node["on_node"], true);
    assert_eq!(node["id"], Value::Null);
    assert_eq!(node["other_tags"], json!([v2.clone()]));
    assert!(find(&all, &v2).is_some());
    assert!(find(&all, &built).is_none(), "an app's image is not listed");
    // Nor are they shown to users.
    assert!(find(&list(&app, &bob.token).await, &v1).is_none());

    // In the catalog, it is listed once, as a catalog image the node holds; a user may deploy
    // it, and every tag of it when the entry is the repository.
    let r = app.add_image(&admin.token, &repo, "the test's image").await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = app.add_image(&admin.token, &v1, "").await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let all = list(&app, &admin.token).await;
    let entry = find(&all, &v1).unwrap();
    assert_eq!(entry["source"], "catalog");
    assert_eq!(entry["on_node"], true);
    assert_eq!(all.iter().filter(|i| i["reference"] == v1).count(), 1);
    let users = list(&app, &bob.token).await;
    assert_eq!(find(&users, &repo).unwrap()["on_node"], false);
    assert_eq!(find(&users, &v1).unwrap()["deployable"], true);
    let s = &app.services;
    let bob_p = s
        .accounts
        .authenticate(&bob.token, scalefog::domain::Origin::CLI)
        .unwrap();
    assert!(s.images.check_deployable(&bob_p, &v2).is_ok());
    // Only what the catalog admits: not another repository the node holds.
    assert!(s.images.check_deployable(&bob_p, &built).is_err());

    // The panel's shape: `Image` is what `/api/instances/deploy` takes.
    let r = panel_images(&app, &admin.token).await;
    assert_eq!(r.status(), StatusCode::OK);
    let panel: Vec<Value> = r.json().await.unwrap();
    let p = panel.iter().find(|i| i["Image"] == v1).unwrap();
    assert_eq!(p["Name"], v1);
    assert_eq!(p["Source"], "catalog");
    assert_eq!(p["AltImages"], json!([v2.clone()]));
    assert!(p["Id"].as_str().is_some_and(|id| !id.is_empty()));
    let p = panel.iter().find(|i| i["Image"] == v2).unwrap();
    assert_eq!(p["Source"], "node");
    assert!(p["Id"].as_str().unwrap().starts_with("sha256:"));
}

#[tokio::test]
async fn the_console_images_page_adds_and_removes_catalog_entries_for_admins_only() {
    let app = spawn_app().await;
    app.user("alice").await;
    app.user("bob").await;
    let admin = console_sign_in(&app, "alice", "password-alice").await;
    let page = admin.get(&app, "/console/admin/images").await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("The catalog is empty"), "{html}");
    assert!(html.contains("href=\"/console/admin/images\""));

    let r = admin
        .post(
            &app,
            "/console/admin/images",
            &[
                ("csrf", admin.csrf.as_str()),
                ("reference", "ghcr.io/acme/web"),
                ("description", "Acme <web> front"),
            ],
        )
        .await;
    let html = admin.follow(&app, r).await;
    assert!(
        html.contains("Added ghcr.io/acme/web to the catalog"),
        "{html}"
    );
    assert!(html.contains("Acme &#60;web&#62; front") || html.contains("Acme &lt;web&gt; front"));
    let id = app
        .services
        .images
        .catalog(
            &app.services
                .accounts
                .authenticate(
                    &app.token("alice", "password-alice").await,
                    scalefog::domain::Origin::CLI,
                )
                .unwrap(),
        )
        .unwrap()[0]
        .id;

    // A bad reference re-renders the form with the message and what was typed.
    let r = admin
        .post(
            &app,
            "/console/admin/images",
            &[("csrf", admin.csrf.as_str()), ("reference", "Bad Ref")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let html = r.text().await.unwrap();
    assert!(html.contains("is not an image reference"), "{html}");
    assert!(html.contains("value=\"Bad Ref\""));

    // Someone else cannot see the page or change the catalog.
    let bob = console_sign_in(&app, "bob", "password-bob").await;
    assert_eq!(
        bob.get(&app, "/console/admin/images").await.status(),
        StatusCode::FORBIDDEN
    );
    assert!(
        !bob.get(&app, "/console/apps")
            .await
            .text()
            .await
            .unwrap()
            .contains("/console/admin/images")
    );
    let path = format!("/console/admin/images/{id}/delete");
    let r = bob.post(&app, &path, &[("csrf", bob.csrf.as_str())]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    let r = admin
        .post(&app, &path, &[("csrf", admin.csrf.as_str())])
        .await;
    let html = admin.follow(&app, r).await;
    assert!(html.contains("Removed ghcr.io/acme/web"), "{html}");
    assert!(html.contains("The catalog is empty"));
}
