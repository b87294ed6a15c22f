//! Typed reads of database answers: the one place a column value is taken
//! out of a [`Row`]. Nothing here panics: a NULL where the server may answer
//! NULL is an `Option`, a NULL (or a type mismatch) anywhere else is an error
//! naming the column, and [`typed`] adds the check and the query, so a
//! surprising answer makes that one check report `error` instead of killing
//! the cycle.

use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, Type};

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

/// A number of any of PostgreSQL's numeric types, as an `f64`: what a
/// custom check's value columns hold (`count(*)` is `bigint`, `sum` and
/// `avg` of integers are `numeric`).
pub struct Number(pub f64);

impl Number {
    /// The SQL types it reads; anything else needs a cast in the query.
    pub fn accepts_type(ty: &Type) -> bool {
        matches!(
            *ty,
            Type::INT2
                | Type::INT4
                | Type::INT8
                | Type::OID
                | Type::FLOAT4
                | Type::FLOAT8
                | Type::NUMERIC
        )
    }
}

impl<'a> FromSql<'a> for Number {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(Self(match *ty {
            Type::INT2 => i16::from_sql(ty, raw)?.into(),
            Type::INT4 => i32::from_sql(ty, raw)?.into(),
            Type::INT8 => i64::from_sql(ty, raw)? as f64,
            Type::OID => u32::from_sql(ty, raw)?.into(),
            Type::FLOAT4 => f32::from_sql(ty, raw)?.into(),
            Type::FLOAT8 => f64::from_sql(ty, raw)?,
            _ => numeric(raw)?,
        }))
    }

    fn accepts(ty: &Type) -> bool {
        Self::accepts_type(ty)
    }
}

type BoxError = Box<dyn std::error::Error + Sync + Send>;

/// `numeric`'s binary form: digit count, weight (of the first digit, in
/// powers of 10,000), sign, display scale, then base-10,000 digits.
fn numeric(raw: &[u8]) -> Result<f64, BoxError> {
    let word = |i: usize| -> Result<u16, BoxError> {
        raw.get(2 * i..2 * i + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| "truncated numeric".into())
    };
    let (digits, weight, sign) = (word(0)? as usize, word(1)? as i16, word(2)?);
    let magnitude = match sign {
        0xC000 => return Ok(f64::NAN),
        0xD000 => return Ok(f64::INFINITY),
        0xF000 => return Ok(f64::NEG_INFINITY),
        _ => (0..digits).try_fold(0.0, |sum, i| {
            let power = i32::from(weight) - i as i32;
            Ok::<_, BoxError>(sum + f64::from(word(4 + i)?) * 10_000f64.powi(power))
        })?,
    };
    Ok(if sign == 0x4000 {
        -magnitude
    } else {
        magnitude
    })
}

/// A value used as a label: text of any kind, an integer in decimal, or a
/// boolean as `true`/`false`.
pub struct Label(pub String);

impl Label {
    pub fn accepts_type(ty: &Type) -> bool {
        <String as FromSql>::accepts(ty)
            || matches!(
                *ty,
                Type::INT2 | Type::INT4 | Type::INT8 | Type::OID | Type::BOOL
            )
    }
}

impl<'a> FromSql<'a> for Label {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(Self(match *ty {
            Type::INT2 => i16::from_sql(ty, raw)?.to_string(),
            Type::INT4 => i32::from_sql(ty, raw)?.to_string(),
            Type::INT8 => i64::from_sql(ty, raw)?.to_string(),
            Type::OID => u32::from_sql(ty, raw)?.to_string(),
            Type::BOOL => bool::from_sql(ty, raw)?.to_string(),
            _ => String::from_sql(ty, raw)?,
        }))
    }

    fn accepts(ty: &Type) -> bool {
        Self::accepts_type(ty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numerics_in_binary_form_are_read_as_f64() {
        let words = |w: &[u16]| w.iter().flat_map(|w| w.to_be_bytes()).collect::<Vec<u8>>();
        // 12345.678: digits 1, 2345, 6780 with the first at 10,000^1.
        assert_eq!(
            numeric(&words(&[3, 1, 0, 3, 1, 2345, 6780])).unwrap(),
            12345.678
        );
        // -0.0042: one digit, 42, at 10,000^-1.
        let small = numeric(&words(&[1, (-1i16) as u16, 0x4000, 4, 42])).unwrap();
        assert!((small + 0.0042).abs() < 1e-12, "{small}");
        assert_eq!(numeric(&words(&[0, 0, 0, 0])).unwrap(), 0.0);
        assert!(numeric(&words(&[0, 0, 0xC000, 0])).unwrap().is_nan());
        assert!(numeric(&words(&[2, 0, 0, 0, 1])).is_err(), "truncated");
    }
}
