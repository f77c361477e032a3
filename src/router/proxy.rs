//! One proxied request: find the app by `Host`, rewrite the headers a proxy must rewrite
//! (RFC 9110 §7.6), forward, and stream the answer back; or answer with a page.

use super::pages::{Page, wants_json};
use super::{Scheme, Shared};
use crate::routing::Target;
use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::{Body as _, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::upgrade::OnUpgrade;
use hyper::{Request, Response, StatusCode, Uri, Version};
use hyper_util::rt::TokioIo;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

/// What the router answers with: an upstream's streamed body or one of its own pages.
pub type Body = Either<Incoming, Full<Bytes>>;

/// Hop-by-hop fields (RFC 9110 §7.6.1) that never cross the proxy, besides those the
/// `Connection` field names. `Expect` is answered by our own server side (100-continue).
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("proxy-connection"),
    HeaderName::from_static("keep-alive"),
    header::TE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::TRAILER,
    header::PROXY_AUTHORIZATION,
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const FORWARDED: HeaderName = HeaderName::from_static("forwarded");
const VIA_VALUE: HeaderValue = HeaderValue::from_static("1.1 scalefog");

fn page(json: bool, p: Page<'_>) -> Response<Body> {
    p.render(json).map(Either::Right)
}

/// The request's host without port, from `Host` or an absolute-form target.
fn host_of(req: &Request<Incoming>) -> Option<&str> {
    let raw = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))?;
    let host = if raw.starts_with('[') {
        // An IPv6 literal: keep the brackets, drop the port.
        raw.split_once(']').map(|(h, _)| &raw[..=h.len()])?
    } else {
        raw.rsplit_once(':').map_or(raw, |(h, _)| h)
    };
    Some(host).filter(|h| !h.is_empty())
}

/// Whether the request asks to switch protocols (`Connection: upgrade` + `Upgrade`).
fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Removes hop-by-hop fields: the fixed set and every field the `Connection` field names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// `for=` of RFC 7239: IPv6 addresses are quoted and bracketed.
fn forwarded_node(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("\"[{v6}]\""),
    }
}

/// Adds the forwarding fields. `X-Forwarded-For` and `Forwarded` are appended to (the client's
/// own values come first; apps should trust the last entry, which is ours); `-Proto` and
/// `-Host` are set, since only the router knows them.
fn add_forwarding(headers: &mut HeaderMap, peer: SocketAddr, scheme: Scheme, host: &str) {
    let ip = peer.ip().to_canonical();
    let xff = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prev) if !prev.trim().is_empty() => format!("{prev}, {ip}"),
        _ => ip.to_string(),
    };
    let host_value = headers.get(header::HOST).cloned();
    let quoted_host = host.replace(['"', '\\'], "");
    let fwd = format!(
        "for={};host=\"{quoted_host}\";proto={}",
        forwarded_node(ip),
        scheme.as_str()
    );
    let fwd = match headers.get(&FORWARDED).and_then(|v| v.to_str().ok()) {
        Some(prev) if !prev.trim().is_empty() => format!("{prev}, {fwd}"),
        _ => fwd,
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert(X_FORWARDED_FOR, v);
    }
    if let Ok(v) = HeaderValue::from_str(&fwd) {
        headers.insert(FORWARDED, v);
    }
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(scheme.as_str()));
    if let Some(h) = host_value {
        headers.insert(X_FORWARDED_HOST, h);
    }
    headers.append(header::VIA, VIA_VALUE);
}

