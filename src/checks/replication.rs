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

use super::{Check, ChecksConfig, Context, Labelled, Outcome, Session, at_least};
use crate::report::Status;

const LAG_BYTES: &str = "replication_lag_bytes";
const LAG_BYTES_HELP: &str = "Replay lag of each standby in bytes (on a primary).";
const LAG_SECONDS: &str = "replication_lag_seconds";
const LAG_SECONDS_HELP: &str = "Replay lag of each standby in seconds, 0 when caught up.";
const REPLICAS: &str = "replication_replicas";
const REPLICAS_HELP: &str = "Standbys streaming from this primary.";
const EXPECTED: &str = "replication_replicas_expected";
const EXPECTED_HELP: &str = "expected_replicas from the config.";
const SLOT_RETAINED: &str = "replication_slot_retained_bytes";
const SLOT_RETAINED_HELP: &str = "WAL retained by each replication slot (top-N).";
const SLOTS_RETAINED_MAX: &str = "replication_slots_max_retained_bytes";
const SLOTS_RETAINED_MAX_HELP: &str =
    "WAL kept on disk for replication slots: the slot furthest behind (0 without slots).";
const SLOTS_INACTIVE: &str = "replication_slots_inactive";
const SLOTS_INACTIVE_HELP: &str = "Inactive replication slots.";
const STANDBY_BYTES: &str = "standby_replay_lag_bytes";
const STANDBY_BYTES_HELP: &str = "On a standby: WAL received but not yet replayed.";
const STANDBY_SECONDS: &str = "standby_replay_lag_seconds";
const STANDBY_SECONDS_HELP: &str =
    "On a standby: seconds since the last replayed transaction, 0 when replay has caught up.";
const RECEIVER_UP: &str = "standby_wal_receiver_up";
const RECEIVER_UP_HELP: &str = "On a standby: 1 while the WAL receiver streams.";

const STANDBYS_SQL: &str = "SELECT coalesce(application_name, ''), coalesce(state, ''), \
     coalesce(sync_state, ''), coalesce(client_addr::text, 'local'), \
     greatest(coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), write_lsn), 0), 0)::float8, \
     greatest(coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), flush_lsn), 0), 0)::float8, \
     greatest(coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), 0), 0)::float8, \
     coalesce(extract(epoch FROM replay_lag), 0)::float8 \
     FROM pg_stat_replication ORDER BY application_name, client_addr, client_port";

fn slots_sql() -> String {
    "SELECT slot_name::text, active, \
     greatest(coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0), 0)::float8 \
     FROM pg_replication_slots ORDER BY 3 DESC, 1"
        .into()
}

const RECOVERY_SQL: &str = "SELECT pg_is_in_recovery()";

const STANDBY_SQL: &str = "SELECT \
     greatest(coalesce(pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()), 0), 0)::float8, \
     CASE WHEN pg_last_wal_receive_lsn() IS NULL \
            OR pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn() THEN 0 \
          ELSE coalesce(extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()), 0) \
     END::float8, \
     (SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming')::int8, \
     pg_is_wal_replay_paused()";

pub struct Replication;

impl Check for Replication {
    fn name(&self) -> &'static str {
        "replication"
    }

    fn queries(&self, _: &ChecksConfig) -> Vec<String> {
        vec![RECOVERY_SQL.into(), STANDBYS_SQL.into(), slots_sql()]
    }

    fn run<'a>(&'a mut self, ctx: &'a Context<'_>) -> BoxFuture<'a, Result<Outcome, String>> {
        async move {
            let session = ctx.session().await?;
            let in_recovery: bool = session.query_one(RECOVERY_SQL).await?.get(0);
            let out = if in_recovery {
                standby(&session, ctx).await?
            } else {
                primary(&session, ctx).await?
            };
            session.finish().await;
            Ok(out)
        }
        .boxed()
    }
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

