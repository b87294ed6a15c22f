//! Trust: pgwarden never harms the database it watches and never dies
//! silently. Real clusters, a real catalog lock, real panics (through the
//! test-only failpoints that `cargo test` builds in).

use crate::serve_support;
use crate::support;

use std::path::Path;
use std::time::{Duration, Instant};

use serve_support::*;
use support::*;

/// How long the catalog stays locked: long enough for a retrying client to
/// pile up dozens of backends (the defect this guards against reached 71
/// after 60 s).
const LOCK_SECONDS: u64 = 62;

/// pgwarden's defaults: pool_size 5 + max_overflow 2.
const POOL_MAX: usize = 7;

#[test]
fn a_locked_catalog_never_costs_more_than_the_pool_plus_one_backend() {
    let cluster = own_cluster(&ClusterOptions::default());
    let locked = cluster.create_database().unwrap();
    let free = cluster.create_database().unwrap();
    let locked_db = locked.database();
    let dir = workdir();
    let addr = free_addr();
    let config = format!(
        "[http]\nlisten = \"{addr}\"\n[checks]\ninterval = \"1s\"\ntimeout = \"2s\"\n{}{}",
        target("locked", locked.expose(), ""),
        target("free", free.expose(), "")
    );
    let serve = Serve::start(dir.path(), &addr, &config);
    serve.wait_ready();

    let sql = format!(
        "BEGIN; LOCK TABLE pg_catalog.pg_class IN ACCESS EXCLUSIVE MODE; \
         SELECT pg_sleep({LOCK_SECONDS}); COMMIT;"
    );
    std::thread::scope(|scope| {
        let locker = scope.spawn(|| cluster.psql(&locked_db, &sql));
        wait_for_catalog_lock(&cluster, &locked_db);
        let locked_at = Instant::now();
        let mut samples = Vec::new();
        let mut terminated = false;
        let mut most_in_startup = 0;
        while !locker.is_finished() {
            // Take pgwarden's sessions away mid-lock (as an idle-session
            // killer would): every new one now hangs in startup.
            if !terminated && locked_at.elapsed() > Duration::from_secs(5) {
                terminate_pgwarden_sessions(&cluster, &locked_db);
                terminated = true;
            }
            let sample = Sample::take(&cluster, &locked_db, &serve);
            let seen = format!("{:.1}s: {sample:?}", locked_at.elapsed().as_secs_f64());
            assert!(
                sample.backends <= POOL_MAX + 1,
                "pgwarden holds {} backends of {locked_db} (at most {} allowed); samples:\n{}\n{seen}\n{}",
                sample.backends,
                POOL_MAX + 1,
                samples.join("\n"),
                serve.log()
            );
            assert!(
                sample.in_startup <= 1 && sample.pgwarden_sessions <= POOL_MAX + 1,
                "more than one connection attempt in flight: {seen}\n{}",
                samples.join("\n")
            );
            assert!(
                sample.free_cycle_age < 10.0,
                "the other target stopped cycling: {seen}\n{}",
                serve.log()
            );
            most_in_startup = most_in_startup.max(sample.in_startup);
            samples.push(seen);
            std::thread::sleep(Duration::from_millis(500));
        }
        locker.join().unwrap().unwrap();
        assert_eq!(
            most_in_startup,
            1,
            "the lock never made pgwarden connect: the test provoked nothing\n{}",
            samples.join("\n")
        );
        assert!(
            locked_at.elapsed() >= Duration::from_secs(60),
            "the lock was held for only {:?}",
            locked_at.elapsed()
        );
        println!("backends during the lock:\n{}", samples.join("\n"));
    });

    // Released: within one interval (plus the cycle in flight, whose checks
    // may still be waiting out their 2 s timeout, and slack for a busy
    // machine), every check is back.
    let released = collector_now();
    serve.wait_metrics(
        "the locked target to recover",
        Duration::from_secs(8),
        |scrape| {
            value(scrape, "pgwarden_up", &[("target", "locked")]) == Some(1.0)
                && value(
                    scrape,
                    "pgwarden_last_cycle_timestamp_seconds",
                    &[("target", "locked")],
                )
                .is_some_and(|at| at > released + 1.0)
                && check_statuses(scrape, "locked").iter().all(|s| *s < 3.0)
        },
    );
    let log = serve.log();
    assert!(!log.contains("sorry, too many clients"), "{log}");
    assert!(
        log.contains(
            "timed out after connecting: the server did not finish the connection startup"
        ),
        "the outage should be named for what it is:\n{log}"
    );
}

