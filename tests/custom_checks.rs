//! `[[checks.custom]]` against real PostgreSQL: gauges and a check status on
//! `/metrics` from `pgwarden serve`, thresholds, a failing or sleeping query
//! marking only its own check `error`, writes refused by the read-only
//! session, the series limit, and `pgwarden health` listing custom checks.
//! Bad entries are refused at load in tests/bad_input.rs.

use crate::health_cli::RELAXED;
use crate::serve_support;
use crate::support;

use std::time::{Duration, Instant};

use serde_json::Value;
use serve_support::*;
use support::*;

/// `pgwarden health --json [args]` with `custom` (TOML) after the relaxed
/// thresholds: (exit code, the report, everything printed).
fn health_json(
    dir: &std::path::Path,
    url: &str,
    custom: &str,
    args: &[&str],
) -> (Option<i32>, Value, String) {
    let out = health(dir, url, custom, &[&["--json"], args].concat());
    let text = output_text(&out);
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not a JSON report ({e}):\n{text}"));
    (out.status.code(), report, text)
}

fn health(dir: &std::path::Path, url: &str, custom: &str, args: &[&str]) -> std::process::Output {
    let config = format!("{RELAXED}\n{custom}\n{}", target("main", url, ""));
    let path = write_file(dir, "pgwarden.toml", &config);
    pgwarden(dir)
        .args(["--config", path.to_str().unwrap(), "health"])
        .args(args)
        .output()
        .unwrap()
}

/// The check `name` of the report's only target.
fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    let checks = report["targets"][0]["checks"].as_array().unwrap();
    checks
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {report:#}"))
}

/// Every built-in check is ok: a custom check's trouble stays its own.
fn built_ins_ok(report: &Value) {
    for name in pgwarden::checks::CHECK_NAMES {
        let found = check(report, name);
        assert_eq!(found["status"], "ok", "{name}: {found:#}");
    }
}

/// One `[[checks.custom]]` entry; `sql` goes in a TOML literal string.
fn entry(name: &str, sql: &str, extra: &str) -> String {
    format!("[[checks.custom]]\nname = \"{name}\"\nsql = '''{sql}'''\n{extra}\n")
}

