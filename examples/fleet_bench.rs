//! Benchmark of one `pgwarden serve` watching a fleet: 500 databases on two
//! throwaway PostgreSQL clusters, discovered by pattern, beside
//! postgres_exporter 0.11 (Debian `prometheus-postgres-exporter`) with
//! `--auto-discover-databases` on the same fleet, in the same run.
//!
//! ```sh
//! cargo build --release --bin pgwarden && cargo run --release --example fleet_bench
//! FLEET_DATABASES=40 cargo run --release --example fleet_bench   # a quick try
//! ```
//!
//! (`cargo run --example` does not rebuild the daemon: build it first.)
//!
//! Every database is a copy of one template (5 tables, 9 indexes, 600 rows).
//! pgwarden runs with the default check interval (15 s); it prints the time
//! until every database's cycle has completed, the pass over the fleet and
//! pgwarden's CPU and RSS in each of a few intervals (with one
//! Prometheus-like scrape per interval), then `/metrics` and `/probe` scrape
//! latency and throughput; then the same for postgres_exporter, and the
//! goals (issue 16) beside the figures.
//!
//! Environment: `FLEET_DATABASES` (500), `FLEET_CLUSTERS` (2),
//! `FLEET_INTERVALS` (4), `FLEET_LOAD_SECONDS` (10), `FLEET_CLIENTS` (4),
//! `FLEET_SUBJECTS` (`pgwarden,exporter`), `FLEET_PGWARDEN_CONFIG`: TOML
//! put before the targets (e.g. a `[fleet]` table to try other budgets;
//! `\n` for a line break), and `FLEET_DUMP=DIR`, where pgwarden's
//! `/metrics`, `/health` and one `/probe` are written.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::load::{Run, fetch, load};
use common::process::{cpu_seconds, peak_rss_mb, rss_mb, tree_cpu_seconds};
use common::{EXPORTER, Serve, fail, spawn_serve, wait_until_within};
use pgwarden::cluster::{Cluster, ClusterOptions, PASSWORD};

const BENCH: &str = "fleet_bench";
/// pgwarden's default check interval, and a usual Prometheus scrape interval.
const INTERVAL: Duration = Duration::from_secs(15);
/// Every database's name starts with this; pgwarden discovers `^school_`.
const PREFIX: &str = "school_";
const TEMPLATE: &str = "fleet_template";

/// Every database is a copy of this: a school's few tables and indexes.
const TEMPLATE_SQL: &str = "
CREATE TABLE classes (id int PRIMARY KEY, name text NOT NULL, year int NOT NULL);
CREATE INDEX classes_year ON classes (year);
CREATE TABLE pupils (id int PRIMARY KEY, class_id int REFERENCES classes, name text NOT NULL);
CREATE INDEX pupils_class ON pupils (class_id);
CREATE TABLE teachers (id int PRIMARY KEY, name text NOT NULL, email text UNIQUE);
CREATE TABLE lessons (id int PRIMARY KEY, class_id int REFERENCES classes,
                      teacher_id int REFERENCES teachers, at timestamptz NOT NULL);
CREATE INDEX lessons_class_at ON lessons (class_id, at);
CREATE TABLE grades (id int PRIMARY KEY, pupil_id int REFERENCES pupils,
                     lesson_id int REFERENCES lessons, grade int NOT NULL);
INSERT INTO classes SELECT i, 'class ' || i, 2020 + i % 6 FROM generate_series(1, 20) i;
INSERT INTO teachers SELECT i, 'teacher ' || i, 't' || i || '@school' FROM generate_series(1, 30) i;
INSERT INTO pupils SELECT i, 1 + i % 20, 'pupil ' || i FROM generate_series(1, 200) i;
INSERT INTO lessons SELECT i, 1 + i % 20, 1 + i % 30, now() - i * interval '1 hour'
  FROM generate_series(1, 150) i;
INSERT INTO grades SELECT i, 1 + i % 200, 1 + i % 150, 1 + i % 6 FROM generate_series(1, 200) i;
ANALYZE;
";

