//! The migrations folder: finding, reading and writing migration files.
//!
//! Layout (refinery's naming, plus a sibling for the way back):
//!
//! ```text
//! migrations/V20240901000000__education_schema.sql        up (refinery picks it up)
//! migrations/V20240901000000__education_schema.down.sql   down (pgwarden only)
//! ```
//!
//! refinery's file pattern is `^[UV](\d+(\.\d+)?)__(\w+)\.sql$`: the `.` in
//! `.down.sql` is not a word character, so refinery never mistakes a down
//! script for a migration. Like refinery, subfolders are searched too.
//!
//! The checksum is refinery's own (`refinery::Migration::unapplied`), so
//! history rows written by pgwarden and by refinery are interchangeable.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::split::{self, Statement};
use crate::error::{Error, Result};

/// The header comment that runs a file outside a transaction.
pub const NO_TRANSACTION_MARKER: &str = "-- pgwarden:no-transaction";

/// One migration: its up script and, when written, its down script.
#[derive(Clone, Debug)]
pub struct Migration {
    pub version: i64,
    pub name: String,
    pub up: Script,
    pub down: Option<Script>,
    /// refinery's checksum of the up script.
    pub checksum: u64,
}

/// One file's SQL, split into statements.
#[derive(Clone, Debug)]
pub struct Script {
    pub path: PathBuf,
    pub sql: String,
    pub transactional: bool,
    pub statements: Vec<Statement>,
    /// PostgreSQL's parser rejected the file (lint and `up` report it).
    pub syntax_error: Option<split::SyntaxError>,
}

impl Migration {
    /// `V<version>__<name>`, refinery's display name.
    pub fn label(&self) -> String {
        format!("V{}__{}", self.version, self.name)
    }
}

/// refinery's checksum of a migration (SipHash-1-3 over name, version, SQL).
/// The one place pgwarden computes it.
pub fn checksum(version: i64, name: &str, sql: &str) -> Result<u64> {
    refinery::Migration::unapplied(&format!("V{version}__{name}"), sql)
        .map(|m| m.checksum())
        .map_err(|e| Error::failed(format!("V{version}__{name}: {e}")))
}

/// Every migration under `dir`, ordered by version.
pub fn load(dir: &Path) -> Result<Vec<Migration>> {
    if !dir.is_dir() {
        return Err(Error::usage(format!(
            "migrations folder {} does not exist; create it with `pgwarden migrate init` or set migrations.dir",
            dir.display()
        )));
    }
    let mut paths = Vec::new();
    collect_sql_files(dir, &mut paths)?;
    let mut ups: BTreeMap<i64, (String, PathBuf)> = BTreeMap::new();
    let mut downs: BTreeMap<i64, (String, PathBuf)> = BTreeMap::new();
    for path in paths {
        let (kind, version, name) = parse_file_name(&path)?;
        let map = if kind == Kind::Down {
            &mut downs
        } else {
            &mut ups
        };
        if let Some((_, other)) = map.insert(version, (name, path.clone())) {
            return Err(Error::usage(format!(
                "two migration files have version {version}: {} and {}; give one a new version (`pgwarden migrate create`)",
                other.display(),
                path.display()
            )));
        }
    }
    let mut migrations = Vec::new();
    for (version, (name, path)) in ups {
        let up = read_script(&path)?;
        let down = match downs.remove(&version) {
            Some((down_name, down_path)) if down_name == name => Some(read_script(&down_path)?),
            Some((_, down_path)) => {
                return Err(Error::usage(format!(
                    "{} does not match the name of {}; name it V{version}__{name}.down.sql",
                    down_path.display(),
                    path.display()
                )));
            }
            None => None,
        };
        let checksum = checksum(version, &name, &up.sql)?;
        migrations.push(Migration {
            version,
            name,
            up,
            down,
            checksum,
        });
    }
    if let Some((_, (_, path))) = downs.into_iter().next() {
        return Err(Error::usage(format!(
            "{} is a down script without its up script (same name without `.down`)",
            path.display()
        )));
    }
    Ok(migrations)
}

