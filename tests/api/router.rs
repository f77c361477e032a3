//! The app router: routing by Host, its own error pages, streaming, websockets, switching
//! releases under load, custom domains through the API, TLS by SNI and the ACME responder.
//! Upstreams are small hyper servers started by the tests; routes are set on the table the
//! deploy engine writes in production.

use crate::helpers::*;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use reqwest::StatusCode;
use scalefog::routing::{Backends, Target};
use serde_json::{Value, json};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

mod failover;

/// A small upstream app: answers with its name and the forwarding fields it received, and
/// `POST /discard` by counting (and dropping) the body.
struct Upstream {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    async fn start(name: &'static str) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let graceful = GracefulShutdown::new();
            loop {
                tokio::select! {
                    r = listener.accept() => {
                        let Ok((stream, _)) = r else { continue };
                        let conn = hyper::server::conn::http1::Builder::new().serve_connection(
                            TokioIo::new(stream),
                            service_fn(move |req| answer(name, req)),
                        );
                        let conn = graceful.watch(conn);
                        tokio::spawn(async move {
                            let _ = conn.await;
                        });
                    }
                    _ = &mut stopped => break,
                }
            }
            drop(listener);
            graceful.shutdown().await;
        });
        Upstream {
            addr,
            stop: Some(stop),
            task,
        }
    }

    /// Stops accepting and waits for the requests it is serving to finish.
    async fn stop_gracefully(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = (&mut self.task).await;
    }
}

async fn answer(
    name: &'static str,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    if req.uri().path() == "/discard" {
        let mut body = req.into_body();
        let mut n = 0u64;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                n += data.len() as u64;
            }
        }
        return Ok(Response::new(Full::new(Bytes::from(n.to_string()))));
    }
    let h = |k: &str| {
        req.headers()
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let body = json!({
        "app": name,
        "path": req.uri().to_string(),
        "host": h("host"),
        "xff": h("x-forwarded-for"),
        "proto": h("x-forwarded-proto"),
        "xhost": h("x-forwarded-host"),
        "forwarded": h("forwarded"),
        "via": h("via"),
        "keep_alive": h("keep-alive"),
    });
    Ok(Response::new(Full::new(Bytes::from(body.to_string()))))
}

impl TestApp {
    /// A GET through the app router with the given Host.
    async fn via_router(&self, host: &str, path: &str) -> reqwest::Response {
        self.client
            .get(format!("http://127.0.0.1:{}{path}", self.proxy_port))
            .header("Host", host)
            .send()
            .await
            .expect("router answers")
    }

    fn route(&self, app: &str, upstream: SocketAddr) {
        self.services
            .routes
            .set_app(app, Target::Serving(Backends::one(upstream)));
    }
}

#[tokio::test]
async fn requests_reach_the_app_named_by_the_host_with_forwarding_fields() {
    let _gate = MEMORY_GATE.read().await;
    let app = spawn_app().await;
    let (blog, shop) = (Upstream::start("blog").await, Upstream::start("shop").await);
    app.route("blog", blog.addr);
    app.route("shop", shop.addr);

    let r = app.via_router("blog.localhost", "/posts?page=2").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["via"], "1.1 scalefog");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["app"], "blog");
    assert_eq!(body["path"], "/posts?page=2");
    assert_eq!(body["host"], "blog.localhost");
    assert_eq!(body["xff"], "127.0.0.1");
    assert_eq!(body["proto"], "http");
    assert_eq!(body["xhost"], "blog.localhost");
    assert_eq!(
        body["forwarded"],
        "for=127.0.0.1;host=\"blog.localhost\";proto=http"
    );
    assert_eq!(body["keep_alive"], "");

    // Case and port of the Host do not matter.
    let body: Value = app
        .via_router("SHOP.LocalHost:8000", "/")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["app"], "shop");
    assert_eq!(app.services.routes.counts().get("blog"), 1);
    assert_eq!(app.services.routes.counts().get("shop"), 1);
}