async fn primary(session: &Session, ctx: &Context<'_>) -> Result<Outcome, String> {
    let rows = session.query(STANDBYS_SQL).await?;
    let mut out = Outcome::new(format!("{} standby(s)", rows.len()));
    out.gauge(REPLICAS, REPLICAS_HELP, rows.len() as f64);
    if let Some(expected) = ctx.target.expected_replicas {
        let expected = expected.get();
        out.gauge(EXPECTED, EXPECTED_HELP, expected as f64);
        if (rows.len() as u64) < expected {
            out.flag(
                Status::Critical,
                format!("{} of {expected} expected standbys streaming", rows.len()),
            );
        }
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut standbys = Vec::new();
    let mut worst_bytes = 0.0f64;
    for row in &rows {
        let name: String = row.get(0);
        // Standbys often share an application_name ("walreceiver"); a label must not repeat.
        let count = seen.entry(name.clone()).or_default();
        *count += 1;
        let replica = if *count == 1 {
            name
        } else {
            format!("{name}#{count}")
        };
        let (write, flush, replay, lag): (f64, f64, f64, f64) =
            (row.get(4), row.get(5), row.get(6), row.get(7));
        let seconds = if replay == 0.0 { 0.0 } else { lag };
        worst_bytes = worst_bytes.max(replay);
        out.gauge(LAG_BYTES, LAG_BYTES_HELP, replay)
            .with("replica", &replica);
        out.gauge(LAG_SECONDS, LAG_SECONDS_HELP, seconds)
            .with("replica", &replica);
        out.flag(
            lag_status(ctx.config, replay, seconds),
            format!("standby {replica} {replay:.0} bytes / {seconds:.1} s behind"),
        );
        standbys.push(json!({
            "replica": replica, "state": row.get::<_, String>(1),
            "sync_state": row.get::<_, String>(2), "client_addr": row.get::<_, String>(3),
            "write_lag_bytes": write, "flush_lag_bytes": flush,
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
    slots(session, ctx, &mut out).await?;
    Ok(out)
}

async fn slots(session: &Session, ctx: &Context<'_>, out: &mut Outcome) -> Result<(), String> {
    let rows = session.query(&slots_sql()).await?;
    let limits = &ctx.config.replication;
    let mut inactive = 0;
    let mut listed = Vec::new();
    for (index, row) in rows.iter().enumerate() {
        let (slot, active, retained): (String, bool, f64) = (row.get(0), row.get(1), row.get(2));
        if !active {
            inactive += 1;
            out.flag(Status::Warning, format!("slot {slot} is inactive"));
        }
        out.flag(
            at_least(
                retained,
                limits.slot_retained_bytes_warning as f64,
                limits.slot_retained_bytes_critical as f64,
            ),
            format!("slot {slot} retains {retained:.0} bytes of WAL"),
        );
        if index < ctx.top_n() {
            out.gauge(SLOT_RETAINED, SLOT_RETAINED_HELP, retained)
                .with("slot", &slot);
            listed.push(json!({"slot": slot, "active": active, "retained_bytes": retained}));
        }
    }
    out.gauge(SLOTS_INACTIVE, SLOTS_INACTIVE_HELP, inactive as f64);
    // Rows come furthest-behind first; that slot alone decides what WAL stays.
    let furthest: f64 = rows.first().map_or(0.0, |r| r.get(2));
    out.gauge(SLOTS_RETAINED_MAX, SLOTS_RETAINED_MAX_HELP, furthest);
    out.detail("slots", listed);
    Ok(())
}

async fn standby(session: &Session, ctx: &Context<'_>) -> Result<Outcome, String> {
    let row = session.query_one(STANDBY_SQL).await?;
    let (bytes, seconds, receivers, paused): (f64, f64, i64, bool) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    let mut out = Outcome::new(format!(
        "standby, replay {bytes:.0} bytes / {seconds:.1} s behind"
    ));
    out.gauge(STANDBY_BYTES, STANDBY_BYTES_HELP, bytes);
    out.gauge(STANDBY_SECONDS, STANDBY_SECONDS_HELP, seconds);
    out.gauge(RECEIVER_UP, RECEIVER_UP_HELP, f64::from(receivers > 0));
    if receivers == 0 {
        out.flag(Status::Critical, "the WAL receiver is not streaming");
    }
    out.flag(
        lag_status(ctx.config, bytes, seconds),
        format!("replay {bytes:.0} bytes / {seconds:.1} s behind"),
    );
    if paused {
        out.flag(Status::Warning, "replay is paused (pg_wal_replay_pause)");
    }
    out.detail("replay_paused", paused);
    Ok(out)
}
