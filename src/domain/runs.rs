//! The record of a one-off run: a command run once in a new process of an app's current release.

use serde::{Deserialize, Serialize};

/// The most output a run keeps: its last 64 KiB.
pub const MAX_RUN_OUTPUT: usize = 64 * 1024;
/// Runs of one app that may be running at once: each holds the app's memory, so the cap keeps
/// one owner from multiplying it without limit.
pub const MAX_RUNNING_RUNS_PER_APP: usize = 5;
/// Finished runs kept per app; older ones are forgotten as new ones finish.
pub const KEEP_FINISHED_RUNS: usize = 50;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    /// Exited with code 0.
    Succeeded,
    /// Exited with another code, or was killed (memory).
    Failed,
    /// Ran past `run_timeout` and was stopped.
    TimedOut,
    /// Ended by something else than itself: the SSH client went away, or Scalefog stopped.
    Interrupted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::TimedOut => "timed_out",
            RunStatus::Interrupted => "interrupted",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    /// Store sequence number; its process is `run.<id>`.
    pub id: u64,
    pub app: String,
    pub release: u32,
    pub command: Vec<String>,
    /// Username of who started it.
    pub user: String,
    /// Started through the API, output kept; otherwise attached to an SSH session.
    pub detached: bool,
    /// It had a terminal (`ssh -t`).
    pub tty: bool,
    pub status: RunStatus,
    pub exit_code: Option<i64>,
    /// Why it ended when not by itself (timeout, memory, interruption).
    pub error: Option<String>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    /// The last [`MAX_RUN_OUTPUT`] bytes of its stdout and stderr together, as text.
    pub output: String,
    /// Earlier output was dropped.
    pub output_truncated: bool,
}

impl RunRecord {
    /// The exit status an SSH client gets: the command's own, and never 0 for a run that did
    /// not succeed.
    pub fn exit_status(&self) -> u32 {
        match (self.status, self.exit_code) {
            (RunStatus::Succeeded, _) => 0,
            (_, Some(code)) if (1..=255).contains(&code) => code as u32,
            _ => 1,
        }
    }
}

/// The last [`MAX_RUN_OUTPUT`] bytes of a stream of output.
#[derive(Debug, Default, Clone)]
pub struct OutputTail {
    bytes: std::collections::VecDeque<u8>,
    pub truncated: bool,
}

impl OutputTail {
    pub fn push(&mut self, chunk: &[u8]) {
        if chunk.len() > MAX_RUN_OUTPUT {
            self.truncated = true;
        }
        let chunk = &chunk[chunk.len().saturating_sub(MAX_RUN_OUTPUT)..];
        // At most what is held, since the chunk alone fits.
        let over = (self.bytes.len() + chunk.len()).saturating_sub(MAX_RUN_OUTPUT);
        if over > 0 {
            self.truncated = true;
            self.bytes.drain(..over);
        }
        self.bytes.extend(chunk);
    }

    /// As text; a character cut by the bound or not UTF-8 shows as U+FFFD.
    pub fn text(&self) -> String {
        let (a, b) = self.bytes.as_slices();
        String::from_utf8_lossy(&[a, b].concat()).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_keeps_the_last_64_kib_and_says_it_dropped_some() {
        let mut t = OutputTail::default();
        t.push(b"hello\n");
        assert_eq!(t.text(), "hello\n");
        assert!(!t.truncated);
        t.push(&vec![b'a'; MAX_RUN_OUTPUT]);
        t.push(b"end");
        let text = t.text();
        assert_eq!(text.len(), MAX_RUN_OUTPUT);
        assert!(text.ends_with("aaend") && !text.contains("hello"));
        assert!(t.truncated);
        let mut big = OutputTail::default();
        big.push(&vec![b'b'; 2 * MAX_RUN_OUTPUT]);
        assert_eq!(big.text().len(), MAX_RUN_OUTPUT);
        assert!(big.truncated);
    }
}
