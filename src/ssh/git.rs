//! git over an SSH channel: `git-receive-pack` (a push) and `git-upload-pack` (a clone or
//! fetch). The core ([`crate::git`]) checks access and starts git; this pipes the channel to it
//! both ways and hands back git's exit code as the channel's exit status. A push counts as work
//! in flight for a stop until its client closes the channel.

use super::command::GitRequest;
use super::{Connection, Opened, errors};
use crate::accounts::Principal;
use crate::domain::User;
use crate::push::Progress;
use crate::services::Services;
use russh::ChannelId;
use russh::server::Session;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

impl Connection {
    /// Hands the channel to git for `request`; a terminal is refused (git speaks binary).
    pub(super) fn start_git(
        &mut self,
        channel: ChannelId,
        user: User,
        request: GitRequest,
        session: &mut Session,
    ) -> Result<(), russh::Error> {
        if self
            .channels
            .get(&channel)
            .is_some_and(|o| o.terminal.is_some())
        {
            return self.refuse_request(channel, &errors::no_pty(), session);
        }
        let Some(opened) = self.channels.remove(&channel) else {
            return Ok(());
        };
        session.channel_success(channel)?;
        if request.service == crate::git::Service::ReceivePack {
            self.pushes.insert(channel, self.services.drain.join());
        }
        tracing::info!(
            peer = %self.peer,
            user = %user.username,
            app = %request.app,
            service = ?request.service,
            "ssh git request"
        );
        tokio::spawn(run_git(
            self.services.clone(),
            self.principal(user),
            request,
            opened,
        ));
        Ok(())
    }
}

/// Starts git for the request and pipes it to the channel both ways until it exits; then
/// exit status, EOF, close. The client's EOF is not waited for.
async fn run_git(services: Arc<Services>, who: Principal, request: GitRequest, opened: Opened) {
    let (mut reader, writer) = opened.channel.split();
    let mut stderr = writer.make_writer_ext(Some(1));
    let app = request.app.as_str().to_string();

    // Lines from the core (waiting for another push) reach the pusher while git starts.
    let (progress, mut lines) = Progress::channel();
    let started = {
        let start = services.git.start(
            &who,
            request.service,
            &app,
            opened.git_protocol.as_deref(),
            &progress,
        );
        tokio::pin!(start);
        loop {
            tokio::select! {
                r = &mut start => break r,
                Some(line) = lines.recv() => {
                    let _ = stderr.write_all(format!("{line}\n").as_bytes()).await;
                }
            }
        }
    };
    drop(progress);
    while let Ok(line) = lines.try_recv() {
        let _ = stderr.write_all(format!("{line}\n").as_bytes()).await;
    }

    let code = match started {
        Err(e) => {
            let _ = stderr
                .write_all(format!("{}\n", errors::error(&e, &app)).as_bytes())
                .await;
            1
        }
        Ok(mut process) => {
            let child = &mut process.child;
            let (Some(mut stdin), Some(mut stdout), Some(mut child_err)) =
                (child.stdin.take(), child.stdout.take(), child.stderr.take())
            else {
                tracing::error!("git started without piped stdio");
                let _ = writer.exit_status(1).await;
                let _ = writer.eof().await;
                let _ = writer.close().await;
                return;
            };
            // Client → git. Runs on its own: git may finish before the client sends EOF, and
            // this copy must then simply stop. Dropping `stdin` at the client's EOF tells git.
            // A push's bytes are counted as they pass.
            let pushed = (request.service == crate::git::Service::ReceivePack)
                .then(|| services.metrics.push_bytes().clone());
            let to_git = tokio::spawn(async move {
                let _ = copy_counted(&mut reader.make_reader(), &mut stdin, pushed).await;
            });
            let mut out = writer.make_writer();
            let (a, b) = tokio::join!(
                tokio::io::copy(&mut stdout, &mut out),
                tokio::io::copy(&mut child_err, &mut stderr),
            );
            if let Err(e) = a.and(b) {
                tracing::debug!(error = %e, "ssh client went away during git");
            }
            let status = child.wait().await;
            to_git.abort();
            match status {
                Ok(s) => exit_code(s),
                Err(e) => {
                    tracing::error!(error = %e, "waiting for git");
                    1
                }
            }
        }
    };
    let _ = stderr.flush().await;
    let _ = writer.exit_status(code).await;
    let _ = writer.eof().await;
    let _ = writer.close().await;
}

/// `tokio::io::copy`, adding each chunk to `counter` as it is written.
async fn copy_counted(
    from: &mut (impl tokio::io::AsyncRead + Unpin),
    to: &mut (impl tokio::io::AsyncWrite + Unpin),
    counter: Option<prometheus_client::metrics::counter::Counter>,
) -> std::io::Result<()> {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        to.write_all(&buf[..n]).await?;
        if let Some(c) = &counter {
            c.inc_by(n as u64);
        }
    }
}

fn exit_code(status: std::process::ExitStatus) -> u32 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => c as u32,
        (None, Some(sig)) => 128 + sig as u32,
        _ => 1,
    }
}
