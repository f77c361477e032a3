//! One proxied request: find the app by `Host` (or an absolute-form target's host), rewrite
//! the headers a proxy must rewrite (RFC 9110 §7.6), forward, and stream the answer back; or
//! answer with a page.

use super::pages::{Page, wants_json};
use super::upstream::{self, Slot};
use super::watchdog::Watch;
use super::{Scheme, Shared};
use crate::locks;
use crate::metrics::AppTraffic;
use crate::routing::{Backends, Target};
use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::{Body as _, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::uri::PathAndQuery;
use hyper::upgrade::OnUpgrade;
use hyper::{Request, Response, StatusCode, Uri, Version};
use hyper_util::rt::TokioIo;
use prometheus_client::metrics::counter::Counter;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What the router answers with: an upstream's streamed body or one of its own pages.
pub type Body = Either<Incoming, Full<Bytes>>;

/// Hop-by-hop fields (RFC 9110 §7.6.1) that never cross the proxy, besides those the
/// `Connection` field names. `Expect` is answered by our own server side (100-continue).
/// A `static`, not a `const`: a const array of names would be built anew at every use.
static HOP_BY_HOP: [HeaderName; 8] = [
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

/// The host a request is for, without port (as sent: any case), or why it names none (a 400):
/// the authority of an absolute-form target (`GET http://host/path`), which wins over `Host`
/// (RFC 9112 §3.2.2: a server MUST ignore `Host` then), else the one `Host` field.
fn host_of(req: &Request<Incoming>) -> Result<&str, &'static str> {
    // One lookup gives the field and whether there is a second: two `Host` fields may name
    // two hosts, one read by the router and the other by the app (RFC 9112 §3.2: a 400).
    let mut fields = req.headers().get_all(header::HOST).iter();
    let field = fields.next();
    if fields.next().is_some() {
        return Err("the request has more than one Host header");
    }
    if let Some(authority) = req.uri().authority() {
        // RFC 9110 §4.2.4: userinfo in an http(s) target is an error, not something to pass on.
        if authority.as_str().contains('@') {
            return Err("the request's URL holds credentials (user@host)");
        }
        return Some(authority.host())
            .filter(|h| !h.is_empty())
            .ok_or("the request's URL names no host");
    }
    let raw = field
        .ok_or("the request names no host; send a Host header")?
        .to_str()
        .map_err(|_| "the request's Host header is not a host name")?;
    let host = if raw.starts_with('[') {
        // An IPv6 literal: keep the brackets, drop the port.
        raw.split_once(']').map(|(h, _)| &raw[..=h.len()])
    } else {
        Some(raw.rsplit_once(':').map_or(raw, |(h, _)| h))
    };
    host.filter(|h| !h.is_empty())
        .ok_or("the request's Host header is not a host name")
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

const UPGRADE_INDEX: usize = 5;

/// The index in [`HOP_BY_HOP`] of a field name (lower case, as `HeaderName`s are).
fn fixed_hop_by_hop(name: &str) -> Option<usize> {
    Some(match name {
        "connection" => 0,
        "proxy-connection" => 1,
        "keep-alive" => 2,
        "te" => 3,
        "transfer-encoding" => 4,
        "upgrade" => 5,
        "trailer" => 6,
        "proxy-authorization" => 7,
        _ => return None,
    })
}

/// Which of the fields the router treats specially a message has: those of [`HOP_BY_HOP`]
/// (by index), `Expect`, and the client's own forwarding fields.
#[derive(Clone, Copy, Default)]
struct Present {
    fixed: [bool; HOP_BY_HOP.len()],
    expect: bool,
    x_forwarded_for: bool,
    forwarded: bool,
}

impl Present {
    /// One pass over the names (a match on the name, which first looks at its length, is
    /// cheaper than comparing with each of the set); every lookup or removal after it hashes
    /// its name, so it is only made for fields known to be there.
    fn of(headers: &HeaderMap) -> Present {
        let mut p = Present::default();
        for name in headers.keys() {
            if let Some(i) = fixed_hop_by_hop(name.as_str()) {
                p.fixed[i] = true;
            } else if name == header::EXPECT {
                p.expect = true;
            } else if name == X_FORWARDED_FOR {
                p.x_forwarded_for = true;
            } else if name == FORWARDED {
                p.forwarded = true;
            }
        }
        p
    }
}

/// Removes hop-by-hop fields: the fixed set and every field the `Connection` field names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    strip_present(headers, Present::of(headers));
}

/// [`strip_hop_by_hop`] with the fields present already known.
fn strip_present(headers: &mut HeaderMap, present: Present) {
    let fixed = present.fixed;
    if !fixed.contains(&true) {
        return;
    }
    // `Connection` (index 0) mostly names `close`, `keep-alive` or `upgrade`: not fields, or
    // fields of the fixed set; only other names need parsing and removing. A field of just one
    // of those (most apps' `Connection: keep-alive`) is let through without parsing.
    let plain = |v: &HeaderValue| {
        let v = v.as_bytes();
        v.eq_ignore_ascii_case(b"keep-alive")
            || v.eq_ignore_ascii_case(b"close")
            || v.eq_ignore_ascii_case(b"upgrade")
    };
    if fixed[0] && !headers.get_all(header::CONNECTION).iter().all(plain) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|t| {
                !t.eq_ignore_ascii_case("close")
                    && !HOP_BY_HOP
                        .iter()
                        .any(|h| t.eq_ignore_ascii_case(h.as_str()))
            })
            .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for (name, _) in HOP_BY_HOP.iter().zip(fixed).filter(|(_, p)| *p) {
        headers.remove(name);
    }
}

