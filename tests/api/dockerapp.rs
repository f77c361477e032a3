//! Test apps in real Docker: a `FROM scratch` image holding Debian's static busybox, whose
//! `httpd` serves `/www` on `$PORT`; and cleanup of what a test server created in Docker, found by
//! its installation label. Shared by the deploy engine tests and the end-to-end push tests.

use crate::helpers::TestApp;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;

/// Prints `$GREETING` into `/www/env.txt` (so tests can see config vars), then serves `/www`
/// verbosely (request lines go to the container log).
pub const SERVE: &str = r#"CMD ["/bin/busybox", "sh", "-c", "echo \"$GREETING\" > /www/env.txt; exec /bin/busybox httpd -f -vv -p $PORT -h /www"]"#;

pub fn dockerfile(extra: &str, cmd: &str) -> String {
    format!("FROM scratch\nCOPY busybox /bin/busybox\n{extra}COPY www /www\n{cmd}\n")
}

/// Removes whatever Docker objects a test server created, even when the test fails.
pub struct DockerCleanup(pub String);

impl DockerCleanup {
    pub fn of(app: &TestApp) -> DockerCleanup {
        DockerCleanup::of_data_dir(&app.data_dir)
    }
    /// For a server started on `data_dir` (its installation id is kept there).
    pub fn of_data_dir(data_dir: &Path) -> DockerCleanup {
        let id = std::fs::read_to_string(data_dir.join("install.id")).unwrap();
        DockerCleanup(id.trim().to_string())
    }
    pub fn filter(&self) -> String {
        format!("label=scalefog.install={}", self.0)
    }
}

impl Drop for DockerCleanup {
    fn drop(&mut self) {
        let ids = docker(&["ps", "-aq", "--filter", &self.filter()]);
        for id in ids.split_whitespace() {
            docker(&["rm", "-f", id]);
        }
        let ids = docker(&["images", "-q", "--filter", &self.filter()]);
        for id in ids.split_whitespace() {
            docker(&["rmi", "-f", "--no-prune", id]);
        }
        let names = docker(&["volume", "ls", "-q", "--filter", &self.filter()]);
        for name in names.split_whitespace() {
            docker(&["volume", "rm", "-f", name]);
        }
        let ids = docker(&["network", "ls", "-q", "--filter", &self.filter()]);
        for id in ids.split_whitespace() {
            // The step of a build cancelled at the test's end stays on the build network until
            // Docker has stopped it, and the network cannot go before.
            for _ in 0..150 {
                let removed = Command::new("docker")
                    .args(["network", "rm", id])
                    .output()
                    .is_ok_and(|o| o.status.success());
                if removed {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        }
    }
}

pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker cli");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn inspect(id: &str) -> Value {
    let v: Value = serde_json::from_str(&docker(&["inspect", id])).unwrap_or(json!([]));
    v[0].clone()
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", hex::encode(rand::random::<[u8; 3]>()))
}
