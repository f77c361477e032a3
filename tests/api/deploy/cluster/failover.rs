//! No failed request when a machine dies (its replica moves, the router passes over it) or
//! while releases deploy and roll back over two nodes.

use super::*;

#[tokio::test]
async fn losing_a_machine_fails_no_request_after_the_first_second_and_its_replica_moves() {
    let _serial = SERIAL.lock().await;
    let mut engine = SecondEngine::start();
    let f = cluster_fixture(&engine, "1").await;
    let page = "served by two machines";
    spread_over_both(&f, page).await;
    let install = install_of(&f);
    assert_eq!(f.through_router("/index.html").await.as_deref(), Ok(page));
    let killed = std::time::Instant::now();
    engine.kill();
    let mut moved_after = None;
    let Requests {
        late,
        total,
        failed,
        slow_until,
    } = request_loop(&f, &[page], killed, Duration::from_secs(1), || {
        let moved = on_node_1(&install) == 2;
        if moved && moved_after.is_none() {
            moved_after = Some(killed.elapsed());
        }
        moved
    })
    .await;
    println!(
        "failover: {total} requests, {failed} failed, the replica ran again on node 1 after \
         {moved_after:?}, the last slow or failed request ended after {slow_until:?}"
    );
    assert!(late.is_empty(), "failed after the first second: {late:#?}");
    assert!(
        moved_after.is_some(),
        "the swarm did not reschedule the lost replica"
    );
    // Node 1 alone serves now.
    for _ in 0..5 {
        assert_eq!(f.through_router("/index.html").await.as_deref(), Ok(page));
    }
    let edge = f.node("edge-1").await;
    assert_eq!(edge["state"], "down", "{edge}");

    // The machine comes back; the next deploy spreads the new set over both nodes again.
    engine.restart();
    assert!(
        eventually(|| node_docker("info --format '{{.Swarm.LocalNodeState}}'").trim() == "active")
            .await,
        "the second engine did not rejoin the swarm"
    );
    let mut ready = false;
    for _ in 0..120 {
        if f.node("edge-1").await["state"] == "ready" {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(ready, "node 2 is not ready again");
    f.push_page(
        "rebalanced after the machine came back",
        "two replicas, after the machine came back",
    )
    .await;
    assert!(
        one_replica_per_node(&install).await,
        "one replica per node after the deploy: {} on node 1, {} on node 2",
        on_node_1(&install),
        on_node_2(&install)
    );
}

#[tokio::test]
async fn deploys_and_rollbacks_over_two_nodes_fail_no_request() {
    let _serial = SERIAL.lock().await;
    let engine = SecondEngine::start();
    let f = cluster_fixture(&engine, "1").await;
    let first = "first release on two machines";
    spread_over_both(&f, first).await;
    let install = install_of(&f);
    let second = "second release on two machines";
    let both = [first, second];
    let sha = f.repo.commit(second, Some(&dockerfile("", SERVE)));
    let (r, lines) = without_a_failed_request(&f, &both, "deploy", f.push(&sha)).await;
    assert!(r.is_ok(), "{r:?}\n{}", lines.join("\n"));
    assert_eq!(f.through_router("/index.html").await.as_deref(), Ok(second));
    // The new set is spread too, and the old one is gone after its grace period.
    assert!(
        one_replica_per_node(&install).await,
        "one replica per node: {} on node 1, {} on node 2",
        on_node_1(&install),
        on_node_2(&install)
    );

    let v1 = json!({"release": "v1"});
    let rollback = f.app.rollback(&f.user.token, &f.name, &v1);
    let r = without_a_failed_request(&f, &both, "rollback", rollback).await;
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    assert!(
        one_replica_per_node(&install).await,
        "one replica per node after the rollback"
    );
    for _ in 0..10 {
        assert_eq!(f.through_router("/index.html").await.as_deref(), Ok(first));
    }
}
