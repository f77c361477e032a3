//! The admin panel API under /api, with the paths and status codes of the panel it copies.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn panel(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    key: &str,
    body: Value,
) -> reqwest::Response {
    app.client
        .request(method, app.url(path))
        .header("x-api-key", key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_panel_needs_an_admin_key() {
    let app = spawn_app().await;
    let _admin = app.user("alice").await;
    let bob = app.user("bob").await;
    assert_eq!(
        app.get("/api/users", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let r = app
        .client
        .get(app.url("/api/users"))
        .header("x-api-key", "0123456789abcdef0123456789abcdef")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = app
        .client
        .get(app.url("/api/users"))
        .header("x-api-key", &bob.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn users_are_created_listed_and_found_by_email_or_username() {
    let app = spawn_app().await;
    let admin = app.user("alice").await;
    let k = &admin.token;
    let r = panel(&app, reqwest::Method::POST, "/api/users/create", k, json!({"username": "carol", "email": "carol@example.com", "password": "password1", "admin": true})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let carol: Value = r.json().await.unwrap();
    assert_eq!(carol["admin"], true);
    let r = panel(
        &app,
        reqwest::Method::POST,
        "/api/users/create",
        k,
        json!({"username": "carol", "email": "c2@example.com", "password": "password1"}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let r = panel(
        &app,
        reqwest::Method::POST,
        "/api/users/create",
        k,
        json!({"username": "dave"}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let users: Value = app
        .client
        .get(app.url("/api/users"))
        .header("x-api-key", k)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(users.as_array().unwrap().len(), 2);
    let r = panel(
        &app,
        reqwest::Method::POST,
        "/api/getUser",
        k,
        json!({"type": "email", "value": "carol@example.com"}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.json::<Value>().await.unwrap()["username"], "carol");
    let r = panel(
        &app,
        reqwest::Method::POST,
        "/api/getUser",
        k,
        json!({"type": "username", "value": "nobody"}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = panel(
        &app,
        reqwest::Method::POST,
        "/api/getUser",
        k,
        json!({"type": "phone", "value": "1"}),
    )
    .await;
    assert_eq!(error_body(r).await["field"], "type");
}

#[tokio::test]
async fn instances_are_listed_per_user_found_and_deleted() {
    let app = spawn_app().await;
    let admin = app.user("alice").await;
    let bob = app.user("bob").await;
    app.create_app(&bob.token, "bob-one").await;
    app.create_app(&bob.token, "bob-two").await;
    let k = &admin.token;
    let all: Value = app
        .client
        .get(app.url("/api/instances"))
        .header("x-api-key", k)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all.as_array().unwrap().len(), 2);
    let bob_id = app.get_user(k, "bob").await.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = panel(
        &app,
        reqwest::Method::POST,
        "/api/getUserInstance",
        k,
        json!({"userId": bob_id}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.json::<Value>().await.unwrap().as_array().unwrap().len(),
        2
    );
    let r = panel(
        &app,
        reqwest::Method::POST,
        "/api/getUserInstance",
        k,
        json!({"userId": "999"}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = panel(
        &app,
        reqwest::Method::POST,
        "/api/getInstance",
        k,
        json!({"id": "bob-one"}),
    )
    .await;
    assert_eq!(r.json::<Value>().await.unwrap()["owner"], "bob");
    let r = panel(
        &app,
        reqwest::Method::POST,
        "/api/getInstance",
        k,
        json!({}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = panel(
        &app,
        reqwest::Method::DELETE,
        "/api/instance/delete",
        k,
        json!({"id": "bob-one"}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = panel(
        &app,
        reqwest::Method::DELETE,
        "/api/instance/delete",
        k,
        json!({"id": "bob-one"}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn nodes_are_created_listed_and_deleted() {
    let app = spawn_app().await;
    let admin = app.user("alice").await;
    let k = &admin.token;
    let r = panel(&app, reqwest::Method::POST, "/api/nodes/create", k, json!({"name": "edge", "tags": "ssd,eu", "ram": "2048", "disk": "40", "processor": "2", "address": "10.1.2.3", "port": "2375", "insecure": true})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let node: Value = r.json().await.unwrap();
    assert_eq!(node["tags"], json!(["ssd", "eu"]));
    let nodes: Value = app
        .client
        .get(app.url("/api/nodes"))
        .header("x-api-key", k)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(nodes.as_array().unwrap().len(), 2);
    let r = panel(
        &app,
        reqwest::Method::DELETE,
        "/api/nodes/delete",
        k,
        json!({"nodeId": node["id"]}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = panel(
        &app,
        reqwest::Method::DELETE,
        "/api/nodes/delete",
        k,
        json!({"nodeId": "abc"}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = panel(
        &app,
        reqwest::Method::DELETE,
        "/api/nodes/delete",
        k,
        json!({"nodeId": "77"}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}
