//! The SSH transport (russh): authenticates users by their registered public keys, accepts only
//! `git-receive-pack` / `git-upload-pack` on an app, piping the git process that the core
//! ([`crate::git`]) starts ([`git`]), and `run APP -- COMMAND` ([`run`]), with a terminal when
//! asked.
//! Everything else (shells, other terminals, forwarding, subsystems, other commands) is refused
//! with one line on stderr and exit status 1.
//!
//! Connections are accepted here ([`login`]): each must authenticate within
//! `ssh_login_grace`, and one address may have at most `ssh_max_unauthenticated` connections
//! that have not.
//!
//! Access decisions are the core's (`Apps::get` via `Git::start`); this module only maps their
//! outcome to what an SSH client sees ([`errors`]).

pub mod command;
pub mod errors;
mod git;
pub mod hostkey;
pub mod limit;
pub mod login;
mod run;

use crate::accounts::Principal;
use crate::domain::{Error, User};
use crate::services::Services;
use limit::AuthLimiter;
use login::{PendingLogin, PendingLogins};
use russh::keys::{HashAlg, PrivateKey};
use russh::server::{Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, ChannelOpenFailure, MethodKind, MethodSet};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// The russh settings: our host key, public-key authentication only, and flow-control sizes
/// that keep a large push streaming.
pub fn server_config(key: PrivateKey) -> russh::server::Config {
    russh::server::Config {
        server_id: russh::SshId::Standard(
            concat!("SSH-2.0-Scalefog_", env!("CARGO_PKG_VERSION")).into(),
        ),
        methods: MethodSet::from(&[MethodKind::PublicKey][..]),
        // Rejections take a constant time so that timing does not tell which keys are
        // registered; the first probe ("none", sent by every OpenSSH client) need not wait.
        auth_rejection_time: Duration::from_millis(500),
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![key],
        // Builds run inside the push and can be silent for minutes: keepalives tell a dead
        // client from a quiet one (their replies count as activity); the inactivity timeout
        // only ends connections that answer nothing at all.
        inactivity_timeout: Some(Duration::from_secs(900)),
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_max: 4,
        window_size: 8 * 1024 * 1024,
        channel_buffer_size: 256,
        nodelay: true,
        ..Default::default()
    }
}

/// A running SSH server: [`SshServer::stop_accepting`] closes its listener and leaves the
/// sessions be (pushes in flight finish); [`SshServer::shutdown`] disconnects every client.
pub struct SshServer {
    /// Ends the accept loop.
    stop: Option<oneshot::Sender<()>>,
    /// The accept loop.
    task: Option<JoinHandle<std::io::Result<()>>>,
    /// Tells every session to disconnect.
    stopping: watch::Sender<bool>,
    /// Every session, so that shutdown can wait until they have said goodbye.
    sessions: tokio_util::task::TaskTracker,
}

/// How long shutdown waits for sessions to close after telling them (each gives its client
/// 2 s to take the message).
const SESSIONS_CLOSE: Duration = Duration::from_secs(5);

impl SshServer {
    /// Serves on `listener` (already bound, so port 0 works) until shut down.
    pub fn start(
        listener: std::net::TcpListener,
        key: PrivateKey,
        services: Arc<Services>,
    ) -> std::io::Result<SshServer> {
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let config = Arc::new(server_config(key));
        let grace = Duration::from_secs(services.config.ssh_login_grace);
        let pending = PendingLogins::new(services.config.ssh_max_unauthenticated);
        let limiter = Arc::new(AuthLimiter::default());
        let (stop, mut stopped) = oneshot::channel::<()>();
        let (stopping, stopping_rx) = watch::channel(false);
        let sessions = tokio_util::task::TaskTracker::new();
        let tracked = sessions.clone();
        let task = tokio::spawn(async move {
            loop {
                let (socket, peer) = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            // Out of file descriptors, usually: it passes as connections end.
                            tracing::warn!(error = %e, "ssh accept failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    },
                    _ = &mut stopped => break,
                };
                let Some((login, authenticated)) = pending.admit(peer.ip()) else {
                    tracing::debug!(%peer, "ssh connection refused: too many unauthenticated");
                    continue;
                };
                let _ = socket.set_nodelay(true);
                let connection = Connection {
                    services: services.clone(),
                    limiter: limiter.clone(),
                    peer: peer.ip(),
                    login: Some(login),
                    user: None,
                    channels: HashMap::new(),
                    _session: services.metrics.ssh_session(),
                    pushes: HashMap::new(),
                };
                tracked.spawn(login::serve(
                    config.clone(),
                    socket,
                    connection,
                    grace,
                    authenticated,
                    stopping_rx.clone(),
                ));
            }
            Ok(())
        });
        Ok(SshServer {
            stop: Some(stop),
            task: Some(task),
            stopping,
            sessions,
        })
    }

