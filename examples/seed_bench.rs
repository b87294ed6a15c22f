//! Benchmark: `seed run --scale N` against loading the same rows with
//! `pg_restore`, on the same throwaway cluster, in the same run. Goal: the
//! seed is at least as fast as `pg_restore --single-transaction`.
//!
//! ```sh
//! cargo run --release --example seed_bench [-- --scale 500 --rounds 3]
//! ```
//!
//! The anchor is like for like: the database the seed produced (same
//! schema, keys, indexes and foreign keys, same rows) is dumped once with
//! `pg_dump -Fc`. Then, round after round, three loads alternate, each into
//! a freshly created database over TCP loopback:
//!
//! - `seed run --scale N` into a migrated, empty database (the migration is
//!   not timed) — one transaction, like the first restore;
//! - `pg_restore --single-transaction` into an empty database;
//! - `pg_restore -j 2` (two parallel sessions, no single transaction), for
//!   reference.
//!
//! Times are wall clock including connecting; the medians are compared.
//! The seed's rounds also show this process's CPU time during the seed (the
//! generator and the COPY encoder: on two cores it competes with the server).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use pgwarden::cluster::{Cluster, PASSWORD};
use pgwarden::config::{Config, Environment, TargetConfig};
use pgwarden::dburl::DbUrl;
use pgwarden::seed::{self, SeedOptions};

struct Args {
    scale: u32,
    rounds: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        scale: 500,
        rounds: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_default();
        match flag.as_str() {
            "--scale" => args.scale = value.parse().expect("--scale N"),
            "--rounds" => args.rounds = value.parse().expect("--rounds N"),
            other => panic!("unknown argument {other}; use --scale N --rounds N"),
        }
    }
    args
}

/// What the three loads share: the cluster, a runtime, the config.
struct Bench {
    cluster: Cluster,
    runtime: tokio::runtime::Runtime,
    config: Config,
    scale: u32,
}

impl Bench {
    /// A fresh database with the schema migrated (untimed).
    fn migrated_database(&self) -> TargetConfig {
        let target =
            TargetConfig::from_url("bench", self.cluster.create_database().expect("database"));
        self.runtime
            .block_on(pgwarden::migrate::up(
                &self.config,
                &target,
                &Default::default(),
            ))
            .expect("migrate up");
        target
    }

    /// Seed `target` at the bench's scale; (seconds, client CPU seconds, report).
    fn seed(&self, target: &TargetConfig) -> (f64, f64, seed::SeedReport) {
        let options = SeedOptions {
            scale: Some(self.scale),
            ..Default::default()
        };
        let (started, cpu) = (Instant::now(), cpu_seconds());
        let report = self
            .runtime
            .block_on(seed::run(&self.config, target, &options))
            .expect("seed run --scale");
        (started.elapsed().as_secs_f64(), cpu_seconds() - cpu, report)
    }

    /// Run a client program of the cluster against `url` over TCP loopback.
    fn client(&self, program: &str, args: &[&str], url: &DbUrl) -> f64 {
        let path = self.cluster.bin_dir().join(program);
        let started = Instant::now();
        let out = Command::new(&path)
            .args(args)
            .args(["-h", "127.0.0.1", "-p", &self.cluster.port().to_string()])
            .args(["-U", &url.user(), "-d", &url.database()])
            .env("PGPASSWORD", PASSWORD)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
        let seconds = started.elapsed().as_secs_f64();
        assert!(
            out.status.success(),
            "{program} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        seconds
    }

    fn restore(&self, dump: &Path, parallel: bool) -> f64 {
        let url = self.cluster.create_database().expect("database");
        let mode = if parallel {
            "--jobs=2"
        } else {
            "--single-transaction"
        };
        let seconds = self.client(
            "pg_restore",
            &[
                "--no-owner",
                "--exit-on-error",
                mode,
                dump.to_str().unwrap(),
            ],
            &url,
        );
        self.drop_database(&url);
        seconds
    }

    /// Keep the disk from filling up over the rounds.
    fn drop_database(&self, url: &DbUrl) {
        self.cluster
            .psql("postgres", &format!("DROP DATABASE {}", url.database()))
            .expect("drop database");
    }
}

/// This process's CPU seconds (user + system, all threads) so far.
fn cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the rusage it is given (zeroed if it failed).
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn main() {
    // RUST_LOG=pgwarden=debug shows the time of every COPY and index build.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let args = parse_args();
    let mut config = Config {
        environment: Environment::Development,
        ..Config::default()
    };
    config.migrations.dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let bench = Bench {
        cluster: Cluster::start().expect("start PostgreSQL"),
        runtime: tokio::runtime::Runtime::new().expect("runtime"),
        config,
        scale: args.scale,
    };

    // The anchor's input: a dump of exactly what the seed writes.
    let source = bench.migrated_database();
    let (_, _, report) = bench.seed(&source);
    let rows = report.total();
    let dir = tempfile::tempdir().expect("temp dir");
    let dump = dir.path().join("seeded.dump");
    bench.client(
        "pg_dump",
        &["-Fc", "-f", dump.to_str().unwrap()],
        source.url(),
    );
    bench.drop_database(source.url());
    let dump_bytes = std::fs::metadata(&dump).map(|m| m.len()).unwrap_or(0);
    println!(
        "seed --scale {}: {rows} rows; pg_dump -Fc: {:.1} MiB; {} rounds",
        args.scale,
        dump_bytes as f64 / 1048576.0,
        args.rounds
    );

    let (mut seeded, mut single, mut parallel) = (Vec::new(), Vec::new(), Vec::new());
    let mut cpus = Vec::new();
    for round in 1..=args.rounds {
        let target = bench.migrated_database();
        let (seconds, cpu, report) = bench.seed(&target);
        bench.drop_database(target.url());
        seeded.push(seconds);
        cpus.push(cpu);
        single.push(bench.restore(&dump, false));
        parallel.push(bench.restore(&dump, true));
        println!(
            "round {round}: seed {seconds:.2} s (writing rows {:.2} s, keys/indexes/foreign keys {:.2} s; \
             client CPU {cpu:.2} s), pg_restore --single-transaction {:.2} s, pg_restore -j 2 {:.2} s",
            report.copy_seconds,
            report.rebuild_seconds,
            single[round - 1],
            parallel[round - 1]
        );
    }
    let (seed, single, parallel) = (
        median(&mut seeded),
        median(&mut single),
        median(&mut parallel),
    );
    println!(
        "medians over {} rounds ({rows} rows each; the seed's client CPU {:.2} s):",
        args.rounds,
        median(&mut cpus)
    );
    for (name, seconds) in [
        (format!("seed run --scale {}", args.scale), seed),
        ("pg_restore --single-transaction".to_string(), single),
        ("pg_restore -j 2".to_string(), parallel),
    ] {
        println!(
            "  {name:<32} {seconds:>6.2} s  {:>9.0} rows/s",
            rows as f64 / seconds
        );
    }
    println!(
        "ratio: the seed takes {:.2} x the time of pg_restore --single-transaction (goal <= 1.00), {:.2} x pg_restore -j 2",
        seed / single,
        seed / parallel
    );
}
