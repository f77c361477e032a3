//! The console's operator pages in a real chromium (the driver of `console.rs`): the image
//! catalog, secret config vars, the audit log, the footer's API link, and the app page's
//! "Deploy an image" card against a real registry and Docker.

use crate::console::{BROWSER_TURN, Browser};
use crate::dockerapp::{DockerCleanup, unique};
use crate::helpers::*;
use crate::image_apps::{ImageCleanup, Registry, push_image};
use fantoccini::Locator;
use reqwest::StatusCode;

/// The (action, channel, app) of each row of the audit page the browser shows.
async fn audit_rows(b: &Browser) -> Vec<(String, String, String)> {
    let mut rows = Vec::new();
    for row in b
        .client
        .find_all(Locator::Css("tr.audit-row"))
        .await
        .unwrap()
    {
        let cell = |css: &'static str| {
            let row = row.clone();
            async move {
                row.find(Locator::Css(css))
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap()
            }
        };
        rows.push((
            cell(".audit-action").await,
            cell(".audit-channel").await,
            cell("td[data-label='App']").await,
        ));
    }
    rows
}

#[tokio::test]
async fn an_admin_curates_the_image_catalog_sets_a_secret_and_finds_both_in_the_audit_log() {
    let _turn = BROWSER_TURN.lock().await;
    let app = spawn_app().await;
    let admin = app.user("admin").await;
    let name = unique("ops");
    app.create_app(&admin.token, &name).await;
    let tmp = tempfile::tempdir().unwrap();
    let b = Browser::start(true, &tmp.path().join("shots")).await;
    b.sign_in(&app, "admin", &admin.password).await;

    // The footer links the API's OpenAPI document, and the link leads to it.
    let link = b.find("footer a[href='/v1/openapi.json']").await;
    assert_eq!(link.text().await.unwrap(), "API (OpenAPI)");
    assert_eq!(
        link.prop("href").await.unwrap().unwrap(),
        app.url("/v1/openapi.json")
    );

    // Images (an admin's nav link): add a catalog entry with the form, see it, remove it.
    let reference = "127.0.0.1:5999/team/web";
    b.click_then("nav a[href='/console/admin/images']", "#catalog-title")
        .await;
    assert_eq!(b.text("h1").await, "Images");
    b.fill("#image-reference", reference).await;
    b.fill("#image-description", "the team's web app").await;
    b.click_then("form.form-grid button[type=submit]", ".flash")
        .await;
    assert!(
        b.text(".flash")
            .await
            .contains(&format!("Added {reference} to the catalog."))
    );
    let catalog = b
        .text("section[aria-labelledby='catalog-title'] table")
        .await;
    assert!(catalog.contains(reference), "{catalog}");
    assert!(catalog.contains("the team's web app"), "{catalog}");
    b.shot("ops-01-catalog").await;
    let remove = format!("button[aria-label='Remove {reference} from the catalog']");
    b.click_then(&remove, ".flash").await;
    assert!(
        b.text(".flash")
            .await
            .contains(&format!("Removed {reference} from the catalog."))
    );
    assert!(
        b.text("section[aria-labelledby='catalog-title']")
            .await
            .contains("The catalog is empty")
    );

    // A secret config var: masked on the page, its value never sent to the browser.
    let secret = "s3cret-value-never-shown";
    b.goto(&app.url(&format!("/console/apps/{name}"))).await;
    b.fill("#config-key", "API_TOKEN").await;
    b.fill("#config-value", secret).await;
    b.find("#config-secret").await.click().await.unwrap();
    b.find("#config-set").await.click().await.unwrap();
    b.wait_text(".flash", "Set API_TOKEN", 30).await;
    let row = b.find("#config-API_TOKEN").await;
    let shown = row.text().await.unwrap();
    assert!(shown.contains("secret"), "{shown}");
    assert!(shown.contains("••••••••"), "{shown}");
    assert!(
        row.find(Locator::Css("details.reveal")).await.is_err(),
        "no Reveal for a secret"
    );
    assert!(
        !b.source().await.contains(secret),
        "the value is not in the page"
    );
    b.shot_of("#config", "ops-02-secret-config").await;

    // The audit log (nav): the catalog changes and the config change, made from the console.
    b.click_then("nav a[href='/console/audit']", "#audit").await;
    let rows = audit_rows(&b).await;
    for (action, app_name) in [
        ("image.add", ""),
        ("image.remove", ""),
        ("app.config", name.as_str()),
    ] {
        assert!(
            rows.iter()
                .any(|(a, c, n)| a == action && c == "console" && n == app_name),
            "{action} from the console in {rows:?}"
        );
    }
    assert!(
        b.text("#audit")
            .await
            .contains("set API_TOKEN, API_TOKEN secret"),
        "what was done to the var, by name"
    );
    assert!(!b.source().await.contains(secret), "nor in the audit log");
    b.shot("ops-03-audit").await;
    b.close().await;
}

#[tokio::test]
async fn the_app_pages_image_card_pulls_from_a_registry_deploys_and_the_app_serves_it() {
    let _turn = BROWSER_TURN.lock().await;
    let registry = Registry::start(None);
    let repo = registry.repo(&unique("card"));
    let _images = ImageCleanup(repo.clone());
    let image = format!("{repo}:1");
    let page = unique("from-the-card");
    push_image(&image, &page, None);
    let app = spawn_app_with(|c| c.health_timeout = 10).await;
    let _cleanup = DockerCleanup::of(&app);
    // The first account is the admin, who may deploy any image (no catalog entry needed).
    let admin = app.user("admin").await;
    let name = unique("card");
    app.create_app(&admin.token, &name).await;
    let tmp = tempfile::tempdir().unwrap();
    let b = Browser::start(true, &tmp.path().join("shots")).await;
    b.sign_in(&app, "admin", &admin.password).await;

    b.goto(&app.url(&format!("/console/apps/{name}"))).await;
    assert_eq!(b.text("#image-title").await, "Deploy an image");
    b.fill("#image-ref", &image).await;
    b.find("#image-deploy").await.click().await.unwrap();
    let flash = b.wait_text(".flash", "Deployed", 120).await;
    assert!(
        flash.contains(&format!("Deployed {image} as v1 of {name}.")),
        "{flash}"
    );
    assert_eq!(
        b.find("#image-ref")
            .await
            .prop("value")
            .await
            .unwrap()
            .unwrap(),
        image,
        "the card shows the image the app runs"
    );
    // The whole reference fits its box (it once got the narrow column of a config var's name).
    let overflow = b
        .client
        .execute(
            "const e = document.getElementById('image-ref'); return e.scrollWidth - e.clientWidth;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(overflow.as_i64(), Some(0), "the image reference is cut off");
    b.shot_of("#image", "ops-04-image-card").await;
    assert_eq!(app.routed(&name).await, (StatusCode::OK, page));

    b.click_then("nav a[href='/console/audit']", "#audit").await;
    let rows = audit_rows(&b).await;
    assert!(
        rows.iter()
            .any(|(a, c, n)| a == "app.deploy" && c == "console" && *n == name),
        "the deploy from the console in {rows:?}"
    );
    b.close().await;

    let r = app.delete_app(&admin.token, &name).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
}
