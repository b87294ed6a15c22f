//! Typed reads of database answers: the one place a column value is taken
//! out of a [`Row`]. Nothing here panics: a NULL where the server may answer
//! NULL is an `Option`, a NULL (or a type mismatch) anywhere else is an error
//! naming the column, and [`typed`] adds the check and the query, so a
//! surprising answer makes that one check report `error` instead of killing
//! the cycle.

use tokio_postgres::Row;
use tokio_postgres::types::FromSql;

use super::Session;
use crate::error::Error;

/// What the details and reports show for a statement whose text the server
/// did not give (pg_stat_statements without the text file, another
/// user's session without the privilege to see it).
pub const QUERY_UNAVAILABLE: &str = "(query text unavailable)";

/// A column the server may answer NULL in.
pub fn opt<'a, T: FromSql<'a>>(row: &'a Row, index: usize) -> Result<Option<T>, String> {
    // Tests make a column read as NULL with FAILPOINTS=read_null=return(<column name>).
    #[cfg(feature = "failpoints")]
    if fail::eval("read_null", |column| {
        column.as_deref() == row.columns().get(index).map(|c| c.name())
    }) == Some(true)
    {
        return Ok(None);
    }
    row.try_get::<_, Option<T>>(index)
        .map_err(|e| format!("cannot read column {}: {e}", column_name(row, index)))
}

/// A column that is never NULL in a sane answer: a NULL is an error.
pub fn col<'a, T: FromSql<'a>>(row: &'a Row, index: usize) -> Result<T, String> {
    opt(row, index)?.ok_or_else(|| format!("column {} is NULL", column_name(row, index)))
}

/// [`col`] for code that reports [`Error`]s: `what` says what was being read.
pub fn value<'a, T: FromSql<'a>>(row: &'a Row, index: usize, what: &str) -> Result<T, Error> {
    col(row, index).map_err(|e| Error::failed(format!("{what}: {e}")))
}

/// A statement's text, or [`QUERY_UNAVAILABLE`] when the server gave none.
pub fn query_text(row: &Row, index: usize) -> Result<String, String> {
    Ok(opt(row, index)?.unwrap_or_else(|| QUERY_UNAVAILABLE.to_string()))
}

/// `rows` read with `read`; an error names the check (or what was being
/// read) and the query.
pub fn typed<T>(
    check: &str,
    sql: &str,
    rows: &[Row],
    read: impl Fn(&Row) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    rows.iter()
        .map(|row| read(row).map_err(|e| format!("{check}: {e} in the answer to: {sql}")))
        .collect()
}

/// Run `sql` on `session` and read every row with `read`.
pub async fn fetch<T>(
    session: &Session,
    check: &str,
    sql: &str,
    read: impl Fn(&Row) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    typed(check, sql, &session.query(sql).await?, read)
}

/// [`fetch`] for a query that answers exactly one row.
pub async fn fetch_one<T>(
    session: &Session,
    check: &str,
    sql: &str,
    read: impl Fn(&Row) -> Result<T, String>,
) -> Result<T, String> {
    fetch(session, check, sql, read)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| format!("{check}: no row in the answer to: {sql}"))
}

/// `name (#index)`: the server's name for a column is often only the
/// function's (`coalesce`), so its position is given too.
fn column_name(row: &Row, index: usize) -> String {
    match row.columns().get(index) {
        Some(column) => format!("`{}` (#{})", column.name(), index + 1),
        None => format!("#{} (the answer has {})", index + 1, row.len()),
    }
}
