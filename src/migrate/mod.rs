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
