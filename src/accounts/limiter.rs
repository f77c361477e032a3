//! Failed-login rate limiting, per username and per client address, in memory.
//! A restart forgets the counts; that is acceptable for slowing down online guessing.
//!
//! The rule: ten failures for one username in 15 minutes lock that username, except from an
//! address the account signed in from successfully in the last 30 days; fifty failures from one
//! address lock that address for every username. So guessing a victim's password from
//! elsewhere cannot lock the victim out of their own usual addresses.

use crate::domain::Error;
use crate::locks;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct LoginLimiter {
    window: Duration,
    per_user: u32,
    per_addr: u32,
    // A std Mutex: held for a map lookup only, never across an await.
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    users: HashMap<String, Window>,
    addrs: HashMap<IpAddr, Window>,
    /// Where each account last signed in successfully from, and when.
    trusted: HashMap<(String, IpAddr), Instant>,
}

/// How long a successful sign-in makes its address exempt from its username's lock.
const TRUST_FOR: Duration = Duration::from_secs(30 * 24 * 3600);

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    failures: u32,
}

/// Bound on remembered keys, so a flood of random usernames cannot grow memory without end.
const MAX_KEYS: usize = 100_000;

impl Default for LoginLimiter {
    fn default() -> Self {
        LoginLimiter::new(Duration::from_secs(15 * 60), 10, 50)
    }
}

impl LoginLimiter {
    pub fn new(window: Duration, per_user: u32, per_addr: u32) -> Self {
        LoginLimiter {
            window,
            per_user,
            per_addr,
            state: Mutex::default(),
        }
    }

    /// Refuses when either the username or the address has used up its failures.
    pub fn check(&self, username: &str, addr: IpAddr) -> Result<(), Error> {
        let now = Instant::now();
        let st = locks::lock(&self.state);
        let over = |w: Option<&Window>, max: u32| {
            w.is_some_and(|w| now.duration_since(w.start) < self.window && w.failures >= max)
        };
        let trusted = st
            .trusted
            .get(&(username.to_string(), addr))
            .is_some_and(|at| now.duration_since(*at) < TRUST_FOR);
        let user_locked = !trusted && over(st.users.get(username), self.per_user);
        if user_locked || over(st.addrs.get(&addr), self.per_addr) {
            return Err(Error::RateLimited(format!(
                "too many failed sign-in attempts; try again in {} minutes",
                self.window.as_secs().div_ceil(60)
            )));
        }
        Ok(())
    }

    pub fn failed(&self, username: &str, addr: IpAddr) {
        let now = Instant::now();
        let window = self.window;
        let mut st = locks::lock(&self.state);
        if st.users.len() > MAX_KEYS || st.addrs.len() > MAX_KEYS {
            st.users.retain(|_, w| now.duration_since(w.start) < window);
            st.addrs.retain(|_, w| now.duration_since(w.start) < window);
        }
        let bump = |w: &mut Window| {
            if now.duration_since(w.start) >= window {
                *w = Window {
                    start: now,
                    failures: 0,
                };
            }
            w.failures += 1;
        };
        bump(st.users.entry(username.to_string()).or_insert(Window {
            start: now,
            failures: 0,
        }));
        bump(st.addrs.entry(addr).or_insert(Window {
            start: now,
            failures: 0,
        }));
    }

    /// A right password from `addr`: the username's failures are forgotten and the address is
    /// trusted for it (see the module doc).
    pub fn succeeded(&self, username: &str, addr: IpAddr) {
        let now = Instant::now();
        let mut st = locks::lock(&self.state);
        st.users.remove(username);
        if st.trusted.len() > MAX_KEYS {
            st.trusted
                .retain(|_, at| now.duration_since(*at) < TRUST_FOR);
            if st.trusted.len() > MAX_KEYS {
                st.trusted.clear();
            }
        }
        st.trusted.insert((username.to_string(), addr), now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eleventh_attempt_on_one_username_is_refused_from_any_address() {
        let l = LoginLimiter::new(Duration::from_secs(60), 10, 1000);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        for _ in 0..10 {
            l.check("alice", a).unwrap();
            l.failed("alice", a);
        }
        assert!(matches!(l.check("alice", b), Err(Error::RateLimited(_))));
        assert!(l.check("bob", b).is_ok());
    }

    #[test]
    fn one_address_guessing_many_usernames_is_refused() {
        let l = LoginLimiter::new(Duration::from_secs(60), 10, 5);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        for i in 0..5 {
            l.failed(&format!("user{i}"), a);
        }
        assert!(l.check("fresh", a).is_err());
        assert!(l.check("fresh", "10.0.0.2".parse().unwrap()).is_ok());
    }

    #[test]
    fn the_window_expires() {
        let l = LoginLimiter::new(Duration::from_millis(0), 1, 1);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        l.failed("x", a);
        assert!(l.check("x", a).is_ok());
    }

    #[test]
    fn guessing_from_elsewhere_does_not_lock_the_owner_out_of_an_address_they_signed_in_from() {
        let l = LoginLimiter::new(Duration::from_secs(60), 10, 1000);
        let home: IpAddr = "192.0.2.1".parse().unwrap();
        let attacker: IpAddr = "198.51.100.7".parse().unwrap();
        l.check("victim", home).unwrap();
        l.succeeded("victim", home);
        for _ in 0..10 {
            l.check("victim", attacker).unwrap();
            l.failed("victim", attacker);
        }
        assert!(matches!(
            l.check("victim", attacker),
            Err(Error::RateLimited(_))
        ));
        assert!(
            l.check("victim", home).is_ok(),
            "the owner's own address is not locked"
        );
        let other: IpAddr = "203.0.113.9".parse().unwrap();
        assert!(
            matches!(l.check("victim", other), Err(Error::RateLimited(_))),
            "a new address still is"
        );
    }
}
