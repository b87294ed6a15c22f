//! The backup schedule: crontab syntax, and the daemon's loop that runs it.
//!
//! Operators write standard 5-field crontab (`0 3 * * *`), with POSIX
//! day-of-week numbers (0 and 7 are Sunday, `1-5` is Monday–Friday), and
//! optionally a leading seconds field. The `cron` crate only speaks Quartz
//! (Sunday = 1), which would silently shift every weekday, so parsing is
//! croner's, in POSIX mode, with tests pinning the meaning. A bad expression
//! is rejected while the config is read, naming the field that is wrong.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};
use tokio::task::JoinSet;

use super::lock::{BackupLock, Purpose};
use super::metrics::BackupMetrics;
use super::{BackupOptions, BackupOutcome, retention, verify};
use crate::config::{Config, TargetConfig};
use crate::error::Result;

const FIELDS_5: [&str; 5] = ["minute", "hour", "day of month", "month", "day of week"];
const FIELDS_6: [&str; 6] = [
    "second",
    "minute",
    "hour",
    "day of month",
    "month",
    "day of week",
];

/// `backup.schedule`: a parsed crontab expression, or none ("").
#[derive(Clone, Default)]
pub struct CronSchedule {
    parsed: Option<(String, Cron)>,
}

impl CronSchedule {
    /// Parse crontab syntax; the error names the field that is wrong.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(Self::default());
        }
        let cron = parser()
            .parse(text)
            .map_err(|e| explain(text, &e.to_string()))?;
        Ok(Self {
            parsed: Some((text.to_string(), cron)),
        })
    }

    pub fn as_str(&self) -> &str {
        self.parsed.as_ref().map_or("", |(t, _)| t.as_str())
    }

    pub fn is_set(&self) -> bool {
        self.parsed.is_some()
    }

    /// The first time strictly after `after`, on the wall clock of `tz`.
    pub fn next_after(&self, after: DateTime<Utc>, tz: TimeZone) -> Option<DateTime<Utc>> {
        let (_, cron) = self.parsed.as_ref()?;
        cron.find_next_occurrence(&after.with_timezone(&tz.0), false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }
}

fn parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
}

/// Find which field croner rejects by parsing each alone among `*`s.
fn explain(text: &str, croner_message: &str) -> String {
    let fields: Vec<&str> = text.split_whitespace().collect();
    let names: &[&str] = match fields.len() {
        5 => &FIELDS_5,
        6 => &FIELDS_6,
        _ if text.starts_with('@') => {
            return format!(
                "invalid schedule `{text}`: unknown nickname; use @hourly, @daily, @weekly, @monthly, @yearly or a crontab expression"
            );
        }
        n => {
            return format!(
                "invalid schedule `{text}`: {n} fields; expected 5 (minute hour day-of-month month day-of-week, e.g. \"0 3 * * *\") or 6 with a leading seconds field"
            );
        }
    };
    for (i, field) in fields.iter().enumerate() {
        let alone: Vec<&str> = (0..fields.len())
            .map(|j| if i == j { *field } else { "*" })
            .collect();
        if let Err(e) = parser().parse(&alone.join(" ")) {
            return format!(
                "invalid schedule `{text}`: field {} ({}) `{field}` is not valid: {e}; {}",
                i + 1,
                names[i],
                range_hint(names[i])
            );
        }
    }
    format!("invalid schedule `{text}`: {croner_message}")
}

fn range_hint(field: &str) -> &'static str {
    match field {
        "second" | "minute" => "allowed: 0-59, *, lists, ranges and */steps",
        "hour" => "allowed: 0-23, *, lists, ranges and */steps",
        "day of month" => "allowed: 1-31, *, lists, ranges and */steps",
        "month" => "allowed: 1-12 or JAN-DEC, *, lists, ranges and */steps",
        _ => "allowed: 0-7 (0 and 7 are Sunday) or SUN-SAT, *, lists, ranges and */steps",
    }
}

impl PartialEq for CronSchedule {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl fmt::Debug for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl fmt::Display for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for CronSchedule {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CronSchedule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        CronSchedule::parse(&text).map_err(de::Error::custom)
    }
}

/// `backup.timezone`: an IANA zone name such as `Europe/Berlin` (default UTC).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TimeZone(pub chrono_tz::Tz);

impl Default for TimeZone {
    fn default() -> Self {
        Self(chrono_tz::Tz::UTC)
    }
}

impl TimeZone {
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        chrono_tz::Tz::from_str(text.trim()).map(Self).map_err(|_| {
            format!(
                "unknown time zone `{text}`; use an IANA name such as \"UTC\" or \"Europe/Berlin\""
            )
        })
    }
}

impl fmt::Debug for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0.name())
    }
}

impl Serialize for TimeZone {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.0.name())
    }
}

impl<'de> Deserialize<'de> for TimeZone {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        TimeZone::parse(&text).map_err(de::Error::custom)
    }
}

