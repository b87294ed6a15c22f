//! Running a step on the migration session, and saying precisely why one failed.
//!
//! A transactional step is `BEGIN`, its statements one by one, the history
//! change, `COMMIT` — exactly what [`plan::render`] prints. Any failure rolls
//! the whole step back, so the schema and the history are as before. A lock
//! timeout is retried (`migrations.lock_retries`) after a short pause.
//! A `pgwarden:no-transaction` step cannot be rolled back; its failure is
//! recorded for `migrate status`, and it is not retried automatically (a
//! half-built `CONCURRENTLY` index must be dropped first).

use std::time::{Duration, Instant};

use chrono::Utc;
use tokio_postgres::error::{DbError, ErrorPosition, SqlState};

use super::MigrationsConfig;
use super::files::{NO_TRANSACTION_MARKER, Script};
use super::history;
use super::plan::Step;
use super::session::{Session, db_message};
use super::split::{self, Statement};
use crate::error::{Error, Result};

/// Where in the step a failure happened.
struct Failure {
    /// Index of the failing statement (None: BEGIN, bookkeeping or COMMIT).
    statement: Option<usize>,
    error: tokio_postgres::Error,
}

impl Failure {
    fn at(statement: Option<usize>) -> impl FnOnce(tokio_postgres::Error) -> Failure {
        move |error| Failure { statement, error }
    }

    fn is_lock_timeout(&self) -> bool {
        self.error.code() == Some(&SqlState::LOCK_NOT_AVAILABLE)
    }
}

/// Run one step; returns how long it took (the last attempt).
pub async fn run_step(
    session: &Session,
    step: &Step<'_>,
    config: &MigrationsConfig,
    clear_incomplete: bool,
) -> Result<f64> {
    if step.script().transactional {
        run_transactional(session, step, config).await
    } else {
        let took = run_outside_transaction(session, step, config).await?;
        if clear_incomplete {
            history::clear_incomplete(&session.client, step.migration.version).await?;
        }
        Ok(took)
    }
}

async fn run_transactional(
    session: &Session,
    step: &Step<'_>,
    config: &MigrationsConfig,
) -> Result<f64> {
    let retries = config.lock_retries.get() as usize;
    let mut attempt = 0;
    loop {
        attempt += 1;
        session.clear_waits();
        let started = Instant::now();
        let result = try_transactional(session, step).await;
        let Err(failure) = result else {
            return Ok(started.elapsed().as_secs_f64());
        };
        let _ = session.client.batch_execute("ROLLBACK").await;
        if failure.is_lock_timeout() && attempt <= retries {
            tracing::warn!(
                migration = %step.migration.label(),
                "lock timeout ({}), attempt {attempt} of {}; retrying",
                session.last_wait().unwrap_or_else(|| "lock not identified".into()),
                retries + 1
            );
            tokio::time::sleep(Duration::from_millis(500 * attempt as u64)).await;
            continue;
        }
        let mut message = describe(step, &failure, config, session.last_wait(), attempt);
        message.push_str(&format!(
            "\nIt ran in one transaction, which was rolled back: nothing of {} was applied and the history is unchanged.",
            step.migration.label()
        ));
        return Err(Error::failed(message));
    }
}

async fn try_transactional(session: &Session, step: &Step<'_>) -> Result<(), Failure> {
    let client = &session.client;
    client
        .batch_execute("BEGIN")
        .await
        .map_err(Failure::at(None))?;
    for (index, statement) in step.script().statements.iter().enumerate() {
        client
            .batch_execute(&statement.text)
            .await
            .map_err(Failure::at(Some(index)))?;
    }
    client
        .batch_execute(&step.bookkeeping(Utc::now()))
        .await
        .map_err(Failure::at(None))?;
    client
        .batch_execute("COMMIT")
        .await
        .map_err(Failure::at(None))
}