pub(super) async fn handle(
    shared: &Shared,
    req: Request<Incoming>,
    peer: SocketAddr,
    scheme: Scheme,
) -> Response<Body> {
    let started = Instant::now();
    // Cheap clones (shared bytes) kept for the access log; formatted only if it is enabled.
    let method = req.method().clone();
    let uri = req.uri().clone();
    let json = wants_json(req.headers());
    let Some(host) = host_of(&req).map(str::to_ascii_lowercase) else {
        return page(
            json,
            Page {
                status: StatusCode::BAD_REQUEST,
                code: "bad_request",
                title: "No host",
                message: "the request names no host; send a Host header".into(),
            },
        );
    };

    // ACME http-01 answers come first: the name being validated may not be routed yet.
    if scheme == Scheme::Http
        && req.uri().path().starts_with(super::acme::CHALLENGE_PREFIX)
        && let Some(answer) = shared.challenges.answer(req.uri().path())
    {
        tracing::info!(%host, "answered an ACME http-01 challenge");
        let mut r = Response::new(Either::Right(Full::new(Bytes::from(answer))));
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        return r;
    }

    let Some((app, target)) = shared.routes.lookup(&host, &shared.domain) else {
        let r = page(
            json,
            Page {
                status: StatusCode::NOT_FOUND,
                code: "not_found",
                title: "No app here",
                message: format!(
                    "No app is served at {host}. Check the address, or add this domain to your app."
                ),
            },
        );
        tracing::info!(target: "scalefog::access", %host, %method, path = %uri, status = 404, ms = started.elapsed().as_millis() as u64, "no app for host");
        return r;
    };
    shared.routes.counts().record(&app);
    let response = match target {
        Target::Unavailable(state) => page(
            json,
            Page {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "unavailable",
                title: "App unavailable",
                message: match state.as_str() {
                    "created" => format!("The app '{app}' has not been deployed yet."),
                    state => format!("The app '{app}' is not serving requests: it is {state}."),
                },
            },
        ),
        Target::Serving(upstream) => {
            forward(shared, req, peer, scheme, &host, &app, upstream, json).await
        }
    };
    tracing::info!(
        target: "scalefog::access",
        %app,
        %host,
        %method,
        path = %uri,
        status = response.status().as_u16(),
        ms = started.elapsed().as_millis() as u64,
        %peer,
    );
    response
}

#[allow(clippy::too_many_arguments)]
async fn forward(
    shared: &Shared,
    req: Request<Incoming>,
    peer: SocketAddr,
    scheme: Scheme,
    host: &str,
    app: &str,
    upstream: SocketAddr,
    json: bool,
) -> Response<Body> {
    let (mut parts, body) = req.into_parts();
    let upgrade = wants_upgrade(&parts.headers);
    let upgrade_proto = parts.headers.get(header::UPGRADE).cloned();
    let client_upgrade = parts.extensions.remove::<OnUpgrade>();

    strip_hop_by_hop(&mut parts.headers);
    parts.headers.remove(header::EXPECT);
    if upgrade && let Some(proto) = upgrade_proto {
        parts.headers.insert(header::UPGRADE, proto);
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    add_forwarding(&mut parts.headers, peer, scheme, host);
    let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = match Uri::builder()
        .scheme("http")
        .authority(upstream.to_string())
        .path_and_query(pq)
        .build()
    {
        Ok(u) => u,
        Err(_) => {
            return page(
                json,
                Page {
                    status: StatusCode::BAD_REQUEST,
                    code: "bad_request",
                    title: "Bad request",
                    message: "the request target cannot be forwarded".into(),
                },
            );
        }
    };
    parts.version = Version::HTTP_11;
    let (body, body_sent) = RequestBody::new(body);
    let upstream_req = Request::from_parts(parts, body);

    // The response-header timeout counts from the end of the request body, so a slow upload
    // is not cut off; only an app that has everything and still does not answer is.
    let response = shared.client.request(upstream_req);
    tokio::pin!(response);
    let timeout = shared.timeouts.upstream_headers;
    let sent = tokio::select! {
        r = &mut response => Ok(r),
        _ = async {
            let _ = body_sent.await;
            tokio::time::sleep(timeout).await;
        } => Err(()),
    };
    let mut resp = match sent {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            tracing::warn!(%app, %upstream, error = %error_chain(&e), "upstream failed");
            return page(
                json,
                Page {
                    status: StatusCode::BAD_GATEWAY,
                    code: "bad_gateway",
                    title: "App not responding",
                    message: format!(
                        "The app '{app}' did not answer the request. If it was just deployed, it may still be starting."
                    ),
                },
            );
        }
        Err(_) => {
            tracing::warn!(%app, %upstream, "upstream timed out");
            return page(
                json,
                Page {
                    status: StatusCode::GATEWAY_TIMEOUT,
                    code: "gateway_timeout",
                    title: "App too slow",
                    message: format!("The app '{app}' took too long to answer."),
                },
            );
        }
    };

    if upgrade && resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let upstream_upgrade = hyper::upgrade::on(&mut resp);
        if let Some(client_upgrade) = client_upgrade {
            let app = app.to_string();
            tokio::spawn(async move {
                match tokio::try_join!(client_upgrade, upstream_upgrade) {
                    Ok((client, upstream)) => {
                        let mut client = TokioIo::new(client);
                        let mut upstream = TokioIo::new(upstream);
                        if let Err(e) =
                            tokio::io::copy_bidirectional(&mut client, &mut upstream).await
                        {
                            tracing::debug!(%app, error = %e, "upgraded connection ended");
                        }
                    }
                    Err(e) => tracing::debug!(%app, error = %e, "protocol switch failed"),
                }
            });
        }
        // The 101 keeps its Connection/Upgrade fields: they are the switch itself.
        resp.headers_mut().append(header::VIA, VIA_VALUE);
        return resp.map(Either::Left);
    }

    strip_hop_by_hop(resp.headers_mut());
    resp.headers_mut().append(header::VIA, VIA_VALUE);
    resp.map(Either::Left)
}

