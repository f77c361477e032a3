//! The routing table: which upstream serves each app host, shared by the deploy engine (which
//! writes it when a release switches or an app stops) and the app router (which reads it on
//! every request). Lookups are lock-free reads of an immutable snapshot; an update replaces the
//! snapshot at once, so a request sees either the old or the new route, never a mix.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

/// Where requests for an app go right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Forward to this address (the current release's published port).
    Serving(SocketAddr),
    /// The app exists but nothing serves it; the text is its state (`stopped`, `created`, ...).
    Unavailable(String),
}

#[derive(Debug, Clone, Default)]
struct Table {
    /// app name → target
    apps: HashMap<String, Target>,
    /// custom domain (lowercase) → app name
    domains: HashMap<String, String>,
}

#[derive(Clone, Default)]
pub struct RouteTable {
    // Readers clone the Arc under a short read lock and then work on the snapshot; writers build a
    // new table and swap it in.
    current: Arc<RwLock<Arc<Table>>>,
}

impl RouteTable {
    fn snapshot(&self) -> Arc<Table> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn update(&self, f: impl FnOnce(&mut Table)) {
        let mut guard = self.current.write().unwrap_or_else(|p| p.into_inner());
        let mut next = (**guard).clone();
        f(&mut next);
        *guard = Arc::new(next);
    }

    /// Sets where an app's requests go.
    pub fn set_app(&self, app: &str, target: Target) {
        self.update(|t| {
            t.apps.insert(app.to_string(), target);
        });
    }

    /// Forgets an app and its custom domains.
    pub fn remove_app(&self, app: &str) {
        self.update(|t| {
            t.apps.remove(app);
            t.domains.retain(|_, a| a != app);
        });
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
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let t = self.snapshot();
        let app = match host
            .strip_suffix(platform_domain)
            .and_then(|h| h.strip_suffix('.'))
        {
            Some(label) if !label.contains('.') && t.apps.contains_key(label) => label.to_string(),
            _ => t.domains.get(&host)?.clone(),
        };
        let target = t.apps.get(&app)?.clone();
        Some((app, target))
    }

    /// The target of an app by name.
    pub fn get(&self, app: &str) -> Option<Target> {
        self.snapshot().apps.get(app).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_route_by_app_label_and_custom_domain_in_any_case() {
        let t = RouteTable::default();
        let a: SocketAddr = "127.0.0.1:1234".parse().unwrap();
        t.set_app("blog", Target::Serving(a));
        t.set_domains("blog", &["www.Example.org".into()]);
        assert_eq!(
            t.lookup("BLOG.localhost", "localhost"),
            Some(("blog".into(), Target::Serving(a)))
        );
        assert_eq!(t.lookup("www.example.org.", "localhost").unwrap().0, "blog");
        assert_eq!(t.lookup("other.localhost", "localhost"), None);
        assert_eq!(t.lookup("x.blog.localhost", "localhost"), None);
        t.remove_app("blog");
        assert_eq!(t.lookup("www.example.org", "localhost"), None);
    }
}
