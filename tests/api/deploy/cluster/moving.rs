//! Turning the cluster on moves running apps from plain containers onto the swarm, without a
//! failed request, whether it is turned on through the API or by `scalefog cluster init`
//! while the server is stopped.

use super::*;

#[tokio::test]
async fn turning_the_cluster_on_moves_a_running_app_onto_the_swarm_without_a_failed_request() {
    let _serial = SERIAL.lock().await;
    let engine = SecondEngine::start();
    // The cluster is off: the app is deployed as a plain container.
    let app = spawn_app_with(|c| c.health_timeout = 60).await;
    engine.watch(&app);
    let cleanup = DockerCleanup::of(&app);
    let user = app.user("alice").await;
    let name = unique("moving");
    app.create_app(&user.token, &name).await;
    let f = Fixture {
        app,
        user,
        name,
        repo: Repo::new(),
        _cleanup: cleanup,
    };
    let page = "moved without a gap";
    // The same push on one machine, for the cluster benchmark's comparison.
    f.push_page(page, "one machine (cluster off)").await;
    let install = install_of(&f);
    assert_eq!(
        plain_containers(&install, false),
        1,
        "the app runs as a plain container"
    );
    assert_eq!(services_of(&install), 0);
    assert_eq!(f.through_router("/index.html").await.as_deref(), Ok(page));
    // An admin turns the cluster on while requests keep coming.
    let (url, token) = (f.app.url("/v1/cluster"), f.user.token.clone());
    let enabling = tokio::spawn(async move {
        let r = reqwest::Client::new()
            .post(url)
            .bearer_auth(token)
            .form(&[("advertise", HOST_ADDR)])
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json::<Value>().await.unwrap())
    });
    let start = std::time::Instant::now();
    let Requests {
        late,
        total,
        failed,
        ..
    } = request_loop(&f, &[page], start, Duration::ZERO, || {
        enabling.is_finished()
            && plain_containers(&install, false) == 0
            && services_of(&install) == 1
    })
    .await;
    println!(
        "moving into the cluster: {total} requests, {failed} failed, {:?}",
        start.elapsed()
    );
    assert!(
        late.is_empty(),
        "failed while moving ({total} requests): {late:#?}"
    );
    let log = |f: &Fixture| {
        let (app, token) = (f.app.url("/v1/audit?per_page=100"), f.user.token.clone());
        async move {
            let log: Value = reqwest::Client::new()
                .get(app)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            log
        }
    };
    let moves = log(&f).await;
    let state = format!(
        "containers: {}\nservices: {}\naudit: {moves}",
        docker(&[
            "ps",
            "-a",
            "--filter",
            &format!("label=scalefog.install={install}"),
            "--format",
            "{{.ID}} {{.CreatedAt}} {{.Status}} {{.Labels}}"
        ]),
        sh("docker service ls; docker service ps $(docker service ls -q) --no-trunc").1,
    );
    assert!(enabling.is_finished(), "the cluster was not turned on");
    let (status, cluster) = enabling.await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{cluster}");
    assert_eq!(cluster["apps_to_move"], 1, "{cluster}");
    // Its process is a swarm task now, and no container of it is left outside the swarm.
    assert_eq!(services_of(&install), 1, "{state}");
    assert!(
        eventually(|| plain_containers(&install, true) == 0).await,
        "the plain container is retired: {state}"
    );
    let tasks = docker(&[
        "service",
        "ps",
        "--filter",
        "desired-state=running",
        "--format",
        "{{.CurrentState}}",
        &docker(&[
            "service",
            "ls",
            "-q",
            "--filter",
            &format!("label=scalefog.install={install}"),
        ]),
    ]);
    assert!(tasks.starts_with("Running"), "{tasks}");
    let cluster: Value = f
        .app
        .get("/v1/cluster", Some(&f.user.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(cluster["apps_to_move"], 0, "{cluster}");
    assert_eq!(f.through_router("/index.html").await.as_deref(), Ok(page));
    // The move is audited, as done by the admin who turned the cluster on.
    let log = log(&f).await;
    let moved = log
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "app.move" && e["app"] == f.name.as_str())
        .unwrap_or_else(|| panic!("no app.move entry: {log}"));
    assert_eq!(moved["username"], "alice");
    assert!(
        moved["detail"]
            .as_str()
            .unwrap()
            .starts_with("moved into the cluster"),
        "{moved}"
    );
}

#[tokio::test]
async fn after_cluster_init_while_stopped_the_next_start_moves_running_apps_onto_the_swarm() {
    let _serial = SERIAL.lock().await;
    let engine = SecondEngine::start();
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().join("data");
    let dd = data_dir.clone();
    let app = spawn_app_with(move |c| {
        c.data_dir = dd;
        c.health_timeout = 60;
    })
    .await;
    engine.watch(&app);
    let cleanup = DockerCleanup::of(&app);
    let user = app.user("alice").await;
    let name = unique("inited");
    app.create_app(&user.token, &name).await;
    let repo = Repo::new();
    let f = Fixture {
        app,
        user,
        name,
        repo,
        _cleanup: cleanup,
    };
    let page = "moved at start";
    let sha = f.repo.commit(page, Some(&dockerfile("", SERVE)));
    let (r, lines) = f.push(&sha).await;
    assert!(r.is_ok(), "{r:?}\n{}", lines.join("\n"));
    let install = install_of(&f);
    assert_eq!(plain_containers(&install, false), 1);
    let Fixture {
        app,
        user,
        name,
        repo: _repo,
        _cleanup,
    } = f;
    drop(app);
    store_released(&data_dir).await;
    // `scalefog cluster init --advertise …` while the server is stopped: the same core call.
    {
        let config = scalefog::config::Config::for_tests(&data_dir);
        let store = scalefog::store::Store::open(&config.store_path()).unwrap();
        let swarm = scalefog::runtime::Swarm::new(
            scalefog::docker::Engine::new(&config.docker_host),
            store.clone(),
            scalefog::docker::Installation {
                id: install.clone(),
            },
            data_dir.join("nodes"),
        );
        let nodes = scalefog::nodes::Nodes::new(store, swarm);
        nodes.turn_on(HOST_ADDR).await.unwrap();
    }
    store_released(&data_dir).await;
    let dd = data_dir.clone();
    let app = spawn_app_with(move |c| {
        c.data_dir = dd;
        c.health_timeout = 60;
    })
    .await;
    assert!(
        eventually(|| services_of(&install) == 1 && plain_containers(&install, true) == 0).await,
        "the app moved: {} services, {} plain containers",
        services_of(&install),
        plain_containers(&install, true)
    );
    let r = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/index.html", app.proxy_port))
        .header("Host", format!("{name}.localhost"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap().trim(), page);
    let log: Value = app
        .audit(&user.token, "per_page=100")
        .await
        .json()
        .await
        .unwrap();
    let moved = log
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "app.move" && e["app"] == name.as_str())
        .unwrap_or_else(|| panic!("no app.move entry: {log}"));
    assert_eq!(moved["username"], "scalefog", "{moved}");
}
