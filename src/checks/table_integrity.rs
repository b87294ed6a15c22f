//! table_integrity: what quietly endangers the data or the server — tables
//! without a primary key, constraints left NOT VALID, foreign keys with no
//! supporting index, sequences near exhaustion — plus the two conditions
//! operators page on: transaction ID wraparound age per database and tables
//! whose dead tuples vacuum has not removed.
//!
//! Lists grow with the schema, so metrics are counts and maxima; the first
//! top-N offenders are in the details.

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::json;

use super::bloat;
use super::metric::{List, Metric, Spec, Text};
use super::rows::{col, fetch, opt};
use super::{Check, ChecksConfig, Context, Outcome, USER_SCHEMAS, at_least};
use crate::report::Status;

const NAME: &str = "table_integrity";

const NO_PK: Metric = Metric::gauge(
    "tables_without_primary_key",
    "User tables without a primary key.",
    &[],
)
.per_database();
const NOT_VALID: Metric =
    Metric::gauge("constraints_not_valid", "Constraints left NOT VALID.", &[]).per_database();
const FK_NO_INDEX: Metric = Metric::gauge(
    "foreign_keys_without_index",
    "Foreign keys with no index on their columns.",
    &[],
)
.per_database();
const SEQUENCE: Metric = Metric::gauge(
    "sequence_max_usage_ratio",
    "The fullest readable sequence, 0-1.",
    &[],
)
.per_database();
const XID_AGE: Metric = Metric::gauge(
    "xid_age",
    "age(datfrozenxid) of each database.",
    &["database"],
);
const XID_RATIO: Metric = Metric::gauge(
    "xid_wraparound_ratio",
    "Transaction ID age / 2^31, 0-1.",
    &["database"],
);
const MXID_AGE: Metric = Metric::gauge(
    "multixact_age",
    "mxid_age(datminmxid) of each database.",
    &["database"],
);
const MXID_RATIO: Metric = Metric::gauge(
    "multixact_wraparound_ratio",
    "Multixact ID age / 2^31, 0-1.",
    &["database"],
);
const DEAD_RATIO: Metric = Metric::gauge(
    "dead_tuples_max_ratio",
    "Highest dead/(live+dead) ratio of a table with at least dead_tuples_min dead tuples.",
    &[],
)
.per_database();
const STALE: Metric = Metric::gauge(
    "tables_vacuum_stale",
    "Tables with at least dead_tuples_min dead tuples not vacuumed within vacuum_stale_after.",
    &[],
)
.per_database();

/// This check and every metric it may export.
pub static SPEC: Spec = Spec {
    name: Text::Borrowed(NAME),
    own_interval: true,
    metrics: List::Static(&[
        &NO_PK,
        &NOT_VALID,
        &FK_NO_INDEX,
        &SEQUENCE,
        &XID_AGE,
        &XID_RATIO,
        &MXID_AGE,
        &MXID_RATIO,
        &DEAD_RATIO,
        &STALE,
        &bloat::WASTED,
        &bloat::MAX_RATIO,
    ]),
};

/// Each query returns the full count in column 0 and the top-N offenders' names in column 1.
fn no_pk_sql(top_n: usize) -> String {
    format!(
        "SELECT count(*) OVER ()::int8, n.nspname || '.' || c.relname FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND {USER_SCHEMAS} \
           AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'p') \
         ORDER BY c.relpages DESC, 2 LIMIT {top_n}"
    )
}

fn not_valid_sql(top_n: usize) -> String {
    format!(
        "SELECT count(*) OVER ()::int8, k.conrelid::regclass::text || ' ' || k.conname FROM pg_constraint k \
         JOIN pg_namespace n ON n.oid = k.connamespace \
         WHERE NOT k.convalidated AND {USER_SCHEMAS} ORDER BY 2 LIMIT {top_n}"
    )
}

/// An index supports a foreign key when the key's columns are its leading
/// columns and it is either complete or partial on `<key> IS NOT NULL` only
/// (what an optional reference is indexed with; the lookups a delete on the
/// referenced table makes compare the key with a value, so they can use it).
fn fk_without_index_sql(top_n: usize) -> String {
    format!(
        "SELECT count(*) OVER ()::int8, k.conrelid::regclass::text || ' ' || k.conname FROM pg_constraint k \
         JOIN pg_namespace n ON n.oid = k.connamespace \
         WHERE k.contype = 'f' AND {USER_SCHEMAS} AND NOT EXISTS ( \
           SELECT 1 FROM pg_index i WHERE i.indrelid = k.conrelid \
             AND (i.indkey::int2[])[0:cardinality(k.conkey) - 1] @> k.conkey \
             AND (i.indpred IS NULL OR (cardinality(k.conkey) = 1 AND \
                  pg_get_expr(i.indpred, i.indrelid) = ( \
                    SELECT '(' || quote_ident(a.attname) || ' IS NOT NULL)' FROM pg_attribute a \
                    WHERE a.attrelid = k.conrelid AND a.attnum = k.conkey[1])))) \
         ORDER BY 2 LIMIT {top_n}"
    )
}

