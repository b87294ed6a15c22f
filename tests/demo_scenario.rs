//! `pgwarden demo --scenario --prometheus`: the workload makes the checks
//! warn, a real Prometheus with the shipped rules sees an alert, the status
//! page URL comes first, and Ctrl-C removes the cluster and stops Prometheus.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::serve_support::{free_addr, http_get};
use crate::support::{Interrupted, pgwarden, workdir, write_file};

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> Option<String>) {
    let deadline = Instant::now() + timeout;
    loop {
        match ok() {
            None => return,
            Some(last) if Instant::now() > deadline => {
                panic!("waited {timeout:?} for {what}:\n{last}")
            }
            Some(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

#[test]
fn the_scenario_demo_shows_warnings_fires_an_alert_and_cleans_up_on_ctrl_c() {
    let dir = workdir();
    let addr = free_addr();
    let config = write_file(
        dir.path(),
        "pgwarden.toml",
        &format!("[http]\nlisten = \"{addr}\"\n[checks]\ninterval = \"1s\"\n"),
    );
    let mut child = Interrupted(
        pgwarden(dir.path())
            .arg("--config")
            .arg(&config)
            .args(["demo", "--scenario", "--prometheus"])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let (tx, lines) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let log = || std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default();
    let mut printed: Vec<String> = Vec::new();
    while !printed.iter().any(|l| l.contains("(data in ")) {
        let line = lines
            .recv_timeout(Duration::from_secs(90))
            .unwrap_or_else(|e| panic!("demo printed {printed:?} ({e})\n{}", log()));
        printed.push(line);
    }
    assert_eq!(
        printed[0].trim(),
        format!("status:   http://{addr}/"),
        "{printed:?}"
    );
    let prometheus = printed
        .iter()
        .find_map(|l| l.trim().strip_prefix("prometheus: "))
        .unwrap_or_else(|| panic!("no Prometheus URL in {printed:?}"))
        .trim_end_matches("/alerts")
        .trim_start_matches("http://")
        .to_string();
    let data_dir = printed
        .iter()
        .find_map(|l| {
            l.split_once("(data in ")
                .map(|(_, d)| d.trim_end_matches(')').to_string())
        })
        .map(std::path::PathBuf::from)
        .unwrap();

    // Every provoked condition, as /health reports it.
    wait_until("the scenario's warnings", Duration::from_secs(60), || {
        let (_, body) = http_get(&addr, "/health", None);
        let health: serde_json::Value = serde_json::from_str(&body).ok()?;
        let status = |check: &str| {
            health["targets"][0]["checks"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["check"] == check))
                .and_then(|c| c["status"].as_str())
                .unwrap_or("")
                .to_string()
        };
        let want = [
            ("locks", "warning"),
            ("long_queries", "warning"),
            ("table_integrity", "warning"),
            ("replication", "critical"),
        ];
        want.iter()
            .any(|(check, s)| status(check) != *s)
            .then(|| format!("{:?}", want.map(|(c, _)| (c, status(c)))))
    });
    let (_, page) = http_get(&addr, "/", None);
    for text in [
        "UPDATE scenario_accounts SET balance = balance - 1",
        "UPDATE scenario_accounts SET balance = balance + 1",
        "pg_sleep(86400)",
        "idle in transaction",
        "scenario_churn",
    ] {
        assert!(page.contains(text), "{text} not on the status page");
    }

    // Prometheus, with the shipped rules, sees the blocked session.
    wait_until(
        "PgwardenBlockedSessions in Prometheus",
        Duration::from_secs(90),
        || {
            let (_, body) = http_get(&prometheus, "/api/v1/alerts", None);
            (!body.contains("PgwardenBlockedSessions")).then_some(body)
        },
    );

    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{}", log());
    assert!(
        !data_dir.exists(),
        "the demo cluster was left behind in {data_dir:?}"
    );
    assert!(std::net::TcpStream::connect(&addr).is_err());
    assert!(
        std::net::TcpStream::connect(&prometheus).is_err(),
        "Prometheus still runs after the demo stopped"
    );
}