#[tokio::test]
async fn an_unknown_host_gets_a_404_page_or_json_when_asked() {
    let _gate = MEMORY_GATE.read().await;
    let app = spawn_app().await;
    let r = app.via_router("nothing.localhost", "/").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = r.text().await.unwrap();
    assert!(
        html.contains("Scalefog") && html.contains("nothing.localhost"),
        "{html}"
    );

    let r = app
        .client
        .get(format!("http://127.0.0.1:{}/", app.proxy_port))
        .header("Host", "nothing.localhost")
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_body(r).await["error"], "not_found");
}

#[tokio::test]
async fn a_stopped_app_gets_a_503_page_naming_its_state() {
    let _gate = MEMORY_GATE.read().await;
    let app = spawn_app().await;
    app.services
        .routes
        .set_app("sleepy", Target::Unavailable("stopped".into()));
    let r = app.via_router("sleepy.localhost", "/").await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("sleepy") && html.contains("stopped"),
        "{html}"
    );
}

#[tokio::test]
async fn an_upstream_that_refuses_connections_gets_a_502_page() {
    let _gate = MEMORY_GATE.read().await;
    let app = spawn_app().await;
    let dead = SocketAddr::from(([127, 0, 0, 1], free_port()));
    app.route("broken", dead);
    let r = app.via_router("broken.localhost", "/").await;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    assert!(r.text().await.unwrap().contains("broken"));
}

#[tokio::test]
async fn an_app_that_never_answers_gets_a_504_page_after_the_response_header_timeout() {
    let _gate = MEMORY_GATE.read().await;
    let app = spawn_app_with(|c| {
        c.router_timeouts.upstream_headers = Duration::from_millis(200);
    })
    .await;
    // Accepts, reads the request, and says nothing.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mute = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    app.route("mute", mute);
    let r = app
        .client
        .get(format!("http://127.0.0.1:{}/", app.proxy_port))
        .header("Host", "mute.localhost")
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(error_body(r).await["error"], "gateway_timeout");
}

/// Reads from `stream` until the router closes it; what it sent before. Panics if the
/// connection is still open after 20 s.
async fn read_until_closed(stream: &mut TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the router kept the connection open");
    String::from_utf8_lossy(&got).into_owned()
}

