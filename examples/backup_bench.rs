//! Benchmark: `pgwarden backup` against raw `pg_dump` of the same database in
//! the same run, and size/time per compression method.
//!
//! ```sh
//! cargo run --release --example backup_bench [ROWS]
//! ```
//!
//! Starts a throwaway cluster, fills one database with ROWS (default
//! 1,000,000) rows of mixed types, then alternates raw pg_dump and pgwarden
//! runs with the same settings so both see the same cache state, and
//! prints the medians. pgwarden's extra work (snapshot row counts, the
//! pg_restore --list check, fsync, sha256) is all in its figure.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use pgwarden::backup::{self, BackupOptions, Compression, Format};
use pgwarden::cluster::Cluster;
use pgwarden::config::{Config, TargetConfig};

const RUNS: usize = 11;

fn main() {
    let rows: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    // RUST_LOG=pgwarden=debug shows where a backup's time goes.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let cluster = Cluster::start().expect("start PostgreSQL");
    let url = cluster.create_database().expect("create database");
    let db = url.database();
    let t = Instant::now();
    cluster
        .psql(
            &db,
            &format!(
                "CREATE TABLE items (id bigint PRIMARY KEY, name text, price numeric(10,2), tags text[], doc jsonb, at timestamptz);
                 INSERT INTO items SELECT i, 'item ' || i, i % 1000 / 7.0, ARRAY['a' || i % 10, 'b'],
                        jsonb_build_object('i', i, 'odd', i % 2 = 1), now() - i * interval '1 minute'
                   FROM generate_series(1, {rows}) i"
            ),
        )
        .expect("fill");
    cluster.psql(&db, "VACUUM ANALYZE items").expect("vacuum");
    let db_size = cluster
        .psql(
            &db,
            "SELECT pg_size_pretty(pg_database_size(current_database()))",
        )
        .unwrap();
    println!(
        "database: {rows} rows, {db_size} (filled in {:.1} s)",
        t.elapsed().as_secs_f64()
    );

    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.backup.dir = dir.path().join("backups");
    // The same programs for both sides of the comparison.
    config.backup.bin_dir = Some(cluster.bin_dir().to_path_buf());
    let target = TargetConfig::from_url("bench", url.clone());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pg_dump = cluster.bin_dir().join("pg_dump");

    println!("\n## pgwarden backup vs raw pg_dump (custom format, gzip:6), median of {RUNS}");
    let mut raw = Vec::new();
    let mut ours = Vec::new();
    for i in 0..RUNS {
        let out = dir.path().join(format!("raw{i}.dump"));
        let t = Instant::now();
        let status = Command::new(&pg_dump)
            .args(["--format=c", "--compress=6", "--no-password"])
            .arg(format!("--file={}", out.display()))
            .arg(format!("--dbname={}", url.with_database(&db).expose()))
            .status()
            .unwrap();
        assert!(status.success());
        raw.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        rt.block_on(backup::take(&config, &target, &BackupOptions::default()))
            .expect("backup");
        ours.push(t.elapsed().as_secs_f64());
    }
    let (raw, ours) = (median(raw), median(ours));
    println!("raw pg_dump:      {raw:.3} s");
    println!("pgwarden backup:  {ours:.3} s");
    println!("ratio:            {:.3}x (goal <= 1.05x)", ours / raw);

    println!("\n## compression methods (pgwarden backup, one run each)");
    println!(
        "{:<12} {:<10} {:>10} {:>12}",
        "format", "compress", "seconds", "size"
    );
    let (_, major) = rt
        .block_on(
            backup::tools::Tools::locate(None)
                .unwrap()
                .pg_dump_version(),
        )
        .unwrap();
    let mut methods = vec![
        Compression::None,
        Compression::Gzip(1),
        Compression::Gzip(6),
        Compression::Gzip(9),
    ];
    if major >= 16 {
        methods.extend([Compression::Lz4(1), Compression::Zstd(3)]);
    } else {
        println!("(lz4 and zstd need pg_dump 16+; this pg_dump is {major})");
    }
    for compress in methods {
        bench_one(&rt, &config, &target, Format::Custom, compress, 1);
    }
    bench_one(
        &rt,
        &config,
        &target,
        Format::Directory,
        Compression::Gzip(6),
        2,
    );
    bench_one(&rt, &config, &target, Format::Plain, Compression::None, 1);
}

fn bench_one(
    rt: &tokio::runtime::Runtime,
    config: &Config,
    target: &TargetConfig,
    format: Format,
    compress: Compression,
    jobs: u64,
) {
    let t = Instant::now();
    let outcome = rt
        .block_on(backup::take(
            config,
            target,
            &BackupOptions {
                format: Some(format),
                compress: Some(compress),
                jobs: Some(jobs),
                ..BackupOptions::default()
            },
        ))
        .expect("backup");
    let label = if jobs > 1 {
        format!("{format} -j{jobs}")
    } else {
        format.to_string()
    };
    println!(
        "{label:<12} {:<10} {:>10.3} {:>12}",
        compress.to_string(),
        t.elapsed().as_secs_f64(),
        mib(backup::manifest::size(Path::new(&outcome.path)).unwrap())
    );
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1_048_576.0)
}
