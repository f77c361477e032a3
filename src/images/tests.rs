use super::*;
use crate::docker::Engine;

fn images(policy: ImagePolicy) -> (tempfile::TempDir, Images) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.redb")).unwrap();
    // Nothing here talks to Docker: an endpoint that does not exist is enough.
    let docker = Arc::new(Engine::new("unix:///nonexistent/docker.sock"));
    (dir, Images::new(store, docker, policy))
}

#[tokio::test]
async fn users_may_deploy_only_what_the_catalog_admits() {
    let (_d, i) = images(ImagePolicy::Catalog);
    let (admin, user) = (
        Principal::for_tests(1, true),
        Principal::for_tests(2, false),
    );
    i.add(&admin, "registry.example.com/team/app", "CI builds")
        .await
        .unwrap();
    i.add(&admin, "busybox:1.36", "").await.unwrap();
    assert!(
        i.check_deployable(&user, "registry.example.com/team/app:v7")
            .is_ok()
    );
    assert!(
        i.check_deployable(&user, "docker.io/library/busybox:1.36")
            .is_ok()
    );
    for refused in [
        "busybox",
        "busybox:1.37",
        "registry.example.com/team/other:v1",
    ] {
        match i.check_deployable(&user, refused) {
            Err(Error::Forbidden(m)) => assert!(m.contains("catalog"), "{m}"),
            other => panic!("{refused}: {other:?}"),
        }
    }
    // Admins deploy anything.
    assert!(i.check_deployable(&admin, "busybox:1.37").is_ok());
    // A bad reference is a 400 naming the deploy's field, for admins too.
    for who in [&admin, &user] {
        match i.check_deployable(who, "Not An Image") {
            Err(e @ Error::Invalid { .. }) => assert_eq!(e.field(), Some("image")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            i.check_deployable(who, " "),
            Err(Error::Missing { .. })
        ));
    }
}

#[tokio::test]
async fn the_any_policy_lets_users_deploy_every_reference() {
    let (_d, i) = images(ImagePolicy::Any);
    assert!(
        i.check_deployable(&Principal::for_tests(2, false), "ghcr.io/x/y:z")
            .is_ok()
    );
    assert!(
        i.check_deployable(&Principal::for_tests(2, false), "ghcr.io/X")
            .is_err()
    );
}

#[tokio::test]
async fn the_catalog_is_kept_by_admins_one_entry_per_reference() {
    let (_d, i) = images(ImagePolicy::Catalog);
    let (admin, user) = (
        Principal::for_tests(1, true),
        Principal::for_tests(2, false),
    );
    assert!(matches!(
        i.add(&user, "busybox", "").await,
        Err(Error::Forbidden(_))
    ));
    let added = i
        .add(&admin, "docker.io/library/busybox", "x")
        .await
        .unwrap();
    assert_eq!(added.reference, "busybox");
    assert!(matches!(
        i.add(&admin, "busybox", "again").await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        i.add(&admin, "alpine", "bad\u{7}").await,
        Err(Error::Invalid { .. })
    ));
    assert_eq!(i.catalog(&user).unwrap().len(), 1);
    assert!(matches!(
        i.remove(&user, "busybox").await,
        Err(Error::Forbidden(_))
    ));
    // By reference however written, or by id.
    i.remove(&admin, "index.docker.io/library/busybox")
        .await
        .unwrap();
    assert!(matches!(
        i.remove(&admin, &added.id.to_string()).await,
        Err(Error::NotFound(_))
    ));
    assert!(i.catalog(&user).unwrap().is_empty());
    assert!(i.check_deployable(&user, "busybox").is_err());
}
