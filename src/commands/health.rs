//! `pgwarden health`: run the checks once and print them.
//!
//! Exit codes: 0 all ok, 1 a warning, 2 a critical or error, 3 a target
//! could not be reached.

use super::TargetArg;
use crate::cli::Context;
use crate::error::{Error, Result};
use crate::health::{self, Selection};
use crate::report::{CheckResult, Report, Status};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub target: TargetArg,
    // The names come from the checks' registry, so the help lists every one.
    #[arg(long, value_name = "NAME", help = check_help())]
    pub check: Option<String>,
    /// Also print every measurement and the offenders.
    #[arg(long)]
    pub detailed: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

fn check_help() -> String {
    format!(
        "Run only this check ({}, or custom_<name> of a [[checks.custom]] entry)",
        crate::checks::CHECK_NAMES.join(", ")
    )
}

pub async fn run(ctx: &Context, args: Args) -> Result<u8> {
    let selection = Selection {
        target: args.target.as_deref().map(str::to_string),
        check: args.check,
    };
    let report = health::run(&ctx.config, &selection).await?;
    if args.json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| Error::failed(format!("cannot render JSON: {e}")))?;
        println!("{text}");
    } else {
        print!("{}", render(&report, args.detailed));
    }
    Ok(exit_code(&report))
}

pub fn exit_code(report: &Report) -> u8 {
    if report.targets.iter().any(|t| !t.up) {
        return 3;
    }
    match report.targets.iter().map(|t| t.worst()).max() {
        None | Some(Status::Ok) => 0,
        Some(Status::Warning) => 1,
        Some(_) => 2,
    }
}

/// The text view: a header per target, one line per check.
pub fn render(report: &Report, detailed: bool) -> String {
    let mut text = format!(
        "overall: {}\n",
        serde_json::to_value(report.overall)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    );
    for target in &report.targets {
        text.push_str(&format!(
            "\ntarget {} ({:.0} ms){}\n",
            target.target,
            target.duration_seconds * 1000.0,
            target
                .error
                .as_ref()
                .map(|e| format!(": unreachable: {e}"))
                .unwrap_or_default()
        ));
        for check in &target.checks {
            text.push_str(&format!(
                "  {:<8} {:<16} {}\n",
                check.status.as_str().to_uppercase(),
                check.check,
                check.summary
            ));
            if detailed {
                text.push_str(&details(check));
            }
        }
    }
    text
}

fn details(check: &CheckResult) -> String {
    let mut text = String::new();
    for m in &check.measurements {
        let labels: Vec<String> = m
            .labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect();
        let labels = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", labels.join(","))
        };
        text.push_str(&format!(
            "           pgwarden_{}{labels} {}\n",
            m.metric, m.value
        ));
    }
    if let serde_json::Value::Object(map) = &check.details {
        for (key, value) in map {
            let empty = matches!(value, serde_json::Value::Array(a) if a.is_empty());
            if !empty {
                text.push_str(&format!("           {key}: {value}\n"));
            }
        }
    }
    text
}
