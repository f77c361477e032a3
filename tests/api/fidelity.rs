//! Fields of the reference documents: the panel's `userId`, Civo's `id_token`, and the account's
//! password through the API as through the console.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn create_user(app: &TestApp, key: &str, body: Value) -> reqwest::Response {
    app.client
        .post(app.url("/api/users/create"))
        .header("x-api-key", key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn user(name: &str, user_id: &str) -> Value {
    json!({"username": name, "email": format!("{name}@example.com"), "password": "password1", "userId": user_id})
}

#[tokio::test]
async fn the_panel_may_choose_a_user_id_and_find_the_user_by_it() {
    let app = spawn_app().await;
    let admin = app.user("alice").await;
    let k = &admin.token;
    let uuid = "0f8fad5b-d9cb-469f-a165-70867728950e";

    let r = create_user(&app, k, user("carol", uuid)).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let carol: Value = r.json().await.unwrap();
    assert_eq!(carol["userId"], uuid);
    assert_eq!(carol["username"], "carol");
    app.create_app(&app.token("carol", "password1").await, "carol-web")
        .await;
    // Every lookup by id takes it: the panel's own and /v1's.
    let r = app
        .client
        .post(app.url("/api/getUserInstance"))
        .header("x-api-key", k)
        .json(&json!({"userId": uuid}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let apps: Value = r.json().await.unwrap();
    assert_eq!(apps[0]["name"], "carol-web");
    let r = app.get_user(k, uuid).await;
    assert_eq!(r.json::<Value>().await.unwrap()["username"], "carol");
    let listed: Value = app
        .client
        .get(app.url("/api/users"))
        .header("x-api-key", k)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|u| &u["userId"])
        .collect();
    assert_eq!(ids, [&json!("1"), &json!(uuid)]);

    // Taken ids, and ids that would make a lookup ambiguous, are conflicts.
    let r = create_user(&app, k, user("dave", uuid)).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let r = create_user(&app, k, user("dave", "carol")).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let r = app
        .register("zed-0f8fad5b", "z@example.com", "password1")
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = create_user(&app, k, user("erin", "zed-0f8fad5b")).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);

    // A number is the account's id, and the next ids follow it.
    let r = create_user(&app, k, user("dave", "500")).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let dave: Value = r.json().await.unwrap();
    assert_eq!(
        (&dave["id"], &dave["userId"]),
        (&json!("500"), &json!("500"))
    );
    // Ids are never reused: not one in use, nor one below the last handed out.
    for taken in ["500", "1", "2"] {
        let r = create_user(&app, k, user("frank", taken)).await;
        assert_eq!(r.status(), StatusCode::CONFLICT, "{taken}");
    }
    let r = create_user(
        &app,
        k,
        json!({"username": "frank", "email": "f@example.com", "password": "password1"}),
    )
    .await;
    assert_eq!(r.json::<Value>().await.unwrap()["id"], "501");
    for bad in ["0", "a b", "-1", "9007199254740992"] {
        let r = create_user(&app, k, user("gina", bad)).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(error_body(r).await["field"], "userId");
    }
    // Nobody else may choose ids.
    let bob = app.user("bob").await;
    let r = create_user(&app, &bob.token, user("gina", "77")).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

/// The claims of a JWT, read without checking it (the client's view).
fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("a JWT");
    // base64url without padding, decoded by hand (no base64 crate for one test).
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let (mut bits, mut n, mut bytes) = (0u32, 0, vec![]);
    for c in payload.bytes() {
        let v = ALPHABET.iter().position(|a| *a == c).expect("base64url") as u32;
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            bytes.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn the_jwt_exchange_answers_an_id_token_that_is_no_credential() {
    let app = spawn_app().await;
    let u = app.user("alice").await;
    let r = app.exchange(Some(&u.token)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let pair: Value = r.json().await.unwrap();
    for field in [
        "access_token",
        "token_type",
        "refresh_token",
        "id_token",
        "account_id",
    ] {
        assert!(pair[field].is_string(), "{field} in {pair}");
    }
    assert!(pair["expires_in"].is_number());
    let id = pair["id_token"].as_str().unwrap();
    let c = claims(id);
    assert_eq!(c["sub"], pair["account_id"]);
    assert_eq!(c["preferred_username"], "alice");
    assert_eq!(c["email"], "alice@example.com");
    assert_eq!(c["iss"], "scalefog");
    assert!(c["exp"].as_i64().unwrap() > c["iat"].as_i64().unwrap());
    assert_eq!(app.account(id).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.exchange(Some(id)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // A refresh answers one too.
    let again: Value = app
        .exchange(pair["refresh_token"].as_str())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        claims(again["id_token"].as_str().unwrap())["preferred_username"],
        "alice"
    );
}

#[tokio::test]
async fn a_password_changed_through_the_api_keeps_the_calling_token_and_revokes_the_others() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let other = app.token("bob", &bob.password).await;
    let key: Value = app
        .create_api_key(&bob.token, "ci")
        .await
        .json()
        .await
        .unwrap();
    let key = key["key"].as_str().unwrap().to_string();
    let jwt: Value = app.exchange(Some(&bob.token)).await.json().await.unwrap();

    let r = app
        .change_password(&bob.token, "wrong-password", "password-bob-2")
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_body(r).await["field"], "current_password");
    let r = app
        .change_password(&bob.token, &bob.password, "short")
        .await;
    assert_eq!(error_body(r).await["field"], "new_password");
    let r = app
        .client
        .put(app.url("/v1/account/password"))
        .bearer_auth(&bob.token)
        .form(&[("new_password", "password-bob-3")])
        .send()
        .await
        .unwrap();
    assert_eq!(error_body(r).await["field"], "current_password");
    assert_eq!(
        app.account(&other).await.status(),
        StatusCode::OK,
        "nothing changed yet"
    );

    let r = app
        .change_password(&bob.token, &bob.password, "password-bob-2")
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["username"], "bob");
    assert_eq!(
        app.account(&bob.token).await.status(),
        StatusCode::OK,
        "the caller's token stays"
    );
    assert_eq!(app.account(&other).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.account(&key).await.status(),
        StatusCode::OK,
        "API keys stay"
    );
    let access = jwt["access_token"].as_str().unwrap();
    assert_eq!(app.account(access).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.get_token("bob", &bob.password).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get_token("bob", "password-bob-2").await.status(),
        StatusCode::OK
    );
    // Another account is untouched.
    assert_eq!(app.account(&alice.token).await.status(), StatusCode::OK);
    assert_eq!(
        app.change_password("0123456789abcdef0123456789abcdef", "a", "password-x")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}
