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
