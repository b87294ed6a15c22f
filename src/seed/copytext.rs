//! Rows in PostgreSQL's COPY text format, written straight into a buffer.
//!
//! Text rather than binary COPY: the server parses it fast enough that the
//! generator, not the format, is the bottleneck, and a failing row can be
//! read in the server's error message.

use std::fmt::Write as _;

use uuid::Uuid;

/// A buffer of COPY text rows.
#[derive(Default)]
pub struct Rows {
    buf: String,
    rows: u64,
    fields_in_row: usize,
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

    /// The buffered rows, leaving the buffer empty.
    pub fn take(&mut self) -> (String, u64) {
        let rows = std::mem::take(&mut self.rows);
        (std::mem::take(&mut self.buf), rows)
    }

    fn sep(&mut self) {
        if self.fields_in_row > 0 {
            self.buf.push('\t');
        }
        self.fields_in_row += 1;
    }

    pub fn end(&mut self) {
        self.buf.push('\n');
        self.rows += 1;
        self.fields_in_row = 0;
    }

    pub fn uuid(&mut self, id: Uuid) -> &mut Self {
        self.sep();
        let mut tmp = [0u8; uuid::fmt::Hyphenated::LENGTH];
        self.buf.push_str(id.hyphenated().encode_lower(&mut tmp));
        self
    }

    pub fn opt_uuid(&mut self, id: Option<Uuid>) -> &mut Self {
        match id {
            Some(id) => self.uuid(id),
            None => self.null(),
        }
    }

    pub fn null(&mut self) -> &mut Self {
        self.sep();
        self.buf.push_str("\\N");
        self
    }

    pub fn int(&mut self, v: i64) -> &mut Self {
        self.sep();
        let _ = write!(self.buf, "{v}");
        self
    }

    pub fn opt_int(&mut self, v: Option<i64>) -> &mut Self {
        match v {
            Some(v) => self.int(v),
            None => self.null(),
        }
    }

    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.sep();
        self.buf.push(if v { 't' } else { 'f' });
        self
    }

    /// Text (and JSON, and enum labels), escaped for COPY.
    pub fn text(&mut self, v: &str) -> &mut Self {
        self.sep();
        for c in v.chars() {
            match c {
                '\\' => self.buf.push_str("\\\\"),
                '\t' => self.buf.push_str("\\t"),
                '\n' => self.buf.push_str("\\n"),
                '\r' => self.buf.push_str("\\r"),
                c => self.buf.push(c),
            }
        }
        self
    }

    /// A timestamptz from Unix seconds, in UTC.
    pub fn ts(&mut self, secs: i64) -> &mut Self {
        self.sep();
        match chrono::DateTime::from_timestamp(secs, 0) {
            Some(t) => {
                use chrono::{Datelike, Timelike};
                let _ = write!(
                    self.buf,
                    "{:04}-{:02}-{:02} {:02}:{:02}:{:02}+00",
                    t.year(),
                    t.month(),
                    t.day(),
                    t.hour(),
                    t.minute(),
                    t.second()
                );
            }
            None => self.buf.push_str("\\N"),
        }
        self
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
    fn fields_are_escaped_and_separated() {
        let mut rows = Rows::default();
        rows.text("a\tb\\c\nd").null().int(-3).bool(true).ts(0);
        rows.end();
        let (text, n) = rows.take();
        assert_eq!(n, 1);
        assert_eq!(text, "a\\tb\\\\c\\nd\t\\N\t-3\tt\t1970-01-01 00:00:00+00\n");
    }
}