#[test]
fn a_custom_check_is_served_as_labelled_gauges_with_a_status_and_thresholds() {
    let dir = workdir();
    let url = shared().create_database().unwrap();
    let db = url.database();
    // A NULL state, and one with a quote, a backslash and a newline.
    shared()
        .psql(
            &db,
            r#"CREATE TABLE jobs (state text, created_at timestamptz NOT NULL DEFAULT now() - interval '90 seconds');
               INSERT INTO jobs (state) VALUES ('new'), ('new'), ('failed'), (NULL), (E'we"ird\\x\nline')"#,
        )
        .unwrap();
    let addr = free_addr();
    let custom = entry(
        "queue",
        "SELECT state, count(*) AS jobs, max(extract(epoch FROM now() - created_at)) AS oldest_seconds \
         FROM jobs GROUP BY state ORDER BY state",
        "help = \"Jobs in the queue by state\"\nlabels = [\"state\"]\nvalues = [\"jobs\", \"oldest_seconds\"]\n\
         [[checks.custom.thresholds]]\ncolumn = \"jobs\"\nwarning = 3\ncritical = 5",
    );
    let config = format!(
        "[http]\nlisten = \"{addr}\"\n[checks]\ninterval = \"1s\"\n{custom}\n{}",
        target("primary", url.expose(), "")
    );
    let serve = Serve::start(dir.path(), &addr, &config);
    let status = [("target", "primary"), ("check", "custom_queue")];
    let scrape = serve.wait_metrics("the custom gauges", 30 * SECOND, |s| {
        value(s, "pgwarden_custom_queue_jobs", &[]).is_some()
    });
    let jobs = |state| {
        value(
            &scrape,
            "pgwarden_custom_queue_jobs",
            &[("target", "primary"), ("state", state)],
        )
    };
    assert_eq!(jobs("new"), Some(2.0));
    assert_eq!(jobs("failed"), Some(1.0));
    assert_eq!(jobs(""), Some(1.0), "a NULL label is the empty string");
    let oldest = value(
        &scrape,
        "pgwarden_custom_queue_oldest_seconds",
        &[("state", "new")],
    )
    .unwrap();
    assert!((90.0..300.0).contains(&oldest), "numeric read as {oldest}");
    assert_eq!(value(&scrape, "pgwarden_check_status", &status), Some(0.0));
    let (_, text) = serve.get("/metrics");
    assert!(
        text.contains("# HELP pgwarden_custom_queue_jobs Jobs in the queue by state (jobs)"),
        "{text}"
    );
    assert!(
        text.contains(r#"pgwarden_custom_queue_jobs{target="primary",state="we\"ird\\x\nline"} 1"#),
        "label not escaped:\n{text}"
    );

    shared()
        .psql(&db, "INSERT INTO jobs (state) VALUES ('new'), ('new')")
        .unwrap();
    serve.wait_metrics("a warning at 4 new jobs", 30 * SECOND, |s| {
        value(s, "pgwarden_check_status", &status) == Some(1.0)
    });
    shared()
        .psql(&db, "INSERT INTO jobs (state) VALUES ('new')")
        .unwrap();
    serve.wait_metrics("critical at 5 new jobs", 30 * SECOND, |s| {
        value(s, "pgwarden_check_status", &status) == Some(2.0)
    });
    let (_, health) = serve.get("/health");
    let report: Value = serde_json::from_str(&health).unwrap();
    let summary = check(&report, "custom_queue")["summary"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        summary.contains(r#"critical: jobs 5 (state="new") >= 5"#),
        "{summary}"
    );

    // A reload replaces the entry: the old check's series go, the new one's come.
    let renamed = config.replace("name = \"queue\"", "name = \"backlog\"");
    std::fs::write(&serve.config, renamed).unwrap();
    serve.signal(libc::SIGHUP);
    let scrape = serve.wait_metrics("the renamed check after SIGHUP", 30 * SECOND, |s| {
        value(s, "pgwarden_custom_backlog_jobs", &[("state", "new")]) == Some(5.0)
    });
    assert_eq!(value(&scrape, "pgwarden_custom_queue_jobs", &[]), None);
    let old = [("target", "primary"), ("check", "custom_queue")];
    assert_eq!(value(&scrape, "pgwarden_check_status", &old), None);
    assert!(serve.stop().success());
}

const SECOND: Duration = Duration::from_secs(1);

#[test]
fn a_query_that_fails_marks_only_its_own_check_error() {
    let dir = workdir();
    let url = shared().create_database().unwrap();
    let custom = [
        entry("answer", "SELECT 42 AS answer", "values = [\"answer\"]"),
        entry("broken", "SELECT 1 / 0 AS n", "values = [\"n\"]"),
        entry(
            "missing",
            "SELECT count(*) AS n FROM no_such_table",
            "values = [\"n\"]",
        ),
        entry("nothing", "SELECT NULL::int AS n", "values = [\"n\"]"),
        entry("words", "SELECT 'many' AS n", "values = [\"n\"]"),
        entry("renamed", "SELECT 1 AS m", "values = [\"n\"]"),
    ]
    .concat();
    let (code, report, text) = health_json(dir.path(), url.expose(), &custom, &[]);
    assert_eq!(code, Some(2), "{text}");
    built_ins_ok(&report);
    let answer = check(&report, "custom_answer");
    assert_eq!(answer["status"], "ok", "{answer:#}");
    assert_eq!(answer["measurements"][0]["metric"], "custom_answer_answer");
    assert_eq!(answer["measurements"][0]["value"], 42.0);
    for (name, says) in [
        ("custom_broken", "division by zero"),
        ("custom_missing", "\"no_such_table\" does not exist"),
        ("custom_nothing", "value column `n` is NULL in row 1"),
        ("custom_words", "value column `n` is of type text"),
        (
            "custom_renamed",
            "value column `n` is not in the answer, whose columns are: m",
        ),
    ] {
        let found = check(&report, name);
        assert_eq!(found["status"], "error", "{found:#}");
        let summary = found["summary"].as_str().unwrap();
        assert!(summary.contains(says), "{name}: {summary}");
        assert_eq!(found["measurements"], Value::Array(vec![]), "{found:#}");
    }

    // The text view lists it like any check; a misspelt name is suggested.
    let out = health(
        dir.path(),
        url.expose(),
        &custom,
        &["--check", "custom_broken"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("  ")).count(),
        1,
        "{stdout}"
    );
    assert!(stdout.contains("ERROR    custom_broken"), "{stdout}");
    let out = health(
        dir.path(),
        url.expose(),
        &custom,
        &["--check", "custom_brokn"],
    );
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("Did you mean `custom_broken`?"), "{text}");
}

#[test]
fn a_query_past_its_timeout_is_cancelled_and_the_others_finish() {
    let dir = workdir();
    let url = shared().create_database().unwrap();
    let custom = [
        entry(
            "sleepy",
            "SELECT 1 AS n FROM pg_sleep(20)",
            "values = [\"n\"]\ntimeout = \"500ms\"",
        ),
        entry("quick", "SELECT 1 AS n", "values = [\"n\"]"),
    ]
    .concat();
    let started = Instant::now();
    let (_, report, text) = health_json(dir.path(), url.expose(), &custom, &[]);
    let took = started.elapsed();
    assert!(took < 15 * SECOND, "took {took:?}:\n{text}");
    built_ins_ok(&report);
    assert_eq!(check(&report, "custom_quick")["status"], "ok");
    let sleepy = check(&report, "custom_sleepy");
    assert_eq!(sleepy["status"], "error", "{sleepy:#}");
    assert!(
        sleepy["summary"].as_str().unwrap().starts_with("timed out"),
        "{sleepy:#}"
    );
    let seconds = sleepy["duration_seconds"].as_f64().unwrap();
    assert!((0.4..3.0).contains(&seconds), "ran {seconds} s");
    // The server stopped it: no backend is still sleeping.
    let sleeping = shared()
        .psql(
            &url.database(),
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(20)%' AND pid <> pg_backend_pid()",
        )
        .unwrap();
    assert_eq!(sleeping, "0");
}

#[test]
fn writes_from_custom_sql_are_refused_by_the_read_only_session() {
    let dir = workdir();
    let url = shared().create_database().unwrap();
    let db = url.database();
    shared()
        .psql(
            &db,
            "CREATE TABLE audit (n int PRIMARY KEY); CREATE SEQUENCE ids;
             CREATE FUNCTION make_table() RETURNS int LANGUAGE plpgsql AS
               $$ BEGIN CREATE TABLE made_by_custom (x int); RETURN 1; END $$",
        )
        .unwrap();
    // Each passes the load-time "one SELECT" test; only the session stops it.
    let custom = [
        entry(
            "insert",
            "WITH added AS (INSERT INTO audit VALUES (1) RETURNING n) SELECT count(*) AS n FROM added",
            "values = [\"n\"]",
        ),
        entry("create", "SELECT make_table() AS n", "values = [\"n\"]"),
        entry("nextval", "SELECT nextval('ids') AS n", "values = [\"n\"]"),
    ]
    .concat();
    let (_, report, _) = health_json(dir.path(), url.expose(), &custom, &[]);
    built_ins_ok(&report);
    for (name, statement) in [
        // PostgreSQL names the statement holding the data-modifying WITH.
        ("custom_insert", "SELECT"),
        ("custom_create", "CREATE TABLE"),
        ("custom_nextval", "nextval()"),
    ] {
        let found = check(&report, name);
        assert_eq!(found["status"], "error", "{found:#}");
        let summary = found["summary"].as_str().unwrap();
        assert!(
            summary.contains(&format!(
                "cannot execute {statement} in a read-only transaction"
            )),
            "{name}: {summary}"
        );
    }
    assert_eq!(
        shared().psql(&db, "SELECT count(*) FROM audit").unwrap(),
        "0"
    );
    assert!(!table_exists(&db, "made_by_custom"));
    assert_eq!(
        shared().psql(&db, "SELECT last_value FROM ids").unwrap(),
        "1",
        "the sequence never moved"
    );
}

#[test]
fn rows_beyond_the_series_limit_are_dropped_with_a_warning() {
    let dir = workdir();
    let url = shared().create_database().unwrap();
    let custom = entry(
        "many",
        "SELECT i, i * 2 AS doubled FROM generate_series(1, 50) AS i ORDER BY i",
        "labels = [\"i\"]\nvalues = [\"doubled\"]\nseries_limit = 10",
    );
    let (code, report, text) = health_json(
        dir.path(),
        url.expose(),
        &custom,
        &["--check", "custom_many"],
    );
    assert_eq!(code, Some(1), "{text}");
    let many = check(&report, "custom_many");
    assert_eq!(many["status"], "warning", "{many:#}");
    let summary = many["summary"].as_str().unwrap();
    assert!(
        summary.contains("40 row(s) beyond series_limit = 10 were dropped"),
        "{summary}"
    );
    let series = many["measurements"].as_array().unwrap();
    let kept: Vec<(&str, f64)> = series
        .iter()
        .map(|m| {
            (
                m["labels"][0][1].as_str().unwrap(),
                m["value"].as_f64().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(String, f64)> = (1..=10).map(|i| (i.to_string(), 2.0 * i as f64)).collect();
    assert_eq!(
        kept,
        expected
            .iter()
            .map(|(i, v)| (i.as_str(), *v))
            .collect::<Vec<_>>(),
        "the first 10 rows, in the query's order"
    );
}

#[test]
fn a_fleet_runs_per_database_checks_in_each_database_and_the_others_once() {
    let (a, b) = (
        shared().create_database().unwrap(),
        shared().create_database().unwrap(),
    );
    for (url, jobs) in [(&a, 2), (&b, 3)] {
        shared()
            .psql(
                &url.database(),
                &format!("CREATE TABLE jobs AS SELECT generate_series(1, {jobs}) AS id"),
            )
            .unwrap();
    }
    let discover = format!("discover = \"^({}|{})$\"", a.database(), b.database());
    let custom = [
        entry(
            "queue",
            "SELECT count(*) AS jobs FROM jobs",
            "values = [\"jobs\"]\nper_database = true",
        ),
        entry("server", "SELECT 1 AS one", "values = [\"one\"]"),
    ]
    .concat();
    let (dir, addr) = (workdir(), free_addr());
    let config = format!(
        "[http]\nlisten = \"{addr}\"\n[checks]\ninterval = \"1s\"\n{custom}\n{}",
        target("fleet", a.expose(), &discover)
    );
    let serve = Serve::start(dir.path(), &addr, &config);
    let jobs = |s: &prometheus_parse::Scrape, db: &str| {
        value(s, "pgwarden_custom_queue_jobs", &[("database", db)])
    };
    let scrape = serve.wait_metrics("the queue of both databases", 60 * SECOND, |s| {
        jobs(s, &a.database()) == Some(2.0) && jobs(s, &b.database()) == Some(3.0)
    });
    let servers: Vec<_> = (scrape.samples.iter())
        .filter(|s| s.metric == "pgwarden_custom_server_one")
        .collect();
    assert_eq!(servers.len(), 1, "once per server: {servers:?}");
    assert_eq!(servers[0].labels.get("database"), None);
    crate::fleet::assert_no_series_twice(&serve.get("/metrics").1);
    assert!(serve.stop().success());
}
