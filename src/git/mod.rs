//! Git hosting for apps, transport-neutral: each app's bare repository, starting
//! `git receive-pack` / `git upload-pack` for an authorized user, the per-app push lock, and the
//! server side of the `pre-receive` callback that records each push and hands it to the
//! [`PushHandler`](crate::push::PushHandler).
//!
//! The SSH layer authenticates, parses the command and pipes bytes; every decision (who may
//! touch which repository, what a push does) is made here and in `apps`.

pub mod hook;
pub mod repo;

use crate::accounts::Principal;
use crate::apps::{AppResources, Apps};
use crate::domain::{
    AppName, Error, Instance, PushOutcome, PushRecord, PushedRef, Result, User, now,
};
use crate::drain::{CANCELLED, Drain, Work};
use crate::locks;
use crate::push::{Progress, Push, PushHandlers, RefUpdate, Verdict};
use crate::store::Store;
use futures_util::future::BoxFuture;
use hook::HookRequest;
pub use repo::Repos;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::process::Child;

/// What the client asked git to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// `git push`
    ReceivePack,
    /// `git fetch`, `git clone`
    UploadPack,
}

impl Service {
    fn subcommand(self) -> &'static str {
        match self {
            Service::ReceivePack => "receive-pack",
            Service::UploadPack => "upload-pack",
        }
    }
}

/// How long a push handler may take before the push is rejected (builds included).
pub const DEFAULT_PUSH_TIMEOUT: Duration = Duration::from_secs(3600);

#[derive(Clone)]
pub struct Git {
    inner: Arc<Inner>,
}

struct Inner {
    repos: Repos,
    apps: Apps,
    store: Store,
    handlers: PushHandlers,
    socket: PathBuf,
    /// The program the hook runs: this binary, except in tests, where the running executable
    /// is the test harness and the real binary is set here.
    hook_program: RwLock<PathBuf>,
    push_timeout: RwLock<Duration>,
    // std Mutexes: held for a map operation only, never across an await.
    pending: Mutex<HashMap<String, Pending>>,
    locks: Arc<PushLocks>,
    /// Push outcomes are counted here.
    metrics: crate::metrics::Metrics,
    /// The server's work in flight: a push is admitted into it, and a stop waits for it.
    drain: Drain,
}

/// One lock per app, taken by each push for its whole duration.
type PushLocks = Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>;

/// A receive-pack that is running and whose hook has not called back yet.
struct Pending {
    secret: String,
    app: Instance,
    user: User,
    origin: crate::domain::Origin,
    repo_dir: PathBuf,
    called: bool,
}

/// A running git process for one client, with what must live exactly as long as it: the
/// app's push lock and the registration of the push's callback secret.
pub struct GitProcess {
    pub child: Child,
    _lock: Option<tokio::sync::OwnedMutexGuard<()>>,
    _pending: Option<PendingGuard>,
    /// A push's place among the work a stop waits for.
    _work: Option<Work>,
}

struct PendingGuard {
    inner: Arc<Inner>,
    id: String,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        locks::lock(&self.inner.pending).remove(&self.id);
    }
}

