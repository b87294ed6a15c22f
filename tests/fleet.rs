//! Fleets on real clusters: discovery adds and drops databases live,
//! refused databases are reported, each series is exported once, `/probe`
//! answers one unit, the connection budget holds with 100 databases, and
//! two shards split a fleet for a real Prometheus.

use crate::monitoring::live;
use crate::serve_support;
use crate::support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serve_support::*;
use support::*;

const WAIT: Duration = Duration::from_secs(60);

fn fleet_cluster() -> Cluster {
    own_cluster(&ClusterOptions::default().setting("max_connections", "200"))
}

/// `[fleet]` and one discovery target named `fleet` on `cluster`.
fn fleet_config(addr: &str, cluster: &Cluster, fleet: &str) -> String {
    format!(
        "[http]\nlisten = \"{addr}\"\n[checks]\ninterval = \"1s\"\ntimeout = \"3s\"\n[fleet]\ndiscover_interval = \"2s\"\n{fleet}\n{}",
        target("fleet", cluster.url().expose(), "discover = \"^school_\"")
    )
}

fn up(scrape: &prometheus_parse::Scrape, database: &str) -> Option<f64> {
    value(
        scrape,
        "pgwarden_up",
        &[("target", "fleet"), ("database", database)],
    )
}

/// The databases with a `pgwarden_up` series.
fn databases(scrape: &prometheus_parse::Scrape) -> BTreeSet<String> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == "pgwarden_up")
        .filter_map(|s| s.labels.get("database").map(str::to_string))
        .collect()
}

/// Every series (name and labels) must appear once.
pub fn assert_no_series_twice(body: &str) {
    let mut seen = BTreeSet::new();
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let series = line.rsplit_once(' ').map_or(line, |(series, _)| series);
        assert!(seen.insert(series.to_string()), "exported twice: {series}");
    }
}

#[test]
fn discovery_follows_the_server_and_reports_refused_databases() {
    let cluster = fleet_cluster();
    for sql in [
        "CREATE DATABASE school_a",
        "CREATE DATABASE school_b",
        "CREATE DATABASE other_c",
        "CREATE DATABASE school_closed ALLOW_CONNECTIONS false",
        "CREATE DATABASE school_full CONNECTION LIMIT 0",
    ] {
        cluster.psql("postgres", sql).unwrap();
    }
    cluster
        .psql("school_a", "CREATE TABLE pupils (id int PRIMARY KEY)")
        .unwrap();
    let dir = workdir();
    let addr = free_addr();
    let serve = Serve::start(dir.path(), &addr, &fleet_config(&addr, &cluster, ""));

    let scrape = serve.wait_metrics("school_a and school_b up", WAIT, |s| {
        up(s, "school_a") == Some(1.0) && up(s, "school_b") == Some(1.0)
    });
    assert_eq!(
        databases(&scrape),
        ["school_a", "school_b", "school_closed", "school_full"]
            .map(String::from)
            .into(),
        "other_c does not match; templates are never watched"
    );
    assert_eq!(up(&scrape, "school_closed"), Some(0.0));
    assert_eq!(up(&scrape, "school_full"), Some(0.0));
    assert_eq!(
        value(
            &scrape,
            "pgwarden_discovery_databases",
            &[("target", "fleet")]
        ),
        Some(4.0)
    );
    assert_eq!(
        value(&scrape, "pgwarden_up", &[("target", "fleet")]),
        Some(1.0),
        "the server's own unit"
    );
    let (_, page) = serve.get("/");
    assert!(page.contains("4 database(s) watched · 2 down"), "{page}");
    assert!(page.contains("school_closed"), "the worst are listed:\n{page}");
    let (_, health) = serve.get("/health");
    assert!(health.contains("datallowconn = false"), "{health}");
    assert!(health.contains("CONNECTION LIMIT 0"), "{health}");

    // Server-wide series come once, from the target's own unit; database
    // series once per database, from the database's.
    let (_, body) = serve.get("/metrics");
    assert_no_series_twice(&body);
    assert!(
        body.contains("pgwarden_database_size_bytes{target=\"fleet\",database=\"school_a\"}"),
        "{body}"
    );
    assert!(
        body.contains(
            "pgwarden_tables_without_primary_key{target=\"fleet\",database=\"school_b\"}"
        ),
        "{body}"
    );
    assert!(
        !body.contains("pgwarden_tables_without_primary_key{target=\"fleet\"}"),
        "database checks must not run in the server's unit:\n{body}"
    );
    assert!(
        !body.contains("pgwarden_replication_replicas{target=\"fleet\",database="),
        "server checks must not run per database:\n{body}"
    );

    // /probe answers one database, from memory.
    let (status, probe) = serve.get("/probe?target=fleet&database=school_a");
    assert_eq!(status, 200, "{probe}");
    assert!(
        probe.contains("pgwarden_up{target=\"fleet\",database=\"school_a\"} 1"),
        "{probe}"
    );
    assert!(!probe.contains("school_b"), "{probe}");
    let (status, probe) = serve.get("/probe?target=fleet");
    assert_eq!(status, 200, "{probe}");
    assert!(probe.contains("pgwarden_up{target=\"fleet\"} 1"), "{probe}");
    assert!(
        !probe.contains("pgwarden_up{target=\"fleet\",database="),
        "the target alone, not its databases:\n{probe}"
    );
    let (status, missing) = serve.get("/probe?target=nope");
    assert_eq!(status, 404);
    assert!(missing.contains("the targets are: fleet"), "{missing}");
    let (status, missing) = serve.get("/probe?target=fleet&database=nope");
    assert_eq!(status, 404);
    assert!(missing.contains("school_a"), "{missing}");
    let (status, _) = serve.get("/probe");
    assert_eq!(status, 400);

    // Live: a new database is added, a dropped one goes, without a restart.
    cluster
        .psql("postgres", "CREATE DATABASE school_new")
        .unwrap();
    cluster
        .psql("postgres", "DROP DATABASE school_b WITH (FORCE)")
        .unwrap();
    serve.wait_metrics("school_new added and school_b gone", WAIT, |s| {
        up(s, "school_new") == Some(1.0) && !databases(s).contains("school_b")
    });
    let log = serve.log();
    assert!(log.contains("watching a discovered database"), "{log}");

    // A server that is down: discovery says so in a metric, the databases
    // it knew are down, and all come back with the server.
    cluster.stop().unwrap();
    serve.wait_metrics("discovery down", WAIT, |s| {
        value(s, "pgwarden_discovery_up", &[("target", "fleet")]) == Some(0.0)
            && up(s, "school_a") == Some(0.0)
    });
    cluster.start_again().unwrap();
    serve.wait_metrics("the fleet back", WAIT, |s| {
        value(s, "pgwarden_discovery_up", &[("target", "fleet")]) == Some(1.0)
            && up(s, "school_a") == Some(1.0)
            && up(s, "school_new") == Some(1.0)
    });
    serve.stop();
}

