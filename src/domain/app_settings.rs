//! What an app's owner may set about it, as parsed values: the branch that deploys, the path the
//! health check asks for, config var names, and the memory and CPU limits. Once parsed, never
//! checked again; the records hold these types.

use super::Error;
use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! string_newtype {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }
        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
        impl TryFrom<String> for $name {
            type Error = Error;
            fn try_from(s: String) -> Result<Self, Error> {
                $name::parse(&s)
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
    };
}

/// The branch whose pushes deploy an app: a plain git branch name (`main`, `release/prod`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DeployBranch(String);
string_newtype!(DeployBranch);

impl DeployBranch {
    pub fn parse(b: &str) -> Result<DeployBranch, Error> {
        let ok = !b.is_empty()
            && b.len() <= 200
            && !b.starts_with(['-', '/', '.'])
            && !b.ends_with(['/', '.'])
            && !b.contains("..")
            && !b.contains("//")
            && !b.ends_with(".lock")
            && b.bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"-_./".contains(&c));
        if !ok {
            return Err(Error::invalid(
                "deploy_branch",
                "deploy_branch must be a branch name like main or release/prod",
            ));
        }
        Ok(DeployBranch(b.to_string()))
    }
}

impl Default for DeployBranch {
    fn default() -> Self {
        DeployBranch("main".into())
    }
}

/// The path the health check requests (`/healthz`): absolute, no spaces or control characters,
/// so it fits on an HTTP request line as it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HealthPath(String);
string_newtype!(HealthPath);

impl HealthPath {
    pub fn parse(p: &str) -> Result<HealthPath, Error> {
        if !p.starts_with('/')
            || p.len() > 512
            || p.bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(Error::invalid(
                "health_path",
                "health_path must start with '/' and contain no spaces, e.g. /healthz",
            ));
        }
        Ok(HealthPath(p.to_string()))
    }
}

impl Default for HealthPath {
    fn default() -> Self {
        HealthPath("/".into())
    }
}

/// A config var name: shell-style (`DATABASE_URL`), and not one Scalefog sets itself.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ConfigKey(String);
string_newtype!(ConfigKey);

impl ConfigKey {
    pub fn parse(key: &str) -> Result<ConfigKey, Error> {
        let ok = !key.is_empty()
            && key.len() <= 256
            && !key.as_bytes()[0].is_ascii_digit()
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !ok {
            return Err(Error::invalid(
                "env",
                format!(
                    "invalid config var name '{key}': use letters, digits and '_', not starting with a digit"
                ),
            ));
        }
        if key == "PORT" {
            return Err(Error::invalid(
                "env",
                "PORT is reserved: Scalefog sets it to the port the app must listen on",
            ));
        }
        Ok(ConfigKey(key.to_string()))
    }
}

/// Lets a map of config vars be looked up by `&str`.
impl std::borrow::Borrow<str> for ConfigKey {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// One change of a config var, as a transport read it; parsed by the deploy engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigChange {
    pub key: String,
    pub value: ConfigValue,
    /// `Some(true)` marks the name secret (its value is masked from then on), `Some(false)`
    /// unmarks it, `None` leaves it as it is.
    pub secret: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigValue {
    Set(String),
    Unset,
    /// Only the secret mark changes.
    Keep,
}

impl ConfigChange {
    pub fn set(key: impl Into<String>, value: impl Into<String>) -> ConfigChange {
        ConfigChange {
            key: key.into(),
            value: ConfigValue::Set(value.into()),
            secret: None,
        }
    }
    pub fn unset(key: impl Into<String>) -> ConfigChange {
        ConfigChange {
            key: key.into(),
            value: ConfigValue::Unset,
            secret: None,
        }
    }
}

/// A config var value: text without NUL (it becomes an environment variable), at most 32 KiB.
pub fn check_config_value(key: &ConfigKey, value: &str) -> Result<(), Error> {
    if value.len() > 32 * 1024 || value.contains('\0') {
        return Err(Error::invalid(
            "env",
            format!("the value of {key} must be at most 32 KiB of text"),
        ));
    }
    Ok(())
}

/// A memory limit in MiB: from 16 MiB to 1 TiB.
pub fn check_memory_mb(m: u32) -> Result<u32, Error> {
    if !(16..=1_048_576).contains(&m) {
        return Err(Error::invalid(
            "memory",
            "memory must be a whole number of MiB from 16 to 1048576",
        ));
    }
    Ok(m)
}

/// A CPU limit in cores: from a hundredth of a core to 256.
pub fn check_cpu(c: f64) -> Result<f64, Error> {
    if !(c.is_finite() && (0.01..=256.0).contains(&c)) {
        return Err(Error::invalid(
            "cpu",
            "cpu must be a number of cores from 0.01 to 256",
        ));
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_var_names_are_checked_and_port_is_reserved() {
        assert!(ConfigKey::parse("DATABASE_URL").is_ok());
        assert!(ConfigKey::parse("_x1").is_ok());
        for bad in ["", "1X", "A-B", "A B", "PORT"] {
            assert!(ConfigKey::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn settings_out_of_range_name_their_field() {
        let field = |e: Error| e.field().unwrap_or_default().to_string();
        assert_eq!(field(check_memory_mb(8).unwrap_err()), "memory");
        assert_eq!(field(check_cpu(f64::NAN).unwrap_err()), "cpu");
        assert_eq!(field(HealthPath::parse("/a b").unwrap_err()), "health_path");
        for b in ["-x", "a..b", "x.lock", "a b", "/a"] {
            assert_eq!(
                field(DeployBranch::parse(b).unwrap_err()),
                "deploy_branch",
                "{b}"
            );
        }
        assert!(check_memory_mb(512).is_ok());
        assert!(check_cpu(0.5).is_ok());
        assert!(HealthPath::parse("/healthz").is_ok());
        assert!(DeployBranch::parse("release/prod").is_ok());
    }

    #[test]
    fn parsed_values_are_stored_as_plain_strings_and_checked_when_read_back() {
        let b = DeployBranch::parse("release/prod").unwrap();
        assert_eq!(serde_json::to_string(&b).unwrap(), "\"release/prod\"");
        assert!(serde_json::from_str::<DeployBranch>("\"a..b\"").is_err());
        let env = std::collections::BTreeMap::from([(
            ConfigKey::parse("GREETING").unwrap(),
            "hi".to_string(),
        )]);
        let json = serde_json::to_string(&env).unwrap();
        assert_eq!(json, r#"{"GREETING":"hi"}"#);
        let back: std::collections::BTreeMap<ConfigKey, String> =
            serde_json::from_str(&json).unwrap();
        assert_eq!(back.get("GREETING").map(String::as_str), Some("hi"));
    }
}
