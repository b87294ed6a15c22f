//! What the database says was applied, and how that compares with the files.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use super::files::Migration;
use super::plan::HISTORY_TABLE;
use super::session::db_message;
use crate::checks::rows::{col, typed, value};
use crate::error::{Error, Result};

/// pgwarden's record of non-transactional migrations that stopped midway.
pub const INCOMPLETE_TABLE: &str = "pgwarden_migration_incomplete";

/// One row of refinery's history table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryRow {
    pub version: i64,
    pub name: String,
    pub applied_on: String,
    pub checksum: String,
}

/// An applied migration whose file changed, was renamed or disappeared.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Drift {
    pub version: i64,
    /// The name recorded in the history.
    pub name: String,
    /// The file now holding this version (None: missing).
    pub file: Option<PathBuf>,
    pub recorded_checksum: String,
    pub file_checksum: Option<String>,
    /// The sentence for the operator.
    pub message: String,
}

/// A non-transactional migration that failed partway.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Incomplete {
    pub version: i64,
    pub name: String,
    pub direction: String,
    /// The statement that failed (1-based) and how many the file has.
    pub failed_statement: i32,
    pub statements: i32,
    pub error: String,
    pub failed_at: String,
    /// Invalid indexes left in the database (what a failed CONCURRENTLY leaves).
    pub invalid_indexes: Vec<String>,
    /// What to clean up before running it again.
    pub advice: String,
}

pub async fn table_exists(client: &Client, table: &str) -> Result<bool> {
    let row = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .await
        .map_err(|e| Error::failed(format!("reading the catalog: {}", db_message(&e))))?;
    value(&row, 0, "reading the catalog")
}

/// The history, oldest first (empty when the table does not exist yet).
pub async fn read(client: &Client) -> Result<Vec<HistoryRow>> {
    if !table_exists(client, HISTORY_TABLE).await? {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT version::int8, coalesce(name, ''), coalesce(applied_on, ''), coalesce(checksum, '') \
         FROM {HISTORY_TABLE} ORDER BY version"
    );
    let rows = client
        .query(&sql, &[])
        .await
        .map_err(|e| Error::failed(format!("reading {HISTORY_TABLE}: {}", db_message(&e))))?;
    typed(&format!("reading {HISTORY_TABLE}"), &sql, &rows, |r| {
        Ok(HistoryRow {
            version: col(r, 0)?,
            name: col(r, 1)?,
            applied_on: col(r, 2)?,
            checksum: col(r, 3)?,
        })
    })
    .map_err(Error::failed)
}

/// Applied migrations that no longer match their files.
pub fn drift(history: &[HistoryRow], files: &[Migration], dir: &Path) -> Vec<Drift> {
    let mut out = Vec::new();
    for row in history {
        let label = format!("V{}__{}", row.version, row.name);
        let Some(file) = files.iter().find(|m| m.version == row.version) else {
            out.push(Drift {
                version: row.version,
                name: row.name.clone(),
                file: None,
                recorded_checksum: row.checksum.clone(),
                file_checksum: None,
                message: format!(
                    "{label} is applied (on {}) but its file {label}.sql is missing from {}; restore it (e.g. from git) — pgwarden will not guess what the database holds",
                    row.applied_on,
                    dir.display()
                ),
            });
            continue;
        };
        let file_checksum = file.checksum.to_string();
        if file.name == row.name && file_checksum == row.checksum {
            continue;
        }
        let message = format!(
            "{} was changed after it was applied as {label}: checksum in {HISTORY_TABLE} {}, checksum of the file now {file_checksum}; restore the file as it was applied and put the change in a new migration (`pgwarden migrate create`)",
            file.up.path.display(),
            row.checksum,
        );
        out.push(Drift {
            version: row.version,
            name: row.name.clone(),
            file: Some(file.up.path.clone()),
            recorded_checksum: row.checksum.clone(),
            file_checksum: Some(file_checksum),
            message,
        });
    }
    out
}

/// Refuse to go on when anything drifted.
pub fn refuse_drift(drift: &[Drift]) -> Result<()> {
    if drift.is_empty() {
        return Ok(());
    }
    let lines: Vec<&str> = drift.iter().map(|d| d.message.as_str()).collect();
    Err(Error::failed(format!(
        "refusing to migrate: the migration files no longer match the database's history:\n  {}",
        lines.join("\n  ")
    )))
}

