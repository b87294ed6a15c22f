//! Splitting a migration file into statements with PostgreSQL's own parser.
//!
//! pgwarden sends a migration one statement at a time (as `psql -f` does), so
//! that a failure is pinned to its statement and line even when PostgreSQL
//! gives no position, and so that `CREATE INDEX CONCURRENTLY` runs as a
//! statement of its own. The split comes from libpg_query (the `pg_query`
//! crate): the server's grammar knows every place a `;` can hide, including
//! SQL-standard function bodies (`BEGIN ATOMIC … END`). The same parse gives
//! each statement's syntax tree, so what `migrate lint` checks is exactly
//! what `migrate up` sends, at the same line numbers.
//!
//! A file the parser rejects is still split (by PostgreSQL's scanner, which
//! only knows tokens), so `migrate status` keeps working; the syntax error is
//! kept with the file and `migrate lint` and `migrate up` report it.

use pg_query::NodeEnum;
use pg_query::protobuf::Token;

/// One statement of a file, without its terminating `;`.
#[derive(Clone, Debug, PartialEq)]
pub struct Statement {
    /// The text, from its first token (leading comments included) to its
    /// last token (trailing comments before the `;` dropped).
    pub text: String,
    /// Byte offset of `text` in the file.
    pub offset: usize,
    /// Byte offset of its first token that is not a comment.
    pub code_offset: usize,
    /// Its syntax tree (None when the parser rejected the file and this
    /// statement on its own).
    pub node: Option<NodeEnum>,
}

impl Statement {
    /// The text without its leading comments.
    pub fn code(&self) -> &str {
        &self.text[self.code_offset - self.offset..]
    }

    /// The leading comments (where `-- pgwarden:allow` exemptions live).
    pub fn leading_comments(&self) -> &str {
        &self.text[..self.code_offset - self.offset]
    }
}

/// What the parser said about a file it rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    pub message: String,
    /// Byte offset of the statement it was found in.
    pub offset: usize,
}

/// A file's statements, and the syntax error if the parser rejected it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Split {
    pub statements: Vec<Statement>,
    pub syntax_error: Option<SyntaxError>,
}

/// The statements of `sql`; empty ones (only comments/whitespace) are left out.
pub fn split(sql: &str) -> Split {
    if let Some(nul) = sql.find('\0') {
        return whole_file_error(sql, "the file contains a NUL byte".into(), nul);
    }
    let tokens = match pg_query::scan_tokens(sql) {
        Ok(tokens) => tokens,
        Err(e) => return whole_file_error(sql, message(e), 0),
    };
    let tokens: Vec<Tok> = tokens
        .iter()
        .map(|t| Tok {
            start: t.start as usize,
            end: t.end as usize,
            comment: t.token == Token::SqlComment as i32 || t.token == Token::CComment as i32,
        })
        .collect();
    match pg_query::parse(sql, 0) {
        Ok(parsed) => {
            let ranges = parsed.protobuf.stmts.into_iter().map(|raw| {
                let start = raw.stmt_location.max(0) as usize;
                let end = match raw.stmt_len {
                    0 => sql.len(),
                    len => start + len as usize,
                };
                (start, end, raw.stmt.and_then(|n| n.node))
            });
            Split {
                statements: statements(sql, &tokens, ranges),
                syntax_error: None,
            }
        }
        Err(error) => split_rejected(sql, &tokens, message(error)),
    }
}

/// A rejected file: split by the scanner, each piece parsed on its own so
/// that the rest can still be linted and the error has its statement.
fn split_rejected(sql: &str, tokens: &[Tok], error: String) -> Split {
    let pieces = pg_query::split_with_scanner(sql).unwrap_or_default();
    let mut syntax_error = None;
    let ranges: Vec<(usize, usize, Option<NodeEnum>)> = pieces
        .iter()
        .map(|piece| {
            let start = piece.as_ptr() as usize - sql.as_ptr() as usize;
            let node = match pg_query::parse(piece, 0) {
                Ok(parsed) => parsed
                    .protobuf
                    .stmts
                    .into_iter()
                    .next()
                    .and_then(|raw| raw.stmt.and_then(|n| n.node)),
                Err(e) => {
                    syntax_error.get_or_insert((message(e), start));
                    None
                }
            };
            (start, start + piece.len(), node)
        })
        .collect();
    let statements = statements(sql, tokens, ranges.into_iter());
    let offset = syntax_error.as_ref().map_or(0, |(_, start)| {
        first_code(tokens, *start, sql.len()).unwrap_or(*start)
    });
    Split {
        statements,
        syntax_error: Some(SyntaxError {
            message: syntax_error.map_or(error, |(m, _)| m),
            offset,
        }),
    }
}

