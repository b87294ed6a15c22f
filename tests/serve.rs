//! `pgwarden serve` as a real process against real PostgreSQL, over real HTTP.

use crate::serve_support;
use crate::support;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use serve_support::*;
use support::*;

const SECOND: Duration = Duration::from_secs(1);

fn header(addr: &str, interval: &str) -> String {
    format!("[http]\nlisten = \"{addr}\"\n[checks]\ninterval = \"{interval}\"\n")
}

#[test]
fn metrics_carry_the_contract_names_and_labels() {
    let dir = workdir();
    let url = shared().create_database().unwrap();
    let addr = free_addr();
    let config = format!(
        "{}{}",
        header(&addr, "1h"),
        target("primary", url.expose(), "migrate = true")
    );
    let serve = Serve::start(dir.path(), &addr, &config);
    serve.wait_ready();
    let scrape = serve.metrics();
    let primary = [("target", "primary")];
    assert_eq!(value(&scrape, "pgwarden_up", &primary), Some(1.0));
    let finished = value(&scrape, "pgwarden_last_cycle_timestamp_seconds", &primary).unwrap();
    assert!(finished > 1.6e9, "not a Unix time: {finished}");
    assert!(value(&scrape, "pgwarden_cycle_duration_seconds", &primary).is_some());
    assert_eq!(
        value(
            &scrape,
            "pgwarden_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&scrape, "pgwarden_config_last_reload_successful", &[]),
        Some(1.0)
    );
    for process in [
        "pgwarden_process_resident_memory_bytes",
        "pgwarden_process_cpu_seconds_total",
        "pgwarden_process_open_fds",
    ] {
        assert!(value(&scrape, process, &[]).is_some(), "{process} missing");
    }
    // Every check the checker reported is exported with its status and duration.
    let (_, health) = serve.get("/health");
    let report: serde_json::Value = serde_json::from_str(&health).unwrap();
    for check in report["targets"][0]["checks"].as_array().unwrap() {
        let labels = [
            ("target", "primary"),
            ("check", check["check"].as_str().unwrap()),
        ];
        assert!(value(&scrape, "pgwarden_check_status", &labels).is_some());
        assert!(value(&scrape, "pgwarden_check_duration_seconds", &labels).is_some());
    }
    // Every series has a target label except the daemon-wide ones.
    for sample in &scrape.samples {
        let global = sample.metric.starts_with("pgwarden_process_")
            || sample.metric == "pgwarden_build_info"
            || sample.metric == "pgwarden_config_last_reload_successful";
        assert!(
            global || sample.labels.get("target") == Some("primary"),
            "{} has no target label",
            sample.metric
        );
        assert!(sample.metric.starts_with("pgwarden_"), "{}", sample.metric);
    }
    let (status, index) = serve.get("/");
    assert_eq!(status, 200);
    assert!(index.contains("href=\"/metrics\"") && index.contains("href=\"/health\""));
    assert_eq!(serve.get("/nope").0, 404);
    assert!(serve.stop().success());
}

#[test]
fn a_scrape_costs_the_database_zero_transactions() {
    let dir = workdir();
    let url = shared().create_database().unwrap();
    let database = url.database().to_string();
    let addr = free_addr();
    // One cycle at start, then none for an hour: whatever moves is the scrapes.
    let config = format!("{}{}", header(&addr, "1h"), target("db", url.expose(), ""));
    let serve = Serve::start(dir.path(), &addr, &config);
    serve.wait_ready();
    let commits = || {
        shared()
            .psql(
                "postgres",
                &format!(
                    "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '{database}'"
                ),
            )
            .unwrap()
    };
    // An idle backend that flushed its statistics less than a second ago
    // flushes the rest within PGSTAT_IDLE_INTERVAL (10 s): wait that out, so
    // the count holds everything the first cycle did.
    let flushed = 11 * SECOND;
    std::thread::sleep(flushed);
    let before = commits();
    let counted: u64 = before.parse().unwrap_or_else(|e| panic!("{before:?}: {e}"));
    assert!(
        counted > 0,
        "the daemon's first cycle should have committed"
    );
    for _ in 0..50 {
        serve.metrics();
        assert_eq!(serve.get("/health").0, 200);
    }
    std::thread::sleep(flushed);
    assert_eq!(commits(), before, "scrapes ran transactions on {database}");
    assert!(serve.stop().success());
}

#[test]
fn up_follows_the_server_down_and_back_without_exceeding_the_pool() {
    let cluster = own_cluster(&ClusterOptions::default());
    let dir = workdir();
    let addr = free_addr();
    let config = format!(
        "{}{}",
        header(&addr, "1s"),
        target(
            "primary",
            cluster.url().expose(),
            "pool_size = 2\nmax_overflow = 0\nconnect_timeout = \"1s\""
        )
    );
    let serve = Serve::start_with(dir.path(), &addr, &config, &["--log-json"], &[]);
    let up = |v: f64| {
        move |s: &prometheus_parse::Scrape| {
            value(s, "pgwarden_up", &[("target", "primary")]) == Some(v)
        }
    };
    let sampler = ConnectionSampler::start(cluster.url().expose().to_string());
    serve.wait_metrics("pgwarden_up 1", 10 * SECOND, up(1.0));
    std::thread::sleep(3 * SECOND);
    cluster.stop().unwrap();
    // Within one interval (1s) plus the cycle itself; /metrics keeps answering 200.
    serve.wait_metrics("pgwarden_up 0 after the stop", 5 * SECOND, up(0.0));
    let (health, _) = serve.get("/health");
    assert_eq!(health, 503);
    cluster.start_again().unwrap();
    serve.wait_metrics("pgwarden_up 1 after the restart", 10 * SECOND, up(1.0));
    std::thread::sleep(3 * SECOND);
    let most = sampler.finish();
    assert!(
        most >= 1,
        "never saw pgwarden's connection: nothing was measured"
    );
    assert!(most <= 2, "{most} connections from pgwarden, pool size 2");
    assert!(serve.stop().success());
    let log = serve_log(&dir);
    assert!(!log.contains(PASSWORD), "password in the log:\n{log}");
    for line in log.lines() {
        let json: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(json["level"].is_string(), "{line}");
    }
    // One line per state change: no pool or driver chatter, no line per
    // check that could not run (a check's own status changes, such as a
    // slow first connect, are logged with their `check` field).
    let count = |text: &str| log.lines().filter(|l| l.contains(text)).count();
    assert_eq!(count("target down"), 1, "{log}");
    assert_eq!(count("reachable again"), 1, "{log}");
    let problems = log
        .lines()
        .filter(|l| l.contains("\"level\":\"WARN\"") || l.contains("\"level\":\"ERROR\""))
        .filter(|l| !l.contains("\"check\":") && !l.contains("target still down, now"))
        .count();
    assert_eq!(problems, 1, "{log}");
    assert!(!log.contains("not run"), "{log}");
}

/// Counts pgwarden's sessions in pg_stat_activity every millisecond,
/// from its own connection, and remembers the most it saw.
struct ConnectionSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<i64>,
}

