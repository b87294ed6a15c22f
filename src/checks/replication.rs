//! replication: on a primary, each standby's write/flush/replay lag in bytes
//! and seconds, the expected replica count, and replication slots (inactive
//! ones and the WAL they hold back). On a standby, the WAL received but not
//! yet replayed and how long replay has been behind — zero when replay has
//! caught up with everything received, because an idle primary sends no
//! transactions and "seconds since the last replayed transaction" would
//! otherwise grow forever on a perfectly healthy standby.

use std::collections::HashMap;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::json;

use super::archive;
use super::metric::{List, Metric, Spec, Text};
use super::rows::{col, fetch, fetch_one, opt};
use super::{Check, ChecksConfig, Context, Outcome, at_least};
use crate::report::Status;

const NAME: &str = "replication";

const LAG_BYTES: Metric = Metric::gauge(
    "replication_lag_bytes",
    "Replay lag of each standby in bytes (on a primary).",
    &["replica"],
);
const LAG_SECONDS: Metric = Metric::gauge(
    "replication_lag_seconds",
    "Replay lag of each standby in seconds, 0 when caught up.",
    &["replica"],
);
const REPLICAS: Metric = Metric::gauge(
    "replication_replicas",
    "Standbys streaming from this primary.",
    &[],
);
const EXPECTED: Metric = Metric::gauge(
    "replication_replicas_expected",
    "expected_replicas from the config.",
    &[],
);
const SLOT_RETAINED: Metric = Metric::gauge(
    "replication_slot_retained_bytes",
    "WAL retained by each replication slot (top-N).",
    &["slot"],
);
const SLOTS_RETAINED_MAX: Metric = Metric::gauge(
    "replication_slots_max_retained_bytes",
    "WAL kept on disk for replication slots: the slot furthest behind (0 without slots).",
    &[],
);
const SLOT_WAL_STATUS: Metric = Metric::gauge(
    "replication_slot_wal_status",
    "wal_status of each replication slot (top-N): 0 reserved, 1 extended, 2 unreserved, 3 lost.",
    &["slot"],
);
const SLOT_SAFE_WAL: Metric = Metric::gauge(
    "replication_slot_safe_wal_bytes",
    "WAL that can be written before each slot (top-N) loses what it needs; only with max_slot_wal_keep_size.",
    &["slot"],
);
const SLOT_INACTIVE_SECONDS: Metric = Metric::gauge(
    "replication_slot_inactive_seconds",
    "Seconds since each replication slot (top-N) became inactive, 0 while active; PostgreSQL 17 and later only.",
    &["slot"],
);
const SLOTS_INACTIVE: Metric = Metric::gauge(
    "replication_slots_inactive",
    "Inactive replication slots.",
    &[],
);
const STANDBY_BYTES: Metric = Metric::gauge(
    "standby_replay_lag_bytes",
    "On a standby: WAL received but not yet replayed.",
    &[],
);
const STANDBY_SECONDS: Metric = Metric::gauge(
    "standby_replay_lag_seconds",
    "On a standby: seconds since the last replayed transaction, 0 when replay has caught up.",
    &[],
);
const RECEIVER_UP: Metric = Metric::gauge(
    "standby_wal_receiver_up",
    "On a standby: 1 while the WAL receiver streams.",
    &[],
);

/// This check and every metric it may export.
pub static SPEC: Spec = Spec {
    name: Text::Borrowed(NAME),
    own_interval: true,
    metrics: List::Static(&[
        &LAG_BYTES,
        &LAG_SECONDS,
        &REPLICAS,
        &EXPECTED,
        &SLOT_RETAINED,
        &SLOTS_RETAINED_MAX,
        &SLOTS_INACTIVE,
        &SLOT_WAL_STATUS,
        &SLOT_SAFE_WAL,
        &SLOT_INACTIVE_SECONDS,
        &STANDBY_BYTES,
        &STANDBY_SECONDS,
        &RECEIVER_UP,
        &archive::FAILING,
        &archive::FAILURES,
        &archive::SUCCESS_AGE,
    ]),
};

