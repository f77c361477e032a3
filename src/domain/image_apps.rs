//! Image apps: an image reference to deploy instead of a git push, the registry login it is
//! pulled with, and the app's deploy hook (a secret URL and an HMAC key for CI).

use super::{Error, Result};
use serde::{Deserialize, Serialize};

/// Longest image reference accepted (Docker's own limit on a name is 255 per component).
const MAX_REFERENCE: usize = 512;

/// A parsed image reference (`[registry/]repository[:tag][@digest]`), always with a tag or a
/// digest: a reference without either means `:latest` (Docker would pull every tag).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ImageRef {
    text: String,
    /// Byte offset of the `/` ending the registry host, when the first component is one.
    registry_end: Option<usize>,
    /// Byte offset where `:tag` or `@digest` starts.
    name_end: usize,
}

impl ImageRef {
    pub fn parse(s: &str) -> Result<ImageRef> {
        let bad =
            |why: &str| Error::invalid("image", format!("'{s}' is not an image reference: {why}"));
        let s = s.trim();
        if s.is_empty() {
            return Err(Error::missing("image"));
        }
        if s.len() > MAX_REFERENCE {
            return Err(bad("too long"));
        }
        if s.starts_with(['-', '/', '.', ':', '@']) || s.ends_with(['/', ':', '@']) {
            return Err(bad("it must start and end with a letter or digit"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (r, Some(d)),
            None => (s, None),
        };
        if let Some(d) = digest {
            let ok = d.split_once(':').is_some_and(|(alg, hex)| {
                !alg.is_empty()
                    && alg
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                    && hex.len() >= 32
                    && hex.bytes().all(|b| b.is_ascii_hexdigit())
            });
            if !ok {
                return Err(bad("the digest must be like sha256:<hex>"));
            }
        }
        // A tag is after the last ':' that follows the last '/' (a registry's port is not one).
        let last_slash = rest.rfind('/');
        let tag_at = rest
            .rfind(':')
            .filter(|&c| last_slash.is_none_or(|sl| c > sl));
        let name = &rest[..tag_at.unwrap_or(rest.len())];
        if let Some(c) = tag_at {
            let tag = &rest[c + 1..];
            let ok = !tag.is_empty()
                && tag.len() <= 128
                && !tag.starts_with(['.', '-'])
                && tag
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
            if !ok {
                return Err(bad("a tag is letters, digits, '_', '.' and '-'"));
            }
        }
        let components: Vec<&str> = name.split('/').collect();
        let has_registry = components.len() > 1
            && (components[0].contains(['.', ':']) || components[0] == "localhost");
        let path = if has_registry {
            let (host, port) = match components[0].split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (components[0], None),
            };
            let host_ok = !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'));
            let port_ok = port.is_none_or(|p| {
                !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit())
            });
            if !(host_ok && port_ok) {
                return Err(bad("the registry host is not a host[:port]"));
            }
            &components[1..]
        } else {
            &components[..]
        };
        for c in path {
            let ok = !c.is_empty()
                && c.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
                })
                && c.starts_with(|ch: char| ch.is_ascii_alphanumeric())
                && c.ends_with(|ch: char| ch.is_ascii_alphanumeric());
            if !ok {
                return Err(bad(
                    "repository names are lowercase letters, digits and . _ -",
                ));
            }
        }
        let mut text = s.to_string();
        if tag_at.is_none() && digest.is_none() {
            text.push_str(":latest");
        }
        Ok(ImageRef {
            registry_end: has_registry.then(|| components[0].len()),
            name_end: name.len(),
            text,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The registry host (`127.0.0.1:5000`, `ghcr.io`); Docker Hub when `None`.
    pub fn registry(&self) -> Option<&str> {
        self.registry_end.map(|e| &self.text[..e])
    }

    /// The reference without its tag or digest.
    pub fn repository(&self) -> &str {
        &self.text[..self.name_end]
    }

    /// The same repository at another tag.
    pub fn with_tag(&self, tag: &str) -> Result<ImageRef> {
        let r = ImageRef::parse(&format!("{}:{}", self.repository(), tag.trim()))
            .map_err(|_| Error::invalid("tag", format!("'{tag}' is not an image tag")))?;
        if r.repository() != self.repository() || tag.contains(['/', '@', ':']) {
            return Err(Error::invalid(
                "tag",
                format!("'{tag}' is not an image tag"),
            ));
        }
        Ok(r)
    }
}

impl std::fmt::Display for ImageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl TryFrom<String> for ImageRef {
    type Error = Error;
    fn try_from(s: String) -> Result<ImageRef> {
        ImageRef::parse(&s)
    }
}

impl From<ImageRef> for String {
    fn from(r: ImageRef) -> String {
        r.text
    }
}

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

/// The registry host Docker pulls `image` from, as credentials name it.
pub fn registry_of(image: &ImageRef) -> &str {
    image.registry().unwrap_or("docker.io")
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
    fn references_get_latest_when_they_have_no_tag_and_keep_registry_ports() {
        let r = ImageRef::parse("127.0.0.1:5000/team/web").unwrap();
        assert_eq!(r.as_str(), "127.0.0.1:5000/team/web:latest");
        assert_eq!(r.registry(), Some("127.0.0.1:5000"));
        assert_eq!(r.repository(), "127.0.0.1:5000/team/web");
        let r = ImageRef::parse("nginx:1.27").unwrap();
        assert_eq!(r.registry(), None);
        assert_eq!(registry_of(&r), "docker.io");
        assert_eq!(r.with_tag("1.28").unwrap().as_str(), "nginx:1.28");
        let d = format!("ghcr.io/a/b@sha256:{}", "ab".repeat(32));
        assert_eq!(ImageRef::parse(&d).unwrap().as_str(), d);
        assert_eq!(
            ImageRef::parse("localhost/x:1").unwrap().registry(),
            Some("localhost")
        );
    }

    #[test]
    fn malformed_references_and_tags_are_refused_naming_the_field() {
        for bad in [
            "-x",
            "UPPER/case",
            "a b",
            "x:",
            "x:-1",
            "x@sha256:zz",
            "/x",
            "a//b",
            "x:a/b",
            "reg.io/$(id)",
        ] {
            match ImageRef::parse(bad) {
                Err(Error::Invalid { field, .. }) => assert_eq!(field, "image", "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
        assert!(matches!(ImageRef::parse(" "), Err(Error::Missing { .. })));
        let r = ImageRef::parse("x:1").unwrap();
        assert!(r.with_tag("a/b").is_err());
        assert!(r.with_tag("1@sha256:00").is_err());
        assert!(r.with_tag("").is_err());
    }

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
