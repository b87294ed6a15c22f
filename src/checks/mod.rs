//! The ten health checks (issue 4 fills this in).

use serde::{Deserialize, Serialize};

use crate::config::{Bounded, Duration};

/// `[checks]`: how often and how long checks run, and their thresholds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChecksConfig {
    /// How often the daemon runs a cycle per target.
    pub interval: Duration,
    /// statement_timeout for each check's queries.
    pub timeout: Duration,
    /// Length of every top-N list (tables, statements, standbys...).
    pub top_n: Bounded<1, 100>,
}

impl Default for ChecksConfig {
    fn default() -> Self {
        Self {
            interval: Duration::secs(15),
            timeout: Duration::secs(5),
            top_n: Bounded::new(10),
        }
    }
}