impl Git {
    pub fn new(
        data_dir: &Path,
        apps: Apps,
        store: Store,
        handlers: PushHandlers,
        metrics: crate::metrics::Metrics,
        drain: Drain,
    ) -> Git {
        let hook_program = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("scalefog"));
        Git {
            inner: Arc::new(Inner {
                repos: Repos::new(data_dir.join("repos")),
                apps,
                store,
                handlers,
                socket: data_dir.join("hooks.sock"),
                hook_program: RwLock::new(hook_program),
                push_timeout: RwLock::new(DEFAULT_PUSH_TIMEOUT),
                pending: Mutex::default(),
                locks: Arc::default(),
                metrics,
                drain,
            }),
        }
    }

    pub fn repos(&self) -> &Repos {
        &self.inner.repos
    }

    /// The program git's hook execs as `<program> hook pre-receive` (in tests the running
    /// executable is the test harness, not `scalefog`).
    #[cfg(any(test, feature = "test-support"))]
    pub fn set_hook_program(&self, program: impl Into<PathBuf>) {
        *locks::write(&self.inner.hook_program) = program.into();
    }

    #[cfg(any(test, feature = "test-support"))]
    pub fn set_push_timeout(&self, timeout: Duration) {
        *locks::write(&self.inner.push_timeout) = timeout;
    }

    fn push_timeout(&self) -> Duration {
        *locks::read(&self.inner.push_timeout)
    }

    /// The lifecycle hooks that give each app its repository; register with
    /// [`Apps::register_resources`]. A separate value, not `Git` itself: `Git` holds `Apps`,
    /// and `Apps` holding `Git` back would be a reference cycle that keeps the store open.
    pub fn resources(&self) -> Arc<dyn AppResources> {
        Arc::new(RepoResources {
            repos: self.inner.repos.clone(),
            store: self.inner.store.clone(),
            locks: self.inner.locks.clone(),
        })
    }

    /// Starts `git <service>` on the app's repository for `who`, with stdio piped. Access is
    /// the app's: owner or admin, anyone else gets the same `NotFound` as for a missing app.
    /// A push waits for a running push of the same app to finish, saying so on `progress`.
    pub async fn start(
        &self,
        who: &Principal,
        service: Service,
        app: &str,
        git_protocol: Option<&str>,
        progress: &Progress,
    ) -> Result<GitProcess> {
        let inst = self.inner.apps.get(who, app)?;
        if inst.status == crate::domain::InstanceStatus::Deleting {
            // Its repository is going (or gone): neither recreated nor read.
            return Err(Error::Conflict(format!("'{}' is being deleted", inst.name)));
        }
        let name = AppName::parse(&inst.name)?;
        // Repairs an app whose repository is missing (created before repositories existed, or
        // interrupted creation); refreshes the hook.
        let dir = self.inner.repos.create(&name).await?;
        let mut cmd = repo::git_command();
        cmd.current_dir(&dir)
            .arg(service.subcommand())
            .arg(&dir)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            // A client that goes away takes its git process with it.
            .kill_on_drop(true);
        if let Some(p) = git_protocol.filter(|p| valid_git_protocol(p)) {
            cmd.env("GIT_PROTOCOL", p);
        }
        let (lock, pending, work) = match service {
            Service::UploadPack => (None, None, None),
            Service::ReceivePack => {
                // Before the wait for the lock: a stop waits for this push from here on.
                let work = self.inner.drain.begin()?;
                let lock = self.lock_app(&inst.name, progress).await;
                let id = crate::accounts::generate_token();
                let secret = crate::accounts::generate_token();
                cmd.env(hook::ENV_PROGRAM, &*locks::read(&self.inner.hook_program))
                    .env(hook::ENV_SOCKET, &self.inner.socket)
                    .env(hook::ENV_PUSH_ID, &id)
                    .env(hook::ENV_SECRET, &secret)
                    .env(hook::ENV_TIMEOUT, self.push_timeout().as_secs().to_string());
                locks::lock(&self.inner.pending).insert(
                    id.clone(),
                    Pending {
                        secret,
                        app: inst.clone(),
                        user: who.user.clone(),
                        origin: who.origin,
                        repo_dir: dir.clone(),
                        called: false,
                    },
                );
                let guard = PendingGuard {
                    inner: self.inner.clone(),
                    id,
                };
                (Some(lock), Some(guard), Some(work))
            }
        };
        let child = cmd
            .spawn()
            .map_err(|e| Error::internal(format!("starting git {}: {e}", service.subcommand())))?;
        Ok(GitProcess {
            child,
            _lock: lock,
            _pending: pending,
            _work: work,
        })
    }

    /// Takes the app's push lock, telling the pusher when it has to wait for another push.
    async fn lock_app(&self, app: &str, progress: &Progress) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = locks::lock(&self.inner.locks)
            .entry(app.to_string())
            .or_default()
            .clone();
        match lock.clone().try_lock_owned() {
            Ok(guard) => guard,
            Err(_) => {
                progress.line(format!(
                    "scalefog: another push to '{app}' is in progress; waiting for it to finish..."
                ));
                let guard = lock.lock_owned().await;
                progress.line("scalefog: the other push finished; continuing");
                guard
            }
        }
    }

    pub fn socket_path(&self) -> &Path {
        &self.inner.socket
    }

    /// Binds the callback socket (owner only), replacing one left behind by a crash.
    pub fn bind_hook_socket(&self) -> std::io::Result<UnixListener> {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::remove_file(&self.inner.socket);
        let l = UnixListener::bind(&self.inner.socket)?;
        std::fs::set_permissions(&self.inner.socket, std::fs::Permissions::from_mode(0o600))?;
        Ok(l)
    }

    /// Answers hook callbacks until the task is dropped; dropping it also ends the callbacks in
    /// flight (their hooks then reject their pushes).
    pub async fn serve_hooks(self, listener: UnixListener) {
        let mut calls = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let git = self.clone();
                        calls.spawn(async move { git.answer_hook(stream).await });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "hook socket accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(_) = calls.join_next(), if !calls.is_empty() => {}
            }
        }
    }

    async fn answer_hook(&self, stream: UnixStream) {
        let (rd, mut wr) = stream.into_split();
        let mut line = String::new();
        let read = BufReader::new(rd.take(hook::MAX_REQUEST))
            .read_line(&mut line)
            .await;
        let code = match read {
            Ok(_) => match serde_json::from_str::<HookRequest>(&line) {
                Ok(req) => self.decide(req, &mut wr).await,
                Err(_) => {
                    send(&mut wr, "scalefog: malformed push callback; push rejected").await;
                    1
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "reading a hook callback");
                1
            }
        };
        let _ = wr.write_all(format!("x {code}\n").as_bytes()).await;
    }

    /// Checks the callback, records the push, runs the handler; returns the hook's exit code.
    async fn decide(&self, req: HookRequest, wr: &mut (impl AsyncWriteExt + Unpin)) -> i32 {
        let claimed = {
            let mut pending = locks::lock(&self.inner.pending);
            match pending.get_mut(&req.push_id) {
                Some(p) if !p.called && secret_matches(&p.secret, &req.secret) => {
                    p.called = true;
                    Some((p.app.clone(), p.user.clone(), p.origin, p.repo_dir.clone()))
                }
                _ => None,
            }
        };
        if self.inner.drain.is_cancelled() {
            // The stop's timeout ran out before this push reached its deploy: nothing recorded.
            send(wr, &format!("scalefog: {}; push rejected", CANCELLED)).await;
            return 1;
        }
        let Some((app, user, origin, repo_dir)) = claimed else {
            tracing::warn!(push = %req.push_id, "hook callback with an unknown push or a bad secret");
            send(
                wr,
                "scalefog: this push is not known to the server; push rejected",
            )
            .await;
            return 1;
        };
        let push = match build_push(req, app, user, origin, repo_dir) {
            Ok(p) => p,
            Err(e) => {
                send(wr, &format!("scalefog: {e}; push rejected")).await;
                return 1;
            }
        };
        let record = match self.record_start(&push).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "recording a push");
                send(
                    wr,
                    "scalefog: cannot record the push (server error); push rejected",
                )
                .await;
                return 1;
            }
        };
        let (outcome, message, shown) = self.run_handler(push, wr).await;
        self.inner.metrics.push(outcome == PushOutcome::Accepted);
        let code = if outcome == PushOutcome::Accepted {
            0
        } else {
            1
        };
        if let (Some(m), false) = (&message, shown) {
            send(wr, m).await;
        }
        let mut record = record;
        record.outcome = outcome;
        record.message = message;
        record.finished_at = Some(now());
        if let Err(e) = self
            .inner
            .store
            .write_async(move |w| w.put_push_record(&record))
            .await
        {
            tracing::error!(error = %e, "recording a push outcome");
        }
        code
    }

    async fn record_start(&self, push: &Push) -> Result<PushRecord> {
        let mut rec = PushRecord {
            id: 0,
            push_id: push.id.clone(),
            app: push.app.name.clone(),
            user_id: push.user.id,
            username: push.user.username.clone(),
            refs: push
                .updates
                .iter()
                .map(|u| PushedRef {
                    old: u.old.clone(),
                    new: u.new.clone(),
                    name: u.name.clone(),
                })
                .collect(),
            outcome: PushOutcome::Running,
            message: None,
            started_at: now(),
            finished_at: None,
        };
        self.inner
            .store
            .write_async(move |w| {
                rec.id = w.next_id("push")?;
                w.put_push_record(&rec)?;
                Ok(rec)
            })
            .await
    }

    /// Runs the registered handler, streaming its lines; a panic or a timeout rejects the push.
    /// Returns the outcome, the message to record, and whether the pusher has already read it.
    async fn run_handler(
        &self,
        push: Push,
        wr: &mut (impl AsyncWriteExt + Unpin),
    ) -> (PushOutcome, Option<String>, bool) {
        let handler = self.inner.handlers.get();
        let (progress, mut lines) = Progress::channel();
        let app = push.app.name.clone();
        // A task of its own, so that a panicking handler is caught and reported; aborted if this
        // callback is dropped (server shutdown).
        let mut task = AbortOnDrop(tokio::spawn(async move {
            handler.handle(&push, &progress).await
        }));
        let deadline = tokio::time::sleep(self.push_timeout());
        tokio::pin!(deadline);
        let result = loop {
            tokio::select! {
                Some(line) = lines.recv() => send(wr, &line).await,
                r = &mut task.0 => break Some(r),
                _ = &mut deadline => { task.0.abort(); break None; }
            }
        };
        // Lines sent just before the handler returned.
        while let Ok(line) = lines.try_recv() {
            send(wr, &line).await;
        }
        match result {
            Some(Ok(Ok(Verdict::Accepted))) => (PushOutcome::Accepted, None, false),
            Some(Ok(Ok(Verdict::Rejected { reason }))) => {
                (PushOutcome::Rejected, Some(reason), true)
            }
            Some(Ok(Err(e))) => (PushOutcome::Rejected, Some(push_error_message(&e)), false),
            Some(Err(join)) => {
                tracing::error!(app = %app, error = %join, "push handler crashed");
                (
                    PushOutcome::Rejected,
                    Some("scalefog: the push handler crashed; push rejected (the server log has the details)".into()),
                    false,
                )
            }
            None => {
                tracing::warn!(app = %app, "push handler timed out");
                (
                    PushOutcome::Rejected,
                    Some(format!(
                        "scalefog: the push took longer than {} s and was stopped; push rejected",
                        self.push_timeout().as_secs()
                    )),
                    false,
                )
            }
        }
    }
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What a pusher reads when the handler rejects the push. Internal causes stay in the log.
pub fn push_error_message(e: &Error) -> String {
    match e {
        Error::Internal(cause) => {
            tracing::error!(error = format!("{cause:#}"), "push failed");
            "scalefog: internal error; push rejected (the server log has the details)".into()
        }
        other => format!("scalefog: {other}"),
    }
}

