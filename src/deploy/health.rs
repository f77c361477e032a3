//! The health check a new container must pass before it serves: an HTTP GET of the app's health
//! path answering below 500, or, for apps that do not speak HTTP, an accepted TCP connection.
//!
//! The check talks to the container's own address on the Docker network when it has one: the
//! published loopback port goes through docker-proxy, which accepts connections even when nothing
//! listens inside, so only an HTTP answer proves anything there.

use super::Reporter;
use crate::docker::{ContainerInfo, DockerNode};
use crate::domain::{Error, Result};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long the health check polls at short intervals before backing off.
const BRISK: Duration = Duration::from_secs(5);

/// Polls until the container answers, exits, or `budget` runs out. Attempts are shown to the
/// pusher (at most about one line a second).
pub async fn wait_healthy(
    docker: &dyn DockerNode,
    container: &str,
    port: u16,
    path: &str,
    budget: Duration,
    rep: &Reporter,
) -> Result<ContainerInfo> {
    let started = Instant::now();
    let mut attempt = 0u32;
    let mut last_shown: Option<Instant> = None;
    let mut pause = Duration::from_millis(10);
    loop {
        attempt += 1;
        let info = docker.inspect(container).await?.ok_or_else(|| {
            Error::DeployFailed("the new container disappeared during its health check".into())
        })?;
        let reason = match info.state.as_str() {
            "running" => match probe(&info, port, path).await {
                Ok(()) => return Ok(info),
                Err(why) => why,
            },
            "created" => "container is starting".to_string(),
            _ => {
                let code = info.exit_code.unwrap_or(-1);
                return Err(Error::DeployFailed(if info.oom_killed {
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
async fn probe(info: &ContainerInfo, port: u16, path: &str) -> std::result::Result<(), String> {
    let (addr, direct) = match (info.ip, info.published()) {
        (Some(ip), _) => (SocketAddr::new(ip, port), true),
        (None, Some(p)) => (p, false),
        (None, None) => return Err("the container has no address yet".into()),
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
    // Not HTTP: an accepted connection on the container's own address is a TCP pass; through
    // docker-proxy, only a peer that answered something (or held the line open) counts.
    if direct || read.is_err() || got > 0 {
        Ok(())
    } else {
        Err("connection closed without an answer".into())
    }
}
