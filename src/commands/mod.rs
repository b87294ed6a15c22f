//! One file per subcommand: its arguments and a thin `run` over the library.

pub mod backup;
pub mod config;
pub mod demo;
pub mod health;
pub mod migrate;
mod scenario;
pub mod schema;
pub mod seed;
pub mod serve;

use crate::config::{Config, TargetConfig, TargetName};
use crate::error::Result;

/// `--target NAME` (`-t NAME`), declared once for every command.
///
/// The default rule, the same everywhere (README, "Choosing a target"):
/// without `--target`, a command that reads (`health`, `backup list`,
/// `backup prune`) covers every target, and a command that acts on one
/// database uses the first target — `migrate` the first with
/// `migrate = true`, `backup verify --restore-test` the backup's own.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TargetArg {
    /// A target by its name in the config. Default: every target for health, backup list and prune; the backup's own for backup verify; the first with migrate = true for migrate; otherwise the first.
    #[arg(
        long = "target",
        short = 't',
        global = true,
        value_name = "NAME",
        value_parser = parse_target_name
    )]
    pub name: Option<TargetName>,
}

/// The same rule as a `[[targets]] name`, so a typo in the shape of a name
/// is a usage error before any config is read.
fn parse_target_name(text: &str) -> std::result::Result<TargetName, String> {
    TargetName::parse(text)
}

impl TargetArg {
    pub fn as_deref(&self) -> Option<&str> {
        self.name.as_ref().map(TargetName::as_str)
    }

    /// The named target, or the first.
    pub fn one<'a>(&self, config: &'a Config) -> Result<&'a TargetConfig> {
        config.target(self.as_deref())
    }

    /// The named target, or the first with `migrate = true`, or the first.
    pub fn migrating<'a>(&self, config: &'a Config) -> Result<&'a TargetConfig> {
        if self.name.is_some() {
            return self.one(config);
        }
        let targets = config.require_targets()?;
        Ok(targets.iter().find(|t| t.migrate).unwrap_or(&targets[0]))
    }

    /// The named target (which must be configured), or `None` for "every target".
    pub fn every_or_one<'a>(&self, config: &'a Config) -> Result<Option<&'a TargetConfig>> {
        match self.as_deref() {
            Some(name) => config.target(Some(name)).map(Some),
            None => Ok(None),
        }
    }
}
