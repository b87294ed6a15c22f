//! disk_usage: the size of each database, its growth since the previous
//! cycle, and the top-N tables of the target database by total size (heap +
//! indexes + toast).
//!
//! `pg_total_relation_size` opens every relation it measures, which over
//! 10,000 tables takes about a second; so tables are first ranked by
//! `pg_class.relpages` (a catalog column, free, as fresh as the last
//! VACUUM/ANALYZE) and only the top N are measured exactly.

use std::collections::HashMap;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::json;

use super::{Check, ChecksConfig, Context, Labelled, Outcome, USER_SCHEMAS, at_least_unless_zero};
use crate::report::human_bytes;

const DB_SIZE: &str = "database_size_bytes";
const DB_SIZE_HELP: &str = "Size of each database.";
const GROWTH: &str = "database_growth_bytes";
const GROWTH_HELP: &str = "Growth of each database since the previous cycle.";
const TABLE_SIZE: &str = "table_size_bytes";
const TABLE_SIZE_HELP: &str = "Total size (heap + indexes + toast) of the top-N tables.";

const DATABASES_SQL: &str = "SELECT datname::text, pg_database_size(oid)::float8 \
     FROM pg_database WHERE datallowconn ORDER BY datname";

fn tables_sql(top_n: usize) -> String {
    format!(
        "SELECT t.name, pg_total_relation_size(t.oid)::float8 FROM ( \
           SELECT c.oid, n.nspname || '.' || c.relname AS name FROM pg_class c \
           JOIN pg_namespace n ON n.oid = c.relnamespace \
           WHERE c.relkind IN ('r', 'm') AND {USER_SCHEMAS} \
           ORDER BY c.relpages DESC, c.oid LIMIT {top_n}) t \
         ORDER BY 2 DESC, 1"
    )
}

/// Database sizes of the previous cycle, for growth.
#[derive(Default)]
pub struct DiskUsage {
    previous: HashMap<String, f64>,
}

impl Check for DiskUsage {
    fn name(&self) -> &'static str {
        "disk_usage"
    }

    fn queries(&self, config: &ChecksConfig) -> Vec<String> {
        vec![DATABASES_SQL.into(), tables_sql(config.top_n())]
    }

    fn run<'a>(&'a mut self, ctx: &'a Context<'_>) -> BoxFuture<'a, Result<Outcome, String>> {
        async move {
            let session = ctx.session().await?;
            let databases = session.query(DATABASES_SQL).await?;
            let tables = session.query(&tables_sql(ctx.top_n())).await?;
            session.finish().await;
            let databases: Vec<(String, f64)> =
                databases.iter().map(|r| (r.get(0), r.get(1))).collect();
            let tables: Vec<(String, f64)> = tables.iter().map(|r| (r.get(0), r.get(1))).collect();
            Ok(self.evaluate(ctx.config, &databases, &tables))
        }
        .boxed()
    }
}

impl DiskUsage {
    fn evaluate(
        &mut self,
        config: &ChecksConfig,
        databases: &[(String, f64)],
        tables: &[(String, f64)],
    ) -> Outcome {
        let total: f64 = databases.iter().map(|(_, size)| size).sum();
        let mut out = Outcome::new(format!(
            "{} database(s), {}",
            databases.len(),
            human_bytes(total)
        ));
        let limits = &config.disk_usage;
        let mut current = HashMap::new();
        for (name, size) in databases {
            out.gauge(DB_SIZE, DB_SIZE_HELP, *size)
                .with("database", name);
            if let Some(before) = self.previous.get(name) {
                out.gauge(GROWTH, GROWTH_HELP, size - before)
                    .with("database", name);
            }
            out.flag(
                at_least_unless_zero(
                    *size,
                    limits.database_bytes_warning as f64,
                    limits.database_bytes_critical as f64,
                ),
                format!("database {name} is {}", human_bytes(*size)),
            );
            current.insert(name.clone(), *size);
        }
        self.previous = current;
        for (table, size) in tables {
            out.gauge(TABLE_SIZE, TABLE_SIZE_HELP, *size)
                .with("table", table);
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
