//! Image references as Docker reads them (`busybox`, `ghcr.io/org/app:1.2`, `…@sha256:…`) — the
//! one parser for the catalog and for image deploys — the admin's catalog of images users may
//! deploy, and the policy that decides who may deploy what.

use super::Error;
use serde::{Deserialize, Serialize};

/// Docker Hub, where a reference without a registry points.
const DEFAULT_REGISTRY: &str = "docker.io";
/// The longest reference accepted (Docker's limit on a repository name is 255).
const MAX_LEN: usize = 512;

/// A parsed image reference: `[registry/]path[:tag][@digest]`, normalized the way Docker does
/// (`busybox` is `docker.io/library/busybox`). The tag is kept as written: `None` when none was
/// given, so a catalog entry can stand for every tag of a repository; a deploy pins it with
/// [`ImageRef::or_latest`]. Stored as its [`ImageRef::familiar`] text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ImageRef {
    registry: String,
    path: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl ImageRef {
    /// Parses `text`, naming the field `reference` in its errors.
    pub fn parse(text: &str) -> Result<ImageRef, Error> {
        ImageRef::parse_as("reference", text)
    }

    /// Parses `text`, naming `field` (the form's or the body's) in its errors.
    pub fn parse_as(field: &str, text: &str) -> Result<ImageRef, Error> {
        let text = text.trim();
        let bad = |why: &str| {
            Error::invalid(
                field,
                format!(
                    "'{text}' is not an image reference ({why}); expected e.g. busybox:1.36 or registry.example.com/team/app:v2"
                ),
            )
        };
        if text.is_empty() {
            return Err(Error::missing(field));
        }
        if text.len() > MAX_LEN {
            return Err(bad("too long"));
        }
        let (rest, digest) = match text.split_once('@') {
            Some((r, d)) => (r, Some(d)),
            None => (text, None),
        };
        if let Some(d) = digest {
            let (algo, hex) = d
                .split_once(':')
                .ok_or_else(|| bad("a digest is algorithm:hex"))?;
            let algo_ok = !algo.is_empty()
                && algo.split(['+', '.', '_', '-']).all(|p| {
                    !p.is_empty()
                        && p.bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                });
            if !algo_ok || hex.len() < 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad("malformed digest"));
            }
        }
        // A tag follows the last ':' that comes after the last '/' (a registry port comes before).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if tag.is_some_and(|t| !valid_tag(t)) {
            return Err(bad("malformed tag"));
        }
        let (registry, path) = match name.split_once('/') {
            // Docker's rule: the first part is a registry when it looks like a host. (Docker also
            // takes one with capitals for a host; a capital here is refused as a repository name.)
            Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
                (first, rest)
            }
            _ => (DEFAULT_REGISTRY, name),
        };
        if !valid_registry(registry) {
            return Err(bad("malformed registry host"));
        }
        if path.is_empty() || path.len() > 255 || !path.split('/').all(valid_path_component) {
            return Err(bad(
                "repository names are lowercase letters, digits and separators (. _ __ -)",
            ));
        }
        let registry = if registry == "index.docker.io" {
            DEFAULT_REGISTRY
        } else {
            registry
        };
        let path = if registry == DEFAULT_REGISTRY && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        Ok(ImageRef {
            registry: registry.to_string(),
            path,
            tag: tag.map(str::to_string),
            digest: digest.map(str::to_string),
        })
    }

    /// `registry/path`, the repository, fully qualified.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.registry, self.path)
    }

    /// The registry host Docker pulls from, as credentials name it (`docker.io` for Docker Hub,
    /// `127.0.0.1:5000`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The image a deploy pulls: `:latest` when neither a tag nor a digest is written (Docker
    /// would otherwise pull every tag).
    pub fn or_latest(mut self) -> ImageRef {
        if self.is_repository() {
            self.tag = Some("latest".into());
        }
        self
    }

    /// The same repository at another tag (a digest is dropped); errors name the field `tag`.
    pub fn with_tag(&self, tag: &str) -> Result<ImageRef, Error> {
        let tag = tag.trim();
        if !valid_tag(tag) {
            return Err(Error::invalid(
                "tag",
                format!("'{tag}' is not an image tag"),
            ));
        }
        Ok(ImageRef {
            registry: self.registry.clone(),
            path: self.path.clone(),
            tag: Some(tag.into()),
            digest: None,
        })
    }

    /// The tag Docker pulls: the one written, else `latest` unless a digest pins the image.
    pub fn effective_tag(&self) -> Option<&str> {
        match (&self.tag, &self.digest) {
            (Some(t), _) => Some(t),
            (None, None) => Some("latest"),
            (None, Some(_)) => None,
        }
    }

    /// Whether this names a whole repository (no tag, no digest written).
    pub fn is_repository(&self) -> bool {
        self.tag.is_none() && self.digest.is_none()
    }

    /// The short form people write: without `docker.io/` and `library/`.
    pub fn familiar(&self) -> String {
        let repo = if self.registry == DEFAULT_REGISTRY {
            self.path
                .strip_prefix("library/")
                .unwrap_or(&self.path)
                .to_string()
        } else {
            self.repository()
        };
        let mut s = repo;
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }

    /// The fully qualified form, tag as written: what the catalog is keyed by, so `busybox` and
    /// `docker.io/library/busybox` are one entry.
    pub fn key(&self) -> String {
        let mut s = self.repository();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }

    /// Whether a catalog entry (`self`) admits `wanted`: the same repository, and when the entry
    /// names a tag or a digest, that one (`busybox` admits every tag, `busybox:1.36` only 1.36).
    pub fn admits(&self, wanted: &ImageRef) -> bool {
        if self.repository() != wanted.repository() {
            return false;
        }
        if self.is_repository() {
            return true;
        }
        let tag_ok = self.tag.is_none() || self.effective_tag() == wanted.effective_tag();
        let digest_ok = self.digest.is_none() || self.digest == wanted.digest;
        tag_ok && digest_ok
    }
}

