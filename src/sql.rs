//! Quoting for the SQL pgwarden builds itself: one home, so every identifier
//! and literal is quoted the same way (names are data, never SQL text).

/// A quoted identifier: `my "db"` → `"my ""db"""`.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A SQL string literal: `it's` → `'it''s'` (standard_conforming_strings, on
/// since PostgreSQL 9.1, makes backslashes plain characters).
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_doubled() {
        assert_eq!(quote_ident("my \"db\""), "\"my \"\"db\"\"\"");
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(quote_ident("%ff"), "\"%ff\"");
    }
}