    /// Closes the listener; sessions already open go on (a push in flight finishes).
    pub async fn stop_accepting(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "ssh server stopped with an error"),
                Err(e) => tracing::warn!(error = %e, "ssh server task failed"),
            }
        }
    }

    /// Stops accepting, disconnects every session and waits (a few seconds at most) until
    /// they are closed.
    pub async fn shutdown(mut self) {
        self.stop_accepting().await;
        let _ = self.stopping.send(true);
        self.sessions.close();
        if tokio::time::timeout(SESSIONS_CLOSE, self.sessions.wait())
            .await
            .is_err()
        {
            tracing::warn!("ssh sessions still open after shutdown");
        }
    }
}

/// One client connection.
pub struct Connection {
    services: Arc<Services>,
    limiter: Arc<AuthLimiter>,
    peer: IpAddr,
    /// Until it authenticates.
    login: Option<PendingLogin>,
    user: Option<User>,
    /// Session channels opened and not yet running a command.
    channels: HashMap<ChannelId, Opened>,
    /// Counts the connection as open while it lives.
    _session: crate::metrics::SshSession,
    /// Channels running a push, until the client closes them: a stop waits for that, so that
    /// it disconnects no client before it has read how its push ended.
    pushes: HashMap<ChannelId, crate::drain::Work>,
}

struct Opened {
    channel: Channel<Msg>,
    git_protocol: Option<String>,
    /// Asked for with `ssh -t`; only a run gets one.
    terminal: Option<crate::deploy::Terminal>,
}

impl Connection {
    /// The account of a key, by its SHA-256 fingerprint; `None` for unknown keys.
    fn user_of(&self, key: &russh::keys::PublicKey) -> Option<User> {
        let fp = key.fingerprint(HashAlg::Sha256).to_string();
        match self.services.accounts.user_for_ssh_key(&fp) {
            Ok(user) => user,
            Err(e) => {
                tracing::error!(error = %e, "looking up an ssh key");
                None
            }
        }
    }

    /// The caller behind `user`'s channels, as the core and the audit log see it.
    fn principal(&self, user: User) -> Principal {
        Principal {
            user,
            token_hash: None,
            origin: crate::domain::Origin::new(crate::domain::Channel::Ssh, self.peer),
        }
    }

    fn reject(&self) -> Auth {
        self.limiter.failed(self.peer);
        Auth::Reject {
            proceed_with_methods: Some(MethodSet::from(&[MethodKind::PublicKey][..])),
            partial_success: false,
        }
    }

    /// Refuses a session channel: one line on stderr, exit status 1, end of channel.
    fn refuse(
        &mut self,
        channel: ChannelId,
        message: &str,
        session: &mut Session,
    ) -> Result<(), russh::Error> {
        tracing::info!(
            peer = %self.peer,
            user = self.user.as_ref().map_or("", |u| u.username.as_str()),
            refused = message,
            "ssh request refused"
        );
        self.channels.remove(&channel);
        session.extended_data(channel, 1, format!("{message}\n").into_bytes())?;
        session.exit_status_request(channel, 1)?;
        session.eof(channel)?;
        session.close(channel)
    }

    /// Replies to a channel request and refuses the channel, unless it is already gone (a
    /// request that follows a refusal).
    fn refuse_request(
        &mut self,
        channel: ChannelId,
        message: &str,
        session: &mut Session,
    ) -> Result<(), russh::Error> {
        if !self.channels.contains_key(&channel) {
            return Ok(());
        }
        // Success first: an OpenSSH client that sees a request fail may close the channel
        // without showing our message.
        session.channel_success(channel)?;
        self.refuse(channel, message, session)
    }
}

impl russh::server::Handler for Connection {
    type Error = russh::Error;

    async fn auth_none(&mut self, _user: &str) -> Result<Auth, Self::Error> {
        Ok(Auth::Reject {
            proceed_with_methods: Some(MethodSet::from(&[MethodKind::PublicKey][..])),
            partial_success: false,
        })
    }

