//! `GET /metrics`: a real push deploys the busybox app in real Docker, requests go through the
//! app router and the API, and the Prometheus text shows each of them with the right labels and
//! values; only an admin or the `metrics_token` may read it; the console's app page draws the
//! same counters as sparklines.

use crate::dockerapp::*;
use crate::gitssh::*;
use crate::helpers::*;
use reqwest::StatusCode;

const METRICS_TOKEN: &str = "prometheus-scrape-token-0123456789";

/// The value of the one series named exactly `series` (name and labels), if present.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.trim().parse().expect("a number"))
}

fn expect(text: &str, series: &str) -> f64 {
    value(text, series).unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
}

async fn scrape(app: &TestApp, token: Option<&str>) -> reqwest::Response {
    app.get("/metrics", token).await
}

/// GET `path` of `app_name` through the router; its status and body.
async fn through_router(app: &TestApp, app_name: &str, path: &str) -> (StatusCode, String) {
    let r = app
        .client
        .get(format!("http://127.0.0.1:{}{path}", app.proxy_port))
        .header("host", format!("{app_name}.localhost"))
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

#[tokio::test]
async fn a_deployed_apps_traffic_deploy_push_and_api_requests_show_in_metrics_and_on_its_page() {
    let app = spawn_app_with(|c| {
        c.health_timeout = 10;
        c.metrics_token = Some(METRICS_TOKEN.into());
    })
    .await;
    let _cleanup = DockerCleanup::of(&app);
    let admin = app.user("root").await;
    let alice = app.user("alice").await;

    // A real push over SSH deploys the busybox app.
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "pusher").await;
    add_key(&app, &alice.token, &key).await;
    let name = unique("metrics");
    app.create_app(&alice.token, &name).await;
    let wt = dir.path().join("app");
    std::fs::create_dir_all(wt.join("www")).unwrap();
    std::fs::copy("/bin/busybox", wt.join("busybox")).expect("/bin/busybox exists");
    std::fs::write(wt.join("www/index.html"), "hello\n").unwrap();
    std::fs::write(wt.join("Dockerfile"), dockerfile("", SERVE)).unwrap();
    ok(git(&wt, &key, app.ssh_port, &["init", "-q", "-b", "main"]).await);
    commit(&wt, &key, app.ssh_port, "first").await;
    let remote = format!("ssh://git@127.0.0.1:{}/{name}.git", app.ssh_port);
    ok(git(&wt, &key, app.ssh_port, &["push", &remote, "main"]).await);

    // Three pages and one missing page through the router; two API reads of the app.
    for _ in 0..3 {
        let (status, body) = through_router(&app, &name, "/").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "hello\n"));
    }
    let (status, _) = through_router(&app, &name, "/missing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for _ in 0..2 {
        assert_eq!(app.get_app(&alice.token, &name).await.status(), 200);
    }

    let r = scrape(&app, Some(&admin.token)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "{:?}",
        r.headers()
    );
    let text = r.text().await.unwrap();
    let app_series = |series: &str, labels: &str| format!("{series}{{app=\"{name}\"{labels}}}");
    // The router: by app and status class, with latency and bytes.
    assert_eq!(
        expect(
            &text,
            &app_series("scalefog_router_requests_total", ",class=\"2xx\"")
        ),
        3.0
    );
    assert_eq!(
        expect(
            &text,
            &app_series("scalefog_router_requests_total", ",class=\"4xx\"")
        ),
        1.0
    );
    assert_eq!(
        expect(
            &text,
            &app_series("scalefog_router_requests_total", ",class=\"5xx\"")
        ),
        0.0
    );
    assert_eq!(
        expect(
            &text,
            &app_series("scalefog_router_request_duration_seconds_count", "")
        ),
        4.0
    );
    assert_eq!(
        expect(
            &text,
            &app_series(
                "scalefog_router_request_duration_seconds_bucket",
                ",le=\"+Inf\""
            )
        ),
        4.0
    );
    // Three bodies of "hello\n", and busybox's 404 page.
    assert!(
        expect(
            &text,
            &app_series("scalefog_router_response_bytes_total", "")
        ) > 18.0
    );
    assert_eq!(
        expect(
            &text,
            &app_series("scalefog_router_request_bytes_total", "")
        ),
        0.0
    );
    // The API, by route template (not the path holding the app's name) and status.
    assert_eq!(
        expect(
            &text,
            r#"scalefog_http_requests_total{method="GET",route="/v1/instances/{name}",status="200"}"#
        ),
        2.0
    );
    assert!(!text.contains(&format!("route=\"/v1/instances/{name}\"")));
    assert_eq!(
        expect(
            &text,
            r#"scalefog_http_request_duration_seconds_count{method="GET",route="/v1/instances/{name}"}"#
        ),
        2.0
    );
    // The deploy, its phases, the push and its bytes.
    assert_eq!(
        expect(&text, r#"scalefog_deploys_total{outcome="succeeded"}"#),
        1.0
    );
    for phase in ["build", "health_check", "switch"] {
        assert_eq!(
            expect(
                &text,
                &format!("scalefog_deploy_phase_duration_seconds_count{{phase=\"{phase}\"}}")
            ),
            1.0,
            "{phase}"
        );
    }
    assert_eq!(
        value(
            &text,
            r#"scalefog_deploy_phase_duration_seconds_count{phase="release_phase"}"#
        ),
        None,
        "the app has no release command"
    );
    assert_eq!(
        expect(&text, r#"scalefog_pushes_total{outcome="accepted"}"#),
        1.0
    );
    // The pack holds the busybox binary (compressed, still hundreds of KB).
    assert!(expect(&text, "scalefog_push_bytes_total") > 100_000.0);
    assert_eq!(
        expect(
            &text,
            &app_series("scalefog_app_replicas", ",process_type=\"web\"")
        ),
        1.0
    );
    assert!(expect(&text, "scalefog_ssh_sessions_total") >= 1.0);
    assert!(value(&text, "scalefog_ssh_sessions_open").is_some());
    assert!(expect(&text, "scalefog_store_size_bytes") > 0.0);

    // The metrics_token reads them too.
    let r = scrape(&app, Some(METRICS_TOKEN)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("scalefog_router_requests_total")
    );

    // The app page draws the same counters: four requests, none a 5xx.
    let page = app.sign_in_page().await;
    let csrf_cookie = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("scalefog_csrf="))
        .map(|v| v.split(';').next().unwrap().to_string())
        .expect("csrf cookie");
    let r = app
        .sign_in(&csrf_cookie, &alice.username, &alice.password)
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let session = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("scalefog_session="))
        .map(|v| v.split(';').next().unwrap().to_string())
        .expect("session cookie");
    let html = app
        .client
        .get(app.url(&format!("/console/apps/{name}")))
        .header("cookie", format!("scalefog_session={session}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let card = html
        .split_once(r#"<section class="card" id="traffic""#)
        .map(|(_, rest)| rest.split_once("</section>").unwrap().0)
        .unwrap_or_else(|| panic!("no traffic card in:\n{html}"));
    assert_eq!(
        card.matches(r#"<svg class="sparkline""#).count(),
        2,
        "{card}"
    );
    assert_eq!(card.matches("<polyline points=\"").count(), 2, "{card}");
    assert!(!card.contains("<script"), "{card}");
    // However the minutes fell, the last hour holds the four requests and no error.
    assert!(card.contains("/min now · 4 in "), "{card}");
    assert!(card.contains("0.0 % of requests"), "{card}");
}

#[tokio::test]
async fn metrics_refuse_no_token_a_users_token_and_a_wrong_token_and_the_router_does_not_serve_them()
 {
    let app = spawn_app_with(|c| c.metrics_token = Some(METRICS_TOKEN.into())).await;
    let admin = app.user("root").await;
    let alice = app.user("alice").await;
    for token in [
        None,
        Some(alice.token.as_str()),
        Some("prometheus-scrape-token-wrong"),
    ] {
        let r = scrape(&app, token).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{token:?}");
        let body = error_body(r).await;
        assert!(
            body["message"].as_str().unwrap().contains("metrics_token"),
            "{body}"
        );
    }
    assert_eq!(
        scrape(&app, Some(&admin.token)).await.status(),
        StatusCode::OK
    );
    // The public app router has no such page, for any host.
    for host in ["localhost", "scalefog.localhost"] {
        let r = app
            .client
            .get(format!("http://127.0.0.1:{}/metrics", app.proxy_port))
            .header("host", host)
            .bearer_auth(&admin.token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{host}");
        assert!(!r.text().await.unwrap().contains("scalefog_"));
    }
}