fn main() {
    let settings = Settings::from_env();
    let fleet = Fleet::build(&settings);
    bare_connections(&fleet, 100);
    let work = tempfile::tempdir().unwrap_or_else(|e| fail(BENCH, &format!("temp dir: {e}")));
    let pgwarden = settings
        .runs("pgwarden")
        .then(|| measure_pgwarden(&settings, &fleet, work.path()));
    let exporter = if settings.runs("exporter") {
        measure_exporter(&settings, &fleet)
    } else {
        None
    };
    print_goals(&settings, pgwarden.as_ref(), exporter.as_ref());
}

struct Settings {
    databases: usize,
    clusters: usize,
    intervals: usize,
    load: Duration,
    clients: usize,
    subjects: String,
    pgwarden_config: String,
}

impl Settings {
    fn from_env() -> Settings {
        let settings = Settings {
            databases: env_or("FLEET_DATABASES", 500),
            clusters: env_or("FLEET_CLUSTERS", 2),
            intervals: env_or("FLEET_INTERVALS", 4),
            load: Duration::from_secs(env_or("FLEET_LOAD_SECONDS", 10)),
            clients: env_or("FLEET_CLIENTS", 4),
            subjects: env_or("FLEET_SUBJECTS", "pgwarden,exporter".to_string()),
            pgwarden_config: env_or("FLEET_PGWARDEN_CONFIG", String::new()),
        };
        if settings.clusters == 0 || settings.databases < settings.clusters {
            fail(
                BENCH,
                "FLEET_CLUSTERS must be at least 1 and FLEET_DATABASES at least FLEET_CLUSTERS",
            );
        }
        settings
    }

    fn runs(&self, subject: &str) -> bool {
        self.subjects.split(',').any(|s| s.trim() == subject)
    }
}

fn env_or<T: FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .unwrap_or_else(|_| fail(BENCH, &format!("{name}={value:?} is not a valid value"))),
        Err(_) => default,
    }
}

/// The throwaway clusters and the databases created on each.
struct Fleet {
    clusters: Vec<Cluster>,
    databases: Vec<Vec<String>>,
}

impl Fleet {
    /// One thread per cluster: start it, build the template, copy it.
    fn build(settings: &Settings) -> Fleet {
        let started = Instant::now();
        let names = database_names(settings.databases, settings.clusters);
        let builders: Vec<_> = names
            .into_iter()
            .map(|names| std::thread::spawn(move || (build_cluster(&names), names)))
            .collect();
        let (clusters, databases) = builders
            .into_iter()
            .map(|b| {
                b.join()
                    .unwrap_or_else(|_| fail(BENCH, "a cluster builder panicked"))
            })
            .unzip();
        println!(
            "fleet: {} databases on {} PostgreSQL 15 clusters, each a copy of a template of \
             5 tables, 9 indexes and 600 rows; built in {:.1} s",
            settings.databases,
            settings.clusters,
            started.elapsed().as_secs_f64()
        );
        Fleet {
            clusters,
            databases,
        }
    }

    fn target_name(index: usize) -> String {
        format!("fleet_{}", index + 1)
    }

    /// `(target, database)` of every database, in creation order.
    fn all(&self) -> Vec<(String, String)> {
        self.databases
            .iter()
            .enumerate()
            .flat_map(|(i, names)| {
                names
                    .iter()
                    .map(move |n| (Fleet::target_name(i), n.clone()))
            })
            .collect()
    }

    /// The postmasters' pids (first line of `postmaster.pid`).
    fn postmasters(&self) -> Vec<u32> {
        self.clusters
            .iter()
            .filter_map(|c| {
                let pidfile = std::fs::read_to_string(c.data_dir().join("postmaster.pid")).ok()?;
                pidfile.lines().next()?.trim().parse().ok()
            })
            .collect()
    }

    /// CPU seconds used so far by every server of the fleet.
    fn server_cpu_seconds(&self) -> f64 {
        self.postmasters().into_iter().map(tree_cpu_seconds).sum()
    }

