//! Process types (a `Procfile` at the repository root, Heroku's format) and the formation: how
//! many of each type run.

use super::{Error, Result};
use std::collections::BTreeMap;

/// The type the router sends requests to; the only one given `PORT`, published and health-checked
/// over HTTP.
pub const WEB: &str = "web";
/// The Procfile entry that runs once per release, before it serves, instead of as a process.
pub const RELEASE: &str = "release";
/// The kind of a one-off run's process (`run.<id>`); no Procfile type may take it.
pub const RUN: &str = "run";
/// Most replicas of one process type.
pub const MAX_REPLICAS: u8 = 20;
/// Replicas of a type the formation does not name.
pub const DEFAULT_REPLICAS: u8 = 1;

/// A Procfile's entries: process type → command line. Sorted by type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Procfile {
    pub processes: BTreeMap<String, String>,
    /// The `release:` entry, run before the switch.
    pub release: Option<String>,
}

/// Whether `name` may be a process type: 1–30 of `a-z 0-9 _ -`, starting with a letter or digit.
pub fn valid_process_type(name: &str) -> bool {
    (1..=30).contains(&name.len())
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

impl Procfile {
    /// Parses Heroku's format: one `type: command` per line; blank lines and `#` comments are
    /// skipped. An error names the line.
    pub fn parse(text: &str) -> Result<Procfile> {
        let mut out = Procfile::default();
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: String| Error::DeployFailed(format!("Procfile line {n}: {why}"));
            let (kind, command) = line
                .split_once(':')
                .ok_or_else(|| bad(format!("expected 'type: command', got '{line}'")))?;
            let (kind, command) = (kind.trim(), command.trim());
            if !valid_process_type(kind) {
                return Err(bad(format!(
                    "'{kind}' is not a process type (1-30 of a-z, 0-9, '_', '-')"
                )));
            }
            if kind == RUN {
                return Err(bad(
                    "'run' is reserved for one-off runs (ssh ... run APP -- COMMAND)".into(),
                ));
            }
            if command.is_empty() {
                return Err(bad(format!("'{kind}' has no command")));
            }
            if split_command(command).is_none() {
                return Err(bad(format!(
                    "the command of '{kind}' has an unclosed quote"
                )));
            }
            let taken = if kind == RELEASE {
                out.release.replace(command.to_string()).is_some()
            } else {
                out.processes
                    .insert(kind.to_string(), command.to_string())
                    .is_some()
            };
            if taken {
                return Err(bad(format!("'{kind}' is declared twice")));
            }
        }
        Ok(out)
    }
}

/// A command line as the process's arguments, with the shell's quoting rules (no shell runs it:
/// images built `FROM scratch` have none). `None` for an unclosed quote.
pub fn split_command(command: &str) -> Option<Vec<String>> {
    shlex::split(command).filter(|args| !args.is_empty())
}

/// One process type of a release with how many replicas should run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scale {
    pub kind: String,
    /// The Procfile's command; `None` runs the image's own command.
    pub command: Option<String>,
    pub replicas: u8,
}

/// What runs of a release: each of its process types (only `web`, with the image's command,
/// without a Procfile) at the count `formation` names, else [`DEFAULT_REPLICAS`].
pub fn scales(
    processes: &BTreeMap<String, String>,
    formation: &BTreeMap<String, u8>,
) -> Vec<Scale> {
    let replicas = |kind: &str| formation.get(kind).copied().unwrap_or(DEFAULT_REPLICAS);
    if processes.is_empty() {
        return vec![Scale {
            kind: WEB.to_string(),
            command: None,
            replicas: replicas(WEB),
        }];
    }
    processes
        .iter()
        .map(|(kind, command)| Scale {
            kind: kind.clone(),
            command: Some(command.clone()),
            replicas: replicas(kind),
        })
        .collect()
}

