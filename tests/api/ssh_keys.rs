//! SSH public keys: add (Scalefog and /v1), list with fingerprints, delete, uniqueness.

use crate::gitssh::keygen_of_type;
use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::Value;
use std::process::Command;

#[tokio::test]
async fn addkey_accepts_ed25519_ecdsa_and_rsa_2048_keys() {
    let app = spawn_app().await;
    let u = app.user("alice").await;
    let dir = tempfile::tempdir().unwrap();
    for (name, kind) in [
        ("ed", &["-t", "ed25519"][..]),
        ("ec", &["-t", "ecdsa", "-b", "256"][..]),
        ("rsa", &["-t", "rsa", "-b", "2048"][..]),
    ] {
        let key = keygen_of_type(dir.path(), name, kind).await.public;
        let r = app.add_ssh_key(&u.token, &key).await;
        assert_eq!(r.status(), StatusCode::OK, "{name}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body[0]["success"], "true");
        assert!(
            body[0]["fingerprint"]
                .as_str()
                .unwrap()
                .starts_with("SHA256:")
        );
    }
    let r = app.ssh_keys(&u.token).await;
    assert_eq!(r.headers()["x-total-count"], "3");
    let keys: Value = r.json().await.unwrap();
    let expected = String::from_utf8(
        Command::new("ssh-keygen")
            .args(["-l", "-E", "sha256", "-f"])
            .arg(dir.path().join("ed.pub"))
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(
        expected.contains(keys[0]["fingerprint"].as_str().unwrap()),
        "same fingerprint as ssh-keygen -l: {expected}"
    );
}

#[tokio::test]
async fn a_weak_rsa_key_or_garbage_is_a_400() {
    let app = spawn_app().await;
    let u = app.user("alice").await;
    let dir = tempfile::tempdir().unwrap();
    let weak = keygen_of_type(dir.path(), "weak", &["-t", "rsa", "-b", "1024"])
        .await
        .public;
    let r = app.add_ssh_key(&u.token, &weak).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(
        error_body(r).await["message"]
            .as_str()
            .unwrap()
            .contains("2048")
    );
    let r = app.add_ssh_key(&u.token, "ssh-ed25519 garbage").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_body(r).await["field"], "sshkey");
    let r = app.post_form("/account/addkey", &[], Some(&u.token)).await;
    assert_eq!(error_body(r).await["field"], "sshkey");
}

#[tokio::test]
async fn a_key_registered_to_anyone_is_a_409() {
    let app = spawn_app().await;
    let a = app.user("alice").await;
    let b = app.user("bob").await;
    let dir = tempfile::tempdir().unwrap();
    let key = keygen_of_type(dir.path(), "k", &["-t", "ed25519"])
        .await
        .public;
    assert_eq!(
        app.add_ssh_key(&a.token, &key).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.add_ssh_key(&a.token, &key).await.status(),
        StatusCode::CONFLICT
    );
    let other_comment = key.replace(" k\n", " other-comment\n");
    let r = app.add_ssh_key(&b.token, &other_comment).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
}

#[tokio::test]
async fn keys_are_deleted_by_fingerprint_or_id_and_only_by_their_owner() {
    let app = spawn_app().await;
    let a = app.user("alice").await;
    let b = app.user("bob").await;
    let dir = tempfile::tempdir().unwrap();
    let k1 = keygen_of_type(dir.path(), "k1", &["-t", "ed25519"])
        .await
        .public;
    let k2 = keygen_of_type(dir.path(), "k2", &["-t", "ed25519"])
        .await
        .public;
    let r = app
        .post_form("/v1/ssh-keys", &[("public_key", &k1)], Some(&a.token))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let one: Value = r.json().await.unwrap();
    let two: Value = app
        .post_form("/v1/ssh-keys", &[("public_key", &k2)], Some(&a.token))
        .await
        .json()
        .await
        .unwrap();
    let fp = one["fingerprint"].as_str().unwrap();
    let encoded: String = fp
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    assert_eq!(
        app.delete_ssh_key(&b.token, &encoded).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete_ssh_key(&a.token, &encoded).await.status(),
        StatusCode::NO_CONTENT
    );
    let id = two["id"].as_str().unwrap();
    assert_eq!(
        app.delete_ssh_key(&a.token, id).await.status(),
        StatusCode::NO_CONTENT
    );
    let r = app.ssh_keys(&a.token).await;
    assert_eq!(r.headers()["x-total-count"], "0");
    // A deleted key can be added again, by anyone.
    assert_eq!(
        app.add_ssh_key(&b.token, &k1).await.status(),
        StatusCode::OK
    );
}
