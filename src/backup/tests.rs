use super::*;
use crate::domain::User;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "T")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "T")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn paths_in(dir: &Path) -> Paths {
    Paths {
        data_dir: dir.join("data"),
        tls_dir: dir.join("data").join(layout::CERTS),
    }
}

/// A data dir as a server leaves it: a store with a user, keys, a certificate, and a repository
/// with a pushed commit plus a push's quarantined objects. Returns the store and the commit.
fn populated(paths: &Paths, work: &Path) -> (Store, String) {
    std::fs::create_dir_all(&paths.data_dir).unwrap();
    let store = Store::open(&paths.data_dir.join(layout::STORE)).unwrap();
    store
        .write(|w| {
            w.put_user(&User {
                id: 1,
                username: "alice".into(),
                email: "alice@example.com".into(),
                password_hash: "x".into(),
                admin: true,
                created_at: 0,
                quota: Default::default(),
                external_id: None,
            })
        })
        .unwrap();
    // secrets.key was made by `Store::open` (it seals config vars): it stays as it is, or the
    // restored store would not open.
    for name in ["jwt.secret", "ssh_host_ed25519_key"] {
        let p = paths.data_dir.join(name);
        std::fs::write(&p, format!("{name} content")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    std::fs::write(paths.data_dir.join("install.id"), "abc\n").unwrap();
    // A node's TLS client files and the node SSH key.
    let nodes = paths.data_dir.join(layout::NODES);
    crate::nodes::ssh_key::ensure(&nodes).unwrap();
    std::fs::create_dir_all(nodes.join("2")).unwrap();
    std::fs::write(nodes.join("2/key.pem"), "node 2 key").unwrap();
    let cert = paths.tls_dir.join("www.example.org");
    std::fs::create_dir_all(&cert).unwrap();
    std::fs::write(cert.join("fullchain.pem"), "chain").unwrap();
    let repos = paths.data_dir.join(layout::REPOS);
    std::fs::create_dir_all(&repos).unwrap();
    git(&repos, &["init", "-q", "--bare", "-b", "main", "blog.git"]);
    git(&repos, &["init", "-q", "--bare", "-b", "main", "empty.git"]);
    std::fs::create_dir_all(work).unwrap();
    git(work, &["init", "-q", "-b", "main"]);
    std::fs::write(work.join("f"), "one").unwrap();
    git(work, &["add", "-A"]);
    git(work, &["commit", "-q", "-m", "one"]);
    let bare = repos.join("blog.git");
    git(work, &["push", "-q", bare.to_str().unwrap(), "main"]);
    let sha = git(work, &["rev-parse", "HEAD"]);
    // A push in flight: its pack sits in a quarantine directory until its hook accepts it.
    std::fs::write(work.join("f"), "two").unwrap();
    git(work, &["commit", "-q", "-am", "two"]);
    let quarantine = bare.join("objects/tmp_objdir-incoming-x/pack");
    std::fs::create_dir_all(&quarantine).unwrap();
    let pack = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "git rev-list --objects HEAD ^HEAD~1 | git pack-objects -q {}/pack",
            quarantine.display()
        ))
        .current_dir(work)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .unwrap();
    assert!(pack.status.success(), "{pack:?}");
    (store, sha)
}

#[test]
fn a_backup_restores_the_store_keys_node_files_certificates_and_repositories_quarantined_objects_included()
 {
    let dir = tempfile::tempdir().unwrap();
    let paths = paths_in(dir.path());
    let (store, sha) = populated(&paths, &dir.path().join("work"));
    let in_flight = git(&dir.path().join("work"), &["rev-parse", "HEAD"]);
    let archive = dir.path().join("b.tar.zst");
    let written = create(&store, &paths, &archive).unwrap();
    assert_eq!(written.repositories, 2);
    assert!(written.bytes > 0);
    let mode = std::fs::metadata(&archive).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the archive holds secrets");
    assert!(
        create(&store, &paths, &archive).is_err(),
        "never overwrites"
    );

    let target = paths_in(&dir.path().join("restored"));
    let restored = restore(&archive, &target).unwrap();
    assert_eq!(
        (restored.users, restored.apps, restored.repositories),
        (1, 0, 2)
    );
    assert_eq!(restored.manifest.format, FORMAT);
    for name in [
        "jwt.secret",
        "ssh_host_ed25519_key",
        "secrets.key",
        "install.id",
    ] {
        assert_eq!(
            std::fs::read(target.data_dir.join(name)).unwrap(),
            std::fs::read(paths.data_dir.join(name)).unwrap(),
            "{name}"
        );
    }
    let key = std::fs::metadata(target.data_dir.join("ssh_host_ed25519_key")).unwrap();
    assert_eq!(key.permissions().mode() & 0o777, 0o600);
    for name in [
        "nodes/id_ed25519",
        "nodes/id_ed25519.pub",
        "nodes/2/key.pem",
    ] {
        assert_eq!(
            std::fs::read(target.data_dir.join(name)).unwrap(),
            std::fs::read(paths.data_dir.join(name)).unwrap(),
            "{name}"
        );
    }
    let key = std::fs::metadata(target.data_dir.join("nodes/id_ed25519")).unwrap();
    assert_eq!(key.permissions().mode() & 0o777, 0o600);
    assert_eq!(
        std::fs::read_to_string(target.tls_dir.join("www.example.org/fullchain.pem")).unwrap(),
        "chain"
    );
    let blog = target.data_dir.join("repos/blog.git");
    assert_eq!(git(&blog, &["rev-parse", "main"]), sha);
    git(&blog, &["fsck", "--no-dangling"]);
    // The in-flight push's commit is there (a release may already name it), outside quarantine.
    assert_eq!(git(&blog, &["cat-file", "-t", &in_flight]), "commit");
    assert!(!blog.join("objects/tmp_objdir-incoming-x").exists());
    let empty = target.data_dir.join("repos/empty.git");
    assert_eq!(git(&empty, &["rev-parse", "--is-bare-repository"]), "true");
    drop(store);
    let s = Store::open(&target.data_dir.join(layout::STORE)).unwrap();
    assert!(s.read(|r| r.user_by_name("alice")).unwrap().is_some());
}

