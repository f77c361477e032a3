//! The pre-receive callback: git runs the hook, the hook (our own binary, `scalefog hook
//! pre-receive`) calls the running server over a unix socket in the data dir, and the server
//! decides. The hook cannot decide alone: redb is locked by the server.
//!
//! Protocol, one connection per push:
//! - hook → server: one JSON line, [`HookRequest`]: the push id and its secret (both from the
//!   hook's environment, set by the server for this push only), the `old new ref` lines and the
//!   quarantine environment.
//! - server → hook: lines `o <text>` (shown to the pusher as `remote: <text>`), then one line
//!   `x <code>`, the hook's exit code. A connection that ends without `x` is a crashed callback:
//!   the hook rejects the push.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::time::Duration;

/// Environment variables naming the callback, set by the server on `git receive-pack`.
pub const ENV_PROGRAM: &str = "SCALEFOG_HOOK_PROGRAM";
pub const ENV_SOCKET: &str = "SCALEFOG_HOOK_SOCKET";
pub const ENV_PUSH_ID: &str = "SCALEFOG_PUSH_ID";
pub const ENV_SECRET: &str = "SCALEFOG_PUSH_SECRET";
pub const ENV_TIMEOUT: &str = "SCALEFOG_HOOK_TIMEOUT";

/// The git variables that make quarantined objects visible; the only ones passed on.
pub const QUARANTINE_ENV: [&str; 3] = [
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_QUARANTINE_PATH",
];

/// Requests larger than this are refused (a push of thousands of refs stays far below).
pub const MAX_REQUEST: u64 = 4 << 20;

#[derive(Debug, Serialize, Deserialize)]
pub struct HookRequest {
    pub push_id: String,
    pub secret: String,
    /// `old new ref` lines as git wrote them.
    pub updates: Vec<String>,
    pub env: BTreeMap<String, String>,
}

/// Runs the client side: `scalefog hook pre-receive`. Returns the hook's exit code.
pub fn run_pre_receive() -> i32 {
    match call_server() {
        Ok(code) => code,
        Err(message) => {
            println!("scalefog: {message}; push rejected");
            let _ = std::io::stdout().flush();
            1
        }
    }
}

fn call_server() -> Result<i32, String> {
    let var = |name: &str| {
        std::env::var(name).map_err(|_| {
            format!("{name} is not set: this hook only runs under the scalefog SSH server")
        })
    };
    let socket = var(ENV_SOCKET)?;
    let request = HookRequest {
        push_id: var(ENV_PUSH_ID)?,
        secret: var(ENV_SECRET)?,
        updates: std::io::stdin()
            .lock()
            .lines()
            .collect::<Result<_, _>>()
            .map_err(|e| format!("cannot read the pushed refs: {e}"))?,
        env: QUARANTINE_ENV
            .iter()
            .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
            .collect(),
    };
    // The server enforces the push timeout; this is only a backstop against a server that
    // stopped answering altogether.
    let idle = std::env::var(ENV_TIMEOUT)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map_or(Duration::from_secs(3600), |s| Duration::from_secs(s + 30));
    let stream = std::os::unix::net::UnixStream::connect(&socket)
        .map_err(|e| format!("cannot reach the scalefog server at {socket}: {e}"))?;
    stream
        .set_read_timeout(Some(idle))
        .map_err(|e| e.to_string())?;
    let mut line = serde_json::to_string(&request).map_err(|e| e.to_string())?;
    line.push('\n');
    (&stream)
        .write_all(line.as_bytes())
        .map_err(|e| format!("cannot talk to the scalefog server: {e}"))?;
    relay_answer(BufReader::new(&stream), &mut std::io::stdout())
}

/// Copies `o` lines to `out` until the `x` line; its code is the result.
fn relay_answer(answer: impl BufRead, out: &mut impl Write) -> Result<i32, String> {
    for line in answer.lines() {
        let line = line.map_err(|e| {
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) {
                "the scalefog server did not answer the push callback in time".to_string()
            } else {
                format!("the push callback failed: {e}")
            }
        })?;
        if let Some(text) = line.strip_prefix("o ") {
            let _ = writeln!(out, "{text}");
            let _ = out.flush();
        } else if let Some(code) = line.strip_prefix("x ") {
            return Ok(code.trim().parse().unwrap_or(1));
        }
    }
    Err("the push callback ended without a verdict (the server crashed or stopped)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_lines_are_relayed_and_the_verdict_is_the_exit_code() {
        let mut out = Vec::new();
        let code = relay_answer(&b"o building\no done\nx 0\n"[..], &mut out).unwrap();
        assert_eq!(code, 0);
        assert_eq!(String::from_utf8(out).unwrap(), "building\ndone\n");
        let code = relay_answer(&b"o no\nx 1\n"[..], &mut Vec::new()).unwrap();
        assert_eq!(code, 1);
    }

    #[test]
    fn an_answer_cut_before_the_verdict_rejects_the_push() {
        let err = relay_answer(&b"o building\n"[..], &mut Vec::new()).unwrap_err();
        assert!(err.contains("without a verdict"), "{err}");
    }

    #[test]
    fn a_server_that_hangs_up_rejects_the_push() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let t = std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            let mut line = String::new();
            BufReader::new(&s).read_line(&mut line).unwrap();
            // Dies without answering.
        });
        let s = std::os::unix::net::UnixStream::connect(&path).unwrap();
        (&s).write_all(b"{}\n").unwrap();
        t.join().unwrap();
        assert!(relay_answer(BufReader::new(&s), &mut Vec::new()).is_err());
    }
}