fn secret_matches(expected: &str, given: &str) -> bool {
    use subtle::ConstantTimeEq;
    expected.len() == given.len() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

/// `GIT_PROTOCOL` as clients send it (`version=2`, possibly with more `:`-separated keys).
fn valid_git_protocol(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 128
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"=:._-".contains(&b))
}

/// Turns the hook's request into a [`Push`]; the quarantine paths must lie inside the repository.
fn build_push(
    req: HookRequest,
    app: Instance,
    user: User,
    origin: crate::domain::Origin,
    repo_dir: PathBuf,
) -> Result<Push> {
    let updates = req
        .updates
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| parse_update(l))
        .collect::<Result<Vec<_>>>()?;
    let real_dir = std::fs::canonicalize(&repo_dir).unwrap_or_else(|_| repo_dir.clone());
    let inside = |p: &Path| p.starts_with(&repo_dir) || p.starts_with(&real_dir);
    let mut git_env = vec![("GIT_DIR".to_string(), repo_dir.display().to_string())];
    for (k, v) in req.env {
        if !hook::QUARANTINE_ENV.contains(&k.as_str()) {
            continue;
        }
        // Alternates may be a list; each entry must be inside the repository.
        let ok = v
            .split(':')
            .all(|p| repo::normalize_absolute(Path::new(p)).is_some_and(|p| inside(&p)));
        if !ok {
            return Err(Error::invalid(
                "env",
                format!("{k} points outside the repository"),
            ));
        }
        git_env.push((k, v));
    }
    Ok(Push {
        id: req.push_id,
        app,
        user,
        origin,
        updates,
        repo_dir,
        git_env,
    })
}

