//! Benchmark: `seed run --scale N` (default 300) against `pgbench -i -s S`
//! (default 30) on the same throwaway cluster, in the same run. Goal: seeding
//! writes rows at ≥ 0.7 × pgbench's initialisation rate.
//!
//! ```sh
//! cargo run --release --example seed_bench [-- N S]
//! ```
//!
//! Both load an empty, freshly created database over TCP loopback and build
//! their keys and indexes: pgbench generates client-side, COPYs (FREEZE),
//! vacuums and adds its primary keys; pgwarden generates, COPYs (FREEZE where
//! it may) into the migrated education schema with its keys and indexes
//! deferred, then rebuilds and validates them (9 primary keys, 6 unique keys, 14 other indexes, 14
//! foreign keys). Rates are rows / wall time including connecting.

use std::process::Command;
use std::time::Instant;

use pgwarden::cluster::{Cluster, PASSWORD};
use pgwarden::config::{Config, Environment, TargetConfig};
use pgwarden::seed::{self, SeedOptions};

fn main() {
    // RUST_LOG=pgwarden=debug shows the time of every COPY and index build.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let mut args = std::env::args().skip(1);
    let scale: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(300);
    let pgbench_scale: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(30);
    let cluster = Cluster::start().expect("start PostgreSQL");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");

    // pgwarden: migrate, then seed at scale.
    let mut config = Config {
        environment: Environment::Development,
        ..Config::default()
    };
    config.migrations.dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let target = TargetConfig::from_url("bench", cluster.create_database().expect("database"));
    runtime
        .block_on(pgwarden::migrate::up(&config, &target, &Default::default()))
        .expect("migrate up");
    let options = SeedOptions {
        scale: Some(scale),
        ..Default::default()
    };
    let started = Instant::now();
    let report = runtime
        .block_on(seed::run(&config, &target, &options))
        .expect("seed run --scale");
    let seed_seconds = started.elapsed().as_secs_f64();
    let seed_rows = report.total();

    // pgbench -i on another database of the same server.
    let url = cluster.create_database().expect("database");
    let pgbench = cluster.bin_dir().join("pgbench");
    let started = Instant::now();
    let out = Command::new(&pgbench)
        .args(["-i", "-q", "-s", &pgbench_scale.to_string()])
        .args(["-h", "127.0.0.1", "-p", &cluster.port().to_string()])
        .args(["-U", &url.user(), &url.database()])
        .env("PGPASSWORD", PASSWORD)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e} (Debian: the postgresql package)",
                pgbench.display()
            )
        });
    let pgbench_seconds = started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "pgbench -i failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // pgbench_accounts, _tellers and _branches.
    let pgbench_rows = pgbench_scale * (100_000 + 10 + 1);

    let seed_rate = seed_rows as f64 / seed_seconds;
    let pgbench_rate = pgbench_rows as f64 / pgbench_seconds;
    println!(
        "seed run --scale {scale}: {seed_rows} rows in {seed_seconds:.1} s = {seed_rate:.0} rows/s"
    );
    for (table, n) in &report.inserted {
        println!("  {table:<22} {n:>10}");
    }
    println!(
        "pgbench -i -s {pgbench_scale}: {pgbench_rows} rows in {pgbench_seconds:.1} s = {pgbench_rate:.0} rows/s"
    );
    let last = String::from_utf8_lossy(&out.stderr);
    if let Some(line) = last.lines().rev().find(|l| l.starts_with("done in")) {
        println!("  ({line})");
    }
    println!(
        "ratio: {:.2} x pgbench's rate (goal >= 0.70)",
        seed_rate / pgbench_rate
    );
    // The seed is one transaction, so one backend does all the server's work:
    // its COPY phase alone bounds the rate, however cheap the rebuild became.
    let copy_rate = seed_rows as f64 / report.copy_seconds;
    println!(
        "seed phases: writing rows {:.2} s ({copy_rate:.0} rows/s = {:.2} x pgbench, the ceiling with a free rebuild), \
         keys/indexes/foreign keys {:.2} s, the rest {:.2} s",
        report.copy_seconds,
        copy_rate / pgbench_rate,
        report.rebuild_seconds,
        seed_seconds - report.copy_seconds - report.rebuild_seconds
    );
}
