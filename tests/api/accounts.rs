use crate::helpers::*;
use serde_json::Value;

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
    let r = app
        .post_form(
            "/account/getToken",
            &[("username", "alice"), ("password", &u.password)],
            None,
        )
        .await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body[0]["success"], "true");
}
