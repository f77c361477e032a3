//! The router's numbers per app: requests by status class, latency, bytes both ways, and a
//! small ring of per-minute samples for the console's sparklines.
//!
//! The router holds each app's [`AppTraffic`] in its route (see `routing::Route`), so counting a
//! request is a few atomic adds and one uncontended lock (the histogram's), never a map
//! lookup. The samples are taken by one task a minute ([`Traffic::run_sampler`]) from the same
//! counters, so the hot path does not touch them.

use super::HistogramFamily;
use crate::locks;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// How many samples an app keeps: an hour of minutes, 8 bytes each.
pub const SAMPLES: usize = 60;
/// How often a sample is taken.
pub const SAMPLE_PERIOD: Duration = Duration::from_secs(60);

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppLabels {
    app: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabels {
    app: String,
    class: &'static str,
}

/// One app's counters, shared with the families that expose them.
pub struct AppTraffic {
    classes: [Counter; 5],
    duration: Histogram,
    request_bytes: Counter,
    response_bytes: Counter,
    /// Connections to its replicas that failed (refused, or not accepted in time).
    backend_failures: Counter,
    samples: Mutex<Samples>,
}

#[derive(Default)]
struct Samples {
    /// (requests, 5xx responses) per period, oldest first. Allocated at the first sample.
    ring: VecDeque<(u32, u32)>,
    /// The counters' totals at the last sample.
    last: (u64, u64),
}

impl AppTraffic {
    /// One answered request: its status and the time to its response's head.
    pub fn record(&self, status: u16, took: Duration) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.classes[class].inc();
        self.duration.observe(took.as_secs_f64());
    }

    /// Bytes of request bodies sent on to the app.
    pub fn request_bytes(&self) -> &Counter {
        &self.request_bytes
    }

    /// Bytes of response bodies sent back to clients.
    pub fn response_bytes(&self) -> &Counter {
        &self.response_bytes
    }

    /// Connections to the app's replicas that were refused or not accepted in time.
    pub fn backend_failures(&self) -> &Counter {
        &self.backend_failures
    }

    /// Requests answered since the app's counters were made.
    pub fn requests(&self) -> u64 {
        self.classes.iter().map(Counter::get).sum()
    }

    /// Requests answered with a 5xx.
    pub fn errors(&self) -> u64 {
        self.classes[4].get()
    }

    fn sample(&self) {
        let now = (self.requests(), self.errors());
        let mut s = locks::lock(&self.samples);
        let delta = |a: u64, b: u64| u32::try_from(a.saturating_sub(b)).unwrap_or(u32::MAX);
        let sample = (delta(now.0, s.last.0), delta(now.1, s.last.1));
        if s.ring.capacity() == 0 {
            s.ring.reserve_exact(SAMPLES);
        }
        if s.ring.len() == SAMPLES {
            s.ring.pop_front();
        }
        s.ring.push_back(sample);
        s.last = now;
    }

    fn series(&self) -> TrafficSeries {
        let s = locks::lock(&self.samples);
        let mut requests: Vec<u64> = s.ring.iter().map(|r| u64::from(r.0)).collect();
        let mut errors: Vec<u64> = s.ring.iter().map(|r| u64::from(r.1)).collect();
        requests.push(self.requests().saturating_sub(s.last.0));
        errors.push(self.errors().saturating_sub(s.last.1));
        TrafficSeries { requests, errors }
    }
}

/// An app's recent traffic, one value per [`SAMPLE_PERIOD`], oldest first; the last value is
/// the period in progress, so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafficSeries {
    pub requests: Vec<u64>,
    /// Responses with a 5xx status.
    pub errors: Vec<u64>,
}

/// Every app's traffic, and the families that expose it. Cheap to clone.
#[derive(Clone)]
pub struct Traffic {
    apps: Arc<RwLock<HashMap<String, Arc<AppTraffic>>>>,
    requests: Family<ClassLabels, Counter>,
    duration: HistogramFamily<AppLabels>,
    request_bytes: Family<AppLabels, Counter>,
    response_bytes: Family<AppLabels, Counter>,
    backend_failures: Family<AppLabels, Counter>,
}