fn whole_file_error(sql: &str, message: String, offset: usize) -> Split {
    let start = sql.len() - sql.trim_start().len();
    let end = sql.trim_end().len().max(start);
    let statements = if start < end {
        vec![Statement {
            text: sql[start..end].to_string(),
            offset: start,
            code_offset: start,
            node: None,
        }]
    } else {
        Vec::new()
    };
    Split {
        statements,
        syntax_error: Some(SyntaxError { message, offset }),
    }
}

fn message(error: pg_query::Error) -> String {
    match error {
        pg_query::Error::Parse(m) | pg_query::Error::Scan(m) | pg_query::Error::Split(m) => m,
        other => other.to_string(),
    }
}

/// A scanner token (byte offsets).
struct Tok {
    start: usize,
    end: usize,
    comment: bool,
}

fn first_code(tokens: &[Tok], from: usize, to: usize) -> Option<usize> {
    tokens
        .iter()
        .find(|t| t.start >= from && t.start < to && !t.comment)
        .map(|t| t.start)
}

/// Statements from the parser's ranges: leading comments from just after the
/// previous statement's `;`, trailing comments dropped. One pass over the
/// tokens (both are in file order).
fn statements(
    sql: &str,
    tokens: &[Tok],
    ranges: impl Iterator<Item = (usize, usize, Option<NodeEnum>)>,
) -> Vec<Statement> {
    let mut out = Vec::new();
    let mut next = 0; // first token not yet consumed
    for (start, end, node) in ranges {
        // Leading comments: the comments after the last `;` before the statement.
        let mut offset = None;
        while next < tokens.len() && tokens[next].start < start {
            let token = &tokens[next];
            if token.comment {
                offset.get_or_insert(token.start);
            } else {
                offset = None; // a `;`: comments before it belong to the previous statement
            }
            next += 1;
        }
        let (mut first, mut last) = (None, None);
        while next < tokens.len() && tokens[next].end <= end {
            if tokens[next].comment {
                if first.is_none() {
                    offset.get_or_insert(tokens[next].start);
                }
            } else {
                first.get_or_insert(tokens[next].start);
                last = Some(tokens[next].end);
            }
            next += 1;
        }
        let (Some(first), Some(last)) = (first, last) else {
            continue;
        };
        let offset = offset.unwrap_or(first).min(first);
        out.push(Statement {
            text: sql[offset..last].to_string(),
            offset,
            code_offset: first,
            node,
        });
    }
    out
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

/// The 1-based column (in characters) of a byte offset in `text`.
pub fn column_of(text: &str, byte_offset: usize) -> usize {
    let end = byte_offset.min(text.len());
    let line_start = text[..end].rfind('\n').map_or(0, |n| n + 1);
    text[line_start..end].chars().count() + 1
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
        let split = split(sql);
        assert_eq!(split.syntax_error, None, "{sql}");
        split.statements.into_iter().map(|s| s.text).collect()
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
        let statements = split(sql).statements;
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
    fn begin_atomic_bodies_stay_whole() {
        let sql = "CREATE TABLE t (x int);\n\
                   CREATE FUNCTION f() RETURNS int LANGUAGE sql\n\
                   BEGIN ATOMIC\n  SELECT 1;\n  SELECT 2;\nEND;\n\
                   -- next\nSELECT f();\n";
        let statements = split(sql).statements;
        assert_eq!(statements.len(), 3);
        assert!(
            statements[1].text.ends_with("SELECT 2;\nEND"),
            "{:?}",
            statements[1]
        );
        assert_eq!(statements[2].text, "-- next\nSELECT f()");
        assert_eq!(line_of(sql, statements[2].code_offset), 8);
        assert!(matches!(
            statements[1].node,
            Some(NodeEnum::CreateFunctionStmt(_))
        ));
    }

    #[test]
    fn a_rejected_file_is_split_by_the_scanner_and_names_the_bad_statement() {
        let sql = "CREATE TABLE a (id int);\n\nCREAT TABLE b (id int);\nSELECT 1;";
        let split = split(sql);
        assert_eq!(split.statements.len(), 3);
        let error = split.syntax_error.unwrap();
        assert!(
            error.message.contains("syntax error at or near \"CREAT\""),
            "{error:?}"
        );
        assert_eq!(line_of(sql, error.offset), 3);
        assert!(split.statements[0].node.is_some() && split.statements[1].node.is_none());
        let unterminated = super::split("SELECT 'oops;\n");
        assert!(unterminated.syntax_error.is_some());
    }

    #[test]
    fn character_positions_become_byte_offsets() {
        assert_eq!(byte_of_char_position("ééx", 3), 4);
        assert_eq!(byte_of_char_position("abc", 1), 0);
    }
}
