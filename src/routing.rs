//! The routing table: which upstream serves each app host, shared by the deploy engine (which
//! writes it when a release switches or an app stops) and the app router (which reads it on
//! every request). Lookups are lock-free reads of an immutable snapshot; an update replaces the
//! snapshot at once, so a request sees either the old or the new route, never a mix.

use crate::apps::{AppResources, Apps};
use crate::domain::{Instance, InstanceStatus};
use crate::locks;
use crate::metrics::{AppTraffic, Traffic};
use arc_swap::ArcSwap;
use std::borrow::Cow;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Where requests for an app go right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Forward to one of these addresses (the published ports of the current release's `web`
    /// replicas).
    Serving(Backends),
    /// The app exists but nothing serves it; the text is its state (`stopped`, `created`, ...).
    Unavailable(String),
}

/// How a new upstream connection chooses among an app's replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Balance {
    /// The replica holding the fewest of the router's upstream connections, ties taken in
    /// turn: a replica slow to answer gets fewer new connections (see `bench/balance.sh`).
    #[default]
    LeastConnections,
    /// Each replica in turn.
    RoundRobin,
}

/// The addresses of an app's `web` replicas, how many upstream connections each holds, whose
/// turn it is, and which are passed over because they did not accept a connection. Balancing
/// is per client connection: a connection keeps its upstream replica while that replica stays
/// in the set and up (see `router::upstream`), so a keep-alive client costs no reconnects.
#[derive(Debug, Clone)]
pub struct Backends {
    addrs: Arc<[SocketAddr]>,
    replicas: Arc<[Replica]>,
    turn: Arc<std::sync::atomic::AtomicUsize>,
    balance: Balance,
}

/// How long a replica that did not accept a connection (refused, or not within the connect
/// time limit: its machine is gone) is passed over by new connections. Then one connection
/// tries it again (a half-open probe): if it accepts, it is up; if not, it is passed over for
/// as long again. A new set of addresses (the route table updated with moved tasks) starts
/// with every replica up.
pub const DOWN_FOR: Duration = Duration::from_secs(3);

/// One replica's state, shared by every clone of its set.
#[derive(Debug, Default)]
struct Replica {
    /// Upstream connections the router holds to it.
    active: AtomicU64,
    /// 0 while it is up; else the time (see [`clock_ms`]) until which new connections pass it
    /// over. The connection that finds that time past moves it on by [`DOWN_FOR`] before it
    /// tries the replica, so only one connection at a time waits on a replica that may still
    /// be gone.
    down_until: AtomicU64,
}

/// Milliseconds on a monotonic clock, counted from its first reading; never 0. Read only
/// when a replica is down or fails, never on the path of a request to healthy replicas.
fn clock_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let ms = EPOCH.get_or_init(Instant::now).elapsed().as_millis();
    u64::try_from(ms).unwrap_or(u64::MAX - 1) + 1
}

const DOWN_MS: u64 = DOWN_FOR.as_millis() as u64;

impl PartialEq for Backends {
    fn eq(&self, other: &Self) -> bool {
        self.addrs == other.addrs
    }
}
impl Eq for Backends {}

/// The addresses, comma-separated (one address reads as itself).
impl std::fmt::Display for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, a) in self.addrs.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{a}")?;
        }
        Ok(())
    }
}

/// One upstream connection's place at a replica: counted while it lives; it also reports
/// whether the replica accepted the connection.
#[derive(Debug)]
pub struct Lease {
    replicas: Arc<[Replica]>,
    index: usize,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.replicas[self.index]
            .active
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl Lease {
    /// The replica accepted the connection. True when it was down until now (it is back).
    pub fn connected(&self) -> bool {
        let down = &self.replicas[self.index].down_until;
        // A load first: the common case (up) writes nothing to the shared line.
        down.load(Ordering::Relaxed) != 0 && down.swap(0, Ordering::Relaxed) != 0
    }

    /// The replica did not accept the connection: new connections pass it over for
    /// [`DOWN_FOR`]. True when it was up until now (the first failure since it last accepted
    /// one): the one to report.
    pub fn failed(&self) -> bool {
        self.failed_at(clock_ms())
    }

    fn failed_at(&self, now: u64) -> bool {
        self.replicas[self.index]
            .down_until
            .swap(now + DOWN_MS, Ordering::Relaxed)
            == 0
    }
}

impl Backends {
    /// The set, never empty: `None` for no addresses.
    pub fn new(addrs: Vec<SocketAddr>) -> Option<Backends> {
        Self::with_balance(addrs, Balance::default())
    }