/// An app that answers `late` after `delay`.
async fn slow_upstream(delay: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(move |_req: Request<Incoming>| async move {
                    tokio::time::sleep(delay).await;
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"late"))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn slow_and_idle_clients_are_disconnected_but_a_slow_app_is_waited_for() {
    use tokio::io::AsyncWriteExt;
    let _gate = MEMORY_GATE.read().await;
    let app = spawn_app_with(|c| {
        c.router_timeouts.client_headers = Duration::from_secs(1);
        c.router_timeouts.upstream_headers = Duration::from_secs(10);
    })
    .await;
    // An app that takes longer to answer than a client may take to send its headers: a
    // request in progress is not an idle connection.
    app.route("slow", slow_upstream(Duration::from_millis(2500)).await);

    // Half a request head, then nothing: closed without an answer.
    let mut stream = TcpStream::connect(("127.0.0.1", app.proxy_port))
        .await
        .unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: slow.localhost\r\n")
        .await
        .unwrap();
    assert_eq!(read_until_closed(&mut stream).await, "");

    // A whole request is answered however long the app takes, then the idle connection is
    // closed.
    let mut stream = TcpStream::connect(("127.0.0.1", app.proxy_port))
        .await
        .unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: slow.localhost\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(answer.ends_with("late"), "{answer}");
}

#[tokio::test]
async fn on_shutdown_a_request_in_progress_is_answered_and_idle_connections_are_closed() {
    use scalefog::router::{Router, Timeouts};
    use scalefog::routing::RouteTable;
    use tokio::io::AsyncWriteExt;
    let routes = RouteTable::default();
    routes.set_app(
        "slow",
        Target::Serving(Backends::one(slow_upstream(Duration::from_secs(3)).await)),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let router = Router::new(routes, "localhost", Timeouts::default()).unwrap();
    let server = tokio::spawn(router.serve(listener, None, async {
        let _ = stopped.await;
    }));

    let mut busy = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    busy.write_all(b"GET / HTTP/1.1\r\nHost: slow.localhost\r\n\r\n")
        .await
        .unwrap();
    let mut idle = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    // Both connections are being served before the signal (the app takes 3 s to answer).
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.send(()).unwrap();

    assert_eq!(read_until_closed(&mut idle).await, "");
    let answer = read_until_closed(&mut busy).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(answer.ends_with("late"), "{answer}");
    tokio::time::timeout(Duration::from_secs(20), server)
        .await
        .expect("the router stops once its last request is answered")
        .unwrap();
}

/// An upstream app that counts the connections it accepts and, when `close` is set, ends each
/// one after its first answer (`Connection: close`), as apps with keep-alive off do.
async fn counting_upstream(close: bool) -> (SocketAddr, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicU64::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let service = service_fn(move |_req: Request<Incoming>| async move {
                    let mut r = Response::new(Full::new(Bytes::from_static(b"hello")));
                    if close {
                        r.headers_mut()
                            .insert("connection", "close".parse().unwrap());
                    }
                    Ok::<_, Infallible>(r)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, accepted)
}

#[tokio::test]
async fn a_client_connection_keeps_one_upstream_connection_and_replaces_it_when_the_app_closes_it()
{
    let _gate = MEMORY_GATE.read().await;
    let app = spawn_app().await;
    let (keeps, kept_count) = counting_upstream(false).await;
    let (closes, closed_count) = counting_upstream(true).await;
    app.route("keeps", keeps);
    app.route("closes", closes);
    // One client connection, reused for every request.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    let get = |host: &'static str| {
        client
            .get(format!("http://127.0.0.1:{}/", app.proxy_port))
            .header("Host", host)
            .send()
    };
    for _ in 0..5 {
        let r = get("keeps.localhost").await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.text().await.unwrap(), "hello");
    }
    assert_eq!(kept_count.load(Ordering::SeqCst), 1);
    for _ in 0..5 {
        let r = get("closes.localhost").await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        // The app's Connection: close is about its own connection, not the client's.
        assert!(r.headers().get("connection").is_none());
        assert_eq!(r.text().await.unwrap(), "hello");
    }
    assert_eq!(closed_count.load(Ordering::SeqCst), 5);
    // Back to the first app: a new upstream connection, since the last one went elsewhere.
    assert_eq!(
        get("keeps.localhost").await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(kept_count.load(Ordering::SeqCst), 2);
}

/// Reads one request head (through its blank line) from a hand-written upstream's
/// connection; `None` if the connection ends first.
async fn read_head(stream: &mut TcpStream) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    let mut got = Vec::new();
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    Some(got)
}

#[tokio::test]
async fn an_app_closing_idle_connections_without_notice_fails_no_request() {
    let _gate = MEMORY_GATE.read().await;
    let app = spawn_app().await;
    // Answers one request per connection, then closes it without `Connection: close`, as an
    // app whose keep-alive timeout has passed does.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                if read_head(&mut stream).await.is_none() {
                    return;
                }
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello")
                    .await;
            });
        }
    });
    app.route("curt", addr);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    for _ in 0..20 {
        let r = client
            .get(format!("http://127.0.0.1:{}/", app.proxy_port))
            .header("Host", "curt.localhost")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.text().await.unwrap(), "hello");
    }
}

#[tokio::test]
async fn a_safe_request_lost_on_a_kept_connection_is_sent_again_and_others_are_not() {
    let _gate = MEMORY_GATE.read().await;
    let app = spawn_app().await;
    // Answers the first request of each connection; takes the second in full and closes the
    // connection without answering: to the router, the same as an app closing an idle
    // connection just as a request went over it.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = requests.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                for answer in [true, false] {
                    let Some(got) = read_head(&mut stream).await else {
                        return;
                    };
                    let line = String::from_utf8_lossy(&got);
                    let line = line.lines().next().unwrap_or_default().to_string();
                    seen.lock().unwrap().push(line);
                    if answer {
                        let _ = stream
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello")
                            .await;
                    }
                }
            });
        }
    });
    app.route("flaky", addr);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    let url = format!("http://127.0.0.1:{}/", app.proxy_port);
    let send = |method: reqwest::Method, path: &str| {
        client
            .request(method, format!("{url}{path}"))
            .header("Host", "flaky.localhost")
            .send()
    };

    let get = |path: &'static str| {
        let response = send(reqwest::Method::GET, path);
        async move {
            let r = response.await.unwrap();
            assert_eq!(r.status(), StatusCode::OK, "GET /{path}");
            assert_eq!(r.text().await.unwrap(), "hello");
        }
    };

    get("one").await;
    // Over the kept connection after it was idle long enough for an app to close it: dropped,
    // and sent again on a new connection.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    get("two").await;
    // A POST may have been acted on: never sent twice, the client gets the 502.
    let post = send(reqwest::Method::POST, "three").await.unwrap();
    assert_eq!(post.status(), StatusCode::BAD_GATEWAY);
    // The app has been seen closing connections: from now on any safe request is kept for
    // sending again, however short the idle time.
    get("four").await;
    get("five").await;
    assert_eq!(
        *requests.lock().unwrap(),
        [
            "GET /one HTTP/1.1",
            "GET /two HTTP/1.1",
            "GET /two HTTP/1.1",
            "POST /three HTTP/1.1",
            "GET /four HTTP/1.1",
            "GET /five HTTP/1.1",
            "GET /five HTTP/1.1",
        ]
    );
}

