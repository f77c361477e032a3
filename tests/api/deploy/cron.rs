//! Scheduled jobs from `app.json`: they run when due as one-off containers of the current
//! release, and a job still running when it is due again is skipped, both recorded. The
//! scheduler's clock is moved forward instead of waiting for the minute.

use super::*;

async fn cron_of(f: &Fixture) -> Value {
    let r = f
        .app
        .get(
            &format!("/v1/instances/{}/cron", f.name),
            Some(&f.user.token),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

/// Waits (bounded) until a run of the job whose command contains `command` has `status`.
async fn wait_for_run(f: &Fixture, command: &str, status: &str) -> Value {
    for _ in 0..60 {
        let cron = cron_of(f).await;
        if let Some(run) = cron["runs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["command"].as_str().unwrap().contains(command) && r["status"] == status)
        {
            return run.clone();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("no {status} run of '{command}': {}", cron_of(f).await);
}

#[tokio::test]
async fn cron_jobs_run_when_due_with_the_apps_config_and_an_overlapping_run_is_skipped() {
    let f = fixture("cron").await;
    let t = f.user.token.as_str();
    assert_eq!(
        f.app
            .set_config(t, &f.name, &json!({"GREETING": "hi"}))
            .await
            .status(),
        StatusCode::OK
    );
    std::fs::write(
        f.repo.work.join("app.json"),
        r#"{"name": "cron test", "cron": [
            {"command": "/bin/busybox sh -c 'echo cron-ran $GREETING'", "schedule": "* * * * *"},
            {"command": "/bin/busybox sleep 600", "schedule": "*/1 * * * *"}
        ]}"#,
    )
    .unwrap();
    let (r, text) = f
        .push_procfile(
            "cron",
            Some("web: /bin/busybox httpd -f -p $PORT -h /www\n"),
        )
        .await;
    assert!(r.is_ok(), "{r:?}\n{text}");
    assert!(text.contains("app.json declares 2 cron job(s)"), "{text}");
    let cron = cron_of(&f).await;
    let jobs = cron["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 2, "{cron}");
    assert_eq!(jobs[0]["schedule"], "* * * * *");
    assert!(jobs[0]["next_run_at"].as_str().unwrap().ends_with('Z'));

    // The next minute comes now: both jobs start; the first ends with its output.
    f.app.services.deployer.cron_clock().advance(60);
    let ran = wait_for_run(&f, "cron-ran", "succeeded").await;
    assert_eq!(ran["exit_code"], 0);
    assert_eq!(ran["output"].as_str().unwrap().trim(), "cron-ran hi");
    assert_eq!(ran["release"], 1);
    wait_for_run(&f, "sleep 600", "running").await;

    // A minute later the sleeper still runs: its next run is skipped, and that is recorded.
    f.app.services.deployer.cron_clock().advance(60);
    let skipped = wait_for_run(&f, "sleep 600", "skipped").await;
    assert!(
        skipped["output"]
            .as_str()
            .unwrap()
            .contains("still running"),
        "{skipped}"
    );
    // Finished jobs' containers go (the first job ran again at that minute); the sleeper's
    // runs on, marked as cron.
    let mut crons = vec![];
    for _ in 0..60 {
        crons = f
            .processes()
            .into_iter()
            .filter(|(label, _)| label.starts_with("cron."))
            .collect();
        if crons.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(crons.len(), 1, "{:?}", f.processes());
    assert_eq!(inspect(&crons[0].1)["State"]["Running"], true);

    // Another user cannot see the jobs.
    let bob = f.app.user("bob").await;
    let r = f
        .app
        .get(&format!("/v1/instances/{}/cron", f.name), Some(&bob.token))
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_app_json_that_does_not_parse_rejects_the_push_naming_the_job() {
    let f = fixture("badcron").await;
    std::fs::write(
        f.repo.work.join("app.json"),
        r#"{"cron": [{"command": "echo", "schedule": "* * * * *"}, {"command": "x", "schedule": "every day"}]}"#,
    )
    .unwrap();
    let (r, text) = f
        .push_procfile(
            "badcron",
            Some("web: /bin/busybox httpd -f -p $PORT -h /www\n"),
        )
        .await;
    let reason = r.expect_err("a bad app.json rejects the push");
    assert!(reason.contains("app.json cron job 2"), "{reason}\n{text}");
}
