//! Scheduled jobs: `app.json`'s `cron` entries (Dokku's shape), and the record of each run.

use super::{Error, Result};
use serde::{Deserialize, Serialize};

/// Most jobs one app may declare.
pub const MAX_CRON_JOBS: usize = 20;
/// Output kept per run: its last bytes.
pub const CRON_OUTPUT_TAIL: usize = 8 * 1024;

/// One job of a release: a command on a schedule (five fields, minute first, UTC).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct CronJob {
    pub command: String,
    pub schedule: String,
}

impl CronJob {
    /// The parsed schedule.
    pub fn cron(&self) -> Result<croner::Cron> {
        parse_schedule(&self.schedule)
    }
}

fn parse_schedule(schedule: &str) -> Result<croner::Cron> {
    // Five fields exactly: a sixth would be seconds, which no job here runs at.
    if schedule.split_whitespace().count() != 5 {
        return Err(Error::DeployFailed(format!(
            "cron schedule '{schedule}' must have five fields (minute hour day month weekday)"
        )));
    }
    schedule
        .parse::<croner::Cron>()
        .map_err(|e| Error::DeployFailed(format!("cron schedule '{schedule}': {e}")))
}

/// The jobs of an `app.json` (`{"cron": [{"command": "…", "schedule": "*/5 * * * *"}]}`); other
/// keys are ignored. An error names the job.
pub fn parse_app_json(text: &str) -> Result<Vec<CronJob>> {
    #[derive(Deserialize)]
    struct AppJson {
        #[serde(default)]
        cron: Vec<CronJob>,
    }
    let parsed: AppJson = serde_json::from_str(text)
        .map_err(|e| Error::DeployFailed(format!("app.json does not parse: {e}")))?;
    if parsed.cron.len() > MAX_CRON_JOBS {
        return Err(Error::DeployFailed(format!(
            "app.json declares {} cron jobs; at most {MAX_CRON_JOBS}",
            parsed.cron.len()
        )));
    }
    for (i, job) in parsed.cron.iter().enumerate() {
        let at = |why: String| Error::DeployFailed(format!("app.json cron job {}: {why}", i + 1));
        if job.command.trim().is_empty() {
            return Err(at("has no command".into()));
        }
        if super::split_command(&job.command).is_none() {
            return Err(at("its command has an unclosed quote".into()));
        }
        job.cron().map_err(|e| at(e.to_string()))?;
    }
    Ok(parsed.cron)
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CronStatus {
    Running,
    Succeeded,
    Failed,
    /// Not started: the job's previous run was still running.
    Skipped,
}

/// One run (or skipped run) of a cron job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CronRun {
    pub id: u64,
    pub app: String,
    pub release: u32,
    pub command: String,
    pub schedule: String,
    /// The minute it was due (Unix seconds).
    pub due_at: i64,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub status: CronStatus,
    pub exit_code: Option<i64>,
    /// The last [`CRON_OUTPUT_TAIL`] bytes of its output, or why it did not run.
    pub output: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_json_jobs_parse_and_bad_ones_name_the_job() {
        let jobs = parse_app_json(
            r#"{"name": "x", "cron": [{"command": "echo hi", "schedule": "*/5 * * * *"}]}"#,
        )
        .unwrap();
        assert_eq!(jobs.len(), 1);
        assert!(parse_app_json("{}").unwrap().is_empty());
        for (text, words) in [
            (
                r#"{"cron": [{"command": "a", "schedule": "* * * * *"}, {"command": "b", "schedule": "61 * * * *"}]}"#,
                "job 2",
            ),
            (
                r#"{"cron": [{"command": "a", "schedule": "* * * *"}]}"#,
                "five fields",
            ),
            (
                r#"{"cron": [{"command": " ", "schedule": "* * * * *"}]}"#,
                "no command",
            ),
            (r#"{"cron": [{"command": "a"}]}"#, "does not parse"),
            ("not json", "does not parse"),
        ] {
            let e = parse_app_json(text).unwrap_err().to_string();
            assert!(e.contains(words), "{text}: {e}");
        }
    }
}
