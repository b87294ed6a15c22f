//! The xmin horizon and who holds it, part of long_queries: the first
//! question of every bloat incident is "what is holding back vacuum?".
//! VACUUM may remove a dead row only once no one can still see it; the
//! oldest xmin anyone holds is that limit. The holders are of four kinds —
//! a backend of the target's database (a long transaction, an idle one), a
//! replication slot (its `xmin` or `catalog_xmin`), a prepared transaction,
//! or a standby's `hot_standby_feedback` — and each kind gets one gauge, so
//! the labels are bounded; who exactly is in the details (top N). A standby
//! is named by its application_name (its cluster_name, or `walreceiver`)
//! and address, as several often share the default name; one streaming
//! through a physical slot feeds its xmin to the slot instead.
//! pgwarden's own sessions (`application_name = 'pgwarden'`) are left out:
//! their read-only transactions last milliseconds.

use serde_json::json;

use super::metric::Metric;
use super::rows::{col, opt};
use super::{ChecksConfig, Outcome, at_least};

pub const HORIZON_AGE: Metric = Metric::gauge(
    "xmin_horizon_age",
    "Age in transactions of the oldest xmin held by each kind of holder (0 when none).",
    &["holder"],
)
.per_database();
pub const PREPARED: Metric = Metric::gauge(
    "prepared_transactions",
    "Prepared transactions of the target database.",
    &[],
)
.per_database();
pub const PREPARED_MAX: Metric = Metric::gauge(
    "prepared_transaction_max_seconds",
    "Age of the oldest prepared transaction of the target database (0 when none).",
    &[],
)
.per_database();

/// The holder kinds, in the order their gauges are exported.
pub const HOLDERS: [&str; 4] = [
    "backend",
    "replication_slot",
    "prepared_transaction",
    "standby_feedback",
];

/// Every holder of an xmin, oldest first; `age` is NULL only for a row the
/// server answers oddly (it is then skipped).
pub fn holders_sql(top_n: usize) -> String {
    format!(
        "SELECT kind, age::float8, who, seconds::float8 FROM ( \
           SELECT 'backend' AS kind, age(backend_xmin) AS age, \
             format('pid %s (%s, %s)', pid, coalesce(nullif(application_name, ''), usename::text), \
                    coalesce(state, '')) AS who, \
             extract(epoch FROM clock_timestamp() - xact_start) AS seconds \
           FROM pg_stat_activity WHERE backend_xmin IS NOT NULL AND datname = current_database() \
             AND backend_type <> 'walsender' AND pid <> pg_backend_pid() \
             AND application_name IS DISTINCT FROM 'pgwarden' \
           UNION ALL \
           SELECT 'replication_slot', greatest(age(xmin), age(catalog_xmin)), \
             format('slot %s (%s, %s)', slot_name, slot_type, \
                    CASE WHEN active THEN 'active' ELSE 'inactive' END), NULL \
           FROM pg_replication_slots WHERE xmin IS NOT NULL OR catalog_xmin IS NOT NULL \
           UNION ALL \
           SELECT 'prepared_transaction', age(transaction), format('prepared transaction %s', gid), \
             extract(epoch FROM clock_timestamp() - prepared) \
           FROM pg_prepared_xacts WHERE database = current_database() \
           UNION ALL \
           SELECT 'standby_feedback', age(backend_xmin), \
             format('standby %s (%s)', application_name, coalesce(host(client_addr), 'local')), NULL \
           FROM pg_stat_replication WHERE backend_xmin IS NOT NULL \
         ) h ORDER BY age DESC NULLS LAST, who LIMIT {top_n}"
    )
}

pub const PREPARED_SQL: &str = "SELECT count(*)::int8, \
     coalesce(max(extract(epoch FROM clock_timestamp() - prepared)), 0)::float8 \
     FROM pg_prepared_xacts WHERE database = current_database()";

/// One holder of the horizon; `seconds` is how long it has held it, when known.
#[derive(Debug)]
pub struct Holder {
    pub kind: String,
    pub age: Option<f64>,
    pub who: String,
    pub seconds: Option<f64>,
}

pub fn holder(row: &tokio_postgres::Row) -> Result<Holder, String> {
    Ok(Holder {
        kind: col(row, 0)?,
        age: opt(row, 1)?,
        who: col(row, 2)?,
        seconds: opt(row, 3)?,
    })
}