#[test]
fn restore_refuses_a_data_dir_that_is_not_empty_and_leaves_it_alone() {
    let dir = tempfile::tempdir().unwrap();
    let paths = paths_in(dir.path());
    let (store, _) = populated(&paths, &dir.path().join("work"));
    let archive = dir.path().join("b.tar.zst");
    create(&store, &paths, &archive).unwrap();
    let target = paths_in(&dir.path().join("other"));
    std::fs::create_dir_all(&target.data_dir).unwrap();
    std::fs::write(target.data_dir.join("notes.txt"), "mine").unwrap();
    let e = restore(&archive, &target).unwrap_err();
    assert!(matches!(e, Error::Conflict(_)), "{e}");
    assert!(e.to_string().contains("not empty"), "{e}");
    assert_eq!(
        super::sorted_names(&target.data_dir).unwrap(),
        vec!["notes.txt"]
    );
}

#[test]
fn restore_refuses_a_data_dir_a_server_uses() {
    let dir = tempfile::tempdir().unwrap();
    let paths = paths_in(dir.path());
    let (store, _) = populated(&paths, &dir.path().join("work"));
    let archive = dir.path().join("b.tar.zst");
    create(&store, &paths, &archive).unwrap();
    // The store is open (and so locked) by `store`, as by a running server.
    let e = restore(&archive, &paths).unwrap_err();
    assert!(matches!(e, Error::Conflict(_)), "{e}");
    assert!(e.to_string().contains("in use"), "{e}");
    // A server's control socket answering.
    let busy = paths_in(&dir.path().join("busy"));
    std::fs::create_dir_all(&busy.data_dir).unwrap();
    let _listener =
        std::os::unix::net::UnixListener::bind(busy.data_dir.join(layout::CONTROL_SOCKET)).unwrap();
    let e = restore(&archive, &busy).unwrap_err();
    assert!(matches!(e, Error::Conflict(_)), "{e}");
    assert!(e.to_string().contains("server is running"), "{e}");
}

#[test]
fn a_file_that_is_not_a_whole_backup_is_refused_clearly_and_nothing_is_left_behind() {
    let dir = tempfile::tempdir().unwrap();
    let paths = paths_in(dir.path());
    let (store, _) = populated(&paths, &dir.path().join("work"));
    let good = dir.path().join("b.tar.zst");
    create(&store, &paths, &good).unwrap();
    let bytes = std::fs::read(&good).unwrap();

    let mut plain_tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(2);
    h.set_mode(0o644);
    h.set_cksum();
    plain_tar
        .append_data(&mut h, "hello.txt", &b"hi"[..])
        .unwrap();
    let not_ours = zstd::encode_all(plain_tar.into_inner().unwrap().as_slice(), 3).unwrap();
    let mut climbing = tar::Builder::new(Vec::new());
    let manifest = serde_json::to_vec(&Manifest {
        format: FORMAT,
        scalefog_version: "x".into(),
        created_at: 0,
    })
    .unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_size(manifest.len() as u64);
    h.set_cksum();
    climbing
        .append_data(&mut h, MANIFEST, manifest.as_slice())
        .unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    // `append_data` refuses `..`; write the name into the header by hand, as an attacker would.
    h.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"data/../../x\0");
    h.set_cksum();
    climbing.append(&h, &b"x"[..]).unwrap();
    let climbing = zstd::encode_all(climbing.into_inner().unwrap().as_slice(), 3).unwrap();

    for (name, content, expected) in [
        ("garbage", b"not an archive at all".to_vec(), "tar + zstd"),
        ("empty", Vec::new(), "empty"),
        ("cut", bytes[..bytes.len() / 2].to_vec(), "damaged"),
        (
            "cut at the end",
            bytes[..bytes.len() - 20].to_vec(),
            "damaged",
        ),
        ("other.tar.zst", not_ours, "does not start with"),
        ("climbing.tar.zst", climbing, "unexpected entry"),
    ] {
        let archive = dir.path().join(name);
        std::fs::write(&archive, content).unwrap();
        let target = paths_in(&dir.path().join(format!("into-{name}")));
        let e = restore(&archive, &target).unwrap_err();
        assert!(
            matches!(&e, Error::Invalid { field, .. } if field == "archive"),
            "{name}: {e:?}"
        );
        assert!(e.to_string().contains(expected), "{name}: {e}");
        assert!(
            !target.data_dir.exists(),
            "{name}: the data dir it made is gone again"
        );
    }
    assert!(!dir.path().join("x").exists());
    let e = restore(
        &dir.path().join("missing.tar.zst"),
        &paths_in(&dir.path().join("m")),
    )
    .unwrap_err();
    assert!(e.to_string().contains("cannot open"), "{e}");
}