    pub fn with_balance(addrs: Vec<SocketAddr>, balance: Balance) -> Option<Backends> {
        (!addrs.is_empty()).then(|| Backends {
            replicas: addrs.iter().map(|_| Replica::default()).collect(),
            addrs: addrs.into(),
            turn: Arc::default(),
            balance,
        })
    }

    pub fn one(addr: SocketAddr) -> Backends {
        Self::with_balance(vec![addr], Balance::default()).expect("one address")
    }

    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The first address (the only one, for an app of one replica).
    pub fn first(&self) -> SocketAddr {
        self.addrs[0]
    }

    pub fn contains(&self, addr: SocketAddr) -> bool {
        self.addrs.contains(&addr)
    }

    /// Whether a kept connection to `addr` may still serve: it is in the set and not passed
    /// over (a replica that stopped accepting connections most likely stopped answering on
    /// those it has too; its machine may be gone).
    pub fn is_live(&self, addr: SocketAddr) -> bool {
        let Some(i) = self.addrs.iter().position(|a| *a == addr) else {
            return false;
        };
        let down = self.replicas[i].down_until.load(Ordering::Relaxed);
        down == 0 || down <= clock_ms()
    }

    /// The replica a new upstream connection goes to, and its place there.
    pub fn pick(&self) -> (SocketAddr, Lease) {
        self.pick_excluding(&[])
            .expect("a set is never empty and nothing is excluded")
    }

    /// As [`Backends::pick`], among the replicas not in `tried` (which failed); `None` when
    /// none is left. Replicas that are down (see [`DOWN_FOR`]) are passed over while another
    /// is up; when every one left is down, one is tried anyway rather than none.
    pub fn pick_excluding(&self, tried: &[SocketAddr]) -> Option<(SocketAddr, Lease)> {
        self.pick_at(tried, clock_ms)
    }

    /// [`Backends::pick_excluding`] on the clock `now`, read only if a replica is down.
    fn pick_at(&self, tried: &[SocketAddr], now: impl Fn() -> u64) -> Option<(SocketAddr, Lease)> {
        let n = self.addrs.len();
        let start = if n == 1 {
            0
        } else {
            self.turn.fetch_add(1, Ordering::Relaxed) % n
        };
        let mut time = 0;
        let index = loop {
            // The choice among the replicas that are up, and the first of those that are down.
            let mut up: Option<(usize, u64)> = None;
            let mut down: Option<usize> = None;
            for i in (0..n).map(|k| (start + k) % n) {
                if tried.contains(&self.addrs[i]) {
                    continue;
                }
                let until = self.replicas[i].down_until.load(Ordering::Relaxed);
                if until != 0 {
                    if time == 0 {
                        time = now();
                    }
                    if until > time {
                        down.get_or_insert(i);
                        continue;
                    }
                }
                match self.balance {
                    Balance::RoundRobin => {
                        up = Some((i, until));
                        break;
                    }
                    Balance::LeastConnections => {
                        let active = |i: usize| self.replicas[i].active.load(Ordering::Relaxed);
                        if up.is_none_or(|(b, _)| active(i) < active(b)) {
                            up = Some((i, until));
                        }
                    }
                }
            }
            match up {
                None => break down?,
                Some((i, 0)) => break i,
                // Down, and its time is past: this connection probes it, unless another
                // connection took the probe first (then choose again).
                Some((i, until)) => {
                    if self.replicas[i]
                        .down_until
                        .compare_exchange(
                            until,
                            time + DOWN_MS,
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                        )
                        .is_ok()
                    {
                        break i;
                    }
                }
            }
        };
        self.replicas[index].active.fetch_add(1, Ordering::Relaxed);
        Some((
            self.addrs[index],
            Lease {
                replicas: self.replicas.clone(),
                index,
            },
        ))
    }
}

impl Target {
    /// Serving `addrs`, or unavailable as `state` when there are none.
    pub fn serving_or(addrs: Vec<SocketAddr>, state: &str) -> Target {
        match Backends::new(addrs) {
            Some(b) => Target::Serving(b),
            None => Target::Unavailable(state.to_string()),
        }
    }

