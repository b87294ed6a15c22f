//! Rows in PostgreSQL's binary COPY format, written straight into a buffer.
//!
//! Binary rather than text: the server copies uuids, integers and timestamps
//! as they are instead of parsing them (parsing a timestamptz costs about as
//! much as storing the row), which is where a bulk load spends its time.
//! Each field's type must match its column exactly: `integer` columns get
//! [`Rows::int`] (int4), `jsonb` gets [`Rows::json`], `numeric(5,2)` gets
//! [`Rows::hundredths`]; enum columns take their label as text.

use uuid::Uuid;

/// The stream header: signature, flags, header extension length.
pub const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// The stream trailer: a field count of -1.
pub const TRAILER: &[u8] = &[0xff, 0xff];

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01 UTC).
const PG_EPOCH_SECS: i64 = 946_684_800;

/// A buffer of binary COPY rows (without header and trailer).
#[derive(Default)]
pub struct Rows {
    buf: Vec<u8>,
    rows: u64,
    /// Where the current row's field count goes, and the count so far.
    row_start: Option<usize>,
    fields: u16,
}

impl Rows {
    pub fn len(&self) -> u64 {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    pub fn bytes(&self) -> usize {
        self.buf.len()
    }

    /// The buffered rows, leaving the buffer empty with the same capacity:
    /// growing it again from nothing for every chunk (about twenty
    /// reallocations and copies per MiB) cost more client CPU than
    /// tokio-postgres' `BinaryCopyInWriter` (see the README's seed figures).
    pub fn take(&mut self) -> (Vec<u8>, u64) {
        let rows = std::mem::take(&mut self.rows);
        let capacity = self.buf.capacity();
        (
            std::mem::replace(&mut self.buf, Vec::with_capacity(capacity)),
            rows,
        )
    }

    fn field(&mut self, bytes: &[u8]) -> &mut Self {
        self.begin();
        self.buf
            .extend_from_slice(&(bytes.len() as i32).to_be_bytes());
        self.buf.extend_from_slice(bytes);
        self
    }

    fn begin(&mut self) {
        if self.row_start.is_none() {
            self.row_start = Some(self.buf.len());
            self.buf.extend_from_slice(&[0, 0]);
        }
        self.fields += 1;
    }

    pub fn end(&mut self) {
        if let Some(at) = self.row_start.take() {
            self.buf[at..at + 2].copy_from_slice(&self.fields.to_be_bytes());
        }
        self.fields = 0;
        self.rows += 1;
    }

    pub fn uuid(&mut self, id: Uuid) -> &mut Self {
        self.field(id.as_bytes())
    }

    pub fn opt_uuid(&mut self, id: Option<Uuid>) -> &mut Self {
        match id {
            Some(id) => self.uuid(id),
            None => self.null(),
        }
    }

    pub fn null(&mut self) -> &mut Self {
        self.begin();
        self.buf.extend_from_slice(&(-1i32).to_be_bytes());
        self
    }

    /// An `integer` (int4) column.
    pub fn int(&mut self, v: i64) -> &mut Self {
        self.field(&(v as i32).to_be_bytes())
    }

    pub fn opt_int(&mut self, v: Option<i64>) -> &mut Self {
        match v {
            Some(v) => self.int(v),
            None => self.null(),
        }
    }

    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.field(&[u8::from(v)])
    }

    /// Text, and enum labels.
    pub fn text(&mut self, v: &str) -> &mut Self {
        self.field(v.as_bytes())
    }

    /// A `jsonb` column: version 1, then the JSON text.
    pub fn json(&mut self, v: &str) -> &mut Self {
        self.begin();
        self.buf
            .extend_from_slice(&(v.len() as i32 + 1).to_be_bytes());
        self.buf.push(1);
        self.buf.extend_from_slice(v.as_bytes());
        self
    }

    /// A `numeric(5,2)` column from hundredths (0..=10000): base-10000 digits.
    pub fn hundredths(&mut self, h: i64) -> &mut Self {
        let (int, frac) = (h / 100, (h % 100) * 100);
        let (weight, digits): (i16, Vec<i16>) = match (int, frac) {
            (0, 0) => (0, vec![]),
            (0, f) => (-1, vec![f as i16]),
            (i, 0) => (0, vec![i as i16]),
            (i, f) => (0, vec![i as i16, f as i16]),
        };
        let mut bytes = Vec::with_capacity(8 + 2 * digits.len());
        bytes.extend_from_slice(&(digits.len() as i16).to_be_bytes());
        bytes.extend_from_slice(&weight.to_be_bytes());
        bytes.extend_from_slice(&0i16.to_be_bytes()); // sign: positive
        bytes.extend_from_slice(&2i16.to_be_bytes()); // display scale
        for d in digits {
            bytes.extend_from_slice(&d.to_be_bytes());
        }
        self.field(&bytes)
    }

    /// A timestamptz from Unix seconds.
    pub fn ts(&mut self, secs: i64) -> &mut Self {
        self.field(&((secs - PG_EPOCH_SECS) * 1_000_000).to_be_bytes())
    }

    pub fn opt_ts(&mut self, secs: Option<i64>) -> &mut Self {
        match secs {
            Some(s) => self.ts(s),
            None => self.null(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_length_prefixed_and_counted() {
        let mut rows = Rows::default();
        rows.text("ab")
            .null()
            .int(-3)
            .bool(true)
            .ts(PG_EPOCH_SECS + 1);
        rows.end();
        let (bytes, n) = rows.take();
        assert_eq!(n, 1);
        let mut expected = vec![0, 5, 0, 0, 0, 2, b'a', b'b', 0xff, 0xff, 0xff, 0xff];
        expected.extend_from_slice(&[0, 0, 0, 4, 0xff, 0xff, 0xff, 0xfd, 0, 0, 0, 1, 1]);
        expected.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 0, 0, 0x0f, 0x42, 0x40]);
        assert_eq!(bytes, expected);
    }
}