impl std::fmt::Display for ImageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.familiar())
    }
}

impl TryFrom<String> for ImageRef {
    type Error = Error;
    fn try_from(s: String) -> Result<ImageRef, Error> {
        ImageRef::parse(&s)
    }
}

impl From<ImageRef> for String {
    fn from(r: ImageRef) -> String {
        r.familiar()
    }
}

/// Letters, digits, `_`, `.` and `-`, not starting with `.` or `-`; at most 128.
fn valid_tag(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && t.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

fn valid_registry(host: &str) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        Some((n, p)) if !n.contains(']') || n.ends_with(']') => (n, Some(p)),
        _ => (host, None),
    };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    let name_ok = if let Some(v6) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !name.is_empty()
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            })
    };
    port_ok && name_ok
}

/// `[a-z0-9]+` joined by `.`, `_`, `__` or runs of `-`.
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        let sep_start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[sep_start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// An image an admin put in the catalog: users may deploy it (see [`ImagePolicy`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CatalogImage {
    pub id: u64,
    /// As [`ImageRef::familiar`] writes it.
    pub reference: String,
    pub description: String,
    pub created_by: super::UserId,
    pub created_at: i64,
}

impl CatalogImage {
    /// The parsed reference (stored references always parse).
    pub fn image_ref(&self) -> Option<ImageRef> {
        ImageRef::parse(&self.reference).ok()
    }
}

/// Which images users who are not admins may deploy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ImagePolicy {
    /// Only images the catalog admits.
    #[default]
    Catalog,
    /// Any image reference.
    Any,
}