    /// The target of an app the deploy engine has not routed (yet): unavailable, naming its
    /// state, so its hosts answer 503 rather than 404.
    pub fn unrouted(inst: &Instance) -> Target {
        Target::Unavailable(
            match inst.status {
                // Running but not routed: the deploy engine routes it once it has reconciled.
                InstanceStatus::Running => "starting",
                other => other.as_str(),
            }
            .to_string(),
        )
    }
}

/// An app as the router finds it for a request: its name, where to send the request, and its
/// counters (held here so that counting needs no map lookup).
#[derive(Clone)]
pub struct Route {
    pub app: Arc<str>,
    pub target: Target,
    pub traffic: Arc<AppTraffic>,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("app", &self.app)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// The router looks up every request's host here; foldhash hashes a short name in a fraction
/// of SipHash's time. (Its keys are ours, app names and domains; a request only looks up.)
type FastMap<V> = HashMap<String, V, foldhash::fast::RandomState>;

#[derive(Debug, Clone, Default)]
struct Table {
    /// app name → its route
    apps: FastMap<Route>,
    /// custom domain (lowercase) → app name
    domains: FastMap<String>,
}

#[derive(Clone)]
pub struct RouteTable {
    // Readers load the current snapshot without taking a lock (arc-swap), so the router's hot
    // path never waits on a writer; writers build a new table and swap it in. Writers are
    // serialised by `write_lock` so two concurrent updates cannot lose each other's change.
    current: Arc<ArcSwap<Table>>,
    write_lock: Arc<Mutex<()>>,
    traffic: Traffic,
    // Signalled on every update, for whoever follows the set of hosts (the ACME client).
    changes: Arc<tokio::sync::watch::Sender<()>>,
}

impl Default for RouteTable {
    /// A table with counters of its own (not in any registry).
    fn default() -> Self {
        Self::new(Traffic::default())
    }
}

impl RouteTable {
    /// A table whose routes count into `traffic` (the one [`crate::metrics::Metrics`] exposes).
    pub fn new(traffic: Traffic) -> RouteTable {
        RouteTable {
            current: Arc::default(),
            write_lock: Arc::default(),
            traffic,
            changes: Arc::new(tokio::sync::watch::Sender::new(())),
        }
    }

    fn snapshot(&self) -> Arc<Table> {
        self.current.load_full()
    }

    fn update(&self, f: impl FnOnce(&mut Table)) {
        let _serial = locks::lock(&self.write_lock);
        let mut next = (**self.current.load()).clone();
        f(&mut next);
        self.current.store(Arc::new(next));
        self.changes.send_replace(());
    }

    /// A receiver that sees a change after every update of the table.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<()> {
        self.changes.subscribe()
    }

    /// Every host name the table routes: `<app>.<platform_domain>` for each app, and each
    /// custom domain; sorted.
    pub fn hosts(&self, platform_domain: &str) -> Vec<String> {
        let t = self.snapshot();
        let mut out: Vec<String> = t
            .apps
            .keys()
            .map(|app| format!("{app}.{platform_domain}"))
            .chain(t.domains.keys().cloned())
            .collect();
        out.sort();
        out
    }

    /// Sets an app's target only if the table has none for it yet: used to mark a new or
    /// never-deployed app as unavailable without overwriting what the deploy engine set.
    pub fn set_app_if_absent(&self, app: &str, target: Target) {
        self.update(|t| {
            t.apps
                .entry(app.to_string())
                .or_insert_with(|| self.route(app, target));
        });
    }

    fn route(&self, app: &str, target: Target) -> Route {
        Route {
            app: app.into(),
            target,
            traffic: self.traffic.app(app),
        }
    }

    /// The custom domains currently routed to an app, sorted.
    pub fn domains_of(&self, app: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .snapshot()
            .domains
            .iter()
            .filter(|(_, a)| a.as_str() == app)
            .map(|(d, _)| d.clone())
            .collect();
        out.sort();
        out
    }

    /// Per-app request counters, kept by the router for metrics.
    pub fn counts(&self) -> &Traffic {
        &self.traffic
    }

    /// Sets where an app's requests go. The same replicas as before keep their connection
    /// counts and turn.
    pub fn set_app(&self, app: &str, target: Target) {
        self.update(|t| {
            if let (Some(old), Target::Serving(new)) = (t.apps.get(app), &target)
                && old.target == Target::Serving(new.clone())
            {
                return;
            }
            t.apps.insert(app.to_string(), self.route(app, target));
        });
    }

    /// Forgets an app, its custom domains and its counters.
    pub fn remove_app(&self, app: &str) {
        self.update(|t| {
            t.apps.remove(app);
            t.domains.retain(|_, a| a != app);
        });
        self.traffic.remove(app);
    }

    /// Sets the custom domains of an app (replacing its previous ones).
    pub fn set_domains(&self, app: &str, domains: &[String]) {
        self.update(|t| {
            t.domains.retain(|_, a| a != app);
            for d in domains {
                t.domains.insert(d.to_ascii_lowercase(), app.to_string());
            }
        });
    }

