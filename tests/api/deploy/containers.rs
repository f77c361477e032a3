//! What an app container is started with, as an admin or an owner sets it: log rotation
//! (settings) and a read-only root filesystem (an app setting).

use super::*;

/// Runs a shell line inside a container; whether it succeeded.
fn exec_ok(container: &str, line: &str) -> bool {
    Command::new("docker")
        .args(["exec", container, "/bin/busybox", "sh", "-c", line])
        .output()
        .expect("docker cli")
        .status
        .success()
}

#[tokio::test]
async fn log_rotation_follows_the_settings() {
    let f = fixture_with("logrotate", |c| {
        c.log_rotation = scalefog::docker::LogRotation {
            max_size: "1m".into(),
            max_files: 2,
        };
    })
    .await;
    f.deploy("chatty", &dockerfile("", SERVE)).await;
    let log = &inspect(&f.current_container())["HostConfig"]["LogConfig"];
    assert_eq!(log["Type"], "json-file");
    assert_eq!(log["Config"]["max-size"], "1m");
    assert_eq!(log["Config"]["max-file"], "2");
}

#[tokio::test]
async fn a_read_only_root_refuses_writes_outside_tmp_and_the_app_still_serves() {
    let f = fixture("readonly").await;
    f.deploy("writable", &dockerfile("", SERVE)).await;
    let before = f.current_container();
    assert!(
        exec_ok(&before, "echo x > /probe"),
        "a writable root by default"
    );

    let r = f
        .app
        .update_app(&f.user.token, &f.name, &json!({"read_only_rootfs": true}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["read_only_rootfs"], true);
    let after = f.current_container();
    assert_ne!(before, after, "a new root means a new container");
    assert_eq!(inspect(&after)["HostConfig"]["ReadonlyRootfs"], true);
    assert!(!exec_ok(&after, "echo x > /probe"), "writing to / fails");
    assert!(
        !exec_ok(&after, "echo x > /www/probe"),
        "and to the app's files"
    );
    assert!(
        exec_ok(&after, "echo x > /tmp/probe && cat /tmp/probe"),
        "writing to /tmp works"
    );
    assert_eq!(f.body("/").await, "writable", "the app still serves");

    // Kept for the next release.
    f.deploy("redeployed", &dockerfile("", SERVE)).await;
    assert_eq!(
        inspect(&f.current_container())["HostConfig"]["ReadonlyRootfs"],
        true
    );
    assert_eq!(f.body("/").await, "redeployed");

    let r = f
        .app
        .update_app(
            &f.user.token,
            &f.name,
            &json!({"read_only_rootfs": "sometimes"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_body(r).await["field"], "read_only_rootfs");
}
