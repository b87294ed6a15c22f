//! Backups and restore: `pg_dump` that is checked before it is trusted.
//!
//! The common pg_dump-in-cron setup fails silently: a zero-byte file, a dump
//! cut short by a killed process, a backup nobody ever restored. Every step
//! here exists to make that impossible:
//!
//! - [`dump`] writes to a temporary name, checks the result, fsyncs and only
//!   then renames it into place, with a [`manifest`] beside it;
//! - [`verify`] re-checks a backup against its manifest and can restore it into
//!   a scratch database; [`restore`] refuses a file that fails those checks;
//! - [`retention`] prunes with grandfather-father-son rules and never removes
//!   the newest good backup; [`schedule`] runs it all on a crontab schedule
//!   and feeds [`metrics`];
//! - [`lock`] keeps it to one backup per target at a time, across processes
//!   (the daemon, a manual `pgwarden backup`, the backup before a migration).
//!
//! The external programs (`pg_dump`, `pg_restore`, `psql`) are located and
//! run by [`tools`], the only place that builds their command lines, so the
//! rule "the password never appears in `ps`" has one home.

pub mod catalog;
pub mod dump;
pub mod lock;
pub mod manifest;
pub mod metrics;
pub mod restore;
pub mod retention;
pub mod schedule;
pub mod tools;
pub mod verify;

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

use crate::config::{Bounded, Duration, Environment};
use crate::error::{Error, Result};

pub use self::dump::{BackupOptions, BackupOutcome, take};
pub use self::lock::{BackupLock, Purpose};
pub use self::metrics::BackupMetrics;
pub use self::schedule::{CronSchedule, TimeZone};

/// `[backup]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupConfig {
    /// Where backups and their manifests are written.
    pub dir: PathBuf,
    /// Crontab schedule for the daemon (empty = no scheduled backups).
    pub schedule: CronSchedule,
    /// Time zone of the schedule and of the retention calendar (IANA name).
    pub timezone: TimeZone,
    /// custom | plain | directory
    pub format: Format,
    /// `none` or `METHOD:LEVEL` (custom and directory formats).
    pub compress: Compression,
    /// Parallel pg_dump jobs (directory format only).
    pub jobs: Bounded<1, 64>,
    /// Restore every scheduled backup into a scratch database and compare row counts.
    pub restore_test: bool,
    /// How long the backup before a production `migrate up` waits for a
    /// running backup of the same target (another process) before it fails
    /// and no migration runs.
    pub lock_wait: Duration,
    /// Directory holding pg_dump / pg_restore / psql; PATH and
    /// /usr/lib/postgresql/*/bin otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bin_dir: Option<PathBuf>,
    pub retention: RetentionConfig,
}

impl Default for BackupConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("backups"),
            schedule: CronSchedule::default(),
            timezone: TimeZone::default(),
            format: Format::Custom,
            compress: Compression::default(),
            jobs: Bounded::new(1),
            restore_test: false,
            lock_wait: Duration::secs(300),
            bin_dir: None,
            retention: RetentionConfig::default(),
        }
    }
}

/// `[backup.retention]`: grandfather-father-son counts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Always keep this many newest backups.
    pub keep_last: Bounded<1, 10000>,
    /// Keep the newest backup of each of this many most recent days.
    pub daily: Bounded<0, 10000>,
    /// … of ISO weeks.
    pub weekly: Bounded<0, 10000>,
    /// … of calendar months.
    pub monthly: Bounded<0, 10000>,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            keep_last: Bounded::new(3),
            daily: Bounded::new(7),
            weekly: Bounded::new(4),
            monthly: Bounded::new(6),
        }
    }
}

