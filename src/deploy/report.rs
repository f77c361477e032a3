//! What the pusher reads while a deploy runs (Heroku/Dokku-style `remote:` lines), kept as the
//! build log; and the one rule for how an error may be shown there.

use crate::domain::Error;
use crate::locks;
use crate::push::Progress;
use locks::lock;
use std::sync::{Arc, Mutex};

/// Sends lines to the pusher (or nobody) and keeps them for the build log. Config values never
/// pass through here: only keys are ever mentioned.
#[derive(Clone)]
pub struct Reporter {
    progress: Option<Progress>,
    log: Arc<Mutex<String>>,
}

impl Reporter {
    pub(super) fn new(progress: Option<Progress>) -> Reporter {
        Reporter {
            progress,
            log: Arc::default(),
        }
    }

    /// A reporter nobody reads live (rollbacks, restarts, reconcile).
    pub(super) fn silent() -> Reporter {
        Reporter::new(None)
    }

    pub fn line(&self, text: impl Into<String>) {
        let text = text.into();
        {
            let mut log = lock(&self.log);
            log.push_str(&text);
            log.push('\n');
        }
        if let Some(p) = &self.progress {
            p.line(text);
        }
    }

    /// Everything reported so far.
    pub(super) fn text(&self) -> String {
        lock(&self.log).clone()
    }
}

/// An error as the pusher and the build log may see it: an internal cause goes to the server log
/// only.
pub(super) fn shown(e: &Error) -> String {
    match e {
        Error::Internal(cause) => {
            tracing::error!(error = format!("{cause:#}"), "deploy failed");
            "internal error (the server log has the details)".into()
        }
        other => other.to_string(),
    }
}
