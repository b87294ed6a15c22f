//! A real Prometheus (Debian package `prometheus`) run by tests: started on a
//! free port in a scratch directory with the shipped scrape config and rules,
//! queried over its HTTP API, killed when the test ends.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use serde_norway::Value as Yaml;

use super::*;

/// A child process killed (and reaped) when the test ends, however it ends.
pub struct Running {
    pub name: &'static str,
    pub child: Child,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    pub fn assert_alive(&mut self, log: &Path) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{} exited early ({status}):\n{}",
                self.name,
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A plain HTTP/1.0 GET (no chunked encoding to undo): status and body.
pub fn http_get(port: u16, path: &str) -> Result<(u16, String), String> {
    let mut stream =
        TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect :{port}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    )
    .map_err(|e| format!("send: {e}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP header in {text:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no HTTP status in {head:?}"))?;
    Ok((status, body.to_string()))
}

pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match probe() {
            Ok(value) => return value,
            Err(e) if Instant::now() > deadline => panic!("waited {timeout:?} for {what}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

/// Prometheus's instant query API: Ok(result vector) or Err(its error).
pub fn query(port: u16, promql: &str) -> Result<Vec<Json>, String> {
    let encoded: String = url::form_urlencoded::byte_serialize(promql.as_bytes()).collect();
    let (status, body) = http_get(port, &format!("/api/v1/query?query={encoded}"))?;
    let reply: Json = serde_json::from_str(&body)
        .map_err(|e| format!("HTTP {status}, not JSON ({e}): {body}"))?;
    if reply["status"] != "success" {
        return Err(format!(
            "HTTP {status}: {} {}",
            reply["errorType"], reply["error"]
        ));
    }
    Ok(reply["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

/// The metric names in a Prometheus text exposition.
pub fn exposed_metrics(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(String::from)
        .collect()
}

/// Panel PromQL with Grafana's variables replaced by what Grafana would send
/// for one target (`$target` is a regex on the overview, a value on the
/// detail dashboard; both accept a plain name) and every database (`All`).
pub fn substitute(expr: &str, target: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("${database}", ".*")
        .replace("$database", ".*")
        .replace("${target}", target)
        .replace("$target", target)
}

pub fn start_prometheus(dir: &Path, pgwarden_port: u16) -> (Running, u16) {
    // The shipped scrape config and rules, scraping this pgwarden every second.
    let mut config = yaml(PROMETHEUS_CONFIG);
    config["global"]["scrape_interval"] = Yaml::String("1s".into());
    config["global"]["evaluation_interval"] = Yaml::String("1s".into());
    if let Some(map) = config.as_mapping_mut() {
        map.remove("alerting"); // no Alertmanager here
    }
    let jobs = config["scrape_configs"]
        .as_sequence_mut()
        .expect("scrape_configs");
    let job = jobs
        .iter_mut()
        .find(|j| j["job_name"].as_str() == Some("pgwarden"))
        .expect("the pgwarden job");
    job["static_configs"][0]["targets"] =
        Yaml::Sequence(vec![Yaml::String(format!("127.0.0.1:{pgwarden_port}"))]);
    std::fs::write(
        dir.join("prometheus.yml"),
        serde_norway::to_string(&config).expect("serialize prometheus.yml"),
    )
    .expect("write prometheus.yml");
    std::fs::copy(repo().join(ALERTS), dir.join("alerts.yml")).expect("copy alerts.yml");
    run_prometheus(dir)
}

/// Prometheus on a free port with `dir/prometheus.yml`, once it is ready.
pub fn run_prometheus(dir: &Path) -> (Running, u16) {
    let port = free_port();
    let log = std::fs::File::create(dir.join("prometheus.log")).expect("prometheus log");
    let child = Command::new("prometheus")
        .current_dir(dir)
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log handle"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run prometheus ({e}): install the Debian package `prometheus`")
        });
    let mut running = Running {
        name: "prometheus",
        child,
    };
    wait_until("Prometheus to be ready", Duration::from_secs(60), || {
        running.assert_alive(&dir.join("prometheus.log"));
        match http_get(port, "/-/ready")? {
            (200, _) => Ok(()),
            (status, body) => Err(format!("HTTP {status}: {body}")),
        }
    });
    (running, port)
}

/// The alerting rules Prometheus has loaded, once each has been evaluated.
pub fn evaluated_rules(port: u16) -> Vec<Json> {
    wait_until("the rules to be evaluated", Duration::from_secs(60), || {
        let (_, body) = http_get(port, "/api/v1/rules")?;
        let reply: Json = serde_json::from_str(&body).map_err(|e| e.to_string())?;
        let rules: Vec<Json> = reply["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        let evaluated = rules.iter().all(|r| {
            r["lastEvaluation"]
                .as_str()
                .is_some_and(|t| !t.starts_with("0001"))
        });
        (evaluated && !rules.is_empty())
            .then_some(rules)
            .ok_or_else(|| "rules not evaluated yet".to_string())
    })
}

/// Assert Prometheus loaded every rule of alerts.yml and evaluates each
/// without error.
pub fn assert_rules_loaded_and_healthy(port: u16) {
    let rules = evaluated_rules(port);
    let loaded: BTreeSet<&str> = rules.iter().filter_map(|r| r["name"].as_str()).collect();
    for rule in alert_rules() {
        assert!(
            loaded.contains(rule.alert.as_str()),
            "Prometheus did not load {}",
            rule.alert
        );
    }
    assert_eq!(rules.len(), alert_rules().len(), "rules loaded: {loaded:?}");
    let unhealthy: Vec<String> = rules
        .iter()
        .filter(|r| r["health"] != "ok")
        .map(|r| format!("{}: {}", r["name"], r["lastError"]))
        .collect();
    assert!(
        unhealthy.is_empty(),
        "rules failing to evaluate: {unhealthy:?}"
    );
}

/// Whether an alert with `alertname` and all of `labels` is in one of
/// `states` (`pending`, `firing`) in Prometheus's alerts API.
pub fn alert_in_state(
    port: u16,
    alertname: &str,
    labels: &[(&str, &str)],
    states: &[&str],
) -> Result<(), String> {
    let (_, body) = http_get(port, "/api/v1/alerts")?;
    let reply: Json = serde_json::from_str(&body).map_err(|e| e.to_string())?;
    let alerts = reply["data"]["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    alerts
        .iter()
        .any(|a| {
            a["labels"]["alertname"] == alertname
                && labels.iter().all(|(k, v)| a["labels"][*k] == *v)
                && states.contains(&a["state"].as_str().unwrap_or_default())
        })
        .then_some(())
        .ok_or_else(|| format!("no {alertname} {labels:?} in {states:?}; alerts: {alerts:?}"))
}

/// Every panel query of every shipped dashboard: ("file: panel title", expr).
pub fn all_panel_exprs() -> Vec<(String, String)> {
    DASHBOARDS
        .iter()
        .flat_map(|path| {
            panel_queries(&json(path))
                .into_iter()
                .map(move |(title, _, expr)| (format!("{path}: {title}"), expr))
        })
        .collect()
}