impl ConnectionSampler {
    fn start(url: String) -> Self {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let mut most = 0i64;
                while !flag.load(Ordering::Relaxed) {
                    let Ok((client, conn)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await
                    else {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    };
                    tokio::spawn(conn);
                    while !flag.load(Ordering::Relaxed) {
                        let Ok(row) = client
                            .query_one(
                                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgwarden'",
                                &[],
                            )
                            .await
                        else {
                            break;
                        };
                        most = most.max(row.get::<_, i64>(0));
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
                most
            })
        });
        Self { stop, thread }
    }

    fn finish(self) -> i64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

fn serve_log(dir: &tempfile::TempDir) -> String {
    std::fs::read_to_string(dir.path().join("stderr.log")).unwrap()
}

#[test]
fn dead_and_hanging_targets_do_not_hold_up_a_healthy_one() {
    let dir = workdir();
    let url = shared().create_database().unwrap();
    let closed_port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    // Accepts connections and never says a word.
    let blackhole = TcpListener::bind("127.0.0.1:0").unwrap();
    let hanging_port = blackhole.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in blackhole.incoming() {
            held.push(stream);
        }
    });
    let addr = free_addr();
    let config = format!(
        "{}{}{}{}",
        header(&addr, "1s"),
        target("healthy", url.expose(), ""),
        target(
            "refused",
            &format!("postgres://postgres:x@127.0.0.1:{closed_port}/postgres"),
            "connect_timeout = \"1s\""
        ),
        target(
            "hanging",
            &format!("postgres://postgres:x@127.0.0.1:{hanging_port}/postgres"),
            "connect_timeout = \"60s\"\nsslmode = \"disable\""
        ),
    );
    let serve = Serve::start(dir.path(), &addr, &config);
    let healthy = [("target", "healthy")];
    let stamp = |s: &prometheus_parse::Scrape| {
        value(s, "pgwarden_last_cycle_timestamp_seconds", &healthy).unwrap_or(0.0)
    };
    let first =
        stamp(&serve.wait_metrics("a first healthy cycle", 10 * SECOND, |s| stamp(s) > 0.0));
    let later = serve.wait_metrics("three more healthy cycles", 15 * SECOND, |s| {
        stamp(s) >= first + 3.0
    });
    assert_eq!(value(&later, "pgwarden_up", &healthy), Some(1.0));
    assert_eq!(
        value(&later, "pgwarden_up", &[("target", "refused")]),
        Some(0.0)
    );
    // The hanging target is still in its first connect: not ready, yet served.
    let (ready, waiting) = serve.get("/ready");
    assert_eq!(ready, 503, "{waiting}");
    assert!(waiting.contains("hanging"), "{waiting}");
    let (status, health) = serve.get("/health");
    assert_eq!(status, 503, "{health}");
    let report: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert_eq!(report["overall"], "unhealthy");
    let refused = report["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["target"] == "refused")
        .unwrap();
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("connection refused"),
        "{refused}"
    );
    let started = Instant::now();
    assert!(serve.stop().success());
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "a hanging connect held up shutdown"
    );
}