#[tokio::test]
async fn a_websocket_echoes_through_the_router() {
    let _gate = MEMORY_GATE.read().await;
    let app = spawn_app().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut ws = tokio_tungstenite::accept_async(stream).await.unwrap();
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_text() || msg.is_binary() {
                        ws.send(msg).await.unwrap();
                    }
                }
            });
        }
    });
    app.route("chat", upstream);

    let tcp = TcpStream::connect(("127.0.0.1", app.proxy_port))
        .await
        .unwrap();
    let (mut ws, resp) = tokio_tungstenite::client_async("ws://chat.localhost/socket", tcp)
        .await
        .expect("the upgrade passes through");
    assert_eq!(resp.status(), 101);
    for text in ["hello", "through the router"] {
        ws.send(tokio_tungstenite::tungstenite::Message::text(text))
            .await
            .unwrap();
        let echo = ws.next().await.unwrap().unwrap();
        assert_eq!(echo.into_text().unwrap().as_str(), text);
    }
    ws.close(None).await.unwrap();
}

/// Resident memory of this process, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

#[tokio::test]
async fn a_100_mb_body_streams_through_without_the_router_holding_it() {
    let _gate = MEMORY_GATE.write().await;
    let app = spawn_app().await;
    let sink = Upstream::start("sink").await;
    app.route("big", sink.addr);

    const CHUNK: usize = 64 * 1024;
    const TOTAL: usize = 100 * 1024 * 1024;
    let send = |total: usize| {
        let port = app.proxy_port;
        async move {
            let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            tokio::spawn(conn);
            // One chunk, sent again and again: the client itself allocates nothing per chunk.
            let chunk = Bytes::from(vec![7u8; CHUNK]);
            let frames = futures_util::stream::iter(
                (0..total / CHUNK).map(move |_| Ok::<_, Infallible>(Frame::data(chunk.clone()))),
            );
            let req = Request::post("/discard")
                .header("host", "big.localhost")
                .header("content-length", total)
                .body(StreamBody::new(frames))
                .unwrap();
            let resp = sender.send_request(req).await.unwrap();
            assert_eq!(resp.status(), 200);
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            String::from_utf8(body.to_vec()).unwrap()
        }
    };
    // Warm up the connection pool and buffers, then measure. RSS is the whole test process's,
    // where other features' tests run too: a router holding the body shows ~100 MiB every time,
    // their noise only sometimes, so the best of three streams is the router's.
    assert_eq!(send(4 * CHUNK).await, (4 * CHUNK).to_string());
    let mut growths = Vec::new();
    for _ in 0..3 {
        let before = rss_kib();
        let peak = Arc::new(AtomicU64::new(before));
        let done = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (peak, done) = (peak.clone(), done.clone());
            tokio::spawn(async move {
                while !done.load(Ordering::Relaxed) {
                    peak.fetch_max(rss_kib(), Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        };
        let received = send(TOTAL).await;
        done.store(true, Ordering::Relaxed);
        sampler.await.unwrap();
        peak.fetch_max(rss_kib(), Ordering::Relaxed);
        assert_eq!(received, TOTAL.to_string());
        let growth_mib = peak.load(Ordering::Relaxed).saturating_sub(before) / 1024;
        growths.push(growth_mib);
        if growth_mib < 16 {
            break;
        }
    }
    assert!(
        growths.iter().any(|g| *g < 16),
        "memory grew by {growths:?} MiB while 100 MiB streamed through (each try)"
    );
}

#[tokio::test]
async fn a_release_switch_under_continuous_load_loses_no_request() {
    let _gate = MEMORY_GATE.read().await;
    let app = Arc::new(spawn_app().await);
    let v1 = Upstream::start("v1").await;
    app.route("live", v1.addr);

    let results: Arc<Mutex<Vec<Result<String, String>>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = vec![];
    for _ in 0..4 {
        let (app, results, stop) = (app.clone(), results.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let r = app
                    .client
                    .get(format!("http://127.0.0.1:{}/", app.proxy_port))
                    .header("Host", "live.localhost")
                    .send()
                    .await;
                let outcome = match r {
                    Ok(r) if r.status() == StatusCode::OK => {
                        let body: Value = r.json().await.map_err(|e| e.to_string()).unwrap();
                        Ok(body["app"].as_str().unwrap_or("").to_string())
                    }
                    Ok(r) => Err(format!("status {}", r.status())),
                    Err(e) => Err(e.to_string()),
                };
                results.lock().unwrap().push(outcome);
            }
        }));
    }
    let count = || results.lock().unwrap().len();
    let wait_for = |n: usize| async move {
        while count() < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    wait_for(50).await;
    // The deploy engine's order: start the new release, switch the route, then retire the old
    // one once the requests it was given have been answered.
    let v2 = Upstream::start("v2").await;
    app.route("live", v2.addr);
    let switched_at = count();
    wait_for(switched_at + 50).await;
    v1.stop_gracefully().await;
    let retired_at = count();
    wait_for(retired_at + 50).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }

    let results = results.lock().unwrap();
    let failures: Vec<_> = results.iter().filter(|r| r.is_err()).collect();
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    assert!(results.iter().any(|r| r.as_deref() == Ok("v1")));
    assert!(
        results[retired_at..]
            .iter()
            .all(|r| r.as_deref() == Ok("v2")),
        "after v1 retired, only v2 answers"
    );
}

