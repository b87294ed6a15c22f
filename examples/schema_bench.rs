//! Benchmark: `schema diff` of two schemas of N tables each (default 2,000;
//! columns, indexes, foreign keys, checks) against `pg_dump --schema-only`
//! of the same databases, on a throwaway cluster, in the same run. Goal:
//! reading and diffing both is no slower than pg_dump dumping both.
//!
//! ```sh
//! cargo run --release --example schema_bench [-- N]
//! ```
//!
//! Both tools connect over the Unix socket's TCP twin (loopback); pg_dump's
//! time includes starting the process. The median of 3 rounds is printed.

use std::process::Command;
use std::time::Instant;

use pgwarden::cluster::{Cluster, PASSWORD};
use pgwarden::schema::{diff, read_url};

fn schema(n: usize, changed: bool) -> String {
    let mut sql = String::new();
    for i in 0..n {
        let parent = if i == 0 {
            String::new()
        } else {
            format!(
                ",\n    parent_id bigint REFERENCES t{} (id) ON DELETE CASCADE",
                i - 1
            )
        };
        let extra = if changed && i % 10 == 0 {
            ",\n    note text"
        } else {
            ""
        };
        sql.push_str(&format!(
            "CREATE TABLE t{i} (\n    id bigint PRIMARY KEY,\n    name text NOT NULL DEFAULT '',\n    amount numeric(12,2) CHECK (amount >= 0),\n    status text NOT NULL DEFAULT 'new',\n    created_at timestamptz NOT NULL DEFAULT now(){parent}{extra}\n);\n\
             CREATE INDEX t{i}_name_idx ON t{i} (name);\n"
        ));
        if i > 0 {
            sql.push_str(&format!(
                "CREATE INDEX t{i}_parent_idx ON t{i} (parent_id);\n"
            ));
        }
        if changed && i % 20 == 0 {
            sql.push_str(&format!(
                "CREATE INDEX t{i}_status_idx ON t{i} (status) WHERE status <> 'done';\n"
            ));
        }
    }
    sql
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2000);
    let cluster = Cluster::start().expect("start PostgreSQL");
    for (db, changed) in [("bench_a", false), ("bench_b", true)] {
        cluster
            .psql("postgres", &format!("CREATE DATABASE {db}"))
            .expect("create database");
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(file.path(), schema(n, changed)).expect("write schema");
        let out = Command::new(cluster.bin_dir().join("psql"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p"])
            .arg(cluster.port().to_string())
            .args(["-U", "postgres", "-d", db, "-f"])
            .arg(file.path())
            .env("PGPASSWORD", PASSWORD)
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (a, b) = (cluster.url_for("bench_a"), cluster.url_for("bench_b"));
    let (mut ours, mut read_one, mut dumps, mut dump_one) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut diff_only = Vec::new();
    let mut statements = 0;
    let mut objects = 0;
    for _ in 0..3 {
        let mut started = Instant::now();
        let (ma, mb) = runtime.block_on(async {
            let one = Instant::now();
            read_url(&a).await.expect("read a");
            read_one.push(one.elapsed().as_secs_f64());
            let both = Instant::now();
            // As `schema diff` does: both sides read side by side.
            let pair = futures::try_join!(read_url(&a), read_url(&b)).expect("read both");
            started = both;
            pair
        });
        let diffing = Instant::now();
        let d = diff::diff(&ma, &mb);
        diff_only.push(diffing.elapsed().as_secs_f64());
        ours.push(started.elapsed().as_secs_f64());
        statements = d.statements.len();
        objects = ma.objects.len();

        let started = Instant::now();
        for db in ["bench_a", "bench_b"] {
            let one = Instant::now();
            let out = Command::new(cluster.bin_dir().join("pg_dump"))
                .args(["--schema-only", "-h", "127.0.0.1", "-p"])
                .arg(cluster.port().to_string())
                .args(["-U", "postgres", "-d", db])
                .env("PGPASSWORD", PASSWORD)
                .output()
                .expect("pg_dump");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            if db == "bench_a" {
                dump_one.push(one.elapsed().as_secs_f64());
            }
        }
        dumps.push(started.elapsed().as_secs_f64());
    }
    println!("schema_bench: two schemas of {n} tables ({objects} objects each), median of 3");
    println!(
        "  pgwarden read one schema:           {:8.3} s",
        median(read_one)
    );
    println!(
        "  pg_dump --schema-only of one:       {:8.3} s",
        median(dump_one)
    );
    println!(
        "  pgwarden read both + diff:          {:8.3} s ({statements} statements)",
        median(ours.clone())
    );
    println!(
        "  of which the diff itself:           {:8.3} s",
        median(diff_only)
    );
    println!(
        "  pg_dump --schema-only of both:      {:8.3} s",
        median(dumps.clone())
    );
    println!(
        "  ratio pgwarden / pg_dump:           {:8.2}",
        median(ours) / median(dumps)
    );
}
