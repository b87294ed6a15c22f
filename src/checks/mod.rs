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

/// The check names, in display order; `pgwarden_check_status{check=…}` uses them.
pub const CHECK_NAMES: [&str; 10] = [
    "connectivity",
    "performance",
    "replication",
    "disk_usage",
    "connection_pool",
    "long_queries",
    "table_integrity",
    "indexes",
    "locks",
    "cache_hit_ratio",
];

/// Runs check cycles against one target, keeping between cycles what the
/// interval-based measurements (cache hit ratio now, growth, deadlocks) need.
pub struct Checker {
    target: crate::pool::Target,
    config: ChecksConfig,
}

impl Checker {
    pub fn new(target: crate::pool::Target, config: ChecksConfig) -> Self {
        Self { target, config }
    }

    pub fn target(&self) -> &crate::pool::Target {
        &self.target
    }

    pub fn config(&self) -> &ChecksConfig {
        &self.config
    }

    /// One cycle of all checks. Placeholder until issue 4: connectivity only.
    pub async fn run_cycle(&mut self) -> crate::report::TargetReport {
        let started = std::time::Instant::now();
        let probe = crate::pool::probe(&self.target.config).await;
        crate::report::TargetReport {
            target: self.target.name().to_string(),
            up: probe.reachable,
            error: (!probe.reachable).then(|| probe.message.clone()),
            finished_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            duration_seconds: started.elapsed().as_secs_f64(),
            checks: Vec::new(),
        }
    }
}
