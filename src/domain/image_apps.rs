//! Image apps: what an app deploys instead of a git push (an [`ImageRef`] and the registry login
//! it is pulled with), and the app's deploy hook (a secret URL and an HMAC key for CI).

use super::{Error, ImageRef, Result};
use serde::{Deserialize, Serialize};

/// A registry login as the user gave it (clear text): it lives only for one request and one
/// pull; the store keeps [`StoredLogin`].
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryLogin {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for RegistryLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RegistryLogin({}, ..)", self.username)
    }
}

/// A registry login at rest: the password sealed (see `seal`), bound to the app and registry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredLogin {
    /// The registry host it is for (`docker.io` for Docker Hub).
    pub registry: String,
    pub username: String,
    pub sealed_password: String,
}

impl StoredLogin {
    /// What the password is sealed under: a sealed value copied elsewhere does not open.
    pub fn seal_context(app: &str, registry: &str) -> String {
        format!("registry:{app}:{registry}")
    }
}

/// What an image app deploys: its image and the login to pull it with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImageSource {
    pub app: String,
    pub image: ImageRef,
    #[serde(default)]
    pub login: Option<StoredLogin>,
}

/// An app's deploy hook: the hash of its secret URL's token, and its HMAC key (sealed, since
/// checking a signature needs the key itself).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeployHook {
    pub app: String,
    pub token_hash: String,
    pub sealed_secret: String,
    pub created_by: String,
    pub created_at: i64,
}

impl DeployHook {
    pub fn seal_context(app: &str) -> String {
        format!("hook:{app}")
    }
}

/// Parses a `primary`/`port` value: a TCP port 1–65535.
pub fn parse_port(field: &str, value: &str) -> Result<u16> {
    value
        .trim()
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| Error::invalid(field, format!("'{field}' must be a port number (1-65535)")))
}

/// The container port of the panel's `ports` mapping: `8080`, `80:8080` (host:container) or
/// `8080/tcp`; several separated by commas, the first counts.
pub fn container_port_of_mapping(ports: &str) -> Result<u16> {
    let first = ports.split(',').next().unwrap_or("").trim();
    let first = first.strip_suffix("/tcp").unwrap_or(first);
    let container = first.rsplit(':').next().unwrap_or(first);
    parse_port("ports", container)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_panels_port_mapping_names_the_container_port() {
        assert_eq!(container_port_of_mapping("8080").unwrap(), 8080);
        assert_eq!(
            container_port_of_mapping("80:8080, 443:8443").unwrap(),
            8080
        );
        assert_eq!(container_port_of_mapping("9000/tcp").unwrap(), 9000);
        assert!(container_port_of_mapping("http").is_err());
        assert!(parse_port("primary", "0").is_err());
    }
}
