//! Benchmark of a full health check cycle on a large schema.
//!
//! Starts a throwaway cluster, builds a database with 10,000 tables and
//! 10,000 indexes (each table's primary key), and prints, measured in the
//! same run:
//! - the time of a full check cycle (warm pool, best of 5) beside the time of
//!   the same catalog queries sent raw through one `psql` call (best of 5);
//! - the number of series Prometheus stores per scrape: `pgwarden serve`
//!   (the release binary) is pointed at each database and its `/metrics` is
//!   counted as Prometheus counts `scrape_samples_scraped`, beside an empty
//!   database's and a database of exactly `top_n` tables. The checks' own
//!   measurements (the Report, before the daemon adds its pool, cycle and
//!   process series) are printed beside it.
//!
//! Goals (issue 4): cycle ≤ 1.5× the raw queries; series ≤ 1.1× the empty
//! database's.
//!
//! ```sh
//! cargo build --release --bins --examples
//! target/release/examples/health_bench [TABLES]   # default 10000
//! ```
//!
//! `HEALTH_BENCH_DUMP=DIR` writes each counted scrape to `DIR/<database>`,
//! to see which series differ.

mod common;

use std::time::{Duration, Instant};

use pgwarden::checks::{Checker, ChecksConfig, registry};
use pgwarden::cluster::Cluster;
use pgwarden::config::TargetConfig;
use pgwarden::dburl::DbUrl;
use pgwarden::pool::Target;

const RUNS: usize = 5;
const BENCH: &str = "health_bench";

fn main() {
    let tables: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let cluster = Cluster::start().unwrap_or_else(|e| panic!("cannot start PostgreSQL: {e}"));
    let empty = cluster.create_database().expect("create database");
    let few = cluster.create_database().expect("create database");
    let big = cluster.create_database().expect("create database");
    let config = ChecksConfig::default();
    build_schema(&cluster, &few.database(), config.top_n());
    let started = Instant::now();
    build_schema(&cluster, &big.database(), tables);
    println!(
        "built {tables} tables + {tables} indexes in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let (empty_series, _) = runtime.block_on(cycle(&empty, &config));
    let (few_series, _) = runtime.block_on(cycle(&few, &config));
    let (big_series, cycle_time) = runtime.block_on(cycle(&big, &config));
    let raw_time = raw_queries(&cluster, &big.database(), &config);

    println!("{:<44} {:>12}", "", "time");
    println!(
        "{:<44} {:>9.1} ms",
        "full check cycle (10 checks, best of 5)",
        ms(cycle_time)
    );
    println!(
        "{:<44} {:>9.1} ms",
        "same catalog queries raw via psql (best of 5)",
        ms(raw_time)
    );
    println!(
        "{:<44} {:>11.2}x   (goal <= 1.5x)",
        "cycle / raw",
        cycle_time.as_secs_f64() / raw_time.as_secs_f64()
    );
    let work = tempfile::tempdir().expect("temp dir");
    let scraped = [&empty, &few, &big].map(|url| scrape_samples(work.path(), url));
    println!(
        "{:<44} {:>8} {:>8} {:>8}",
        "series", "empty", "top_n", "big"
    );
    print_series(
        "per scrape of /metrics (Prometheus stores)",
        scraped,
        tables,
    );
    print_series(
        "checks' measurements alone",
        [empty_series, few_series, big_series],
        tables,
    );
    println!(
        "(empty: no tables; top_n: {} tables; big: {tables} tables)",
        config.top_n()
    );
}

fn print_series(what: &str, [empty, few, big]: [usize; 3], tables: usize) {
    println!(
        "{what:<44} {empty:>8} {few:>8} {big:>8}   {tables} tables / empty = {:.3}x (goal <= 1.1x), / top_n = {:.3}x",
        big as f64 / empty as f64,
        big as f64 / few as f64
    );
}

/// Samples in one scrape of a daemon watching `url`, in steady state: after
/// its second cycle, once the series that need a previous cycle (growth,
/// the cache hit ratio over the interval) exist too.
fn scrape_samples(work: &std::path::Path, url: &DbUrl) -> usize {
    let serve = common::start_serve(BENCH, work, url.expose(), "[checks]\ninterval = \"1s\"");
    let scrape = || {
        let (status, body) = common::http_get(&serve.addr, "/metrics")
            .unwrap_or_else(|| common::fail(BENCH, "pgwarden /metrics did not answer"));
        assert_eq!(status, 200, "{body}");
        body
    };
    let cycle_time = |body: &str| {
        body.lines()
            .find(|l| l.starts_with("pgwarden_last_cycle_timestamp_seconds"))
            .map(str::to_string)
    };
    let first = cycle_time(&scrape());
    common::wait_until(BENCH, || cycle_time(&scrape()) != first, "a second cycle");
    let body = scrape();
    if let Some(dir) = std::env::var_os("HEALTH_BENCH_DUMP") {
        std::fs::write(std::path::Path::new(&dir).join(url.database()), &body).unwrap();
    }
    common::count_samples(&body)
}
fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Tables in batches: one transaction locking 10,000 new tables would run out
/// of lock table slots.
fn build_schema(cluster: &Cluster, database: &str, tables: usize) {
    let batch = 500;
    for start in (0..tables).step_by(batch) {
        let end = (start + batch).min(tables);
        let sql = format!(
            "DO $$ BEGIN FOR i IN {start}..{} LOOP \
             EXECUTE format('CREATE TABLE t_%s (id int PRIMARY KEY, v int)', i); \
             END LOOP; END $$",
            end - 1
        );
        cluster.psql(database, &sql).expect("create tables");
    }
    cluster.psql(database, "ANALYZE").expect("analyze");
}

/// Series count and the best time of a full cycle on a warm checker.
async fn cycle(url: &DbUrl, config: &ChecksConfig) -> (usize, Duration) {
    let target = TargetConfig::from_url("bench", url.clone());
    let mut checker = Checker::new(Target::new(&target).expect("pool"), config.clone());
    let mut best = Duration::MAX;
    let mut series = 0;
    let mut slowest = String::new();
    for _ in 0..=RUNS {
        let started = Instant::now();
        let report = checker.run_cycle().await;
        let took = started.elapsed();
        assert!(report.up, "{report:?}");
        for check in &report.checks {
            assert_ne!(
                check.status,
                pgwarden::report::Status::Error,
                "{}: {}",
                check.check,
                check.summary
            );
        }
        series = report.checks.iter().map(|c| c.measurements.len()).sum();
        if took < best {
            slowest = report
                .checks
                .iter()
                .map(|c| format!("{} {:.1} ms", c.check, c.duration_seconds * 1000.0))
                .collect::<Vec<_>>()
                .join(", ");
        }
        best = best.min(took);
    }
    println!("  checks of the best cycle: {slowest}");
    (series, best)
}

/// Every check's catalog queries in one psql call, best of RUNS.
fn raw_queries(cluster: &Cluster, database: &str, config: &ChecksConfig) -> Duration {
    let sql: Vec<String> = registry()
        .iter()
        .flat_map(|c| c.queries(config))
        .filter(|q| !q.contains("pg_stat_statements"))
        .collect();
    let script = sql.join(";\n");
    let mut best = Duration::MAX;
    for _ in 0..RUNS {
        let started = Instant::now();
        cluster.psql(database, &script).expect("raw queries");
        best = best.min(started.elapsed());
    }
    best
}
