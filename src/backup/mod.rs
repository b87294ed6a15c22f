//! Backups and restore (issue 6 fills this in).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[backup]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupConfig {
    /// Where backups and their manifests are written.
    pub dir: PathBuf,
    /// Crontab schedule for the daemon ("" = no scheduled backups).
    pub schedule: String,
}

impl Default for BackupConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("backups"),
            schedule: String::new(),
        }
    }
}

/// Called by the migration engine before applying migrations in production:
/// takes a backup, and an error here stops the migration. Placeholder until issue 6.
pub async fn before_migrate(
    _config: &crate::config::Config,
    _target: &crate::config::TargetConfig,
) -> crate::Result<()> {
    Ok(())
}