    /// The app and target for a request's host (port already stripped, any case), given the
    /// platform domain: `<app>.<domain>` or a custom domain.
    pub fn lookup(&self, host: &str, platform_domain: &str) -> Option<(String, Target)> {
        self.route_for(host, platform_domain)
            .map(|r| (r.app.to_string(), r.target))
    }

    /// The route for a request's host (port already stripped, any case), given the platform
    /// domain (lowercase): `<app>.<domain>` or a custom domain. The router's per-request
    /// lookup: no lock, no allocation for a lowercase host.
    pub fn route_for(&self, host: &str, platform_domain: &str) -> Option<Route> {
        let host = host.trim_end_matches('.');
        let host: Cow<'_, str> = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(host.to_ascii_lowercase())
        } else {
            Cow::Borrowed(host)
        };
        let t = self.current.load();
        let by_label = host
            .strip_suffix(platform_domain)
            .and_then(|h| h.strip_suffix('.'))
            .filter(|label| !label.contains('.'))
            .and_then(|label| t.apps.get(label));
        match by_label {
            Some(route) => Some(route.clone()),
            None => t.apps.get(t.domains.get(host.as_ref())?).cloned(),
        }
    }

    /// The target of an app by name.
    pub fn get(&self, app: &str) -> Option<Target> {
        self.snapshot().apps.get(app).map(|r| r.target.clone())
    }
}

/// Keeps the route table in step with the apps' records, whoever changes them: an app answers
/// 503 (not 404) from its creation until the deploy engine routes it, its custom domains route
/// from the moment they are added, and everything goes when the app is deleted. The only
/// writer of custom domains and "not serving" targets.
pub struct RouteSync(pub RouteTable);

impl RouteSync {
    /// Fills the table at start from every app's record.
    pub fn load(&self, apps: &Apps) -> crate::domain::Result<()> {
        for inst in apps.routing_records()? {
            self.changed(&inst);
        }
        Ok(())
    }
}

