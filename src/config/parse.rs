//! One setting's text (or file value) made into a value, or an error naming the setting.

use super::ConfigError;
use std::net::SocketAddr;

pub(super) fn parse_addr(name: &str, v: &str) -> Result<SocketAddr, ConfigError> {
    v.trim().parse().map_err(|_| {
        ConfigError(format!(
            "invalid {name} '{v}': expected IP:PORT, e.g. 127.0.0.1:8080"
        ))
    })
}

/// A whole number from `min`, from the flag/env text or the file; `default` when neither is set.
pub(super) fn parse_count(
    name: &str,
    flag: &Option<String>,
    file: Option<u64>,
    default: u64,
    min: u64,
) -> Result<u64, ConfigError> {
    let v = match flag {
        Some(text) => text.trim().parse::<u64>().map_err(|_| {
            ConfigError(format!("invalid {name} '{text}': expected a whole number"))
        })?,
        None => file.unwrap_or(default),
    };
    if v < min {
        return Err(ConfigError(format!(
            "invalid {name} '{v}': must be at least {min}"
        )));
    }
    Ok(v)
}

/// [`parse_count`] for a limit that is off unless set.
pub(super) fn parse_optional_count(
    name: &str,
    flag: &Option<String>,
    file: Option<u64>,
    min: u64,
) -> Result<Option<u64>, ConfigError> {
    if flag.is_none() && file.is_none() {
        return Ok(None);
    }
    parse_count(name, flag, file, min, min).map(Some)
}

/// A log size as Docker's json-file driver takes it: bytes, or a number with `k`, `m` or `g`.
pub(super) fn parse_log_size(v: &str) -> Result<String, ConfigError> {
    let v = v.trim().to_ascii_lowercase();
    let digits = v.trim_end_matches(['k', 'm', 'g']);
    let unit_ok = v.len() - digits.len() <= 1;
    match digits.parse::<u64>() {
        Ok(n) if n > 0 && unit_ok => Ok(v),
        _ => Err(ConfigError(format!(
            "invalid log_max_size '{v}': expected a size like 10m, 512k or 1g"
        ))),
    }
}
/// A number of CPUs (`0.5`, `2`) from the flag/env text or the file; `default` when neither is
/// set. Docker's smallest CPU quota is 1 ms per 100 ms period, hence at least 0.01.
pub(super) fn parse_cpus(
    name: &str,
    flag: &Option<String>,
    file: Option<f64>,
    default: f64,
) -> Result<f64, ConfigError> {
    let v = match flag {
        Some(text) => text.trim().parse::<f64>().map_err(|_| {
            ConfigError(format!(
                "invalid {name} '{text}': expected a number of CPUs, e.g. 1.5"
            ))
        })?,
        None => file.unwrap_or(default),
    };
    if !(0.01..=1024.0).contains(&v) {
        return Err(ConfigError(format!(
            "invalid {name} '{v}': must be between 0.01 and 1024"
        )));
    }
    Ok(v)
}