    fn superuser_url(cluster: &Cluster) -> String {
        format!(
            "postgresql://postgres:{PASSWORD}@127.0.0.1:{}/postgres",
            cluster.port()
        )
    }
}

/// `school_001`… split into contiguous runs, one per cluster.
fn database_names(total: usize, clusters: usize) -> Vec<Vec<String>> {
    let width = total.to_string().len().max(3);
    let names: Vec<String> = (1..=total)
        .map(|i| format!("{PREFIX}{i:0width$}"))
        .collect();
    let per_cluster = total.div_ceil(clusters);
    names.chunks(per_cluster).map(<[String]>::to_vec).collect()
}

fn build_cluster(names: &[String]) -> Cluster {
    // postgres_exporter keeps one connection open per discovered database.
    let max_connections = (names.len() + 50).max(100).to_string();
    let options = ClusterOptions::default().setting("max_connections", &max_connections);
    let cluster = Cluster::start_with(&options)
        .unwrap_or_else(|e| fail(BENCH, &format!("cannot start PostgreSQL: {e}")));
    let psql = |database: &str, sql: &str| {
        cluster
            .psql(database, sql)
            .unwrap_or_else(|e| fail(BENCH, &format!("{sql}: {e}")))
    };
    psql("postgres", &format!("CREATE DATABASE {TEMPLATE}"));
    psql(TEMPLATE, TEMPLATE_SQL);
    // A template is neither discovered by pgwarden nor by postgres_exporter.
    psql(
        "postgres",
        &format!("ALTER DATABASE {TEMPLATE} WITH IS_TEMPLATE true"),
    );
    // FILE_COPY copies the template's files (fsync is off in throwaway
    // clusters); the default WAL_LOG would write every page to the WAL.
    for batch in names.chunks(50) {
        let mut args: Vec<String> = psql_args(&cluster);
        for name in batch {
            args.push("-c".into());
            args.push(format!(
                "CREATE DATABASE {name} TEMPLATE {TEMPLATE} STRATEGY FILE_COPY"
            ));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cluster
            .run_program("psql", &args)
            .unwrap_or_else(|e| fail(BENCH, &format!("CREATE DATABASE: {e}")));
    }
    cluster
}

/// psql over the cluster's socket; each further `-c` runs on its own (not in
/// one transaction, which CREATE DATABASE refuses).
fn psql_args(cluster: &Cluster) -> Vec<String> {
    let socket = cluster.socket_dir().display().to_string();
    ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", &socket]
        .into_iter()
        .map(String::from)
        .chain(["-p".into(), cluster.port().to_string()])
        .chain(["-U", "postgres", "-d", "postgres"].map(String::from))
        .collect()
}

/// The anchor for a database cycle's cost: what merely connecting costs.
/// `n` sequential psql sessions over TCP with the password (as pgwarden
/// connects), each `SELECT 1`, spread over the fleet's databases: wall time
/// and server CPU per session.
fn bare_connections(fleet: &Fleet, n: usize) {
    let all = fleet.all();
    let cpu_before = fleet.server_cpu_seconds();
    let started = Instant::now();
    for i in 0..n {
        let (target, database) = &all[i * all.len() / n];
        let index = fleet.databases.iter().position(|d| d.contains(database));
        let cluster = &fleet.clusters[index.unwrap_or_else(|| fail(BENCH, target))];
        let status = std::process::Command::new(cluster.bin_dir().join("psql"))
            .args(["-X", "-q", "-A", "-t", "-c", "SELECT 1"])
            .arg(format!(
                "host=127.0.0.1 port={} user=postgres dbname={database}",
                cluster.port()
            ))
            .env("PGPASSWORD", PASSWORD)
            .stdout(std::process::Stdio::null())
            .status();
        if !status.is_ok_and(|s| s.success()) {
            fail(BENCH, &format!("psql to {database} failed"));
        }
    }
    let each = |seconds: f64| seconds * 1000.0 / n as f64;
    println!(
        "anchor: a bare session (psql over TCP with password, SELECT 1), {n} in a row: \
         {:.1} ms wall and {:.1} ms server CPU each",
        each(started.elapsed().as_secs_f64()),
        each(fleet.server_cpu_seconds() - cpu_before)
    );
}

/// What a subject was measured doing.
struct Measured {
    name: String,
    /// From start until every database had been checked once (pgwarden), or
    /// the first scrape, which discovers and connects (postgres_exporter).
    first_pass: Option<Duration>,
    intervals: Vec<Interval>,
    metrics: Vec<(usize, Run)>,
    probe: Vec<(usize, Run)>,
    peak_rss_mb: f64,
}

/// One check interval of steady state, ended by one scrape of `/metrics`.
struct Interval {
    cpu_percent: f64,
    /// The PostgreSQL servers' CPU (all backends, exited ones included).
    server_cpu_percent: f64,
    /// Database cycles completed in the interval, and the servers' CPU
    /// time per cycle.
    cycles: usize,
    server_ms_per_cycle: f64,
    rss_mb: f64,
    scrape_ms: f64,
    series: usize,
    fleet: FleetView,
}

fn measure_pgwarden(settings: &Settings, fleet: &Fleet, work: &Path) -> Measured {
    let config = pgwarden_config(settings, fleet);
    println!("\npgwarden serve (release build, default check interval 15 s), config:\n{config}");
    let started = Instant::now();
    let serve = spawn_serve(BENCH, work, &config);
    let first_pass = wait_for_every_database(&serve, settings.databases, started);
    let intervals = measure_intervals(settings, fleet, &serve, |_ms, body| {
        FleetView::of_pgwarden(body)
    });
    print_intervals(&intervals, "pass s (per target)", "oldest s");
    print_cycle_durations(&serve);
    dump(&serve, &fleet.all()[0]);
    let metrics = load_runs(settings, &serve, &["/metrics".to_string()]);
    let probes: Vec<String> = fleet
        .all()
        .iter()
        .map(|(target, database)| format!("/probe?target={target}&database={database}"))
        .collect();
    let probe = load_runs(settings, &serve, &probes);
    Measured {
        name: "pgwarden".into(),
        first_pass,
        intervals,
        metrics,
        probe,
        peak_rss_mb: peak_rss_mb(serve.child.id()),
    }
}

fn pgwarden_config(settings: &Settings, fleet: &Fleet) -> String {
    let mut config = settings.pgwarden_config.replace("\\n", "\n");
    for (i, cluster) in fleet.clusters.iter().enumerate() {
        config.push_str(&format!(
            "\n[[targets]]\nname = \"{}\"\nurl = \"{}\"\ndiscover = \"^{PREFIX}\"\n",
            Fleet::target_name(i),
            Fleet::superuser_url(cluster)
        ));
    }
    config
}

/// Poll `/metrics` until every database has a completed cycle; the time
/// from start, or None (said aloud) when that did not happen in 10 intervals.
fn wait_for_every_database(serve: &Serve, databases: usize, started: Instant) -> Option<Duration> {
    wait_until_within(
        BENCH,
        Duration::from_secs(60),
        || fetch(&serve.addr, "/metrics").is_some_and(|(_, status, _)| status == 200),
        "pgwarden /metrics",
    );
    let mut checked = 0;
    while started.elapsed() < INTERVAL * 10 {
        if let Some((_, 200, body)) = fetch(&serve.addr, "/metrics") {
            checked = FleetView::of_pgwarden(&body).checked;
            if checked >= databases {
                let took = started.elapsed();
                println!(
                    "every database's first cycle complete {:.1} s after start (discovery included)",
                    took.as_secs_f64()
                );
                return Some(took);
            }
        }
        // Each poll renders the whole body: not more often than a scraper would.
        std::thread::sleep(Duration::from_secs(1));
    }
    println!(
        "NOT every database checked: {checked} of {databases} after {:.0} s",
        started.elapsed().as_secs_f64()
    );
    None
}

/// `settings.intervals` intervals of 15 s, each ended by one scrape of
/// `/metrics` (as Prometheus would): the process's CPU and RSS per interval
/// and what the scrape says about the fleet (`view` is given its latency and
/// body).
fn measure_intervals(
    settings: &Settings,
    fleet: &Fleet,
    serve: &Serve,
    view: impl Fn(f64, &str) -> FleetView,
) -> Vec<Interval> {
    let pid = serve.child.id();
    let scrape = || {
        let (ms, status, body) = fetch(&serve.addr, "/metrics")
            .unwrap_or_else(|| fail(BENCH, "a scrape of /metrics got no answer"));
        if status != 200 {
            fail(BENCH, &format!("/metrics answered {status}: {body}"));
        }
        (ms, body)
    };
    let (ms, body) = scrape();
    let mut previous = view(ms, &body);
    let mut next = Instant::now();
    let mut cpu_before = (cpu_seconds(pid), fleet.server_cpu_seconds());
    let mut wall_before = Instant::now();
    let mut intervals = Vec::new();
    for _ in 0..settings.intervals {
        next += INTERVAL;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        let (scrape_ms, body) = scrape();
        let cpu = (cpu_seconds(pid), fleet.server_cpu_seconds());
        let wall = Instant::now();
        let percent =
            |now: f64, before: f64| (now - before) / (wall - wall_before).as_secs_f64() * 100.0;
        let fleet = view(scrape_ms, &body);
        let cycles = fleet.cycles_since(&previous);
        intervals.push(Interval {
            cpu_percent: percent(cpu.0, cpu_before.0),
            server_cpu_percent: percent(cpu.1, cpu_before.1),
            server_ms_per_cycle: (cpu.1 - cpu_before.1) * 1000.0 / cycles as f64,
            cycles,
            rss_mb: rss_mb(pid),
            scrape_ms,
            series: common::count_samples(&body),
            fleet,
        });
        previous = intervals
            .last()
            .map(|i| i.fleet.clone())
            .unwrap_or_default();
        (cpu_before, wall_before) = (cpu, wall);
        // A scrape slower than the interval delays the next one.
        next = next.max(Instant::now());
    }
    intervals
}

fn print_intervals(intervals: &[Interval], pass: &str, oldest: &str) {
    println!(
        "{:>8} {:>7} {:>7} {:>9} {:>7} {:>11} {:>10} {:>8} {:>22} {:>9} {:>8} {:>5}",
        "interval",
        "CPU %",
        "RSS MB",
        "PG CPU %",
        "cycles",
        "PG ms/cycle",
        "scrape ms",
        "series",
        pass,
        oldest,
        "checked",
        "up"
    );
    for (i, interval) in intervals.iter().enumerate() {
        let passes: Vec<String> = interval
            .fleet
            .passes
            .values()
            .map(|s| format!("{s:.2}"))
            .collect();
        println!(
            "{:>8} {:>7.1} {:>7.1} {:>9.1} {:>7} {:>11.1} {:>10.1} {:>8} {:>22} {:>9.1} {:>8} {:>5}",
            i + 1,
            interval.cpu_percent,
            interval.rss_mb,
            interval.server_cpu_percent,
            interval.cycles,
            interval.server_ms_per_cycle,
            interval.scrape_ms,
            interval.series,
            passes.join(", "),
            interval.fleet.oldest_seconds,
            interval.fleet.checked,
            interval.fleet.up,
        );
    }
    println!(
        "(CPU % of one core over the interval, the subject's and the PostgreSQL servers' \
         (every backend); a scrape of /metrics ends each interval)"
    );
}

/// Where a pass's time goes: each database's own cycle.
fn print_cycle_durations(serve: &Serve) {
    let Some((_, 200, body)) = fetch(&serve.addr, "/metrics") else {
        return;
    };
    let mut cycles: Vec<f64> = samples(&body, "pgwarden_cycle_duration_seconds")
        .filter(|(labels, _)| label(labels, "database").is_some())
        .map(|(_, v)| v * 1000.0)
        .collect();
    if cycles.is_empty() {
        return;
    }
    cycles.sort_by(f64::total_cmp);
    let at = |p: f64| cycles[((cycles.len() - 1) as f64 * p).round() as usize];
    println!(
        "per-database cycle: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; sum over {} databases {:.1} s",
        at(0.5),
        at(0.99),
        at(1.0),
        cycles.len(),
        cycles.iter().sum::<f64>() / 1000.0
    );
    let mut checks: BTreeMap<&str, (f64, usize)> = BTreeMap::new();
    for (labels, seconds) in samples(&body, "pgwarden_check_duration_seconds") {
        if let (Some(_), Some(check)) = (label(labels, "database"), label(labels, "check")) {
            let entry = checks.entry(check).or_default();
            *entry = (entry.0 + seconds * 1000.0, entry.1 + 1);
        }
    }
    let mut means: Vec<(&str, f64)> = checks
        .into_iter()
        .map(|(check, (sum, n))| (check, sum / n as f64))
        .collect();
    means.sort_by(|a, b| b.1.total_cmp(&a.1));
    let means: Vec<String> = means
        .iter()
        .map(|(check, ms)| format!("{check} {ms:.1}"))
        .collect();
    println!("  mean ms per database check: {}", means.join(", "));
}

/// `FLEET_DUMP=DIR` writes `/metrics`, `/health` and one database's
/// `/probe` there, to see what the figures are made of.
fn dump(serve: &Serve, (target, database): &(String, String)) {
    let Some(dir) = std::env::var_os("FLEET_DUMP") else {
        return;
    };
    let probe = format!("/probe?target={target}&database={database}");
    for (file, path) in [
        ("metrics", "/metrics"),
        ("health", "/health"),
        ("probe", &probe),
    ] {
        let body = fetch(&serve.addr, path).map_or(String::new(), |(_, _, body)| body);
        let to = Path::new(&dir).join(file);
        std::fs::write(&to, body)
            .unwrap_or_else(|e| fail(BENCH, &format!("cannot write {}: {e}", to.display())));
    }
}

/// A warm-up, then one client (latency) and `settings.clients` clients
/// (throughput) over `paths`.
fn load_runs(settings: &Settings, serve: &Serve, paths: &[String]) -> Vec<(usize, Run)> {
    load(&serve.addr, paths, 1, Duration::from_millis(500));
    let mut clients = vec![1, settings.clients];
    clients.dedup();
    clients
        .into_iter()
        .map(|n| (n, load(&serve.addr, paths, n, settings.load)))
        .collect()
}

fn measure_exporter(settings: &Settings, fleet: &Fleet) -> Option<Measured> {
    let dsn: Vec<String> = fleet
        .clusters
        .iter()
        .map(|c| format!("{}?sslmode=disable", Fleet::superuser_url(c)))
        .collect();
    let version = exporter_version();
    println!("\n{version} --auto-discover-databases, DATA_SOURCE_NAME = both clusters");
    // 0.11's two new-style collectors export their scrape series once per
    // DSN without a server label: with two DSNs every scrape fails (HTTP
    // 500, "collected before with the same name and label values"). Turned
    // off, pg_stat_database and the rest still come from the built-in maps.
    let args = [
        "--auto-discover-databases",
        "--no-collector.bgwriter",
        "--no-collector.database",
        "--log.level=error",
    ];
    println!("  flags: {}", args.join(" "));
    let Some(serve) = common::start_exporter(BENCH, &dsn.join(","), &args) else {
        println!("({EXPORTER} not installed: apt-get install {EXPORTER} to compare)");
        return None;
    };
    // Its first scrape discovers the databases and opens a connection to each.
    let (first_ms, status, body) = fetch(&serve.addr, "/metrics")
        .unwrap_or_else(|| fail(BENCH, "postgres_exporter /metrics got no answer"));
    if status != 200 {
        fail(
            BENCH,
            &format!("postgres_exporter /metrics answered {status}: {body}"),
        );
    }
    let first = FleetView::of_exporter(first_ms, &body);
    println!(
        "first scrape {:.1} s ({} databases listed, {} series)",
        first_ms / 1000.0,
        first.checked,
        common::count_samples(&body)
    );
    let intervals = measure_intervals(settings, fleet, &serve, FleetView::of_exporter);
    print_intervals(&intervals, "scrape = pass s", "oldest s");
    let metrics = load_runs(settings, &serve, &["/metrics".to_string()]);
    Some(Measured {
        name: "postgres_exporter".into(),
        first_pass: Some(Duration::from_secs_f64(first_ms / 1000.0)),
        intervals,
        metrics,
        probe: Vec::new(),
        peak_rss_mb: peak_rss_mb(serve.child.id()),
    })
}

fn exporter_version() -> String {
    let out = std::process::Command::new(EXPORTER)
        .arg("--version")
        .output();
    let text = out
        .map(|o| {
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        })
        .unwrap_or_default();
    let version = text
        .split_whitespace()
        .skip_while(|w| *w != "version")
        .nth(1)
        .unwrap_or("(version unknown)");
    format!("postgres_exporter {version}")
}

/// What one scrape says about the fleet.
#[derive(Clone, Default)]
struct FleetView {
    /// When each database's last cycle completed (pgwarden only).
    stamps: BTreeMap<String, f64>,
    /// Seconds of the last pass over each target's databases.
    passes: BTreeMap<String, f64>,
    /// Age of the oldest completed database cycle.
    oldest_seconds: f64,
    /// Databases with a completed cycle.
    checked: usize,
    /// Databases up.
    up: usize,
}

impl FleetView {
    fn of_pgwarden(body: &str) -> FleetView {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let per_database =
            |name| samples(body, name).filter(|(labels, _)| label(labels, "database").is_some());
        let stamps: BTreeMap<String, f64> = per_database("pgwarden_last_cycle_timestamp_seconds")
            .map(|(labels, v)| (labels.to_string(), v))
            .collect();
        FleetView {
            passes: samples(body, "pgwarden_fleet_pass_duration_seconds")
                .filter_map(|(labels, v)| Some((label(labels, "target")?.to_string(), v)))
                .collect(),
            oldest_seconds: stamps.values().map(|t| now - t).fold(0.0, f64::max),
            checked: stamps.len(),
            up: per_database("pgwarden_up")
                .filter(|(_, v)| *v == 1.0)
                .count(),
            stamps,
        }
    }

    /// Database cycles completed since `before` (a database whose
    /// timestamp moved); postgres_exporter checks every one per scrape.
    fn cycles_since(&self, before: &FleetView) -> usize {
        if self.stamps.is_empty() {
            return self.checked;
        }
        self.stamps
            .iter()
            .filter(|(unit, at)| before.stamps.get(*unit) != Some(at))
            .count()
    }

    /// postgres_exporter connects to every database while it is scraped:
    /// the scrape is its pass, and what it answers is fresh. Its
    /// `pg_stat_database` rows (one query per server) name the databases.
    fn of_exporter(scrape_ms: f64, body: &str) -> FleetView {
        let databases: BTreeSet<(&str, &str)> = samples(body, "pg_stat_database_numbackends")
            .filter_map(|(labels, _)| Some((label(labels, "server")?, label(labels, "datname")?)))
            .filter(|(_, datname)| datname.starts_with(PREFIX))
            .collect();
        FleetView {
            stamps: BTreeMap::new(),
            passes: BTreeMap::from([("all".to_string(), scrape_ms / 1000.0)]),
            oldest_seconds: 0.0,
            checked: databases.len(),
            up: samples(body, "pg_up").filter(|(_, v)| *v == 1.0).count(),
        }
    }
}

/// The samples of metric `name` in a text exposition: the text between the
/// braces, and the value.
fn samples<'a>(body: &'a str, name: &'a str) -> impl Iterator<Item = (&'a str, f64)> + 'a {
    body.lines().filter_map(move |line| {
        let rest = line.strip_prefix(name)?;
        let (labels, value) = match rest.strip_prefix('{') {
            Some(rest) => rest.rsplit_once('}')?,
            None => ("", rest),
        };
        let value = value.split_whitespace().next()?.parse().ok()?;
        Some((labels, value))
    })
}

