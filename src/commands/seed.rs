//! `pgwarden seed run | clear | stats`: thin shells over [`crate::seed`].

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::TargetArg;
use crate::cli::Context;
use crate::config::{EnvVars, Environment};
use crate::error::{Error, Result};
use crate::seed::{self, AdminCredentials, Progress, SeedOptions, SeedReport};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Load the environment's data set (deterministic, idempotent, one transaction).
    Run {
        /// Delete earlier seed data first (development only).
        #[arg(long)]
        clear: bool,
        /// Load N times the development volumes with COPY, for load tests (development only).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
        scale: Option<u32>,
        #[command(flatten)]
        target: TargetArg,
    },
    /// Delete the seeded rows (development only; refused in staging and production).
    Clear {
        #[command(flatten)]
        target: TargetArg,
    },
    /// Rows per table, and how many came from seeding.
    Stats {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: TargetArg,
    },
}

pub async fn run(ctx: &Context, args: Args) -> Result<u8> {
    match args.action {
        Action::Run {
            clear,
            scale,
            target,
        } => run_seed(ctx, clear, scale, &target).await,
        Action::Clear { target } => {
            let target = target.one(&ctx.config)?;
            let deleted = seed::clear(&ctx.config, target, None).await?;
            let total: u64 = deleted.iter().map(|(_, n)| n).sum();
            println!("cleared seed data from target `{}`:", target.name);
            print_counts(&deleted, "deleted", total);
            Ok(0)
        }
        Action::Stats { json, target } => {
            let target = target.one(&ctx.config)?;
            let tables = seed::stats(target).await?;
            if json {
                let doc = serde_json::json!({ "target": target.name.as_str(), "tables": tables });
                let text = serde_json::to_string_pretty(&doc)
                    .map_err(|e| Error::failed(format!("cannot render JSON: {e}")))?;
                println!("{text}");
            } else {
                println!("{:<22} {:>12} {:>12}", "table", "rows", "seeded");
                for t in &tables {
                    println!("{:<22} {:>12} {:>12}", t.table, t.rows, t.seeded);
                }
            }
            Ok(0)
        }
    }
}

async fn run_seed(
    ctx: &Context,
    clear: bool,
    scale: Option<u32>,
    target: &TargetArg,
) -> Result<u8> {
    let target = target.one(&ctx.config)?;
    let environment = ctx.config.environment;
    let bar = std::io::stderr().is_terminal().then(ProgressBar::new);
    let options = SeedOptions {
        environment: Some(environment),
        clear,
        scale,
        admin: (environment == Environment::Production)
            .then(admin_from_env)
            .transpose()?,
        progress: bar
            .clone()
            .map(|b| Arc::new(move |p: &Progress| b.draw(p)) as _),
    };
    let result = seed::run(&ctx.config, target, &options).await;
    if let Some(bar) = bar {
        bar.finish();
    }
    print_report(&result?, environment, target.name.as_str(), scale.is_some());
    Ok(0)
}

/// PGWARDEN_ADMIN_EMAIL / PGWARDEN_ADMIN_PASSWORD, from the process or `.env`.
fn admin_from_env() -> Result<AdminCredentials> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| ".".into());
    let env = EnvVars::from_process(&cwd)?;
    Ok(AdminCredentials {
        email: env.get("PGWARDEN_ADMIN_EMAIL").map(str::to_string),
        password: env.get("PGWARDEN_ADMIN_PASSWORD").map(str::to_string),
    })
}

fn print_report(report: &SeedReport, environment: Environment, target: &str, scaled: bool) {
    if !report.cleared.is_empty() {
        let total = report.cleared.iter().map(|(_, n)| n).sum();
        println!("cleared earlier seed data:");
        print_counts(&report.cleared, "deleted", total);
    }
    let total = report.total();
    if total == 0 {
        println!("{environment} seed data is already in target `{target}`: nothing inserted");
        return;
    }
    println!("seeded {environment} data into target `{target}`:");
    print_counts(&report.inserted, "inserted", total);
    if environment == Environment::Production {
        println!("the admin's password is stored as an argon2id hash (not shown)");
    }
    if scaled || report.seconds > 0.0 {
        let rebuild = if report.rebuild_seconds > 0.0 {
            format!(
                "; writing rows {:.2} s, keys and indexes {:.2} s",
                report.copy_seconds, report.rebuild_seconds
            )
        } else {
            String::new()
        };
        println!(
            "{total} rows in {:.2} s ({:.0} rows/s{rebuild})",
            report.seconds,
            total as f64 / report.seconds.max(1e-9)
        );
    }
}

fn print_counts(counts: &[(String, u64)], what: &str, total: u64) {
    for (table, n) in counts {
        println!("  {table:<22} {n:>12}");
    }
    println!("  {:<22} {total:>12} rows {what}", "total");
}

/// A one-line progress bar on stderr, redrawn at most ten times a second.
#[derive(Clone)]
struct ProgressBar {
    last: Arc<Mutex<Option<Instant>>>,
}

impl ProgressBar {
    fn new() -> Self {
        Self {
            last: Arc::new(Mutex::new(None)),
        }
    }

    fn draw(&self, p: &Progress) {
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        if last.is_some_and(|t| t.elapsed() < Duration::from_millis(100)) {
            return;
        }
        *last = Some(Instant::now());
        let ratio = p.units_done as f64 / p.units_total.max(1) as f64;
        let filled = (ratio * 30.0) as usize;
        let rate = p.rows as f64 / p.elapsed.as_secs_f64().max(1e-9);
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r[{:<30}] {:>3.0}% {:<20} {:>11} rows {:>9.0} rows/s",
            "#".repeat(filled.min(30)),
            ratio * 100.0,
            p.table,
            p.rows,
            rate
        );
        let _ = err.flush();
    }

    fn finish(&self) {
        if self.last.lock().is_ok_and(|l| l.is_some()) {
            eprintln!();
        }
    }
}
