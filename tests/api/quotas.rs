//! Abuse limits: the most memory an app may have, and per user how many apps, processes and how
//! much memory in all, from the settings or set for one user by an admin.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn an_app_asking_for_more_memory_than_max_app_memory_is_refused_naming_field_and_limit() {
    let app = spawn_app().await;
    let u = app.user("alice").await;
    app.create_app(&u.token, "big").await;
    let r = app
        .update_app(&u.token, "big", &json!({"memory": 1_048_576}))
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body = error_body(r).await;
    assert_eq!(body["field"], "memory");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("16384 MiB") && message.contains("max_app_memory"),
        "{message}"
    );
    let inst: Value = app.get_app(&u.token, "big").await.json().await.unwrap();
    assert_eq!(inst["memory"], 256, "nothing changed");
    let r = app
        .update_app(&u.token, "big", &json!({"memory": 2048}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn two_creates_at_once_for_the_last_app_of_a_quota_let_exactly_one_through() {
    let app = spawn_app_with(|c| c.limits.max_apps_per_user = Some(2)).await;
    let u = app.user("alice").await;
    app.create_app(&u.token, "first").await;
    let (a, b) = tokio::join!(
        app.create_instance(&u.token, &[("appname", "second-a")]),
        app.create_instance(&u.token, &[("appname", "second-b")]),
    );
    let mut statuses = [a.status(), b.status()];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::FORBIDDEN]);
    let refused = if a.status() == StatusCode::FORBIDDEN {
        a
    } else {
        b
    };
    let body = error_body(refused).await;
    assert_eq!(body["error"], "forbidden");
    assert!(
        body["message"].as_str().unwrap().contains("quota max_apps"),
        "{body}"
    );
    let apps: Value = app.instances(&u.token).await.json().await.unwrap();
    assert_eq!(apps.as_array().unwrap().len(), 2);
    // Deleting one makes room again.
    assert_eq!(
        app.delete_app(&u.token, "first").await.status(),
        StatusCode::NO_CONTENT
    );
    app.create_app(&u.token, "third").await;
}

#[tokio::test]
async fn an_admin_sets_a_users_own_quota_through_the_api_and_it_holds() {
    let app = spawn_app_with(|c| c.limits.max_apps_per_user = Some(1)).await;
    let admin = app.user("root").await;
    let u = app.user("alice").await;
    app.create_app(&u.token, "one").await;
    let r = app.create_instance(&u.token, &[("appname", "two")]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // Not for users to set their own.
    let r = app
        .patch_json("/v1/users/alice", &json!({"max_apps": 10}), Some(&u.token))
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = app
        .patch_json(
            "/v1/users/alice",
            &json!({"max_apps": "many"}),
            Some(&admin.token),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_body(r).await["field"], "max_apps");

    let r = app
        .patch_json(
            "/v1/users/alice",
            &json!({"max_apps": 3, "max_memory": 700}),
            Some(&admin.token),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let user: Value = r.json().await.unwrap();
    assert_eq!(
        user["quota"],
        json!({"max_apps": 3, "max_memory": 700, "apps": 1, "memory": 256,
               "max_replicas": null, "replicas": 1, "own": ["max_apps", "max_memory"]})
    );
    app.create_app(&u.token, "two").await;
    // 256 + 256 of 700 MiB: a third app would make 768.
    let r = app.create_instance(&u.token, &[("appname", "three")]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(
        error_body(r).await["message"]
            .as_str()
            .unwrap()
            .contains("quota max_memory")
    );
    let r = app
        .update_app(&u.token, "two", &json!({"memory": 500}))
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = app
        .update_app(&u.token, "two", &json!({"memory": 128}))
        .await;
    assert_eq!(r.status(), StatusCode::OK, "shrinking is always allowed");
    app.create_app(&u.token, "three").await;

    // Back to the installation's limits: shown, and enforced again.
    let r = app
        .patch_json(
            "/v1/users/alice",
            &json!({"max_apps": "default"}),
            Some(&admin.token),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let user: Value = app
        .get_user(&admin.token, "alice")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(user["quota"]["max_apps"], 1);
    assert_eq!(user["quota"]["apps"], 3);
    assert_eq!(user["quota"]["own"], json!(["max_memory"]));
    let r = app.create_instance(&u.token, &[("appname", "four")]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn scaling_counts_each_replica_against_the_process_and_memory_quotas() {
    let app = spawn_app_with(|c| c.limits.max_replicas_per_user = Some(3)).await;
    let admin = app.user("root").await;
    let u = app.user("alice").await;
    app.create_app(&u.token, "scaled").await;
    let scale = |n: u64| {
        let (app, token) = (&app, u.token.clone());
        async move {
            app.patch_json(
                "/v1/instances/scaled/formation",
                &json!({"web": n}),
                Some(&token),
            )
            .await
        }
    };
    // Memory is per replica: 2 x 256 MiB fits 600, 3 x 256 does not.
    let r = app
        .patch_json(
            "/v1/users/alice",
            &json!({"max_memory": 600}),
            Some(&admin.token),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(scale(2).await.status(), StatusCode::OK);
    let r = scale(3).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let message = error_body(r).await["message"].as_str().unwrap().to_string();
    assert!(
        message.contains("max_memory") && message.contains("768"),
        "{message}"
    );

    // With memory to spare, the installation's max_replicas_per_user (3) holds.
    let r = app
        .patch_json(
            "/v1/users/alice",
            &json!({"max_memory": "default"}),
            Some(&admin.token),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(scale(3).await.status(), StatusCode::OK);
    let r = scale(4).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let message = error_body(r).await["message"].as_str().unwrap().to_string();
    assert!(message.contains("quota max_replicas exceeded"), "{message}");
    // A second app would be a fourth process.
    let r = app
        .create_instance(&u.token, &[("appname", "another")])
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // An admin gives alice more, and the quota view counts her processes.
    let r = app
        .patch_json(
            "/v1/users/alice",
            &json!({"max_replicas": 5}),
            Some(&admin.token),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let user: Value = r.json().await.unwrap();
    assert_eq!(user["quota"]["max_replicas"], 5);
    assert_eq!(user["quota"]["replicas"], 3);
    assert_eq!(user["quota"]["memory"], 768);
    assert_eq!(scale(4).await.status(), StatusCode::OK);
    // Scaling down always works.
    assert_eq!(scale(1).await.status(), StatusCode::OK);
}