async fn run_outside_transaction(
    session: &Session,
    step: &Step<'_>,
    config: &MigrationsConfig,
) -> Result<f64> {
    let client = &session.client;
    let script = step.script();
    let started = Instant::now();
    for (index, statement) in script.statements.iter().enumerate() {
        session.clear_waits();
        if let Err(error) = client.batch_execute(&statement.text).await {
            let failure = Failure {
                statement: Some(index),
                error,
            };
            let mut message = describe(step, &failure, config, session.last_wait(), 1);
            let recorded = history::record_incomplete(
                &session.client,
                step.migration,
                step.direction.as_str(),
                index + 1,
                script.statements.len(),
                &db_message(&failure.error),
            )
            .await;
            let done = if index == 0 {
                "no statement before it had run".to_string()
            } else {
                format!("statements 1 to {index} had run and remain")
            };
            message.push_str(&format!(
                "\nIt runs outside a transaction (pgwarden:no-transaction): {done}; the history is unchanged. "
            ));
            match recorded {
                Ok(()) => message.push_str(
                    "`pgwarden migrate status` shows what to clean up before running it again.",
                ),
                Err(e) => message.push_str(&format!(
                    "Clean up by hand before running it again ({}).",
                    e.message()
                )),
            }
            return Err(Error::failed(message));
        }
    }
    client
        .batch_execute(&step.bookkeeping(Utc::now()))
        .await
        .map_err(|e| {
            Error::failed(format!(
                "{}: all statements ran, but recording it in the history failed: {}",
                step.migration.label(),
                db_message(&e)
            ))
        })?;
    Ok(started.elapsed().as_secs_f64())
}

/// File, line, the server's message, detail, hint and context.
fn describe(
    step: &Step<'_>,
    failure: &Failure,
    config: &MigrationsConfig,
    wait: Option<String>,
    attempts: usize,
) -> String {
    let script = step.script();
    let statement = failure.statement.map(|i| &script.statements[i]);
    let place = match statement {
        Some(statement) => format!(
            "{}, line {}",
            script.path.display(),
            error_line(script, statement, failure.error.as_db_error())
        ),
        None => format!(
            "{} (at BEGIN/COMMIT or the history update)",
            script.path.display()
        ),
    };
    let mut out = format!(
        "migration {} ({}) failed at {place}: ",
        step.migration.label(),
        step.direction.as_str()
    );
    match failure.error.as_db_error() {
        Some(db) => {
            out.push_str(&format!("{} (SQLSTATE {})", db.message(), db.code().code()));
            push_field(&mut out, "detail", db.detail());
            push_field(&mut out, "hint", db.hint());
            push_field(&mut out, "where", db.where_());
            if let Some(ErrorPosition::Internal { query, .. }) = db.position() {
                push_field(&mut out, "internal query", Some(query));
            }
        }
        None => out.push_str(&failure.error.to_string()),
    }
    if let Some(statement) = statement {
        push_field(&mut out, "statement", Some(&first_line(statement)));
    }
    if failure.is_lock_timeout() {
        out.push_str(&format!(
            "\n  waited for: {} (lock_timeout = {}, {attempts} attempt(s)); run again when the lock holder is done, or raise migrations.lock_timeout / migrations.lock_retries",
            wait.unwrap_or_else(|| "a lock that could not be identified".into()),
            config.lock_timeout
        ));
    }
    if failure.error.code() == Some(&SqlState::ACTIVE_SQL_TRANSACTION) && script.transactional {
        out.push_str(&format!(
            "\n  this statement cannot run in a transaction: put `{NO_TRANSACTION_MARKER}` in the file's header"
        ));
    }
    if failure.error.code() == Some(&SqlState::QUERY_CANCELED) {
        out.push_str(&format!(
            "\n  (statement_timeout = {}; raise migrations.statement_timeout if the statement needs longer)",
            config.statement_timeout
        ));
    }
    out
}

fn push_field(out: &mut String, label: &str, value: Option<&str>) {
    if let Some(value) = value.filter(|v| !v.is_empty()) {
        out.push_str(&format!("\n  {label}: {value}"));
    }
}

/// The file line of the error: PostgreSQL's position when it gives one
/// (a character offset into the statement), else the statement's first line.
fn error_line(script: &Script, statement: &Statement, db: Option<&DbError>) -> usize {
    let offset = match db.and_then(DbError::position) {
        Some(ErrorPosition::Original(position)) => {
            statement.offset + split::byte_of_char_position(&statement.text, *position)
        }
        _ => statement.code_offset,
    };
    split::line_of(&script.sql, offset)
}

fn first_line(statement: &Statement) -> String {
    let code = &statement.text[statement.code_offset - statement.offset..];
    let line = code.lines().next().unwrap_or("");
    if line.chars().count() > 120 {
        format!("{}…", line.chars().take(120).collect::<String>())
    } else {
        line.to_string()
    }
}
