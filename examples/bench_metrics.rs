//! Load generator for the daemon's `/metrics`: scrapes/s, p50 and p99 latency
//! at 1 and 8 keep-alive connections, and the daemon's resident memory —
//! beside postgres_exporter (Debian `prometheus-postgres-exporter`) against
//! the same database in the same run when it is installed.
//!
//! ```sh
//! cargo build --release --bins --examples
//! target/release/examples/bench_metrics [SECONDS_PER_RUN]   # default 5
//! ```
//!
//! It starts a throwaway PostgreSQL cluster, `target/release/pgwarden serve`
//! (or `$PGWARDEN_BIN`) against it, and the exporter, then hammers each.

mod common;

use std::time::Duration;

use common::load::load;
use common::process::rss_mb;
use common::{EXPORTER, Serve, fail, start_serve};
use pgwarden::cluster::Cluster;

const BENCH: &str = "bench_metrics";

fn main() {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let cluster =
        Cluster::start().unwrap_or_else(|e| fail(BENCH, &format!("cannot start PostgreSQL: {e}")));
    let url = cluster.url();
    let work = tempfile::tempdir().unwrap();

    let pgwarden = Subject {
        name: "pgwarden".into(),
        serve: start_serve(BENCH, work.path(), url.expose(), ""),
    };
    let mut subjects = vec![pgwarden];
    match start_exporter(&cluster) {
        Some(exporter) => subjects.push(exporter),
        None => println!("({EXPORTER} not installed: apt-get install {EXPORTER} to compare)"),
    }

    println!(
        "{:<22} {:>5} {:>11} {:>9} {:>9} {:>9} {:>10}",
        "server", "conns", "scrapes/s", "p50 ms", "p99 ms", "RSS MB", "body bytes"
    );
    for subject in &subjects {
        // Warm up: first renders, lazily allocated buffers.
        let metrics = ["/metrics".to_string()];
        load(&subject.serve.addr, &metrics, 1, Duration::from_millis(500));
        for connections in [1, 8] {
            let run = load(
                &subject.serve.addr,
                &metrics,
                connections,
                Duration::from_secs(seconds),
            );
            println!(
                "{:<22} {:>5} {:>11.0} {:>9.3} {:>9.3} {:>9.1} {:>10}",
                subject.name,
                connections,
                run.per_second(),
                run.percentile(0.50),
                run.percentile(0.99),
                rss_mb(subject.serve.child.id()),
                run.body_bytes,
            );
        }
    }
}

struct Subject {
    name: String,
    serve: Serve,
}

fn start_exporter(cluster: &Cluster) -> Option<Subject> {
    let dsn = format!(
        "postgresql://postgres:{}@127.0.0.1:{}/postgres?sslmode=disable",
        pgwarden::cluster::PASSWORD,
        cluster.port()
    );
    let serve = common::start_exporter(BENCH, &dsn, &[])?;
    Some(Subject {
        name: "postgres_exporter".into(),
        serve,
    })
}
