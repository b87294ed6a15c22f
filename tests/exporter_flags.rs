//! The Prometheus exporters' conventions: `--web.listen-address` (and its
//! environment variable), `--web.config.file` (TLS and basic auth in the
//! exporter-toolkit's YAML), gzip and OpenMetrics on `/metrics`, and the
//! `--log.format` / `--log.level` spellings.

use std::path::Path;
use std::process::{Command, Output};

use crate::serve_support::{Serve, free_addr, http_get, target};
use crate::support::{output_text, pgwarden, shared, workdir, write_file};

/// A config whose `http.listen` is somewhere the flags must move it from.
fn config(url: &str) -> String {
    format!(
        "[http]\nlisten = \"{}\"\n[checks]\ninterval = \"1h\"\n{}",
        free_addr(),
        target("a", url, "")
    )
}

fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run curl ({e}); apt-get install curl"))
}

#[test]
fn web_listen_address_by_flag_or_environment_beats_http_listen() {
    let dir = workdir();
    let url = shared().create_database().unwrap();
    let addr = free_addr();
    let serve = Serve::start_with(
        dir.path(),
        &addr,
        &config(url.expose()),
        &["--web.listen-address", &addr],
        &[],
    );
    serve.wait_ready();
    assert!(serve.stop().success());

    let addr = free_addr();
    let serve = Serve::start_with(
        dir.path(),
        &addr,
        &config(url.expose()),
        &[],
        &[("PGWARDEN_WEB_LISTEN_ADDRESS", &addr)],
    );
    serve.wait_ready();
    assert!(serve.stop().success());

    let out = pgwarden(dir.path())
        .args(["--web.listen-address", "nonsense", "config", "check"])
        .env("DATABASE_URL", url.expose())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("--web.listen-address"),
        "{}",
        output_text(&out)
    );
}

fn make_cert(dir: &Path) {
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .args(["-keyout", "key.pem", "-out", "cert.pem"])
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl ({e}); apt-get install openssl"));
    assert!(out.status.success(), "{}", output_text(&out));
}

#[test]
fn an_exporter_toolkit_web_config_turns_on_tls_and_basic_auth() {
    let dir = workdir();
    let url = shared().create_database().unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    make_cert(&certs);
    let hash = bcrypt::hash("right-horse", 4).unwrap();
    // Relative paths are relative to the web config file, as in the toolkit.
    let web = write_file(
        &certs,
        "web.yml",
        &format!(
            "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\nbasic_auth_users:\n  prometheus: {hash}\n"
        ),
    );
    let addr = free_addr();
    let serve = Serve::start_with(
        dir.path(),
        &addr,
        &config(url.expose()),
        &[
            "--web.listen-address",
            &addr,
            "--web.config.file",
            web.to_str().unwrap(),
        ],
        &[],
    );
    let cacert = certs.join("cert.pem");
    let metrics_url = format!("https://{addr}/metrics");
    let get = |user: &str| {
        curl(&[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--cacert",
            cacert.to_str().unwrap(),
            "--user",
            user,
            &metrics_url,
        ])
    };
    let ok = get("prometheus:right-horse");
    assert_eq!(
        String::from_utf8_lossy(&ok.stdout),
        "200",
        "{}",
        output_text(&ok)
    );
    let wrong = get("prometheus:wrong-horse");
    assert_eq!(String::from_utf8_lossy(&wrong.stdout), "401");
    assert!(serve.stop().success());

    // A toolkit key pgwarden does not serve is refused by name, not ignored.
    std::fs::write(&web, "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  client_ca_file: ca.pem\n").unwrap();
    let out = pgwarden(dir.path())
        .args([
            "--web.config.file",
            web.to_str().unwrap(),
            "config",
            "check",
        ])
        .env("DATABASE_URL", url.expose())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    let text = output_text(&out);
    assert!(
        text.contains("client_ca_file") && text.contains("web.yml"),
        "{text}"
    );
}

#[test]
fn metrics_come_gzipped_and_as_openmetrics_when_asked() {
    let dir = workdir();
    let url = shared().create_database().unwrap();
    let addr = free_addr();
    let serve = Serve::start_with(
        dir.path(),
        &addr,
        &config(url.expose()),
        &["--web.listen-address", &addr],
        &[],
    );
    serve.wait_ready();
    let metrics_url = format!("http://{addr}/metrics");
    let headers = dir.path().join("headers");
    // What Prometheus sends.
    let out = curl(&[
        "-D",
        headers.to_str().unwrap(),
        "--compressed",
        "-H",
        "Accept: application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        &metrics_url,
    ]);
    assert!(out.status.success(), "{}", output_text(&out));
    let head = std::fs::read_to_string(&headers).unwrap().to_lowercase();
    assert!(head.contains("content-encoding: gzip"), "{head}");
    assert!(
        head.contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    let body = String::from_utf8(out.stdout).unwrap();
    assert!(body.ends_with("# EOF\n"), "{body}");
    assert!(
        body.contains("# TYPE pgwarden_collector_restarts counter\n"),
        "{body}"
    );
    assert!(
        body.contains("\npgwarden_collector_restarts_total{target=\"a\"} 0\n"),
        "{body}"
    );
    assert!(body.contains("\npgwarden_up{target=\"a\"} 1\n"), "{body}");

    // No Accept-Encoding, no Accept: plain Prometheus text, as before.
    let (status, plain) = http_get(&addr, "/metrics", None);
    assert_eq!(status, 200);
    assert!(plain.contains("# TYPE pgwarden_collector_restarts_total counter\n"));
    assert!(!plain.contains("# EOF"));
    assert!(serve.stop().success());
}

#[test]
fn log_format_and_log_level_are_spelt_as_the_exporters_spell_them() {
    let dir = workdir();
    let url = shared().create_database().unwrap();
    let addr = free_addr();
    let serve = Serve::start_with(
        dir.path(),
        &addr,
        &config(url.expose()),
        &[
            "--web.listen-address",
            &addr,
            "--log.format",
            "json",
            "--log.level",
            "debug",
        ],
        &[],
    );
    serve.wait_ready();
    assert!(serve.stop().success());
    let log = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["level"] == "DEBUG"),
        "no debug line:\n{log}"
    );

    let out = pgwarden(dir.path())
        .args(["--log.level", "==", "config", "check"])
        .env("DATABASE_URL", url.expose())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("--log.level"),
        "{}",
        output_text(&out)
    );
    let out = pgwarden(dir.path())
        .args(["--log.format", "xml", "config", "check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        output_text(&out).contains("--log.format"),
        "{}",
        output_text(&out)
    );
}
