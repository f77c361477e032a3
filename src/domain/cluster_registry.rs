//! The cluster's image registry: where Scalefog pushes each release image once the cluster is
//! on, so that every node pulls it (with the registry login the services carry) instead of
//! having it streamed. The password is kept sealed; nothing shows it again.

use super::{Error, Result};
use serde::{Deserialize, Serialize};

/// The registry record (one row).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClusterRegistry {
    /// `host[:port]` every node pulls from; image names start with it.
    pub address: String,
    /// `host[:port]` this machine's engine pushes to, when it reaches the same registry by
    /// another name (`127.0.0.1:5000` for one running here: Docker speaks plain HTTP to loopback
    /// registries without any set-up).
    #[serde(default)]
    pub push_address: Option<String>,
    /// The login, when the registry wants one.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub sealed_password: Option<String>,
    pub set_by: String,
    pub set_at: i64,
}

impl ClusterRegistry {
    /// What the password is sealed under: a sealed value copied elsewhere does not open.
    pub fn seal_context(address: &str) -> String {
        format!("cluster-registry:{address}")
    }

    /// Where this machine's engine pushes.
    pub fn push_to(&self) -> &str {
        self.push_address.as_deref().unwrap_or(&self.address)
    }
}

/// Checks a registry address as Docker reads the first part of an image name: a host (with a
/// dot or a port, or `localhost`), no scheme, no path.
pub fn parse_registry_address(field: &str, value: &str) -> Result<String> {
    let v = value.trim();
    let bad = || {
        Error::invalid(
            field,
            format!(
                "'{v}' is not a registry address: host[:port], like registry.example.com or \
                 10.0.0.1:5000 (no scheme, no path)"
            ),
        )
    };
    if v.is_empty() {
        return Err(Error::missing(field));
    }
    let (host, port) = match v.rsplit_once(':') {
        _ if v.ends_with(']') => (v, None),
        Some((h, p)) if !h.contains(']') || h.ends_with(']') => (h, Some(p)),
        _ => (v, None),
    };
    if let Some(p) = port
        && p.parse::<u16>().map_or(true, |p| p == 0)
    {
        return Err(bad());
    }
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-[]:".contains(c))
        && !host.starts_with(['.', '-'])
        // Docker takes a first part without a dot or port for a Docker Hub user.
        && (host.contains('.') || host.starts_with('[') || port.is_some() || host == "localhost");
    if !host_ok {
        return Err(bad());
    }
    Ok(v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registry_address_is_a_host_with_an_optional_port() {
        for ok in [
            "10.231.0.1:5000",
            "registry.example.com",
            "localhost:5000",
            "[fd00::1]:5000",
        ] {
            assert_eq!(parse_registry_address("address", ok).unwrap(), ok);
        }
        for bad in [
            "http://r.example.com",
            "r.example.com/path",
            "myuser",
            "r.example.com:0",
            "r.example.com:x",
            "UPPER.example.com",
            "-r.example.com",
        ] {
            assert!(
                parse_registry_address("address", bad).is_err(),
                "{bad} accepted"
            );
        }
        assert!(matches!(
            parse_registry_address("address", " "),
            Err(Error::Missing { .. })
        ));
    }
}