impl ImagePolicy {
    pub fn parse(v: &str) -> Option<ImagePolicy> {
        match v.trim() {
            "catalog" => Some(ImagePolicy::Catalog),
            "any" => Some(ImagePolicy::Any),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            ImagePolicy::Catalog => "catalog",
            ImagePolicy::Any => "any",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> ImageRef {
        ImageRef::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn short_names_are_docker_hub_library_images() {
        let b = r("busybox");
        assert_eq!(b.repository(), "docker.io/library/busybox");
        assert_eq!(b.effective_tag(), Some("latest"));
        assert_eq!(b.familiar(), "busybox");
        assert_eq!(
            r("docker.io/library/busybox:1.36").familiar(),
            "busybox:1.36"
        );
        assert_eq!(r("index.docker.io/library/busybox").key(), b.key());
        assert_eq!(r("bitnami/redis:7").repository(), "docker.io/bitnami/redis");
    }

    #[test]
    fn registries_ports_tags_and_digests_are_told_apart() {
        let x = r("127.0.0.1:5000/team/app:v2");
        assert_eq!(x.repository(), "127.0.0.1:5000/team/app");
        assert_eq!(x.effective_tag(), Some("v2"));
        let y = r("localhost:5000/app");
        assert_eq!(y.repository(), "localhost:5000/app");
        assert_eq!(y.effective_tag(), Some("latest"));
        let d = format!("ghcr.io/org/app@sha256:{}", "a".repeat(64));
        let z = r(&d);
        assert_eq!(z.effective_tag(), None);
        assert_eq!(z.familiar(), d);
        assert_eq!(r("[::1]:5000/app:1").repository(), "[::1]:5000/app");
    }

    #[test]
    fn malformed_references_are_refused_naming_the_field() {
        for bad in [
            "",
            "Busybox",
            "busybox:",
            "busybox:-x",
            "a//b",
            "-a/b",
            "a/b-",
            "app@sha256:abc",
            "app@sha256",
            "host:99999999/app",
            "a b",
            "app:v\n1",
            "app:ta\u{0}g",
        ] {
            let e = ImageRef::parse(bad).expect_err(bad);
            assert!(matches!(e.field(), Some("reference")), "{bad}: {e:?}");
        }
        assert!(ImageRef::parse(&"a".repeat(600)).is_err());
    }

    #[test]
    fn a_repository_entry_admits_every_tag_and_a_tagged_one_only_its_tag() {
        let any = r("registry.example.com/team/app");
        assert!(any.admits(&r("registry.example.com/team/app:v1")));
        assert!(any.admits(&r("registry.example.com/team/app")));
        assert!(!any.admits(&r("registry.example.com/team/other:v1")));
        assert!(!any.admits(&r("team/app:v1")));
        let one = r("busybox:1.36");
        assert!(one.admits(&r("docker.io/library/busybox:1.36")));
        assert!(!one.admits(&r("busybox:1.37")));
        assert!(!one.admits(&r("busybox")));
        let latest = r("busybox:latest");
        assert!(latest.admits(&r("busybox")));
        let pinned = r(&format!("app@sha256:{}", "b".repeat(64)));
        assert!(pinned.admits(&r(&format!("app:v3@sha256:{}", "b".repeat(64)))));
        assert!(!pinned.admits(&r("app:v3")));
    }

    #[test]
    fn a_deployed_reference_gets_latest_when_it_has_no_tag_and_keeps_registry_ports() {
        let x = r("127.0.0.1:5000/team/web").or_latest();
        assert_eq!(x.to_string(), "127.0.0.1:5000/team/web:latest");
        assert_eq!(x.registry(), "127.0.0.1:5000");
        assert_eq!(x.repository(), "127.0.0.1:5000/team/web");
        let n = r("nginx:1.27").or_latest();
        assert_eq!(n.to_string(), "nginx:1.27");
        assert_eq!(n.registry(), "docker.io");
        assert_eq!(n.with_tag("1.28").unwrap().to_string(), "nginx:1.28");
        let d = format!("ghcr.io/a/b@sha256:{}", "ab".repeat(32));
        assert_eq!(r(&d).or_latest().to_string(), d);
        assert_eq!(r("localhost/x:1").registry(), "localhost");
        let stored = serde_json::to_string(&x).unwrap();
        assert_eq!(stored, r#""127.0.0.1:5000/team/web:latest""#);
        assert_eq!(serde_json::from_str::<ImageRef>(&stored).unwrap(), x);
    }

    #[test]
    fn a_deploys_malformed_references_and_tags_are_refused_naming_its_fields() {
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
            match ImageRef::parse_as("image", bad) {
                Err(Error::Invalid { field, .. }) => assert_eq!(field, "image", "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
        assert!(matches!(
            ImageRef::parse_as("image", " "),
            Err(Error::Missing { field }) if field == "image"
        ));
        let x = r("x:1");
        for bad in ["a/b", "1@sha256:00", "", "-1"] {
            match x.with_tag(bad) {
                Err(Error::Invalid { field, .. }) => assert_eq!(field, "tag", "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_policy_reads_catalog_or_any() {
        assert_eq!(ImagePolicy::parse("any"), Some(ImagePolicy::Any));
        assert_eq!(ImagePolicy::parse("catalog"), Some(ImagePolicy::Catalog));
        assert_eq!(ImagePolicy::parse("all"), None);
        assert_eq!(ImagePolicy::default(), ImagePolicy::Catalog);
    }
}
