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
//!
//! **Frozen rows.** The tables are also truncated (they are empty, so this
//! deletes nothing) so that the writer can `COPY … FREEZE` into them: rows
//! land already frozen on pages marked all-visible, and every later scan of
//! the transaction (each index build, each foreign-key check) takes whole
//! pages as visible instead of checking each row: about 10% less server CPU
//! for the rebuild, and no hint-bit writes or freezing vacuum later. Emptiness
//! is checked again under an exclusive lock, so a row another session commits
//! meanwhile is never truncated away. Tables with a `TRUNCATE` trigger
//! (`audit_log` refuses truncation) are loaded without FREEZE rather than
//! firing it. If the transaction fails, the truncation rolls back with it.
//!
//! Measured and left alone (`examples/seed_bench.rs`, server CPU per phase):
//! COPY and the rebuild are both bound by the server's one backend; the
//! generator thread is never waited on, so buffer sizes and generator
//! allocations do not matter. `maintenance_work_mem` from 64 MB to 1 GB
//! changes nothing at these sizes (the sorts fit); adding foreign keys `NOT
//! VALID` and then validating them runs the same check query (no gain);
//! `ANALYZE` before the checks costs more than it saves. Parallel index
//! builds are left to the server's `max_parallel_maintenance_workers`.

use tokio_postgres::Transaction;

use super::writer::db_error;
use crate::checks::rows::value;
use crate::error::Result;

/// The statements that recreate what [`defer`] dropped, in order, and the
/// tables truncated in this transaction (so `COPY … FREEZE` may load them).
pub struct Deferred {
    recreate: Vec<String>,
    truncated: Vec<String>,
}

impl Deferred {
    /// True when `table` may be loaded with `COPY … FREEZE`.
    pub fn frozen(&self, table: &str) -> bool {
        self.truncated.iter().any(|t| t == table)
    }

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

/// When every one of `tables` is empty: lock them, drop their keys and
/// indexes, and truncate them, for a bulk load. `None` when a table has rows.
pub async fn defer_if_empty(tx: &Transaction<'_>, tables: &[&str]) -> Result<Option<Deferred>> {
    if !all_empty(tx, tables).await? {
        return Ok(None);
    }
    // Look again under the lock: a row committed since would be truncated.
    tx.batch_execute(&format!(
        "LOCK TABLE {} IN ACCESS EXCLUSIVE MODE",
        tables.join(", ")
    ))
    .await
    .map_err(|e| db_error("locking the tables to seed", &e))?;
    if !all_empty(tx, tables).await? {
        return Ok(None);
    }
    let recreate = defer(tx, tables).await?;
    let truncated = truncate(tx, tables).await?;
    Ok(Some(Deferred {
        recreate,
        truncated,
    }))
}

/// Truncate those of `tables` (empty, locked, without foreign keys now) that
/// have no `TRUNCATE` trigger; returns them.
async fn truncate(tx: &Transaction<'_>, tables: &[&str]) -> Result<Vec<String>> {
    // tgtype bit 5 (32) is TRIGGER_TYPE_TRUNCATE.
    let row = tx
        .query_one(
            "SELECT coalesce(array_agg(n ORDER BY o), '{}') FROM unnest($1::text[]) WITH ORDINALITY AS t(n, o) \
              WHERE NOT EXISTS (SELECT 1 FROM pg_trigger g \
                                 WHERE g.tgrelid = to_regclass(n) AND g.tgtype & 32 <> 0)",
            &[&tables],
        )
        .await
        .map_err(|e| db_error("looking for TRUNCATE triggers", &e))?;
    let names: Vec<String> = value(&row, 0, "looking for TRUNCATE triggers")?;
    if !names.is_empty() {
        tx.batch_execute(&format!("TRUNCATE {}", names.join(", ")))
            .await
            .map_err(|e| db_error("emptying the tables for a frozen load", &e))?;
    }
    Ok(names)
}

/// Drop the keys and indexes of `tables`; returns what recreates them.
async fn defer(tx: &Transaction<'_>, tables: &[&str]) -> Result<Vec<String>> {
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
        let what = "reading the keys and indexes to defer";
        let step: i32 = value(row, 0, what)?;
        let drop: String = value(row, 1, what)?;
        tx.batch_execute(&drop)
            .await
            .map_err(|e| db_error(&format!("deferring ({drop})"), &e))?;
        let by_step = usize::try_from(step - 1)
            .ok()
            .and_then(|i| recreate_by_step.get_mut(i))
            .ok_or_else(|| {
                crate::error::Error::failed(format!("{what}: step {step} is not 1, 2 or 3"))
            })?;
        by_step.push(value(row, 2, what)?);
    }
    // Keys first (foreign keys need them), then indexes, then foreign keys.
    let [fks, keys, indexes] = recreate_by_step;
    Ok(keys.into_iter().chain(indexes).chain(fks).collect())
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
async fn all_empty(tx: &Transaction<'_>, tables: &[&str]) -> Result<bool> {
    for table in tables {
        let what = format!("looking into {table}");
        let row = tx
            .query_one(&format!("SELECT EXISTS (SELECT 1 FROM {table})"), &[])
            .await
            .map_err(|e| db_error(&what, &e))?;
        let any: bool = value(&row, 0, &what)?;
        if any {
            return Ok(false);
        }
    }
    Ok(true)
}
