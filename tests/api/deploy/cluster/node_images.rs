//! Old release images are removed on the region's other nodes too when they are pruned.

use super::*;

#[tokio::test]
async fn an_old_release_image_is_removed_on_the_regions_other_node_when_it_is_pruned() {
    let _serial = SERIAL.lock().await;
    let engine = SecondEngine::start();
    // The region's only node is node 2: every release's image is streamed there.
    let f = cluster_fixture(&engine, "Edge").await;
    let install = install_of(&f);
    let tag = |v: usize| format!("scalefog/{}:v{v}", f.name);
    let keep = scalefog::deploy::KEEP_RELEASE_IMAGES;
    for v in 1..=keep + 1 {
        let page = format!("release {v}");
        let sha = f.repo.commit(&page, Some(&dockerfile("", SERVE)));
        let (r, lines) = f.push(&sha).await;
        assert!(r.is_ok(), "v{v}: {r:?}\n{}", lines.join("\n"));
        assert_eq!(
            f.through_router("/index.html").await.as_deref(),
            Ok(page.as_str())
        );
        if v == 1 {
            assert!(
                images_on_node_2(&install).contains(&tag(1)),
                "{:?}",
                images_on_node_2(&install)
            );
        }
    }
    // v1 is no longer among the last `keep` releases: pruned here, and on node 2 too.
    assert!(
        eventually(|| !images_on_node_2(&install).contains(&tag(1))).await,
        "v1's image is still on node 2: {:?}",
        images_on_node_2(&install)
    );
    assert_eq!(
        docker(&["images", "-q", &tag(1)]),
        "",
        "pruned on the manager"
    );
    let left = images_on_node_2(&install);
    for v in 2..=keep + 1 {
        assert!(left.contains(&tag(v)), "v{v} is kept on node 2: {left:?}");
    }
}
