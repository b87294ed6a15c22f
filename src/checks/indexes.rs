//! indexes: invalid indexes (`indisvalid = false`, e.g. left by a failed
//! CREATE INDEX CONCURRENTLY: written on every insert, never used), unused
//! indexes (never scanned since stats reset; primary keys, unique indexes
//! and indexes behind constraints excluded, since they enforce something),
//! and duplicates (same table, columns, opclasses, expressions, predicate).
//!
//! Sizes come from `pg_class.relpages` (as of the last VACUUM, ANALYZE or
//! index build): opening 10,000 indexes for their exact size would cost
//! more than the whole rest of the cycle, and would wait on any index
//! locked by a running DROP or REINDEX.

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::json;
use tokio_postgres::Row;

use super::metric::{List, Metric, Spec, Text};
use super::rows::{col, fetch};
use super::{Check, ChecksConfig, Context, Outcome, USER_SCHEMAS};
use crate::report::Status;

const NAME: &str = "indexes";

const INVALID: Metric =
    Metric::gauge("indexes_invalid", "Indexes with indisvalid = false.", &[]).per_database();
const INVALID_BYTES: Metric = Metric::gauge(
    "indexes_invalid_bytes",
    "Total size of the invalid indexes.",
    &[],
)
.per_database();
const UNUSED: Metric = Metric::gauge(
    "indexes_unused",
    "Non-unique, non-constraint indexes never scanned since stats reset.",
    &[],
)
.per_database();
const UNUSED_BYTES: Metric = Metric::gauge(
    "indexes_unused_bytes",
    "Total size of the unused indexes.",
    &[],
)
.per_database();
const DUPLICATE: Metric = Metric::gauge(
    "indexes_duplicate",
    "Indexes duplicating another index of the same table.",
    &[],
)
.per_database();
const DUPLICATE_BYTES: Metric = Metric::gauge(
    "indexes_duplicate_bytes",
    "Size of the redundant duplicates (all copies of a set but its largest).",
    &[],
)
.per_database();

/// This check and every metric it may export.
pub static SPEC: Spec = Spec {
    name: Text::Borrowed(NAME),
    own_interval: true,
    metrics: List::Static(&[
        &INVALID,
        &INVALID_BYTES,
        &UNUSED,
        &UNUSED_BYTES,
        &DUPLICATE,
        &DUPLICATE_BYTES,
    ]),
};

/// Columns: total count, total bytes, name, bytes (top-N by size).
fn invalid_sql(top_n: usize) -> String {
    format!(
        "SELECT count(*) OVER ()::int8, \
           (sum(c.relpages::int8) OVER () * current_setting('block_size')::int8)::float8, \
           n.nspname || '.' || c.relname, \
           (c.relpages::int8 * current_setting('block_size')::int8)::float8 \
         FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE NOT i.indisvalid AND {USER_SCHEMAS} ORDER BY c.relpages DESC, 3 LIMIT {top_n}"
    )
}

fn unused_sql(top_n: usize) -> String {
    format!(
        "SELECT count(*) OVER ()::int8, \
           (sum(c.relpages::int8) OVER () * current_setting('block_size')::int8)::float8, \
           s.schemaname || '.' || s.indexrelname, \
           (c.relpages::int8 * current_setting('block_size')::int8)::float8 \
         FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid \
         JOIN pg_class c ON c.oid = s.indexrelid \
         WHERE s.idx_scan = 0 AND i.indisvalid AND NOT i.indisunique AND NOT i.indisprimary \
           AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = s.indexrelid) \
         ORDER BY c.relpages DESC, 3 LIMIT {top_n}"
    )
}

/// One row per set of identical indexes; the count and bytes columns are
/// what dropping all but the largest index of each set would free.
fn duplicates_sql(top_n: usize) -> String {
    format!(
        "SELECT sum(count(*) - 1) OVER ()::int8, \
           (sum(sum(c.relpages::int8) - max(c.relpages::int8)) OVER () \
             * current_setting('block_size')::int8)::float8, \
           string_agg(n.nspname || '.' || c.relname, ' = ' ORDER BY c.relname), \
           ((sum(c.relpages::int8) - max(c.relpages::int8)) \
             * current_setting('block_size')::int8)::float8 \
         FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE i.indisvalid AND {USER_SCHEMAS} \
         GROUP BY i.indrelid, i.indkey::text, i.indclass::text, i.indcollation::text, \
           coalesce(i.indexprs::text, ''), coalesce(i.indpred::text, '') \
         HAVING count(*) > 1 ORDER BY 3 LIMIT {top_n}"
    )
}

#[derive(Debug, Default)]
struct Listed {
    count: i64,
    bytes: f64,
    names: Vec<(String, f64)>,
}

/// Rows of (count over all, bytes over all, name, bytes); no rows is nothing found.
fn listed(rows: Vec<(i64, f64, String, f64)>) -> Listed {
    Listed {
        count: rows.first().map_or(0, |r| r.0),
        bytes: rows.first().map_or(0.0, |r| r.1),
        names: rows.into_iter().map(|r| (r.2, r.3)).collect(),
    }
}