/// Checks a requested formation change (`{"web": 3, "worker": 1}`): known types only (the
/// release's, or `web` without a Procfile), 0–[`MAX_REPLICAS`] each.
pub fn check_formation(
    processes: &BTreeMap<String, String>,
    change: &BTreeMap<String, i64>,
) -> Result<BTreeMap<String, u8>> {
    if change.is_empty() {
        return Err(Error::invalid(
            "formation",
            "name at least one process type, e.g. {\"web\": 2}",
        ));
    }
    let mut out = BTreeMap::new();
    for (kind, &count) in change {
        let known = if processes.is_empty() {
            kind == WEB
        } else {
            processes.contains_key(kind)
        };
        if !known {
            let types: Vec<&str> = if processes.is_empty() {
                vec![WEB]
            } else {
                processes.keys().map(String::as_str).collect()
            };
            return Err(Error::invalid(
                kind,
                format!(
                    "no process type '{kind}' in the current release (it has: {})",
                    types.join(", ")
                ),
            ));
        }
        let count = u8::try_from(count)
            .ok()
            .filter(|c| *c <= MAX_REPLICAS)
            .ok_or_else(|| {
                Error::invalid(
                    kind,
                    format!("replicas must be 0 to {MAX_REPLICAS}, got {count}"),
                )
            })?;
        out.insert(kind.clone(), count);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_procfile_parses_with_comments_blanks_and_a_release_entry() {
        let p = Procfile::parse(
            "# processes\nweb: /bin/busybox httpd -f -p $PORT\n\nworker:  sh -c 'echo hi; sleep 1'\nrelease: ./migrate\n",
        )
        .unwrap();
        assert_eq!(p.processes.len(), 2);
        assert_eq!(p.processes["worker"], "sh -c 'echo hi; sleep 1'");
        assert_eq!(p.release.as_deref(), Some("./migrate"));
        assert_eq!(
            split_command(&p.processes["worker"]).unwrap(),
            ["sh", "-c", "echo hi; sleep 1"]
        );
    }

    #[test]
    fn a_bad_procfile_names_its_line() {
        for (text, line, words) in [
            ("web: a\nworker\n", 2, "expected 'type: command'"),
            ("web: a\n\nWeb Server: b\n", 3, "not a process type"),
            ("web:\n", 1, "no command"),
            ("web: a\nweb: b\n", 2, "declared twice"),
            ("web: echo 'open\n", 1, "unclosed quote"),
            ("web: a\nrun: b\n", 2, "reserved for one-off runs"),
        ] {
            let e = Procfile::parse(text).unwrap_err().to_string();
            assert!(
                e.contains(&format!("line {line}")) && e.contains(words),
                "{text:?}: {e}"
            );
        }
    }

    #[test]
    fn scales_default_to_one_of_each_type_and_web_alone_without_a_procfile() {
        let none = BTreeMap::new();
        let s = scales(&none, &BTreeMap::new());
        assert_eq!((s.len(), s[0].kind.as_str(), s[0].replicas), (1, WEB, 1));
        assert_eq!(s[0].command, None);
        let procs = BTreeMap::from([("web".into(), "a".into()), ("worker".into(), "b".into())]);
        let s = scales(&procs, &BTreeMap::from([("web".into(), 3)]));
        assert_eq!(
            s.iter()
                .map(|s| (s.kind.as_str(), s.replicas))
                .collect::<Vec<_>>(),
            [("web", 3), ("worker", 1)]
        );
    }

    #[test]
    fn formation_changes_are_checked() {
        let procs = BTreeMap::from([("web".into(), "a".into()), ("worker".into(), "b".into())]);
        let ok = check_formation(
            &procs,
            &BTreeMap::from([("web".into(), 3), ("worker".into(), 0)]),
        );
        assert_eq!(ok.unwrap()["web"], 3);
        for bad in [("web", 21), ("web", -1), ("clock", 1)] {
            let change = BTreeMap::from([(bad.0.to_string(), bad.1)]);
            assert!(check_formation(&procs, &change).is_err(), "{bad:?}");
        }
        assert!(
            check_formation(&BTreeMap::new(), &BTreeMap::from([("worker".into(), 1)])).is_err()
        );
        assert!(check_formation(&procs, &BTreeMap::new()).is_err());
    }
}