/// The request body on its way upstream, telling when it has been sent completely.
pub(super) struct RequestBody {
    inner: Incoming,
    sent: Option<tokio::sync::oneshot::Sender<()>>,
}

impl RequestBody {
    fn new(inner: Incoming) -> (RequestBody, tokio::sync::oneshot::Receiver<()>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut body = RequestBody {
            inner,
            sent: Some(tx),
        };
        // An empty body is never polled: it is "sent" at once.
        body.check_end();
        (body, rx)
    }

    fn check_end(&mut self) {
        if self.inner.is_end_stream()
            && let Some(tx) = self.sent.take()
        {
            let _ = tx.send(());
        }
    }
}

impl hyper::body::Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, hyper::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            std::task::Poll::Ready(None) => {
                if let Some(tx) = self.sent.take() {
                    let _ = tx.send(());
                }
            }
            std::task::Poll::Ready(Some(_)) => self.check_end(),
            std::task::Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// An error with its causes, for the log (hyper's top-level messages are terse).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_fields_and_those_named_by_connection_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, X-Secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key(header::CONTENT_TYPE));
    }

    #[test]
    fn forwarding_fields_append_to_the_client_ones_and_quote_ipv6() {
        let mut h = HeaderMap::new();
        h.insert(
            header::HOST,
            HeaderValue::from_static("blog.localhost:8000"),
        );
        h.insert(X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.1"));
        h.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
        let peer: SocketAddr = "[2001:db8::1]:5555".parse().unwrap();
        add_forwarding(&mut h, peer, Scheme::Http, "blog.localhost");
        assert_eq!(h[&X_FORWARDED_FOR], "10.0.0.1, 2001:db8::1");
        assert_eq!(h[&X_FORWARDED_PROTO], "http");
        assert_eq!(h[&X_FORWARDED_HOST], "blog.localhost:8000");
        assert_eq!(
            h[&FORWARDED],
            "for=\"[2001:db8::1]\";host=\"blog.localhost\";proto=http"
        );
    }

    #[test]
    fn upgrade_needs_both_the_connection_token_and_the_upgrade_field() {
        let mut h = HeaderMap::new();
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(!wants_upgrade(&h));
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert!(wants_upgrade(&h));
    }
}
