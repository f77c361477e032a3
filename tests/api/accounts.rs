//! Accounts, tokens and authentication through the Scalefog and /v1 routes.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn register_then_get_token_returns_32_lowercase_hex() {
    let app = spawn_app().await;
    let u = app.user("alice").await;
    assert_eq!(u.token.len(), 32);
    assert!(
        u.token
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    let r = app.get_token("alice", &u.password).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body[0]["success"], "true");
    assert_ne!(
        body[0]["token"],
        u.token.as_str(),
        "every getToken issues a new token"
    );
}

#[tokio::test]
async fn register_accepts_a_json_body_and_query_parameters() {
    let app = spawn_app().await;
    let r = app
        .post_json(
            "/account/register",
            &json!({"username": "alice", "email": "alice@example.com", "password": "password1"}),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .client
        .post(app.url("/account/register?username=bob&email=bob@example.com&password=password2"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .client
        .post(app.url("/account/getToken?username=bob&password=password2"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_first_account_is_an_admin_and_later_ones_are_not() {
    let app = spawn_app().await;
    let a = app.user("alice").await;
    let b = app.user("bob").await;
    let me: Value = app.account(&a.token).await.json().await.unwrap();
    assert_eq!(me["admin"], true);
    let me: Value = app.account(&b.token).await.json().await.unwrap();
    assert_eq!(me["admin"], false);
    assert!(
        me.get("password_hash").is_none(),
        "hashes never leave the server"
    );
}

#[tokio::test]
async fn a_missing_field_is_a_400_that_names_it() {
    let app = spawn_app().await;
    for (form, missing) in [
        (
            vec![("email", "a@example.com"), ("password", "password1")],
            "username",
        ),
        (
            vec![("username", "alice"), ("password", "password1")],
            "email",
        ),
        (
            vec![("username", "alice"), ("email", "a@example.com")],
            "password",
        ),
    ] {
        let r = app.post_form("/account/register", &form, None).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let body = error_body(r).await;
        assert_eq!(body["field"], missing);
        assert!(
            body["message"].as_str().unwrap().contains(missing),
            "{body}"
        );
    }
    let r = app
        .post_form("/account/getToken", &[("username", "alice")], None)
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_body(r).await["field"], "password");
}

#[tokio::test]
async fn invalid_usernames_emails_and_short_passwords_are_400() {
    let app = spawn_app().await;
    for (u, e, p, field) in [
        ("Alice", "a@example.com", "password1", "username"),
        ("a", "a@example.com", "password1", "username"),
        ("alice", "not-an-email", "password1", "email"),
        ("alice", "a@example.com", "short", "password"),
    ] {
        let r = app.register(u, e, p).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{u} {e} {p}");
        assert_eq!(error_body(r).await["field"], field);
    }
}

#[tokio::test]
async fn a_taken_username_or_email_is_a_409() {
    let app = spawn_app().await;
    app.user("alice").await;
    let r = app.register("alice", "x@example.com", "password1").await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    error_body(r).await;
    let r = app
        .register("alice2", "alice@example.com", "password1")
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_get_the_same_401() {
    let app = spawn_app().await;
    app.user("alice").await;
    let r1 = app.get_token("alice", "wrong-password").await;
    let r2 = app.get_token("nobody", "wrong-password").await;
    assert_eq!(r1.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r2.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_body(r1).await, error_body(r2).await);
}

/// Ten wrong passwords for one username lock it, even with the right password, except from an
/// address the account signed in from before: guessing from elsewhere cannot lock the owner out.
#[tokio::test]
async fn repeated_failed_logins_are_rate_limited_with_429() {
    let app = spawn_app().await;
    // The owner registers and signs in from 127.0.0.1; the guesser works from 127.0.0.2.
    let u = app.user("alice").await;
    let guesser = Api {
        client: reqwest::Client::builder()
            .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
            .build()
            .unwrap(),
        base: app.base.clone(),
    };
    for _ in 0..10 {
        let r = guesser.get_token("alice", "wrong-password").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = guesser.get_token("alice", &u.password).await;
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password waits out the window"
    );
    assert_eq!(error_body(r).await["error"], "rate_limited");
    let r = app.get_token("alice", &u.password).await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "the owner's own address is not locked out"
    );
}

#[tokio::test]
async fn no_token_or_a_bad_token_is_a_401() {
    let app = spawn_app().await;
    let r = app.get("/instances", None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_body(r).await["error"], "unauthorized");
    for bad in ["0123456789abcdef0123456789abcdef", "nothex", "a.b.c", ""] {
        let r = app
            .client
            .get(app.url("/instances"))
            .header("Authorization", format!("Bearer {bad}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{bad:?}");
    }
}

#[tokio::test]
async fn each_of_the_three_auth_headers_is_accepted_and_the_scheme_is_case_insensitive() {
    let app = spawn_app().await;
    let u = app.user("alice").await;
    for (name, value) in [
        ("Authorization", format!("Bearer {}", u.token)),
        ("Authorization", format!("bearer {}", u.token)),
        ("Authorization", format!("BEARER {}", u.token)),
        ("X-Auth-Token", u.token.clone()),
        ("x-api-key", u.token.clone()),
    ] {
        let r = app
            .client
            .get(app.url("/instances"))
            .header(name, value)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{name}");
    }
}

#[tokio::test]
async fn malformed_json_is_a_400_and_an_oversized_body_is_a_413() {
    let app = spawn_app().await;
    let r = app
        .client
        .post(app.url("/account/register"))
        .header("Content-Type", "application/json")
        .body("{\"username\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(
        error_body(r).await["message"]
            .as_str()
            .unwrap()
            .contains("JSON")
    );
    let r = app
        .client
        .post(app.url("/account/register"))
        .header("Content-Type", "application/json")
        .body("[1,2]")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let big = "x".repeat(2 * 1024 * 1024);
    let r = app
        .post_form("/account/register", &[("username", big.as_str())], None)
        .await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_body(r).await["error"], "payload_too_large");
}

#[tokio::test]
async fn closed_registration_refuses_with_403_and_an_admin_can_still_create_users() {
    let app = spawn_app_with(|c| c.registration = scalefog::accounts::Registration::Closed).await;
    let r = app.register("alice", "a@example.com", "password1").await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body = error_body(r).await;
    assert!(body["reason"].is_string(), "403 carries a reason: {body}");
    // The CLI path: an admin made on the store directly.
    app.services
        .accounts
        .register(
            scalefog::accounts::Registrar::Admin,
            scalefog::accounts::NewUser {
                username: "root",
                email: "root@example.com",
                password: "password1",
                admin: true,
            },
            scalefog::domain::Origin::CLI,
        )
        .await
        .unwrap();
    let token = app.token("root", "password1").await;
    let r = app
        .post_form(
            "/v1/users",
            &[
                ("username", "bob"),
                ("email", "bob@example.com"),
                ("password", "password1"),
            ],
            Some(&token),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn v1_login_logout_revokes_the_token() {
    let app = spawn_app().await;
    let r = app
        .post_json(
            "/v1/users",
            &json!({"username": "alice", "email": "alice@example.com", "password": "password1"}),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = app
        .post_json(
            "/v1/tokens",
            &json!({"username": "alice", "password": "password1"}),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let token = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(app.account(&token).await.status(), StatusCode::OK);
    let r = app.delete("/v1/tokens/current", Some(&token)).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(r.text().await.unwrap(), "");
    assert_eq!(app.account(&token).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_api_key_is_shown_once_authenticates_and_stops_when_revoked() {
    let app = spawn_app().await;
    let u = app.user("alice").await;
    let r = app.create_api_key(&u.token, "ci").await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let created: Value = r.json().await.unwrap();
    let key = created["key"].as_str().unwrap().to_string();
    assert_eq!(key.len(), 32);
    let list: Value = app
        .get("/v1/api-keys", Some(&key))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(list[0].get("key").is_none(), "the key is never shown again");
    let id = created["id"].as_str().unwrap();
    assert_eq!(
        app.revoke_api_key(&u.token, id).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.account(&key).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.revoke_api_key(&u.token, id).await.status(),
        StatusCode::NOT_FOUND
    );
    let r = app.post_form("/v1/api-keys", &[], Some(&u.token)).await;
    assert_eq!(error_body(r).await["field"], "name");
}

/// `DELETE /v1/tokens/current` sent with an API key revokes that key: it stops working and is
/// no longer listed, as if revoked by id.
#[tokio::test]
async fn an_api_key_that_signs_itself_out_is_revoked_and_no_longer_listed() {
    let app = spawn_app().await;
    let u = app.user("alice").await;
    let created: Value = app
        .create_api_key(&u.token, "ci")
        .await
        .json()
        .await
        .unwrap();
    let key = created["key"].as_str().unwrap().to_string();
    let r = app
        .client
        .delete(app.url("/v1/tokens/current"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.account(&key).await.status(), StatusCode::UNAUTHORIZED);
    let list: Value = app
        .get("/v1/api-keys", Some(&u.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 0, "{list}");
    assert_eq!(
        app.account(&u.token).await.status(),
        StatusCode::OK,
        "the token that made the key still works"
    );
}

#[tokio::test]
async fn another_users_api_key_cannot_be_revoked() {
    let app = spawn_app().await;
    let a = app.user("alice").await;
    let b = app.user("bob").await;
    let created: Value = app
        .create_api_key(&a.token, "ci")
        .await
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap();
    assert_eq!(
        app.revoke_api_key(&b.token, id).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.account(created["key"].as_str().unwrap()).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_token_exchanges_for_a_jwt_that_authenticates_until_it_expires() {
    let app = spawn_app().await;
    let u = app.user("alice").await;
    let r = app.exchange(Some(&u.token)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let pair: Value = r.json().await.unwrap();
    assert_eq!(pair["token_type"], "Bearer");
    assert!(pair["expires_in"].as_i64().unwrap() > 0);
    assert!(pair["account_id"].is_string());
    let jwt = pair["access_token"].as_str().unwrap();
    let me: Value = app.account(jwt).await.json().await.unwrap();
    assert_eq!(me["username"], "alice");
    // The refresh token is only good for another exchange.
    let refresh = pair["refresh_token"].as_str().unwrap();
    assert_eq!(
        app.account(refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let r = app.exchange(Some(refresh)).await;
    assert_eq!(r.status(), StatusCode::OK);
    // A tampered JWT is refused.
    // One signature character changed, inside the signature (its last character carries
    // padding bits, and may already be the replacement).
    let at = jwt.len() - 10;
    let was = jwt.as_bytes()[at];
    let mut forged = jwt.to_string();
    forged.replace_range(at..=at, if was == b'A' { "B" } else { "A" });
    assert_ne!(forged, jwt);
    assert_eq!(
        app.account(&forged).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let r = app.exchange(None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

/// JWTs are bound to the credential they were exchanged from: revoking it ends both the access
/// and the refresh JWT at once, while JWTs from another credential keep working.
#[tokio::test]
async fn revoking_a_token_or_an_api_key_ends_the_jwts_exchanged_from_it_at_once() {
    let app = spawn_app().await;
    let u = app.user("alice").await;
    let created: Value = app
        .create_api_key(&u.token, "ci")
        .await
        .json()
        .await
        .unwrap();
    let key = created["key"].as_str().unwrap().to_string();
    let from_token: Value = app.exchange(Some(&u.token)).await.json().await.unwrap();
    let from_key: Value = app.exchange(Some(&key)).await.json().await.unwrap();
    let jwt = |p: &Value, which: &str| p[which].as_str().unwrap().to_string();
    let works = |status: StatusCode| status == StatusCode::OK;
    assert!(works(
        app.account(&jwt(&from_token, "access_token"))
            .await
            .status()
    ));
    assert!(works(
        app.account(&jwt(&from_key, "access_token")).await.status()
    ));

    // Sign the token out: its JWTs fail, the key's do not.
    let r = app.delete("/v1/tokens/current", Some(&u.token)).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.account(&jwt(&from_token, "access_token"))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let r = app.exchange(Some(&jwt(&from_token, "refresh_token"))).await;
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "the refresh JWT is dead too"
    );
    assert!(works(
        app.account(&jwt(&from_key, "access_token")).await.status()
    ));
    let refreshed: Value = app
        .exchange(Some(&jwt(&from_key, "refresh_token")))
        .await
        .json()
        .await
        .unwrap();

    // Revoke the key by id: its JWTs, and those refreshed from them, fail.
    let token = app.token("alice", "password-alice").await;
    let id = created["id"].as_str().unwrap();
    assert_eq!(
        app.revoke_api_key(&token, id).await.status(),
        StatusCode::NO_CONTENT
    );
    for p in [&from_key, &refreshed] {
        assert_eq!(
            app.account(&jwt(p, "access_token")).await.status(),
            StatusCode::UNAUTHORIZED
        );
        let r = app.exchange(Some(&jwt(p, "refresh_token"))).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn only_admins_list_and_delete_users() {
    let app = spawn_app().await;
    let admin = app.user("alice").await;
    let bob = app.user("bob").await;
    let r = app.users(&bob.token).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(error_body(r).await["reason"].is_string());
    let r = app.users(&admin.token).await;
    assert_eq!(r.headers()["x-total-count"], "2");
    app.create_app(&bob.token, "bobs-app").await;
    let bob_id = app
        .get_user(&admin.token, "bob")
        .await
        .json::<Value>()
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        app.delete(&format!("/v1/users/{bob_id}"), Some(&admin.token))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.account(&bob.token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get_app(&admin.token, "bobs-app").await.status(),
        StatusCode::NOT_FOUND
    );
    let r = app.get_user(&admin.token, "nobody").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn unknown_routes_answer_json_404() {
    let app = spawn_app().await;
    let r = app.get("/no/such/route", None).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    error_body(r).await;
}

#[tokio::test]
async fn healthz_reports_the_store_and_docker() {
    let app = spawn_app().await;
    let r = app.health().await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["store"]["ok"], true);
    assert!(body["docker"]["endpoint"].is_string());
    assert!(body["docker"]["ok"].is_boolean());
}

#[tokio::test]
async fn healthz_names_the_docker_endpoint_when_it_is_unreachable() {
    let app = spawn_app_with(|c| c.docker_host = "unix:///nonexistent/docker.sock".into()).await;
    let body: Value = app.health().await.json().await.unwrap();
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["docker"]["ok"], false);
    assert!(
        body["docker"]["error"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/docker.sock"),
        "{body}"
    );
}
