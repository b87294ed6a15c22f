//! A lint run over a migration set, shared by `migrate lint`, the
//! `migrate up` gate and the daemon's SIGUSR1.

use tokio_postgres::Client;

use super::report::{self, Format};
use super::{
    Finding, Input, LintConfig, Severity, analyze, resolve, rule, sizes, tables, unknown_rule,
};
use crate::error::{Error, Result};
use crate::migrate::files::Script;

/// Lint `scripts` as one set, in order; with a client, weighed against the
/// target's table sizes, else the static verdict.
pub async fn lint_scripts(
    scripts: &[&Script],
    client: Option<&Client>,
    config: &LintConfig,
    allow: &[String],
) -> Result<Vec<Finding>> {
    let inputs: Vec<Input> = scripts.iter().map(|s| Input::from(*s)).collect();
    let raw = analyze(&inputs);
    let sizes = match client {
        Some(client) => Some(sizes::lookup(client, &tables(&raw)).await?),
        None => None,
    };
    Ok(resolve(raw, sizes.as_ref(), config, allow))
}

/// `--allow` names only rules that exist.
pub fn check_allow(allow: &[String]) -> Result<()> {
    match allow.iter().find(|id| rule(id).is_none()) {
        Some(id) => Err(Error::usage(format!("--allow: {}", unknown_rule(id)))),
        None => Ok(()),
    }
}

/// Errors among the findings.
pub fn errors(findings: &[Finding]) -> Vec<Finding> {
    findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .cloned()
        .collect()
}

/// Why `migrate up` (or SIGUSR1) applies nothing: the errors, where, and the ways out.
pub fn refusal(errors: &[Finding], files: usize) -> Error {
    Error::failed(format!(
        "migrate lint found {} error(s) in the migrations about to be applied; nothing was applied.\n{}Rewrite the statements the safe way, or, if a statement is safe here, exempt it with `-- pgwarden:allow RULE because WHY` on the line before it.",
        errors.len(),
        report::render(errors, files, Format::Text)
    ))
}
