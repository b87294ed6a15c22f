//! `pgwarden migrate`: a thin shell over [`crate::migrate`].

use super::TargetArg;
use crate::cli::Context;
use crate::config::TargetConfig;
use crate::error::{Error, Result};
use crate::migrate::{self, DownOptions, MigrateReport, MigrationStatus, UpOptions, lint};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub target: TargetArg,

    #[command(subcommand)]
    pub action: Action,
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Create the migrations folder and the history table.
    Init,
    /// Write a new up/down pair, versioned by the current UTC time.
    Create {
        /// What the migration does, e.g. "add users table".
        message: String,
    },
    /// Apply pending migrations (all, or up to --revision).
    Up {
        /// Stop after this version.
        #[arg(long, value_name = "VERSION")]
        revision: Option<i64>,
        /// Print the SQL instead of running it (no database needed).
        #[arg(long)]
        sql: bool,
        /// With --sql: the version the database is at (default: nothing applied).
        #[arg(long, value_name = "VERSION", requires = "sql")]
        from: Option<i64>,
    },
    /// Revert the latest migration, or all above --revision (0: all).
    Down {
        /// Revert every migration above this version.
        #[arg(long, value_name = "VERSION")]
        revision: Option<i64>,
        /// Print the SQL instead of running it (no database needed).
        #[arg(long)]
        sql: bool,
        /// With --sql: the version the database is at (default: the latest file).
        #[arg(long, value_name = "VERSION", requires = "sql")]
        from: Option<i64>,
    },
    /// Current version, applied and pending migrations, drift. Exit 1 unless clean.
    Status {
        /// Print the status as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check migrations for statements that are unsafe in production. Exit 1 when an error remains.
    Lint(LintArgs),
    /// Apply pending migrations to a scratch copy of the target's schema and report each statement's locks, rewrites and duration.
    Trace {
        /// Output: text or json.
        #[arg(long, value_enum, default_value = "text")]
        format: lint::report::Format,
    },
    /// Record migrations up to VERSION as applied without running them.
    Stamp {
        /// The version to stamp.
        #[arg(value_name = "VERSION")]
        revision: i64,
    },
}

#[derive(Debug, clap::Args)]
pub struct LintArgs {
    /// Files to lint (default: the target's pending migrations; without a target, every migration).
    #[arg(value_name = "FILE")]
    pub files: Vec<std::path::PathBuf>,
    /// Every migration file, applied or not.
    #[arg(long)]
    pub all: bool,
    /// Don't ask the target for table sizes: a table the files don't create is presumed large.
    #[arg(long)]
    pub offline: bool,
    /// Output: text (for people), json, or github (workflow annotations).
    #[arg(long, value_enum, default_value = "text")]
    pub format: lint::report::Format,
    /// Don't report this rule (repeatable).
    #[arg(long, value_name = "RULE")]
    pub allow: Vec<String>,
    /// Lowest severity that makes the exit code 1.
    #[arg(long, value_enum, default_value = "error")]
    pub fail_on: FailOn,
    /// List the rules (id, severity, what happens, the safe way) and exit.
    #[arg(long)]
    pub rules: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    Error,
    Warning,
    Info,
}