#[test]
fn a_hundred_databases_never_take_more_than_the_server_cap() {
    let cluster = fleet_cluster();
    cluster.psql("postgres", "CREATE DATABASE tmpl").unwrap();
    cluster
        .psql(
            "tmpl",
            "CREATE TABLE lessons (id int PRIMARY KEY, title text); CREATE INDEX ON lessons (title)",
        )
        .unwrap();
    for n in 0..100 {
        cluster
            .psql(
                "postgres",
                &format!("CREATE DATABASE school_{n:03} TEMPLATE tmpl"),
            )
            .unwrap();
    }
    let dir = workdir();
    let addr = free_addr();
    let fleet = "max_connections_per_server = 3\nmax_concurrent_databases = 2";
    let serve = Serve::start(dir.path(), &addr, &fleet_config(&addr, &cluster, fleet));
    let mut most = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        // Every backend of a TCP client: pgwarden's (psql here uses the socket).
        let backends = backend_titles(&cluster.data_dir(), "127.0.0.1(").len();
        most = most.max(backends);
        assert!(backends <= 3, "{backends} backends above the cap of 3");
        let scrape = serve.metrics();
        let checked = databases(&scrape)
            .iter()
            .filter(|db| up(&scrape, db) == Some(1.0))
            .count();
        if checked == 100 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {checked} of 100 databases checked:\n{}",
            serve.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(most >= 2, "the databases were checked with {most} backends");
    serve.stop();
}

