//! disk_usage: the size of each database, its growth since the previous
//! cycle, and the top-N tables of the target database by total size (heap +
//! indexes + toast).
//!
//! `pg_total_relation_size` opens every relation it measures, which over
//! 10,000 tables takes about a second; so only candidates are measured: the
//! top N by `pg_class.relpages` (a catalog column, free, as fresh as the last
//! VACUUM/ANALYZE/index build) and, since `relpages` stays 0 on a table never
//! analysed (`reltuples < 0`) however much was loaded into it, the top N of
//! those by the rows the statistics saw inserted or live. Of the 2N measured,
//! the N largest are kept.

use std::collections::HashMap;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::json;

use super::metric::{List, Metric, Spec, Text};
use super::rows::{col, fetch, opt};
use super::{Check, ChecksConfig, Context, Outcome, USER_SCHEMAS, at_least_unless_zero};
use crate::report::human_bytes;

const NAME: &str = "disk_usage";

const DB_SIZE: Metric = Metric::gauge(
    "database_size_bytes",
    "Size of each database.",
    &["database"],
);
const GROWTH: Metric = Metric::gauge(
    "database_growth_bytes",
    "Growth of each database since the previous cycle.",
    &["database"],
);
const TABLE_SIZE: Metric = Metric::gauge(
    "table_size_bytes",
    "Total size (heap + indexes + toast) of the top-N tables.",
    &["table"],
)
.per_database();

/// This check and every metric it may export.
pub static SPEC: Spec = Spec {
    name: Text::Borrowed(NAME),
    own_interval: true,
    metrics: List::Static(&[&DB_SIZE, &GROWTH, &TABLE_SIZE]),
};

/// Every database, `template0` too (it takes disk space like the others).
const DATABASES_SQL: &str = "SELECT datname::text, pg_database_size(oid)::float8 \
     FROM pg_database ORDER BY datname";

fn tables_sql(top_n: usize) -> String {
    format!(
        "SELECT t.name, pg_total_relation_size(t.oid)::float8 FROM ( \
           (SELECT c.oid, n.nspname || '.' || c.relname AS name FROM pg_class c \
            JOIN pg_namespace n ON n.oid = c.relnamespace \
            WHERE c.relkind IN ('r', 'm') AND {USER_SCHEMAS} \
            ORDER BY c.relpages DESC, c.oid LIMIT {top_n}) \
           UNION \
           (SELECT c.oid, n.nspname || '.' || c.relname FROM pg_class c \
            JOIN pg_namespace n ON n.oid = c.relnamespace \
            LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid \
            WHERE c.relkind IN ('r', 'm') AND {USER_SCHEMAS} \
              AND (c.relpages = 0 OR c.reltuples < 0) \
            ORDER BY greatest(s.n_live_tup, s.n_tup_ins) DESC NULLS LAST, c.oid LIMIT {top_n}) \
         ) t \
         ORDER BY 2 DESC NULLS LAST, 1 LIMIT {top_n}"
    )
}

/// Database sizes of the previous cycle, for growth.
#[derive(Default)]
pub struct DiskUsage {
    previous: HashMap<String, f64>,
}

impl Check for DiskUsage {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }

    fn queries(&self, config: &ChecksConfig) -> Vec<String> {
        vec![DATABASES_SQL.into(), tables_sql(config.top_n())]
    }

    fn run<'a>(&'a mut self, ctx: &'a Context<'_>) -> BoxFuture<'a, Result<Outcome, String>> {
        async move {
            let session = ctx.session().await?;
            let databases = match ctx.wants(&DB_SIZE) {
                true => fetch(&session, NAME, DATABASES_SQL, sized).await?,
                false => Vec::new(),
            };
            let tables = match ctx.wants(&TABLE_SIZE) {
                true => fetch(&session, NAME, &tables_sql(ctx.top_n()), sized).await?,
                false => Vec::new(),
            };
            session.finish().await;
            Ok(self.evaluate(ctx.config, &databases, &tables))
        }
        .boxed()
    }
}

/// A database or table and its size: NULL when it was dropped while we
/// looked (`pg_database_size`, `pg_total_relation_size` of a gone object).
#[derive(Debug)]
struct Sized {
    name: String,
    bytes: Option<f64>,
}

