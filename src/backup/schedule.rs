//! Automatic backups: `backup_schedule` (an interval like `24h`, or a five-field cron expression
//! in UTC) writes an archive into `backup_dir`, which keeps the newest `backup_keep`.

use super::Paths;
use crate::store::Store;
use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// When automatic backups run.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// Every so long, counted from the start of the server.
    Every(Duration),
    /// At the times a cron expression names (UTC).
    Cron(Box<croner::Cron>),
}

impl Schedule {
    /// `90s`, `30m`, `24h`, `7d` (at least a minute apart), or a cron expression of five fields
    /// (`0 3 * * *`). The error says what is expected.
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let text = text.trim();
        let expected =
            "expected an interval like 24h, 30m or 7d, or a cron expression like '0 3 * * *'";
        if text.split_whitespace().count() == 5 {
            return text
                .parse::<croner::Cron>()
                .map(|c| Schedule::Cron(Box::new(c)))
                .map_err(|e| format!("{e}; {expected}"));
        }
        let (digits, unit) = text.split_at(text.trim_end_matches(char::is_alphabetic).len());
        let n: u64 = digits.parse().map_err(|_| expected.to_string())?;
        let secs = match unit {
            "s" => n,
            "m" => n * 60,
            "h" => n * 3600,
            "d" => n * 86_400,
            _ => return Err(expected.to_string()),
        };
        if secs < 60 {
            return Err(format!("backups at least a minute apart; {expected}"));
        }
        Ok(Schedule::Every(Duration::from_secs(secs)))
    }

    /// How long from `now` until the next backup; `None` when the schedule names no future time.
    pub fn wait_from(&self, now: DateTime<Utc>) -> Option<Duration> {
        match self {
            Schedule::Every(d) => Some(*d),
            Schedule::Cron(c) => {
                let next = c.find_next_occurrence(&now, false).ok()?;
                (next - now).to_std().ok()
            }
        }
    }
}

/// The automatic backups' settings.
#[derive(Debug, Clone)]
pub struct Automatic {
    pub schedule: Schedule,
    pub dir: PathBuf,
    /// How many archives `dir` keeps (the newest).
    pub keep: usize,
}

const PREFIX: &str = "scalefog-";
const SUFFIX: &str = ".tar.zst";

/// An archive's name: its UTC time (to the millisecond), so names sort as times do.
pub fn file_name(at: DateTime<Utc>) -> String {
    format!("{PREFIX}{}{SUFFIX}", at.format("%Y%m%dT%H%M%S%.3fZ"))
}

/// Removes the oldest automatic archives in `dir` beyond the newest `keep`; other files are
/// never touched. Returns what it removed.
pub fn prune(dir: &Path, keep: usize) -> std::io::Result<Vec<PathBuf>> {
    let mut ours: Vec<String> = super::sorted_names(dir)?
        .into_iter()
        .filter(|n| n.starts_with(PREFIX) && n.ends_with(SUFFIX))
        .collect();
    let excess = ours.len().saturating_sub(keep);
    let mut removed = Vec::new();
    for name in ours.drain(..excess) {
        let path = dir.join(name);
        std::fs::remove_file(&path)?;
        removed.push(path);
    }
    Ok(removed)
}

/// One automatic backup: a new archive in `backup_dir`, then the oldest beyond `backup_keep`
/// removed. Returns the archive, what it holds, and how many old ones went.
pub fn back_up_now(
    store: &Store,
    paths: &Paths,
    auto: &Automatic,
) -> crate::domain::Result<(PathBuf, super::Written, usize)> {
    std::fs::create_dir_all(&auto.dir)
        .map_err(|e| super::io("creating backup_dir", &auto.dir, e))?;
    let dest = auto.dir.join(file_name(Utc::now()));
    let written = super::create(store, paths, &dest)?;
    let removed = prune(&auto.dir, auto.keep).map_err(|e| super::io("pruning", &auto.dir, e))?;
    Ok((dest, written, removed.len()))
}