fn terminate_pgwarden_sessions(cluster: &Cluster, database: &str) {
    let killed = cluster
        .psql(
            "postgres",
            &format!(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = '{database}' AND application_name = 'pgwarden'"
            ),
        )
        .unwrap();
    assert_ne!(killed.trim(), "0", "pgwarden had no session to terminate");
}

fn collector_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn check_statuses(scrape: &prometheus_parse::Scrape, target: &str) -> Vec<f64> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == "pgwarden_check_status")
        .filter(|s| s.labels.get("target") == Some(target))
        .map(|s| match s.value {
            prometheus_parse::Value::Gauge(v) => v,
            _ => f64::NAN,
        })
        .collect()
}

fn wait_for_catalog_lock(cluster: &Cluster, database: &str) {
    let sql = format!(
        "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
         WHERE d.datname = '{database}' AND l.relation = 'pg_catalog.pg_class'::regclass \
         AND l.mode = 'AccessExclusiveLock' AND l.granted"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while cluster.psql("postgres", &sql).unwrap().trim() != "1" {
        assert!(Instant::now() < deadline, "the catalog lock was not taken");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What the server and pgwarden look like at one moment of the lock.
#[derive(Debug)]
struct Sample {
    /// Backends of the locked database, startup included, but the locker's.
    backends: usize,
    /// Of those, in startup (invisible to pg_stat_activity).
    in_startup: usize,
    /// pgwarden's sessions there as pg_stat_activity sees them.
    pgwarden_sessions: usize,
    /// Seconds since the other target's last finished cycle.
    free_cycle_age: f64,
}

impl Sample {
    fn take(cluster: &Cluster, database: &str, serve: &Serve) -> Sample {
        let titles = backend_titles(&cluster.data_dir(), &format!(" {database} "));
        let sessions = cluster
            .psql(
                "postgres",
                &format!(
                    "SELECT count(*) FROM pg_stat_activity \
                     WHERE datname = '{database}' AND application_name = 'pgwarden'"
                ),
            )
            .unwrap();
        let last_free = value(
            &serve.metrics(),
            "pgwarden_last_cycle_timestamp_seconds",
            &[("target", "free")],
        )
        .unwrap_or(0.0);
        Sample {
            // The locker is the one backend running our pg_sleep.
            backends: titles.iter().filter(|t| !t.contains("SELECT")).count(),
            in_startup: titles.iter().filter(|t| t.contains("startup")).count(),
            pgwarden_sessions: sessions.trim().parse().unwrap(),
            free_cycle_age: collector_now() - last_free,
        }
    }
}

// ---------------------------------------------------------------------------
// Fault injection: FAILPOINTS is read by test builds of the binary.

fn serve_with_faults(failpoints: &str) -> (tempfile::TempDir, Serve) {
    let dir = workdir();
    let serve = serve_with_env(dir.path(), &[("FAILPOINTS", failpoints)]);
    (dir, serve)
}

/// `pgwarden serve` on a fresh database of the shared cluster, checking
/// every second, with `env` set.
fn serve_with_env(dir: &Path, env: &[(&str, &str)]) -> Serve {
    let url = shared().create_database().unwrap();
    let addr = free_addr();
    let config = format!(
        "[http]\nlisten = \"{addr}\"\n[checks]\ninterval = \"1s\"\n{}",
        target("db", url.expose(), "")
    );
    Serve::start_with(dir, &addr, &config, &[], env)
}

fn status_of(scrape: &prometheus_parse::Scrape, check: &str) -> Option<f64> {
    value(
        scrape,
        "pgwarden_check_status",
        &[("target", "db"), ("check", check)],
    )
}

/// Wait for `check` to report `error` with `message` in /health while
/// every other check of the cycle does not; the scrape that showed it.
fn wait_for_error_alone(serve: &Serve, check: &str, message: &str) -> prometheus_parse::Scrape {
    let scrape = serve.wait_metrics(&format!("{check} in error"), Duration::from_secs(20), |s| {
        status_of(s, check) == Some(3.0)
    });
    let others = [
        "connectivity",
        "locks",
        "indexes",
        "table_integrity",
        "cache_hit_ratio",
    ];
    for other in others.iter().filter(|other| **other != check) {
        assert!(
            status_of(&scrape, other).is_some_and(|s| s < 3.0),
            "{other} should be unaffected:\n{}",
            serve.get("/metrics").1
        );
    }
    let (_, health) = serve.get("/health");
    assert!(health.contains(message), "{health}");
    scrape
}

#[test]
fn a_check_that_panics_reports_error_alone_and_the_cycles_go_on() {
    let (_dir, serve) = serve_with_faults("check.indexes=panic");
    let first = wait_for_error_alone(
        &serve,
        "indexes",
        "internal error: the check panicked (failpoint",
    );
    let cycle = |s: &prometheus_parse::Scrape| {
        value(
            s,
            "pgwarden_last_cycle_timestamp_seconds",
            &[("target", "db")],
        )
        .unwrap_or(0.0)
    };
    let before = cycle(&first);
    serve.wait_metrics("later cycles", Duration::from_secs(10), |s| {
        cycle(s) > before + 1.5 && status_of(s, "indexes") == Some(3.0)
    });
    assert_eq!(
        value(
            &serve.metrics(),
            "pgwarden_collector_restarts_total",
            &[("target", "db")]
        ),
        Some(0.0),
        "a check's panic must not take its collector down"
    );
    let status = serve.stop();
    assert!(status.success(), "{status}");
}

#[test]
fn a_null_where_a_check_needs_a_value_is_that_checks_error_alone() {
    // table_integrity reads `age(datfrozenxid)` as a column named `age`.
    let (_dir, serve) = serve_with_faults("read_null=return(age)");
    wait_for_error_alone(&serve, "table_integrity", "column `age` (#2) is NULL");
    let status = serve.stop();
    assert!(status.success(), "{status}");
}

#[test]
fn a_collector_that_dies_is_started_again_and_counted() {
    let (_dir, serve) = serve_with_faults("collector=1*panic");
    serve.wait_metrics("the collector restart", Duration::from_secs(20), |s| {
        value(s, "pgwarden_collector_restarts_total", &[("target", "db")]) == Some(1.0)
    });
    let since = collector_now();
    serve.wait_metrics("cycles after the restart", Duration::from_secs(15), |s| {
        value(s, "pgwarden_up", &[("target", "db")]) == Some(1.0)
            && value(
                s,
                "pgwarden_last_cycle_timestamp_seconds",
                &[("target", "db")],
            )
            .is_some_and(|at| at > since)
    });
    let log = serve.log();
    assert!(
        log.contains("the collector task died (failpoint collector panic)")
            && log.contains("starting it again"),
        "{log}"
    );
    let status = serve.stop();
    assert!(status.success(), "{status}");
}

#[test]
fn a_dead_http_server_ends_the_process_non_zero() {
    let (_dir, serve) = serve_with_faults("http_accept=panic");
    // Serve::start connected once to see it listening: that killed the task.
    let (status, log) = serve.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        log.contains("the HTTP server task died (panicked: failpoint http_accept panic)")
            && log.contains("shutting down so that systemd restarts pgwarden"),
        "{log}"
    );
}

#[test]
fn a_server_stuck_in_startup_is_named_as_such_not_as_a_firewall() {
    let url = shared().create_database().unwrap();
    let database = url.database();
    let dir = workdir();
    let config = write_file(
        dir.path(),
        "pgwarden.toml",
        &target("db", url.expose(), "connect_timeout = \"1s\""),
    );
    let sql = "BEGIN; LOCK TABLE pg_catalog.pg_class IN ACCESS EXCLUSIVE MODE; \
               SELECT pg_sleep(8); COMMIT;";
    std::thread::scope(|scope| {
        let locker = scope.spawn(|| shared().psql(&database, sql));
        wait_for_catalog_lock(shared(), &database);
        let out = pgwarden(dir.path())
            .args(["--config", config.to_str().unwrap(), "health"])
            .output()
            .unwrap();
        let text = output_text(&out);
        assert_eq!(out.status.code(), Some(3), "{text}");
        assert!(
            text.contains(
                "timed out after connecting: the server did not finish the connection startup"
            ) && text.contains("catalog is locked"),
            "{text}"
        );
        assert!(!text.contains("firewall"), "{text}");
        locker.join().unwrap().unwrap();
    });
}

#[test]
fn a_dead_watchdog_ends_the_process_non_zero_instead_of_feeding_nothing() {
    let dir = workdir();
    let socket_path = dir.path().join("notify.sock");
    let _socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    let serve = serve_with_env(
        dir.path(),
        &[
            ("FAILPOINTS", "watchdog=panic"),
            ("NOTIFY_SOCKET", socket_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "2000000"),
        ],
    );
    let (status, log) = serve.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        log.contains("the systemd watchdog task died (panicked: failpoint watchdog panic)"),
        "{log}"
    );
}
