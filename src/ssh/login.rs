//! Connections that have not authenticated yet: each has `ssh_login_grace` to do so or is
//! closed, and one address may hold at most `ssh_max_unauthenticated` of them at once (further
//! ones are closed at accept). Without this a client without any key could hold connections,
//! and the handshakes they cost, for the whole inactivity limit.

use crate::locks;
use std::collections::HashMap;
use std::net::{IpAddr, Shutdown};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};

/// How many connections from each address are still logging in.
pub struct PendingLogins {
    max_per_addr: usize,
    // A std Mutex: held for a map update only, never across an await.
    addrs: Mutex<HashMap<IpAddr, usize>>,
}

impl PendingLogins {
    pub fn new(max_per_addr: usize) -> Arc<PendingLogins> {
        Arc::new(PendingLogins {
            max_per_addr,
            addrs: Mutex::default(),
        })
    }

    /// A place for a new connection from `addr`, and what tells when it authenticates; `None`
    /// when the address has no place left.
    pub fn admit(self: &Arc<Self>, addr: IpAddr) -> Option<(PendingLogin, oneshot::Receiver<()>)> {
        let mut addrs = locks::lock(&self.addrs);
        let pending = addrs.entry(addr).or_insert(0);
        if *pending >= self.max_per_addr {
            return None;
        }
        *pending += 1;
        let (tx, rx) = oneshot::channel();
        Some((
            PendingLogin {
                logins: self.clone(),
                addr,
                authenticated: Some(tx),
            },
            rx,
        ))
    }
}

/// A connection's place among its address's pending logins, given back when it authenticates
/// or ends.
pub struct PendingLogin {
    logins: Arc<PendingLogins>,
    addr: IpAddr,
    authenticated: Option<oneshot::Sender<()>>,
}

impl PendingLogin {
    /// The connection authenticated: its login grace ends and its place is free.
    pub fn authenticated(mut self) {
        if let Some(tx) = self.authenticated.take() {
            let _ = tx.send(());
        }
    }
}

impl Drop for PendingLogin {
    fn drop(&mut self) {
        let mut addrs = locks::lock(&self.logins.addrs);
        if let Some(pending) = addrs.get_mut(&self.addr) {
            *pending -= 1;
            if *pending == 0 {
                addrs.remove(&self.addr);
            }
        }
    }
}

/// Runs one SSH session on `socket` until it ends: closed when it has not authenticated
/// within `grace` (`authenticated` says when it has), disconnected when `stopping` turns true.
pub async fn serve<H>(
    config: Arc<russh::server::Config>,
    socket: TcpStream,
    handler: H,
    grace: Duration,
    mut authenticated: oneshot::Receiver<()>,
    mut stopping: watch::Receiver<bool>,
) where
    H: russh::server::Handler + Send + 'static,
    H::Error: std::fmt::Display,
{
    let peer = socket.peer_addr().ok();
    // A second handle on the socket closes it in any state of the session: russh reads no
    // request of ours (such as a disconnect) while a key exchange is under way, and a client
    // can leave one unfinished.
    let Ok((socket, closer)) = socket.into_std().and_then(|s| {
        let closer = s.try_clone()?;
        Ok((TcpStream::from_std(s)?, closer))
    }) else {
        return;
    };
    let close = || {
        let _ = closer.shutdown(Shutdown::Both);
    };
    let deadline = tokio::time::sleep(grace);
    tokio::pin!(deadline);
    let started = tokio::select! {
        s = russh::server::run_stream(config, socket, handler) => s,
        _ = &mut deadline => {
            tracing::info!(peer = ?peer, "ssh login grace time exceeded");
            return close();
        }
        _ = until_true(&mut stopping) => return close(),
    };
    let session = match started {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(error = %e, "ssh connection setup failed");
            return close();
        }
    };
    let handle = session.handle();
    tokio::pin!(session);
    let mut logging_in = true;
    loop {
        tokio::select! {
            ended = &mut session => {
                if let Err(e) = ended {
                    tracing::debug!(error = %e, "ssh session ended with an error");
                }
                break;
            }
            // Err: the handler is gone without authenticating, the session is ending.
            _ = &mut authenticated, if logging_in => logging_in = false,
            _ = &mut deadline, if logging_in => {
                tracing::info!(peer = ?peer, "ssh login grace time exceeded");
                logging_in = false;
                close();
            }
            _ = until_true(&mut stopping) => {
                let _ = handle
                    .disconnect(
                        russh::Disconnect::ByApplication,
                        "scalefog is shutting down".into(),
                        String::new(),
                    )
                    .await;
                // Time for the message to go out, then the connection ends anyway.
                let _ = tokio::time::timeout(Duration::from_secs(2), &mut session).await;
                break;
            }
        }
    }
    close();
}

/// Until `flag` is true (or its sender gone).
async fn until_true(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|s| *s).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_places_back_when_connections_authenticate_or_end() {
        let logins = PendingLogins::new(2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let (first, _) = logins.admit(a).unwrap();
        let (second, mut told) = logins.admit(a).unwrap();
        assert!(logins.admit(a).is_none());
        assert!(logins.admit("10.0.0.2".parse().unwrap()).is_some());
        second.authenticated();
        assert_eq!(told.try_recv(), Ok(()));
        let (_third, _) = logins.admit(a).unwrap();
        drop(first);
        assert!(logins.admit(a).is_some());
    }
}
