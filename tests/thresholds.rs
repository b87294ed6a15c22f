//! The shipped alert rules and pgwarden's own checks agree on what is a
//! warning and what is critical.
//!
//! The checks are the source of truth: `Config::default().checks` holds
//! their defaults, and every alert of `config/prometheus/alerts.yml` that
//! watches the same measurement must fire at the same number. Without this
//! test the two drift apart silently (they once did: replication lag 64 MiB
//! in the rules against 16 MiB in the check), and `pgwarden health` says
//! "critical" while nobody is paged, or the other way round. README's alert
//! table names each alert's check key; it is checked here too.
//!
//! Pure file and config reading: no database, no promtool.

use crate::monitoring;

use monitoring::*;
use pgwarden::config::{Config, Duration};

/// One alert rule whose threshold must equal a check default.
struct Pair {
    alert: &'static str,
    severity: &'static str,
    /// The config key the number comes from, as an operator writes it.
    key: &'static str,
    /// The metric the rule must compare, and how.
    metric: &'static str,
    op: &'static str,
    /// The check default, in the metric's unit (seconds, bytes, ratio).
    check: f64,
}

/// Alerts with no check threshold behind them, and why: a new alert must be
/// added either here or to `pairs()`, so none is forgotten.
const NOT_CHECK_THRESHOLDS: [(&str, &str); 17] = [
    (
        "PgwardenReplicationSlotInactiveLong",
        "the check warns on any inactive slot; the alert adds a duration (a day) it has no key for",
    ),
    (
        "PgwardenDiscoveryFailing",
        "a failed listing of pg_database (fleet discovery), not a database threshold",
    ),
    (
        "PgwardenCollectorRestarting",
        "any restart of a collector (a bug in pgwarden), not a database threshold",
    ),
    (
        "PgwardenSchemaDrift",
        "any object changed out of band (schema.drift_interval); drift is not a health check",
    ),
    (
        "PgwardenSettingsPendingRestart",
        "any setting pending a restart; the performance check warns at once",
    ),
    (
        "PgwardenSystemIdentifierChanged",
        "a state (another cluster at the address); the performance check is critical at once",
    ),
    (
        "PgwardenReplicationSlotLost",
        "a state (wal_status lost); the replication check is critical at once",
    ),
    ("PgwardenAbsent", "Prometheus cannot scrape pgwarden at all"),
    (
        "PgwardenWalArchivingFailing",
        "any failed archive since the last success; the replication check is critical at once",
    ),
    (
        "PgwardenTargetDown",
        "a state (pgwarden_up == 0), no threshold",
    ),
    (
        "PgwardenCheckError",
        "a state (a check in error), no threshold",
    ),
    (
        "PgwardenReplicaMissing",
        "compares with targets.expected_replicas per target",
    ),
    (
        "PgwardenWalReceiverDown",
        "a state (receiver not streaming), no threshold",
    ),
    (
        "PgwardenInvalidIndexes",
        "any invalid index; the check has no threshold",
    ),
    (
        "PgwardenBackupStale",
        "the backup schedule, not a check threshold",
    ),
    (
        "PgwardenBackupFailing",
        "any failed backup; no check threshold",
    ),
    (
        "PgwardenMigrationsPending",
        "any pending migration; no check threshold",
    ),
];

fn secs(d: Duration) -> f64 {
    d.get().as_secs_f64()
}

