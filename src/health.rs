//! One-shot health checks: what `pgwarden health` and library users call.
//!
//! The daemon keeps a [`Checker`] per target and calls `run_cycle` every
//! interval; a one-shot run builds them, runs a single cycle on every target
//! at once and returns the [`Report`]. A single cycle has no previous one,
//! so interval figures (growth, new deadlocks) are absent, except the cache
//! hit ratio, which `Checker::run_once` samples over a short window.

use crate::checks::{Checker, check_name};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::pool::Target;
use crate::report::Report;

/// Run every check once against every configured target.
pub async fn check_database_health(config: &Config) -> Result<Report> {
    run(config, &Selection::default()).await
}

/// Which targets and checks to run.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// One target by name; all when `None`.
    pub target: Option<String>,
    /// One check by name; all when `None`.
    pub check: Option<String>,
}

pub async fn run(config: &Config, selection: &Selection) -> Result<Report> {
    let targets = match &selection.target {
        Some(name) => vec![config.target(Some(name))?.clone()],
        None => config.require_targets()?.to_vec(),
    };
    let check = match &selection.check {
        Some(name) => Some(check_name(name, &config.checks).map_err(Error::usage)?),
        None => None,
    };
    let mut checkers = targets
        .iter()
        .map(|t| Ok(Checker::new(Target::new(t)?, config.checks.clone())))
        .collect::<Result<Vec<_>>>()?;
    let reports =
        futures::future::join_all(checkers.iter_mut().map(|c| c.run_once(check.as_deref()))).await;
    Ok(Report::new(config.environment.as_str(), reports))
}