#[tokio::test]
async fn custom_domains_are_added_routed_listed_and_removed_through_the_api() {
    let _gate = MEMORY_GATE.read().await;
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    app.create_app(&alice.token, "blog").await;
    let up = Upstream::start("blog").await;
    app.route("blog", up.addr);

    let r = app
        .post_json(
            "/v1/instances/blog/domains",
            &json!({"domain": "WWW.Example.org."}),
            Some(&alice.token),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["domain"], "www.example.org");
    assert_eq!(body["cname"], "blog.localhost");

    // Adding it again (as a form) changes nothing.
    let r = app
        .add_domain(&alice.token, "blog", "www.example.org")
        .await;
    assert_eq!(r.status(), StatusCode::OK);

    let r = app.domains(&alice.token, "blog").await;
    assert_eq!(r.status(), StatusCode::OK);
    let list: Value = r.json().await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["domain"], "www.example.org");

    let body: Value = app
        .via_router("www.example.org", "/")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["app"], "blog");

    let r = app
        .remove_domain(&alice.token, "blog", "www.example.org")
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.via_router("www.example.org", "/").await.status(),
        StatusCode::NOT_FOUND
    );
    let r = app
        .remove_domain(&alice.token, "blog", "www.example.org")
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = app.domains(&alice.token, "blog").await;
    assert_eq!(r.json::<Value>().await.unwrap(), json!([]));
}

