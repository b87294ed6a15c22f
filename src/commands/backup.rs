//! `pgwarden backup …` and `pgwarden restore`: argument parsing, the
//! confirmation prompt, and printing. Everything else is `crate::backup`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use super::TargetArg;
use crate::backup::restore::{self, RestoreOptions};
use crate::backup::{
    self, BackupLock, BackupOptions, Compression, Format, Purpose, catalog, retention, verify,
};
use crate::cli::Context;
use crate::config::Bounded;
use crate::error::{Error, Result};
use crate::report::human_bytes;

/// `--jobs` takes what `backup.jobs` takes.
pub type Jobs = Bounded<1, 64>;

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<BackupCommand>,
    #[command(flatten)]
    pub take: TakeArgs,
}

/// `pgwarden backup` without a subcommand: take a backup now.
#[derive(Debug, clap::Args)]
pub struct TakeArgs {
    // Global: also the `--target` of `backup list`, `verify` and `prune`.
    #[command(flatten)]
    pub target: TargetArg,
    /// Write exactly here instead of an auto-named file in backup.dir; its directory must exist (see --create-dirs).
    #[arg(long, short = 'o', value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Create the missing directories of --output.
    #[arg(long, requires = "output")]
    pub create_dirs: bool,
    /// Dump format (default: backup.format).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// `none` or METHOD:LEVEL, e.g. gzip:6 (default: backup.compress).
    #[arg(long, value_name = "METHOD:LEVEL")]
    pub compress: Option<Compression>,
    /// Parallel pg_dump jobs, 1 to 64 (directory format only; default: backup.jobs).
    #[arg(long, value_name = "N")]
    pub jobs: Option<Jobs>,
}

