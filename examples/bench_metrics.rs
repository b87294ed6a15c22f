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

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Serve, fail, free_addr, http_get, start_serve, wait_until};
use pgwarden::cluster::Cluster;

const BENCH: &str = "bench_metrics";

const EXPORTER: &str = "prometheus-postgres-exporter";

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
        load(&subject.serve.addr, 1, Duration::from_millis(500));
        for connections in [1, 8] {
            let run = load(
                &subject.serve.addr,
                connections,
                Duration::from_secs(seconds),
            );
            println!(
                "{:<22} {:>5} {:>11.0} {:>9.3} {:>9.3} {:>9.1} {:>10}",
                subject.name,
                connections,
                run.count as f64 / run.elapsed.as_secs_f64(),
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
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {EXPORTER}")])
        .output()
        .ok()?;
    if !found.status.success() {
        return None;
    }
    let addr = free_addr();
    let dsn = format!(
        "postgresql://postgres:{}@127.0.0.1:{}/postgres?sslmode=disable",
        pgwarden::cluster::PASSWORD,
        cluster.port()
    );
    let child = Command::new(EXPORTER)
        .arg(format!("--web.listen-address={addr}"))
        .env("DATA_SOURCE_NAME", dsn)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let serve = Serve { addr, child };
    wait_until(
        BENCH,
        || http_get(&serve.addr, "/metrics").map(|(status, _)| status) == Some(200),
        "postgres_exporter",
    );
    Some(Subject {
        name: "postgres_exporter".into(),
        serve,
    })
}

struct Run {
    count: usize,
    elapsed: Duration,
    /// Latencies in milliseconds, sorted.
    latencies: Vec<f64>,
    body_bytes: usize,
}

impl Run {
    fn percentile(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let at = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[at]
    }
}

/// `connections` keep-alive connections, each scraping back to back.
fn load(addr: &str, connections: usize, duration: Duration) -> Run {
    let started = Instant::now();
    let deadline = started + duration;
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let addr = addr.to_string();
            std::thread::spawn(move || scrape_until(&addr, deadline))
        })
        .collect();
    let mut latencies = Vec::new();
    let mut body_bytes = 0;
    for worker in workers {
        let (mine, bytes) = worker.join().unwrap();
        latencies.extend(mine);
        body_bytes = bytes;
    }
    let elapsed = started.elapsed();
    latencies.sort_by(f64::total_cmp);
    Run {
        count: latencies.len(),
        elapsed,
        latencies,
        body_bytes,
    }
}

fn scrape_until(addr: &str, deadline: Instant) -> (Vec<f64>, usize) {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::with_capacity(1 << 16, stream);
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let mut latencies = Vec::new();
    let mut body = Vec::new();
    while Instant::now() < deadline {
        let started = Instant::now();
        writer.write_all(request.as_bytes()).unwrap();
        body.clear();
        read_response(&mut reader, &mut body);
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    (latencies, body.len())
}

/// One HTTP/1.1 response: Content-Length or chunked (Go's promhttp).
fn read_response(reader: &mut BufReader<TcpStream>, body: &mut Vec<u8>) {
    let mut line = String::new();
    let mut length = None;
    let mut chunked = false;
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        let header = line.trim_end().to_ascii_lowercase();
        if header.is_empty() {
            break;
        }
        if let Some(v) = header.strip_prefix("content-length:") {
            length = v.trim().parse::<usize>().ok();
        }
        if header.starts_with("transfer-encoding:") && header.contains("chunked") {
            chunked = true;
        }
    }
    if !chunked {
        let n = length.expect("a Content-Length");
        let start = body.len();
        body.resize(start + n, 0);
        reader.read_exact(&mut body[start..]).unwrap();
        return;
    }
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        let size = usize::from_str_radix(line.trim(), 16).unwrap();
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..]).unwrap();
        line.clear();
        reader.read_line(&mut line).unwrap();
        if size == 0 {
            return;
        }
    }
}

fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}
