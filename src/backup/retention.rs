//! Which backups to keep: the last N, plus grandfather-father-son.
//!
//! Of the good backups (present and verified) of one target, newest first:
//! the newest `keep_last` are kept; then, for `daily`, the newest backup of
//! each of the most recent `daily` calendar days that have a backup is
//! kept, and likewise for ISO weeks (`weekly`) and months (`monthly`), on
//! the wall clock of `backup.timezone`. Everything else good is deleted.
//! Backups that failed verification or lost their file are left alone for
//! an operator to look at; they never count towards a rule. Because
//! `keep_last` is at least 1, the newest good backup is never deleted.
//! Pruning also removes temporary files left by pgwarden processes that
//! died mid-backup.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike, Utc};
use serde::Serialize;

use super::RetentionConfig;
use super::catalog;
use super::manifest::Manifest;
use crate::config::Config;
use crate::error::{Result, io_error};

/// The verdict on one backup.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Decision {
    pub path: PathBuf,
    pub started_at: DateTime<Utc>,
    /// Why it is kept: `last`, `daily`, `weekly`, `monthly`; empty = delete.
    pub reasons: Vec<&'static str>,
}

impl Decision {
    pub fn keep(&self) -> bool {
        !self.reasons.is_empty()
    }
}

/// The calendar period (day, ISO week, month) a time falls in.
type PeriodOf = fn(DateTime<chrono_tz::Tz>) -> (i32, u32);

