//! Generated rows as typed values, for tokio-postgres' `BinaryCopyInWriter`.
//!
//! The generator fills [`Rows`]; the writer hands each row to the crate's
//! binary COPY writer, which does the wire format (header, field lengths,
//! trailer) and encodes uuid, integer, boolean, text, jsonb and timestamptz
//! through their `ToSql`. Binary rather than text COPY: the server takes
//! uuids, integers and timestamps as they are instead of parsing them.
//!
//! Two encodings are ours, because the crate has none: `numeric`
//! ([`Hundredths`]; the crate's only numeric support is through an extra
//! decimal crate) and enum labels (`&str` accepts text types only, while an
//! enum's binary form is simply its label).

use std::borrow::Cow;
use std::error::Error;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, BytesMut};
use tokio_postgres::types::{IsNull, Kind, ToSql, Type, to_sql_checked};
use uuid::Uuid;

type EncodeResult = Result<IsNull, Box<dyn Error + Sync + Send>>;

/// One field of a generated row.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Uuid(Uuid),
    /// An `integer` (int4) column.
    Int(i32),
    Bool(bool),
    /// Text, or an enum label.
    Text(Cow<'static, str>),
    Json(Cow<'static, serde_json::Value>),
    /// A `numeric` column, in hundredths.
    Hundredths(i64),
    At(SystemTime),
}

impl ToSql for Value {
    /// Each variant checks the column's type through the `ToSql` it uses,
    /// so a value in the wrong column is an error, not a wrong row.
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> EncodeResult {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Uuid(v) => v.to_sql_checked(ty, out),
            Value::Int(v) => v.to_sql_checked(ty, out),
            Value::Bool(v) => v.to_sql_checked(ty, out),
            Value::Text(v) if matches!(ty.kind(), Kind::Enum(_)) => {
                out.put_slice(v.as_bytes());
                Ok(IsNull::No)
            }
            Value::Text(v) => v.to_sql_checked(ty, out),
            Value::Json(v) => v.as_ref().to_sql_checked(ty, out),
            Value::Hundredths(v) => Hundredths(*v).to_sql_checked(ty, out),
            Value::At(v) => v.to_sql_checked(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// A `numeric` from hundredths (`1234` is 12.34), with display scale 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hundredths(pub i64);

impl ToSql for Hundredths {
    /// PostgreSQL's binary numeric: digit count, weight (of the first digit,
    /// in powers of 10000), sign, display scale, then base-10000 digits
    /// without leading or trailing zero digits.
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> EncodeResult {
        let abs = self.0.unsigned_abs();
        let (mut int, frac) = (abs / 100, abs % 100);
        let mut digits = Vec::new();
        while int > 0 {
            digits.insert(0, (int % 10_000) as i16);
            int /= 10_000;
        }
        let weight = digits.len() as i16 - 1;
        digits.push(frac as i16 * 100);
        while digits.last() == Some(&0) {
            digits.pop();
        }
        out.put_i16(digits.len() as i16);
        out.put_i16(if digits.is_empty() { 0 } else { weight });
        out.put_u16(if self.0 < 0 { 0x4000 } else { 0 });
        out.put_i16(2);
        for digit in digits {
            out.put_i16(digit);
        }
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }

    to_sql_checked!();
}

/// Rows of one table, field by field; [`Rows::end`] closes a row.
#[derive(Debug, Default, PartialEq)]
pub struct Rows {
    values: Vec<Value>,
    /// Where each row ends in `values`.
    ends: Vec<usize>,
}

impl Rows {
    /// Room for as many values and rows as `like` holds: chunks are similar.
    pub fn sized_like(like: &Rows) -> Self {
        Rows {
            values: Vec::with_capacity(like.values.len()),
            ends: Vec::with_capacity(like.ends.len()),
        }
    }

    /// The number of rows.
    pub fn len(&self) -> u64 {
        self.ends.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The number of fields, all rows.
    pub fn fields(&self) -> usize {
        self.values.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &[Value]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(&self.ends)
            .map(|(start, &end)| &self.values[start..end])
    }

    fn push(&mut self, value: Value) -> &mut Self {
        self.values.push(value);
        self
    }

    pub fn end(&mut self) {
        self.ends.push(self.values.len());
    }

    pub fn null(&mut self) -> &mut Self {
        self.push(Value::Null)
    }

    pub fn uuid(&mut self, id: Uuid) -> &mut Self {
        self.push(Value::Uuid(id))
    }

    pub fn opt_uuid(&mut self, id: Option<Uuid>) -> &mut Self {
        self.push(id.map_or(Value::Null, Value::Uuid))
    }

    /// An `integer` (int4) column; the generator's numbers are small.
    pub fn int(&mut self, v: i64) -> &mut Self {
        self.push(Value::Int(v as i32))
    }

    pub fn opt_int(&mut self, v: Option<i64>) -> &mut Self {
        self.push(v.map_or(Value::Null, |v| Value::Int(v as i32)))
    }

    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.push(Value::Bool(v))
    }

    /// Text, and enum labels.
    pub fn text(&mut self, v: impl Into<Cow<'static, str>>) -> &mut Self {
        self.push(Value::Text(v.into()))
    }

    /// A `jsonb` column.
    pub fn json(&mut self, v: serde_json::Value) -> &mut Self {
        self.push(Value::Json(Cow::Owned(v)))
    }

    /// A `jsonb` column whose value many rows share.
    pub fn json_static(&mut self, v: &'static serde_json::Value) -> &mut Self {
        self.push(Value::Json(Cow::Borrowed(v)))
    }

    /// A `numeric` column from hundredths.
    pub fn hundredths(&mut self, h: i64) -> &mut Self {
        self.push(Value::Hundredths(h))
    }

    /// A timestamptz from Unix seconds.
    pub fn ts(&mut self, secs: i64) -> &mut Self {
        self.push(Value::At(unix(secs)))
    }

    pub fn opt_ts(&mut self, secs: Option<i64>) -> &mut Self {
        self.push(secs.map_or(Value::Null, |s| Value::At(unix(s))))
    }
}

fn unix(secs: i64) -> SystemTime {
    let offset = Duration::from_secs(secs.unsigned_abs());
    if secs >= 0 {
        UNIX_EPOCH + offset
    } else {
        UNIX_EPOCH - offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(h: i64) -> Vec<u8> {
        let mut out = BytesMut::new();
        Hundredths(h)
            .to_sql_checked(&Type::NUMERIC, &mut out)
            .unwrap();
        out.to_vec()
    }

    /// (ndigits, weight, sign, dscale, digits…) as PostgreSQL's numeric_send writes them.
    fn numeric(head: [i16; 3], sign: u16, digits: &[i16]) -> Vec<u8> {
        let mut out = BytesMut::new();
        out.put_i16(head[0]);
        out.put_i16(head[1]);
        out.put_u16(sign);
        out.put_i16(head[2]);
        digits.iter().for_each(|d| out.put_i16(*d));
        out.to_vec()
    }

    #[test]
    fn hundredths_encode_as_postgres_numeric() {
        assert_eq!(encode(0), numeric([0, 0, 2], 0, &[]));
        assert_eq!(encode(5), numeric([1, -1, 2], 0, &[500]));
        assert_eq!(encode(1234), numeric([2, 0, 2], 0, &[12, 3400]));
        assert_eq!(encode(10_000), numeric([1, 0, 2], 0, &[100]));
        // 10000.00: one digit of weight 1, the zero digit stripped.
        assert_eq!(encode(1_000_000), numeric([1, 1, 2], 0, &[1]));
        assert_eq!(
            encode(123_456_789),
            numeric([3, 1, 2], 0, &[123, 4567, 8900])
        );
        assert_eq!(encode(-250), numeric([2, 0, 2], 0x4000, &[2, 5000]));
    }

    #[test]
    fn values_refuse_a_column_of_another_type() {
        let mut out = BytesMut::new();
        assert!(Value::Int(1).to_sql_checked(&Type::TEXT, &mut out).is_err());
        assert!(
            Value::Hundredths(1)
                .to_sql_checked(&Type::INT4, &mut out)
                .is_err()
        );
        assert!(
            Value::Text("x".into())
                .to_sql_checked(&Type::JSONB, &mut out)
                .is_err()
        );
        assert!(matches!(
            Value::Null.to_sql_checked(&Type::INT4, &mut out),
            Ok(IsNull::Yes)
        ));
    }

    #[test]
    fn rows_split_where_they_ended() {
        let mut rows = Rows::default();
        rows.int(1).text("a").end();
        rows.null().end();
        let split: Vec<&[Value]> = rows.iter().collect();
        assert_eq!(
            split,
            [
                &[Value::Int(1), Value::Text("a".into())][..],
                &[Value::Null][..]
            ]
        );
        assert_eq!((rows.len(), rows.fields()), (2, 3));
    }

    #[test]
    fn timestamps_count_from_the_unix_epoch_both_ways() {
        assert_eq!(unix(90), UNIX_EPOCH + Duration::from_secs(90));
        assert_eq!(unix(-90), UNIX_EPOCH - Duration::from_secs(90));
    }
}
