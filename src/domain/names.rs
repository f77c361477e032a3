//! Parsed newtypes: once a value is one of these, it has been validated and is never checked again.

use super::Error;
use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! string_newtype {
    ($name:ident) => {
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
            pub fn into_string(self) -> String {
                self.0
            }
        }
    };
}

/// `^[a-z][a-z0-9-]{1,31}$`
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Username(String);
string_newtype!(Username);

impl Username {
    pub fn parse(s: &str) -> Result<Self, Error> {
        let ok = (2..=32).contains(&s.len())
            && s.as_bytes()[0].is_ascii_lowercase()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Username(s.to_string()))
        } else {
            Err(Error::invalid(
                "username",
                "username must be 2-32 characters: a lowercase letter, then lowercase letters, digits or '-'",
            ))
        }
    }
}

/// `^[a-z][a-z0-9-]{1,29}[a-z0-9]$`: 3 to 31 characters, usable as a DNS label and a path segment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AppName(String);
string_newtype!(AppName);

impl AppName {
    pub fn parse(s: &str) -> Result<Self, Error> {
        let b = s.as_bytes();
        let ok = (3..=31).contains(&b.len())
            && b[0].is_ascii_lowercase()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            && b[b.len() - 1] != b'-';
        if ok {
            Ok(AppName(s.to_string()))
        } else {
            Err(Error::invalid(
                "appname",
                "app name must be 3-31 characters: a lowercase letter, then lowercase letters, digits or '-', not ending in '-'",
            ))
        }
    }
}

/// An e-mail address of plausible shape (`local@domain.tld`), lowercased.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Email(String);
string_newtype!(Email);

impl Email {
    pub fn parse(s: &str) -> Result<Self, Error> {
        let s = s.trim();
        let bad = || Error::invalid("email", "email must look like name@example.com");
        if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let (local, domain) = s.rsplit_once('@').ok_or_else(bad)?;
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && domain
                .chars()
                .all(|c| c.is_alphanumeric() || c == '.' || c == '-');
        if local.is_empty() || local.contains('@') || !domain_ok {
            return Err(bad());
        }
        Ok(Email(s.to_ascii_lowercase()))
    }
}

/// A password of at least 8 characters (and at most 1024, so hashing stays bounded).
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub fn parse(s: &str) -> Result<Self, Error> {
        match s.chars().count() {
            0..8 => Err(Error::invalid(
                "password",
                "password must be at least 8 characters",
            )),
            8..=1024 => Ok(Password(s.to_string())),
            _ => Err(Error::invalid(
                "password",
                "password must be at most 1024 characters",
            )),
        }
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_names_follow_the_dns_label_rule() {
        for ok in [
            "abc",
            "my-app",
            "a1b",
            "app-2",
            &format!("a{}", "b".repeat(30)),
        ] {
            assert!(AppName::parse(ok).is_ok(), "{ok} should be accepted");
        }
        for bad in [
            "",
            "ab",
            "A",
            "Abc",
            "1ab",
            "ab-",
            "../x",
            "a_b",
            "a.b",
            "a b",
            &"a".repeat(32),
            &"a".repeat(64),
        ] {
            assert!(AppName::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn usernames_follow_their_rule() {
        assert!(Username::parse("al").is_ok());
        assert!(Username::parse("alice-2").is_ok());
        assert!(Username::parse(&format!("a{}", "b".repeat(31))).is_ok());
        for bad in [
            "a",
            "Alice",
            "1al",
            "al ice",
            "al_ice",
            &"a".repeat(33),
            "ali\u{e9}",
        ] {
            assert!(Username::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn emails_need_a_local_part_and_a_dotted_domain() {
        assert_eq!(
            Email::parse("A@Example.com").unwrap().as_str(),
            "a@example.com"
        );
        for bad in ["", "a", "a@b", "@b.c", "a@.c", "a@b.", "a b@c.d", "a@b..c"] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn passwords_need_eight_characters_and_never_print() {
        assert!(Password::parse("1234567").is_err());
        let p = Password::parse("12345678").unwrap();
        assert_eq!(format!("{p:?}"), "Password(***)");
    }
}