#[derive(Debug, clap::Subcommand)]
pub enum BackupCommand {
    /// List backups with time, size, duration, database, server version and verification.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Check a backup against its manifest (sha256, size, pg_restore --list).
    Verify {
        path: PathBuf,
        /// Also restore it into a scratch database and compare row counts.
        #[arg(long)]
        restore_test: bool,
    },
    /// Delete backups the retention rules no longer keep.
    Prune {
        /// Show what would be deleted without deleting.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The backup file (or directory) to restore.
    pub path: PathBuf,
    #[command(flatten)]
    pub target: TargetArg,
    /// Restore into this database, created when missing (default: the target's).
    #[arg(long, value_name = "NAME", value_parser = parse_database_name)]
    pub database: Option<String>,
    /// Drop the backup's objects before recreating them.
    #[arg(long)]
    pub clean: bool,
    /// Allow restoring in production.
    #[arg(long)]
    pub force: bool,
    /// Do not ask for confirmation (for scripts).
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// A database name as PostgreSQL keeps it: not empty, at most 63 bytes
/// (longer names are silently cut, and the restore would then create one
/// database and drop another).
fn parse_database_name(text: &str) -> std::result::Result<String, String> {
    if text.is_empty() || text.len() > 63 {
        return Err(format!(
            "a database name has 1 to 63 bytes; `{text}` has {}",
            text.len()
        ));
    }
    Ok(text.to_string())
}

pub async fn run(ctx: &Context, args: Args) -> Result<u8> {
    let target = &args.take.target;
    match args.command {
        None => take(ctx, args.take).await,
        Some(BackupCommand::List { json }) => list(ctx, target.as_deref(), json),
        Some(BackupCommand::Verify { path, restore_test }) => {
            let target = target.every_or_one(&ctx.config)?;
            let report = verify::verify(&ctx.config, target, &path, restore_test).await?;
            println!(
                "OK {}: size and sha256 match the manifest, the archive is readable",
                path.display()
            );
            if restore_test {
                println!(
                    "restore test: {} tables restored into a scratch database, row counts match the manifest; scratch database dropped",
                    report.tables_compared
                );
            }
            Ok(0)
        }
        Some(BackupCommand::Prune { dry_run }) => prune(ctx, target.as_deref(), dry_run).await,
    }
}

async fn take(ctx: &Context, args: TakeArgs) -> Result<u8> {
    let target = args.target.one(&ctx.config)?;
    if let Some(output) = &args.output {
        output_parent_exists(output, &ctx.config.backup.dir, args.create_dirs)?;
    }
    let options = BackupOptions {
        output: args.output,
        format: args.format,
        compress: args.compress,
        jobs: args.jobs.map(Jobs::get),
        // A manual backup that finds another one running fails at once (exit 1).
        ..BackupOptions::default()
    };
    let outcome = backup::take(&ctx.config, target, &options).await?;
    let m = &outcome.manifest;
    println!("backup written: {}", outcome.path.display());
    println!(
        "  target {}, database {}, {} format ({}), {} in {:.2} s",
        m.target,
        m.database,
        m.format,
        m.compress,
        human_bytes(m.size_bytes as f64),
        m.duration_seconds
    );
    println!("  sha256 {}", m.sha256);
    let snapshot = if m.row_counts_exact {
        "in the dump's snapshot"
    } else {
        "beside the dump"
    };
    println!(
        "  {} tables, {} rows (counted {snapshot}); manifest {}",
        m.row_counts.len(),
        m.row_counts.values().sum::<i64>(),
        backup::manifest::Manifest::path_for(&outcome.path).display()
    );
    Ok(0)
}

/// pgwarden runs as root often enough that creating directories anywhere a
/// typo points is a hazard: a missing directory is refused unless asked for.
/// `backup.dir` itself is the exception: pgwarden creates it for every backup.
fn output_parent_exists(
    output: &std::path::Path,
    backup_dir: &std::path::Path,
    create_dirs: bool,
) -> Result<()> {
    let parent = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    if create_dirs || parent.is_dir() || parent == backup_dir {
        return Ok(());
    }
    Err(Error::usage(format!(
        "--output {}: directory {} does not exist; create it first, or pass --create-dirs to have pgwarden create it",
        output.display(),
        parent.display()
    )))
}

fn list(ctx: &Context, target: Option<&str>, json: bool) -> Result<u8> {
    let entries: Vec<catalog::Entry> = catalog::list(&ctx.config.backup.dir)?
        .into_iter()
        .filter(|e| target.is_none_or(|t| e.manifest.target == t))
        .collect();
    if json {
        let rows: Vec<serde_json::Value> = entries
            .iter()
            .map(|e| {
                serde_json::json!({
                    "path": e.path,
                    "present": e.present,
                    "manifest": e.manifest,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).unwrap_or_default()
        );
        return Ok(0);
    }
    if entries.is_empty() {
        println!(
            "no backups in {} (backup.dir)",
            ctx.config.backup.dir.display()
        );
        return Ok(0);
    }
    println!(
        "{:<20} {:<12} {:<16} {:<10} {:>10} {:>9} {:<8} {:<9} FILE",
        "TIME (UTC)", "TARGET", "DATABASE", "FORMAT", "SIZE", "DURATION", "SERVER", "VERIFIED"
    );
    for e in &entries {
        let m = &e.manifest;
        let verified = match (e.present, &m.verification) {
            (false, _) => "MISSING",
            (true, None) => "no",
            (true, Some(v)) if !v.ok => "FAILED",
            (true, Some(v)) if v.restore_test => "restored",
            (true, Some(_)) => "yes",
        };
        println!(
            "{:<20} {:<12} {:<16} {:<10} {:>10} {:>8.1}s {:<8} {:<9} {}",
            m.started_at.format("%Y-%m-%d %H:%M:%S"),
            m.target,
            m.database,
            m.format,
            human_bytes(m.size_bytes as f64),
            m.duration_seconds,
            m.server_version.split_whitespace().next().unwrap_or(""),
            verified,
            e.path.display()
        );
    }
    Ok(0)
}

async fn prune(ctx: &Context, target: Option<&str>, dry_run: bool) -> Result<u8> {
    let targets: Vec<String> = match target {
        Some(name) => vec![name.to_string()],
        None => {
            let mut names: Vec<String> = catalog::list(&ctx.config.backup.dir)?
                .into_iter()
                .map(|e| e.manifest.target)
                .collect();
            names.sort();
            names.dedup();
            names
        }
    };
    // A target whose lock is busy does not stop the others.
    let mut failed = Vec::new();
    for target in targets {
        if let Err(e) = prune_target(ctx, &target, dry_run).await {
            failed.push(e.to_string());
        }
    }
    if !failed.is_empty() {
        return Err(Error::failed(failed.join("\n")));
    }
    Ok(0)
}

/// Deleting takes the target's backup lock (waiting up to `backup.lock_wait`),
/// as the daemon's retention pass does; a dry run only reads.
async fn prune_target(ctx: &Context, target: &str, dry_run: bool) -> Result<()> {
    let backup = &ctx.config.backup;
    let _lock = if dry_run {
        None
    } else {
        let wait = backup.lock_wait.get();
        Some(BackupLock::acquire(&backup.dir, target, Purpose::Prune, wait).await?)
    };
    let report = retention::prune(&ctx.config, target, dry_run)?;
    let verb = if dry_run { "would delete" } else { "deleted" };
    for d in &report.deleted {
        println!("{verb}: {}", d.path.display());
    }
    for path in &report.stale_temporaries {
        println!("{verb} (left by a dead process): {}", path.display());
    }
    for d in &report.kept {
        println!("keep ({}): {}", d.reasons.join(", "), d.path.display());
    }
    println!(
        "target {target}: {} kept, {} {verb}",
        report.kept.len(),
        report.deleted.len()
    );
    Ok(())
}

pub async fn restore(ctx: &Context, args: RestoreArgs) -> Result<u8> {
    let target = args.target.one(&ctx.config)?;
    let options = RestoreOptions {
        database: args.database,
        clean: args.clean,
        force: args.force,
    };
    let prepared = restore::prepare(&ctx.config, target, &args.path, &options).await?;
    if !args.yes {
        confirm(&prepared, args.clean)?;
    }
    let report = prepared.run().await?;
    let created = if report.created { " (created)" } else { "" };
    println!(
        "restored {} into database {}{created} of target {} in {:.2} s",
        args.path.display(),
        report.database,
        target.name,
        report.duration_seconds
    );
    if report.mismatched_tables.is_empty() {
        println!(
            "row counts of all {} tables match the manifest",
            prepared.manifest.row_counts.len()
        );
    } else {
        println!(
            "warning: row counts differ from the manifest (the database held other rows before?): {}",
            report.mismatched_tables.join(", ")
        );
    }
    Ok(0)
}

/// Ask on the terminal; without one, refuse (scripts pass --yes).
fn confirm(prepared: &restore::Prepared, clean: bool) -> Result<()> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Error::usage(
            "refusing to restore without confirmation: there is no terminal to ask on; pass --yes to confirm from a script",
        ));
    }
    let clean = if clean {
        " Objects in the backup are dropped first (--clean)."
    } else {
        ""
    };
    eprint!(
        "Restore {} (database {} taken {}) into database `{}` of target `{}` ({})?{clean} Type yes to continue: ",
        prepared.path.display(),
        prepared.manifest.database,
        prepared.manifest.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
        prepared.database,
        prepared.target.name,
        prepared.target.url().redacted()
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Error::failed(format!("cannot read the answer: {e}")))?;
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "yes" | "y") {
        Ok(())
    } else {
        Err(Error::failed("restore cancelled; nothing was changed"))
    }
}
