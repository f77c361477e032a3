//! A custom domain name as a user may attach it to an app.

use super::Error;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A fully qualified DNS name (`www.example.org`): lowercase ASCII, at least two labels, each
/// 1-63 characters of letters, digits and inner hyphens, 253 characters at most. IP addresses,
/// wildcards and single labels are refused: a route needs a name the router can match exactly.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DomainName(String);

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl DomainName {
    pub fn parse(s: &str) -> Result<Self, Error> {
        let bad = |why: &str| {
            Error::invalid(
                "domain",
                format!("'{}' is not a valid domain name: {why}", s.trim()),
            )
        };
        let d = s.trim().trim_end_matches('.').to_ascii_lowercase();
        if d.is_empty() {
            return Err(Error::missing("domain"));
        }
        if !d.is_ascii() {
            return Err(bad(
                "use the ASCII (punycode, xn--) form of internationalised names",
            ));
        }
        if d.len() > 253 {
            return Err(bad("longer than 253 characters"));
        }
        if d.contains('*') {
            return Err(bad("wildcards cannot be added; add each name"));
        }
        let labels: Vec<&str> = d.split('.').collect();
        if labels.len() < 2 {
            return Err(bad("expected at least two labels, like example.org"));
        }
        for l in &labels {
            if !is_dns_label(l) {
                return Err(bad(
                    "each label must be 1-63 letters, digits or inner hyphens",
                ));
            }
        }
        if labels
            .last()
            .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(bad("IP addresses cannot be used as domains"));
        }
        Ok(DomainName(d))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// Whether this name is the platform domain or one of its subdomains (`<x>.<platform>`),
    /// which are the platform's to hand out, never a user's to claim.
    pub fn is_under(&self, platform: &str) -> bool {
        let platform = platform.trim_end_matches('.').to_ascii_lowercase();
        self.0 == platform
            || self
                .0
                .strip_suffix(&platform)
                .is_some_and(|rest| rest.ends_with('.'))
    }
}

/// Whether `l` is one DNS label: 1-63 ASCII letters, digits or inner hyphens.
pub fn is_dns_label(l: &str) -> bool {
    (1..=63).contains(&l.len())
        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !l.starts_with('-')
        && !l.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_lowercased_and_lose_a_trailing_dot() {
        assert_eq!(
            DomainName::parse(" WWW.Example.org. ").unwrap().as_str(),
            "www.example.org"
        );
        assert!(DomainName::parse("xn--bcher-kva.example").is_ok());
        assert!(DomainName::parse("a-b.c0.io").is_ok());
    }

    #[test]
    fn malformed_domains_are_refused() {
        for bad in [
            "",
            "localhost",
            "exa mple.org",
            "-a.org",
            "a-.org",
            "a..org",
            "*.example.org",
            "127.0.0.1",
            "bücher.de",
            "a_b.org",
            &format!("{}.org", "a".repeat(64)),
            &format!("{}org", "a.".repeat(130)),
        ] {
            assert!(DomainName::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn platform_subdomains_are_recognised() {
        let d = DomainName::parse("blog.apps.example.com").unwrap();
        assert!(d.is_under("apps.example.com"));
        assert!(d.is_under("example.com"));
        assert!(!d.is_under("ple.com"));
        assert!(!d.is_under("other.com"));
    }
}
