//! End to end: a real PostgreSQL primary and standby, `pgwarden serve`, and a
//! real Prometheus (Debian package `prometheus`) scraping it with the shipped
//! scrape config and alert rules. Every PromQL expression of every dashboard
//! panel and every alert rule goes to Prometheus's query API: all parse, the
//! panel queries return data, and every metric they name is in pgwarden's
//! /metrics. Then the primary is stopped and `PgwardenTargetDown` must show up
//! in Prometheus's alerts API.

use crate::monitoring;
use crate::support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use monitoring::live::*;
use monitoring::*;
use support::*;

/// Everything pgwarden measures is made to exist: a standby (lag per
/// replica, WAL receiver), a replication slot, pg_stat_statements, tables
/// and an index, one applied and one pending migration, a backup.
fn prepare_primary(primary: &Cluster) {
    primary
        .psql(
            "postgres",
            "CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
             SELECT pg_create_physical_replication_slot('e2e_slot', true);
             SELECT pg_switch_wal();
             CREATE TABLE items (id serial PRIMARY KEY, name text);
             INSERT INTO items (name) SELECT 'item ' || g FROM generate_series(1, 5000) g;
             CREATE INDEX items_name ON items (name);
             CREATE TABLE audit_log (at timestamptz, what text);
             SELECT count(*) FROM items;",
        )
        .expect("prepare the primary");
}

