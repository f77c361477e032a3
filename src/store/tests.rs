use super::*;
use crate::domain::{InstanceStatus, TokenKind};

fn user(id: u64, name: &str) -> User {
    User {
        id,
        username: name.into(),
        email: format!("{name}@example.com"),
        password_hash: "x".into(),
        admin: false,
        created_at: 0,
        quota: Default::default(),
        external_id: None,
    }
}

fn instance(name: &str, owner: u64) -> Instance {
    Instance {
        name: name.into(),
        owner_id: owner,
        region_id: 1,
        node_id: 1,
        status: InstanceStatus::Created,
        release: None,
        memory_mb: 256,
        cpu: 1.0,
        health_path: Default::default(),
        deploy_branch: Default::default(),
        port: 5000,
        env: Default::default(),
        domains: vec![],
        created_at: 0,
        volumes: vec![],
        read_only_rootfs: false,
        formation: Default::default(),
    }
}

#[test]
fn a_failed_write_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.redb")).unwrap();
    let r: Result<()> = store.write(|w| {
        w.put_user(&user(1, "alice"))?;
        Err(Error::Conflict("boom".into()))
    });
    assert!(r.is_err());
    assert!(store.read(|r| r.user_by_name("alice")).unwrap().is_none());
}

#[test]
fn instances_are_listed_per_owner_in_pages_with_a_total() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.redb")).unwrap();
    store
        .write(|w| {
            for i in 0..7 {
                w.put_instance(&instance(&format!("app-{i}"), 1))?;
            }
            w.put_instance(&instance("other", 2))
        })
        .unwrap();
    let page = store
        .read(|r| {
            r.instances_of(
                1,
                Slice {
                    offset: 5,
                    limit: 5,
                },
            )
        })
        .unwrap();
    assert_eq!(page.total, 7);
    let names: Vec<_> = page.items.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["app-5", "app-6"]);
    assert_eq!(
        store.read(|r| r.instances_of(2, Slice::ALL)).unwrap().total,
        1
    );
}

#[test]
fn deleting_a_user_removes_their_tokens_and_keys_and_the_data_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    {
        let store = Store::open(&path).unwrap();
        store
            .write(|w| {
                w.put_user(&user(1, "alice"))?;
                w.put_user(&user(2, "bob"))?;
                w.put_token(
                    "h1",
                    &TokenRecord {
                        user_id: 1,
                        kind: TokenKind::Login,
                        created_at: 0,
                    },
                )?;
                w.put_token(
                    "h2",
                    &TokenRecord {
                        user_id: 2,
                        kind: TokenKind::Login,
                        created_at: 0,
                    },
                )
            })
            .unwrap();
        store.write(|w| w.delete_user(1)).unwrap();
    }
    let store = Store::open(&path).unwrap();
    store
        .read(|r| {
            assert!(r.user_by_name("alice")?.is_none());
            assert!(r.token("h1")?.is_none());
            assert!(r.token("h2")?.is_some());
            assert_eq!(r.user_count()?, 1);
            Ok(())
        })
        .unwrap();
}

#[test]
fn a_backup_holds_the_same_records() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.redb")).unwrap();
    store.write(|w| w.put_user(&user(1, "alice"))).unwrap();
    let copy = dir.path().join("copy.redb");
    store.backup_to(&copy).unwrap();
    assert!(store.backup_to(&copy).is_err(), "never overwrites");
    drop(store);
    let restored = Store::open(&copy).unwrap();
    assert!(
        restored
            .read(|r| r.user_by_name("alice"))
            .unwrap()
            .is_some()
    );
}

/// `backup_to` copies tables from a list: a table added to the store but not to that list would
/// be lost by every backup without a word. Every table of a fresh store must be in the copy.
#[test]
fn a_backup_copies_every_table_the_store_has() {
    fn tables(path: &std::path::Path) -> std::collections::BTreeSet<String> {
        use redb::TableHandle;
        let db = redb::Database::open(path).unwrap();
        let rtx = db.begin_read().unwrap();
        rtx.list_tables()
            .unwrap()
            .map(|t| t.name().to_string())
            .collect()
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.redb")).unwrap();
    let copy = dir.path().join("copy.redb");
    store.backup_to(&copy).unwrap();
    drop(store);
    let all = tables(&dir.path().join("s.redb"));
    assert!(all.len() > 10, "{all:?}");
    let copied = tables(&copy);
    let missing: Vec<_> = all.difference(&copied).collect();
    assert!(
        missing.is_empty(),
        "tables backup_to leaves out: {missing:?}"
    );
}