fn pairs() -> Vec<Pair> {
    let c = Config::default().checks;
    let pair = |alert, severity, key, metric, op, check| Pair {
        alert,
        severity,
        key,
        metric,
        op,
        check,
    };
    let lag = "pgwarden_replication_lag_bytes";
    let lag_s = "pgwarden_replication_lag_seconds";
    let query = "pgwarden_long_query_max_seconds";
    let wait = "pgwarden_lock_wait_max_seconds";
    let hit = "pgwarden_cache_hit_ratio";
    let conn = "pgwarden_server_connections_usage_ratio";
    let xid = "pgwarden_xid_wraparound_ratio";
    vec![
        pair(
            "PgwardenStale",
            "critical",
            "3 x checks.interval",
            "pgwarden_last_cycle_timestamp_seconds",
            ">",
            3.0 * secs(c.interval),
        ),
        pair(
            "PgwardenCacheHitRatioLow",
            "warning",
            "checks.cache_hit_ratio.warning",
            hit,
            "<",
            c.cache_hit_ratio.warning.get(),
        ),
        pair(
            "PgwardenCacheHitRatioLow",
            "critical",
            "checks.cache_hit_ratio.critical",
            hit,
            "<",
            c.cache_hit_ratio.critical.get(),
        ),
        pair(
            "PgwardenReplicationLagBytesHigh",
            "warning",
            "checks.replication.lag_bytes_warning",
            lag,
            ">",
            c.replication.lag_bytes_warning as f64,
        ),
        pair(
            "PgwardenReplicationLagBytesHigh",
            "critical",
            "checks.replication.lag_bytes_critical",
            lag,
            ">",
            c.replication.lag_bytes_critical as f64,
        ),
        pair(
            "PgwardenReplicationLagSecondsHigh",
            "warning",
            "checks.replication.lag_warning",
            lag_s,
            ">",
            secs(c.replication.lag_warning),
        ),
        pair(
            "PgwardenReplicationLagSecondsHigh",
            "critical",
            "checks.replication.lag_critical",
            lag_s,
            ">",
            secs(c.replication.lag_critical),
        ),
        pair(
            "PgwardenLongRunningQuery",
            "warning",
            "checks.long_queries.query_warning",
            query,
            ">",
            secs(c.long_queries.query_warning),
        ),
        pair(
            "PgwardenLongRunningQuery",
            "critical",
            "checks.long_queries.query_critical",
            query,
            ">",
            secs(c.long_queries.query_critical),
        ),
        pair(
            "PgwardenBlockedSessions",
            "warning",
            "checks.locks.wait_warning",
            wait,
            ">",
            secs(c.locks.wait_warning),
        ),
        pair(
            "PgwardenBlockedSessions",
            "critical",
            "checks.locks.wait_critical",
            wait,
            ">",
            secs(c.locks.wait_critical),
        ),
        pair(
            "PgwardenConnectionsNearMax",
            "warning",
            "checks.connection_pool.warning",
            conn,
            ">",
            c.connection_pool.warning.get(),
        ),
        pair(
            "PgwardenConnectionsNearMax",
            "critical",
            "checks.connection_pool.critical",
            conn,
            ">",
            c.connection_pool.critical.get(),
        ),
        pair(
            "PgwardenXidWraparound",
            "warning",
            "checks.table_integrity.xid_wraparound_warning",
            xid,
            ">",
            c.table_integrity.xid_wraparound_warning.get(),
        ),
        pair(
            "PgwardenXidWraparound",
            "critical",
            "checks.table_integrity.xid_wraparound_critical",
            xid,
            ">",
            c.table_integrity.xid_wraparound_critical.get(),
        ),
        pair(
            "PgwardenBloatHigh",
            "warning",
            "checks.table_integrity.bloat_ratio_warning",
            "pgwarden_bloat_max_ratio",
            ">",
            c.table_integrity.bloat_ratio_warning.get(),
        ),
        pair(
            "PgwardenCheckpointsRequested",
            "warning",
            "checks.performance.checkpoints_requested_warning",
            "pgwarden_checkpoints_requested_ratio",
            ">",
            c.performance.checkpoints_requested_warning.get(),
        ),
        pair(
            "PgwardenMultixactWraparound",
            "warning",
            "checks.table_integrity.multixact_wraparound_warning",
            "pgwarden_multixact_wraparound_ratio",
            ">",
            c.table_integrity.multixact_wraparound_warning.get(),
        ),
        pair(
            "PgwardenMultixactWraparound",
            "critical",
            "checks.table_integrity.multixact_wraparound_critical",
            "pgwarden_multixact_wraparound_ratio",
            ">",
            c.table_integrity.multixact_wraparound_critical.get(),
        ),
        pair(
            "PgwardenXminHorizonOld",
            "warning",
            "checks.long_queries.xmin_horizon_age_warning",
            "pgwarden_xmin_horizon_age",
            ">",
            c.long_queries.xmin_horizon_age_warning as f64,
        ),
        pair(
            "PgwardenXminHorizonOld",
            "critical",
            "checks.long_queries.xmin_horizon_age_critical",
            "pgwarden_xmin_horizon_age",
            ">",
            c.long_queries.xmin_horizon_age_critical as f64,
        ),
        pair(
            "PgwardenPreparedTransactionOld",
            "warning",
            "checks.long_queries.prepared_transaction_warning",
            "pgwarden_prepared_transaction_max_seconds",
            ">",
            secs(c.long_queries.prepared_transaction_warning),
        ),
        pair(
            "PgwardenPreparedTransactionOld",
            "critical",
            "checks.long_queries.prepared_transaction_critical",
            "pgwarden_prepared_transaction_max_seconds",
            ">",
            secs(c.long_queries.prepared_transaction_critical),
        ),
    ]
}