const STANDBYS_SQL: &str = "SELECT coalesce(application_name, ''), coalesce(state, ''), \
     coalesce(sync_state, ''), coalesce(client_addr::text, 'local'), \
     greatest(coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), write_lsn), 0), 0)::float8, \
     greatest(coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), flush_lsn), 0), 0)::float8, \
     greatest(coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), 0), 0)::float8, \
     coalesce(extract(epoch FROM replay_lag), 0)::float8 \
     FROM pg_stat_replication ORDER BY application_name, client_addr, client_port";

/// `wal_status` is NULL for a slot that never reserved WAL, `safe_wal_size`
/// unless `max_slot_wal_keep_size` is set. `inactive_since` came in 17 (NULL
/// while the slot is in use); before, the column is a NULL for every slot.
fn slots_sql(version_num: i64) -> String {
    let inactive = if version_num >= 170000 {
        "CASE WHEN active THEN 0 \
           ELSE extract(epoch FROM clock_timestamp() - inactive_since) END::float8"
    } else {
        "NULL::float8"
    };
    format!(
        "SELECT slot_name::text, active, \
         greatest(coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0), 0)::float8, \
         wal_status, safe_wal_size::float8, {inactive} \
         FROM pg_replication_slots ORDER BY 3 DESC, 1"
    )
}

/// `wal_status` as a number, in the order things get worse.
const WAL_STATUSES: [&str; 4] = ["reserved", "extended", "unreserved", "lost"];

const RECOVERY_SQL: &str = "SELECT pg_is_in_recovery()";

const STANDBY_SQL: &str = "SELECT \
     greatest(coalesce(pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()), 0), 0)::float8, \
     CASE WHEN pg_last_wal_receive_lsn() IS NULL \
            OR pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn() THEN 0 \
          ELSE coalesce(extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()), 0) \
     END::float8, \
     (SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming')::int8, \
     pg_is_wal_replay_paused()";

/// What WAL archiving was at the last success, for the failures since.
#[derive(Default)]
pub struct Replication {
    archive: archive::Watch,
}

impl Check for Replication {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }

    fn queries(&self, _: &ChecksConfig) -> Vec<String> {
        vec![
            RECOVERY_SQL.into(),
            STANDBYS_SQL.into(),
            slots_sql(150000),
            archive::SQL.into(),
        ]
    }

    fn run<'a>(&'a mut self, ctx: &'a Context<'_>) -> BoxFuture<'a, Result<Outcome, String>> {
        async move {
            let session = ctx.session().await?;
            let in_recovery: bool = fetch_one(&session, NAME, RECOVERY_SQL, |r| col(r, 0)).await?;
            let mut out = if in_recovery {
                let state = fetch_one(&session, NAME, STANDBY_SQL, |r| {
                    Ok(Replay {
                        bytes: col(r, 0)?,
                        seconds: col(r, 1)?,
                        receivers: col(r, 2)?,
                        paused: col(r, 3)?,
                    })
                })
                .await?;
                standby(ctx.config, &state)
            } else {
                let standbys = fetch(&session, NAME, STANDBYS_SQL, |r| {
                    Ok(Standby {
                        name: col(r, 0)?,
                        state: col(r, 1)?,
                        sync_state: col(r, 2)?,
                        client_addr: col(r, 3)?,
                        write: col(r, 4)?,
                        flush: col(r, 5)?,
                        replay: col(r, 6)?,
                        lag: col(r, 7)?,
                    })
                })
                .await?;
                let sql = slots_sql(ctx.server.version_num);
                let slots = fetch(&session, NAME, &sql, |r| {
                    Ok(Slot {
                        name: col(r, 0)?,
                        active: col(r, 1)?,
                        retained: col(r, 2)?,
                        wal_status: opt(r, 3)?,
                        safe_wal: opt(r, 4)?,
                        inactive_seconds: opt(r, 5)?,
                    })
                })
                .await?;
                let expected = ctx.target.expected_replicas.map(|e| e.get());
                primary(ctx.config, expected, &standbys, &slots)
            };
            // A standby archives too, with archive_mode = always.
            let archiver = fetch_one(&session, NAME, archive::SQL, archive::archiver).await?;
            session.finish().await;
            self.archive.evaluate(&archiver, &mut out);
            Ok(out)
        }
        .boxed()
    }
}

/// A row of pg_stat_replication (NULLs are coalesced by the query: a
/// standby still connecting has no LSNs yet).
#[derive(Debug, Default)]
struct Standby {
    name: String,
    state: String,
    sync_state: String,
    client_addr: String,
    write: f64,
    flush: f64,
    replay: f64,
    lag: f64,
}