/// Record a partial non-transactional run (replacing an older record).
pub async fn record_incomplete(
    client: &Client,
    migration: &Migration,
    direction: &str,
    failed_statement: usize,
    statements: usize,
    error: &str,
) -> Result<()> {
    let sql = format!(
        "CREATE TABLE IF NOT EXISTS {INCOMPLETE_TABLE} (
             version int8 PRIMARY KEY,
             name text NOT NULL,
             direction text NOT NULL,
             failed_statement int4 NOT NULL,
             statements int4 NOT NULL,
             error text NOT NULL,
             failed_at timestamptz NOT NULL DEFAULT now())"
    );
    let insert = format!(
        "INSERT INTO {INCOMPLETE_TABLE} (version, name, direction, failed_statement, statements, error)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (version) DO UPDATE SET name = EXCLUDED.name, direction = EXCLUDED.direction,
             failed_statement = EXCLUDED.failed_statement, statements = EXCLUDED.statements,
             error = EXCLUDED.error, failed_at = now()"
    );
    let result = async {
        client.batch_execute(&sql).await?;
        client
            .execute(
                &insert,
                &[
                    &migration.version,
                    &migration.name,
                    &direction,
                    &(failed_statement as i32),
                    &(statements as i32),
                    &error,
                ],
            )
            .await
    };
    result
        .await
        .map(|_| ())
        .map_err(|e| Error::failed(format!("recording the failure: {}", db_message(&e))))
}

/// Forget a partial run once the migration has gone through.
pub async fn clear_incomplete(client: &Client, version: i64) -> Result<()> {
    if !table_exists(client, INCOMPLETE_TABLE).await? {
        return Ok(());
    }
    client
        .execute(
            &format!("DELETE FROM {INCOMPLETE_TABLE} WHERE version = $1"),
            &[&version],
        )
        .await
        .map(|_| ())
        .map_err(|e| Error::failed(db_message(&e)))
}

/// Partial runs on record, with what they left behind.
pub async fn incomplete(client: &Client) -> Result<Vec<Incomplete>> {
    if !table_exists(client, INCOMPLETE_TABLE).await? {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT version, name, direction, failed_statement, statements, error, failed_at::text \
         FROM {INCOMPLETE_TABLE} ORDER BY version"
    );
    let rows = client
        .query(&sql, &[])
        .await
        .map_err(|e| Error::failed(db_message(&e)))?;
    let rows = typed(&format!("reading {INCOMPLETE_TABLE}"), &sql, &rows, |r| {
        Ok((
            col::<i64>(r, 0)?,
            col::<String>(r, 1)?,
            col::<String>(r, 2)?,
            col::<i32>(r, 3)?,
            col::<i32>(r, 4)?,
            col::<String>(r, 5)?,
            col::<String>(r, 6)?,
        ))
    })
    .map_err(Error::failed)?;
    let invalid = invalid_indexes(client).await?;
    Ok(rows
        .into_iter()
        .map(|(version, name, direction, failed_statement, statements, error, failed_at)| {
            let mut advice = if failed_statement > 1 {
                format!(
                    "statements 1 to {} of V{version}__{name} ({direction}) ran and remain; statement {failed_statement} failed",
                    failed_statement - 1
                )
            } else {
                format!("statement 1 of V{version}__{name} ({direction}) failed")
            };
            if invalid.is_empty() {
                advice.push_str("; undo or finish by hand what remains, then run the migration again");
            } else {
                advice.push_str(&format!(
                    "; drop the invalid index(es) it left ({}) and run the migration again",
                    invalid
                        .iter()
                        .map(|i| format!("DROP INDEX CONCURRENTLY {i};"))
                        .collect::<Vec<_>>()
                        .join(" ")
                ));
            }
            Incomplete {
                version,
                name,
                direction,
                failed_statement,
                statements,
                error,
                failed_at,
                invalid_indexes: invalid.clone(),
                advice,
            }
        })
        .collect())
}

async fn invalid_indexes(client: &Client) -> Result<Vec<String>> {
    let sql = "SELECT i.indexrelid::regclass::text FROM pg_index i \
               JOIN pg_class c ON c.oid = i.indexrelid \
               JOIN pg_namespace n ON n.oid = c.relnamespace \
               WHERE NOT i.indisvalid AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
               ORDER BY 1";
    let rows = client
        .query(sql, &[])
        .await
        .map_err(|e| Error::failed(db_message(&e)))?;
    typed("reading the invalid indexes", sql, &rows, |r| col(r, 0)).map_err(Error::failed)
}