#[tokio::test]
async fn a_domain_belongs_to_one_app_and_invalid_or_platform_names_are_refused() {
    let _gate = MEMORY_GATE.read().await;
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    app.create_app(&alice.token, "blog").await;
    app.create_app(&bob.token, "shop").await;
    assert_eq!(
        app.add_domain(&alice.token, "blog", "example.org")
            .await
            .status(),
        StatusCode::CREATED
    );
    let r = app.add_domain(&bob.token, "shop", "EXAMPLE.org").await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let body = error_body(r).await;
    assert!(
        !body["message"].as_str().unwrap().contains("blog"),
        "{body}"
    );

    for bad in [
        "not a domain",
        "localhost",
        "-x.org",
        "1.2.3.4",
        "*.example.org",
    ] {
        let r = app.add_domain(&bob.token, "shop", bad).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(error_body(r).await["field"], "domain", "{bad}");
    }
    for platform in [
        "shop.localhost",
        "blog.localhost",
        "localhost.",
        "a.b.localhost",
    ] {
        let r = app.add_domain(&bob.token, "shop", platform).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{platform}");
    }
    let r = app
        .post_form("/v1/instances/shop/domains", &[], Some(&bob.token))
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Other users' apps are invisible, as everywhere in the API.
    assert_eq!(
        app.domains(&bob.token, "blog").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.add_domain(&bob.token, "blog", "bob.example.net")
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/v1/instances/blog/domains", None).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // Once alice lets it go, bob may have it.
    let r = app.remove_domain(&alice.token, "blog", "example.org").await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.add_domain(&bob.token, "shop", "example.org")
            .await
            .status(),
        StatusCode::CREATED
    );
    assert_eq!(
        app.services
            .routes
            .lookup("example.org", "localhost")
            .map(|r| r.0),
        Some("shop".to_string())
    );
    // shop was never deployed: its domain says so rather than "no app here".
    let r = app.via_router("example.org", "/").await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.text().await.unwrap().contains("not been deployed"));
}

#[tokio::test]
async fn stored_custom_domains_are_routed_from_the_start_and_answer_503_before_a_deploy() {
    let _gate = MEMORY_GATE.read().await;
    let app = spawn_app_with(|config| {
        std::fs::create_dir_all(&config.data_dir).unwrap();
        let store = scalefog::store::Store::open(&config.store_path()).unwrap();
        store
            .write(|w| {
                w.put_instance(&scalefog::domain::Instance {
                    name: "legacy".into(),
                    owner_id: 1,
                    region_id: 1,
                    node_id: 1,
                    status: scalefog::domain::InstanceStatus::Created,
                    release: None,
                    memory_mb: 256,
                    cpu: 1.0,
                    health_path: Default::default(),
                    deploy_branch: Default::default(),
                    port: 5000,
                    env: Default::default(),
                    secret_env: Default::default(),
                    domains: vec!["legacy.example.com".into()],
                    created_at: 0,
                    volumes: vec![],
                    read_only_rootfs: false,
                    formation: Default::default(),
                })
            })
            .unwrap();
    })
    .await;
    let r = app.via_router("legacy.example.com", "/").await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.text().await.unwrap().contains("legacy"));
    assert_eq!(
        app.via_router("legacy.localhost", "/").await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn the_router_answers_pending_acme_http_01_challenges_for_any_host() {
    let _gate = MEMORY_GATE.read().await;
    let app = spawn_app().await;
    app.router
        .challenges()
        .insert("tok3n-_A", "tok3n-_A.thumbprint");
    let r = app
        .via_router("new.example.org", "/.well-known/acme-challenge/tok3n-_A")
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "tok3n-_A.thumbprint");
    // Unknown tokens are not the router's: they are routed like any request.
    let r = app
        .via_router("new.example.org", "/.well-known/acme-challenge/other")
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    app.router.challenges().remove("tok3n-_A");
    let r = app
        .via_router("new.example.org", "/.well-known/acme-challenge/tok3n-_A")
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

/// A test CA and the PEM of a certificate it signs for `names`.
struct TestCa {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    fn new() -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Scalefog test CA");
        let key = rcgen::KeyPair::generate().unwrap();
        TestCa {
            issuer: rcgen::CertifiedIssuer::self_signed(params, key).unwrap(),
        }
    }

    /// Writes `<dir>/<dirname>/fullchain.pem` and `privkey.pem` for `name`; returns the DER.
    fn issue(&self, dir: &std::path::Path, dirname: &str, name: &str) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        let d = dir.join(dirname);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("fullchain.pem"), cert.pem()).unwrap();
        std::fs::write(d.join("privkey.pem"), key.serialize_pem()).unwrap();
        cert.der().to_vec()
    }

    fn client(&self) -> tokio_rustls::TlsConnector {
        let config = tls_client_config(std::slice::from_ref(self.issuer.der()));
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}