fn read(row: &Row) -> Result<(i64, f64, String, f64), String> {
    Ok((col(row, 0)?, col(row, 1)?, col(row, 2)?, col(row, 3)?))
}

pub struct Indexes;

impl Check for Indexes {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }

    fn queries(&self, config: &ChecksConfig) -> Vec<String> {
        let n = config.top_n();
        vec![invalid_sql(n), unused_sql(n), duplicates_sql(n)]
    }

    fn run<'a>(&'a mut self, ctx: &'a Context<'_>) -> BoxFuture<'a, Result<Outcome, String>> {
        async move {
            let n = ctx.top_n();
            let session = ctx.session().await?;
            let invalid = listed(fetch(&session, NAME, &invalid_sql(n), read).await?);
            let unused = listed(fetch(&session, NAME, &unused_sql(n), read).await?);
            let duplicates = listed(fetch(&session, NAME, &duplicates_sql(n), read).await?);
            session.finish().await;
            Ok(evaluate(ctx.config, &invalid, &unused, &duplicates))
        }
        .boxed()
    }
}

fn names(list: &Listed) -> String {
    list.names
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn evaluate(
    config: &ChecksConfig,
    invalid: &Listed,
    unused: &Listed,
    duplicates: &Listed,
) -> Outcome {
    let mut out = Outcome::new(format!(
        "{} invalid, {} unused ({}), {} duplicate",
        invalid.count,
        unused.count,
        crate::report::human_bytes(unused.bytes),
        duplicates.count
    ));
    out.set(&INVALID, &[], invalid.count as f64);
    out.set(&INVALID_BYTES, &[], invalid.bytes);
    out.set(&UNUSED, &[], unused.count as f64);
    out.set(&UNUSED_BYTES, &[], unused.bytes);
    out.set(&DUPLICATE, &[], duplicates.count as f64);
    out.set(&DUPLICATE_BYTES, &[], duplicates.bytes);
    if invalid.count > 0 {
        out.flag(
            Status::Warning,
            format!("invalid: {}; drop and recreate them", names(invalid)),
        );
    }
    let min = config.indexes.unused_min_bytes as f64;
    let big_unused: Vec<&str> = unused
        .names
        .iter()
        .filter(|(_, bytes)| *bytes >= min)
        .map(|(n, _)| n.as_str())
        .collect();
    if !big_unused.is_empty() {
        out.flag(
            Status::Warning,
            format!("never scanned: {}", big_unused.join(", ")),
        );
    }
    if duplicates.count > 0 {
        out.flag(
            Status::Warning,
            format!("duplicates: {}", names(duplicates)),
        );
    }
    let detail = |l: &Listed| {
        l.names
            .iter()
            .map(|(n, b)| json!({"index": n, "bytes": b}))
            .collect::<Vec<_>>()
    };
    out.detail("invalid", detail(invalid));
    out.detail("unused", detail(unused));
    out.detail(
        "duplicates",
        duplicates.names.iter().map(|(n, _)| n).collect::<Vec<_>>(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_found_is_ok() {
        let config = ChecksConfig::default();
        let none = listed(vec![]);
        let out = evaluate(&config, &none, &none, &none);
        assert_eq!(out.status(), Status::Ok, "{out:?}");
        assert_eq!(out.headline, "0 invalid, 0 unused (0 B), 0 duplicate");
    }

    #[test]
    fn only_unused_indexes_over_the_size_limit_warn() {
        let mut config = ChecksConfig::default();
        config.indexes.unused_min_bytes = 1_000_000;
        let none = Listed::default();
        let small = listed(vec![(1, 8192.0, "public.t_a".into(), 8192.0)]);
        let out = evaluate(&config, &none, &small, &none);
        assert_eq!(out.status(), Status::Ok, "{out:?}");
        let big = listed(vec![
            (2, 2_008_192.0, "public.t_b".into(), 2_000_000.0),
            (2, 2_008_192.0, "public.t_a".into(), 8192.0),
        ]);
        let out = evaluate(&config, &none, &big, &none);
        assert_eq!(out.status(), Status::Warning, "{out:?}");
        assert_eq!(out.problems, ["warning: never scanned: public.t_b"]);
    }

    #[test]
    fn invalid_and_duplicate_indexes_warn_naming_them() {
        let config = ChecksConfig::default();
        let none = Listed::default();
        let invalid = listed(vec![(1, 8192.0, "public.t_ccic".into(), 8192.0)]);
        let dup = listed(vec![(1, 8192.0, "public.t_a = public.t_a2".into(), 8192.0)]);
        let out = evaluate(&config, &invalid, &none, &dup);
        assert_eq!(out.status(), Status::Warning);
        assert!(out.problems[0].contains("public.t_ccic"), "{out:?}");
        assert!(
            out.problems[1].contains("public.t_a = public.t_a2"),
            "{out:?}"
        );
    }
}
