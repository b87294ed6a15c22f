//! What the health-check tests share: a checker on one target, and reading
//! one check's result and measurements. Each health test binary includes it
//! with `mod health_support;`.
#![allow(dead_code)]

use pgwarden::checks::Checker;
use pgwarden::config::Config;
use pgwarden::dburl::DbUrl;
use pgwarden::pool::Target;
use pgwarden::report::{CheckResult, TargetReport};

/// A config with one target `db` at `url`: `extra` goes before it (check
/// thresholds), `target_extra` into its `[[targets]]` table.
pub fn config(url: &DbUrl, extra: &str, target_extra: &str) -> Config {
    let text = format!(
        "{extra}\n[[targets]]\nname = \"db\"\nurl = \"{}\"\n{target_extra}\n",
        url.expose()
    );
    Config::from_toml(&text, std::path::Path::new("test.toml")).unwrap_or_else(|e| panic!("{e}"))
}

pub fn checker_for(config: Config) -> Checker {
    Checker::new(Target::new(&config.targets[0]).unwrap(), config.checks)
}

pub fn check<'r>(report: &'r TargetReport, name: &str) -> &'r CheckResult {
    report
        .checks
        .iter()
        .find(|c| c.check == name)
        .unwrap_or_else(|| panic!("no check {name} in {report:#?}"))
}

pub fn metric(result: &CheckResult, name: &str) -> f64 {
    result
        .measurements
        .iter()
        .find(|m| m.metric == name)
        .unwrap_or_else(|| panic!("no metric {name} in {result:#?}"))
        .value
}

/// Run the check `name` alone and return its result.
pub async fn one(checker: &mut Checker, name: &str) -> CheckResult {
    check(&checker.run_selected(Some(name)).await, name).clone()
}
