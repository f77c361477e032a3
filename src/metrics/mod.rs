//! What the server counts, for `GET /metrics` (Prometheus text format) and the console's
//! traffic sparklines: one registry that the core (deploys, pushes) and the transports (API,
//! router, SSH) record into, so no transport keeps numbers of its own.
//!
//! Cardinality stays bounded: labels are route templates (never raw paths), a fixed set of
//! methods, status codes and classes, phases and outcomes, and app names (bounded by the store;
//! an app's series go when it is deleted, see [`traffic::Traffic::remove`]).
//! Gauges that describe state (replicas, store size) are read when scraped, not kept.

pub mod traffic;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Duration;
pub use traffic::{AppTraffic, Traffic, TrafficSeries};

/// The `Content-Type` of what [`Metrics::render`] writes.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Latency buckets (seconds) of HTTP requests, the API's and the router's.
const REQUEST_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Buckets (seconds) of deploy phases: a health check takes a second, a build minutes.
const PHASE_BUCKETS: [f64; 11] = [
    0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
];

fn request_histogram() -> Histogram {
    Histogram::new(REQUEST_BUCKETS)
}

fn phase_histogram() -> Histogram {
    Histogram::new(PHASE_BUCKETS)
}

type HistogramFamily<S> = Family<S, Histogram, fn() -> Histogram>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiLabels {
    method: &'static str,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiRouteLabels {
    method: &'static str,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReplicaLabels {
    app: String,
    process_type: String,
}

/// How a deploy of a pushed commit ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeployOutcome {
    Succeeded,
    Failed,
    Cancelled,
}

impl DeployOutcome {
    fn as_str(self) -> &'static str {
        match self {
            DeployOutcome::Succeeded => "succeeded",
            DeployOutcome::Failed => "failed",
            DeployOutcome::Cancelled => "cancelled",
        }
    }
}

/// The timed steps of a deploy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The pushed commit → an image.
    Build,
    /// The Procfile's `release:` command.
    ReleasePhase,
    /// One new process until it passes the health check.
    HealthCheck,
    /// The store transaction and the route table's update.
    Switch,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Build => "build",
            Phase::ReleasePhase => "release_phase",
            Phase::HealthCheck => "health_check",
            Phase::Switch => "switch",
        }
    }
}

/// State read at scrape time, by whoever can read it (the store, the files).
#[derive(Debug, Default)]
pub struct Readings {
    /// (app, process type) → replicas its current deployment runs.
    pub replicas: Vec<(String, String, u64)>,
    /// The store file's size.
    pub store_bytes: u64,
}

struct Inner {
    registry: Registry,
    api_requests: Family<ApiLabels, Counter>,
    api_duration: HistogramFamily<ApiRouteLabels>,
    traffic: Traffic,
    deploys: Family<OutcomeLabels, Counter>,
    deploy_phases: HistogramFamily<PhaseLabels>,
    pushes: Family<OutcomeLabels, Counter>,
    push_bytes: Counter,
    ssh_open: Gauge,
    ssh_total: Counter,
    replicas: Family<ReplicaLabels, Gauge>,
    store_bytes: Gauge,
}

