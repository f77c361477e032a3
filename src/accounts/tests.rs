use super::*;

fn api_origin() -> Origin {
    Origin::new(domain::Channel::Api, "127.0.0.1".parse().unwrap())
}

fn accounts(reg: Registration) -> (tempfile::TempDir, Accounts) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.redb")).unwrap();
    (
        dir,
        Accounts::new(store, reg, JwtKeys::from_secret(&[1u8; 32])).unwrap(),
    )
}

fn new<'a>(name: &'a str, email: &'a str) -> NewUser<'a> {
    NewUser {
        username: name,
        email,
        password: "password1",
        admin: false,
    }
}

#[tokio::test]
async fn the_first_account_is_admin_and_the_second_is_not() {
    let (_d, a) = accounts(Registration::Open);
    assert!(
        a.register(Registrar::Public, new("alice", "a@x.io"), Origin::CLI)
            .await
            .unwrap()
            .admin
    );
    assert!(
        !a.register(Registrar::Public, new("bob", "b@x.io"), Origin::CLI)
            .await
            .unwrap()
            .admin
    );
}

#[tokio::test]
async fn closed_registration_refuses_the_public_but_not_an_admin() {
    let (_d, a) = accounts(Registration::Closed);
    assert!(matches!(
        a.register(Registrar::Public, new("alice", "a@x.io"), Origin::CLI)
            .await,
        Err(Error::Forbidden(_))
    ));
    assert!(
        a.register(Registrar::Admin, new("alice", "a@x.io"), Origin::CLI)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_login_token_authenticates_and_logout_revokes_it() {
    let (_d, a) = accounts(Registration::Open);
    a.register(Registrar::Public, new("alice", "a@x.io"), Origin::CLI)
        .await
        .unwrap();
    let ip = api_origin();
    let (token, _) = a.login("alice", "password1", ip).await.unwrap();
    let who = a.authenticate(&token, api_origin()).unwrap();
    assert_eq!(who.user.username, "alice");
    a.logout(&who).await.unwrap();
    assert!(matches!(
        a.authenticate(&token, api_origin()),
        Err(Error::Unauthorized(_))
    ));
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_error() {
    let (_d, a) = accounts(Registration::Open);
    a.register(Registrar::Public, new("alice", "a@x.io"), Origin::CLI)
        .await
        .unwrap();
    let ip = api_origin();
    let e1 = a
        .login("alice", "wrongpass", ip)
        .await
        .unwrap_err()
        .to_string();
    let e2 = a
        .login("nobody", "wrongpass", ip)
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(e1, e2);
}

#[tokio::test]
async fn a_revoked_api_key_stops_working() {
    let (_d, a) = accounts(Registration::Open);
    a.register(Registrar::Public, new("alice", "a@x.io"), Origin::CLI)
        .await
        .unwrap();
    let (token, _) = a.login("alice", "password1", api_origin()).await.unwrap();
    let who = a.authenticate(&token, api_origin()).unwrap();
    let (key, secret) = a.create_api_key(&who, "ci").await.unwrap();
    assert!(a.authenticate(&secret, api_origin()).is_ok());
    a.revoke_api_key(&who, &key.id.to_string()).await.unwrap();
    assert!(a.authenticate(&secret, api_origin()).is_err());
}
