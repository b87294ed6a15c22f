//! The server's own state, part of performance: checkpoints (how long
//! since the last one, and which share of them were requested — forced by
//! `max_wal_size` or by hand — rather than timed), settings changed but
//! waiting for a restart, and the server's system identifier: when it
//! changes, the target's address now points at a different cluster (a
//! failover to a rebuilt server, a DNS or proxy change), whose history,
//! backups and statistics are not the ones pgwarden was watching.

use super::metric::Metric;
use super::rows::{col, opt};
use super::{ChecksConfig, Outcome, at_least};
use crate::report::Status;

pub const CHECKPOINT_AGE: Metric = Metric::gauge(
    "checkpoint_age_seconds",
    "Seconds since the last checkpoint started (an idle server skips checkpoints).",
    &[],
);
pub const REQUESTED: Metric = Metric::gauge(
    "checkpoints_requested_ratio",
    "Share of requested (not timed) checkpoints among those of the latest interval that had any, 0-1.",
    &[],
);
pub const PENDING_RESTART: Metric = Metric::gauge(
    "settings_pending_restart",
    "Settings changed in the configuration that take effect only after a restart.",
    &[],
);
pub const IDENTIFIER_CHANGED: Metric = Metric::gauge(
    "system_identifier_changed",
    "1 when the server's system identifier differs from the one pgwarden first saw at this address.",
    &[],
);

/// One row; the checkpoint counters moved to pg_stat_checkpointer in 17.
pub fn sql(version_num: i64) -> String {
    let (timed, requested, view) = if version_num >= 170000 {
        ("num_timed", "num_requested", "pg_stat_checkpointer")
    } else {
        ("checkpoints_timed", "checkpoints_req", "pg_stat_bgwriter")
    };
    format!(
        "SELECT extract(epoch FROM clock_timestamp() - (pg_control_checkpoint()).checkpoint_time)::float8, \
           (SELECT {timed}::float8 FROM {view}), (SELECT {requested}::float8 FROM {view}), \
           (SELECT count(*) FROM pg_settings WHERE pending_restart)::int8, \
           (SELECT string_agg(name, ', ' ORDER BY name) FROM pg_settings WHERE pending_restart), \
           (pg_control_system()).system_identifier::text"
    )
}

#[derive(Debug)]
pub struct State {
    pub checkpoint_age: Option<f64>,
    pub timed: f64,
    pub requested: f64,
    pub pending: i64,
    pub pending_names: Option<String>,
    pub system_identifier: String,
}

pub fn state(row: &tokio_postgres::Row) -> Result<State, String> {
    Ok(State {
        checkpoint_age: opt(row, 0)?,
        timed: col(row, 1)?,
        requested: col(row, 2)?,
        pending: col(row, 3)?,
        pending_names: opt(row, 4)?,
        system_identifier: col(row, 5)?,
    })
}

/// What the next cycle compares with.
#[derive(Debug, Default)]
pub struct Watch {
    counters: Option<(f64, f64)>,
    last_ratio: Option<f64>,
    first_identifier: Option<String>,
}

impl Watch {
    pub fn evaluate(&mut self, config: &ChecksConfig, s: &State, out: &mut Outcome) {
        if let Some(age) = s.checkpoint_age {
            out.set(&CHECKPOINT_AGE, &[], age);
        }
        // Counters going backwards are a stats reset: no interval this time.
        if let Some((timed, requested)) = self.counters {
            let (t, r) = (s.timed - timed, s.requested - requested);
            if t >= 0.0 && r >= 0.0 && t + r > 0.0 {
                self.last_ratio = Some(r / (t + r));
            }
        }
        self.counters = Some((s.timed, s.requested));
        if let Some(ratio) = self.last_ratio {
            out.set(&REQUESTED, &[], ratio);
            out.flag(
                at_least(ratio, config.performance.checkpoints_requested_warning.get(), f64::INFINITY),
                format!(
                    "{:.0}% of the latest checkpoints were requested, not timed: raise max_wal_size",
                    ratio * 100.0
                ),
            );
        }
        out.set(&PENDING_RESTART, &[], s.pending as f64);
        if s.pending > 0 {
            out.flag(
                Status::Warning,
                format!(
                    "{} setting(s) wait for a restart: {}",
                    s.pending,
                    s.pending_names.as_deref().unwrap_or("?")
                ),
            );
        }
        let first = self
            .first_identifier
            .get_or_insert_with(|| s.system_identifier.clone());
        let changed = *first != s.system_identifier;
        out.set(&IDENTIFIER_CHANGED, &[], f64::from(u8::from(changed)));
        if changed {
            out.flag(
                Status::Critical,
                format!(
                    "the system identifier is {}, not {first}: this address now points at a different cluster",
                    s.system_identifier
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(timed: f64, requested: f64, id: &str) -> State {
        State {
            checkpoint_age: Some(12.0),
            timed,
            requested,
            pending: 0,
            pending_names: None,
            system_identifier: id.into(),
        }
    }

    fn value(out: &Outcome, metric: &Metric) -> Option<f64> {
        out.measurements
            .iter()
            .find(|m| m.metric == metric.name)
            .map(|m| m.value)
    }

    #[test]
    fn the_requested_share_is_of_the_latest_interval_with_checkpoints() {
        let config = ChecksConfig::default();
        let mut watch = Watch::default();
        let mut out = Outcome::new("");
        watch.evaluate(&config, &state(10.0, 0.0, "7"), &mut out);
        assert_eq!(value(&out, &REQUESTED), None, "no interval yet");
        let mut out = Outcome::new("");
        watch.evaluate(&config, &state(11.0, 3.0, "7"), &mut out);
        assert_eq!(value(&out, &REQUESTED), Some(0.75));
        assert_eq!(out.status(), Status::Warning, "{out:?}");
        // No checkpoint since: the latest share stays.
        let mut out = Outcome::new("");
        watch.evaluate(&config, &state(11.0, 3.0, "7"), &mut out);
        assert_eq!(value(&out, &REQUESTED), Some(0.75));
        // A stats reset gives no interval, not a negative share.
        let mut out = Outcome::new("");
        watch.evaluate(&config, &state(0.0, 0.0, "7"), &mut out);
        assert_eq!(value(&out, &REQUESTED), Some(0.75));
    }

    #[test]
    fn a_new_system_identifier_is_critical_and_pending_settings_warn() {
        let config = ChecksConfig::default();
        let mut watch = Watch::default();
        let mut out = Outcome::new("");
        watch.evaluate(&config, &state(1.0, 0.0, "7001"), &mut out);
        assert_eq!(value(&out, &IDENTIFIER_CHANGED), Some(0.0));
        assert_eq!(out.status(), Status::Ok, "{out:?}");
        let mut out = Outcome::new("");
        let mut other = state(1.0, 0.0, "9002");
        other.pending = 2;
        other.pending_names = Some("max_connections, shared_buffers".into());
        watch.evaluate(&config, &other, &mut out);
        assert_eq!(value(&out, &IDENTIFIER_CHANGED), Some(1.0));
        assert_eq!(out.status(), Status::Critical, "{out:?}");
        assert!(
            out.problems.iter().any(|p| p.contains("9002, not 7001")),
            "{out:?}"
        );
        assert!(
            out.problems
                .iter()
                .any(|p| p.contains("max_connections, shared_buffers")),
            "{out:?}"
        );
    }
}