/// SQL run on a cluster every 300 ms, through psql, until dropped.
struct Workload {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Workload {
    fn start(cluster: &Cluster, sql: &str) -> Workload {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (flag, psql, url, sql) = (
            stop.clone(),
            cluster.bin_dir().join("psql"),
            cluster.url().expose().to_string(),
            sql.to_string(),
        );
        let thread = std::thread::spawn(move || {
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = std::process::Command::new(&psql)
                    .args([url.as_str(), "-qAtc", sql.as_str()])
                    .output();
                std::thread::sleep(Duration::from_millis(300));
            }
        });
        Workload {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Metrics only a newer server than this machine's PostgreSQL 15 exports
/// (`pg_replication_slots.inactive_since` came in 17): their panels must
/// parse, but have no data here and are not in /metrics.
const NEWER_SERVERS_ONLY: [&str; 1] = ["pgwarden_replication_slot_inactive_seconds"];

fn newer_servers_only(expr: &str) -> bool {
    metric_names(expr)
        .iter()
        .any(|m| NEWER_SERVERS_ONLY.contains(&m.as_str()))
}

fn pgwarden_ok(workdir: &Path, config: &Path, args: &[&str]) {
    let out = pgwarden(workdir)
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("run pgwarden");
    assert!(
        out.status.success(),
        "pgwarden {} failed:\n{}",
        args.join(" "),
        output_text(&out)
    );
}

#[test]
fn prometheus_runs_every_dashboard_and_alert_query_against_pgwarden_and_fires_target_down() {
    // Archiving on (to a command that always succeeds) and a bound on the
    // WAL slots keep, so the archiver and safe_wal_size series exist.
    let primary = own_cluster(
        &ClusterOptions::default()
            .setting("shared_preload_libraries", "pg_stat_statements")
            .setting("archive_mode", "on")
            .setting("archive_command", "true")
            .setting("max_slot_wal_keep_size", "1GB"),
    );
    let standby = primary.start_replica().expect("start a standby");
    prepare_primary(&primary);
    // A fleet on the primary's server: one database to check, one refused.
    for sql in [
        "CREATE DATABASE school_a",
        "CREATE DATABASE school_closed ALLOW_CONNECTIONS false",
    ] {
        primary
            .psql("postgres", sql)
            .expect("create a fleet database");
    }

    let dir = workdir();
    let pgwarden_port = free_port();
    let config = write_file(
        dir.path(),
        "pgwarden.toml",
        &format!(
            "[http]\nlisten = \"127.0.0.1:{pgwarden_port}\"\n\n\
             [checks]\ninterval = \"1s\"\n\n\
             [schema]\ndrift_interval = \"1s\"\n\n\
             [backup]\nschedule = \"*/5 * * * * *\"\n\n\
             [[targets]]\nname = \"primary\"\nurl = \"{}\"\nexpected_replicas = 1\nmigrate = true\nbackup = true\n\n\
             [[targets]]\nname = \"standby\"\nurl = \"{}\"\n\n\
             [[targets]]\nname = \"schools\"\nurl = \"{}\"\ndiscover = \"^school_\"\n",
            primary.url().expose(),
            standby.url().expose(),
            primary.url().expose()
        ),
    );
    // One applied migration and one pending; one backup already taken.
    pgwarden_ok(dir.path(), &config, &["migrate", "init"]);
    pgwarden_ok(dir.path(), &config, &["migrate", "create", "first"]);
    pgwarden_ok(dir.path(), &config, &["migrate", "up"]);
    pgwarden_ok(dir.path(), &config, &["migrate", "create", "second"]);
    pgwarden_ok(dir.path(), &config, &["backup", "--target", "primary"]);

    let serve_log = dir.path().join("serve.log");
    let log = std::fs::File::create(&serve_log).expect("serve log");
    let mut serve = Running {
        name: "pgwarden serve",
        child: pgwarden(dir.path())
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("start pgwarden serve"),
    };
    let exposition = wait_until("pgwarden's /metrics", Duration::from_secs(60), || {
        serve.assert_alive(&serve_log);
        match http_get(pgwarden_port, "/metrics")? {
            (200, body) if body.contains("pgwarden_replication_lag_bytes") => Ok(body),
            (status, _) => Err(format!("HTTP {status}, or no replication metrics yet")),
        }
    });

    // The last-run metric exists once the daemon has run migrations (SIGUSR1).
    assert_eq!(
        unsafe { libc::kill(serve.child.id() as i32, libc::SIGUSR1) },
        0
    );

    // The application: block reads for the interval hit ratio (pgwarden's
    // own no longer count), checkpoints for the requested-checkpoint share.
    let _workload = Workload::start(&primary, "SELECT count(*) FROM items; CHECKPOINT;");

    let prom_dir = workdir();
    let (_prometheus, prom) = start_prometheus(prom_dir.path(), pgwarden_port);

    // The rules loaded and evaluate without error.
    assert_rules_loaded_and_healthy(prom);

    // A few scrapes, so that range functions (increase, rate) have samples.
    wait_until("five scrapes of pgwarden", Duration::from_secs(60), || {
        let series = query(prom, "count_over_time(pgwarden_up{database=\"\"}[1m])")?;
        let scrapes = series
            .iter()
            .filter_map(|s| s["value"][1].as_str()?.parse::<f64>().ok())
            .fold(f64::INFINITY, f64::min);
        (series.len() == 3 && scrapes >= 5.0)
            .then_some(())
            .ok_or_else(|| format!("{series:?}"))
    });

    // Every alert expression parses.
    for rule in alert_rules() {
        if let Err(e) = query(prom, &rule.expr) {
            panic!(
                "alert {} does not run in Prometheus: {e}\n{}",
                rule.alert, rule.expr
            );
        }
    }

    // Every panel query parses at once and returns data for some target
    // (the first scheduled backup takes a few seconds to produce theirs).
    let panel_exprs = all_panel_exprs();
    for (panel, expr) in &panel_exprs {
        if let Err(e) = query(prom, &substitute(expr, "primary")) {
            panic!("{panel}: {expr} does not parse: {e}");
        }
    }
    let without_data = |exprs: &[(String, String)]| -> Vec<String> {
        exprs
            .iter()
            .filter(|(_, expr)| !newer_servers_only(expr))
            .filter(|(_, expr)| {
                ["primary", "standby", "schools", ".*"]
                    .iter()
                    .all(|target| {
                        query(prom, &substitute(expr, target)).map_or(true, |r| r.is_empty())
                    })
            })
            .map(|(panel, expr)| format!("{panel}: {expr}"))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let empty = without_data(&panel_exprs);
        if empty.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "panel queries without data: {empty:#?}\n/metrics:\n{}",
            http_get(pgwarden_port, "/metrics")
                .map(|r| r.1)
                .unwrap_or_default()
        );
        std::thread::sleep(Duration::from_secs(2));
    }

    // Every metric a panel or a rule names is one pgwarden exports.
    let (_, exposition_now) = http_get(pgwarden_port, "/metrics").expect("/metrics");
    let mut exposed = exposed_metrics(&exposition);
    exposed.extend(exposed_metrics(&exposition_now));
    let used: BTreeSet<String> = panel_exprs
        .iter()
        .map(|(_, expr)| expr.clone())
        .chain(alert_rules().into_iter().map(|r| r.expr))
        .flat_map(|expr| metric_names(&expr))
        .filter(|m| !PROMETHEUS_OWN_METRICS.contains(&m.as_str()))
        .filter(|m| !NEWER_SERVERS_ONLY.contains(&m.as_str()))
        .collect();
    let missing: Vec<&String> = used.iter().filter(|m| !exposed.contains(*m)).collect();
    assert!(
        missing.is_empty(),
        "used by dashboards or rules but not in /metrics: {missing:?}"
    );

    // Nothing is down yet; then the primary goes away.
    let target_down = || {
        alert_in_state(
            prom,
            "PgwardenTargetDown",
            &[("target", "primary"), ("severity", "critical")],
            &["pending", "firing"],
        )
    };
    assert!(
        target_down().is_err(),
        "PgwardenTargetDown before anything went down"
    );
    primary.stop().expect("stop the primary");
    wait_until(
        "PgwardenTargetDown{target=\"primary\"} pending or firing",
        Duration::from_secs(60),
        target_down,
    );
    serve.assert_alive(&serve_log);
}
