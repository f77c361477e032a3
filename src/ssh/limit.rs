//! Failed SSH authentications counted per client address, in memory: an address that keeps
//! offering keys nobody registered is refused for a while.

use crate::locks;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct AuthLimiter {
    window: Duration,
    max_failures: u32,
    // A std Mutex: held for a map lookup only, never across an await.
    addrs: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

/// Bound on remembered addresses, so a flood from many addresses cannot grow memory forever.
const MAX_ADDRS: usize = 100_000;

impl Default for AuthLimiter {
    /// 60 failures in 10 minutes: far above a client whose agent offers a few unregistered keys
    /// before the right one, far below a key scan.
    fn default() -> Self {
        AuthLimiter::new(Duration::from_secs(600), 60)
    }
}

impl AuthLimiter {
    pub fn new(window: Duration, max_failures: u32) -> Self {
        AuthLimiter {
            window,
            max_failures,
            addrs: Mutex::default(),
        }
    }

    /// False when the address has used up its failures in the current window.
    pub fn allowed(&self, addr: IpAddr) -> bool {
        let addrs = locks::lock(&self.addrs);
        !addrs
            .get(&addr)
            .is_some_and(|(start, n)| start.elapsed() < self.window && *n >= self.max_failures)
    }

    pub fn failed(&self, addr: IpAddr) {
        let now = Instant::now();
        let window = self.window;
        let mut addrs = locks::lock(&self.addrs);
        if addrs.len() > MAX_ADDRS {
            addrs.retain(|_, (start, _)| now.duration_since(*start) < window);
        }
        let entry = addrs.entry(addr).or_insert((now, 0));
        if now.duration_since(entry.0) >= window {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_refused_after_its_failures_and_others_are_not() {
        let l = AuthLimiter::new(Duration::from_secs(60), 3);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..3 {
            assert!(l.allowed(a));
            l.failed(a);
        }
        assert!(!l.allowed(a));
        assert!(l.allowed("10.0.0.2".parse().unwrap()));
    }

    #[test]
    fn the_window_expires() {
        let l = AuthLimiter::new(Duration::from_millis(0), 1);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        l.failed(a);
        assert!(l.allowed(a));
    }
}
