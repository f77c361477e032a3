//! Placement by region: an app's replicas run on its region's nodes only and answer through
//! the router; removing a node drains it first, and the last node of a region with apps stays.

use super::*;

#[tokio::test]
async fn an_app_in_a_region_runs_on_that_regions_node_only_and_answers_through_the_router() {
    let _serial = SERIAL.lock().await;
    let engine = SecondEngine::start();
    let f = cluster_fixture(&engine, "Edge").await;
    let admin = Some(f.user.token.as_str());
    // Join tokens never reach a non-admin.
    let bob = f.app.user("bob").await;
    assert_eq!(
        f.app.get("/v1/cluster", Some(&bob.token)).await.status(),
        StatusCode::FORBIDDEN
    );
    let node = f.node("edge-1").await;
    assert_eq!(node["state"], "ready", "{node}");
    assert_eq!(node["ram"], "1 GB");
    // No registry: the image is streamed to node 2 before its services are created.
    f.push_page("hello from the edge", "one replica on one remote node")
        .await;
    let r = f
        .app
        .scale(&f.user.token, &f.name, &json!({"web": 2}))
        .await;
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let install = install_of(&f);
    // The replaced replica goes after its grace period; then exactly the two new ones remain.
    let mut running = on_node_2(&install);
    for _ in 0..120 {
        if running == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        running = on_node_2(&install);
    }
    assert_eq!(running, 2, "both replicas run on node 2");
    // The app's JSON says so, and the Nodes page lists them on node 2.
    let json: Value = f
        .app
        .get_app(&f.user.token, &f.name)
        .await
        .json()
        .await
        .unwrap();
    let placed: Vec<(&str, &str)> = json["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["process"].as_str().unwrap(),
                p["node_name"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(placed, [("web.1", "edge-1"), ("web.2", "edge-1")], "{json}");
    let console = crate::console::console_sign_in(&f.app, "alice", &f.user.password).await;
    let page = console
        .get(&f.app, "/console/admin/nodes")
        .await
        .text()
        .await
        .unwrap();
    let row = page
        .split("data-node=\"2\"")
        .nth(1)
        .unwrap()
        .split("</tr>")
        .next()
        .unwrap();
    assert!(row.contains(&format!("{} web.2", f.name)), "{row}");
    assert_eq!(
        docker(&[
            "ps",
            "-q",
            "--filter",
            &format!("label=scalefog.install={install}")
        ]),
        "",
        "nothing of the app runs on node 1 (another region)"
    );
    for _ in 0..10 {
        assert_eq!(
            f.through_router("/index.html").await.as_deref(),
            Ok("hello from the edge")
        );
    }
    // The region's only node cannot go while the region holds an app.
    let r = f
        .app
        .delete(
            &format!("/v1/nodes/{}", node["id"].as_str().unwrap()),
            admin,
        )
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert!(
        error_body(r).await["message"]
            .as_str()
            .unwrap()
            .contains("last node of region"),
    );
}

#[tokio::test]
async fn removing_a_node_drains_it_first_and_no_request_fails() {
    let _serial = SERIAL.lock().await;
    let engine = SecondEngine::start();
    let f = cluster_fixture(&engine, "1").await;
    let page = "drained gracefully";
    spread_over_both(&f, page).await;
    let install = install_of(&f);
    let token = f.user.token.clone();
    let url = f.app.url("/v1/nodes/2");
    let removal = tokio::spawn(async move {
        reqwest::Client::new()
            .delete(url)
            .bearer_auth(token)
            .send()
            .await
            .map(|r| r.status())
    });
    let start = std::time::Instant::now();
    let Requests { late, total, .. } =
        request_loop(&f, &[page], start, Duration::ZERO, || removal.is_finished()).await;
    assert!(
        late.is_empty(),
        "failed during the drain ({total} requests): {late:#?}"
    );
    assert_eq!(removal.await.unwrap().unwrap(), StatusCode::NO_CONTENT);
    assert_eq!(on_node_1(&install), 2, "both replicas run on node 1");
    assert_eq!(on_node_2(&install), 0);
    let nodes: Value = f
        .app
        .get("/v1/nodes", Some(&f.user.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(nodes.as_array().unwrap().len(), 1, "{nodes}");
}

/// Two replicas on two nodes are one swarm service: each process's logs must still be that
/// replica's own lines, each line once, marked with the process it comes from.
#[tokio::test]
async fn each_replicas_logs_are_its_own_when_they_run_on_two_nodes() {
    let _serial = SERIAL.lock().await;
    let engine = SecondEngine::start();
    let f = cluster_fixture(&engine, "1").await;
    spread_over_both(&f, "logs from two machines").await;
    // A release command on the swarm: its output reaches the push, and its end ends the wait.
    std::fs::write(
        f.repo.work.join("Procfile"),
        "web: /bin/busybox httpd -f -vv -p $PORT -h /www\n\
         release: /bin/busybox sh -c 'echo released on the swarm'\n",
    )
    .unwrap();
    let sha = f
        .repo
        .commit("logs from two machines, v2", Some(&dockerfile("", SERVE)));
    let (r, lines) = f.push(&sha).await;
    let text = lines.join("\n");
    assert!(r.is_ok(), "{r:?}\n{text}");
    assert!(text.contains("       released on the swarm"), "{text}");
    assert!(
        one_replica_per_node(&install_of(&f)).await,
        "one replica per node after the release"
    );
    // httpd -vv logs each request's path: one probe path per request, 12 requests.
    let probes: Vec<String> = (0..12).map(|k| format!("/probe-{k}.html")).collect();
    for p in &probes {
        let _ = f.through_router(p).await;
    }
    let t = f.user.token.as_str();
    let mut lines: Vec<String> = Vec::new();
    for _ in 0..40 {
        let v: Value = f
            .app
            .logs(t, &f.name, "tail=500")
            .await
            .json()
            .await
            .unwrap();
        lines = v["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap_or_default().to_string())
            .collect();
        if probes
            .iter()
            .all(|p| lines.iter().any(|l| l.contains(&format!("url:{p}"))))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let all = lines.join("\n");
    for p in &probes {
        let seen: Vec<&String> = lines
            .iter()
            .filter(|l| l.ends_with(&format!("url:{p}")))
            .collect();
        assert_eq!(
            seen.len(),
            1,
            "{p} is logged once, by the replica that served it: {all}"
        );
    }
    for process in ["[web.1] ", "[web.2] "] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(process) && l.contains("url:/probe-")),
            "both replicas served and logged: {all}"
        );
    }
}