/// Usage of each sequence against the smallest range it feeds: its own
/// maximum (minimum when descending) or that of a narrower column whose
/// default calls it (`pg_attrdef` depending on the sequence) or whose
/// identity it is (deptype `i`). A `bigint` sequence feeding a `smallint`
/// column fails at 32,767, not at 2^63. One row per sequence, at its
/// narrowest column; `last_value` is NULL for sequences the role may not
/// read (or never used), and those are skipped.
fn sequences_sql(top_n: usize) -> String {
    format!(
        "WITH fed AS ( \
           SELECT d.refobjid AS seq, a.attrelid, a.attname, a.atttypid FROM pg_depend d \
           JOIN pg_attrdef ad ON d.classid = 'pg_attrdef'::regclass AND ad.oid = d.objid \
           JOIN pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum \
           WHERE d.refclassid = 'pg_class'::regclass \
           UNION \
           SELECT d.objid, a.attrelid, a.attname, a.atttypid FROM pg_depend d \
           JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid \
           WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass \
             AND d.deptype = 'i' \
         ), bounded AS ( \
           SELECT s.schemaname || '.' || s.sequencename AS name, \
             f.attrelid::regclass::text || '.' || quote_ident(f.attname) \
               || ' ' || format_type(f.atttypid, NULL) AS col, \
             s.last_value::numeric AS last, s.increment_by > 0 AS up, \
             least(s.max_value::numeric, CASE f.atttypid WHEN 'int2'::regtype THEN 32767 \
               WHEN 'int4'::regtype THEN 2147483647 END) AS hi, \
             greatest(s.min_value::numeric, CASE f.atttypid WHEN 'int2'::regtype THEN -32768 \
               WHEN 'int4'::regtype THEN -2147483648 END) AS lo \
           FROM pg_sequences s \
           LEFT JOIN fed f ON f.seq = format('%I.%I', s.schemaname, s.sequencename)::regclass \
           WHERE s.last_value IS NOT NULL \
         ), used AS ( \
           SELECT DISTINCT ON (name) name, col, \
             (CASE WHEN up THEN (last - lo) / nullif(hi - lo, 0) \
                   ELSE (hi - last) / nullif(hi - lo, 0) END)::float8 AS usage \
           FROM bounded ORDER BY name, 3 DESC NULLS LAST, col \
         ) \
         SELECT count(*) OVER ()::int8, name, col, usage FROM used \
         ORDER BY usage DESC NULLS LAST, name LIMIT {top_n}"
    )
}

/// Transaction ID and multixact ID ages of each database.
const XID_SQL: &str = "SELECT datname::text, age(datfrozenxid)::float8, \
     mxid_age(datminmxid)::float8 FROM pg_database ORDER BY datname";

/// A database with the ages of its oldest unfrozen transaction and multixact IDs.
type Ages = (String, f64, f64);

fn dead_tuples_sql(config: &ChecksConfig) -> String {
    let limits = &config.table_integrity;
    format!(
        "SELECT count(*) OVER ()::int8, schemaname || '.' || relname, \
           (n_dead_tup::float8 / greatest(n_live_tup + n_dead_tup, 1))::float8 AS ratio, \
           n_dead_tup::int8, \
           count(*) FILTER (WHERE coalesce(greatest(last_vacuum, last_autovacuum), 'epoch') \
                 < clock_timestamp() - interval '{} seconds') OVER ()::int8, \
           extract(epoch FROM clock_timestamp() - greatest(last_vacuum, last_autovacuum))::float8 \
         FROM pg_stat_user_tables WHERE n_dead_tup >= {} ORDER BY 3 DESC, 2 LIMIT {}",
        limits.vacuum_stale_after.get().as_secs(),
        limits.dead_tuples_min,
        config.top_n()
    )
}

pub struct TableIntegrity;

