//! An app's persistent volumes: a name and the path it is mounted at in every process of the
//! app. What backs a volume is the runtime's business (a named Docker volume); never a host path.

use super::Error;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Most volumes one app may have.
pub const MAX_VOLUMES_PER_APP: usize = 10;

/// One volume of an app, as stored in its record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppVolume {
    pub name: VolumeName,
    pub path: MountPath,
    pub created_at: i64,
}

/// A volume's name: 1–32 lowercase letters, digits and inner hyphens, starting with a letter.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct VolumeName(String);

impl VolumeName {
    pub fn parse(s: &str) -> Result<VolumeName, Error> {
        let s = s.trim();
        let ok = (1..=32).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && !s.ends_with('-')
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(VolumeName(s.to_string()))
        } else {
            Err(Error::invalid(
                "name",
                format!(
                    "'{s}' is not a volume name: use 1-32 lowercase letters, digits and inner \
                     hyphens, starting with a letter (like 'data')"
                ),
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where a volume is mounted: an absolute path without `.` or `..` parts, not `/` and not under
/// the directories the container's system owns (`/proc`, `/sys`, `/dev`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MountPath(String);

impl MountPath {
    pub fn parse(s: &str) -> Result<MountPath, Error> {
        let bad =
            |why: &str| Error::invalid("path", format!("'{s}' cannot be a volume's path: {why}"));
        let trimmed = s.trim();
        if !trimmed.starts_with('/') {
            return Err(bad("it must be absolute, like /data"));
        }
        if trimmed.len() > 200 {
            return Err(bad("longer than 200 characters"));
        }
        let parts: Vec<&str> = trimmed.split('/').filter(|p| !p.is_empty()).collect();
        if parts.is_empty() {
            return Err(bad("the root cannot be a volume"));
        }
        if parts.iter().any(|p| *p == "." || *p == "..") {
            return Err(bad("'.' and '..' are not allowed"));
        }
        if parts
            .iter()
            .any(|p| p.chars().any(|c| c.is_control() || c == ':' || c == ','))
        {
            return Err(bad("control characters, ':' and ',' are not allowed"));
        }
        if ["proc", "sys", "dev"].contains(&parts[0]) {
            return Err(bad("/proc, /sys and /dev belong to the container's system"));
        }
        Ok(MountPath(format!("/{}", parts.join("/"))))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Whether one of the two paths is the other or lies inside it (Docker refuses both).
    pub fn overlaps(&self, other: &MountPath) -> bool {
        let inside = |a: &str, b: &str| a == b || a.starts_with(&format!("{b}/"));
        inside(&self.0, &other.0) || inside(&other.0, &self.0)
    }
}

macro_rules! string_newtype {
    ($t:ident) => {
        impl TryFrom<String> for $t {
            type Error = Error;
            fn try_from(s: String) -> Result<Self, Error> {
                $t::parse(&s)
            }
        }
        impl From<$t> for String {
            fn from(v: $t) -> String {
                v.0
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}
string_newtype!(VolumeName);
string_newtype!(MountPath);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_names_are_short_lowercase_labels() {
        assert_eq!(VolumeName::parse(" data ").unwrap().as_str(), "data");
        VolumeName::parse("pg-data2").unwrap();
        for bad in [
            "",
            "Data",
            "2data",
            "data-",
            "da_ta",
            "a/b",
            &"a".repeat(33),
        ] {
            assert!(VolumeName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn mount_paths_are_absolute_normalised_and_outside_the_system_dirs() {
        assert_eq!(MountPath::parse("/data/").unwrap().as_str(), "/data");
        assert_eq!(
            MountPath::parse("//var//lib/x").unwrap().as_str(),
            "/var/lib/x"
        );
        for bad in [
            "data",
            "/",
            "/a/../etc",
            "/./a",
            "/proc/x",
            "/sys",
            "/dev/shm",
            "/a:b",
            "/a,b",
        ] {
            let e = MountPath::parse(bad).unwrap_err();
            assert_eq!(e.field(), Some("path"), "{bad:?}");
        }
    }

    #[test]
    fn nested_paths_overlap_and_siblings_do_not() {
        let p = |s| MountPath::parse(s).unwrap();
        assert!(p("/data").overlaps(&p("/data/cache")));
        assert!(p("/data/cache").overlaps(&p("/data")));
        assert!(p("/data").overlaps(&p("/data")));
        assert!(!p("/data").overlaps(&p("/database")));
    }
}