/// One client connection as its requests see it: who is at the other end, computed once per
/// connection rather than formatted on every request, and its upstream connection.
pub(super) struct Client {
    pub peer: SocketAddr,
    pub scheme: Scheme,
    /// The peer address as `X-Forwarded-For` names it.
    xff: HeaderValue,
    /// The peer address as `Forwarded: for=` names it (RFC 7239: IPv6 quoted, bracketed).
    forwarded_for: String,
    /// The last request's host and our `Forwarded` element for it: the same on most requests
    /// of a connection, so made once rather than on every request.
    forwarded: Mutex<Option<(Box<str>, HeaderValue)>>,
    pub upstream: Slot,
    /// Its time limits (see `watchdog`).
    pub watch: Arc<Watch>,
}

impl Client {
    pub fn new(peer: SocketAddr, scheme: Scheme) -> Client {
        let ip = peer.ip().to_canonical();
        Client {
            peer,
            scheme,
            xff: HeaderValue::try_from(ip.to_string()).expect("an IP address is a header value"),
            forwarded_for: match ip {
                IpAddr::V4(v4) => v4.to_string(),
                IpAddr::V6(v6) => format!("\"[{v6}]\""),
            },
            forwarded: Mutex::default(),
            upstream: Slot::default(),
            watch: Arc::default(),
        }
    }

    /// Our `Forwarded` element (`for=…;host="…";proto=…`) for a request to `host` (as sent).
    fn forwarded(&self, host: &str) -> Option<HeaderValue> {
        let mut last = locks::lock(&self.forwarded);
        if let Some((h, v)) = &*last
            && **h == *host
        {
            return Some(v.clone());
        }
        let mut fwd = String::with_capacity(self.forwarded_for.len() + host.len() + 24);
        fwd.push_str("for=");
        fwd.push_str(&self.forwarded_for);
        fwd.push_str(";host=\"");
        // A quoted-string here; a host name never holds these, so drop rather than escape.
        fwd.extend(
            host.chars()
                .filter(|c| !matches!(c, '"' | '\\'))
                .map(|c| c.to_ascii_lowercase()),
        );
        fwd.push_str("\";proto=");
        fwd.push_str(self.scheme.as_str());
        let value = HeaderValue::try_from(fwd).ok()?;
        *last = Some((host.into(), value.clone()));
        Some(value)
    }
}

/// Adds the forwarding fields. `X-Forwarded-For` and `Forwarded` are appended to (the client's
/// own values come first; apps should trust the last entry, which is ours); `-Proto` and
/// `-Host` are set, since only the router knows them. `forwarded` is our `Forwarded` element
/// ([`Client::forwarded`]); `present` tells whether the client sent either field (clients
/// rarely do, and a lookup that finds nothing still hashes its name).
fn add_forwarding(
    headers: &mut HeaderMap,
    client: &Client,
    present: Present,
    forwarded: Option<HeaderValue>,
) {
    // Room for the five fields at once rather than growing the map twice on the way.
    headers.reserve(5);
    let client_value = |present: bool, name: &HeaderName| {
        present
            .then(|| headers.get(name).and_then(|v| v.to_str().ok()))
            .flatten()
            .filter(|p| !p.trim().is_empty())
    };
    let xff = match client_value(present.x_forwarded_for, &X_FORWARDED_FOR) {
        Some(prev) => {
            HeaderValue::try_from(format!("{prev}, {}", client.xff.to_str().unwrap_or("")))
                .unwrap_or_else(|_| client.xff.clone())
        }
        None => client.xff.clone(),
    };
    let proto = client.scheme.as_str();
    let fwd = match (client_value(present.forwarded, &FORWARDED), forwarded) {
        (Some(prev), Some(ours)) => {
            HeaderValue::try_from(format!("{prev}, {}", ours.to_str().unwrap_or(""))).ok()
        }
        (_, ours) => ours,
    };
    headers.insert(X_FORWARDED_FOR, xff);
    if let Some(v) = fwd {
        headers.insert(FORWARDED, v);
    }
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    if let Some(h) = headers.get(header::HOST).cloned() {
        headers.insert(X_FORWARDED_HOST, h);
    }
    headers.append(header::VIA, VIA_VALUE);
}

