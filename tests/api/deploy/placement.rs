//! Where an app's processes run, with the cluster off (the default): its JSON and its page
//! name node 1, this host's engine, for each process, and volumes pin nothing (there is one
//! engine). With the cluster on, see `cluster/console.rs`.

use super::*;
use crate::console::console_sign_in;

#[tokio::test]
async fn an_apps_json_and_page_say_each_process_runs_on_the_local_node_and_nothing_is_pinned() {
    let f = fixture("placed").await;
    let t = f.user.token.as_str();
    let r = f.app.add_volume(t, &f.name, "data", "/data").await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let procfile = "web: /bin/busybox httpd -f -p $PORT -h /www\n\
        worker: /bin/busybox sh -c 'while true; do /bin/busybox sleep 1; done'\n";
    let (r, text) = f.push_procfile("placed", Some(procfile)).await;
    assert!(r.is_ok(), "{r:?}\n{text}");

    let json: Value = f.app.get_app(t, &f.name).await.json().await.unwrap();
    assert_eq!(
        json["processes"],
        json!([
            {"process": "web.1", "type": "web", "replica": 1, "node": "1", "node_name": "local"},
            {"process": "worker.1", "type": "worker", "replica": 1, "node": "1", "node_name": "local"}
        ]),
        "{json}"
    );
    assert!(json.get("pinned_to").is_none(), "{json}");
    // Lists keep their shape: placement is the one app's.
    let list: Value = f.app.instances(t).await.json().await.unwrap();
    let listed = list
        .as_array()
        .or(list["items"].as_array())
        .unwrap()
        .iter()
        .find(|a| a["name"] == f.name.as_str())
        .unwrap()
        .clone();
    assert!(listed.get("processes").is_none(), "{listed}");

    let console = console_sign_in(&f.app, "alice", &f.user.password).await;
    let page = console
        .get(&f.app, &format!("/console/apps/{}", f.name))
        .await
        .text()
        .await
        .unwrap();
    for process in ["web.1", "worker.1"] {
        let at = page
            .find(&format!("data-process=\"{process}\""))
            .unwrap_or_else(|| panic!("no row for {process}"));
        assert!(
            page[at..]
                .split("</tr>")
                .next()
                .unwrap()
                .contains("local (node 1)")
        );
    }
    assert!(!page.contains("id=\"volume-pin\""));
}
