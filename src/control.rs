//! The control socket: a unix socket in the data dir through which local commands reach the
//! running server (redb is locked by it). Only the data dir's owner can connect (mode 0600).
//!
//! Protocol: one request line, one answer line: `backup <absolute path>` →
//! `ok <repositories> <bytes>` or `error <text>`.

use crate::backup::{Paths, Written};
use crate::store::Store;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(crate::backup::layout::CONTROL_SOCKET)
}

/// Binds the socket, replacing a stale one left by a crash.
pub fn bind(data_dir: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let path = socket_path(data_dir);
    let _ = std::fs::remove_file(&path);
    let l = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

pub async fn serve(listener: UnixListener, store: Store, paths: Paths) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (store, paths) = (store.clone(), paths.clone());
        tokio::spawn(async move {
            let (rd, mut wr) = stream.into_split();
            let mut line = String::new();
            if BufReader::new(rd).read_line(&mut line).await.is_err() {
                return;
            }
            let answer = match line.trim().split_once(' ') {
                Some(("backup", path)) => {
                    let path = PathBuf::from(path);
                    let done = tokio::task::spawn_blocking(move || {
                        crate::backup::create(&store, &paths, &path)
                    })
                    .await;
                    match done {
                        Ok(Ok(w)) => format!("ok {} {}", w.repositories, w.bytes),
                        Ok(Err(e)) => format!("error {e}"),
                        Err(e) => format!("error {e}"),
                    }
                }
                _ => "error unknown request".to_string(),
            };
            let _ = wr.write_all(format!("{answer}\n").as_bytes()).await;
        });
    }
}

/// Asks a running server for a backup. `None` when no server listens on the data dir.
pub async fn request_backup(data_dir: &Path, dest: &Path) -> Option<Result<Written, String>> {
    let mut s = UnixStream::connect(socket_path(data_dir)).await.ok()?;
    s.write_all(format!("backup {}\n", dest.display()).as_bytes())
        .await
        .ok()?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).await.ok()?;
    let line = line.trim();
    Some(match line.strip_prefix("ok ") {
        Some(counts) => {
            let mut n = counts.split(' ').map(|x| x.parse::<u64>().unwrap_or(0));
            Ok(Written {
                repositories: n.next().unwrap_or(0) as usize,
                bytes: n.next().unwrap_or(0),
            })
        }
        None => Err(line.trim_start_matches("error ").to_string()),
    })
}
