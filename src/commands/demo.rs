//! `pgwarden demo`: a throwaway PostgreSQL (the test harness's
//! [`crate::cluster`]), migrated and seeded when those exist, and the daemon
//! on loopback. Ctrl-C stops the daemon, then the cluster is stopped and its
//! directory removed (its reaper does that even if we are killed).

use std::sync::Arc;

use crate::cli::Context;
use crate::cluster::Cluster;
use crate::config::{Config, TargetConfig};
use crate::error::{Error, Result};
use crate::serve::Daemon;

const DATABASE: &str = "pgwarden_demo";

#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn run(ctx: &Context, _args: Args) -> Result<u8> {
    if !ctx.config.targets.is_empty() {
        tracing::warn!(
            "demo ignores the configured targets and starts its own database; use `pgwarden serve` for yours"
        );
    }
    tracing::info!("starting a throwaway PostgreSQL cluster");
    let cluster = tokio::task::spawn_blocking(start_cluster)
        .await
        .map_err(|e| Error::failed(format!("cluster start was interrupted: {e}")))??;
    let cluster = Arc::new(cluster);
    let mut config = demo_config(&ctx.config, &cluster);
    // Lives as long as the demo: SIGUSR1 may read the migrations again.
    let _built_in = use_built_in_schema_if_needed(&mut config)?;
    prepare(&config).await;
    let loader_config = config.clone();
    let daemon = Daemon::bind(config, Box::new(move || Ok(loader_config.clone()))).await?;
    print_urls(&daemon, &cluster);
    let outcome = daemon.run().await;
    println!("stopping: removing the demo cluster");
    // Dropping the last handle stops the server and deletes its directory.
    let _ = tokio::task::spawn_blocking(move || drop(cluster)).await;
    outcome.map(|()| 0)
}

fn start_cluster() -> Result<Cluster> {
    let cluster = Cluster::start()?;
    cluster.psql("postgres", &format!("CREATE DATABASE {DATABASE}"))?;
    Ok(cluster)
}

/// The user's settings (log, http, checks, migrations dir…) with one target:
/// the throwaway database.
fn demo_config(base: &Config, cluster: &Cluster) -> Config {
    let mut target = TargetConfig::from_url("demo", cluster.url_for(DATABASE));
    target.backup = false;
    target.connect_timeout = crate::config::Duration::secs(2);
    Config {
        targets: vec![target],
        ..base.clone()
    }
}

/// Without a migrations folder (an installed binary run anywhere), the demo
/// uses the education schema built into the binary, from a temp dir.
fn use_built_in_schema_if_needed(config: &mut Config) -> Result<Option<tempfile::TempDir>> {
    if config.migrations.dir.is_dir() {
        return Ok(None);
    }
    let dir = tempfile::tempdir()
        .map_err(|e| Error::failed(format!("cannot create a temp dir for the schema: {e}")))?;
    crate::migrate::embedded::write_to(dir.path())?;
    tracing::info!(
        "demo: no folder {}; using the education schema built into pgwarden",
        config.migrations.dir.display()
    );
    config.migrations.dir = dir.path().to_path_buf();
    Ok(Some(dir))
}

/// Migrate and seed the demo database; whatever is not available yet is
/// logged and skipped, because the demo is still worth running without it.
async fn prepare(config: &Config) {
    let target = &config.targets[0];
    match crate::migrate::up(config, target, &Default::default()).await {
        Ok(report) => tracing::info!(
            applied = report.applied.len(),
            version = ?report.current_version,
            "demo: migrations applied"
        ),
        Err(e) => tracing::warn!("demo: migrations not applied: {e}"),
    }
    match crate::seed::run(config, target, &Default::default()).await {
        Ok(report) => tracing::info!(tables = report.inserted.len(), "demo: seed data loaded"),
        Err(e) => tracing::warn!("demo: seed data not loaded: {e}"),
    }
}

fn print_urls(daemon: &Daemon, cluster: &Cluster) {
    let base = daemon.base_url();
    println!("pgwarden demo is running (Ctrl-C stops it and removes the database)");
    println!("  metrics:  {base}/metrics");
    println!("  health:   {base}/health");
    println!("  ready:    {base}/ready");
    println!(
        "  database: {} (data in {})",
        cluster.url_for(DATABASE).redacted(),
        cluster.data_dir().display()
    );
    println!(
        "  psql:     psql -h {} -p {} -U postgres {DATABASE}",
        cluster.socket_dir().display(),
        cluster.port()
    );
}
