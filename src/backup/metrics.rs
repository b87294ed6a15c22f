//! What the daemon exports about backups, per target.
//!
//! One shared, clonable handle: the scheduler writes to it, the daemon's
//! `/metrics` reads it. It also holds the in-process "a backup of this
//! target runs" flag behind `backup_running` (the check and the set happen
//! under one mutex); exclusion across processes is [`super::lock`]'s.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::report::Measurement;

/// The backup state of one target.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TargetBackupState {
    /// Unix time of the last good backup.
    pub last_success_timestamp: Option<f64>,
    pub last_duration_seconds: Option<f64>,
    pub last_size_bytes: Option<u64>,
    pub failures_total: u64,
    pub running: bool,
    /// Whether the last backup passed verification.
    pub last_verify_success: Option<bool>,
    pub skipped_total: u64,
}

/// A clonable, thread-safe handle on every target's backup state.
#[derive(Clone, Debug, Default)]
pub struct BackupMetrics {
    inner: Arc<Mutex<BTreeMap<String, TargetBackupState>>>,
}

impl BackupMetrics {
    /// A handle that reports these targets from the start (counters at 0).
    pub fn new<'a>(targets: impl IntoIterator<Item = &'a str>) -> Self {
        let metrics = Self::default();
        {
            let mut map = metrics.lock();
            for target in targets {
                map.entry(target.to_string()).or_default();
            }
        }
        metrics
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, TargetBackupState>> {
        // A panic elsewhere while holding the lock leaves plain numbers behind: keep using them.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of one target's state.
    pub fn state(&self, target: &str) -> TargetBackupState {
        self.lock().get(target).cloned().unwrap_or_default()
    }

    /// Mark a backup of `target` as running. False (and counted as skipped)
    /// when one is already running.
    pub fn try_start(&self, target: &str) -> bool {
        let mut map = self.lock();
        let state = map.entry(target.to_string()).or_default();
        if state.running {
            state.skipped_total += 1;
            return false;
        }
        state.running = true;
        true
    }

    /// Undo [`Self::try_start`] and count a skip: another process holds
    /// the target's backup lock.
    pub fn skipped(&self, target: &str) {
        let mut map = self.lock();
        let state = map.entry(target.to_string()).or_default();
        state.running = false;
        state.skipped_total += 1;
    }

    /// Record a good backup (and whether it verified) and clear `running`.
    pub fn succeeded(
        &self,
        target: &str,
        finished_at: f64,
        duration: f64,
        size: u64,
        verified: bool,
    ) {
        let mut map = self.lock();
        let state = map.entry(target.to_string()).or_default();
        state.running = false;
        state.last_duration_seconds = Some(duration);
        state.last_verify_success = Some(verified);
        if verified {
            state.last_success_timestamp = Some(finished_at);
            state.last_size_bytes = Some(size);
        } else {
            state.failures_total += 1;
        }
    }

    /// Record a failed backup and clear `running`.
    pub fn failed(&self, target: &str, duration: f64) {
        let mut map = self.lock();
        let state = map.entry(target.to_string()).or_default();
        state.running = false;
        state.failures_total += 1;
        state.last_duration_seconds = Some(duration);
        state.last_verify_success = Some(false);
    }

    /// Every target's metrics, names without the `pgwarden_` prefix; the
    /// daemon adds the prefix and the `target` label.
    pub fn measurements(&self) -> Vec<(String, Measurement)> {
        let map = self.lock();
        let mut out = Vec::new();
        for (target, s) in map.iter() {
            let mut push = |m: Measurement| out.push((target.clone(), m));
            if let Some(t) = s.last_success_timestamp {
                push(Measurement::gauge(
                    "backup_last_success_timestamp_seconds",
                    "Unix time of the last good backup",
                    t,
                ));
            }
            if let Some(d) = s.last_duration_seconds {
                push(Measurement::gauge(
                    "backup_last_duration_seconds",
                    "Duration of the last backup",
                    d,
                ));
            }
            if let Some(size) = s.last_size_bytes {
                push(Measurement::gauge(
                    "backup_last_size_bytes",
                    "Size of the last good backup",
                    size as f64,
                ));
            }
            push(Measurement::counter(
                "backup_failures_total",
                "Failed backups",
                s.failures_total as f64,
            ));
            push(Measurement::gauge(
                "backup_running",
                "1 while a backup runs",
                f64::from(u8::from(s.running)),
            ));
            if let Some(v) = s.last_verify_success {
                push(Measurement::gauge(
                    "backup_last_verify_success",
                    "1 if the last backup passed verification",
                    f64::from(u8::from(v)),
                ));
            }
            push(Measurement::counter(
                "backup_skipped_total",
                "Scheduled backups skipped because one was still running (in any process)",
                s.skipped_total as f64,
            ));
        }
        out
    }

    /// One metric's value for one target, for tests and the CLI.
    pub fn value(&self, target: &str, metric: &str) -> Option<f64> {
        self.measurements()
            .into_iter()
            .find(|(t, m)| t == target && m.metric == metric)
            .map(|(_, m)| m.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_start_is_skipped_and_counted() {
        let m = BackupMetrics::new(["a"]);
        assert_eq!(m.value("a", "backup_failures_total"), Some(0.0));
        assert!(m.try_start("a"));
        assert_eq!(m.value("a", "backup_running"), Some(1.0));
        assert!(!m.try_start("a"));
        assert_eq!(m.value("a", "backup_skipped_total"), Some(1.0));
        m.succeeded("a", 100.0, 2.0, 42, true);
        assert_eq!(m.value("a", "backup_running"), Some(0.0));
        assert_eq!(m.value("a", "backup_last_size_bytes"), Some(42.0));
        assert_eq!(m.value("a", "backup_last_verify_success"), Some(1.0));
        assert!(m.try_start("a"));
        m.failed("a", 1.0);
        assert_eq!(m.value("a", "backup_failures_total"), Some(1.0));
        assert_eq!(
            m.value("a", "backup_last_success_timestamp_seconds"),
            Some(100.0)
        );
        assert_eq!(m.value("a", "backup_last_verify_success"), Some(0.0));
    }
}
