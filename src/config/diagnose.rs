//! Turning TOML and serde errors into messages an operator can act on:
//! the file, the line, the key, the table it sits in, and for a typo the
//! closest key that does exist.

use std::ops::Range;
use std::path::Path;

/// Describe a TOML error found while reading `source` (the text of `path`).
pub fn describe(path: &Path, source: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim();
    let Some(span) = error.span() else {
        return format!("config error in {}: {message}", path.display());
    };
    let line = line_of(source, span.start);
    let table = table_at(source, span.start);
    let key = key_at(source, &span);
    let place = match (&key, &table) {
        (Some(key), Some(table)) => format!("key `{key}` in {table}"),
        (Some(key), None) => format!("key `{key}`"),
        (None, Some(table)) => format!("in {table}"),
        (None, None) => String::new(),
    };
    let detail = explain(message);
    let separator = if place.is_empty() { "" } else { ", " };
    format!(
        "config error in {}, line {line}{separator}{place}: {detail}",
        path.display()
    )
}

/// Rewrite serde's wording where it can be more helpful.
fn explain(message: &str) -> String {
    for (prefix, what) in [
        ("unknown field", "unknown key"),
        ("unknown variant", "unknown value"),
    ] {
        if let Some(rest) = message.strip_prefix(prefix) {
            let names = backticked(rest);
            let Some((given, known)) = names.split_first() else {
                return message.to_string();
            };
            let mut text = format!("{what} `{given}`");
            if let Some(best) = closest(given, known) {
                text.push_str(&format!("; did you mean `{best}`?"));
            }
            if !known.is_empty() {
                text.push_str(&format!(" (known: {})", known.join(", ")));
            }
            return text;
        }
    }
    message.to_string()
}

/// The closest candidate to a misspelt name, if any is close enough to be a typo.
pub fn closest<'a>(given: &str, known: &'a [String]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(given, k), k))
        .filter(|(distance, k)| *distance <= 2.max(k.len() / 3))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, k)| k.as_str())
}

fn backticked(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

fn line_of(source: &str, offset: usize) -> usize {
    source[..offset.min(source.len())].matches('\n').count() + 1
}

/// The `[table]` or `[[array]]` header the offset sits under.
fn table_at(source: &str, offset: usize) -> Option<String> {
    source[..offset.min(source.len())]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.split('#').next().unwrap_or(l).trim().to_string())
}

/// The key written on the line where the error points, if that line is `key = value`.
fn key_at(source: &str, span: &Range<usize>) -> Option<String> {
    let start = source[..span.start.min(source.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let line = source[start..].lines().next()?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches('"');
    (!key.is_empty() && !key.starts_with('[')).then(|| key.to_string())
}
