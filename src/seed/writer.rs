//! The writer: streams generated rows into the database with COPY.
//!
//! Generation runs on a blocking thread and hands chunks of typed rows over a
//! small channel; tokio-postgres' `BinaryCopyInWriter` encodes them into a
//! binary COPY. Three ways in:
//! - [`Mode::Upsert`] (normal runs): COPY into a temporary table, then
//!   `INSERT … SELECT … ON CONFLICT DO NOTHING`: rows already there (same
//!   stable id, or same unique key) are skipped, which makes runs idempotent;
//! - [`Mode::Direct`] (`--scale`, only on a database without seed data):
//!   COPY straight into the table, the fast path for millions of rows;
//! - [`Mode::Frozen`]: the same into a table emptied in this transaction,
//!   with `FREEZE` (see [`super::bulk`]).

use std::time::Instant;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_postgres::Transaction;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;

use super::dataset::Plan;
use super::generate::{Table, emit};
use super::rows::Rows;
use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Upsert,
    Direct,
    Frozen,
}

/// Where a seed run is, for a progress bar.
#[derive(Clone, Debug)]
pub struct Progress {
    pub table: &'static str,
    /// Units (users, paths…) of all tables done so far, and in all.
    pub units_done: u64,
    pub units_total: u64,
    /// Rows sent to the server so far, all tables.
    pub rows: u64,
    pub elapsed: std::time::Duration,
}

/// Units generated per chunk, and the number of values that ends a chunk early.
const CHUNK_UNITS: u64 = 512;
const CHUNK_FIELDS: usize = 1 << 15;

/// Counters shared across the tables of one run.
pub struct Tracker<'a> {
    pub started: Instant,
    pub units_done: u64,
    pub units_total: u64,
    pub rows: u64,
    pub report: &'a (dyn Fn(&Progress) + Send + Sync),
}

/// Write every row of `table`; returns how many were inserted.
pub async fn write_table(
    tx: &Transaction<'_>,
    plan: &Plan,
    table: Table,
    mode: Mode,
    tracker: &mut Tracker<'_>,
) -> Result<u64> {
    let units = table.units(plan);
    if units == 0 {
        return Ok(0);
    }
    let into = match mode {
        Mode::Direct | Mode::Frozen => table.name().to_string(),
        Mode::Upsert => {
            let stage = format!("seed_stage_{}", table.name());
            tx.batch_execute(&format!(
                "CREATE TEMP TABLE {stage} (LIKE {}) ON COMMIT DROP",
                table.name()
            ))
            .await
            .map_err(|e| db_error(&format!("staging {}", table.name()), &e))?;
            stage
        }
    };
    let started = Instant::now();
    let copied = copy_rows(tx, plan, table, &into, mode == Mode::Frozen, tracker).await?;
    tracing::debug!(
        table = table.name(),
        rows = copied,
        seconds = started.elapsed().as_secs_f64(),
        "copied"
    );
    match mode {
        Mode::Direct | Mode::Frozen => Ok(copied),
        Mode::Upsert => {
            let columns = table.columns();
            let inserted = tx
                .execute(
                    &format!(
                        "INSERT INTO {table} ({columns}) SELECT {columns} FROM {into} ON CONFLICT DO NOTHING",
                        table = table.name()
                    ),
                    &[],
                )
                .await
                .map_err(|e| db_error(&format!("inserting into {}", table.name()), &e))?;
            tx.batch_execute(&format!("DROP TABLE {into}"))
                .await
                .map_err(|e| db_error("dropping the staging table", &e))?;
            Ok(inserted)
        }
    }
}

/// COPY the generated rows of `table` into `into`; returns the rows copied.
async fn copy_rows(
    tx: &Transaction<'_>,
    plan: &Plan,
    table: Table,
    into: &str,
    freeze: bool,
    tracker: &mut Tracker<'_>,
) -> Result<u64> {
    let context = format!("copying into {}", table.name());
    // The columns' types as the server has them (enums are per database);
    // the writer encodes each value for its column's type.
    let types: Vec<Type> = tx
        .prepare(&format!("SELECT {} FROM {into}", table.columns()))
        .await
        .map_err(|e| db_error(&context, &e))?
        .columns()
        .iter()
        .map(|c| c.type_().clone())
        .collect();
    let (mut receiver, generator) = spawn_generator(plan, table);
    let sink = tx
        .copy_in::<_, Bytes>(&format!(
            "COPY {into} ({}) FROM STDIN (FORMAT binary{})",
            table.columns(),
            if freeze { ", FREEZE" } else { "" }
        ))
        .await
        .map_err(|e| db_error(&context, &e))?;
    let writer = BinaryCopyInWriter::new(sink, &types);
    futures::pin_mut!(writer);
    let units_before = tracker.units_done;
    while let Some((rows, units_done)) = receiver.recv().await {
        for row in rows.iter() {
            // The crate's writer panics on a row of the wrong width.
            if row.len() != types.len() {
                return Err(Error::failed(format!(
                    "{context}: the generator made a row of {} values for {} columns",
                    row.len(),
                    types.len()
                )));
            }
            writer
                .as_mut()
                .write_raw(row)
                .await
                .map_err(|e| db_error(&context, &e))?;
        }
        tracker.units_done = tracker.units_done.max(units_before + units_done);
        tracker.rows += rows.len();
        (tracker.report)(&Progress {
            table: table.name(),
            units_done: tracker.units_done,
            units_total: tracker.units_total,
            rows: tracker.rows,
            elapsed: tracker.started.elapsed(),
        });
    }
    // A generator that died must not let a partial COPY through.
    generator
        .await
        .map_err(|e| Error::failed(format!("the seed generator failed: {e}")))?;
    writer.finish().await.map_err(|e| db_error(&context, &e))
}

/// Generate the rows of `table` on a blocking thread, in chunks of
/// [`CHUNK_UNITS`] units (fewer when they reach [`CHUNK_FIELDS`] values),
/// each sent with the units done so far: on two cores the generator and the
/// server work at the same time.
fn spawn_generator(plan: &Plan, table: Table) -> (mpsc::Receiver<(Rows, u64)>, JoinHandle<()>) {
    let (sender, receiver) = mpsc::channel(4);
    let plan = plan.clone();
    let units = table.units(&plan);
    let generator = tokio::task::spawn_blocking(move || {
        let mut rows = Rows::default();
        let mut start = 0;
        while start < units {
            let end = (start + CHUNK_UNITS).min(units);
            emit(table, &plan, start..end, &mut rows);
            if rows.fields() >= CHUNK_FIELDS || end == units {
                let next = Rows::sized_like(&rows);
                // A closed channel means the COPY failed; its error is reported.
                if sender
                    .blocking_send((std::mem::replace(&mut rows, next), end))
                    .is_err()
                {
                    return;
                }
            }
            start = end;
        }
    });
    (receiver, generator)
}

/// A driver error in the operator's words: the server's message, detail and
/// constraint, plus what pgwarden was doing.
pub fn db_error(context: &str, error: &tokio_postgres::Error) -> Error {
    let Some(db) = error.as_db_error() else {
        return Error::failed(format!("{context}: {error}"));
    };
    let mut message = format!("{context}: {}", db.message());
    if let Some(constraint) = db.constraint() {
        message.push_str(&format!(" (constraint {constraint})"));
    }
    if let Some(detail) = db.detail() {
        message.push_str(&format!("; {detail}"));
    }
    if let Some(hint) = db.hint() {
        message.push_str(&format!("; hint: {hint}"));
    }
    Error::failed(message)
}