fn collect_sql_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Error::failed(format!("cannot read {}: {e}", dir.display())))?;
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            collect_sql_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "sql") {
            out.push(path);
        }
    }
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Up,
    Down,
}

/// `V<digits>__<word chars>.sql` or `….down.sql`; anything else is refused,
/// because a misnamed migration silently skipped is worse than an error.
fn parse_file_name(path: &Path) -> Result<(Kind, i64, String)> {
    let file = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let bad = |why: &str| {
        Error::usage(format!(
            "{}: {why}; migration files are named V<version>__<name>.sql (up) and V<version>__<name>.down.sql (down), e.g. V20240901120000__add_users.sql",
            path.display()
        ))
    };
    let stem = file.strip_suffix(".sql").unwrap_or(file);
    let (kind, stem) = match stem.strip_suffix(".down") {
        Some(stem) => (Kind::Down, stem),
        None => (Kind::Up, stem),
    };
    if stem.starts_with('U') {
        return Err(bad(
            "unversioned (U) migrations are not supported by pgwarden; use a V prefix",
        ));
    }
    let Some(rest) = stem.strip_prefix('V') else {
        return Err(bad("the name does not start with V"));
    };
    let Some((version, name)) = rest.split_once("__") else {
        return Err(bad("no `__` between version and name"));
    };
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("the version is not a whole number"));
    }
    let version: i64 = version
        .parse()
        .map_err(|_| bad("the version does not fit in 64 bits"))?;
    if version <= 0 {
        return Err(bad(
            "the version must be above 0 (0 means `nothing applied`)",
        ));
    }
    if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return Err(bad("the name may only hold letters, digits and _"));
    }
    Ok((kind, version, name.to_string()))
}

fn read_script(path: &Path) -> Result<Script> {
    let script = read_any(path)?;
    if script.transactional {
        refuse_transaction_control(&script)?;
    }
    Ok(script)
}

/// Any SQL file as pgwarden would run it (for `migrate lint FILE…`: no
/// naming rules, no refusals; lint reports what is wrong).
pub fn read_any(path: &Path) -> Result<Script> {
    let sql = std::fs::read_to_string(path)
        .map_err(|e| Error::usage(format!("cannot read {}: {e}", path.display())))?;
    let split = split::split(&sql);
    Ok(Script {
        path: path.to_path_buf(),
        transactional: !has_no_transaction_marker(&sql),
        statements: split.statements,
        syntax_error: split.syntax_error,
        sql,
    })
}

/// A COMMIT inside a migration would commit half of it without its history
/// row: pgwarden owns the transaction boundaries.
fn refuse_transaction_control(script: &Script) -> Result<()> {
    for statement in &script.statements {
        let code = &script.sql[statement.code_offset..];
        let word: String = code
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .collect::<String>()
            .to_ascii_uppercase();
        if ["BEGIN", "COMMIT", "ROLLBACK", "END", "START", "ABORT"].contains(&word.as_str()) {
            return Err(Error::usage(format!(
                "{}, line {}: `{word}` — pgwarden runs each migration in one transaction together with its history row; remove the transaction control, or put `{NO_TRANSACTION_MARKER}` in the header to manage transactions yourself",
                script.path.display(),
                split::line_of(&script.sql, statement.code_offset)
            )));
        }
    }
    Ok(())
}

/// The marker counts only in the header: the comment lines before the first statement.
fn has_no_transaction_marker(sql: &str) -> bool {
    sql.lines()
        .map(str::trim)
        .take_while(|line| line.is_empty() || line.starts_with("--"))
        .any(|line| line.eq_ignore_ascii_case(NO_TRANSACTION_MARKER))
}

