//! Seed data per environment (issue 7 fills this in).

use serde::{Deserialize, Serialize};

/// `[seed]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SeedConfig {
    /// The fixed random seed that makes seeding deterministic.
    pub random_seed: u64,
}

impl Default for SeedConfig {
    fn default() -> Self {
        Self {
            random_seed: 20_240_901,
        }
    }
}

/// Options of `seed run`.
#[derive(Clone, Debug, Default)]
pub struct SeedOptions {
    /// The environment whose data set to load (the config's by default).
    pub environment: Option<crate::config::Environment>,
    /// Remove earlier seed data first (development only).
    pub clear: bool,
    /// Multiply the development volumes (development only).
    pub scale: Option<u32>,
}

/// What a seed run inserted, per table.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SeedReport {
    pub inserted: Vec<(String, u64)>,
}

/// Seed `target` for an environment. Placeholder until issue 7.
pub async fn run(
    _config: &crate::config::Config,
    _target: &crate::config::TargetConfig,
    _options: &SeedOptions,
) -> crate::Result<SeedReport> {
    Err(crate::cli::not_implemented("seed run"))
}