#[test]
fn sighup_keeps_the_old_config_when_the_new_one_is_broken() {
    let dir = workdir();
    let url = shared().create_database().unwrap();
    let addr = free_addr();
    let good = format!("{}{}", header(&addr, "1s"), target("a", url.expose(), ""));
    let serve = Serve::start(dir.path(), &addr, &good);
    serve.wait_ready();
    let reload_ok = |v: f64| {
        move |s: &prometheus_parse::Scrape| {
            value(s, "pgwarden_config_last_reload_successful", &[]) == Some(v)
        }
    };

    write_file(
        dir.path(),
        "pgwarden.toml",
        &good.replace("interval", "intervall"),
    );
    serve.signal(libc::SIGHUP);
    let scrape = serve.wait_metrics("a rejected reload", 10 * SECOND, reload_ok(0.0));
    let a = [("target", "a")];
    assert_eq!(value(&scrape, "pgwarden_up", &a), Some(1.0));
    let before = value(&scrape, "pgwarden_last_cycle_timestamp_seconds", &a).unwrap();
    serve.wait_metrics("target a still collected", 10 * SECOND, |s| {
        value(s, "pgwarden_last_cycle_timestamp_seconds", &a).unwrap_or(0.0) > before
    });
    assert!(serve.log().contains("intervall"), "{}", serve.log());

    let renamed = format!("{}{}", header(&addr, "1s"), target("b", url.expose(), ""));
    write_file(dir.path(), "pgwarden.toml", &renamed);
    serve.signal(libc::SIGHUP);
    let scrape = serve.wait_metrics("target b after a good reload", 10 * SECOND, |s| {
        value(s, "pgwarden_up", &[("target", "b")]) == Some(1.0)
    });
    assert_eq!(
        value(&scrape, "pgwarden_config_last_reload_successful", &[]),
        Some(1.0)
    );
    assert_eq!(value(&scrape, "pgwarden_up", &a), None);
    assert!(serve.stop().success());
}