impl Default for Traffic {
    fn default() -> Self {
        Traffic {
            apps: Arc::default(),
            requests: Family::default(),
            duration: Family::new_with_constructor(super::request_histogram as fn() -> _),
            request_bytes: Family::default(),
            response_bytes: Family::default(),
            backend_failures: Family::default(),
        }
    }
}

impl Traffic {
    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "scalefog_router_requests",
            "Requests the app router answered, by app and status class",
            self.requests.clone(),
        );
        registry.register(
            "scalefog_router_request_duration_seconds",
            "Time from a request's arrival at the router to its response's head, by app",
            self.duration.clone(),
        );
        registry.register(
            "scalefog_router_request_bytes",
            "Request body bytes the router sent on to apps",
            self.request_bytes.clone(),
        );
        registry.register(
            "scalefog_router_response_bytes",
            "Response body bytes the router sent back to clients",
            self.response_bytes.clone(),
        );
        registry.register(
            "scalefog_router_backend_failures",
            "Connections from the router to an app's replicas that were refused or timed out",
            self.backend_failures.clone(),
        );
    }

    /// The counters of `app`, made (at zero) if it has none yet.
    pub fn app(&self, app: &str) -> Arc<AppTraffic> {
        if let Some(t) = locks::read(&self.apps).get(app) {
            return t.clone();
        }
        locks::write(&self.apps)
            .entry(app.to_string())
            .or_insert_with(|| {
                let labels = AppLabels { app: app.into() };
                Arc::new(AppTraffic {
                    classes: CLASSES.map(|class| {
                        self.requests.get_or_create_owned(&ClassLabels {
                            app: app.into(),
                            class,
                        })
                    }),
                    duration: self.duration.get_or_create_owned(&labels),
                    request_bytes: self.request_bytes.get_or_create_owned(&labels),
                    response_bytes: self.response_bytes.get_or_create_owned(&labels),
                    backend_failures: self.backend_failures.get_or_create_owned(&labels),
                    samples: Mutex::default(),
                })
            })
            .clone()
    }

    /// Forgets an app's counters and series (the app was deleted).
    pub fn remove(&self, app: &str) {
        locks::write(&self.apps).remove(app);
        let labels = AppLabels { app: app.into() };
        for class in CLASSES {
            self.requests.remove(&ClassLabels {
                app: app.into(),
                class,
            });
        }
        self.duration.remove(&labels);
        self.request_bytes.remove(&labels);
        self.response_bytes.remove(&labels);
        self.backend_failures.remove(&labels);
    }

    /// Requests answered for `app` (0 for an app without counters).
    pub fn get(&self, app: &str) -> u64 {
        locks::read(&self.apps).get(app).map_or(0, |t| t.requests())
    }

    /// The app's recent traffic; `None` for an app the router does not know.
    pub fn series(&self, app: &str) -> Option<TrafficSeries> {
        let t = locks::read(&self.apps).get(app).cloned()?;
        Some(t.series())
    }

    /// Takes one sample of every app.
    pub fn sample(&self) {
        let apps: Vec<Arc<AppTraffic>> = locks::read(&self.apps).values().cloned().collect();
        for t in apps {
            t.sample();
        }
    }

    /// Samples every [`SAMPLE_PERIOD`], for as long as it runs.
    pub async fn run_sampler(self) {
        let mut tick = tokio::time::interval(SAMPLE_PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is immediate: it would record an empty first minute.
        tick.tick().await;
        loop {
            tick.tick().await;
            self.sample();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_count_by_class_and_samples_keep_each_periods_share() {
        let t = Traffic::default();
        let blog = t.app("blog");
        blog.record(200, Duration::from_millis(2));
        blog.record(502, Duration::from_millis(2));
        assert_eq!(t.get("blog"), 2);
        assert_eq!(t.get("shop"), 0);
        t.sample();
        blog.record(200, Duration::from_millis(2));
        assert_eq!(
            t.series("blog"),
            Some(TrafficSeries {
                requests: vec![2, 1],
                errors: vec![1, 0],
            })
        );
        for _ in 0..SAMPLES + 5 {
            t.sample();
        }
        assert_eq!(t.series("blog").unwrap().requests.len(), SAMPLES + 1);
        t.remove("blog");
        assert_eq!(t.series("blog"), None);
        assert_eq!(t.get("blog"), 0);
    }
}