#[tokio::test]
async fn https_serves_each_domain_with_its_own_certificate_chosen_by_sni() {
    let _gate = MEMORY_GATE.read().await;
    let ca = TestCa::new();
    let issued: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let app = {
        let (ca, issued) = (&ca, issued.clone());
        spawn_app_with(move |config| {
            // webpki refuses wildcards directly under a single label (`*.localhost`).
            config.domain = "apps.test".into();
            config.https_listen = Some("127.0.0.1:0".parse().unwrap());
            let dir = config.data_dir.join("certs");
            let mut issued = issued.lock().unwrap();
            issued.push(ca.issue(&dir, "secure.example.org", "secure.example.org"));
            issued.push(ca.issue(&dir, "_.apps.test", "*.apps.test"));
        })
        .await
    };
    let port = app.https_port.expect("https is listening");
    let up = Upstream::start("secure").await;
    app.route("secure", up.addr);
    app.services
        .routes
        .set_domains("secure", &["secure.example.org".into()]);
    let issued = issued.lock().unwrap().clone();

    let connector = ca.client();
    for (sni, expected_cert) in [
        ("secure.example.org", &issued[0]),
        ("secure.apps.test", &issued[1]),
    ] {
        let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from(sni.to_string()).unwrap();
        let tls = connector
            .connect(name, tcp)
            .await
            .unwrap_or_else(|e| panic!("TLS handshake for {sni}: {e}"));
        let presented = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
        assert_eq!(&presented, expected_cert, "certificate chosen for {sni}");
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = Request::get("/")
            .header("host", sni)
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        let body: Value =
            serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
        assert_eq!(body["app"], "secure");
        assert_eq!(body["proto"], "https");
    }

    // A name without a certificate gets no handshake.
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("other.example.net").unwrap();
    assert!(connector.connect(name, tcp).await.is_err());
}

/// Sends `request` as it is over a new connection to the router and returns all it answers
/// until it closes the connection. Writing and reading run together: the router may answer
/// (and close) before it has read everything, and a write it no longer reads may then fail.
async fn raw_exchange(port: u16, request: Vec<u8>) -> String {
    use tokio::io::AsyncWriteExt;
    let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let writer = tokio::spawn(async move {
        let _ = write.write_all(&request).await;
        // Kept open: a half-close would end the request for the router.
        write
    });
    let mut got = Vec::new();
    let read = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::io::AsyncReadExt::read_to_end(&mut read, &mut got),
    )
    .await;
    assert!(read.is_ok(), "the router kept the connection open");
    drop(writer.await);
    String::from_utf8_lossy(&got).into_owned()
}

/// The status line of an answer.
fn status_line(answer: &str) -> &str {
    answer.lines().next().unwrap_or_default()
}

/// The JSON body an upstream [`answer`] sent back through the router.
fn echoed(answer: &str) -> Value {
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer}"))
}

#[tokio::test]
async fn request_heads_over_64_kib_get_a_431_from_the_router() {
    let _gate = MEMORY_GATE.read().await;
    let app = spawn_app().await;
    let up = Upstream::start("blog").await;
    app.route("blog", up.addr);
    let request = |fields: &[(usize, usize)]| {
        let mut r = b"GET / HTTP/1.1\r\nHost: blog.localhost\r\nConnection: close\r\n".to_vec();
        for (i, &(n, size)) in fields.iter().enumerate() {
            for j in 0..n {
                r.extend_from_slice(format!("x-field-{i}-{j}: ").as_bytes());
                r.extend(std::iter::repeat_n(b'a', size));
                r.extend_from_slice(b"\r\n");
            }
        }
        r.extend_from_slice(b"\r\n");
        r
    };
    // Just under the limit: forwarded.
    let answer = raw_exchange(app.proxy_port, request(&[(60, 1000)])).await;
    assert_eq!(status_line(&answer), "HTTP/1.1 200 OK", "{answer}");
    assert_eq!(echoed(&answer)["app"], "blog");
    // Many large fields, one very large field, more fields than hyper parses.
    for fields in [&[(80, 1000)][..], &[(1, 500 * 1024)], &[(100, 10)]] {
        let answer = raw_exchange(app.proxy_port, request(fields)).await;
        assert_eq!(
            status_line(&answer),
            "HTTP/1.1 431 Request Header Fields Too Large",
            "{fields:?}: {answer}"
        );
    }
    assert_eq!(app.services.routes.counts().get("blog"), 1);
}