#[test]
fn sigterm_exits_0_promptly_even_with_a_client_connected() {
    let dir = workdir();
    let url = shared().create_database().unwrap();
    let addr = free_addr();
    let config = format!("{}{}", header(&addr, "1s"), target("a", url.expose(), ""));
    let serve = Serve::start(dir.path(), &addr, &config);
    serve.wait_ready();
    // An idle keep-alive client must not hold the shutdown up.
    let _idle = std::net::TcpStream::connect(&addr).unwrap();
    let started = Instant::now();
    let status = serve.stop();
    assert_eq!(status.code(), Some(0));
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(std::net::TcpStream::connect(&addr).is_err());
}

#[test]
fn sigint_exits_0_too() {
    let dir = workdir();
    let url = shared().create_database().unwrap();
    let addr = free_addr();
    let config = format!("{}{}", header(&addr, "1s"), target("a", url.expose(), ""));
    let mut serve = Serve::start(dir.path(), &addr, &config);
    serve.wait_ready();
    serve.signal(libc::SIGINT);
    let status = serve.child.take().unwrap().wait().unwrap();
    assert_eq!(status.code(), Some(0), "{}", serve.log());
}

#[test]
fn basic_auth_rejects_a_wrong_password() {
    let dir = workdir();
    let url = shared().create_database().unwrap();
    let addr = free_addr();
    let hash = bcrypt::hash("right-horse", 4).unwrap();
    let config = format!(
        "{}[http.basic_auth_users]\nprometheus = \"{hash}\"\n{}",
        header(&addr, "1s"),
        target("a", url.expose(), "")
    );
    let serve = Serve::start(dir.path(), &addr, &config);
    for path in ["/metrics", "/probe?target=a", "/health", "/ready", "/"] {
        assert_eq!(
            http_get(&addr, path, None).0,
            401,
            "{path} without credentials"
        );
        assert_eq!(
            http_get(&addr, path, Some(("prometheus", "wrong-horse"))).0,
            401,
            "{path} with a wrong password"
        );
        assert_eq!(
            http_get(&addr, path, Some(("grafana", "right-horse"))).0,
            401,
            "{path} with an unknown user"
        );
    }
    for _ in 0..3 {
        let (status, body) = http_get(&addr, "/metrics", Some(("prometheus", "right-horse")));
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("pgwarden_build_info"));
    }
    let (status, body) = http_get(
        &addr,
        "/probe?target=a",
        Some(("prometheus", "right-horse")),
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("pgwarden_collector_restarts_total{target=\"a\"}"),
        "{body}"
    );
    // The hash is a secret too: `config check` shows it redacted.
    let out = pgwarden(dir.path())
        .args([
            "--config",
            serve.config.to_str().unwrap(),
            "config",
            "check",
        ])
        .output()
        .unwrap();
    assert!(!output_text(&out).contains(&hash), "{}", output_text(&out));
    assert!(serve.stop().success());
}

#[test]
fn a_bad_http_config_is_refused_with_the_key_named() {
    let dir = workdir();
    let url = shared().create_database().unwrap();
    let config = format!(
        "[http]\nlisten = \"127.0.0.1:0\"\n[http.basic_auth_users]\nprometheus = \"plaintext\"\n{}",
        target("a", url.expose(), "")
    );
    let path = write_file(dir.path(), "pgwarden.toml", &config);
    let out = pgwarden(dir.path())
        .args(["--config", path.to_str().unwrap(), "serve"])
        .output()
        .unwrap();
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("http.basic_auth_users.prometheus"), "{text}");
    assert!(text.contains("htpasswd"), "{text}");

    // `config check` catches the same mistakes before a deploy.
    let half_tls = format!(
        "[http]\ntls_cert_file = \"{}\"\n{}",
        path.display(),
        target("a", url.expose(), "")
    );
    let path = write_file(dir.path(), "half-tls.toml", &half_tls);
    let out = pgwarden(dir.path())
        .args(["--config", path.to_str().unwrap(), "config", "check"])
        .output()
        .unwrap();
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("http.tls_key_file"), "{text}");

    let out = pgwarden(dir.path()).arg("serve").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(output_text(&out).contains("no database configured"));
}

