//! Apps of more than one process: Procfile types, the formation (replicas of `web` balanced by
//! the router, a killed replica skipped), the release phase, and their errors.

use super::*;
use std::collections::HashSet;

/// The image: busybox, serving `/www`; what runs is the Procfile's business.
const IMAGE: &str = "FROM scratch\nCOPY busybox /bin/busybox\nCOPY www /www\n";

impl Fixture {
    /// Commits `procfile` (or removes it) with the page and [`IMAGE`], pushes; the push's
    /// outcome and lines.
    pub(super) async fn push_procfile(
        &self,
        page: &str,
        procfile: Option<&str>,
    ) -> (Result<(), String>, String) {
        let path = self.repo.work.join("Procfile");
        match procfile {
            Some(p) => std::fs::write(&path, p).unwrap(),
            None => {
                let _ = std::fs::remove_file(&path);
            }
        }
        let sha = self.repo.commit(page, Some(IMAGE));
        let (r, lines) = self.push(&sha).await;
        (r, lines.join("\n"))
    }

    /// GET `path` through the app router with `client` (bounded): the page, or the status and
    /// the router's explanation (its page's `<p>` line, else the whole body).
    pub(super) async fn via_router(
        &self,
        client: &reqwest::Client,
        path: &str,
    ) -> Result<String, String> {
        let r = client
            .get(format!("http://127.0.0.1:{}{path}", self.app.proxy_port))
            .header("Host", format!("{}.localhost", self.name))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let code = r.status();
        let body = r.text().await.map_err(|e| e.to_string())?;
        if code == 200 {
            Ok(body.trim().to_string())
        } else {
            let why = body.lines().find(|l| l.contains("<p>")).unwrap_or(&body);
            Err(format!("{code}: {why}"))
        }
    }

    /// The app's containers by their process label (`web.1`), running or not.
    pub(super) fn processes(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .app_containers()
            .into_iter()
            .map(|id| {
                let label = inspect(&id)["Config"]["Labels"]["scalefog.process"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                (label, id)
            })
            .collect();
        out.sort();
        out
    }

    /// Waits (bounded) until the app's containers are exactly `labels` (old ones retire after
    /// a grace period).
    async fn wait_for_processes(&self, labels: &[&str]) -> Vec<(String, String)> {
        for _ in 0..100 {
            let now = self.processes();
            if now
                .iter()
                .map(|(l, _)| l.as_str())
                .eq(labels.iter().copied())
            {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("processes are {:?}, expected {labels:?}", self.processes());
    }
}

fn fresh_connections() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_procfile_app_runs_web_and_a_worker_sharing_a_volume_and_logs_name_the_process() {
    let f = fixture("procs").await;
    let t = f.user.token.as_str();
    let r = f.app.add_volume(t, &f.name, "data", "/data").await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let procfile = "# web serves what the worker writes\n\
        web: /bin/busybox httpd -f -p $PORT -h /data\n\
        worker: /bin/busybox sh -c 'while true; do echo beat > /data/heartbeat.txt; echo worker-beat; /bin/busybox sleep 1; done'\n";
    let (r, text) = f.push_procfile("procs", Some(procfile)).await;
    assert!(r.is_ok(), "{r:?}\n{text}");
    assert!(
        text.contains("Procfile declares process types: web, worker"),
        "{text}"
    );
    assert!(text.contains("worker.1 is running"), "{text}");
    f.wait_for_processes(&["web.1", "worker.1"]).await;
    // The worker writes, web serves it: both run, on the same volume.
    let client = fresh_connections();
    let mut beat = Err(String::new());
    for _ in 0..50 {
        beat = f.via_router(&client, "/heartbeat.txt").await;
        if beat.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(beat.as_deref(), Ok("beat"));
    let formation: Value = f.app.formation(t, &f.name).await.json().await.unwrap();
    assert_eq!(formation, json!({"web": 1, "worker": 1}));
    // Its output is in the logs, marked with the process it comes from.
    let mut logs = String::new();
    for _ in 0..30 {
        let v: Value = f
            .app
            .logs(t, &f.name, "tail=50")
            .await
            .json()
            .await
            .unwrap();
        logs = v["lines"].to_string();
        if logs.contains("[worker.1] worker-beat") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(logs.contains("[worker.1] worker-beat"), "{logs}");

    // Scaling the worker to 0 stops it; web keeps serving.
    let r = f.app.scale(t, &f.name, &json!({"worker": 0})).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"web": 1, "worker": 0})
    );
    f.wait_for_processes(&["web.1"]).await;
    assert_eq!(
        f.via_router(&client, "/heartbeat.txt").await.as_deref(),
        Ok("beat")
    );
}

#[tokio::test]
async fn three_web_replicas_share_requests_survive_a_killed_one_and_deploy_without_a_failed_request()
 {
    let f = fixture("replicas").await;
    let t = f.user.token.as_str();
    let web = "web: /bin/busybox sh -c '/bin/busybox hostname > /www/host.txt; exec /bin/busybox httpd -f -p $PORT -h /www'\n";
    let (r, text) = f.push_procfile("v1", Some(web)).await;
    assert!(r.is_ok(), "{r:?}\n{text}");

    let r = f.app.scale(t, &f.name, &json!({"web": 3})).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"web": 3}));
    let replicas = f.wait_for_processes(&["web.1", "web.2", "web.3"]).await;
    let Some(Target::Serving(backends)) = f.target() else {
        panic!("not serving: {:?}", f.target())
    };
    assert_eq!(backends.addrs().len(), 3);

    // Every replica gets requests: each answers with its own hostname.
    let client = fresh_connections();
    let mut hosts = HashSet::new();
    for _ in 0..12 {
        hosts.insert(f.via_router(&client, "/host.txt").await.expect("served"));
    }
    assert_eq!(hosts.len(), 3, "{hosts:?}");

    // A crashed replica (its app killed from inside, as a crash would end it) is skipped while
    // its restart policy brings it back. (`docker kill` would count as a deliberate stop.)
    docker(&["exec", &replicas[1].1, "/bin/busybox", "kill", "-9", "-1"]);
    for i in 0..30 {
        let r = f.via_router(&client, "/host.txt").await;
        assert!(r.is_ok(), "request {i} after the kill failed: {r:?}");
    }
    // ... and it comes back (restarted by its restart policy, routed again by reconcile).
    let mut back = false;
    for _ in 0..100 {
        if inspect(&replicas[1].1)["State"]["Running"] == true
            && matches!(f.target(), Some(Target::Serving(b)) if b.addrs().len() == 3)
        {
            back = inspect(&replicas[1].1)["RestartCount"].as_u64() >= Some(1);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        back,
        "the killed replica is not serving again: {:?}",
        f.target()
    );

    // A deploy under a steady stream of requests: none fails, and all replicas are replaced.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let poller = {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        let (port, host) = (f.app.proxy_port, format!("{}.localhost", f.name));
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut errors = vec![];
            while !stop.load(Ordering::Relaxed) {
                let r = client
                    .get(format!("http://127.0.0.1:{port}/index.html"))
                    .header("Host", &host)
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 200 => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    other => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        errors.push(format!("{other:?}"));
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            errors
        })
    };
    let (r, text) = f.push_procfile("v2", Some(web)).await;
    assert!(r.is_ok(), "{r:?}\n{text}");
    assert!(text.contains("Starting web.1, web.2, web.3"), "{text}");
    let after = f.wait_for_processes(&["web.1", "web.2", "web.3"]).await;
    assert!(
        after
            .iter()
            .all(|(_, id)| !replicas.iter().any(|(_, old)| old == id))
    );
    stop.store(true, Ordering::Relaxed);
    let errors = poller.await.unwrap();
    assert!(
        ok.load(Ordering::Relaxed) > 10,
        "too few requests were made"
    );
    assert_eq!(failed.load(Ordering::Relaxed), 0, "{errors:?}");
    assert_eq!(
        f.via_router(&client, "/index.html").await.as_deref(),
        Ok("v2")
    );
}