/// The registry and every series in it. Cheap to clone.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let api_requests = Family::<ApiLabels, Counter>::default();
        let api_duration = HistogramFamily::new_with_constructor(request_histogram as fn() -> _);
        let traffic = Traffic::default();
        let deploys = Family::<OutcomeLabels, Counter>::default();
        let deploy_phases = HistogramFamily::new_with_constructor(phase_histogram as fn() -> _);
        let pushes = Family::<OutcomeLabels, Counter>::default();
        let push_bytes = Counter::default();
        let ssh_open = Gauge::default();
        let ssh_total = Counter::default();
        let replicas = Family::<ReplicaLabels, Gauge>::default();
        let store_bytes = Gauge::default();
        registry.register(
            "scalefog_http_requests",
            "API and console requests by method, route template and status",
            api_requests.clone(),
        );
        registry.register(
            "scalefog_http_request_duration_seconds",
            "API and console request latency by method and route template",
            api_duration.clone(),
        );
        traffic.register(&mut registry);
        registry.register(
            "scalefog_deploys",
            "Deploys of pushed commits by outcome",
            deploys.clone(),
        );
        registry.register(
            "scalefog_deploy_phase_duration_seconds",
            "Time spent in each deploy phase (build, release_phase, health_check, switch)",
            deploy_phases.clone(),
        );
        registry.register(
            "scalefog_pushes",
            "Git pushes by outcome (accepted, rejected)",
            pushes.clone(),
        );
        registry.register(
            "scalefog_push_bytes",
            "Bytes received from git pushes",
            push_bytes.clone(),
        );
        registry.register(
            "scalefog_ssh_sessions_open",
            "SSH connections open now",
            ssh_open.clone(),
        );
        registry.register(
            "scalefog_ssh_sessions",
            "SSH connections accepted",
            ssh_total.clone(),
        );
        registry.register(
            "scalefog_app_replicas",
            "Processes the current deployment of each app runs, by process type",
            replicas.clone(),
        );
        registry.register(
            "scalefog_store_size_bytes",
            "Size of the store file",
            store_bytes.clone(),
        );
        Metrics(Arc::new(Inner {
            registry,
            api_requests,
            api_duration,
            traffic,
            deploys,
            deploy_phases,
            pushes,
            push_bytes,
            ssh_open,
            ssh_total,
            replicas,
            store_bytes,
        }))
    }

    /// The router's per-app counters (the route table hands them to the router).
    pub fn traffic(&self) -> &Traffic {
        &self.0.traffic
    }

    /// One API or console request. `route` is the matched route template (`None`: no route
    /// matched), never the raw path, so the series stay bounded.
    pub fn api_request(&self, method: &str, route: Option<&str>, status: u16, took: Duration) {
        let method = method_label(method);
        let route = route.unwrap_or("unmatched").to_string();
        self.0
            .api_duration
            .get_or_create(&ApiRouteLabels {
                method,
                route: route.clone(),
            })
            .observe(took.as_secs_f64());
        self.0
            .api_requests
            .get_or_create(&ApiLabels {
                method,
                route,
                status,
            })
            .inc();
    }

    pub fn deploy(&self, outcome: DeployOutcome) {
        self.0
            .deploys
            .get_or_create(&OutcomeLabels {
                outcome: outcome.as_str(),
            })
            .inc();
    }

    pub fn phase(&self, phase: Phase, took: Duration) {
        self.0
            .deploy_phases
            .get_or_create(&PhaseLabels {
                phase: phase.as_str(),
            })
            .observe(took.as_secs_f64());
    }

    /// A push decided: accepted or not.
    pub fn push(&self, accepted: bool) {
        let outcome = if accepted { "accepted" } else { "rejected" };
        self.0
            .pushes
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// The counter of bytes pushes send, for the transport that reads them.
    pub fn push_bytes(&self) -> &Counter {
        &self.0.push_bytes
    }

    /// Counts an SSH connection open until the guard is dropped.
    pub fn ssh_session(&self) -> SshSession {
        self.0.ssh_total.inc();
        self.0.ssh_open.inc();
        SshSession(self.0.ssh_open.clone())
    }

    /// The Prometheus text exposition, with the state gauges set from `readings`.
    pub fn render(&self, readings: &Readings) -> String {
        // Replaced whole: an app deleted or scaled down since the last scrape loses its series.
        self.0.replicas.clear();
        for (app, process_type, n) in &readings.replicas {
            self.0
                .replicas
                .get_or_create(&ReplicaLabels {
                    app: app.clone(),
                    process_type: process_type.clone(),
                })
                .set(i64::try_from(*n).unwrap_or(i64::MAX));
        }
        self.0
            .store_bytes
            .set(i64::try_from(readings.store_bytes).unwrap_or(i64::MAX));
        let mut out = String::with_capacity(16 * 1024);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.0.registry);
        out
    }
}

/// An open SSH connection, counted in `scalefog_ssh_sessions_open` while it lives.
pub struct SshSession(Gauge);

impl Drop for SshSession {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The request method as a label: one of the standard methods, or `other` (a client may send
/// any token as a method; each must not become a series).
fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_requests_are_labelled_by_template_and_unknown_methods_fold_into_other() {
        let m = Metrics::new();
        m.api_request(
            "GET",
            Some("/v1/instances/{id}"),
            200,
            Duration::from_millis(3),
        );
        m.api_request("BREW", None, 404, Duration::from_millis(1));
        let text = m.render(&Readings::default());
        assert!(
            text.contains(
                r#"scalefog_http_requests_total{method="GET",route="/v1/instances/{id}",status="200"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"scalefog_http_requests_total{method="other",route="unmatched",status="404"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"scalefog_http_request_duration_seconds_bucket{method="GET",route="/v1/instances/{id}",le="0.005"} 1"#
            ),
            "{text}"
        );
    }

    #[test]
    fn state_gauges_follow_the_readings_of_each_scrape() {
        let m = Metrics::new();
        let text = m.render(&Readings {
            replicas: vec![("blog".into(), "web".into(), 2)],
            store_bytes: 4096,
        });
        assert!(text.contains(r#"scalefog_app_replicas{app="blog",process_type="web"} 2"#));
        assert!(text.contains("scalefog_store_size_bytes 4096"));
        let text = m.render(&Readings::default());
        assert!(!text.contains(r#"app="blog""#), "{text}");
    }

    #[test]
    fn ssh_sessions_count_while_open() {
        let m = Metrics::new();
        let a = m.ssh_session();
        let _b = m.ssh_session();
        drop(a);
        let text = m.render(&Readings::default());
        assert!(text.contains("scalefog_ssh_sessions_open 1"), "{text}");
        assert!(text.contains("scalefog_ssh_sessions_total 2"), "{text}");
    }
}