/// The value of label `key` (names in this fleet need no escaping).
fn label<'a>(labels: &'a str, key: &str) -> Option<&'a str> {
    let start = labels
        .split(',')
        .find_map(|pair| pair.trim().strip_prefix(key)?.strip_prefix("=\""))?;
    start.split('"').next()
}

fn print_goals(settings: &Settings, pgwarden: Option<&Measured>, exporter: Option<&Measured>) {
    if pgwarden.is_none() && exporter.is_none() {
        return;
    }
    println!(
        "\nscrapes ({:.0} s per row)   {:>8} {:>10} {:>9} {:>9} {:>9} {:>11}",
        settings.load.as_secs_f64(),
        "clients",
        "req/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "body KB"
    );
    for measured in pgwarden.into_iter().chain(exporter) {
        for (what, runs) in [("/metrics", &measured.metrics), ("/probe", &measured.probe)] {
            for (clients, run) in runs {
                println!(
                    "{:<26} {:>8} {:>10.1} {:>9.3} {:>9.3} {:>9.3} {:>11.1}",
                    format!("{} {what}", measured.name),
                    clients,
                    run.per_second(),
                    run.percentile(0.5),
                    run.percentile(0.99),
                    run.percentile(1.0),
                    run.body_bytes as f64 / 1024.0
                );
            }
        }
        println!(
            "{:<26} peak RSS {:.1} MB; first pass {}",
            measured.name,
            measured.peak_rss_mb,
            measured
                .first_pass
                .map_or("not complete".to_string(), |d| format!(
                    "{:.1} s",
                    d.as_secs_f64()
                ))
        );
    }
    if let Some(pgwarden) = pgwarden {
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        println!("\ngoals ({} databases, {cores} cores)", settings.databases);
        for (goal, figure, met) in goals(settings, pgwarden, exporter) {
            let verdict = if met { "met" } else { "NOT met" };
            println!("  {goal:<62} {figure:<44} {verdict}");
        }
    }
}