#[tokio::test]
async fn a_failing_release_command_rejects_the_push_and_a_passing_one_runs_before_the_switch() {
    let f = fixture("relphase").await;
    let t = f.user.token.as_str();
    assert_eq!(
        f.app.add_volume(t, &f.name, "data", "/data").await.status(),
        StatusCode::CREATED
    );
    let web = "web: /bin/busybox httpd -f -p $PORT -h /data\n";
    let passing = format!(
        "{web}release: /bin/busybox sh -c 'echo migrating; echo $MARK > /data/marker.txt'\n"
    );
    assert_eq!(
        f.app
            .set_config(t, &f.name, &json!({"MARK": "from-release-v1"}))
            .await
            .status(),
        StatusCode::OK
    );
    let (r, text) = f.push_procfile("v1", Some(&passing)).await;
    assert!(r.is_ok(), "{r:?}\n{text}");
    let (ran, checked) = (
        text.find("Running release command").expect(&text),
        text.find("Health check passed").expect(&text),
    );
    assert!(
        ran < checked,
        "the release command runs before the switch:\n{text}"
    );
    assert!(text.contains("       migrating"), "{text}");
    let client = fresh_connections();
    assert_eq!(
        f.via_router(&client, "/marker.txt").await.as_deref(),
        Ok("from-release-v1")
    );

    let failing = format!("{web}release: /bin/busybox sh -c 'echo failing; exit 3'\n");
    let (r, text) = f.push_procfile("v2", Some(&failing)).await;
    let reason = r.expect_err("a failing release command rejects the push");
    assert!(reason.contains("exit code 3"), "{reason}\n{text}");
    assert!(text.contains("       failing"), "{text}");
    assert_eq!(f.instance().await["release"], 1);
    assert_eq!(
        f.via_router(&client, "/marker.txt").await.as_deref(),
        Ok("from-release-v1")
    );
    // The release container is gone either way.
    f.wait_for_processes(&["web.1"]).await;
}

#[tokio::test]
async fn a_procfile_that_does_not_parse_and_bad_formations_are_refused_clearly() {
    let f = fixture("badprocs").await;
    let t = f.user.token.as_str();
    let (r, text) = f
        .push_procfile(
            "bad",
            Some("web: /bin/busybox httpd -f -p $PORT -h /www\nworker /bin/x\n"),
        )
        .await;
    let reason = r.expect_err("an unparsable Procfile rejects the push");
    assert!(reason.contains("Procfile line 2"), "{reason}\n{text}");

    // Before any deploy the formation is web alone.
    let v: Value = f.app.formation(t, &f.name).await.json().await.unwrap();
    assert_eq!(v, json!({"web": 1}));
    for (body, field) in [
        (json!({"web": 21}), "web"),
        (json!({"web": -1}), "web"),
        (json!({"web": "many"}), "web"),
        (json!({"clock": 1}), "clock"),
        (json!({}), "formation"),
    ] {
        let r = f.app.scale(t, &f.name, &body).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["field"], field, "{body}: {e}");
    }
    // Someone else's app does not exist for them.
    let bob = f.app.user("bob").await;
    let r = f.app.scale(&bob.token, &f.name, &json!({"web": 2})).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = f.app.formation(&bob.token, &f.name).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}