/// The daemon's backup loop: sleep until the next scheduled time, then back
/// up every target with `backup = true`, each in its own task. A target
/// whose previous backup still runs (here or in another process) is skipped
/// and counted. Returns at once when no schedule is configured; runs until
/// the future is dropped (which also stops the backups in flight and removes
/// their temporary files). See [`run_until`] for a stop that waits for that.
pub async fn run(config: Config, targets: Vec<TargetConfig>, metrics: BackupMetrics) -> Result<()> {
    run_until(config, targets, metrics, std::future::pending()).await
}

/// [`run`] until `stop` completes; then the backups in flight are cancelled
/// (pg_dump killed, temporary files removed, each logged and counted as a
/// failure) before this returns.
pub async fn run_until(
    config: Config,
    targets: Vec<TargetConfig>,
    metrics: BackupMetrics,
    stop: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let schedule = &config.backup.schedule;
    if !schedule.is_set() {
        return Ok(());
    }
    let targets: Vec<TargetConfig> = targets.into_iter().filter(|t| t.backup).collect();
    let tz = config.backup.timezone;
    let mut running = JoinSet::new();
    let mut last = Utc::now();
    tokio::pin!(stop);
    loop {
        let Some(next) = schedule.next_after(last.max(Utc::now()), tz) else {
            tracing::warn!(schedule = %schedule, "the backup schedule has no next time; scheduled backups stop");
            return Ok(());
        };
        let wait = (next - Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            // Reap finished backups while waiting, so the set does not grow.
            Some(_) = running.join_next(), if !running.is_empty() => continue,
            () = &mut stop => {
                running.shutdown().await;
                return Ok(());
            }
        }
        last = next;
        for target in &targets {
            let (config, target, metrics) = (config.clone(), target.clone(), metrics.clone());
            running.spawn(async move {
                let _ = backup_and_record(&config, &target, &metrics).await;
            });
        }
    }
}

/// Take a backup and record it in `metrics`, for the daemon and the tests.
/// None (counted as skipped) when a backup of the target is still running,
/// in this process or another one (see [`super::lock`]). Otherwise backs
/// up, runs the restore test when `backup.restore_test` is on, and prunes
/// after a good, verified backup, all under the target's lock.
pub async fn backup_and_record(
    config: &Config,
    target: &TargetConfig,
    metrics: &BackupMetrics,
) -> Option<Result<BackupOutcome>> {
    let name = target.name.as_str();
    if !metrics.try_start(name) {
        tracing::warn!(target = %name, "scheduled backup skipped: the previous one is still running");
        return None;
    }
    match BackupLock::try_acquire(&config.backup.dir, name, Purpose::Scheduled) {
        Ok(Ok(lock)) => Some(backup_started(config, target, metrics, &lock).await),
        Ok(Err(busy)) => {
            metrics.skipped(name);
            tracing::warn!(target = %name, "scheduled backup skipped: {}", busy.into_error());
            None
        }
        Err(e) => {
            metrics.failed(name, 0.0);
            tracing::error!(target = %name, "backup failed: {e}");
            Some(Err(e))
        }
    }
}

/// Clears `running` even when the task is aborted mid-backup.
struct RunningGuard<'a> {
    metrics: &'a BackupMetrics,
    target: &'a str,
    started: std::time::Instant,
    done: bool,
}

impl Drop for RunningGuard<'_> {
    /// Not done: the task was cancelled (SIGTERM, or a reload that changed
    /// the backup settings) while the backup ran.
    fn drop(&mut self) {
        if !self.done {
            let seconds = self.started.elapsed().as_secs_f64();
            self.metrics.failed(self.target, seconds);
            tracing::warn!(
                target = %self.target,
                seconds = %format!("{seconds:.1}"),
                "scheduled backup cancelled (the daemon is stopping or the backup settings changed): pg_dump stopped, its unfinished file removed; counted as a failure"
            );
        }
    }
}

