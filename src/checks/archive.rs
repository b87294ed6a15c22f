//! WAL archiving, part of replication: "is archiving failing?" — a failing
//! `archive_command` keeps every WAL segment on disk until pg_wal fills,
//! and leaves point-in-time recovery without the newest WAL. Read from
//! pg_stat_archiver only when `archive_mode` is on (otherwise no series).
//!
//! pg_stat_archiver counts failures in total, not since the last success,
//! so the count at the last success seen is kept between cycles; a failure
//! already going on when pgwarden starts counts from then (at least 1).

use super::Outcome;
use super::metric::Metric;
use super::rows::{col, opt};
use crate::report::Status;

pub const FAILING: Metric = Metric::gauge(
    "archive_failing",
    "1 when the last WAL archiving attempt failed (archive_mode on).",
    &[],
);
pub const FAILURES: Metric = Metric::gauge(
    "archive_failures_since_success",
    "Failed WAL archiving attempts since the last success (archive_mode on).",
    &[],
);
pub const SUCCESS_AGE: Metric = Metric::gauge(
    "archive_last_success_age_seconds",
    "Seconds since the last WAL segment was archived (since the server started when none was).",
    &[],
);

/// One row: NULLs but `on` mean archive_mode is off.
pub const SQL: &str = "SELECT current_setting('archive_mode') <> 'off', \
     coalesce(last_failed_time > coalesce(last_archived_time, '-infinity'), false), \
     failed_count::int8, archived_count::int8, \
     extract(epoch FROM clock_timestamp() - coalesce(last_archived_time, pg_postmaster_start_time()))::float8, \
     last_failed_wal \
     FROM pg_stat_archiver";

#[derive(Debug)]
pub struct Archiver {
    pub on: bool,
    pub failing: bool,
    pub failed: i64,
    pub archived: i64,
    pub success_age: f64,
    pub last_failed_wal: Option<String>,
}

pub fn archiver(row: &tokio_postgres::Row) -> Result<Archiver, String> {
    Ok(Archiver {
        on: col(row, 0)?,
        failing: col(row, 1)?,
        failed: col(row, 2)?,
        archived: col(row, 3)?,
        success_age: col(row, 4)?,
        last_failed_wal: opt(row, 5)?,
    })
}

/// The failure count at the last success pgwarden saw.
#[derive(Debug, Default)]
pub struct Watch {
    failed_at_success: Option<i64>,
}

impl Watch {
    pub fn evaluate(&mut self, a: &Archiver, out: &mut Outcome) {
        if !a.on {
            self.failed_at_success = None;
            return;
        }
        // A counter that went backwards is a stats reset: start again.
        let baseline = self.failed_at_success.filter(|base| *base <= a.failed);
        let since = if !a.failing {
            0
        } else {
            match baseline {
                Some(base) => (a.failed - base).max(1),
                None => 1,
            }
        };
        if !a.failing {
            self.failed_at_success = Some(a.failed);
        } else if baseline.is_none() {
            self.failed_at_success = Some(a.failed - 1);
        }
        out.set(&FAILING, &[], f64::from(u8::from(a.failing)));
        out.set(&FAILURES, &[], since as f64);
        out.set(&SUCCESS_AGE, &[], a.success_age);
        if a.failing {
            out.flag(
                Status::Critical,
                format!(
                    "WAL archiving is failing ({since} failure(s) since the last success, last on {}; last success {:.0} s ago): fix archive_command before pg_wal fills",
                    a.last_failed_wal.as_deref().unwrap_or("?"),
                    a.success_age
                ),
            );
        }
        out.detail(
            "archiver",
            serde_json::json!({"failing": a.failing, "failed_count": a.failed,
                "archived_count": a.archived, "last_failed_wal": a.last_failed_wal}),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archiver(failing: bool, failed: i64, archived: i64) -> Archiver {
        Archiver {
            on: true,
            failing,
            failed,
            archived,
            success_age: 30.0,
            last_failed_wal: failing.then(|| "000000010000000000000003".into()),
        }
    }

    fn value(out: &Outcome, metric: &Metric) -> Option<f64> {
        out.measurements
            .iter()
            .find(|m| m.metric == metric.name)
            .map(|m| m.value)
    }

    #[test]
    fn failures_are_counted_from_the_last_success_seen() {
        let mut watch = Watch::default();
        let mut out = Outcome::new("");
        watch.evaluate(&archiver(false, 4, 10), &mut out);
        assert_eq!(out.status(), Status::Ok, "{out:?}");
        assert_eq!(value(&out, &FAILURES), Some(0.0));
        let mut out = Outcome::new("");
        watch.evaluate(&archiver(true, 7, 10), &mut out);
        assert_eq!(out.status(), Status::Critical, "{out:?}");
        assert_eq!(value(&out, &FAILURES), Some(3.0));
        assert_eq!(value(&out, &FAILING), Some(1.0));
        assert!(
            out.problems[0].contains("000000010000000000000003"),
            "{out:?}"
        );
    }

    #[test]
    fn a_failure_seen_first_counts_from_then_and_archive_mode_off_exports_nothing() {
        let mut watch = Watch::default();
        let mut out = Outcome::new("");
        watch.evaluate(&archiver(true, 40, 10), &mut out);
        assert_eq!(value(&out, &FAILURES), Some(1.0));
        let mut out = Outcome::new("");
        watch.evaluate(&archiver(true, 42, 10), &mut out);
        assert_eq!(value(&out, &FAILURES), Some(3.0));
        let off = Archiver {
            on: false,
            ..archiver(false, 0, 0)
        };
        let mut out = Outcome::new("");
        watch.evaluate(&off, &mut out);
        assert!(out.measurements.is_empty(), "{out:?}");
    }
}
