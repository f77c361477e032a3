//! Instance records: create, list, get, delete, regions, pagination, isolation between users.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn create_then_list_shows_the_instance_with_its_fields() {
    let app = spawn_app().await;
    let u = app.user("alice").await;
    let inst = app.create_app(&u.token, "my-app").await;
    assert_eq!(inst["name"], "my-app");
    assert_eq!(inst["owner"], "alice");
    assert_eq!(inst["region"], "1");
    assert_eq!(inst["status"], "created");
    assert!(inst["release"].is_null());
    assert!(inst["memory"].as_u64().unwrap() > 0);
    assert!(inst["cpu"].as_f64().unwrap() > 0.0);
    assert!(inst["created_at"].is_string());
    assert!(
        inst["url"]
            .as_str()
            .unwrap()
            .starts_with("http://my-app.localhost")
    );
    let remote = inst["git_remote"].as_str().unwrap();
    assert!(
        remote.starts_with("ssh://git@127.0.0.1:") && remote.ends_with("/my-app.git"),
        "{remote}"
    );
    let list: Value = app.instances(&u.token).await.json().await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["name"], "my-app");
}

#[tokio::test]
async fn without_a_name_a_readable_unique_name_is_generated() {
    let app = spawn_app().await;
    let u = app.user("alice").await;
    let mut names = std::collections::HashSet::new();
    for _ in 0..5 {
        let r = app.create_instance(&u.token, &[]).await;
        assert_eq!(r.status(), StatusCode::OK);
        let inst: Value = r.json().await.unwrap();
        let name = inst["name"].as_str().unwrap().to_string();
        assert_eq!(name.split('-').count(), 3, "{name}");
        assert!(names.insert(name));
    }
}

#[tokio::test]
async fn invalid_app_names_are_400() {
    let app = spawn_app().await;
    let u = app.user("alice").await;
    for bad in ["../x", "A", &"a".repeat(64), "x", "app-", "my_app", "1app"] {
        let r = app.create_instance(&u.token, &[("appname", bad)]).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(error_body(r).await["field"], "appname");
    }
}

#[tokio::test]
async fn a_taken_app_name_is_a_409_even_across_users() {
    let app = spawn_app().await;
    let a = app.user("alice").await;
    let b = app.user("bob").await;
    app.create_app(&a.token, "shared-name").await;
    let r = app
        .create_instance(&b.token, &[("appname", "shared-name")])
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
}

