//! Bulk loading into empty tables: keys and indexes after the data.
//!
//! Maintaining a B-tree per row and checking foreign keys row by row costs
//! several times the COPY itself; building an index once from sorted data and
//! checking a foreign key with one join is much cheaper. This is what
//! `pg_restore` does, and what `--scale` does when the seeded tables are
//! empty: it drops the foreign keys, keys and indexes of those tables (read
//! from the catalog, so it follows whatever the migrations made), loads, and
//! recreates them, all in the seed transaction. A failure anywhere, including
//! a key that no longer holds, rolls everything back, definitions included.

use tokio_postgres::Transaction;

use super::writer::db_error;
use crate::error::Result;

/// The statements that recreate what [`defer`] dropped, in order.
pub struct Deferred {
    recreate: Vec<String>,
}

impl Deferred {
    pub fn len(&self) -> usize {
        self.recreate.len()
    }

    pub fn is_empty(&self) -> bool {
        self.recreate.is_empty()
    }
}

/// (drop, recreate) pairs: foreign keys touching the tables, then their
/// primary/unique/exclusion constraints, then their other indexes.
const CATALOG: &str = "
WITH t AS (SELECT to_regclass(n)::oid AS oid FROM unnest($1::text[]) AS n)
SELECT 1 AS step, format('ALTER TABLE %s DROP CONSTRAINT %I', c.conrelid::regclass, c.conname),
       format('ALTER TABLE %s ADD CONSTRAINT %I %s', c.conrelid::regclass, c.conname, pg_get_constraintdef(c.oid))
  FROM pg_constraint c
 WHERE c.contype = 'f' AND (c.conrelid IN (SELECT oid FROM t) OR c.confrelid IN (SELECT oid FROM t))
UNION ALL
SELECT 2, format('ALTER TABLE %s DROP CONSTRAINT %I', c.conrelid::regclass, c.conname),
       format('ALTER TABLE %s ADD CONSTRAINT %I %s', c.conrelid::regclass, c.conname, pg_get_constraintdef(c.oid))
  FROM pg_constraint c
 WHERE c.contype IN ('p', 'u', 'x') AND c.conrelid IN (SELECT oid FROM t)
UNION ALL
SELECT 3, format('DROP INDEX %s', i.indexrelid::regclass), pg_get_indexdef(i.indexrelid)
  FROM pg_index i
 WHERE i.indrelid IN (SELECT oid FROM t)
   AND NOT EXISTS (SELECT 1 FROM pg_constraint c
                    WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid
                      AND c.contype IN ('p', 'u', 'x'))
ORDER BY 1, 2";

/// Drop the keys and indexes of `tables` (all empty) for a bulk load.
pub async fn defer(tx: &Transaction<'_>, tables: &[&str]) -> Result<Deferred> {
    // Index builds sort in memory rather than in temporary files; LOCAL:
    // for this transaction only.
    tx.batch_execute("SET LOCAL maintenance_work_mem = '256MB'")
        .await
        .map_err(|e| db_error("setting maintenance_work_mem", &e))?;
    let rows = tx
        .query(CATALOG, &[&tables])
        .await
        .map_err(|e| db_error("reading the keys and indexes to defer", &e))?;
    let mut recreate_by_step: [Vec<String>; 3] = Default::default();
    for row in &rows {
        let step: i32 = row.get(0);
        let drop: String = row.get(1);
        tx.batch_execute(&drop)
            .await
            .map_err(|e| db_error(&format!("deferring ({drop})"), &e))?;
        recreate_by_step[(step - 1) as usize].push(row.get(2));
    }
    // Keys first (foreign keys need them), then indexes, then foreign keys.
    let [fks, keys, indexes] = recreate_by_step;
    Ok(Deferred {
        recreate: keys.into_iter().chain(indexes).chain(fks).collect(),
    })
}

/// Recreate (and so validate) everything [`defer`] dropped.
pub async fn restore(tx: &Transaction<'_>, deferred: Deferred) -> Result<()> {
    for sql in deferred.recreate {
        let started = std::time::Instant::now();
        let done = tx.batch_execute(&sql).await;
        tracing::debug!(seconds = started.elapsed().as_secs_f64(), %sql, "recreated");
        done.map_err(|e| db_error(&format!("recreating after the bulk load ({sql})"), &e))?;
    }
    Ok(())
}

/// True when none of `tables` has a row.
pub async fn all_empty(tx: &Transaction<'_>, tables: &[&str]) -> Result<bool> {
    for table in tables {
        let any: bool = tx
            .query_one(&format!("SELECT EXISTS (SELECT 1 FROM {table})"), &[])
            .await
            .map_err(|e| db_error(&format!("looking into {table}"), &e))?
            .get(0);
        if any {
            return Ok(false);
        }
    }
    Ok(true)
}