/// Prepared transactions: their count and the oldest one's age in seconds.
pub fn prepared(row: &tokio_postgres::Row) -> Result<(i64, f64), String> {
    Ok((col(row, 0)?, col(row, 1)?))
}

pub fn evaluate(
    config: &ChecksConfig,
    holders: &[Holder],
    (count, oldest): (i64, f64),
    out: &mut Outcome,
) {
    let limits = &config.long_queries;
    for kind in HOLDERS {
        let age = holders
            .iter()
            .filter(|h| h.kind == kind)
            .filter_map(|h| h.age)
            .fold(0.0, f64::max);
        out.set(&HORIZON_AGE, &[kind], age);
    }
    if let Some((first, age)) = holders.iter().find_map(|h| Some((h, h.age?))) {
        out.flag(
            at_least(
                age,
                limits.xmin_horizon_age_warning as f64,
                limits.xmin_horizon_age_critical as f64,
            ),
            format!(
                "the xmin horizon is {age:.0} transactions old, held by {}: vacuum cannot remove rows dead since",
                first.who
            ),
        );
    }
    out.set(&PREPARED, &[], count as f64);
    out.set(&PREPARED_MAX, &[], oldest);
    let secs = |d: crate::config::Duration| d.get().as_secs_f64();
    if count > 0 {
        out.flag(
            at_least(
                oldest,
                secs(limits.prepared_transaction_warning),
                secs(limits.prepared_transaction_critical),
            ),
            format!(
                "{count} prepared transaction(s), the oldest {oldest:.0} s old: COMMIT PREPARED or ROLLBACK PREPARED it"
            ),
        );
    }
    let listed: Vec<_> = holders
        .iter()
        .map(|h| json!({"holder": h.kind, "who": h.who, "xmin_age": h.age, "seconds": h.seconds}))
        .collect();
    out.detail("xmin_horizon", listed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Status;

    fn holder(kind: &str, age: Option<f64>, who: &str) -> Holder {
        Holder {
            kind: kind.into(),
            age,
            who: who.into(),
            seconds: None,
        }
    }

    fn value(out: &Outcome, kind: &str) -> f64 {
        out.measurements
            .iter()
            .find(|m| m.metric == HORIZON_AGE.name && m.labels[0].1 == kind)
            .map_or(f64::NAN, |m| m.value)
    }

    #[test]
    fn each_holder_kind_has_its_gauge_and_the_oldest_is_named() {
        let config = ChecksConfig::default();
        let critical = config.long_queries.xmin_horizon_age_critical as f64;
        let mut out = Outcome::new("");
        let holders = [
            holder(
                "prepared_transaction",
                Some(critical + 1.0),
                "prepared transaction t1",
            ),
            holder("backend", Some(10.0), "pid 7 (psql, idle in transaction)"),
            holder("backend", None, "pid 8 (odd)"),
        ];
        evaluate(&config, &holders, (1, 5.0), &mut out);
        assert_eq!(out.status(), Status::Critical, "{out:?}");
        assert!(
            out.problems[0].contains("held by prepared transaction t1"),
            "{out:?}"
        );
        assert_eq!(value(&out, "prepared_transaction"), critical + 1.0);
        assert_eq!(value(&out, "backend"), 10.0);
        assert_eq!(value(&out, "replication_slot"), 0.0);
        assert_eq!(value(&out, "standby_feedback"), 0.0);
        assert_eq!(
            out.details["xmin_horizon"][2]["xmin_age"],
            serde_json::Value::Null
        );
    }

    #[test]
    fn an_old_prepared_transaction_warns_and_none_is_quiet() {
        let config = ChecksConfig::default();
        let warning = config
            .long_queries
            .prepared_transaction_warning
            .get()
            .as_secs_f64();
        let mut out = Outcome::new("");
        evaluate(&config, &[], (2, warning + 1.0), &mut out);
        assert_eq!(out.status(), Status::Warning, "{out:?}");
        let mut quiet = Outcome::new("");
        evaluate(&config, &[], (0, 0.0), &mut quiet);
        assert_eq!(quiet.status(), Status::Ok, "{quiet:?}");
        assert_eq!(quiet.measurements.len(), 6, "{quiet:?}");
    }
}
