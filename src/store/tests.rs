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
        secret_env: Default::default(),
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

fn release(app: &str, env: &[(&str, &str)]) -> crate::domain::Release {
    crate::domain::Release {
        app: app.into(),
        version: 1,
        image: format!("scalefog/{app}:v1"),
        commit: "0".repeat(40),
        env: env
            .iter()
            .map(|(k, v)| (crate::domain::ConfigKey::parse(k).unwrap(), v.to_string()))
            .collect(),
        created_by: "alice".into(),
        created_at: 0,
        status: crate::domain::ReleaseStatus::Current,
        description: "deploy 0000000".into(),
        build_id: None,
        processes: Default::default(),
        release_command: None,
        cron: vec![],
        source_image: None,
    }
}

fn with_env(mut inst: Instance, env: &[(&str, &str)]) -> Instance {
    inst.env = release(&inst.name, env).env;
    inst
}

/// Whether the store file holds `needle` anywhere, as bytes.
fn file_holds(path: &Path, needle: &str) -> bool {
    let bytes = std::fs::read(path).unwrap();
    bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn config_var_values_never_reach_the_file_in_clear_and_read_back_clear() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let env = [("DATABASE_URL", "postgres://u:hunter2-in-clear@db/x")];
    {
        let store = Store::open(&path).unwrap();
        store
            .write(|w| {
                w.put_instance(&with_env(instance("blog", 1), &env))?;
                w.put_release(&release("blog", &env))
            })
            .unwrap();
    }
    assert!(!file_holds(&path, "hunter2-in-clear"));
    assert!(file_holds(&path, "DATABASE_URL"), "names stay readable");
    let store = Store::open(&path).unwrap();
    let (inst, rel) = store
        .read(|r| Ok((r.instance("blog")?.unwrap(), r.release("blog", 1)?.unwrap())))
        .unwrap();
    assert_eq!(inst.env["DATABASE_URL"], env[0].1);
    assert_eq!(rel.env["DATABASE_URL"], env[0].1);
    drop(store);
    // Another key cannot open them: the values are really encrypted, not encoded.
    std::fs::write(dir.path().join("secrets.key"), "ab".repeat(32)).unwrap();
    let other = Store::open(&path).unwrap();
    assert!(other.read(|r| r.instance("blog")).is_err());
}

#[test]
fn a_schema_1_store_holding_clear_config_vars_is_sealed_when_opened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let env = [("API_TOKEN", "clear-token-from-before")];
    // The file as a version before sealing left it: records in plain JSON, schema 1.
    {
        let db = Database::create(&path).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(META)
            .unwrap()
            .insert("schema_version", 1)
            .unwrap();
        tx.open_table(INSTANCES)
            .unwrap()
            .insert(
                "blog",
                encode(&with_env(instance("blog", 1), &env))
                    .unwrap()
                    .as_slice(),
            )
            .unwrap();
        tx.open_table(releases::RELEASES)
            .unwrap()
            .insert(
                ("blog", 1),
                encode(&release("blog", &env)).unwrap().as_slice(),
            )
            .unwrap();
        tx.commit().unwrap();
    }
    assert!(file_holds(&path, "clear-token-from-before"));
    let store = Store::open(&path).unwrap();
    let (inst, rel) = store
        .read(|r| Ok((r.instance("blog")?.unwrap(), r.release("blog", 1)?.unwrap())))
        .unwrap();
    assert_eq!(inst.env["API_TOKEN"], env[0].1);
    assert_eq!(rel.env["API_TOKEN"], env[0].1);
    // Not even in the pages the migration freed.
    assert!(!file_holds(&path, "clear-token-from-before"));
    drop(store);
    let store = Store::open(&path).unwrap();
    assert_eq!(
        store.read(|r| r.instance("blog")).unwrap().unwrap().env["API_TOKEN"],
        env[0].1
    );
}

#[test]
fn a_failed_change_leaves_no_audit_record_and_owners_see_what_was_done_to_their_apps() {
    use crate::domain::{AuditAction, AuditRecord, Origin};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.redb")).unwrap();
    let (alice, admin) = (user(1, "alice"), user(2, "root"));
    store
        .write(|w| {
            w.put_user(&alice)?;
            w.put_user(&admin)?;
            w.put_instance(&instance("blog", 1))
        })
        .unwrap();
    let failed: Result<()> = store.write(|w| {
        w.delete_instance("blog")?;
        w.audit(AuditRecord::new(
            &alice,
            Origin::CLI,
            AuditAction::AppDelete,
            Some("blog"),
            "",
        ))?;
        Err(Error::Conflict(
            "the change failed after its audit entry".into(),
        ))
    });
    assert!(failed.is_err());
    assert_eq!(store.read(|r| r.audit_log(Slice::ALL)).unwrap().total, 0);
    store
        .write(|w| {
            w.audit(AuditRecord::new(
                &admin,
                Origin::CLI,
                AuditAction::AppStop,
                Some("blog"),
                "",
            ))?;
            w.audit(AuditRecord::new(
                &admin,
                Origin::CLI,
                AuditAction::NodeCreate,
                None,
                "n2",
            ))
        })
        .unwrap();
    let of = |id| store.read(|r| r.audit_log_of(id, Slice::ALL)).unwrap();
    let alices = of(1);
    assert_eq!(alices.total, 1, "only what was done to her app");
    assert_eq!(alices.items[0].action, AuditAction::AppStop);
    assert_eq!(alices.items[0].app_owner, Some(1));
    let admins = of(2);
    assert_eq!(admins.total, 2);
    assert_eq!(
        admins.items[0].action,
        AuditAction::NodeCreate,
        "newest first"
    );
}
