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
pub struct Args {
    /// Run a small workload that provokes warnings: a blocked session and its
    /// blocker idle in a transaction, a long query, dead tuples, a missing standby.
    #[arg(long)]
    pub scenario: bool,
    /// Also start the `prometheus` found on PATH with pgwarden's alert rules, scraping the demo.
    #[arg(long)]
    pub prometheus: bool,
}

pub async fn run(ctx: &Context, args: Args) -> Result<u8> {
    if args.prometheus {
        // Before the cluster starts: a missing binary is a usage error.
        prometheus_binary()?;
    }
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
    if args.scenario {
        super::scenario::configure(&mut config);
    }
    // Lives as long as the demo: SIGUSR1 may read the migrations again.
    let _built_in = use_built_in_schema_if_needed(&mut config)?;
    prepare(&config).await;
    let scenario = match args.scenario {
        true => Some(super::scenario::start(&cluster.url_for(DATABASE)).await?),
        false => None,
    };
    let loader_config = config.clone();
    let daemon = Daemon::bind(config, Box::new(move || Ok(loader_config.clone()))).await?;
    let prometheus = match args.prometheus {
        true => Some(DemoPrometheus::start(&daemon).await?),
        false => None,
    };
    print_urls(&daemon, &cluster, prometheus.as_ref());
    let outcome = daemon.run().await;
    drop((scenario, prometheus));
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

fn print_urls(daemon: &Daemon, cluster: &Cluster, prometheus: Option<&DemoPrometheus>) {
    let base = daemon.base_url();
    println!("  status:   {base}/");
    println!("pgwarden demo is running (Ctrl-C stops it and removes the database)");
    if let Some(prometheus) = prometheus {
        println!("  prometheus: {}/alerts", prometheus.url);
    }
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

/// A real Prometheus, with pgwarden's alert rules, scraping the demo every
/// 5 s. Killed when dropped; its data lives in a temp dir removed with it.
struct DemoPrometheus {
    _child: tokio::process::Child,
    _dir: tempfile::TempDir,
    url: String,
}

const ALERT_RULES: &str = include_str!("../../config/prometheus/alerts.yml");

impl DemoPrometheus {
    async fn start(daemon: &Daemon) -> Result<Self> {
        let binary = prometheus_binary()?;
        if daemon.base_url().starts_with("https") {
            return Err(Error::usage(
                "demo --prometheus scrapes plain HTTP; leave out the http.tls_* settings for the demo",
            ));
        }
        let dir = tempfile::tempdir()
            .map_err(|e| Error::failed(format!("cannot create a temp dir for Prometheus: {e}")))?;
        let scrape = daemon.base_url().trim_start_matches("http://").to_string();
        let config = format!(
            "global:\n  scrape_interval: 5s\n  evaluation_interval: 5s\nrule_files: [alerts.yml]\n\
             scrape_configs:\n  - job_name: pgwarden\n    static_configs:\n      - targets: [\"{scrape}\"]\n"
        );
        let write = |name: &str, text: &str| {
            std::fs::write(dir.path().join(name), text)
                .map_err(|e| Error::failed(format!("cannot write Prometheus' {name}: {e}")))
        };
        write("prometheus.yml", &config)?;
        write("alerts.yml", ALERT_RULES)?;
        let listen = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| Error::failed(format!("no free port for Prometheus: {e}")))?;
        let log = std::fs::File::create(dir.path().join("prometheus.log"))
            .map_err(|e| Error::failed(format!("cannot create Prometheus' log: {e}")))?;
        let child = tokio::process::Command::new(&binary)
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={listen}"))
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().map_err(|e| Error::failed(e.to_string()))?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Error::failed(format!("cannot start {}: {e}", binary.display())))?;
        tracing::info!(
            "demo: Prometheus started (log in {})",
            dir.path().join("prometheus.log").display()
        );
        Ok(Self {
            _child: child,
            _dir: dir,
            url: format!("http://{listen}"),
        })
    }
}

fn prometheus_binary() -> Result<std::path::PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join("prometheus"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::usage(
                "demo --prometheus: no `prometheus` on PATH; install it (Debian: apt-get install prometheus) or leave out --prometheus",
            )
        })
}
