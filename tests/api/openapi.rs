//! The OpenAPI document (`GET /v1/openapi.json`) and schemathesis run against a live server with
//! it: every operation, as a user and as an admin, with zero 5xx answers and zero answers that
//! break the document's own schemas.

use crate::dockerapp::DockerCleanup;
use crate::helpers::spawn_app;
use reqwest::StatusCode;
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

/// The schemathesis release the run is known to pass with (its CLI changed in v4).
const SCHEMATHESIS: &str = "schemathesis==4.32.5";

#[tokio::test]
async fn the_openapi_document_is_served_to_anyone() {
    let app = spawn_app().await;
    let r = app.get("/v1/openapi.json", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    for path in [
        "/account/register",
        "/instances/create",
        "/v1/instances/{name}",
        "/v1/openapi.json",
        "/api/users/create",
    ] {
        assert!(paths.contains_key(path), "{path} is documented");
    }
    // Both body encodings the handlers read, and the one error shape.
    let body = &doc["paths"]["/v1/users"]["post"]["requestBody"]["content"];
    assert!(body["application/json"].is_object());
    assert!(body["application/x-www-form-urlencoded"].is_object());
    assert_eq!(
        doc["paths"]["/v1/instances/{name}"]["get"]["responses"]["404"]["content"]["application/json"]
            ["schema"]["$ref"],
        "#/components/schemas/ErrorBody"
    );
    let schemes = doc["components"]["securitySchemes"]
        .as_object()
        .expect("schemes");
    assert_eq!(schemes.len(), 3);
    // A public operation says so; the others take the document's credentials.
    assert_eq!(
        doc["paths"]["/v1/tokens"]["post"]["security"],
        serde_json::json!([{}])
    );
    assert!(doc["paths"]["/v1/account"]["get"]["security"].is_null());
    assert_eq!(doc["security"].as_array().map(Vec::len), Some(3));
}

#[tokio::test]
async fn a_method_a_path_does_not_serve_is_405_with_allow_and_an_unknown_path_404() {
    let app = spawn_app().await;
    let r = app
        .client
        .put(app.url("/v1/instances/some-app"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers()["allow"], "GET, DELETE, PATCH");
    assert_eq!(
        crate::helpers::error_body(r).await["error"],
        "method_not_allowed"
    );
    let r = app.delete("/api/users", None).await;
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers()["allow"], "GET");
    let r = app.get("/v1/no-such-thing", None).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(crate::helpers::error_body(r).await["error"], "not_found");
}

#[tokio::test]
async fn the_console_links_to_the_document() {
    let app = spawn_app().await;
    let page = app.sign_in_page().await.text().await.unwrap();
    let link = page
        .split("href=\"")
        .filter_map(|s| s.split_once('"').map(|(href, _)| href))
        .find(|href| href.ends_with("openapi.json"))
        .expect("a link to the OpenAPI document");
    let r = app.get(link, None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["info"]["title"], "Scalefog API");
}

/// The `st` program: `$SCALEFOG_SCHEMATHESIS_VENV` (default `/opt/scalefog-venv`), where
/// `.ci/run` installs it. Outside CI a missing one is installed there; in CI it is a failure.
fn schemathesis() -> PathBuf {
    let venv = PathBuf::from(
        std::env::var("SCALEFOG_SCHEMATHESIS_VENV").unwrap_or("/opt/scalefog-venv".into()),
    );
    let st = venv.join("bin/st");
    if st.exists() {
        return st;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "schemathesis is missing ({} does not exist): .ci/run installs it with \
         `python3 -m venv {venv} && {venv}/bin/pip install {SCHEMATHESIS}`",
        st.display(),
        venv = venv.display()
    );
    let run = |program: &str, args: &[&str]| {
        let out = Command::new(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let venv_s = venv.to_str().expect("utf-8 path");
    run("python3", &["-m", "venv", venv_s]);
    run(
        &format!("{venv_s}/bin/pip"),
        &["install", "-q", SCHEMATHESIS],
    );
    st
}

/// What every answer is checked for: no 5xx; status, content type, headers and body as the
/// document has them; 405 with `Allow` for a method a path does not serve.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
    response_headers_conformance,response_schema_conformance,unsupported_method,\
    allow_header_conformance";

/// The server and its Docker cleanup, dropped in that order (fields drop as declared): the
/// server stops before what it made in Docker is removed, even when the test fails.
struct Fuzzed {
    app: crate::helpers::TestApp,
    _cleanup: DockerCleanup,
}

/// How many test cases a run reports: `N generated, …` in its summary.
fn generated(summary: &str) -> u64 {
    summary
        .lines()
        .filter_map(|l| l.trim().split_once(" generated"))
        .filter_map(|(n, _)| n.trim().parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn schemathesis_breaks_nothing_as_a_user_or_an_admin() {
    let st = schemathesis();
    let server = spawn_app().await;
    let fuzzed = Fuzzed {
        _cleanup: DockerCleanup::of(&server),
        app: server,
    };
    let app = &fuzzed.app;
    // The first account is the admin.
    let admin = app.user("fuzzadmin").await;
    let user = app.user("fuzzuser").await;
    app.create_app(&user.token, "fz-user-app").await;
    app.create_app(&admin.token, "fz-admin-app").await;
    // Access JWTs: a fuzzed `DELETE /v1/tokens/current` cannot revoke them mid-run.
    let mut jwts = vec![];
    for who in [&user, &admin] {
        let r = app.exchange(Some(&who.token)).await;
        assert_eq!(r.status(), StatusCode::OK);
        let pair: Value = r.json().await.unwrap();
        jwts.push(pair["access_token"].as_str().expect("jwt").to_string());
    }
    // Half of the generated app names are the two real apps, so requests get past the lookup.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("schemathesis.toml");
    std::fs::write(
        &config,
        r#"
[dictionaries.apps]
values = ["fz-user-app", "fz-admin-app"]

[parameters]
"path.name" = { dictionary = "apps", probability = 0.5 }
"path.appname" = { dictionary = "apps", probability = 0.5 }
"#,
    )
    .unwrap();
    let url = format!("http://127.0.0.1:{}/v1/openapi.json", app.http_port);
    // One worker: schemathesis's worker threads can trip a CPython bug (concurrent
    // `ast.parse`, "AST constructor recursion depth mismatch").
    let run = |who: &'static str, jwt: String| {
        let mut cmd = tokio::process::Command::new(&st);
        cmd.current_dir(dir.path())
            .arg("--config-file")
            .arg(&config)
            .args(["run", &url])
            .args([
                "--checks",
                CHECKS,
                "--phases",
                "examples,coverage,fuzzing",
                "--max-examples",
                "3",
                "--seed",
                "1",
                "--workers",
                "1",
                "--request-timeout",
                "30",
                "--no-shrink",
                "--max-failures",
                "50",
                // Turning the cluster on makes the shared Docker engine a swarm manager: not
                // for a fuzzer (tests/api/deploy/cluster.rs tests it, and leaves the swarm).
                "--exclude-operation-id",
                "post_v1_cluster",
                "--header",
            ])
            .arg(format!("Authorization: Bearer {jwt}"))
            .env("NO_COLOR", "1");
        async move { (who, cmd.output().await.expect("schemathesis runs")) }
    };
    let mut total = 0;
    // The user first: the admin's run may delete the user.
    for (who, jwt) in [("user", &jwts[0]), ("admin", &jwts[1])] {
        let (who, out) = run(who, jwt.clone()).await;
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // Straight to stderr, past the test harness's capture: the summary stays in the log.
        let _ = writeln!(
            std::io::stderr(),
            "---- schemathesis as the {who} ----\n{report}"
        );
        assert!(
            out.status.success(),
            "schemathesis as the {who} found failures (see its report above)"
        );
        total += generated(&report);
    }
    assert!(
        total >= 300,
        "several hundred test cases were generated, not {total}"
    );
}