/// The access log line's fields that exist before the answer; taken only when the access log
/// is enabled, so a router without it pays nothing for them.
struct Access {
    started: Instant,
    method: hyper::Method,
    uri: Uri,
}

fn access_log_on() -> bool {
    tracing::enabled!(target: "scalefog::access", tracing::Level::INFO)
}

/// Answers one request; with the answer, the counters of the app it went to (its response
/// body's bytes are counted as they are sent).
pub(super) async fn handle(
    shared: &Shared,
    client: &Client,
    req: Request<Incoming>,
) -> (Response<Body>, Option<Arc<AppTraffic>>) {
    let started = Instant::now();
    let access = access_log_on().then(|| Access {
        started,
        method: req.method().clone(),
        uri: req.uri().clone(),
    });
    let json = wants_json(req.headers());
    let host = match host_of(&req) {
        Ok(host) => host,
        Err(problem) => {
            let r = page(
                json,
                Page {
                    status: StatusCode::BAD_REQUEST,
                    code: "bad_request",
                    title: "Bad request",
                    message: problem.into(),
                },
            );
            return (r, None);
        }
    };

    // ACME http-01 answers come first: the name being validated may not be routed yet.
    if client.scheme == Scheme::Http
        && req.uri().path().starts_with(super::acme::CHALLENGE_PREFIX)
        && let Some(answer) = shared.challenges.answer(req.uri().path())
    {
        tracing::info!(%host, "answered an ACME http-01 challenge");
        let mut r = Response::new(Either::Right(Full::new(Bytes::from(answer))));
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        return (r, None);
    }

    let Some(route) = shared.routes.route_for(host, &shared.domain) else {
        let host = host.to_ascii_lowercase();
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
        if let Some(a) = access {
            tracing::info!(target: "scalefog::access", %host, method = %a.method, path = %a.uri, status = 404, ms = a.started.elapsed().as_millis() as u64, "no app for host");
        }
        return (r, None);
    };
    let app = &*route.app;
    // Taken now: the request, which the host borrows, goes upstream.
    let log_host = access.as_ref().map(|_| host.to_ascii_lowercase());
    let forwarded = client.forwarded(host);
    let response = match route.target {
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
            forward(
                shared,
                client,
                req,
                forwarded,
                app,
                upstream,
                &route.traffic,
                json,
            )
            .await
        }
    };
    route
        .traffic
        .record(response.status().as_u16(), started.elapsed());
    if let (Some(a), Some(host)) = (access, log_host) {
        tracing::info!(
            target: "scalefog::access",
            %app,
            %host,
            method = %a.method,
            path = %a.uri,
            status = response.status().as_u16(),
            ms = a.started.elapsed().as_millis() as u64,
            peer = %client.peer,
        );
    }
    (response, Some(route.traffic))
}

