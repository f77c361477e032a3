//! The cluster in the console, in a real chromium: an admin turns it on and adds the second
//! engine as a node; the Nodes page shows each node's state from the swarm and the join
//! command, which no non-admin gets anywhere. An app's JSON says where its processes run and
//! that its volumes pin it to the manager's node.

use super::*;
use crate::console::{BROWSER_TURN, Browser, console_sign_in};

#[tokio::test]
async fn an_admin_turns_the_cluster_on_in_the_console_and_a_non_admin_never_gets_the_join_token() {
    let _serial = SERIAL.lock().await;
    let _turn = BROWSER_TURN.lock().await;
    let engine = SecondEngine::start();
    let app = spawn_app_with(|c| c.health_timeout = 60).await;
    engine.watch(&app);
    let _cleanup = DockerCleanup::of(&app);
    let admin = app.user("admin").await;
    let bob = app.user("bob").await;
    let tmp = tempfile::tempdir().unwrap();
    let b = Browser::start(true, &tmp.path().join("shots")).await;
    b.sign_in(&app, "admin", &admin.password).await;

    // Off (the default): the page explains and offers the form; a bad address is a notice.
    b.goto(&app.url("/console/admin/nodes")).await;
    assert!(b.text("#cluster").await.contains("Off"));
    b.fill("#cluster-advertise-input", "not-an-ip").await;
    b.click_then("#cluster-enable", "#cluster-error").await;
    assert!(
        b.text("#cluster-error").await.contains("IP address"),
        "{}",
        b.text("#cluster-error").await
    );
    assert_eq!(
        app.get("/v1/cluster", Some(&admin.token))
            .await
            .json::<Value>()
            .await
            .unwrap()["enabled"],
        false
    );

    // On: advertise, manager, the join command, and node 1 ready with the swarm's resources.
    b.fill("#cluster-advertise-input", HOST_ADDR).await;
    b.click_then("#cluster-enable", ".flash").await;
    assert!(b.text(".flash").await.contains("The cluster is on"));
    assert_eq!(b.text("#cluster-advertise").await, HOST_ADDR);
    assert!(b.text("#cluster-manager").await.contains("local (node 1"));
    let join = b.text("#join-command").await;
    assert!(
        join.starts_with("docker swarm join --token SWMTKN-") && join.ends_with(":2377"),
        "{join}"
    );
    let api: Value = app
        .get("/v1/cluster", Some(&admin.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(api["join_command"], join.as_str());
    // Scalefog's key for ssh:// nodes, behind "Over SSH" in the form, as the API shows it.
    b.find("#node-ssh summary").await.click().await.unwrap();
    let key = b.text("#node-ssh-key").await;
    assert!(key.starts_with("ssh-ed25519 "), "{key}");
    assert_eq!(api["ssh_public_key"], key.as_str());
    assert_eq!(b.text("tr[data-node='1'] .node-state").await, "ready");
    assert!(
        b.text("tr[data-node='1'] .node-resources")
            .await
            .contains("CPU")
    );
    b.shot("cluster-01-on").await;

    // A region from the Regions page, then the second engine as a node of it. Plain tcp://
    // without the box ticked is refused, as a notice.
    b.goto(&app.url("/console/admin/regions")).await;
    b.fill("#region-name", "Edge").await;
    b.click_then("#region-add", ".flash").await;
    assert!(b.text(".flash").await.contains("Added region Edge"));
    let regions: Value = app.get("/v1/regions", None).await.json().await.unwrap();
    let edge = regions
        .as_array()
        .or(regions["items"].as_array())
        .unwrap()
        .iter()
        .find(|r| r["name"] == "Edge")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    b.goto(&app.url("/console/admin/nodes")).await;
    b.fill("#node-name", "edge-1").await;
    b.find(&format!("#node-region option[value='{edge}']"))
        .await
        .click()
        .await
        .unwrap();
    b.fill("#node-endpoint", NODE_ENDPOINT).await;
    b.fill("#node-ram", "1 GB").await;
    b.click_then("#node-add", "#node-error").await;
    assert!(b.text("#node-error").await.contains("TLS"));
    b.find("#node-insecure").await.click().await.unwrap();
    b.click_then("#node-add", ".flash").await;
    assert!(
        b.text(".flash").await.contains("Added node edge-1"),
        "{}",
        b.text(".flash").await
    );
    let row = b.text("tr[data-node='2']").await;
    assert!(row.contains("Edge") && row.contains(NODE_ENDPOINT), "{row}");
    // The swarm may report a node that just joined as `unknown` for a moment.
    let mut state = b.text("tr[data-node='2'] .node-state").await;
    for _ in 0..60 {
        if state == "ready" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        b.goto(&app.url("/console/admin/nodes")).await;
        state = b.text("tr[data-node='2'] .node-state").await;
    }
    assert_eq!(state, "ready");
    b.shot("cluster-02-node").await;

    // Volumes pin an app to the manager's node: its JSON and its page say so.
    let pinned = unique("pin");
    app.create_app(&admin.token, &pinned).await;
    let r = app.add_volume(&admin.token, &pinned, "data", "/data").await;
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let json: Value = app
        .get_app(&admin.token, &pinned)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        json["pinned_to"],
        json!({
            "node": "1",
            "node_name": "local",
            "reason": "volumes pin this app to node 1 (local): its processes run there only"
        }),
        "{json}"
    );
    assert_eq!(json["processes"], json!([]), "nothing deployed yet");
    b.goto(&app.url(&format!("/console/apps/{pinned}"))).await;
    assert_eq!(
        b.text("#volume-pin").await,
        "Volumes pin this app to node 1 (local): its processes run there only."
    );
    let free = unique("free");
    app.create_app(&admin.token, &free).await;
    let json: Value = app.get_app(&admin.token, &free).await.json().await.unwrap();
    assert!(json.get("pinned_to").is_none(), "{json}");

    // Join tokens never reach a non-admin: not the API, not the console, not their own app.
    let t = Some(bob.token.as_str());
    assert_eq!(
        app.get("/v1/cluster", t).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.post_form("/v1/cluster", &[("advertise", HOST_ADDR)], t)
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    let r = app.get("/v1/nodes", t).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(!r.text().await.unwrap().contains("SWMTKN"));
    let console = console_sign_in(&app, "bob", &bob.password).await;
    for path in ["/console/admin/nodes", "/console/admin/regions"] {
        let r = console.get(&app, path).await;
        assert!(
            [StatusCode::FORBIDDEN, StatusCode::NOT_FOUND].contains(&r.status()),
            "{path}: {}",
            r.status()
        );
        assert!(!r.text().await.unwrap().contains("SWMTKN"), "{path}");
    }
    let r = console
        .post(
            &app,
            "/console/admin/cluster",
            &[("csrf", &console.csrf), ("advertise", HOST_ADDR)],
        )
        .await;
    assert!(
        [StatusCode::FORBIDDEN, StatusCode::NOT_FOUND].contains(&r.status()),
        "{}",
        r.status()
    );
    assert!(!r.text().await.unwrap().contains("SWMTKN"));
    let own = unique("bobs");
    app.create_app(&bob.token, &own).await;
    let page = console.get(&app, &format!("/console/apps/{own}")).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(!page.text().await.unwrap().contains("SWMTKN"));
    let json = app.get_app(&bob.token, &own).await.text().await.unwrap();
    assert!(!json.contains("SWMTKN"), "{json}");
    b.close().await;
}