/// Write a new up/down pair for `message`, versioned by the UTC time
/// (`YYYYMMDDHHMMSS`): sortable, and two branches only collide if both
/// create a migration in the same second. Within one folder the new version
/// is always above the existing ones (two creates in one second: +1).
pub fn create(dir: &Path, message: &str, now: DateTime<Utc>) -> Result<(PathBuf, PathBuf)> {
    let name = slug(message)?;
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::failed(format!("cannot create {}: {e}", dir.display())))?;
    let latest = load(dir)?.iter().map(|m| m.version).max().unwrap_or(0);
    let now: i64 = now
        .format("%Y%m%d%H%M%S")
        .to_string()
        .parse()
        .map_err(|_| Error::failed("the clock gives no usable version"))?;
    // Above every existing version, so the new file is also the last to apply.
    let version = now.max(latest + 1);
    let up = dir.join(format!("V{version}__{name}.sql"));
    let down = dir.join(format!("V{version}__{name}.down.sql"));
    write_new(&up, &up_template(message, &down))?;
    write_new(&down, &down_template(message, &up))?;
    Ok((up, down))
}

fn slug(message: &str) -> Result<String> {
    let mut slug = String::new();
    for c in message.trim().chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('_') && !slug.is_empty() {
            slug.push('_');
        }
    }
    let slug: String = slug.trim_end_matches('_').chars().take(60).collect();
    let slug = slug.trim_end_matches('_').to_string();
    if slug.is_empty() {
        return Err(Error::usage(format!(
            "migration message {message:?} has no letters or digits to name the file after; describe the change, e.g. \"add users table\""
        )));
    }
    Ok(slug)
}

/// Write via a temp file and rename, so a crash leaves no half-written migration.
fn write_new(path: &Path, text: &str) -> Result<()> {
    if path.exists() {
        return Err(Error::failed(format!("{} already exists", path.display())));
    }
    let tmp = path.with_extension("sql.tmp");
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| Error::failed(format!("cannot write {}: {e}", path.display())))
}

fn up_template(message: &str, down: &Path) -> String {
    let down = down.file_name().unwrap_or_default().to_string_lossy();
    // The marker is shown indented, so the template itself stays transactional.
    format!(
        "-- {message}\n\
         --\n\
         -- Runs in one transaction with its history row: all of it or nothing.\n\
         -- For CREATE INDEX CONCURRENTLY, start the file with the line\n\
         --     {NO_TRANSACTION_MARKER}\n\
         -- to run it statement by statement outside a transaction (make each\n\
         -- statement safe to re-run, e.g. IF NOT EXISTS).\n\
         --\n\
         -- Revert everything this file creates in {down}.\n\n"
    )
}

fn down_template(message: &str, up: &Path) -> String {
    let up = up.file_name().unwrap_or_default().to_string_lossy();
    format!(
        "-- Revert: {message}\n\
         --\n\
         -- Drop exactly what {up} creates (tables, types, functions,\n\
         -- triggers), in reverse order, without CASCADE.\n\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        let p = |s: &str| parse_file_name(Path::new(s));
        assert_eq!(p("V12__add_x.sql").unwrap(), (Kind::Up, 12, "add_x".into()));
        assert_eq!(
            p("V12__add_x.down.sql").unwrap(),
            (Kind::Down, 12, "add_x".into())
        );
        for bad in [
            "U1__x.sql",
            "V__x.sql",
            "V1_x.sql",
            "V1.5__x.sql",
            "V0__x.sql",
            "V1__a-b.sql",
            "add.sql",
        ] {
            let e = p(bad).unwrap_err().to_string();
            assert!(
                e.contains(bad) && e.contains("V<version>__<name>.sql"),
                "{e}"
            );
        }
    }

    #[test]
    fn marker_only_in_header() {
        assert!(has_no_transaction_marker(
            "-- make an index\n-- pgwarden:no-transaction\nCREATE INDEX CONCURRENTLY i ON t (x);"
        ));
        assert!(!has_no_transaction_marker(
            "SELECT 1;\n-- pgwarden:no-transaction\n"
        ));
        assert!(!has_no_transaction_marker(&up_template(
            "x",
            Path::new("V1__x.down.sql")
        )));
    }

    #[test]
    fn slugs() {
        assert_eq!(slug("Add users table!").unwrap(), "add_users_table");
        assert!(slug(" -- ").is_err());
    }

    #[test]
    fn checksum_is_refinerys() {
        let m = refinery::Migration::unapplied("V3__x", "SELECT 1;").unwrap();
        assert_eq!(checksum(3, "x", "SELECT 1;").unwrap(), m.checksum());
    }
}