/// pg_dump's output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One compressed archive, restored with pg_restore (default).
    #[default]
    Custom,
    /// SQL text, restored with psql (the old toolkit's format).
    Plain,
    /// A directory of compressed files; allows parallel dumps (`--jobs`).
    Directory,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Custom => "custom",
            Self::Plain => "plain",
            Self::Directory => "directory",
        }
    }

    /// File extension of a backup in this format.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Custom => "dump",
            Self::Plain => "sql",
            Self::Directory => "dir",
        }
    }

    /// pg_dump's `--format` letter.
    pub fn pg_dump_flag(self) -> &'static str {
        match self {
            Self::Custom => "--format=c",
            Self::Plain => "--format=p",
            Self::Directory => "--format=d",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Compression as `none` or `METHOD:LEVEL` (`gzip:6`, `zstd:3`, `lz4:1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip(u8),
    Lz4(u8),
    Zstd(u8),
}

impl Default for Compression {
    fn default() -> Self {
        Self::Gzip(6)
    }
}

impl Compression {
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let text = text.trim().to_ascii_lowercase();
        if text == "none" {
            return Ok(Self::None);
        }
        let hint = "write `none` or METHOD:LEVEL, e.g. \"gzip:6\" (gzip 1-9, lz4 1-12, zstd 1-22)";
        let (method, level) = text.split_once(':').unwrap_or((&text, ""));
        let (max, build): (u8, fn(u8) -> Self) = match method {
            "gzip" => (9, Self::Gzip),
            "lz4" => (12, Self::Lz4),
            "zstd" => (22, Self::Zstd),
            other => {
                return Err(format!("unknown compression method `{other}`; {hint}"));
            }
        };
        let level: u8 = level
            .parse()
            .map_err(|_| format!("`{text}` has no valid level; {hint}"))?;
        if !(1..=max).contains(&level) {
            return Err(format!(
                "{method} level {level} is out of range 1-{max}; {hint}"
            ));
        }
        Ok(build(level))
    }

    pub fn method(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip(_) => "gzip",
            Self::Lz4(_) => "lz4",
            Self::Zstd(_) => "zstd",
        }
    }

    /// pg_dump's `--compress` value, for a pg_dump of `major` version:
    /// before 16 pg_dump knows only gzip levels.
    pub fn pg_dump_arg(self, major: u32) -> Result<String> {
        match self {
            Self::None => Ok("--compress=0".into()),
            Self::Gzip(level) if major < 16 => Ok(format!("--compress={level}")),
            _ if major < 16 => Err(Error::usage(format!(
                "compress = \"{self}\": pg_dump {major} supports only gzip; lz4 and zstd need pg_dump 16 or newer (set backup.bin_dir or compress = \"gzip:6\")"
            ))),
            _ => Ok(format!("--compress={self}")),
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("none"),
            Self::Gzip(l) | Self::Lz4(l) | Self::Zstd(l) => write!(f, "{}:{l}", self.method()),
        }
    }
}

impl std::str::FromStr for Compression {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Self::parse(s)
    }
}

impl Serialize for Compression {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Compression {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Compression::parse(&text).map_err(de::Error::custom)
    }
}

/// A driver error as one sentence naming the target.
pub(crate) fn sql_error(
    target: &crate::config::TargetConfig,
    what: &str,
    e: &tokio_postgres::Error,
) -> Error {
    let detail = e
        .as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_else(|| e.to_string());
    Error::failed(format!("target `{}`: {what}: {detail}", target.name))
}

/// Called by the migration engine before applying migrations in production:
/// takes a backup, and an error here stops the migration.
///
/// When another process is backing up the same target (the daemon's
/// schedule, say), this waits up to `backup.lock_wait` for it and then takes
/// its own backup: the migration needs a backup from just before it, not one
/// whose snapshot predates the wait. Waiting longer than that fails, so a
/// deploy never hangs behind a long dump and never migrates without a backup.
pub async fn before_migrate(
    config: &crate::config::Config,
    target: &crate::config::TargetConfig,
) -> Result<()> {
    if config.environment != Environment::Production {
        return Ok(());
    }
    let options = BackupOptions {
        purpose: Purpose::BeforeMigrate,
        lock_wait: config.backup.lock_wait.get(),
        ..BackupOptions::default()
    };
    let outcome = take(config, target, &options).await.map_err(|e| {
        e.context(format!(
            "the backup before migrating target `{}` failed, so no migration ran",
            target.name
        ))
    })?;
    tracing::info!(
        target = %target.name,
        path = %outcome.path.display(),
        "backup before migrating written"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_is_parsed_and_explained() {
        assert_eq!(Compression::parse("gzip:9").unwrap(), Compression::Gzip(9));
        assert_eq!(Compression::parse("NONE").unwrap(), Compression::None);
        assert_eq!(Compression::parse("zstd:3").unwrap().to_string(), "zstd:3");
        assert!(Compression::parse("gzip:10").unwrap_err().contains("1-9"));
        assert!(
            Compression::parse("brotli:3")
                .unwrap_err()
                .contains("`brotli`")
        );
        assert!(
            Compression::parse("gzip")
                .unwrap_err()
                .contains("no valid level")
        );
        let err = Compression::Zstd(3).pg_dump_arg(15).unwrap_err();
        assert!(
            err.message().contains("pg_dump 15 supports only gzip"),
            "{err}"
        );
        assert_eq!(
            Compression::Zstd(3).pg_dump_arg(16).unwrap(),
            "--compress=zstd:3"
        );
        assert_eq!(
            Compression::Gzip(6).pg_dump_arg(15).unwrap(),
            "--compress=6"
        );
    }
}
