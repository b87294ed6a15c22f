//! `pgwarden config check`: validate, show the effective config, try each target.

use crate::cli::Context;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::pool::{self, Reachability};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Validate the configuration, print it (secrets redacted) and try every target.
    Check {
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(ctx: &Context, args: Args) -> Result<u8> {
    let Action::Check { json } = args.action;
    let results = check(&ctx.config).await?;
    if json {
        let text = serde_json::to_string_pretty(&results)
            .map_err(|e| Error::failed(format!("cannot render JSON: {e}")))?;
        println!("{text}");
    } else {
        print_text(&ctx.config, &results);
    }
    Ok(if results.iter().all(|r| r.reachable) {
        0
    } else {
        3
    })
}

/// Probe every target at once; each is bounded by its own connect timeout.
pub async fn check(config: &Config) -> Result<Vec<Reachability>> {
    let targets = config.require_targets()?;
    Ok(futures::future::join_all(targets.iter().map(pool::probe)).await)
}

fn print_text(config: &Config, results: &[Reachability]) {
    let source = config
        .source
        .as_ref()
        .map_or("no file (defaults and environment)".to_string(), |p| {
            p.display().to_string()
        });
    println!("# configuration: {source}");
    println!("# environment: {}", config.environment);
    println!("{}", config.to_redacted_toml());
    println!("# targets");
    for r in results {
        let mark = if r.reachable { "ok  " } else { "FAIL" };
        println!(
            "{mark} {:<16} {:<48} {} ({:.0} ms)",
            r.target,
            r.url,
            r.message,
            r.latency_seconds * 1000.0
        );
    }
}