fn sized(row: &tokio_postgres::Row) -> Result<Sized, String> {
    Ok(Sized {
        name: col(row, 0)?,
        bytes: opt(row, 1)?,
    })
}

/// The objects that still exist, with their sizes: one dropped during the
/// cycle is no longer the operator's concern, so it is skipped, not an error.
fn present(all: &[Sized]) -> Vec<(&str, f64)> {
    all.iter()
        .filter_map(|s| Some((s.name.as_str(), s.bytes?)))
        .collect()
}

impl DiskUsage {
    fn evaluate(
        &mut self,
        config: &ChecksConfig,
        databases: &[Sized],
        tables: &[Sized],
    ) -> Outcome {
        let databases = present(databases);
        let tables = present(tables);
        let total: f64 = databases.iter().map(|(_, size)| size).sum();
        let mut out = Outcome::new(format!(
            "{} database(s), {}",
            databases.len(),
            human_bytes(total)
        ));
        let limits = &config.disk_usage;
        let mut current = HashMap::new();
        for (name, size) in databases {
            out.set(&DB_SIZE, &[name], size);
            if let Some(before) = self.previous.get(name) {
                out.set(&GROWTH, &[name], size - before);
            }
            out.flag(
                at_least_unless_zero(
                    size,
                    limits.database_bytes_warning as f64,
                    limits.database_bytes_critical as f64,
                ),
                format!("database {name} is {}", human_bytes(size)),
            );
            current.insert(name.to_string(), size);
        }
        self.previous = current;
        for (table, size) in &tables {
            out.set(&TABLE_SIZE, &[*table], *size);
        }
        out.detail(
            "top_tables",
            tables
                .iter()
                .map(|(t, s)| json!({"table": t, "bytes": s}))
                .collect::<Vec<_>>(),
        );
        out
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Status;

    fn sized(name: &str, bytes: Option<f64>) -> Sized {
        Sized {
            name: name.into(),
            bytes,
        }
    }

    fn value(out: &Outcome, metric: Metric, label: &str) -> Option<f64> {
        out.measurements
            .iter()
            .find(|m| m.metric == metric.name && m.labels.iter().any(|(_, v)| v == label))
            .map(|m| m.value)
    }

    #[test]
    fn a_database_over_the_limit_is_flagged_and_growth_follows_the_previous_cycle() {
        let mut config = ChecksConfig::default();
        config.disk_usage.database_bytes_warning = 1000;
        config.disk_usage.database_bytes_critical = 5000;
        let mut check = DiskUsage::default();
        let first = check.evaluate(&config, &[sized("app", Some(500.0))], &[]);
        assert_eq!(first.status(), Status::Ok);
        assert_eq!(
            value(&first, GROWTH, "app"),
            None,
            "no growth on the first cycle"
        );
        let second = check.evaluate(&config, &[sized("app", Some(1500.0))], &[]);
        assert_eq!(second.status(), Status::Warning, "{second:?}");
        assert_eq!(value(&second, GROWTH, "app"), Some(1000.0));
    }

    #[test]
    fn a_database_or_table_dropped_during_the_cycle_is_skipped() {
        let config = ChecksConfig::default();
        let mut check = DiskUsage::default();
        check.evaluate(
            &config,
            &[sized("app", Some(10.0)), sized("old", Some(99.0))],
            &[],
        );
        let out = check.evaluate(
            &config,
            &[sized("app", Some(30.0)), sized("old", None)],
            &[sized("public.gone", None), sized("public.kept", Some(8.0))],
        );
        assert_eq!(out.status(), Status::Ok, "{out:?}");
        assert_eq!(out.headline, "1 database(s), 30 B");
        assert_eq!(value(&out, DB_SIZE, "old"), None);
        assert_eq!(value(&out, GROWTH, "old"), None);
        assert_eq!(value(&out, GROWTH, "app"), Some(20.0));
        assert_eq!(value(&out, TABLE_SIZE, "public.gone"), None);
        assert_eq!(value(&out, TABLE_SIZE, "public.kept"), Some(8.0));
        // Gone from the previous cycle too: no growth when a new one takes its name.
        let again = check.evaluate(&config, &[sized("old", Some(5.0))], &[]);
        assert_eq!(value(&again, GROWTH, "old"), None);
    }
}