impl Check for TableIntegrity {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }

    fn queries(&self, config: &ChecksConfig) -> Vec<String> {
        let n = config.top_n();
        vec![
            no_pk_sql(n),
            not_valid_sql(n),
            fk_without_index_sql(n),
            sequences_sql(n),
            XID_SQL.into(),
            dead_tuples_sql(config),
            bloat::sql(n),
        ]
    }

    fn run<'a>(&'a mut self, ctx: &'a Context<'_>) -> BoxFuture<'a, Result<Outcome, String>> {
        async move {
            let n = ctx.top_n();
            let session = ctx.session().await?;
            let mut lists = Vec::new();
            for sql in [no_pk_sql(n), not_valid_sql(n), fk_without_index_sql(n)] {
                let rows = fetch(&session, NAME, &sql, |r| Ok((col(r, 0)?, col(r, 1)?))).await?;
                lists.push(Found::from_rows(rows));
            }
            let sequences = fetch(&session, NAME, &sequences_sql(n), |r| {
                Ok(Sequence {
                    name: col(r, 1)?,
                    column: opt(r, 2)?,
                    usage: opt(r, 3)?,
                })
            })
            .await?;
            let xids = match ctx.wants(&XID_AGE) {
                true => {
                    fetch(&session, NAME, XID_SQL, |r| {
                        Ok((col(r, 0)?, col(r, 1)?, col(r, 2)?))
                    })
                    .await?
                }
                false => Vec::new(),
            };
            let dead = fetch(&session, NAME, &dead_tuples_sql(ctx.config), |r| {
                Ok(Dead {
                    table: col(r, 1)?,
                    ratio: col(r, 2)?,
                    tuples: col(r, 3)?,
                    stale: col(r, 4)?,
                    vacuumed_ago: opt(r, 5)?,
                })
            })
            .await?;
            let bloated = fetch(&session, NAME, &bloat::sql(n), bloat::bloat).await?;
            session.finish().await;
            let mut out = evaluate(ctx.config, &lists, &sequences, &xids, &dead);
            bloat::evaluate(ctx.config, &bloated, &mut out);
            Ok(out)
        }
        .boxed()
    }
}

/// A listed condition: the full count and the top-N offenders' names.
#[derive(Debug, Default)]
struct Found {
    count: i64,
    names: Vec<String>,
}

impl Found {
    /// Rows of (count over all, name); no rows is a count of 0.
    fn from_rows(rows: Vec<(i64, String)>) -> Self {
        Self {
            count: rows.first().map_or(0, |(count, _)| *count),
            names: rows.into_iter().map(|(_, name)| name).collect(),
        }
    }
}

/// The listed conditions, in the order `run` queries them.
const LISTED: [(&Metric, &str); 3] = [
    (&NO_PK, "without primary key"),
    (&NOT_VALID, "NOT VALID"),
    (&FK_NO_INDEX, "unindexed foreign keys"),
];

/// `usage` is NULL for a sequence whose minimum equals its maximum;
/// `column` ("table.column type") is the narrowest column it feeds, if any.
#[derive(Debug)]
struct Sequence {
    name: String,
    column: Option<String>,
    usage: Option<f64>,
}

/// A table with dead tuples; `stale` (the count of all such tables not
/// vacuumed recently) is repeated on every row. `vacuumed_ago` (seconds) is
/// NULL for a table never vacuumed.
#[derive(Debug)]
struct Dead {
    table: String,
    ratio: f64,
    tuples: i64,
    stale: i64,
    vacuumed_ago: Option<f64>,
}

/// When a table was last vacuumed, in words: a NULL is "never", not 1970.
fn last_vacuum(ago: Option<f64>) -> String {
    match ago {
        None => "never vacuumed".into(),
        Some(s) if s < 3600.0 => format!("last vacuumed {:.0} min ago", s / 60.0),
        Some(s) if s < 2.0 * 86_400.0 => format!("last vacuumed {:.0} h ago", s / 3600.0),
        Some(s) => format!("last vacuumed {:.0} days ago", s / 86_400.0),
    }
}

fn evaluate(
    config: &ChecksConfig,
    lists: &[Found],
    sequences: &[Sequence],
    xids: &[Ages],
    dead: &[Dead],
) -> Outcome {
    let mut out = Outcome::new("");
    let mut headline = Vec::new();
    for (found, (metric, what)) in lists.iter().zip(LISTED) {
        counted(found, &mut out, metric, what);
        headline.push(format!("{} {what}", found.count));
    }
    sequence_usage(config, sequences, &mut out);
    let oldest = wraparound(config, xids, &mut out);
    dead_tuples(config, dead, &mut out);
    out.set_headline(format!(
        "{}, xid wraparound {:.1}%",
        headline.join(", "),
        oldest * 100.0
    ));
    out
}

