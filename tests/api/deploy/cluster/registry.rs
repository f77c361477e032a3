//! The cluster's registry: set by admins (its password sealed, never shown), and with it set,
//! a release is pushed to a real registry (Debian's `docker-registry` with htpasswd auth, on
//! the host side of the test namespace) and the node pulls it instead of having it streamed.

use super::*;
use crate::image_apps::Registry;

/// Where nodes pull from: the host side of the namespace, which the second engine reaches.
const REGISTRY_PORT: u16 = 5000;
const LOGIN: (&str, &str) = ("ci", "cluster-registry-s3cret");

impl TestApp {
    async fn put_registry(&self, body: &Value, token: &str) -> reqwest::Response {
        self.client
            .put(self.url("/v1/cluster/registry"))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn admins_set_the_registry_and_its_password_is_sealed_and_never_shown() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let (user, password) = LOGIN;
    let body =
        json!({"address": "registry.example.com:5000", "username": user, "password": password});
    assert_eq!(
        app.put_registry(&body, &bob.token).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.get("/v1/cluster/registry", Some(&bob.token))
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    let r = app
        .put_registry(&json!({"address": "http://r.example.com/x"}), &alice.token)
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_body(r).await["field"], "address");
    let r = app
        .put_registry(
            &json!({"address": "registry.example.com:5000", "username": user}),
            &alice.token,
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_body(r).await["field"], "password");

    let r = app.put_registry(&body, &alice.token).await;
    assert_eq!(r.status(), StatusCode::OK);
    let shown: Value = r.json().await.unwrap();
    assert_eq!(shown["configured"], true);
    assert_eq!(shown["address"], "registry.example.com:5000");
    assert_eq!(shown["username"], user);
    assert_eq!(shown["set_by"], "alice");
    assert!(shown.get("password").is_none());
    assert!(!shown.to_string().contains(password));
    let r = app.get("/v1/cluster/registry", Some(&alice.token)).await;
    let text = r.text().await.unwrap();
    assert!(text.contains("registry.example.com:5000"), "{text}");
    assert!(!text.contains(password));
    // Sealed at rest: nowhere in the store's file in clear.
    let store = std::fs::read(app.data_dir.join("scalefog.redb")).unwrap();
    assert!(!store.is_empty());
    assert!(
        !store
            .windows(password.len())
            .any(|w| w == password.as_bytes())
    );
    // The change is audited, without the password.
    let audit = app
        .get("/v1/audit", Some(&alice.token))
        .await
        .text()
        .await
        .unwrap();
    assert!(audit.contains("cluster.registry"), "{audit}");
    assert!(!audit.contains(password));

    let r = app.delete("/v1/cluster/registry", Some(&alice.token)).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = app.delete("/v1/cluster/registry", Some(&alice.token)).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let shown: Value = app
        .get("/v1/cluster/registry", Some(&alice.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown, json!({"configured": false}));
}

/// Forwards a free loopback port to `to`, for as long as the test runs: the host's engine
/// speaks plain HTTP only to loopback registries, and it cannot be reconfigured here.
async fn loopback_forward(to: &str) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let to = to.to_string();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let to = to.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(&to).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    port
}

/// `GET` of the registry's API with the test login.
async fn registry_api(address: &str, path: &str) -> Value {
    let (user, password) = LOGIN;
    let r = reqwest::Client::new()
        .get(format!("http://{address}{path}"))
        .basic_auth(user, Some(password))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{path}");
    r.json().await.unwrap()
}

#[tokio::test]
async fn with_a_registry_a_release_is_pushed_and_the_node_pulls_it() {
    let _serial = SERIAL.lock().await;
    let address = format!("{HOST_ADDR}:{REGISTRY_PORT}");
    let engine = SecondEngine::start_with(Some(&address));
    let registry = Registry::start_at(HOST_ADDR, REGISTRY_PORT, Some(LOGIN));
    assert_eq!(registry.address(), address);
    let push_port = loopback_forward(&address).await;
    let f = cluster_fixture(&engine, "Edge").await;
    let (user, password) = LOGIN;
    let r = f
        .app
        .put_registry(
            &json!({
                "address": address,
                "push_address": format!("127.0.0.1:{push_port}"),
                "username": user,
                "password": password,
            }),
            &f.user.token,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());

    let page = "pulled from the registry";
    let sha = f.repo.commit(page, Some(&dockerfile("", SERVE)));
    let (r, lines) = f.push(&sha).await;
    assert!(r.is_ok(), "{r:?}\n{}", lines.join("\n"));
    assert_eq!(f.through_router("/index.html").await.as_deref(), Ok(page));

    // The registry holds the release image, under the installation's name.
    let install = install_of(&f);
    let repo = format!("{install}/scalefog/{}", f.name);
    let catalog = registry_api(&address, "/v2/_catalog").await;
    assert!(
        catalog["repositories"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == &json!(repo)),
        "{catalog}"
    );
    let tags = registry_api(&address, &format!("/v2/{repo}/tags/list")).await;
    assert_eq!(tags["tags"], json!(["v1"]), "{tags}");
    // Node 2 pulled it by the registry's name; a streamed image would carry the local one.
    let on_node = node_docker("images --format '{{.Repository}}:{{.Tag}}'");
    assert!(
        on_node
            .lines()
            .any(|l| l.trim() == format!("{address}/{repo}:v1")),
        "{on_node}"
    );
    assert!(
        !on_node
            .lines()
            .any(|l| l.trim() == format!("scalefog/{}:v1", f.name)),
        "the image was streamed: {on_node}"
    );
    // Pulled, not loaded: only a pull records the registry's digest.
    let digests = node_docker(&format!(
        "image inspect --format '{{{{json .RepoDigests}}}}' {address}/{repo}:v1"
    ));
    assert!(
        digests.contains(&format!("{address}/{repo}@sha256:")),
        "{digests}"
    );
    assert!(on_node_2(&install) >= 1);
    drop(registry);
}
