//! Deleting an app is an intent recorded first: a crash right after it must neither bring the
//! app back nor leave half of it behind.

use super::*;
use scalefog::deploy::reconcile::Occasion;
use scalefog::domain::InstanceStatus;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The status line the router answers for `host`, over raw TCP.
async fn router_status_line(proxy_port: u16, host: &str) -> String {
    let mut c = tokio::net::TcpStream::connect(("127.0.0.1", proxy_port))
        .await
        .unwrap();
    c.write_all(format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut answer = Vec::new();
    c.read_to_end(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn a_deletion_cut_short_by_a_crash_never_restarts_the_app_and_the_next_start_finishes_it() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().join("data");
    let dd = data_dir.clone();
    let f = fixture_with("halfdeleted", move |c| c.data_dir = dd).await;
    f.deploy("doomed", &dockerfile("", SERVE)).await;
    let host = format!("{}.localhost", f.name);
    assert_eq!(
        router_status_line(f.app.proxy_port, &host).await,
        "HTTP/1.1 200 OK"
    );
    let repo = data_dir.join("repos").join(format!("{}.git", f.name));
    assert!(repo.join("HEAD").exists(), "the app has its repository");

    // The crash: DELETE recorded its intent in the store, and nothing after it ran.
    let name = f.name.clone();
    f.app
        .services
        .store
        .write(move |w| {
            let mut inst = w.instance(&name)?.unwrap();
            inst.status = InstanceStatus::Deleting;
            w.put_instance(&inst)
        })
        .unwrap();
    // Reconcile (a container event) takes its container down for good and routes nothing to it.
    f.app
        .services
        .deployer
        .reconcile_app(&f.name, Occasion::Event)
        .await
        .unwrap();
    assert!(f.app_containers().is_empty(), "its container is removed");
    assert_eq!(f.target(), Some(Target::Unavailable("deleting".into())));
    assert_eq!(
        router_status_line(f.app.proxy_port, &host).await,
        "HTTP/1.1 503 Service Unavailable"
    );
    // Nothing may change it meanwhile: a setting, a deploy.
    let r = f
        .app
        .update_app(&f.user.token, &f.name, &json!({"memory": 128}))
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert!(
        error_body(r).await["message"]
            .as_str()
            .unwrap()
            .contains("being deleted")
    );
    let sha = f.repo.commit("revived", Some(&dockerfile("", SERVE)));
    let (pushed, _) = f.push(&sha).await;
    assert!(pushed.is_err(), "a push to a deleting app is refused");
    assert!(f.app_containers().is_empty());

    let Fixture {
        app,
        user,
        name,
        repo: _repo,
        _cleanup,
    } = f;
    drop(app);
    store_released(&data_dir).await;
    let dd = data_dir.clone();
    let app = spawn_app_with(move |c| c.data_dir = dd).await;
    let mut finished = false;
    for _ in 0..200 {
        if app
            .services
            .store
            .read(|r| r.instance(&name))
            .unwrap()
            .is_none()
        {
            finished = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(finished, "the next start finishes the deletion");
    let app_filter = format!("label=scalefog.app={name}");
    assert_eq!(docker(&["ps", "-aq", "--filter", &app_filter]), "");
    assert_eq!(
        docker(&["images", "-q", "--filter", &app_filter]),
        "",
        "its images are gone"
    );
    assert!(!repo.exists(), "its repository is gone");
    assert!(
        app.services
            .store
            .read(|r| r.releases_of(&name, scalefog::store::Slice::ALL))
            .unwrap()
            .items
            .is_empty(),
        "its releases are gone"
    );
    assert_eq!(app.services.routes.get(&name), None, "nothing routes it");
    // And the name is free again.
    let r = app
        .create_instance(&user.token, &[("appname", &name)])
        .await;
    assert_eq!(r.status(), StatusCode::OK);
}
