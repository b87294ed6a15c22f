//! Splitting a migration file into statements, the way `psql` does.
//!
//! pgwarden sends a migration one statement at a time (as `psql -f` does), so
//! that a failure is pinned to its statement and line even when PostgreSQL
//! gives no position, and so that `CREATE INDEX CONCURRENTLY` runs as a
//! statement of its own. The lexer knows what can hide a `;`: quoted strings
//! (`'…'`, `E'…'` with backslash escapes), quoted identifiers, `--` and
//! nested `/* */` comments, and dollar quotes (`$$…$$`, `$tag$…$tag$`).
//! Not supported: SQL-standard function bodies (`BEGIN ATOMIC … END`), whose
//! inner semicolons `psql` tracks; use a dollar-quoted body instead.

/// One statement of a file, without its terminating `;`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    /// The text, from its first token (leading comments included) to its
    /// last token (trailing comments before the `;` dropped).
    pub text: String,
    /// Byte offset of `text` in the file.
    pub offset: usize,
    /// Byte offset of its first token that is not a comment.
    pub code_offset: usize,
}

/// The statements of `sql`; empty ones (only comments/whitespace) are left out.
pub fn split(sql: &str) -> Vec<Statement> {
    let bytes = sql.as_bytes();
    let mut statements = Vec::new();
    let mut start: Option<usize> = None; // first byte of the statement (comments included)
    let mut code_start: Option<usize> = None; // its first non-comment token
    let mut code_end: Option<usize> = None; // end of its last non-comment token
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let token_start = i;
        let is_comment;
        match c {
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = sql[i..].find('\n').map_or(bytes.len(), |n| i + n + 1);
                is_comment = true;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = skip_block_comment(bytes, i);
                is_comment = true;
            }
            b'\'' => {
                let escapes = i > 0
                    && matches!(bytes[i - 1], b'E' | b'e')
                    && (i < 2 || !is_ident_byte(bytes[i - 2]));
                i = skip_quoted(bytes, i, b'\'', escapes);
                is_comment = false;
            }
            b'"' => {
                i = skip_quoted(bytes, i, b'"', false);
                is_comment = false;
            }
            b'$' => {
                i = skip_dollar(sql, i);
                is_comment = false;
            }
            b';' => {
                if let (Some(s), Some(c), Some(e)) = (start, code_start, code_end) {
                    statements.push(Statement {
                        text: sql[s..e].to_string(),
                        offset: s,
                        code_offset: c,
                    });
                }
                start = None;
                code_start = None;
                code_end = None;
                i += 1;
                continue;
            }
            c if c.is_ascii_whitespace() => {
                i += 1;
                continue;
            }
            // A whole identifier or keyword: `$` inside one (`a$b$`) starts no dollar quote.
            c if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                while i < bytes.len() && (is_ident_byte(bytes[i]) || bytes[i] == b'$') {
                    i += 1;
                }
                is_comment = false;
            }
            _ => {
                i += 1;
                is_comment = false;
            }
        }
        start.get_or_insert(token_start);
        if !is_comment {
            code_start.get_or_insert(token_start);
            code_end = Some(i);
        }
    }
    if let (Some(s), Some(c), Some(e)) = (start, code_start, code_end) {
        statements.push(Statement {
            text: sql[s..e].to_string(),
            offset: s,
            code_offset: c,
        });
    }
    statements
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

fn skip_block_comment(bytes: &[u8], mut i: usize) -> usize {
    let mut depth = 0usize;
    while i < bytes.len() {
        if bytes[i] == b'/' && bytes.get(i + 1) == Some(&b'*') {
            depth += 1;
            i += 2;
        } else if bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    bytes.len()
}

/// Past the closing quote; a doubled quote is an escaped quote.
fn skip_quoted(bytes: &[u8], mut i: usize, quote: u8, backslash_escapes: bool) -> usize {
    i += 1;
    while i < bytes.len() {
        let c = bytes[i];
        if backslash_escapes && c == b'\\' {
            i += 2;
        } else if c == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
            } else {
                return i + 1;
            }
        } else {
            i += 1;
        }
    }
    bytes.len()
}

/// Past a dollar-quoted string, or just past the `$` when it starts none
/// (a parameter such as `$1`).
fn skip_dollar(sql: &str, i: usize) -> usize {
    let rest = &sql[i + 1..];
    let tag_len = rest
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b >= 0x80)
        .count();
    let tag = &rest[..tag_len];
    let starts_with_digit = tag.bytes().next().is_some_and(|b| b.is_ascii_digit());
    if starts_with_digit || rest.as_bytes().get(tag_len) != Some(&b'$') {
        return i + 1;
    }
    let delimiter = format!("${tag}$");
    let body_start = i + delimiter.len();
    match sql[body_start..].find(&delimiter) {
        Some(n) => body_start + n + delimiter.len(),
        None => sql.len(),
    }
}

/// The 1-based line of a byte offset in `text`.
pub fn line_of(text: &str, byte_offset: usize) -> usize {
    let end = byte_offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// The byte offset of PostgreSQL's 1-based *character* position in `text`.
pub fn byte_of_char_position(text: &str, position: u32) -> usize {
    let index = (position as usize).saturating_sub(1);
    text.char_indices()
        .nth(index)
        .map_or(text.len(), |(byte, _)| byte)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(sql: &str) -> Vec<String> {
        split(sql).into_iter().map(|s| s.text).collect()
    }

    #[test]
    fn splits_on_top_level_semicolons_only() {
        let sql = "CREATE TABLE a (x text DEFAULT ';');\n\
                   -- a comment; with a semicolon\n\
                   INSERT INTO \"we;ird\" VALUES (E'it\\'s;');\n\
                   /* outer /* nested; */ still; */ SELECT 1;\n\
                   CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $body$ SELECT 1; $body$;\n\
                   DO $$ BEGIN PERFORM 1; END $$;\n\
                   PREPARE p AS SELECT $1::int;  \n  -- trailing comment only\n";
        assert_eq!(
            texts(sql),
            vec![
                "CREATE TABLE a (x text DEFAULT ';')",
                "-- a comment; with a semicolon\nINSERT INTO \"we;ird\" VALUES (E'it\\'s;')",
                "/* outer /* nested; */ still; */ SELECT 1",
                "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $body$ SELECT 1; $body$",
                "DO $$ BEGIN PERFORM 1; END $$",
                "PREPARE p AS SELECT $1::int",
            ]
        );
    }

    #[test]
    fn last_statement_needs_no_semicolon_and_offsets_point_into_the_file() {
        let sql = "SELECT 1;\n\n  SELECT 'ü' -- why\n";
        let statements = split(sql);
        assert_eq!(statements.len(), 2);
        assert_eq!(statements[1].text, "SELECT 'ü'");
        assert_eq!(line_of(sql, statements[1].offset), 3);
        assert_eq!(&sql[statements[1].offset..][..6], "SELECT");
    }

    #[test]
    fn dollars_inside_identifiers_start_no_quote() {
        assert_eq!(
            texts("SELECT a$b$ FROM t; SELECT 2"),
            vec!["SELECT a$b$ FROM t", "SELECT 2"]
        );
    }

    #[test]
    fn standard_strings_keep_backslashes_literal() {
        assert_eq!(
            texts(r"SELECT '\'; SELECT 2"),
            vec![r"SELECT '\'", "SELECT 2"]
        );
    }

    #[test]
    fn character_positions_become_byte_offsets() {
        assert_eq!(byte_of_char_position("ééx", 3), 4);
        assert_eq!(byte_of_char_position("abc", 1), 0);
    }
}