async fn backup_started(
    config: &Config,
    target: &TargetConfig,
    metrics: &BackupMetrics,
    lock: &BackupLock,
) -> Result<BackupOutcome> {
    tracing::info!(target = %target.name, "scheduled backup started");
    let mut guard = RunningGuard {
        metrics,
        target: target.name.as_str(),
        started: std::time::Instant::now(),
        done: false,
    };
    let result = backup_and_verify(config, target, lock).await;
    guard.done = true;
    let elapsed = guard.started.elapsed().as_secs_f64();
    match &result {
        Ok(outcome) => {
            let m = &outcome.manifest;
            let verified = m.verified() == Some(true);
            metrics.succeeded(
                target.name.as_str(),
                m.finished_at.timestamp_millis() as f64 / 1000.0,
                elapsed,
                m.size_bytes,
                verified,
            );
            tracing::info!(
                target = %target.name,
                path = %outcome.path.display(),
                size = m.size_bytes,
                seconds = %format!("{elapsed:.1}"),
                verified,
                "scheduled backup finished"
            );
            if verified {
                match retention::prune(config, target.name.as_str(), false) {
                    Ok(report) if !report.deleted.is_empty() => {
                        tracing::info!(target = %target.name, deleted = report.deleted.len(), "old backups pruned")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(target = %target.name, "pruning failed: {e}"),
                }
            }
        }
        Err(e) => {
            metrics.failed(target.name.as_str(), elapsed);
            tracing::error!(target = %target.name, seconds = %format!("{elapsed:.1}"), "scheduled backup failed: {e}");
        }
    }
    result
}

async fn backup_and_verify(
    config: &Config,
    target: &TargetConfig,
    lock: &BackupLock,
) -> Result<BackupOutcome> {
    let options = BackupOptions {
        purpose: Purpose::Scheduled,
        ..BackupOptions::default()
    };
    let mut outcome = super::dump::take_locked(config, target, &options, lock).await?;
    if config.backup.restore_test {
        // A failed restore test leaves the backup in place, marked unverified.
        match verify::verify(config, Some(target), &outcome.path, true).await {
            Ok(report) => outcome.manifest = report.manifest,
            Err(e) => {
                tracing::error!(target = %target.name, path = %outcome.path.display(), "restore test failed: {e}");
                outcome.manifest.verification = Some(super::manifest::Verification {
                    at: Utc::now(),
                    ok: false,
                    restore_test: true,
                    error: Some(e.to_string()),
                });
            }
        }
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, TimeZone as _, Timelike, Weekday};

    fn at(y: i32, m: u32, d: u32, h: u32, min: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, s).unwrap()
    }

    fn next(expr: &str, after: DateTime<Utc>) -> DateTime<Utc> {
        CronSchedule::parse(expr)
            .unwrap()
            .next_after(after, TimeZone::default())
            .unwrap()
    }

    fn weekdays(expr: &str) -> Vec<Weekday> {
        // 2024-06-03 is a Monday; walk two weeks of daily firings.
        let mut t = at(2024, 6, 2, 12, 0, 0);
        let mut days = Vec::new();
        for _ in 0..10 {
            t = next(expr, t);
            days.push(t.weekday());
        }
        days
    }

    #[test]
    fn one_to_five_is_monday_to_friday() {
        use Weekday::*;
        assert_eq!(
            weekdays("0 3 * * 1-5"),
            vec![Mon, Tue, Wed, Thu, Fri, Mon, Tue, Wed, Thu, Fri]
        );
    }

    #[test]
    fn zero_and_seven_are_sunday() {
        for expr in ["0 3 * * 0", "0 3 * * 7", "0 3 * * SUN"] {
            assert!(weekdays(expr).iter().all(|d| *d == Weekday::Sun), "{expr}");
        }
        assert_eq!(weekdays("0 3 * * 6")[0], Weekday::Sat);
    }

    #[test]
    fn five_fields_fire_on_the_minute_and_six_fields_on_the_second() {
        let t = next("0 3 * * *", at(2024, 6, 3, 3, 0, 0));
        assert_eq!((t.day(), t.hour(), t.minute(), t.second()), (4, 3, 0, 0));
        let t = next("*/5 * * * * *", at(2024, 6, 3, 3, 0, 1));
        assert_eq!((t.minute(), t.second()), (0, 5));
        let t = next("@daily", at(2024, 6, 3, 3, 0, 0));
        assert_eq!((t.day(), t.hour(), t.minute()), (4, 0, 0));
    }

    #[test]
    fn the_timezone_moves_the_wall_clock() {
        let berlin = TimeZone::parse("Europe/Berlin").unwrap();
        let t = CronSchedule::parse("0 3 * * *")
            .unwrap()
            .next_after(at(2024, 6, 3, 12, 0, 0), berlin)
            .unwrap();
        // 03:00 in Berlin in summer (UTC+2) is 01:00 UTC.
        assert_eq!(t, at(2024, 6, 4, 1, 0, 0));
        assert!(
            TimeZone::parse("Mars/Olympus")
                .unwrap_err()
                .contains("IANA")
        );
    }

    #[test]
    fn malformed_expressions_name_the_field() {
        for (expr, field) in [
            ("0 3 32 * *", "field 3 (day of month) `32`"),
            ("60 3 * * *", "field 1 (minute) `60`"),
            ("0 24 * * *", "field 2 (hour) `24`"),
            ("0 3 * 13 *", "field 4 (month) `13`"),
            ("0 3 * * 8", "field 5 (day of week) `8`"),
            ("61 0 3 * * *", "field 1 (second) `61`"),
            ("0 3 * * MONDAY", "field 5 (day of week)"),
        ] {
            let err = CronSchedule::parse(expr).unwrap_err();
            assert!(err.contains(field), "{expr}: {err}");
        }
        let err = CronSchedule::parse("0 3 * *").unwrap_err();
        assert!(err.contains("4 fields; expected 5"), "{err}");
        assert!(CronSchedule::parse("0 0 3 * * * 2030").is_err());
        assert!(!CronSchedule::parse("").unwrap().is_set());
    }
}