/// What is wrong with one pair, if anything, as an operator would want to
/// read it: the alert, the config key and both values.
fn disagreement(pair: &Pair, rules: &[Rule]) -> Option<String> {
    let Pair {
        alert,
        severity,
        key,
        ..
    } = pair;
    let found: Vec<&Rule> = rules
        .iter()
        .filter(|r| r.alert == *alert && r.severity() == *severity)
        .collect();
    let [rule] = found[..] else {
        return Some(format!(
            "{alert} ({severity}): {} rules in {ALERTS}, expected exactly one to compare with {key} = {}",
            found.len(),
            pair.check
        ));
    };
    let Some((metric, op, value)) = threshold(&rule.expr) else {
        return Some(format!(
            "{alert} ({severity}): cannot read a `metric <op> number` threshold from `{}` to compare with {key} = {}",
            rule.expr, pair.check
        ));
    };
    let same = (value - pair.check).abs() <= 1e-9 * pair.check.abs().max(1.0);
    if metric != pair.metric || op != pair.op || !same {
        return Some(format!(
            "{alert} ({severity}) fires at `{metric} {op} {value}` in {ALERTS}, \
             but the check default {key} = {check} (expected `{want_metric} {want_op} {check}`): \
             change both together",
            check = pair.check,
            want_metric = pair.metric,
            want_op = pair.op,
        ));
    }
    None
}

#[test]
fn every_alert_threshold_equals_its_check_default() {
    let rules = alert_rules();
    let problems: Vec<String> = pairs()
        .iter()
        .filter_map(|pair| disagreement(pair, &rules))
        .collect();
    assert!(
        problems.is_empty(),
        "alert thresholds that disagree with pgwarden's check defaults \
         (src/checks/config.rs, [checks.*] in config/pgwarden.toml):\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_alert_is_either_paired_with_a_check_threshold_or_says_why_not() {
    let pairs = pairs();
    let exempt: Vec<&str> = NOT_CHECK_THRESHOLDS
        .iter()
        .map(|(alert, _)| *alert)
        .collect();
    let unaccounted: Vec<String> = alert_rules()
        .iter()
        .filter(|r| {
            !exempt.contains(&r.alert.as_str())
                && !pairs
                    .iter()
                    .any(|p| p.alert == r.alert && p.severity == r.severity())
        })
        .map(|r| format!("{} ({}): {}", r.alert, r.severity(), r.expr))
        .collect();
    assert!(
        unaccounted.is_empty(),
        "alerts neither compared with a check default in pairs() nor listed in \
         NOT_CHECK_THRESHOLDS (tests/thresholds.rs): {unaccounted:#?}"
    );
}

#[test]
fn the_readme_alert_table_names_each_alerts_check_key() {
    let readme = read("README.md");
    let table = section(&readme, "### Alerts and their thresholds");
    let mut problems = Vec::new();
    for pair in pairs() {
        let Some(row) = table
            .lines()
            .find(|l| l.starts_with(&format!("| `{}` |", pair.alert)))
        else {
            problems.push(format!("{}: no row in the alert table", pair.alert));
            continue;
        };
        // Rows read "`checks.locks.wait_warning` / `wait_critical`" or
        // "`checks.replication.lag_bytes_warning` / `_critical`".
        let path = pair
            .key
            .split_whitespace()
            .find(|w| w.starts_with("checks."))
            .unwrap_or(pair.key);
        let (section, last) = path.rsplit_once('.').unwrap_or(("", path));
        let severity_only = format!("`_{}`", pair.severity);
        if !row.contains(section) || !(row.contains(last) || row.contains(&severity_only)) {
            problems.push(format!(
                "{}: its row does not name {}",
                pair.alert, pair.key
            ));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// The comparison itself must be able to fail: a rule one step off its
/// check default, or on another metric, is reported with both values.
#[test]
fn a_drifted_threshold_is_reported_with_the_alert_the_key_and_both_values() {
    let pair = Pair {
        alert: "PgwardenBlockedSessions",
        severity: "warning",
        key: "checks.locks.wait_warning",
        metric: "pgwarden_lock_wait_max_seconds",
        op: ">",
        check: 5.0,
    };
    let rule = |expr: &str| Rule {
        alert: pair.alert.to_string(),
        expr: expr.to_string(),
        labels: [("severity".to_string(), "warning".to_string())].into(),
        annotations: Default::default(),
    };
    assert_eq!(
        disagreement(&pair, &[rule("pgwarden_lock_wait_max_seconds > 5")]),
        None
    );
    let drifted = disagreement(&pair, &[rule("pgwarden_lock_wait_max_seconds > 10")])
        .expect("10 s against a 5 s default is a disagreement");
    for part in [
        "PgwardenBlockedSessions",
        "checks.locks.wait_warning",
        "> 10",
        "= 5",
    ] {
        assert!(drifted.contains(part), "{drifted:?} lacks {part:?}");
    }
    assert!(disagreement(&pair, &[rule("pgwarden_blocked_sessions > 5")]).is_some());
    assert!(disagreement(&pair, &[rule("pgwarden_lock_wait_max_seconds >= 5")]).is_some());
    assert!(disagreement(&pair, &[]).is_some(), "a missing rule");
}