/// A count metric, a warning when non-zero, and the offenders in the details.
fn counted(found: &Found, out: &mut Outcome, metric: &Metric, what: &str) {
    let Found { count, names } = found;
    out.set(metric, &[], *count as f64);
    if *count > 0 {
        out.flag(
            Status::Warning,
            format!("{count} {what}: {}", names.join(", ")),
        );
    }
    out.detail(&metric.name, names);
}

fn sequence_usage(config: &ChecksConfig, rows: &[Sequence], out: &mut Outcome) {
    let fullest = rows.first().and_then(|s| s.usage).unwrap_or(0.0);
    out.set(&SEQUENCE, &[], fullest);
    let limits = &config.table_integrity;
    if let Some(first) = rows.first() {
        out.flag(
            at_least(
                fullest,
                limits.sequence_usage_warning.get(),
                limits.sequence_usage_critical.get(),
            ),
            match &first.column {
                Some(column) => format!(
                    "sequence {} is {:.0}% used by column {column}",
                    first.name,
                    fullest * 100.0
                ),
                None => format!("sequence {} is {:.0}% used", first.name, fullest * 100.0),
            },
        );
    }
    let listed: Vec<_> = rows
        .iter()
        .map(|s| json!({"sequence": s.name, "column": s.column, "usage": s.usage}))
        .collect();
    out.detail("sequences", listed);
}

/// Transaction ID and multixact ID wraparound of each database; returns
/// the highest transaction ID ratio. Both run out at 2^31.
fn wraparound(config: &ChecksConfig, rows: &[Ages], out: &mut Outcome) -> f64 {
    const LIMIT: f64 = 2_147_483_648.0;
    let limits = &config.table_integrity;
    let mut oldest = 0.0f64;
    for (database, xid_age, mxid_age) in rows {
        oldest = oldest.max(xid_age / LIMIT);
        let kinds = [
            (
                *xid_age,
                (&XID_AGE, &XID_RATIO),
                (
                    limits.xid_wraparound_warning,
                    limits.xid_wraparound_critical,
                ),
                "transaction ID",
            ),
            (
                *mxid_age,
                (&MXID_AGE, &MXID_RATIO),
                (
                    limits.multixact_wraparound_warning,
                    limits.multixact_wraparound_critical,
                ),
                "multixact ID",
            ),
        ];
        for (age, (age_metric, ratio_metric), (warning, critical), what) in kinds {
            let ratio = age / LIMIT;
            out.set(age_metric, &[database], age);
            out.set(ratio_metric, &[database], ratio);
            out.flag(
                at_least(ratio, warning.get(), critical.get()),
                format!(
                    "database {database} is at {:.0}% of {what} wraparound; VACUUM FREEZE it",
                    ratio * 100.0
                ),
            );
        }
    }
    oldest
}

