//! The command line: parse, load the config, set up logging, dispatch.
//!
//! Each subcommand lives in `commands/<name>.rs` with its clap arguments and
//! a `run` function that calls the library; this file only wires them up.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::commands;
use crate::config::{Config, EnvVars, Environment, LoadOptions, LogFormat};
use crate::error::{Error, Result};

#[derive(Debug, Parser)]
#[command(
    name = "pgwarden",
    version,
    about = "Keeps a PostgreSQL database healthy and safely changeable: health checks, Prometheus metrics, migrations, seed data, backups.",
    propagate_version = true
)]
pub struct Cli {
    /// Config file (TOML). Without it, DATABASE_URL and the defaults are used.
    #[arg(long, short = 'c', global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Environment: development, staging or production (beats PGWARDEN_ENV and the file).
    #[arg(long, global = true, value_name = "ENV", value_parser = parse_environment)]
    pub env: Option<Environment>,

    /// Log as JSON lines instead of text.
    #[arg(long, global = true)]
    pub log_json: bool,

    /// The Prometheus exporters' spellings: --web.*, --log.*.
    #[command(flatten)]
    pub exporter: crate::serve::exporter::ExporterFlags,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: check cycles, /metrics, /health, signals, scheduled backups.
    Serve(commands::serve::Args),
    /// Apply, revert, inspect and write migrations.
    Migrate(commands::migrate::Args),
    /// Seed data for an environment, or clear it.
    Seed(commands::seed::Args),
    /// Run the health checks once and print the result.
    Health(commands::health::Args),
    /// Take, list, verify and prune backups.
    Backup(commands::backup::Args),
    /// Restore a backup.
    Restore(commands::backup::RestoreArgs),
    /// Start a throwaway PostgreSQL and serve pgwarden against it.
    Demo(commands::demo::Args),
    /// Inspect the configuration.
    Config(commands::config::Args),
    /// Compare schemas: databases, folders of SQL, migrations.
    Schema(commands::schema::Args),
}

fn parse_environment(text: &str) -> std::result::Result<Environment, String> {
    Environment::parse(text)
}

/// What every command gets: the loaded configuration.
pub struct Context {
    pub config: Config,
    /// How `config` was loaded, so the daemon can load it again on SIGHUP.
    pub options: LoadOptions,
    /// Flags that beat the file, applied again after a reload.
    pub exporter: crate::serve::exporter::ExporterFlags,
}

/// Entry point of the binary. Never panics on bad input: every failure is a
/// message on stderr and an exit code (see the README's CLI reference).
pub fn main() -> ExitCode {
    // Test builds read FAILPOINTS (the `failpoints` feature); release builds have none.
    #[cfg(feature = "failpoints")]
    let _faults = fail::FailScenario::setup();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return report(Error::failed(format!(
                "cannot start the async runtime: {e}"
            )));
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => report(e),
    }
}

fn report(error: Error) -> ExitCode {
    eprintln!("error: {error}");
    ExitCode::from(error.exit_code())
}

async fn run(cli: Cli) -> Result<u8> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let options = LoadOptions {
        path: cli.config.clone(),
        environment: cli.env,
        env: EnvVars::from_process(&cwd)?,
    };
    let mut config = Config::load(&options)?;
    cli.exporter.apply(&mut config)?;
    init_logging(&config, cli.log_json);
    let ctx = Context {
        config,
        options,
        exporter: cli.exporter,
    };
    match cli.command {
        Command::Serve(args) => commands::serve::run(&ctx, args).await,
        Command::Migrate(args) => commands::migrate::run(&ctx, args).await,
        Command::Seed(args) => commands::seed::run(&ctx, args).await,
        Command::Health(args) => commands::health::run(&ctx, args).await,
        Command::Backup(args) => commands::backup::run(&ctx, args).await,
        Command::Restore(args) => commands::backup::restore(&ctx, args).await,
        Command::Demo(args) => commands::demo::run(&ctx, args).await,
        Command::Config(args) => commands::config::run(&ctx, args).await,
        Command::Schema(args) => commands::schema::run(&ctx, args).await,
    }
}

/// Logs go to stderr, so stdout stays clean for `--json` and `--sql` output.
fn init_logging(config: &Config, force_json: bool) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let mut filter = std::env::var("RUST_LOG").unwrap_or_else(|_| config.log.level.clone());
    if config.log.echo {
        // tokio-postgres logs every statement it prepares and runs at debug.
        filter.push_str(",tokio_postgres=debug");
    }
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour only for a person at a terminal: journald and log files store
    // escape codes raw. A non-empty NO_COLOR (no-color.org) turns it off there too.
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    let _ = if force_json || config.log.format == LogFormat::Json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// The error for a command whose issue has not landed yet.
pub fn not_implemented(what: &str) -> Error {
    Error::failed(format!("`pgwarden {what}` is not implemented yet"))
}