fn parse_update(line: &str) -> Result<RefUpdate> {
    let bad = || Error::invalid("ref", "malformed ref update from git");
    let mut parts = line.split(' ');
    let (Some(old), Some(new), Some(name), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let is_oid =
        |s: &str| (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit());
    if !is_oid(old) || !is_oid(new) || !name.starts_with("refs/") {
        return Err(bad());
    }
    Ok(RefUpdate {
        old: old.to_string(),
        new: new.to_string(),
        name: name.to_string(),
    })
}

/// One `o` line per line of text.
async fn send(wr: &mut (impl AsyncWriteExt + Unpin), text: &str) {
    for l in text.lines() {
        // A pusher that went away just stops seeing output; the push still completes or fails.
        let _ = wr.write_all(format!("o {l}\n").as_bytes()).await;
    }
}

/// An app's repository and push records follow the app: created with it, deleted with it.
struct RepoResources {
    repos: Repos,
    store: Store,
    locks: Arc<PushLocks>,
}

impl AppResources for RepoResources {
    fn create<'a>(&'a self, app: &'a Instance) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.repos.create(&AppName::parse(&app.name)?).await?;
            Ok(())
        })
    }

    fn remove<'a>(&'a self, app: &'a Instance) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let name = AppName::parse(&app.name)?;
            self.repos.remove(&name).await?;
            locks::lock(&self.locks).remove(name.as_str());
            let app = name.into_string();
            self.store
                .write_async(move |w| w.delete_push_records_of(&app))
                .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ref_updates_must_be_two_object_ids_and_a_ref() {
        let z = "0".repeat(40);
        let a = "a".repeat(40);
        let u = parse_update(&format!("{z} {a} refs/heads/main")).unwrap();
        assert_eq!(u.branch(), Some("main"));
        for bad in [
            format!("{z} {a}"),
            format!("{z} {a} main"),
            format!("{z} xyz refs/heads/main"),
            format!("{z} {a} refs/heads/main extra"),
        ] {
            assert!(parse_update(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn git_protocol_values_are_checked() {
        assert!(valid_git_protocol("version=2"));
        assert!(valid_git_protocol("version=2:object-format=sha256"));
        assert!(!valid_git_protocol("version=2;rm -rf /"));
        assert!(!valid_git_protocol(""));
    }

    #[test]
    fn secrets_compare_exactly() {
        assert!(secret_matches("abc", "abc"));
        assert!(!secret_matches("abc", "abd"));
        assert!(!secret_matches("abc", "ab"));
    }
}
