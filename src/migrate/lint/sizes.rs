//! Table sizes from the target's catalog: no scan, one query per run.

use std::collections::HashMap;

use super::{Sizes, TableSize};
use crate::error::{Error, Result};
use crate::migrate::session::db_message;

/// Sizes of the relations (tables, indexes, views) that exist, by the name
/// the findings use; names that do not resolve are left out.
pub async fn lookup(client: &tokio_postgres::Client, names: &[String]) -> Result<Sizes> {
    if names.is_empty() {
        return Ok(HashMap::new());
    }
    // pg_table_size stats the files (no scan); reltuples is the planner's
    // count. A partitioned table's data is in its partitions.
    let rows = client
        .query(
            "SELECT n.name,
                    CASE WHEN c.relkind = 'p'
                         THEN (SELECT coalesce(sum(pg_table_size(t.relid)), 0) FROM pg_partition_tree(c.oid) t)
                         ELSE pg_table_size(c.oid) END::bigint,
                    c.reltuples::float8
               FROM unnest($1::text[]) AS n(name)
               JOIN pg_class c ON c.oid = to_regclass(n.name)",
            &[&names],
        )
        .await
        .map_err(|e| {
            Error::failed(format!(
                "reading table sizes from pg_class: {}",
                db_message(&e)
            ))
        })?;
    let mut sizes = HashMap::new();
    for row in rows {
        let name: Option<String> = row.try_get(0).ok().flatten();
        let bytes: Option<i64> = row.try_get(1).ok().flatten();
        let reltuples: Option<f64> = row.try_get(2).ok().flatten();
        if let (Some(name), Some(bytes)) = (name, bytes) {
            sizes.insert(
                name,
                TableSize {
                    bytes,
                    rows: reltuples.unwrap_or(-1.0),
                },
            );
        }
    }
    Ok(sizes)
}
