//! The migration engine (issue 3 fills this in).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::{Bounded, Duration};

/// `[migrations]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MigrationsConfig {
    /// Folder of the migration files.
    pub dir: PathBuf,
    /// lock_timeout of migration sessions: keeps production traffic moving.
    pub lock_timeout: Duration,
    /// statement_timeout of migration sessions (0 = none).
    pub statement_timeout: Duration,
    /// How often a lock timeout is retried before the migration fails.
    pub lock_retries: Bounded<0, 100>,
}

impl Default for MigrationsConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("migrations"),
            lock_timeout: Duration::secs(5),
            statement_timeout: Duration::secs(0),
            lock_retries: Bounded::new(3),
        }
    }
}

/// What a `migrate up` run did; the daemon exports it after SIGUSR1.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MigrateReport {
    pub applied: Vec<AppliedMigration>,
    /// Latest applied version after the run (None: nothing applied ever).
    pub current_version: Option<i64>,
    /// Migrations still pending after the run.
    pub pending: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AppliedMigration {
    pub version: i64,
    pub name: String,
    pub duration_seconds: f64,
}

/// Options of `migrate up`.
#[derive(Clone, Debug, Default)]
pub struct UpOptions {
    /// Stop after this version (None: apply everything).
    pub revision: Option<i64>,
}

/// Apply pending migrations to `target`, serialised with every other
/// runner by an advisory lock; in production, after `backup::before_migrate`.
/// Placeholder until issue 3.
pub async fn up(
    _config: &crate::config::Config,
    _target: &crate::config::TargetConfig,
    _options: &UpOptions,
) -> crate::Result<MigrateReport> {
    Err(crate::cli::not_implemented("migrate up"))
}

/// Where a target stands: what `migrate status` prints and the daemon exports.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MigrationStatus {
    /// Latest applied version (None: nothing applied).
    pub current_version: Option<i64>,
    /// Versions with files that are not applied yet.
    pub pending: Vec<i64>,
    /// Applied versions whose file changed or disappeared.
    pub drifted: Vec<i64>,
}

/// Read the target's migration state without changing it. Placeholder until issue 3.
pub async fn status(
    _config: &crate::config::Config,
    _target: &crate::config::TargetConfig,
) -> crate::Result<MigrationStatus> {
    Err(crate::cli::not_implemented("migrate status"))
}