#[derive(Debug)]
struct Slot {
    name: String,
    active: bool,
    retained: f64,
    wal_status: Option<String>,
    safe_wal: Option<f64>,
    /// Since when the slot is inactive (0 while active); None before
    /// PostgreSQL 17, or for a slot 17 has no time for.
    inactive_seconds: Option<f64>,
}

/// What a standby knows of its own replay.
#[derive(Debug)]
struct Replay {
    bytes: f64,
    seconds: f64,
    receivers: i64,
    paused: bool,
}

/// Lag status from bytes and seconds against the configured limits.
fn lag_status(config: &ChecksConfig, bytes: f64, seconds: f64) -> Status {
    let limits = &config.replication;
    at_least(
        bytes,
        limits.lag_bytes_warning as f64,
        limits.lag_bytes_critical as f64,
    )
    .max(at_least(
        seconds,
        limits.lag_warning.get().as_secs_f64(),
        limits.lag_critical.get().as_secs_f64(),
    ))
}

fn primary(
    config: &ChecksConfig,
    expected: Option<u64>,
    rows: &[Standby],
    slot_rows: &[Slot],
) -> Outcome {
    let mut out = Outcome::new(format!("{} standby(s)", rows.len()));
    out.set(&REPLICAS, &[], rows.len() as f64);
    if let Some(expected) = expected {
        out.set(&EXPECTED, &[], expected as f64);
        if (rows.len() as u64) < expected {
            out.flag(
                Status::Critical,
                format!("{} of {expected} expected standbys streaming", rows.len()),
            );
        }
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut standbys = Vec::new();
    let mut worst_bytes = 0.0f64;
    for row in rows {
        // Standbys often share an application_name ("walreceiver"); a label must not repeat.
        let count = seen.entry(&row.name).or_default();
        *count += 1;
        let replica = if *count == 1 {
            row.name.clone()
        } else {
            format!("{}#{count}", row.name)
        };
        let replay = row.replay;
        let seconds = if replay == 0.0 { 0.0 } else { row.lag };
        worst_bytes = worst_bytes.max(replay);
        out.set(&LAG_BYTES, &[&replica], replay);
        out.set(&LAG_SECONDS, &[&replica], seconds);
        out.flag(
            lag_status(config, replay, seconds),
            format!("standby {replica} {replay:.0} bytes / {seconds:.1} s behind"),
        );
        standbys.push(json!({
            "replica": replica, "state": row.state,
            "sync_state": row.sync_state, "client_addr": row.client_addr,
            "write_lag_bytes": row.write, "flush_lag_bytes": row.flush,
            "replay_lag_bytes": replay, "replay_lag_seconds": seconds,
        }));
    }
    if !rows.is_empty() {
        out.set_headline(format!(
            "{} standby(s), max lag {worst_bytes:.0} bytes",
            rows.len()
        ));
    }
    out.detail("standbys", standbys);
    slots(config, slot_rows, &mut out);
    out
}

fn slots(config: &ChecksConfig, rows: &[Slot], out: &mut Outcome) {
    let limits = &config.replication;
    let mut inactive = 0;
    let mut listed = Vec::new();
    for (index, slot) in rows.iter().enumerate() {
        let Slot {
            name,
            active,
            retained,
            wal_status,
            safe_wal,
            inactive_seconds,
        } = slot;
        let status = wal_status
            .as_deref()
            .and_then(|w| WAL_STATUSES.iter().position(|known| *known == w));
        match status {
            Some(3) => out.flag(
                Status::Critical,
                format!("slot {name} has lost WAL it needs (wal_status lost): its consumer cannot resume"),
            ),
            Some(2) => out.flag(
                Status::Warning,
                format!("slot {name} holds WAL beyond max_slot_wal_keep_size (wal_status unreserved): it is lost at the next checkpoint"),
            ),
            _ => {}
        }
        if !active {
            inactive += 1;
            let since = inactive_seconds.map_or(String::new(), |s| format!(" for {s:.0} s"));
            out.flag(Status::Warning, format!("slot {name} is inactive{since}"));
        }
        out.flag(
            at_least(
                *retained,
                limits.slot_retained_bytes_warning as f64,
                limits.slot_retained_bytes_critical as f64,
            ),
            format!("slot {name} retains {retained:.0} bytes of WAL"),
        );
        if index < config.top_n() {
            out.set(&SLOT_RETAINED, &[name], *retained);
            if let Some(status) = status {
                out.set(&SLOT_WAL_STATUS, &[name], status as f64);
            }
            if let Some(safe) = safe_wal {
                out.set(&SLOT_SAFE_WAL, &[name], *safe);
            }
            if let Some(seconds) = inactive_seconds {
                out.set(&SLOT_INACTIVE_SECONDS, &[name], *seconds);
            }
            listed.push(
                json!({"slot": name, "active": active, "retained_bytes": retained,
                "wal_status": wal_status, "safe_wal_bytes": safe_wal,
                "inactive_seconds": inactive_seconds}),
            );
        }
    }
    out.set(&SLOTS_INACTIVE, &[], inactive as f64);
    // Rows come furthest-behind first; that slot alone decides what WAL stays.
    let furthest = rows.first().map_or(0.0, |s| s.retained);
    out.set(&SLOTS_RETAINED_MAX, &[], furthest);
    out.detail("slots", listed);
}

fn standby(config: &ChecksConfig, replay: &Replay) -> Outcome {
    let Replay {
        bytes,
        seconds,
        receivers,
        paused,
    } = *replay;
    let mut out = Outcome::new(format!(
        "standby, replay {bytes:.0} bytes / {seconds:.1} s behind"
    ));
    out.set(&STANDBY_BYTES, &[], bytes);
    out.set(&STANDBY_SECONDS, &[], seconds);
    out.set(&RECEIVER_UP, &[], f64::from(receivers > 0));
    if receivers == 0 {
        out.flag(Status::Critical, "the WAL receiver is not streaming");
    }
    out.flag(
        lag_status(config, bytes, seconds),
        format!("replay {bytes:.0} bytes / {seconds:.1} s behind"),
    );
    if paused {
        out.flag(Status::Warning, "replay is paused (pg_wal_replay_pause)");
    }
    out.detail("replay_paused", paused);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: f64 = 1024.0 * 1024.0;

    fn walreceiver(replay: f64, lag: f64) -> Standby {
        Standby {
            name: "walreceiver".into(),
            state: "streaming".into(),
            replay,
            lag,
            ..Standby::default()
        }
    }

    fn labels(out: &Outcome, metric: Metric) -> Vec<String> {
        out.measurements
            .iter()
            .filter(|m| m.metric == metric.name)
            .map(|m| m.labels[0].1.clone())
            .collect()
    }

    #[test]
    fn a_lagging_standby_and_a_missing_one_are_flagged_with_unique_labels() {
        let config = ChecksConfig::default();
        let rows = [walreceiver(0.0, 12.0), walreceiver(20.0 * MIB, 40.0)];
        let out = primary(&config, Some(3), &rows, &[]);
        assert_eq!(out.status(), Status::Critical, "{out:?}");
        assert!(
            out.problems.iter().any(|p| p.contains("2 of 3 expected")),
            "{out:?}"
        );
        assert_eq!(labels(&out, LAG_BYTES), ["walreceiver", "walreceiver#2"]);
        // Caught up: the seconds since the last replayed transaction do not count.
        let seconds: Vec<f64> = out
            .measurements
            .iter()
            .filter(|m| m.metric == LAG_SECONDS.name)
            .map(|m| m.value)
            .collect();
        assert_eq!(seconds, [0.0, 40.0]);
        let healthy = primary(&config, Some(1), &[walreceiver(0.0, 0.0)], &[]);
        assert_eq!(healthy.status(), Status::Ok, "{healthy:?}");
    }

    #[test]
    fn an_inactive_slot_warns_and_the_furthest_behind_is_exported() {
        let config = ChecksConfig::default();
        let slots = [
            Slot {
                name: "old".into(),
                active: false,
                retained: 2048.0 * MIB,
                wal_status: Some("extended".into()),
                safe_wal: None,
                inactive_seconds: None,
            },
            Slot {
                name: "live".into(),
                active: true,
                retained: 1.0,
                wal_status: Some("reserved".into()),
                safe_wal: Some(1e9),
                inactive_seconds: None,
            },
        ];
        let out = primary(&config, None, &[], &slots);
        assert_eq!(out.status(), Status::Warning, "{out:?}");
        let max = out
            .measurements
            .iter()
            .find(|m| m.metric == SLOTS_RETAINED_MAX.name);
        assert_eq!(max.map(|m| m.value), Some(2048.0 * MIB));
    }

    #[test]
    fn a_standby_without_a_receiver_is_critical_and_a_paused_replay_warns() {
        let config = ChecksConfig::default();
        let replay = |receivers, paused| Replay {
            bytes: 0.0,
            seconds: 0.0,
            receivers,
            paused,
        };
        assert_eq!(standby(&config, &replay(1, false)).status(), Status::Ok);
        assert_eq!(standby(&config, &replay(1, true)).status(), Status::Warning);
        assert_eq!(
            standby(&config, &replay(0, false)).status(),
            Status::Critical
        );
    }

    #[test]
    fn a_slot_that_lost_its_wal_is_critical_and_an_unreserved_one_warns() {
        let config = ChecksConfig::default();
        let slot = |name: &str, status: &str| Slot {
            name: name.into(),
            active: true,
            retained: 1.0,
            wal_status: Some(status.into()),
            safe_wal: Some(-5.0),
            inactive_seconds: None,
        };
        let out = primary(&config, None, &[], &[slot("far", "unreserved")]);
        assert_eq!(out.status(), Status::Warning, "{out:?}");
        let out = primary(
            &config,
            None,
            &[],
            &[slot("gone", "lost"), slot("ok", "reserved")],
        );
        assert_eq!(out.status(), Status::Critical, "{out:?}");
        assert!(
            out.problems[0].contains("slot gone has lost WAL"),
            "{out:?}"
        );
        let codes: Vec<_> = out
            .measurements
            .iter()
            .filter(|m| m.metric == SLOT_WAL_STATUS.name)
            .map(|m| (m.labels[0].1.as_str(), m.value))
            .collect();
        assert_eq!(codes, [("gone", 3.0), ("ok", 0.0)]);
    }

    /// Slots as PostgreSQL 17 returns them: `inactive_since` NULL while in
    /// use (the query makes that 0), a time once the consumer went away.
    #[test]
    fn from_17_how_long_each_slot_has_been_inactive_is_exported() {
        let config = ChecksConfig::default();
        let slot = |name: &str, active: bool, seconds: Option<f64>| Slot {
            name: name.into(),
            active,
            retained: 1.0,
            wal_status: Some("reserved".into()),
            safe_wal: None,
            inactive_seconds: seconds,
        };
        let rows = [
            slot("abandoned", false, Some(7200.0)),
            slot("streaming", true, Some(0.0)),
        ];
        let out = primary(&config, None, &[], &rows);
        assert_eq!(out.status(), Status::Warning, "{out:?}");
        assert!(
            out.problems
                .iter()
                .any(|p| p.ends_with("slot abandoned is inactive for 7200 s")),
            "{out:?}"
        );
        let seconds: Vec<_> = out
            .measurements
            .iter()
            .filter(|m| m.metric == SLOT_INACTIVE_SECONDS.name)
            .map(|m| (m.labels[0].1.as_str(), m.value))
            .collect();
        assert_eq!(seconds, [("abandoned", 7200.0), ("streaming", 0.0)]);
        assert_eq!(out.details["slots"][0]["inactive_seconds"], 7200.0);
    }

    /// Before 17 the column does not exist: not queried, no series, and an
    /// inactive slot is still flagged, without a duration.
    #[test]
    fn before_17_inactive_since_is_neither_queried_nor_exported() {
        assert!(!slots_sql(160004).contains("inactive_since"));
        assert!(slots_sql(170000).contains("inactive_since"));
        let config = ChecksConfig::default();
        let rows = [Slot {
            name: "abandoned".into(),
            active: false,
            retained: 1.0,
            wal_status: Some("reserved".into()),
            safe_wal: None,
            inactive_seconds: None,
        }];
        let out = primary(&config, None, &[], &rows);
        assert!(
            out.problems
                .iter()
                .any(|p| p.ends_with("slot abandoned is inactive")),
            "{out:?}"
        );
        assert!(
            !out.measurements
                .iter()
                .any(|m| m.metric == SLOT_INACTIVE_SECONDS.name),
            "{out:?}"
        );
    }
}