fn dead_tuples(config: &ChecksConfig, rows: &[Dead], out: &mut Outcome) {
    let limits = &config.table_integrity;
    let max_ratio = rows.first().map_or(0.0, |d| d.ratio);
    let stale = rows.first().map_or(0, |d| d.stale);
    out.set(&DEAD_RATIO, &[], max_ratio);
    out.set(&STALE, &[], stale as f64);
    if let Some(first) = rows.first() {
        out.flag(
            at_least(
                max_ratio,
                limits.dead_tuples_ratio_warning.get(),
                f64::INFINITY,
            ),
            format!(
                "table {} is {:.0}% dead tuples",
                first.table,
                max_ratio * 100.0
            ),
        );
    }
    if stale > 0 {
        let after = limits.vacuum_stale_after.get().as_secs_f64();
        let example = rows
            .iter()
            .find(|d| d.vacuumed_ago.is_none_or(|ago| ago >= after))
            .map(|d| format!(" ({} {})", d.table, last_vacuum(d.vacuumed_ago)))
            .unwrap_or_default();
        out.flag(
            Status::Warning,
            format!(
                "{stale} tables with dead tuples not vacuumed within {}{example}",
                limits.vacuum_stale_after
            ),
        );
    }
    let listed: Vec<_> = rows
        .iter()
        .map(|d| {
            json!({"table": d.table, "dead_ratio": d.ratio, "dead_tuples": d.tuples,
                   "last_vacuum": last_vacuum(d.vacuumed_ago)})
        })
        .collect();
    out.detail("dead_tuples", listed);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none() -> Vec<Found> {
        (0..3).map(|_| Found::default()).collect()
    }

    fn value(out: &Outcome, metric: Metric) -> f64 {
        out.measurements
            .iter()
            .filter(|m| m.metric == metric.name)
            .map(|m| m.value)
            .fold(f64::NAN, f64::max)
    }

    #[test]
    fn a_clean_schema_is_ok_and_listed_conditions_warn_with_their_names() {
        let config = ChecksConfig::default();
        let xids = [("app".to_string(), 1000.0, 10.0)];
        let clean = evaluate(&config, &none(), &[], &xids, &[]);
        assert_eq!(clean.status(), Status::Ok, "{clean:?}");
        let mut lists = none();
        lists[0] = Found::from_rows(vec![(12, "public.log".into()), (12, "public.tmp".into())]);
        let out = evaluate(&config, &lists, &[], &xids, &[]);
        assert_eq!(out.status(), Status::Warning, "{out:?}");
        assert_eq!(value(&out, NO_PK), 12.0);
        assert!(
            out.problems[0].contains("public.log, public.tmp"),
            "{out:?}"
        );
        assert!(
            out.headline
                .starts_with("12 without primary key, 0 NOT VALID"),
            "{out:?}"
        );
    }

    #[test]
    fn wraparound_near_the_limit_is_critical() {
        let config = ChecksConfig::default();
        let critical = config.table_integrity.xid_wraparound_critical.get();
        let xids = [
            ("app".to_string(), 1000.0, 10.0),
            ("old".to_string(), (critical + 0.01) * 2_147_483_648.0, 10.0),
        ];
        let out = evaluate(&config, &none(), &[], &xids, &[]);
        assert_eq!(out.status(), Status::Critical, "{out:?}");
        assert!(out.problems[0].contains("database old"), "{out:?}");
    }

    #[test]
    fn multixact_wraparound_is_judged_beside_the_xid_one() {
        let config = ChecksConfig::default();
        let warning = config.table_integrity.multixact_wraparound_warning.get();
        let ages = [(
            "app".to_string(),
            1000.0,
            (warning + 0.01) * 2_147_483_648.0,
        )];
        let out = evaluate(&config, &none(), &[], &ages, &[]);
        assert_eq!(out.status(), Status::Warning, "{out:?}");
        assert!(
            out.problems[0].contains("database app is at 51% of multixact ID wraparound"),
            "{out:?}"
        );
        assert!((value(&out, MXID_RATIO) - warning - 0.01).abs() < 1e-9);
    }

    #[test]
    fn a_sequence_without_usage_counts_as_empty() {
        let config = ChecksConfig::default();
        let sequences = [Sequence {
            name: "public.fixed".into(),
            column: None,
            usage: None,
        }];
        let out = evaluate(&config, &none(), &sequences, &[], &[]);
        assert_eq!(out.status(), Status::Ok, "{out:?}");
        assert_eq!(value(&out, SEQUENCE), 0.0);
        assert_eq!(
            out.details["sequences"][0]["usage"],
            serde_json::Value::Null
        );
        let full = [Sequence {
            name: "public.ids".into(),
            column: None,
            usage: Some(0.99),
        }];
        let out = evaluate(&config, &none(), &full, &[], &[]);
        assert_eq!(out.status(), Status::Critical, "{out:?}");
    }

    #[test]
    fn a_sequence_measured_against_its_column_names_the_column() {
        let config = ChecksConfig::default();
        let narrow = [Sequence {
            name: "public.tickets_id_seq".into(),
            column: Some("tickets.id smallint".into()),
            usage: Some(0.8),
        }];
        let out = evaluate(&config, &none(), &narrow, &[], &[]);
        assert_eq!(out.status(), Status::Warning, "{out:?}");
        assert!(
            out.problems[0].contains("80% used by column tickets.id smallint"),
            "{out:?}"
        );
        assert_eq!(out.details["sequences"][0]["column"], "tickets.id smallint");
    }

    #[test]
    fn dead_tuples_over_the_ratio_and_stale_tables_warn() {
        let config = ChecksConfig::default();
        let dead = [Dead {
            table: "public.queue".into(),
            ratio: 0.9,
            tuples: 50_000,
            stale: 2,
            vacuumed_ago: None,
        }];
        let out = evaluate(&config, &none(), &[], &[], &dead);
        assert_eq!(out.status(), Status::Warning, "{out:?}");
        assert_eq!(out.problems.len(), 2, "{out:?}");
        assert_eq!(value(&out, STALE), 2.0);
        assert!(
            out.problems[1].contains("(public.queue never vacuumed)"),
            "{out:?}"
        );
        assert_eq!(
            out.details["dead_tuples"][0]["last_vacuum"],
            "never vacuumed"
        );
        assert_eq!(
            last_vacuum(Some(10.0 * 86_400.0)),
            "last vacuumed 10 days ago"
        );
    }
}
