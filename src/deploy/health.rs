//! The health check a new process must pass before it serves: an HTTP GET of the app's health
//! path answering below 500, or, for apps that do not speak HTTP, an accepted TCP connection.
//!
//! The check talks to the process's own address when the runtime knows one ("direct"): the
//! address the router uses may go through a proxy (docker-proxy for a published loopback port)
//! that accepts connections even when nothing listens inside, so only an HTTP answer proves
//! anything there.

use super::Reporter;
use crate::domain::{Error, Result};
use crate::runtime::{ProcessState, ProcessStatus, Runtime};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long the health check polls at short intervals before backing off.
const BRISK: Duration = Duration::from_secs(5);

/// Polls until the process answers on `path`, exits, or `budget` runs out. Attempts are shown to
/// the pusher (at most about one line a second). `port` is the app's `$PORT`, for messages.
pub async fn wait_healthy(
    runtime: &dyn Runtime,
    process: &str,
    path: &str,
    port: u16,
    budget: Duration,
    rep: &Reporter,
) -> Result<ProcessStatus> {
    let started = Instant::now();
    let mut attempt = 0u32;
    let mut last_shown: Option<Instant> = None;
    let mut pause = Duration::from_millis(10);
    loop {
        attempt += 1;
        let status = runtime.status(process).await?.ok_or_else(|| {
            Error::DeployFailed("the new process disappeared during its health check".into())
        })?;
        let reason = match status.state {
            ProcessState::Running => match probe(&status, port, path).await {
                Ok(()) => return Ok(status),
                Err(why) => why,
            },
            ProcessState::Starting => "process is starting".to_string(),
            ProcessState::Restarting { .. } | ProcessState::Exited { .. } => {
                let (code, oom) = match status.state {
                    ProcessState::Exited { code, oom } | ProcessState::Restarting { code, oom } => {
                        (code, oom)
                    }
                    _ => (None, false),
                };
                let code = code.unwrap_or(-1);
                return Err(Error::DeployFailed(if oom {
                    format!(
                        "health check failed: the app was killed for exceeding its memory limit (exit code {code})"
                    )
                } else {
                    format!(
                        "health check failed: the app exited with code {code} instead of listening on $PORT ({port})"
                    )
                }));
            }
        };
        if started.elapsed() >= budget {
            return Err(Error::DeployFailed(format!(
                "health check failed: no healthy answer within {} s ({attempt} attempts; last: {reason})",
                budget.as_secs()
            )));
        }
        if last_shown.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            rep.line(format!("       Health check attempt {attempt}: {reason}"));
            last_shown = Some(Instant::now());
        }
        tokio::time::sleep(pause).await;
        // Most apps listen within a second of starting, and every pause then is added to the
        // push: poll briskly at first, gently for slow starters.
        let cap = if started.elapsed() < BRISK {
            Duration::from_millis(50)
        } else {
            Duration::from_millis(250)
        };
        pause = (pause * 2).min(cap);
    }
}

/// One attempt: `Ok` when healthy, else why not.
async fn probe(status: &ProcessStatus, port: u16, path: &str) -> std::result::Result<(), String> {
    let (addr, direct): (SocketAddr, bool) = match (status.direct, status.endpoint) {
        (Some(a), _) => (a, true),
        (None, Some(a)) => (a, false),
        (None, None) => return Err("the process has no address yet".into()),
    };
    let mut stream =
        match tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(format!("{e} on port {port}")),
            Err(_) => return Err(format!("connecting to port {port} timed out")),
        };
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: localhost\r\nUser-Agent: scalefog-health-check\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).await.is_err() {
        return if direct {
            Ok(())
        } else {
            Err("connection closed".into())
        };
    }
    let mut buf = [0u8; 64];
    let mut got = 0;
    let read = tokio::time::timeout(Duration::from_secs(2), async {
        // Read until the status line is complete or the peer stops sending.
        while got < buf.len() {
            match stream.read(&mut buf[got..]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    got += n;
                    if buf[..got].contains(&b'\n') {
                        break;
                    }
                }
            }
        }
    })
    .await;
    let head = String::from_utf8_lossy(&buf[..got]);
    if let Some(rest) = head.strip_prefix("HTTP/") {
        let code: u16 = rest
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        return if (100..500).contains(&code) {
            Ok(())
        } else {
            Err(format!("GET {path} answered {code}"))
        };
    }
    // Not HTTP: an accepted connection on the process's own address is a TCP pass; through
    // docker-proxy, only a peer that answered something (or held the line open) counts.
    if direct || read.is_err() || got > 0 {
        Ok(())
    } else {
        Err("connection closed without an answer".into())
    }
}