pub async fn run(ctx: &Context, args: Args) -> Result<u8> {
    let config = &ctx.config;
    match args.action {
        Action::Lint(lint_args) => run_lint(ctx, &args.target, lint_args).await,
        Action::Trace { format } => {
            let target = args.target.migrating(&ctx.config)?;
            let traced = migrate::trace::trace(config, target).await?;
            if format == lint::report::Format::Json {
                let text =
                    serde_json::to_string_pretty(&serde_json::json!({ "statements": traced }))
                        .map_err(|e| Error::failed(format!("cannot render JSON: {e}")))?;
                println!("{text}");
            } else {
                print!("{}", migrate::trace::render_text(&traced));
            }
            Ok(u8::from(traced.iter().any(|t| t.error.is_some())))
        }
        Action::Create { message } => {
            let (up, down) = migrate::create(config, &message)?;
            println!("created {}\ncreated {}", up.display(), down.display());
            Ok(0)
        }
        Action::Up {
            sql: true,
            from,
            revision,
        } => {
            print!("{}", migrate::render_up(config, from, revision)?);
            Ok(0)
        }
        Action::Down {
            sql: true,
            from,
            revision,
        } => {
            print!("{}", migrate::render_down(config, from, revision)?);
            Ok(0)
        }
        Action::Init => {
            let target = args.target.migrating(&ctx.config)?;
            let dir = migrate::init(config, target).await?;
            println!(
                "migrations folder {} ready; history table {} ready on target `{}`",
                dir.display(),
                migrate::plan::HISTORY_TABLE,
                target.name
            );
            Ok(0)
        }
        Action::Up { revision, .. } => {
            let target = args.target.migrating(&ctx.config)?;
            let report = migrate::up(config, target, &UpOptions { revision }).await?;
            print_report(target, &report);
            Ok(0)
        }
        Action::Down { revision, .. } => {
            let target = args.target.migrating(&ctx.config)?;
            let report = migrate::down(config, target, &DownOptions { revision }).await?;
            print_report(target, &report);
            Ok(0)
        }
        Action::Stamp { revision } => {
            let target = args.target.migrating(&ctx.config)?;
            let report = migrate::stamp(config, target, revision).await?;
            print_report(target, &report);
            Ok(0)
        }
        Action::Status { json } => {
            let target = args.target.migrating(&ctx.config)?;
            let status = migrate::status(config, target).await?;
            if json {
                let text = serde_json::to_string_pretty(&status)
                    .map_err(|e| Error::failed(format!("cannot render JSON: {e}")))?;
                println!("{text}");
            } else {
                print_status(target, &status);
            }
            Ok(if status.is_clean() { 0 } else { 1 })
        }
    }
}

async fn run_lint(ctx: &Context, target: &TargetArg, args: LintArgs) -> Result<u8> {
    if args.rules {
        for r in lint::RULES {
            println!(
                "{:<45} {:<8} {}\n{:<54} safe way: {}",
                r.id,
                r.severity.as_str(),
                r.why,
                "",
                r.fix
            );
        }
        return Ok(0);
    }
    let target = if args.offline || (target.name.is_none() && ctx.config.targets.is_empty()) {
        None
    } else {
        Some(target.migrating(&ctx.config)?)
    };
    let (findings, files) =
        migrate::lint(&ctx.config, target, &args.files, args.all, &args.allow).await?;
    print!("{}", lint::report::render(&findings, files, args.format));
    let fail_on = match args.fail_on {
        FailOn::Error => lint::Severity::Error,
        FailOn::Warning => lint::Severity::Warning,
        FailOn::Info => lint::Severity::Info,
    };
    Ok(u8::from(findings.iter().any(|f| f.severity >= fail_on)))
}

fn print_report(target: &TargetConfig, report: &MigrateReport) {
    for m in &report.applied {
        println!(
            "applied  V{}__{} ({:.3} s)",
            m.version, m.name, m.duration_seconds
        );
    }
    for m in &report.reverted {
        println!(
            "reverted V{}__{} ({:.3} s)",
            m.version, m.name, m.duration_seconds
        );
    }
    for v in &report.stamped {
        println!("stamped  V{v} (recorded, not run)");
    }
    if report.applied.is_empty() && report.reverted.is_empty() && report.stamped.is_empty() {
        println!("nothing to do");
    }
    println!(
        "target `{}`: at version {}, {} pending",
        target.name,
        report
            .current_version
            .map_or("none".to_string(), |v| v.to_string()),
        report.pending
    );
}

fn print_status(target: &TargetConfig, status: &MigrationStatus) {
    println!(
        "target `{}`: current version {}",
        target.name,
        status
            .current_version
            .map_or("none".to_string(), |v| v.to_string())
    );
    println!("applied ({}):", status.applied.len());
    for row in &status.applied {
        println!(
            "  V{}__{}  applied {}",
            row.version, row.name, row.applied_on
        );
    }
    println!("pending ({}):", status.pending.len());
    for file in &status.pending_files {
        println!("  {}", file.display());
    }
    if !status.drift.is_empty() {
        println!("drift ({}):", status.drift.len());
        for d in &status.drift {
            println!("  {}", d.message);
        }
    }
    if !status.incomplete.is_empty() {
        println!("incomplete ({}):", status.incomplete.len());
        for i in &status.incomplete {
            println!(
                "  V{}__{} ({}) failed {} at statement {} of {}: {}\n    cleanup: {}",
                i.version,
                i.name,
                i.direction,
                i.failed_at,
                i.failed_statement,
                i.statements,
                i.error,
                i.advice
            );
        }
    }
}