/// Two instances with `--shard 1/2` and `--shard 2/2` of one config, and a
/// real Prometheus scraping both: every database is scraped exactly once,
/// and one created while running lands in exactly one shard.
#[test]
fn two_shards_split_a_fleet_for_prometheus() {
    let cluster = fleet_cluster();
    for n in 0..20 {
        cluster
            .psql("postgres", &format!("CREATE DATABASE school_{n:02}"))
            .unwrap();
    }
    let dirs = [workdir(), workdir()];
    let shards: Vec<Serve> = dirs
        .iter()
        .enumerate()
        .map(|(i, dir)| {
            let addr = free_addr();
            // One shard from the file, the other from the flag.
            match i {
                0 => {
                    let config = fleet_config(&addr, &cluster, "shard = \"1/2\"");
                    Serve::start(dir.path(), &addr, &config)
                }
                _ => {
                    let config = fleet_config(&addr, &cluster, "");
                    Serve::start_serving(dir.path(), &addr, &config, &["--shard", "2/2"])
                }
            }
        })
        .collect();
    let prometheus_dir = workdir();
    let jobs: String = shards
        .iter()
        .enumerate()
        .map(|(i, serve)| {
            format!(
                "  - job_name: shard{}\n    static_configs:\n      - targets: ['{}']\n",
                i + 1,
                serve.addr
            )
        })
        .collect();
    std::fs::write(
        prometheus_dir.path().join("prometheus.yml"),
        format!("global:\n  scrape_interval: 1s\nscrape_configs:\n{jobs}"),
    )
    .unwrap();
    let (_prometheus, port) = live::run_prometheus(prometheus_dir.path());

    let scraped = |expected: usize| {
        live::wait_until("every database scraped once", WAIT, || {
            let series = live::query(port, "pgwarden_up{database=~\"school_.*\"}")?;
            let mut owners = std::collections::BTreeMap::new();
            for s in &series {
                let db = s["metric"]["database"].as_str().unwrap_or("").to_string();
                let job = s["metric"]["job"].as_str().unwrap_or("").to_string();
                owners.entry(db).or_insert_with(Vec::new).push(job);
            }
            let twice: Vec<_> = owners.iter().filter(|(_, jobs)| jobs.len() > 1).collect();
            assert!(twice.is_empty(), "scraped by two shards: {twice:?}");
            match owners.len() == expected {
                true => Ok(owners),
                false => Err(format!(
                    "{} of {expected} databases: {owners:?}",
                    owners.len()
                )),
            }
        })
    };
    let owners = scraped(20);
    let jobs: BTreeSet<&String> = owners.values().flatten().collect();
    assert_eq!(jobs.len(), 2, "both shards take some databases: {owners:?}");

    cluster
        .psql("postgres", "CREATE DATABASE school_late")
        .unwrap();
    let owners = scraped(21);
    assert_eq!(owners["school_late"].len(), 1, "{owners:?}");
    // The target's own (server-wide) unit is in one shard too.
    let server = live::query(port, "pgwarden_up{target=\"fleet\",database=\"\"}").unwrap();
    assert_eq!(server.len(), 1, "{server:?}");
    for serve in shards {
        serve.stop();
    }
}

/// A database's checks share its one connection in turn: a table locked
/// there makes the checks that touch it time out, while the others of that
/// database wait their turn (not "no free connection") and the other
/// databases go on.
#[test]
fn a_lock_in_one_database_costs_only_the_checks_it_blocks() {
    let cluster = fleet_cluster();
    for db in ["school_a", "school_b"] {
        cluster
            .psql("postgres", &format!("CREATE DATABASE {db}"))
            .unwrap();
        cluster
            .psql(db, "CREATE TABLE pupils (id int PRIMARY KEY)")
            .unwrap();
    }
    let dir = workdir();
    let addr = free_addr();
    // Three checks block on the lock in turn (disk_usage sizes the table,
    // two custom checks count it) and the pool wait is short: the check
    // queued behind them (custom `alive`) waits far longer than
    // pool_timeout + checks.timeout, which is a queue, not an exhausted pool.
    let counting = |name: &str| {
        format!(
            "[[checks.custom]]\nname = \"{name}\"\nsql = \"SELECT count(*) AS n FROM pupils\"\nvalues = [\"n\"]\nper_database = true\n"
        )
    };
    let custom = format!(
        "{}{}[[checks.custom]]\nname = \"alive\"\nsql = \"SELECT 1 AS n\"\nvalues = [\"n\"]\nper_database = true\n",
        counting("pupils"),
        counting("pupils_again")
    );
    let config = fleet_config(&addr, &cluster, &custom).replace(
        "discover = \"^school_\"",
        "discover = \"^school_\"\npool_timeout = \"1s\"",
    );
    let serve = Serve::start(dir.path(), &addr, &config);
    serve.wait_metrics("both databases up", WAIT, |s| {
        up(s, "school_a") == Some(1.0) && up(s, "school_b") == Some(1.0)
    });
    let rt = tokio::runtime::Runtime::new().unwrap();
    let locker = lock_table(&rt, &cluster.url_for("school_a"), "pupils");
    let status = |s: &prometheus_parse::Scrape, db: &str, check: &str| {
        let labels = [("target", "fleet"), ("database", db), ("check", check)];
        value(s, "pgwarden_check_status", &labels)
    };
    let scrape = serve.wait_metrics(
        "the checks of school_a that read pupils in error",
        WAIT,
        |s| {
            status(s, "school_a", "disk_usage") == Some(3.0)
                && status(s, "school_a", "custom_pupils") == Some(3.0)
                && status(s, "school_a", "custom_pupils_again") == Some(3.0)
        },
    );
    let (_, health) = serve.get("/health");
    assert!(!health.contains("no free connection"), "{health}");
    assert!(
        health.contains("timed out") || health.contains("lock"),
        "{health}"
    );
    for check in ["long_queries", "locks", "custom_alive"] {
        assert_eq!(
            status(&scrape, "school_a", check),
            Some(0.0),
            "{check} waited its turn:\n{health}"
        );
    }
    for check in ["disk_usage", "custom_pupils", "indexes", "long_queries"] {
        assert_eq!(status(&scrape, "school_b", check), Some(0.0), "{check}");
    }
    assert_eq!(up(&scrape, "school_a"), Some(1.0));
    drop(locker);
    serve.wait_metrics("school_a ok again", WAIT, |s| {
        status(s, "school_a", "disk_usage") == Some(0.0)
    });
    serve.stop();
}
