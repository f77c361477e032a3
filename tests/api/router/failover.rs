//! Replicas that are gone: one that refuses connections, one whose machine does not answer
//! (a listening socket whose accept queue is full, so its SYNs are dropped, as a dead host's
//! are). Requests go on to the other replica; the one that failed is passed over after its
//! first failure (counted once, not once per request); a request with a body is sent on only
//! when nothing of it was sent (a connection never made).

use super::Upstream;
use crate::helpers::*;
use reqwest::StatusCode;
use scalefog::routing::{Backends, Target};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const TOKEN: &str = "failover-metrics-token";
const GETS: usize = 20;

/// A client that opens a new connection for every request, so that every request makes the
/// router choose a replica.
fn fresh_connections() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

fn failures(app: &TestApp, name: &str) -> u64 {
    app.services
        .routes
        .counts()
        .app(name)
        .backend_failures()
        .get()
}

/// GETs `name` `GETS` times, each on a new connection; which replica answered each, and how
/// long each took (printed, not asserted).
async fn gets(app: &TestApp, name: &str) -> Vec<String> {
    let client = fresh_connections();
    let mut answered = Vec::new();
    let mut took = Vec::new();
    for _ in 0..GETS {
        let started = Instant::now();
        let r = client
            .get(format!("http://127.0.0.1:{}/", app.proxy_port))
            .header("Host", format!("{name}.localhost"))
            .send()
            .await
            .expect("the router answers");
        assert_eq!(r.status(), StatusCode::OK, "a GET failed");
        let body: Value = r.json().await.unwrap();
        answered.push(body["app"].as_str().unwrap().to_string());
        took.push(started.elapsed().as_millis());
    }
    eprintln!("{name}: ms per GET {took:?}");
    answered
}

#[tokio::test]
async fn a_replica_that_refuses_is_skipped_after_its_first_failure_and_no_get_fails() {
    let _gate = MEMORY_GATE.read().await;
    let app = spawn_app_with(|c| c.metrics_token = Some(TOKEN.into())).await;
    let live = Upstream::start("live").await;
    let dead = SocketAddr::from(([127, 0, 0, 1], free_port()));
    app.services.routes.set_app(
        "pair",
        Target::Serving(Backends::new(vec![dead, live.addr]).unwrap()),
    );
    let answered = gets(&app, "pair").await;
    assert!(answered.iter().all(|a| a == "live"), "{answered:?}");
    // Without marking it down, every other new connection would try it first (its turn).
    let n = failures(&app, "pair");
    assert!(
        (1..=2).contains(&n),
        "the dead replica was tried {n} times in {GETS} GETs"
    );
    let text = app.get("/metrics", Some(TOKEN)).await.text().await.unwrap();
    assert!(
        text.lines()
            .any(|l| l == format!("scalefog_router_backend_failures_total{{app=\"pair\"}} {n}")),
        "{text}"
    );
}

/// A listening socket that accepts no more connections: its accept queue (backlog 0: one
/// connection) is full and never drained, so the kernel drops new SYNs and connecting hangs,
/// as it does to a machine that is gone. The connections that filled it are kept with it.
async fn never_accepting() -> (
    SocketAddr,
    tokio::net::TcpListener,
    Vec<std::net::TcpStream>,
) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut filled = Vec::new();
    loop {
        let r = tokio::task::spawn_blocking(move || {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300))
        })
        .await
        .unwrap();
        match r {
            Ok(s) => filled.push(s),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => break,
            Err(e) => panic!("filling the accept queue: {e}"),
        }
        assert!(filled.len() < 64, "the accept queue never filled");
    }
    (addr, listener, filled)
}

#[tokio::test]
async fn a_replica_that_never_accepts_costs_one_connect_timeout_then_is_skipped() {
    let _gate = MEMORY_GATE.read().await;
    let app = spawn_app_with(|c| c.router_timeouts.connect = Duration::from_millis(300)).await;
    let live = Upstream::start("live").await;
    let (stuck, _listener, _filled) = never_accepting().await;
    app.services.routes.set_app(
        "hung",
        Target::Serving(Backends::new(vec![stuck, live.addr]).unwrap()),
    );
    let answered = gets(&app, "hung").await;
    assert!(answered.iter().all(|a| a == "live"), "{answered:?}");
    let n = failures(&app, "hung");
    assert!(
        (1..=2).contains(&n),
        "the hung replica was tried {n} times in {GETS} GETs"
    );
}

#[tokio::test]
async fn a_post_goes_on_to_another_replica_only_when_nothing_was_sent_and_else_gets_a_502() {
    let _gate = MEMORY_GATE.read().await;
    let app = spawn_app().await;
    let live = Upstream::start("live").await;
    let dead = SocketAddr::from(([127, 0, 0, 1], free_port()));
    // The dead replica first: the first new connection tries it.
    app.services.routes.set_app(
        "form",
        Target::Serving(Backends::new(vec![dead, live.addr]).unwrap()),
    );
    let client = fresh_connections();
    let body = vec![b'x'; 256 * 1024];
    for _ in 0..3 {
        let r = client
            .post(format!("http://127.0.0.1:{}/discard", app.proxy_port))
            .header("Host", "form.localhost")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        // The whole body reached the replica that accepted: none of it was lost on the one
        // that refused, since no connection was made there.
        assert_eq!(r.text().await.unwrap(), body.len().to_string());
    }
    assert_eq!(
        failures(&app, "form"),
        1,
        "the POST tried the dead replica first"
    );

    // Its only replica refuses: a 502 that says nothing was sent.
    app.services
        .routes
        .set_app("gone", Target::Serving(Backends::one(dead)));
    let r = client
        .post(format!("http://127.0.0.1:{}/discard", app.proxy_port))
        .header("Host", "gone.localhost")
        .header("Accept", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    let page: Value = r.json().await.unwrap();
    let message = page["message"].as_str().unwrap();
    assert!(
        message.contains("'gone' did not accept a connection")
            && message.contains("nothing was sent"),
        "{page}"
    );
}

#[tokio::test]
async fn a_kept_connection_leaves_a_replica_that_went_down_for_the_other() {
    let _gate = MEMORY_GATE.read().await;
    let app = spawn_app().await;
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let set = Backends::new(vec![a.addr, b.addr]).unwrap();
    app.services
        .routes
        .set_app("kept", Target::Serving(set.clone()));
    // One keep-alive connection: its requests stay with the replica it chose.
    let client = reqwest::Client::new();
    let get = || async {
        let r = client
            .get(format!("http://127.0.0.1:{}/", app.proxy_port))
            .header("Host", "kept.localhost")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.json::<Value>().await.unwrap()["app"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let first = get().await;
    assert_eq!(
        get().await,
        first,
        "a kept connection stays with its replica"
    );
    // Another connection found that replica not accepting: this one leaves it too.
    let (went, other, other_addr) = if first == "a" {
        (a.addr, "b", b.addr)
    } else {
        (b.addr, "a", a.addr)
    };
    let (picked, lease) = set.pick_excluding(&[other_addr]).unwrap();
    assert_eq!(picked, went);
    assert!(lease.failed());
    drop(lease);
    assert_eq!(get().await, other);
    assert_eq!(get().await, other);
}