#[test]
fn tls_serves_https_with_the_configured_certificate() {
    let dir = workdir();
    let url = shared().create_database().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let out = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl ({e}); apt-get install openssl"));
    assert!(out.status.success(), "{}", output_text(&out));
    let addr = free_addr();
    let config = format!(
        "[http]\nlisten = \"{addr}\"\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n{}",
        cert.display(),
        key.display(),
        target("a", url.expose(), "")
    );
    let serve = Serve::start(dir.path(), &addr, &config);
    let out = std::process::Command::new("curl")
        .args(["-sS", "--fail", "--cacert"])
        .arg(&cert)
        .arg(format!("https://{addr}/metrics"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run curl ({e}); apt-get install curl"));
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("pgwarden_build_info"));
    // Plain HTTP on the TLS port gets no metrics.
    let plain = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "5"])
        .arg(format!("http://{addr}/metrics"))
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&plain.stdout).contains("pgwarden_build_info"));
    assert!(serve.stop().success());
}

#[test]
fn sigusr1_runs_migrations_and_exports_the_outcome() {
    let dir = workdir();
    let url = shared().create_database().unwrap();
    let addr = free_addr();
    let config = format!(
        "{}{}{}",
        header(&addr, "1h"),
        target("migrated", url.expose(), "migrate = true"),
        target("left-alone", url.expose(), "migrate = false"),
    );
    let serve = Serve::start(dir.path(), &addr, &config);
    serve.wait_ready();
    serve.signal(libc::SIGUSR1);
    // Whatever the engine says, the run's outcome is exported for migrate targets only.
    let scrape = serve.wait_metrics("the migration outcome", 30 * SECOND, |s| {
        value(
            s,
            "pgwarden_migration_last_run_success",
            &[("target", "migrated")],
        )
        .is_some()
    });
    assert_eq!(
        value(
            &scrape,
            "pgwarden_migration_last_run_success",
            &[("target", "left-alone")]
        ),
        None
    );
    assert!(serve.log().contains("SIGUSR1"), "{}", serve.log());
    assert!(serve.stop().success());
}

#[test]
fn systemd_is_notified_ready_watchdog_reloading_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    let dir = workdir();
    let url = shared().create_database().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(10 * SECOND)).unwrap();
    let addr = free_addr();
    let config = format!("{}{}", header(&addr, "1s"), target("a", url.expose(), ""));
    let serve = Serve::start_with(
        dir.path(),
        &addr,
        &config,
        &[],
        &[
            ("NOTIFY_SOCKET", socket_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "400000"),
        ],
    );
    let mut seen: Vec<String> = Vec::new();
    let mut wait_for = |prefix: &str| {
        let mut buf = [0u8; 1024];
        loop {
            let n = socket
                .recv(&mut buf)
                .unwrap_or_else(|e| panic!("no {prefix} (saw {seen:?}): {e}"));
            let message = String::from_utf8_lossy(&buf[..n]).into_owned();
            seen.push(message.clone());
            if message.starts_with(prefix) {
                return;
            }
        }
    };
    wait_for("READY=1");
    wait_for("WATCHDOG=1");
    wait_for("WATCHDOG=1");
    serve.signal(libc::SIGHUP);
    wait_for("RELOADING=1");
    wait_for("READY=1");
    let stopped = std::thread::spawn(move || serve.stop());
    wait_for("STOPPING=1");
    assert!(stopped.join().unwrap().success());
}
