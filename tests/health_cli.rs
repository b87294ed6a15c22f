//! `pgwarden health` through the binary: what an operator sees and the exit
//! codes scripts rely on (0 ok, 1 warning, 2 critical/error, 3 unreachable).

use crate::support;

use support::*;

/// Latency thresholds out of reach, so only the provoked condition decides.
pub const RELAXED: &str = "[checks.connectivity]\nlatency_warning = \"1m\"\nlatency_critical = \"2m\"\n\
     [checks.performance]\nprobe_warning = \"1m\"\nprobe_critical = \"2m\"\n";

fn health(dir: &std::path::Path, url: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let config = format!("{RELAXED}\n[[targets]]\nname = \"main\"\nurl = \"{url}\"\n");
    let path = write_file(dir, "pgwarden.toml", &config);
    let out = pgwarden(dir)
        .args(["--config", path.to_str().unwrap(), "health"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        output_text(&out),
    )
}

#[test]
fn a_healthy_database_prints_ten_ok_lines_and_exits_0() {
    let dir = workdir();
    let url = shared().create_database().unwrap();
    let (code, stdout, all) = health(dir.path(), url.expose(), &[]);
    assert_eq!(code, Some(0), "{all}");
    assert!(stdout.contains("overall: healthy"), "{stdout}");
    for name in pgwarden::checks::CHECK_NAMES {
        let line = stdout
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .unwrap_or_else(|| panic!("no line for {name}:\n{stdout}"));
        assert!(line.trim_start().starts_with("OK"), "{line}");
    }
    assert!(!all.contains(PASSWORD), "password printed:\n{all}");
}

#[test]
fn a_warning_exits_1_and_detailed_shows_measurements_and_offenders() {
    let dir = workdir();
    let url = shared().create_database().unwrap();
    shared()
        .psql(
            &url.database(),
            "CREATE TABLE audit_log (at timestamptz, what text)",
        )
        .unwrap();
    let (code, stdout, all) = health(dir.path(), url.expose(), &[]);
    assert_eq!(code, Some(1), "{all}");
    assert!(stdout.contains("overall: degraded"), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.contains("table_integrity"))
        .unwrap();
    assert!(
        line.contains("WARNING") && line.contains("public.audit_log"),
        "{line}"
    );

    let (code, stdout, all) = health(
        dir.path(),
        url.expose(),
        &["--check", "table_integrity", "--detailed"],
    );
    assert_eq!(code, Some(1), "{all}");
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.contains("OK") || l.contains("WARNING"))
            .count(),
        1,
        "{stdout}"
    );
    assert!(
        stdout.contains("pgwarden_tables_without_primary_key 1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("tables_without_primary_key: [\"public.audit_log\"]"),
        "{stdout}"
    );
}

#[test]
fn a_critical_exits_2_and_json_prints_the_report() {
    let dir = workdir();
    let url = shared().create_database().unwrap();
    shared()
        .psql(
            &url.database(),
            "CREATE SEQUENCE invoice_no MAXVALUE 100; SELECT setval('invoice_no', 99)",
        )
        .unwrap();
    let (code, stdout, all) = health(dir.path(), url.expose(), &["--json"]);
    assert_eq!(code, Some(2), "{all}");
    let report: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(report["overall"], "unhealthy");
    let checks = report["targets"][0]["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 10);
    let integrity = checks
        .iter()
        .find(|c| c["check"] == "table_integrity")
        .unwrap();
    assert_eq!(integrity["status"], "critical");
    assert!(
        integrity["summary"]
            .as_str()
            .unwrap()
            .contains("public.invoice_no")
    );
}

#[test]
fn an_unreachable_database_exits_3_naming_why() {
    let dir = workdir();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://app:Secr3t-pw@127.0.0.1:{port}/app");
    let (code, stdout, all) = health(dir.path(), &url, &[]);
    assert_eq!(code, Some(3), "{all}");
    assert!(stdout.contains("connection refused"), "{stdout}");
    assert!(!all.contains("Secr3t-pw"), "password printed:\n{all}");
}

#[test]
fn an_unknown_check_or_target_is_a_usage_error() {
    let dir = workdir();
    let url = shared().url();
    let (code, _, all) = health(dir.path(), url.expose(), &["--check", "lock"]);
    assert_eq!(code, Some(2), "{all}");
    assert!(
        all.contains("unknown check `lock`") && all.contains("`locks`"),
        "{all}"
    );
    let (code, _, all) = health(dir.path(), url.expose(), &["--target", "mian"]);
    assert_eq!(code, Some(2), "{all}");
    assert!(all.contains("no target named `mian`"), "{all}");
}