fn goals(
    settings: &Settings,
    pgwarden: &Measured,
    exporter: Option<&Measured>,
) -> Vec<(String, String, bool)> {
    let worst_pass = pgwarden
        .intervals
        .iter()
        .flat_map(|i| i.fleet.passes.values().copied())
        .fold(f64::NAN, f64::max);
    let every_checked = pgwarden
        .intervals
        .iter()
        .all(|i| i.fleet.checked >= settings.databases);
    let peak_rss = pgwarden
        .intervals
        .iter()
        .map(|i| i.rss_mb)
        .fold(pgwarden.peak_rss_mb, f64::max);
    let probe_p99 = pgwarden
        .probe
        .first()
        .map_or(f64::NAN, |(_, run)| run.percentile(0.99));
    let mut goals = vec![
        (
            "every database checked within one 15 s interval".to_string(),
            format!("slowest pass over a target {worst_pass:.1} s"),
            pgwarden.first_pass.is_some() && every_checked && worst_pass <= INTERVAL.as_secs_f64(),
        ),
        (
            "RSS under 64 MB".to_string(),
            format!("peak {peak_rss:.1} MB"),
            peak_rss < 64.0,
        ),
        (
            "/probe under 1 ms at p99 (one client)".to_string(),
            format!("p99 {probe_p99:.3} ms"),
            probe_p99 < 1.0,
        ),
    ];
    let throughput = |m: &Measured| {
        m.metrics
            .last()
            .map_or(f64::NAN, |(_, run)| run.per_second())
    };
    if let Some(exporter) = exporter {
        let ratio = throughput(pgwarden) / throughput(exporter);
        goals.push((
            format!(
                "/metrics throughput >= 100x postgres_exporter's ({} clients)",
                settings.clients
            ),
            format!(
                "{ratio:.0}x ({:.1} vs {:.2} scrapes/s)",
                throughput(pgwarden),
                throughput(exporter)
            ),
            ratio >= 100.0,
        ));
    }
    goals
}