#[tokio::test]
async fn an_overflowing_chunk_size_gets_a_400_not_a_502() {
    let _gate = MEMORY_GATE.read().await;
    let app = spawn_app().await;
    let sink = Upstream::start("sink").await;
    app.route("sink", sink.addr);
    // One chunk of 2^68 bytes: more than a 64-bit size holds.
    let answer = raw_exchange(
        app.proxy_port,
        b"POST /discard HTTP/1.1\r\nHost: sink.localhost\r\nTransfer-Encoding: chunked\r\nAccept: application/json\r\n\r\n\
          5\r\nhello\r\n100000000000000000\r\nx\r\n0\r\n\r\n"
            .to_vec(),
    )
    .await;
    assert_eq!(status_line(&answer), "HTTP/1.1 400 Bad Request", "{answer}");
    assert!(answer.contains("\"error\":\"bad_request\""), "{answer}");
}

#[tokio::test]
async fn a_request_with_two_host_fields_gets_a_400_and_reaches_no_app() {
    let _gate = MEMORY_GATE.read().await;
    let app = spawn_app().await;
    let (blog, shop) = (Upstream::start("blog").await, Upstream::start("shop").await);
    app.route("blog", blog.addr);
    app.route("shop", shop.addr);
    let answer = raw_exchange(
        app.proxy_port,
        b"GET / HTTP/1.1\r\nHost: blog.localhost\r\nHost: shop.localhost\r\nConnection: close\r\n\r\n"
            .to_vec(),
    )
    .await;
    assert_eq!(status_line(&answer), "HTTP/1.1 400 Bad Request", "{answer}");
    assert!(answer.contains("more than one Host"), "{answer}");
    assert_eq!(app.services.routes.counts().get("blog"), 0);
    assert_eq!(app.services.routes.counts().get("shop"), 0);
}

#[tokio::test]
async fn an_absolute_form_request_goes_to_the_app_of_its_url_with_the_url_as_host() {
    let _gate = MEMORY_GATE.read().await;
    let app = spawn_app().await;
    let (blog, shop) = (Upstream::start("blog").await, Upstream::start("shop").await);
    app.route("blog", blog.addr);
    app.route("shop", shop.addr);
    // RFC 9112 §3.2.2: the Host field is ignored; the app sees the URL's authority as Host.
    let answer = raw_exchange(
        app.proxy_port,
        b"GET http://Shop.localhost:8000/cart?item=3 HTTP/1.1\r\nHost: blog.localhost\r\nConnection: close\r\n\r\n"
            .to_vec(),
    )
    .await;
    assert_eq!(status_line(&answer), "HTTP/1.1 200 OK", "{answer}");
    let seen = echoed(&answer);
    assert_eq!(seen["app"], "shop");
    assert_eq!(seen["path"], "/cart?item=3");
    assert_eq!(seen["host"], "Shop.localhost:8000");
    assert_eq!(seen["xhost"], "Shop.localhost:8000");
    assert_eq!(
        seen["forwarded"],
        "for=127.0.0.1;host=\"shop.localhost\";proto=http"
    );
    assert_eq!(app.services.routes.counts().get("blog"), 0);

    // Without a Host field, the same.
    let answer = raw_exchange(
        app.proxy_port,
        b"GET http://blog.localhost/ HTTP/1.1\r\nConnection: close\r\n\r\n".to_vec(),
    )
    .await;
    assert_eq!(echoed(&answer)["host"], "blog.localhost", "{answer}");

    // Credentials in the URL (RFC 9110 §4.2.4: an error) are refused, not passed on.
    let answer = raw_exchange(
        app.proxy_port,
        b"GET http://user:secret@shop.localhost/ HTTP/1.1\r\nHost: shop.localhost\r\nConnection: close\r\n\r\n"
            .to_vec(),
    )
    .await;
    assert_eq!(status_line(&answer), "HTTP/1.1 400 Bad Request", "{answer}");
    assert_eq!(app.services.routes.counts().get("shop"), 1);
}
