//! Benchmark: pgwarden applying N generated migrations (default 200) against
//! `psql -f` of the very same SQL (`migrate up --sql`), on a throwaway cluster,
//! in the same run. Goal: pgwarden ≤ 1.3 × psql.
//!
//! ```sh
//! cargo run --release --example migrate_bench [-- N]
//! ```
//!
//! Each round uses two fresh databases (one per tool), over TCP loopback for
//! both; times include connecting (and, for psql, starting the process). The
//! rounds alternate which tool goes first; the median of 3 is printed.

use std::process::{Command, Stdio};
use std::time::Instant;

use pgwarden::cluster::{Cluster, PASSWORD};
use pgwarden::config::{Config, TargetConfig};
use pgwarden::migrate::{self, UpOptions};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let cluster = Cluster::start().expect("start PostgreSQL");
    let dir = tempfile::tempdir().expect("temp dir");
    for i in 1..=n {
        std::fs::write(
            dir.path().join(format!("V{i}__bench_{i}.sql")),
            format!(
                "CREATE TABLE bench_{i} (\n    id bigint PRIMARY KEY,\n    name text NOT NULL,\n    created_at timestamptz NOT NULL DEFAULT now()\n);\n\
                 CREATE INDEX bench_{i}_name_idx ON bench_{i} (name);\n\
                 INSERT INTO bench_{i} (id, name) SELECT g, 'n' || g FROM generate_series(1, 10) g;\n"
            ),
        )
        .expect("write migration");
    }
    let mut config = Config::default();
    config.migrations.dir = dir.path().to_path_buf();
    let script = dir.path().join("all.sql.out");
    std::fs::write(
        &script,
        migrate::render_up(&config, None, None).expect("render"),
    )
    .expect("write script");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");

    let mut pgwarden_times = Vec::new();
    let mut psql_times = Vec::new();
    for round in 0..3 {
        let run_pgwarden = |times: &mut Vec<f64>| {
            let url = cluster.create_database().expect("database");
            let target = TargetConfig::from_url("bench", url);
            let started = Instant::now();
            let report = runtime
                .block_on(migrate::up(&config, &target, &UpOptions::default()))
                .expect("pgwarden migrate up");
            times.push(started.elapsed().as_secs_f64());
            assert_eq!(report.applied.len(), n);
        };
        let run_psql = |times: &mut Vec<f64>| {
            let url = cluster.create_database().expect("database");
            let started = Instant::now();
            let out = Command::new(cluster.bin_dir().join("psql"))
                .args(["-X", "-q", "-h", "127.0.0.1", "-p"])
                .arg(cluster.port().to_string())
                .args(["-U", "postgres", "-d", &url.database(), "-f"])
                .arg(&script)
                .env("PGPASSWORD", PASSWORD)
                .stdin(Stdio::null())
                .output()
                .expect("run psql");
            times.push(started.elapsed().as_secs_f64());
            assert!(
                out.status.success(),
                "psql: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let count = cluster
                .psql(
                    &url.database(),
                    "SELECT count(*) FROM refinery_schema_history",
                )
                .expect("count");
            assert_eq!(count, n.to_string());
        };
        if round % 2 == 0 {
            run_pgwarden(&mut pgwarden_times);
            run_psql(&mut psql_times);
        } else {
            run_psql(&mut psql_times);
            run_pgwarden(&mut pgwarden_times);
        }
    }
    let pgwarden = median(&mut pgwarden_times);
    let psql = median(&mut psql_times);
    println!("{n} migrations (3 statements each), median of 3 rounds:");
    println!("  pgwarden migrate up : {:8.1} ms", pgwarden * 1000.0);
    println!("  psql -f (same SQL)  : {:8.1} ms", psql * 1000.0);
    println!(
        "  ratio               : {:8.2} × (goal ≤ 1.30)",
        pgwarden / psql
    );
}

fn median(times: &mut [f64]) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}