/// Decide over good backups (any order); returns newest first.
pub fn plan(
    backups: &[(PathBuf, DateTime<Utc>)],
    rules: &RetentionConfig,
    tz: chrono_tz::Tz,
) -> Vec<Decision> {
    let mut sorted: Vec<&(PathBuf, DateTime<Utc>)> = backups.iter().collect();
    sorted.sort_by(|a, b| (b.1, &b.0).cmp(&(a.1, &a.0)));
    let mut decisions: Vec<Decision> = sorted
        .iter()
        .enumerate()
        .map(|(i, (path, at))| Decision {
            path: path.clone(),
            started_at: *at,
            reasons: if (i as u64) < rules.keep_last.get() {
                vec!["last"]
            } else {
                Vec::new()
            },
        })
        .collect();
    let rules_by_period: [(&'static str, u64, PeriodOf); 3] = [
        ("daily", rules.daily.get(), |t| (t.year(), t.ordinal())),
        ("weekly", rules.weekly.get(), |t| {
            let w = t.iso_week();
            (w.year(), w.week())
        }),
        ("monthly", rules.monthly.get(), |t| (t.year(), t.month())),
    ];
    for (reason, count, period_of) in rules_by_period {
        let mut seen = BTreeSet::new();
        for decision in decisions.iter_mut() {
            let period = period_of(decision.started_at.with_timezone(&tz));
            // Newest first, so the first backup of a period is its newest.
            if seen.len() as u64 >= count && !seen.contains(&period) {
                break;
            }
            if seen.insert(period) {
                decision.reasons.push(reason);
            }
        }
    }
    decisions
}

#[derive(Clone, Debug, Serialize)]
pub struct PruneReport {
    pub target: String,
    pub dry_run: bool,
    pub kept: Vec<Decision>,
    pub deleted: Vec<Decision>,
    /// Temporary files of dead pgwarden processes, removed too.
    pub stale_temporaries: Vec<PathBuf>,
}

/// Apply the retention rules to `target`'s backups in `backup.dir`.
pub fn prune(config: &Config, target: &str, dry_run: bool) -> Result<PruneReport> {
    let good: Vec<(PathBuf, DateTime<Utc>)> = catalog::list(&config.backup.dir)?
        .into_iter()
        .filter(|e| e.manifest.target == target && e.good())
        .map(|e| (e.path, e.manifest.started_at))
        .collect();
    let (kept, deleted): (Vec<Decision>, Vec<Decision>) =
        plan(&good, &config.backup.retention, config.backup.timezone.0)
            .into_iter()
            .partition(Decision::keep);
    if !dry_run {
        for decision in &deleted {
            delete_backup(&decision.path)?;
        }
    }
    let stale_temporaries = catalog::remove_stale_temporaries(&config.backup.dir, dry_run)?;
    Ok(PruneReport {
        target: target.to_string(),
        dry_run,
        kept,
        deleted,
        stale_temporaries,
    })
}

/// Remove a backup, then its manifest (so a crash between leaves a listed
/// "missing" entry rather than an unlisted file).
fn delete_backup(path: &Path) -> Result<()> {
    let removed = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    removed.map_err(|e| io_error("delete", path, e))?;
    let manifest = Manifest::path_for(path);
    std::fs::remove_file(&manifest).map_err(|e| io_error("delete", &manifest, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Bounded;
    use chrono::TimeZone;

    fn rules(keep_last: u64, daily: u64, weekly: u64, monthly: u64) -> RetentionConfig {
        RetentionConfig {
            keep_last: Bounded::new(keep_last),
            daily: Bounded::new(daily),
            weekly: Bounded::new(weekly),
            monthly: Bounded::new(monthly),
        }
    }

    /// Backups at 03:00 and 15:00 UTC every day from 2024-01-01 to 2024-03-31.
    fn calendar() -> Vec<(PathBuf, DateTime<Utc>)> {
        let start = Utc.with_ymd_and_hms(2024, 1, 1, 3, 0, 0).unwrap();
        (0..91 * 2)
            .map(|i| {
                let at = start + chrono::Duration::hours(12 * i);
                (PathBuf::from(at.format("b_%Y%m%d_%H%M").to_string()), at)
            })
            .collect()
    }

    fn kept(decisions: &[Decision]) -> Vec<String> {
        decisions
            .iter()
            .filter(|d| d.keep())
            .map(|d| d.path.display().to_string())
            .collect()
    }

    #[test]
    fn grandfather_father_son_keeps_exactly_these() {
        let decisions = plan(&calendar(), &rules(2, 3, 3, 3), chrono_tz::Tz::UTC);
        assert_eq!(
            kept(&decisions),
            vec![
                "b_20240331_1500", // last, daily, weekly (Sun, ISO week 13), monthly (March)
                "b_20240331_0300", // last
                "b_20240330_1500", // daily
                "b_20240329_1500", // daily
                "b_20240324_1500", // weekly: ISO week 12 ends Sunday 24th
                "b_20240317_1500", // weekly: week 11
                "b_20240229_1500", // monthly: February
                "b_20240131_1500", // monthly: January
            ]
        );
        assert_eq!(decisions.len(), 182);
        assert_eq!(
            decisions[0].reasons,
            vec!["last", "daily", "weekly", "monthly"]
        );
    }

    #[test]
    fn the_newest_backup_is_always_kept() {
        let decisions = plan(&calendar(), &rules(1, 0, 0, 0), chrono_tz::Tz::UTC);
        assert_eq!(kept(&decisions), vec!["b_20240331_1500"]);
    }

    #[test]
    fn days_follow_the_configured_timezone() {
        // 23:30 UTC on the 1st is already the 2nd in Berlin.
        let a = Utc.with_ymd_and_hms(2024, 6, 1, 20, 0, 0).unwrap();
        let b = Utc.with_ymd_and_hms(2024, 6, 1, 23, 30, 0).unwrap();
        let backups = vec![(PathBuf::from("a"), a), (PathBuf::from("b"), b)];
        let daily = rules(1, 2, 0, 0);
        assert_eq!(kept(&plan(&backups, &daily, chrono_tz::Tz::UTC)), vec!["b"]);
        assert_eq!(
            kept(&plan(&backups, &daily, chrono_tz::Europe::Berlin)),
            vec!["b", "a"]
        );
    }
}