/// Sends the request to one of the app's replicas; `traffic` counts its body as it goes, and
/// the connections its replicas do not accept.
#[allow(clippy::too_many_arguments)]
async fn forward(
    shared: &Shared,
    client: &Client,
    req: Request<Incoming>,
    forwarded: Option<HeaderValue>,
    app: &str,
    upstream: Backends,
    traffic: &AppTraffic,
    json: bool,
) -> Response<Body> {
    let (mut parts, body) = req.into_parts();
    let present = Present::of(&parts.headers);
    let upgrade = present.fixed[UPGRADE_INDEX] && wants_upgrade(&parts.headers);
    let upgrade_proto = upgrade
        .then(|| parts.headers.get(header::UPGRADE).cloned())
        .flatten();
    let client_upgrade = parts.extensions.remove::<OnUpgrade>();

    strip_present(&mut parts.headers, present);
    // Answered by our own server side (`100 Continue`), not the app's.
    if present.expect {
        parts.headers.remove(header::EXPECT);
    }
    if let Some(proto) = upgrade_proto {
        parts.headers.insert(header::UPGRADE, proto);
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    // The upstream gets origin-form (`/path?query`) and the Host the request was routed by: a
    // client's absolute-form target (`GET http://host/path`) becomes origin-form, and its
    // authority the Host (RFC 9112 §3.2: a client sends the authority as Host), replacing any
    // the client sent, before `X-Forwarded-Host` copies it.
    if let Some(authority) = parts.uri.authority() {
        if let Ok(v) = HeaderValue::from_str(authority.as_str()) {
            parts.headers.insert(header::HOST, v);
        }
        let pq = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        parts.uri = Uri::from(pq);
    }
    // `present` is from before the hop-by-hop fields went: a forwarding field that `Connection`
    // named is then looked up and found gone, which is all it costs.
    add_forwarding(&mut parts.headers, client, present, forwarded);
    parts.version = Version::HTTP_11;
    let body = RequestBody::new(body, &client.watch, traffic.request_bytes());
    let upstream_req = Request::from_parts(parts, body);

    // The response-header time limit counts from the end of the request body (the body
    // starts it), so a slow upload is not cut off; only an app that has everything and still
    // does not answer is.
    let connect = shared.timeouts.connect;
    let replicas = upstream::App {
        name: app,
        failures: traffic.backend_failures(),
    };
    let response = async {
        if upgrade {
            // Boxed: see `Slot::send`.
            Box::pin(upstream::send_upgrade(
                &upstream,
                upstream_req,
                connect,
                replicas,
            ))
            .await
        } else {
            let idle = client.watch.idle_before_wait();
            client
                .upstream
                .send(&upstream, upstream_req, connect, idle, replicas)
                .await
        }
    };
    let sent = tokio::select! {
        biased;
        r = response => Ok(r),
        _ = client.watch.expired() => Err(()),
    };
    client.watch.stop_waiting();
    let mut resp = match sent {
        Ok(Ok(r)) => r,
        // The client's body broke off or was malformed (an overflowing chunk size, say) while
        // it streamed upstream: the client's fault, not the app's.
        Ok(Err(e)) if e.is_request_body_error() => {
            tracing::debug!(%app, error = %e, "the client's request body failed");
            return page(
                json,
                Page {
                    status: StatusCode::BAD_REQUEST,
                    code: "bad_request",
                    title: "Bad request",
                    message: "The request body is malformed or ended early.".into(),
                },
            );
        }
        // No replica accepted a connection: each was logged when it went down.
        Ok(Err(e)) if e.is_connect() => {
            tracing::debug!(%app, error = %e, "no replica accepts connections");
            let replicas = upstream.addrs().len();
            return page(
                json,
                Page {
                    status: StatusCode::BAD_GATEWAY,
                    code: "bad_gateway",
                    title: "App not reachable",
                    message: if replicas == 1 {
                        format!(
                            "The app '{app}' did not accept a connection ({e}); nothing was sent to it. If it was just deployed, it may still be starting."
                        )
                    } else {
                        format!(
                            "None of the {replicas} replicas of the app '{app}' accepted a connection ({e}); nothing was sent to them. If it was just deployed, it may still be starting."
                        )
                    },
                },
            );
        }
        Ok(Err(e)) => {
            tracing::warn!(%app, error = %e, "upstream failed");
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
            tracing::warn!(%app, "upstream timed out");
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

/// The request body on its way upstream, starting the wait for the answer when it has been
/// sent completely.
pub(super) struct RequestBody {
    /// `None`: a body known to be empty, of a request the router makes itself.
    inner: Option<Incoming>,
    /// Until the body has ended.
    watch: Option<Arc<Watch>>,
    /// The app's count of request bytes; `None` for a body known to be empty.
    bytes: Option<Counter>,
}

impl RequestBody {
    /// `bytes` is taken (a reference count) only for a body that has any.
    fn new(inner: Incoming, watch: &Arc<Watch>, bytes: &Counter) -> RequestBody {
        if inner.is_end_stream() {
            // Most requests: nothing to send, the wait starts now.
            watch.start_waiting();
            return RequestBody {
                inner: Some(inner),
                watch: None,
                bytes: None,
            };
        }
        RequestBody {
            inner: Some(inner),
            watch: Some(watch.clone()),
            bytes: Some(bytes.clone()),
        }
    }

    /// An empty body whose wait has already started (a request sent again).
    pub(super) fn empty() -> RequestBody {
        RequestBody {
            inner: None,
            watch: None,
            bytes: None,
        }
    }

    fn ended(&mut self) {
        if let Some(watch) = self.watch.take() {
            watch.start_waiting();
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
        let Some(inner) = self.inner.as_mut() else {
            return std::task::Poll::Ready(None);
        };
        let polled = std::pin::Pin::new(&mut *inner).poll_frame(cx);
        let ended = inner.is_end_stream();
        match &polled {
            std::task::Poll::Ready(None) => self.ended(),
            std::task::Poll::Ready(Some(frame)) => {
                if let (Some(bytes), Some(data)) =
                    (&self.bytes, frame.as_ref().ok().and_then(|f| f.data_ref()))
                {
                    bytes.inc_by(data.len() as u64);
                }
                if ended {
                    self.ended();
                }
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Incoming::is_end_stream)
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| hyper::body::SizeHint::with_exact(0), Incoming::size_hint)
    }
}

#[cfg(test)]
mod tests;