#[tokio::test]
async fn regions_list_maps_ids_to_names_and_an_unknown_region_is_400() {
    let app = spawn_app().await;
    let r = app.get("/instances/regions", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body, serde_json::json!([{"1": "Europe"}]));
    let u = app.user("alice").await;
    let r = app
        .create_instance(&u.token, &[("appname", "in-europe"), ("region", "1")])
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .create_instance(&u.token, &[("appname", "nowhere"), ("region", "99")])
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_body(r).await["field"], "region");
    let regions: Value = app.get("/v1/regions", None).await.json().await.unwrap();
    assert_eq!(regions[0]["name"], "Europe");
    let r = app.get("/v1/regions/1/instances", Some(&u.token)).await;
    assert_eq!(r.headers()["x-total-count"], "1");
    assert_eq!(
        app.get("/v1/regions/42/instances", Some(&u.token))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn another_users_instance_is_404_on_every_route() {
    let app = spawn_app().await;
    let a = app.user("alice").await;
    let b = app.user("bob").await;
    app.create_app(&b.token, "bobs-app").await;
    // alice is the first user and so an admin; carol is a plain second user of bob's level.
    let c = app.user("carol").await;
    for token in [&c.token] {
        assert_eq!(
            app.get_app(token, "bobs-app").await.status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            app.delete_app(token, "bobs-app").await.status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            app.delete_instance(token, "bobs-app").await.status(),
            StatusCode::NOT_FOUND
        );
        let list: Value = app.instances(token).await.json().await.unwrap();
        assert_eq!(list.as_array().unwrap().len(), 0);
    }
    // The same message as for an app that does not exist, so existence does not leak.
    let hidden = error_body(app.get_app(&c.token, "bobs-app").await).await;
    let missing = error_body(app.get_app(&c.token, "no-such-app").await).await;
    assert_eq!(hidden["error"], missing["error"]);
    assert_eq!(
        hidden["message"].as_str().unwrap().replace("bobs-app", "X"),
        missing["message"]
            .as_str()
            .unwrap()
            .replace("no-such-app", "X")
    );
    // Admins see everyone's with all=1 and may act on them.
    let all: Value = app
        .get("/instances?all=1", Some(&a.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all.as_array().unwrap().len(), 1);
    let mine: Value = app.instances(&a.token).await.json().await.unwrap();
    assert_eq!(mine.as_array().unwrap().len(), 0);
    assert_eq!(
        app.get_app(&a.token, "bobs-app").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn delete_removes_the_instance_and_frees_its_name() {
    let app = spawn_app().await;
    let u = app.user("alice").await;
    app.create_app(&u.token, "short-lived").await;
    let r = app.delete_instance(&u.token, "short-lived").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        app.get_app(&u.token, "short-lived").await.status(),
        StatusCode::NOT_FOUND
    );
    app.create_app(&u.token, "short-lived").await;
    assert_eq!(
        app.delete_app(&u.token, "short-lived").await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.delete_instance(&u.token, "short-lived").await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn v1_lists_are_paginated_with_a_total_header() {
    let app = spawn_app().await;
    let u = app.user("alice").await;
    for i in 0..7 {
        let r = app
            .post_form(
                "/v1/instances",
                &[("name", &format!("app-{i:02}"))],
                Some(&u.token),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let r = app
        .get("/v1/instances?page=2&per_page=3", Some(&u.token))
        .await;
    assert_eq!(r.headers()["x-total-count"], "7");
    let page: Value = r.json().await.unwrap();
    let names: Vec<_> = page
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["app-03", "app-04", "app-05"]);
    let r = app.get("/v1/instances", Some(&u.token)).await;
    assert_eq!(
        r.json::<Value>().await.unwrap().as_array().unwrap().len(),
        7,
        "default per_page is 50"
    );
    for bad in ["page=0", "per_page=101", "per_page=0", "page=x"] {
        let r = app
            .get(&format!("/v1/instances?{bad}"), Some(&u.token))
            .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    let r = app.get("/v1/instances?page=99", Some(&u.token)).await;
    assert_eq!(r.headers()["x-total-count"], "7");
    assert_eq!(
        r.json::<Value>().await.unwrap().as_array().unwrap().len(),
        0
    );
}

#[tokio::test]
async fn admins_manage_nodes_and_others_cannot() {
    let app = spawn_app().await;
    let admin = app.user("alice").await;
    let bob = app.user("bob").await;
    let nodes: Value = app
        .get("/v1/nodes", Some(&admin.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(nodes[0]["id"], "1");
    assert_eq!(
        app.get("/v1/nodes", Some(&bob.token)).await.status(),
        StatusCode::FORBIDDEN
    );
    let r = app
        .post_form(
            "/v1/nodes",
            &[
                ("name", "edge-1"),
                ("address", "10.0.0.5"),
                ("port", "2376"),
                ("ram", "4096"),
                ("insecure", "true"),
            ],
            Some(&admin.token),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let node: Value = r.json().await.unwrap();
    assert_eq!(node["address"], "tcp://10.0.0.5:2376");
    // The panel's fields stay strings, as given.
    assert_eq!(node["ram"], "4096");
    assert_eq!(node["port"], "2376");
    let r = app
        .post_form(
            "/v1/nodes",
            &[("name", "bad"), ("address", "x"), ("ram", "lots")],
            Some(&admin.token),
        )
        .await;
    // Plain tcp:// without TLS is refused unless the admin says `insecure`.
    assert_eq!(error_body(r).await["field"], "address");
    assert_eq!(
        app.delete("/v1/nodes/1", Some(&admin.token)).await.status(),
        StatusCode::FORBIDDEN
    );
    let id = node["id"].as_str().unwrap();
    assert_eq!(
        app.delete(&format!("/v1/nodes/{id}"), Some(&admin.token))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn lists_show_every_change_at_once() {
    let app = spawn_app().await;
    let u = app.user("alice").await;
    let count = |v: Value| v.as_array().unwrap().len();
    assert_eq!(
        count(app.instances(&u.token).await.json().await.unwrap()),
        0
    );
    app.create_app(&u.token, "first-app").await;
    assert_eq!(
        count(app.instances(&u.token).await.json().await.unwrap()),
        1
    );
    assert_eq!(
        count(
            app.get("/v1/instances", Some(&u.token))
                .await
                .json()
                .await
                .unwrap()
        ),
        1
    );
    app.create_app(&u.token, "second-app").await;
    let r = app.get("/v1/instances", Some(&u.token)).await;
    assert_eq!(r.headers()["x-total-count"], "2");
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(
        count(app.instances(&u.token).await.json().await.unwrap()),
        2
    );
    app.delete_instance(&u.token, "first-app").await;
    let list: Value = app.instances(&u.token).await.json().await.unwrap();
    assert_eq!(count(list.clone()), 1);
    assert_eq!(list[0]["name"], "second-app");
    // Another user's list is their own, even right after alice's was cached.
    let b = app.user("bob").await;
    assert_eq!(
        count(app.instances(&b.token).await.json().await.unwrap()),
        0
    );
}

/// A body that does not parse as its content type creates nothing: three NUL bytes sent as a
/// form used to be read as an empty form, and an app with a generated name was made.
#[tokio::test]
async fn a_form_body_that_is_not_a_form_is_400_and_creates_nothing() {
    let app = spawn_app().await;
    let u = app.user("alice").await;
    for body in [&b"\0\0\0"[..], b"appname=ok\0", b"%00=x", b"\x01\x02=y"] {
        for path in ["/v1/instances", "/instances/create"] {
            let r = app
                .client
                .post(app.url(path))
                .bearer_auth(&u.token)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body.to_vec())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{path} {body:?}");
            let e = error_body(r).await;
            assert_eq!(e["field"], "body", "{e}");
        }
    }
    let list: Value = app.instances(&u.token).await.json().await.unwrap();
    assert_eq!(
        list.as_array().unwrap().len(),
        0,
        "nothing was created: {list}"
    );
}