impl AppResources for RouteSync {
    fn create<'a>(
        &'a self,
        app: &'a Instance,
    ) -> futures_util::future::BoxFuture<'a, crate::domain::Result<()>> {
        self.changed(app);
        Box::pin(async { Ok(()) })
    }
    fn remove<'a>(
        &'a self,
        app: &'a Instance,
    ) -> futures_util::future::BoxFuture<'a, crate::domain::Result<()>> {
        self.0.remove_app(&app.name);
        Box::pin(async { Ok(()) })
    }
    fn changed(&self, app: &Instance) {
        self.0.set_domains(&app.name, &app.domains);
        if app.status == InstanceStatus::Deleting {
            // Its containers are about to go: no request may reach them any more.
            self.0.set_app(&app.name, Target::unrouted(app));
        } else {
            self.0.set_app_if_absent(&app.name, Target::unrouted(app));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_route_by_app_label_and_custom_domain_in_any_case() {
        let t = RouteTable::default();
        let a: SocketAddr = "127.0.0.1:1234".parse().unwrap();
        t.set_app("blog", Target::Serving(Backends::one(a)));
        t.set_domains("blog", &["www.Example.org".into()]);
        assert_eq!(
            t.lookup("BLOG.localhost", "localhost"),
            Some(("blog".into(), Target::Serving(Backends::one(a))))
        );
        assert_eq!(t.lookup("www.example.org.", "localhost").unwrap().0, "blog");
        assert_eq!(t.lookup("other.localhost", "localhost"), None);
        assert_eq!(t.lookup("x.blog.localhost", "localhost"), None);
        t.remove_app("blog");
        assert_eq!(t.lookup("www.example.org", "localhost"), None);
    }

    #[test]
    fn set_if_absent_never_overwrites_a_deployed_target() {
        let t = RouteTable::default();
        let a: SocketAddr = "127.0.0.1:1234".parse().unwrap();
        t.set_app("blog", Target::Serving(Backends::one(a)));
        t.set_app_if_absent("blog", Target::Unavailable("created".into()));
        assert_eq!(t.get("blog"), Some(Target::Serving(Backends::one(a))));
        t.set_app_if_absent("shop", Target::Unavailable("created".into()));
        assert_eq!(t.get("shop"), Some(Target::Unavailable("created".into())));
    }

    #[test]
    fn backends_take_turns() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let rr = Backends::with_balance(vec![a, b], Balance::RoundRobin).unwrap();
        let picks: Vec<_> = (0..4).map(|_| rr.pick().0).collect();
        assert_eq!(picks, [a, b, a, b]);
        // Least connections: a replica holding connections is passed over, even in its turn.
        let lc = Backends::new(vec![a, b]).unwrap();
        let (first, _held) = lc.pick();
        assert_eq!(first, a);
        let (second, lease) = lc.pick();
        assert_eq!(second, b);
        drop(lease);
        assert_eq!(
            lc.pick().0,
            b,
            "a's turn, but a holds a connection and b none"
        );
        assert!(Backends::new(vec![]).is_none());
        assert_eq!(
            Target::serving_or(vec![], "stopped"),
            Target::Unavailable("stopped".into())
        );
    }

    fn picks(b: &Backends, k: usize, now: u64) -> Vec<SocketAddr> {
        (0..k).map(|_| b.pick_at(&[], || now).unwrap().0).collect()
    }

    #[test]
    fn a_replica_that_failed_is_passed_over_until_one_connection_probes_it() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        for balance in [Balance::RoundRobin, Balance::LeastConnections] {
            let set = Backends::with_balance(vec![a, b], balance).unwrap();
            let (first, lease) = set.pick_at(&[], || 1).unwrap();
            assert_eq!(first, a);
            assert!(lease.failed_at(1000), "the first failure is a transition");
            let (_, again) = set.pick_at(&[a], || 1000).unwrap();
            drop(again);
            assert!(!lease.failed_at(1000), "a second failure is not");
            drop(lease);
            // Down: every new connection goes to b, in a's turn too.
            assert_eq!(picks(&set, 4, 1000), [b; 4]);
            // Its time past: exactly one connection probes it (one of two picks is a's
            // turn); the others still go to b.
            let later = 1000 + DOWN_MS;
            let mut held: Vec<_> = (0..2)
                .map(|_| set.pick_at(&[], || later).unwrap())
                .collect();
            let probe = held
                .iter()
                .position(|(addr, _)| *addr == a)
                .expect("a's turn");
            let (_, probe_lease) = held.swap_remove(probe);
            drop(held);
            assert_eq!(
                picks(&set, 4, later),
                [b; 4],
                "{balance:?}: one probe at a time"
            );
            // The probe connects: a is up and back in turn.
            assert!(probe_lease.connected(), "coming back is a transition");
            assert!(!probe_lease.connected());
            drop(probe_lease);
            assert!(picks(&set, 4, later).contains(&a));
        }
    }

    #[test]
    fn when_every_replica_is_down_one_is_tried_anyway_and_tried_ones_never() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let set = Backends::new(vec![a, b]).unwrap();
        for addr in [a, b] {
            let (_, lease) = set.pick_at(&[addr], || 1).unwrap();
            assert!(lease.failed_at(10));
        }
        let (first, _) = set.pick_at(&[], || 20).unwrap();
        assert!([a, b].contains(&first));
        assert_eq!(set.pick_at(&[a], || 20).unwrap().0, b);
        assert!(set.pick_at(&[a, b], || 20).is_none());
        // A single replica that is down is still the one to try.
        let one = Backends::one(a);
        let (_, lease) = one.pick_at(&[], || 1).unwrap();
        assert!(lease.failed_at(10));
        drop(lease);
        assert_eq!(picks(&one, 2, 20), [a, a]);
        // On the real clock: a kept connection to a replica that is down serves no more.
        let set = Backends::new(vec![a, b]).unwrap();
        let (addr, lease) = set.pick();
        assert!(lease.failed());
        assert!(!set.is_live(addr));
        assert!(lease.connected());
        assert!(set.is_live(a) && set.is_live(b));
        assert!(!set.is_live("127.0.0.1:3".parse().unwrap()));
        // A new set of addresses (the table updated) starts with every replica up.
        assert_eq!(
            Backends::new(vec![a, b]).unwrap().replicas[0]
                .down_until
                .load(Ordering::Relaxed),
            0
        );
    }

    #[test]
    fn a_route_counts_into_its_apps_counters_until_the_app_is_removed() {
        let t = RouteTable::default();
        let a: SocketAddr = "127.0.0.1:1234".parse().unwrap();
        t.set_app("blog", Target::Serving(Backends::one(a)));
        let route = t.route_for("blog.localhost", "localhost").unwrap();
        route
            .traffic
            .record(200, std::time::Duration::from_millis(1));
        route
            .traffic
            .record(200, std::time::Duration::from_millis(1));
        assert_eq!(t.counts().get("blog"), 2);
        assert_eq!(t.counts().get("none"), 0);
        t.remove_app("blog");
        assert_eq!(t.counts().get("blog"), 0);
    }
}