    async fn auth_publickey_offered(
        &mut self,
        _user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        // A registered key is always let through: the limit is against scans of unknown keys,
        // and must not lock out the users behind an address someone else scans from.
        Ok(match self.user_of(offer.public_key) {
            Some(_) => Auth::Accept,
            None if !self.limiter.allowed(self.peer) => {
                // A scan: each further attempt costs it a new connection and handshake.
                tracing::warn!(peer = %self.peer, "ssh authentication rate limit reached");
                return Err(russh::Error::Disconnect);
            }
            None => self.reject(),
        })
    }

    async fn auth_publickey(
        &mut self,
        _user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        match self.user_of(key.public_key) {
            Some(user) => {
                tracing::info!(peer = %self.peer, user = %user.username, "ssh login");
                self.user = Some(user);
                if let Some(login) = self.login.take() {
                    login.authenticated();
                }
                Ok(Auth::Accept)
            }
            None => Ok(self.reject()),
        }
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.insert(
            channel.id(),
            Opened {
                channel,
                git_protocol: None,
                terminal: None,
            },
        );
        reply.accept().await;
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.remove(&channel);
        self.pushes.remove(&channel);
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        _channel: Channel<Msg>,
        host: &str,
        port: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        tracing::info!(peer = %self.peer, host, port, "ssh port forwarding refused");
        reply
            .reject(ChannelOpenFailure::AdministrativelyProhibited)
            .await;
        Ok(())
    }

    async fn channel_open_direct_streamlocal(
        &mut self,
        _channel: Channel<Msg>,
        _socket_path: &str,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        reply
            .reject(ChannelOpenFailure::AdministrativelyProhibited)
            .await;
        Ok(())
    }

    async fn channel_open_x11(
        &mut self,
        _channel: Channel<Msg>,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        reply
            .reject(ChannelOpenFailure::AdministrativelyProhibited)
            .await;
        Ok(())
    }

    async fn tcpip_forward(
        &mut self,
        _address: &str,
        _port: &mut u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        tracing::info!(peer = %self.peer, "ssh remote forwarding refused");
        Ok(false)
    }

    async fn streamlocal_forward(
        &mut self,
        _socket_path: &str,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        Ok(false)
    }

    #[allow(clippy::too_many_arguments)]
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        term: &str,
        col_width: u32,
        row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Granted for now; the command decides: a run gets it, anything else is refused.
        if let Some(opened) = self.channels.get_mut(&channel) {
            opened.terminal = Some(crate::deploy::Terminal {
                term: term
                    .chars()
                    .filter(char::is_ascii_graphic)
                    .take(64)
                    .collect(),
                cols: run::clamp(col_width),
                rows: run::clamp(row_height),
            });
            session.channel_success(channel)?;
        }
        Ok(())
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single_connection: bool,
        _x11_auth_protocol: &str,
        _x11_auth_cookie: &str,
        _x11_screen_number: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.refuse_request(channel, &errors::no_forwarding("X11"), session)
    }

    async fn agent_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<bool, Self::Error> {
        if self.channels.contains_key(&channel) {
            self.refuse(channel, &errors::no_forwarding("agent"), session)?;
        }
        Ok(false)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if name == "GIT_PROTOCOL" {
            if let Some(opened) = self.channels.get_mut(&channel) {
                opened.git_protocol = Some(value.to_string());
                session.channel_success(channel)?;
            }
            Ok(())
        } else if name == "LANG" || name.starts_with("LC_") {
            // Sent by default by the OpenSSH client configuration of most distributions
            // (`SendEnv LANG LC_*`); refusing the session over them would break every push
            // from those machines. They are declined and never reach git.
            session.channel_failure(channel)?;
            Ok(())
        } else {
            self.refuse_request(channel, &errors::no_env(name), session)
        }
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let terminal = self
            .channels
            .get(&channel)
            .is_some_and(|o| o.terminal.is_some());
        let message = if terminal {
            errors::no_pty()
        } else {
            errors::no_shell()
        };
        self.refuse_request(channel, &message, session)
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.refuse_request(channel, &errors::no_subsystem(name), session)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if !self.channels.contains_key(&channel) {
            return Ok(());
        }
        let Some(user) = self.user.clone() else {
            let message = errors::error(&Error::Unauthorized("no user".into()), "");
            return self.refuse_request(channel, &message, session);
        };
        match command::parse_run(data) {
            Some(Ok(run)) => return self.start_run(channel, user, run, session),
            Some(Err(r)) => return self.refuse_request(channel, &errors::refusal(&r), session),
            None => {}
        }
        let request = match command::parse(data) {
            Ok(r) => r,
            Err(r) => return self.refuse_request(channel, &errors::refusal(&r), session),
        };
        self.start_git(channel, user, request, session)
    }
}
