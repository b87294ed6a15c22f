//! What a run will do, as SQL text: the one source of both execution and
//! `--sql` output, so the printed script is exactly what pgwarden would send.
//!
//! A step is one migration in one direction: `BEGIN`, the file's statements,
//! the history bookkeeping, `COMMIT` — or, for a `pgwarden:no-transaction`
//! file, the statements one by one and then the bookkeeping. History rows are
//! refinery's (`refinery_schema_history`: version, name, RFC 3339
//! `applied_on`, checksum as text), so refinery reads them as its own.

use chrono::{DateTime, SecondsFormat, Utc};

use super::MigrationsConfig;
use super::files::{Migration, NO_TRANSACTION_MARKER, Script};

/// refinery's history table (its `DEFAULT_MIGRATION_TABLE_NAME`).
pub const HISTORY_TABLE: &str = "refinery_schema_history";

/// refinery's own `CREATE TABLE IF NOT EXISTS` for the history table.
pub fn history_ddl() -> String {
    <tokio_postgres::Client as refinery::AsyncMigrate>::assert_migrations_table_query(HISTORY_TABLE)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Up,
    Down,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }
}

/// One migration in one direction.
#[derive(Clone, Copy, Debug)]
pub struct Step<'a> {
    pub migration: &'a Migration,
    pub direction: Direction,
}

impl<'a> Step<'a> {
    pub fn up(migration: &'a Migration) -> Self {
        Self {
            migration,
            direction: Direction::Up,
        }
    }

    /// None when the migration has no down script.
    pub fn down(migration: &'a Migration) -> Option<Self> {
        migration.down.as_ref().map(|_| Self {
            migration,
            direction: Direction::Down,
        })
    }

    pub fn script(&self) -> &'a Script {
        match self.direction {
            Direction::Up => &self.migration.up,
            Direction::Down => self
                .migration
                .down
                .as_ref()
                .expect("down steps are built only for migrations with a down script"),
        }
    }

    /// The history change that goes with the step (in its transaction).
    pub fn bookkeeping(&self, now: DateTime<Utc>) -> String {
        match self.direction {
            Direction::Up => insert_history(self.migration, now),
            Direction::Down => format!(
                "DELETE FROM {HISTORY_TABLE} WHERE version = {}",
                self.migration.version
            ),
        }
    }
}

/// refinery's INSERT (`insert_migration_query`), with the same formats.
pub fn insert_history(migration: &Migration, now: DateTime<Utc>) -> String {
    format!(
        "INSERT INTO {HISTORY_TABLE} (version, name, applied_on, checksum) VALUES ({}, {}, {}, {})",
        migration.version,
        literal(&migration.name),
        literal(&now.to_rfc3339_opts(SecondsFormat::Micros, true)),
        literal(&migration.checksum.to_string()),
    )
}

pub use crate::sql::literal;

/// The session settings of every migration session.
pub fn session_settings(config: &MigrationsConfig) -> Vec<String> {
    vec![
        format!(
            "SET lock_timeout = '{}ms'",
            config.lock_timeout.get().as_millis()
        ),
        format!(
            "SET statement_timeout = '{}ms'",
            config.statement_timeout.get().as_millis()
        ),
    ]
}

/// The whole script for `--sql`: settings, history table, then each step.
pub fn render(
    config: &MigrationsConfig,
    title: &str,
    steps: &[Step],
    now: DateTime<Utc>,
) -> String {
    let mut out = format!(
        "-- {title}\n-- Rendered by pgwarden {} at {}; run with psql -f.\n\\set ON_ERROR_STOP on\n\n",
        env!("CARGO_PKG_VERSION"),
        now.to_rfc3339_opts(SecondsFormat::Secs, true)
    );
    for setting in session_settings(config) {
        out.push_str(&setting);
        out.push_str(";\n");
    }
    out.push_str(history_ddl().trim_end_matches(';'));
    out.push_str(";\n");
    if steps.is_empty() {
        out.push_str("\n-- nothing to do\n");
    }
    for step in steps {
        render_step(&mut out, step, now);
    }
    out
}

fn render_step(out: &mut String, step: &Step, now: DateTime<Utc>) {
    let script = step.script();
    out.push_str(&format!(
        "\n-- {} {} ({})\n",
        step.migration.label(),
        step.direction.as_str(),
        script.path.display()
    ));
    if script.transactional {
        out.push_str("BEGIN;\n");
    } else {
        out.push_str(&format!(
            "-- {NO_TRANSACTION_MARKER}: each statement commits on its own\n"
        ));
    }
    for statement in &script.statements {
        out.push_str(&statement.text);
        out.push_str(";\n");
    }
    out.push_str(&step.bookkeeping(now));
    out.push_str(";\n");
    if script.transactional {
        out.push_str("COMMIT;\n");
    }
}