/// Writes a backup whenever the schedule says, until the task is dropped. A failed backup is
/// logged and the next one is tried at its time.
pub async fn run(store: Store, paths: Paths, auto: Automatic) {
    loop {
        let Some(wait) = auto.schedule.wait_from(Utc::now()) else {
            tracing::warn!("backup_schedule names no future time; automatic backups stop");
            return;
        };
        tokio::time::sleep(wait).await;
        let (store, paths, auto) = (store.clone(), paths.clone(), auto.clone());
        let done = tokio::task::spawn_blocking(move || back_up_now(&store, &paths, &auto)).await;
        match done {
            Ok(Ok((dest, written, removed))) => tracing::info!(
                archive = %dest.display(),
                bytes = written.bytes,
                repositories = written.repositories,
                removed,
                "automatic backup written"
            ),
            Ok(Err(e)) => tracing::error!(error = %e, "automatic backup failed"),
            Err(e) => tracing::error!(error = %e, "automatic backup task failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn intervals_and_cron_expressions_parse_and_bad_ones_say_what_is_expected() {
        assert!(matches!(Schedule::parse("24h"), Ok(Schedule::Every(d)) if d.as_secs() == 86_400));
        assert!(matches!(Schedule::parse("30m"), Ok(Schedule::Every(d)) if d.as_secs() == 1800));
        assert!(matches!(Schedule::parse("7d"), Ok(Schedule::Every(d)) if d.as_secs() == 604_800));
        let at = Utc.with_ymd_and_hms(2026, 12, 3, 2, 0, 0).unwrap();
        let cron = Schedule::parse("0 3 * * *").unwrap();
        assert_eq!(cron.wait_from(at), Some(Duration::from_secs(3600)));
        for bad in ["", "daily", "10s", "5 x", "24", "61 * * * *"] {
            let e = Schedule::parse(bad).unwrap_err();
            assert!(e.contains("expected"), "{bad}: {e}");
        }
    }

    #[test]
    fn each_automatic_backup_is_a_new_archive_and_only_the_newest_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths {
            data_dir: dir.path().join("data"),
            tls_dir: dir.path().join("data/certs"),
        };
        std::fs::create_dir_all(&paths.data_dir).unwrap();
        let store = Store::open(&paths.data_dir.join(super::super::layout::STORE)).unwrap();
        let auto = Automatic {
            schedule: Schedule::parse("24h").unwrap(),
            dir: dir.path().join("backups"),
            keep: 2,
        };
        let mut made = Vec::new();
        for _ in 0..3 {
            let (archive, _, _) = back_up_now(&store, &paths, &auto).unwrap();
            made.push(archive);
            // Names are to the millisecond.
            std::thread::sleep(Duration::from_millis(5));
        }
        let left = super::super::sorted_names(&auto.dir).unwrap();
        let newest: Vec<String> = made[1..]
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, newest);
        let into = Paths {
            data_dir: dir.path().join("restored"),
            tls_dir: dir.path().join("restored/certs"),
        };
        super::super::restore(&made[2], &into).unwrap();
    }

    #[test]
    fn pruning_keeps_the_newest_archives_and_leaves_other_files_alone() {
        let dir = tempfile::tempdir().unwrap();
        let names: Vec<String> = (1..=4)
            .map(|d| file_name(Utc.with_ymd_and_hms(2026, 12, d, 3, 0, 0).unwrap()))
            .collect();
        for n in &names {
            std::fs::write(dir.path().join(n), "x").unwrap();
        }
        std::fs::write(dir.path().join("mine.tar.zst"), "x").unwrap();
        let removed = prune(dir.path(), 2).unwrap();
        assert_eq!(
            removed,
            vec![dir.path().join(&names[0]), dir.path().join(&names[1])]
        );
        let mut left = super::super::sorted_names(dir.path()).unwrap();
        left.sort();
        assert_eq!(
            left,
            vec![
                "mine.tar.zst".to_string(),
                names[2].clone(),
                names[3].clone()
            ]
        );
    }
}
