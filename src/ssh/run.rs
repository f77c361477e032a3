//! `run APP -- COMMAND` over an SSH channel: the core starts the run ([`Deployer::run_attached`]);
//! this pipes the channel to it both ways (data to its stdin, end of data to the end of its
//! stdin, window changes to its terminal) and hands back its exit code as the channel's exit
//! status. A client that goes away stops the run.
//!
//! [`Deployer::run_attached`]: crate::deploy::Deployer::run_attached

use super::command::RunRequest;
use super::{Connection, errors};
use crate::accounts::Principal;
use crate::deploy::{AttachedRun, Terminal};
use crate::domain::User;
use crate::runtime::Output;
use crate::services::Services;
use futures_util::StreamExt;
use russh::ChannelId;
use russh::ChannelMsg;
use russh::server::{Msg, Session};
use std::sync::Arc;
use tokio::io::{AsyncWrite, AsyncWriteExt};

impl Connection {
    /// Hands the channel to a run of `request`.
    pub(super) fn start_run(
        &mut self,
        channel: ChannelId,
        user: User,
        request: RunRequest,
        session: &mut Session,
    ) -> Result<(), russh::Error> {
        let Some(opened) = self.channels.remove(&channel) else {
            return Ok(());
        };
        session.channel_success(channel)?;
        tracing::info!(
            peer = %self.peer,
            user = %user.username,
            app = %request.app,
            tty = opened.terminal.is_some(),
            "ssh run"
        );
        tokio::spawn(serve(
            self.services.clone(),
            self.principal(user),
            request,
            opened.channel,
            opened.terminal,
        ));
        Ok(())
    }
}

/// Runs the request on the channel until the command ends; then exit status, EOF, close.
pub(super) async fn serve(
    services: Arc<Services>,
    who: Principal,
    request: RunRequest,
    channel: russh::Channel<Msg>,
    terminal: Option<Terminal>,
) {
    let (mut reader, writer) = channel.split();
    let mut stderr = writer.make_writer_ext(Some(1));
    let app = request.app.as_str().to_string();
    let started = match services.apps.get(&who, &app) {
        Ok(inst) => {
            services
                .deployer
                .run_attached(&inst, &who, request.command, terminal, true)
                .await
        }
        Err(e) => Err(e),
    };
    let code = match started {
        Err(e) => {
            let line = errors::error(&e, &app);
            let _ = stderr.write_all(format!("{line}\n").as_bytes()).await;
            1
        }
        Ok(run) => {
            let mut stdout = writer.make_writer();
            match pump(run, &mut reader, &mut stdout, &mut stderr).await {
                Ok(record) => {
                    if let Some(why) = &record.error {
                        let line = format!("scalefog: run {} of {app}: {why}\n", record.id);
                        let _ = stderr.write_all(line.as_bytes()).await;
                    }
                    record.exit_status()
                }
                Err(e) => {
                    let line = errors::error(&e, &app);
                    let _ = stderr.write_all(format!("{line}\n").as_bytes()).await;
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

/// Copies the run's output to the channel and the channel's input to the run until the run's
/// output ends, then finishes it.
async fn pump(
    attached: AttachedRun,
    reader: &mut russh::ChannelReadHalf,
    stdout: &mut (impl AsyncWrite + Unpin + Send),
    stderr: &mut (impl AsyncWrite + Unpin + Send),
) -> crate::domain::Result<crate::domain::RunRecord> {
    let AttachedRun {
        run,
        mut output,
        mut input,
    } = attached;
    let tty = run.record.tty;
    let copy_out = async {
        // Once the client is gone, the output is still drained so the command can end.
        let mut client_gone = false;
        while let Some(item) = output.next().await {
            let (to, bytes) = match item {
                Ok(Output::Stdout(b)) => (&mut *stdout as &mut (dyn AsyncWrite + Unpin + Send), b),
                Ok(Output::Stderr(b)) => (&mut *stderr as &mut (dyn AsyncWrite + Unpin + Send), b),
                Err(e) => {
                    tracing::warn!(error = %e, "lost a run's output");
                    break;
                }
            };
            if !client_gone && to.write_all(&bytes).await.is_err() {
                client_gone = true;
                run.interrupt().await;
            }
        }
        let _ = stdout.flush().await;
    };
    let copy_in = async {
        loop {
            match reader.wait().await {
                Some(ChannelMsg::Data { data }) => {
                    if let Some(i) = input.as_mut()
                        && i.write_all(&data).await.is_err()
                    {
                        // The command closed its stdin or ended: further input has nowhere to go.
                        input = None;
                    }
                }
                // A terminal's end of input is a character (^D) the terminal handles; Docker
                // would take the end of an attached terminal's input for the end of its output.
                Some(ChannelMsg::Eof) if !tty => {
                    if let Some(mut i) = input.take() {
                        let _ = i.shutdown().await;
                    }
                }
                Some(ChannelMsg::WindowChange {
                    col_width,
                    row_height,
                    ..
                }) => {
                    let (cols, rows) = (clamp(col_width), clamp(row_height));
                    if let Err(e) = run.resize(cols, rows).await {
                        tracing::debug!(error = %e, "cannot resize a run's terminal");
                    }
                }
                Some(ChannelMsg::Close) | None => {
                    run.interrupt().await;
                    return;
                }
                Some(_) => {}
            }
        }
    };
    {
        tokio::pin!(copy_out, copy_in);
        let mut input_open = true;
        loop {
            tokio::select! {
                () = &mut copy_out => break,
                () = &mut copy_in, if input_open => input_open = false,
            }
        }
    }
    run.finish().await
}

/// A terminal dimension as Docker takes it.
pub(super) fn clamp(n: u32) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}
