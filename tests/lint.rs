//! `migrate lint` and the `migrate up` gate against real PostgreSQL: table
//! sizes from the catalog decide, exemptions let a statement through, exit
//! codes and formats are what CI reads.

use crate::serve_support;
use crate::support;

use std::time::Duration;

use std::process::Output;

use pgwarden::dburl::DbUrl;
use serve_support::{Serve, free_addr, value};
use support::*;

/// A working directory with a config (extra TOML appended), a migrations folder and a database.
struct Project {
    dir: tempfile::TempDir,
    url: DbUrl,
}

impl Project {
    fn new(extra: &str) -> Self {
        let dir = workdir();
        let url = shared().create_database().expect("create database");
        std::fs::create_dir(dir.path().join("migrations")).unwrap();
        write_file(
            dir.path(),
            "pgwarden.toml",
            &format!(
                "{extra}\n[[targets]]\nname = \"db\"\nurl = \"{}\"\nmigrate = true\n",
                url.expose()
            ),
        );
        Project { dir, url }
    }

    fn file(&self, name: &str, text: &str) {
        write_file(&self.dir.path().join("migrations"), name, text);
    }

    fn run(&self, args: &[&str]) -> (Option<i32>, String) {
        let out: Output = pgwarden(self.dir.path())
            .args(["--config", "pgwarden.toml", "migrate"])
            .args(args)
            .output()
            .expect("run pgwarden");
        (out.status.code(), output_text(&out))
    }

    /// Run and return the exit code and stdout alone (for JSON).
    fn stdout(&self, args: &[&str]) -> (Option<i32>, String) {
        let out: Output = pgwarden(self.dir.path())
            .args(["--config", "pgwarden.toml", "migrate"])
            .args(args)
            .output()
            .expect("run pgwarden");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    fn psql(&self, sql: &str) -> String {
        shared()
            .psql(&self.url.database(), sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

#[test]
fn a_type_change_on_a_table_of_hundreds_of_mb_is_an_error_naming_its_size_and_on_an_empty_one_is_not_reported()
 {
    let project = Project::new("");
    // One ~700-byte row per 8 kB page (fillfactor 10): 300 MB quickly, little WAL.
    project.psql(
        "CREATE TABLE big (id int PRIMARY KEY, filler text) WITH (fillfactor = 10);
         INSERT INTO big SELECT g, repeat('x', 700) FROM generate_series(1, 38400) g;
         ANALYZE big;
         CREATE TABLE empty_table (id int PRIMARY KEY);",
    );
    project.file(
        "V1__widen_big.sql",
        "ALTER TABLE big ALTER COLUMN id TYPE bigint;\n",
    );
    let (code, out) = project.run(&["lint"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("V1__widen_big.sql:1:1: error[alter-column-type]"),
        "{out}"
    );
    assert!(out.contains("MiB, ~38400 rows, in the target)"), "{out}");

    // 38400 pages of 8 KiB, plus the free space map.
    assert!(out.contains("(big is 300."), "{out}");
    let (code, out) = project.stdout(&["lint", "--format", "json"]);
    assert_eq!(code, Some(1), "{out}");
    let json: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert!(json["findings"][0]["table_bytes"].as_i64().unwrap() > 300_000_000);

    project.file(
        "V1__widen_big.sql",
        "ALTER TABLE empty_table ALTER COLUMN id TYPE bigint;\n",
    );
    let (code, out) = project.run(&["lint"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("0 error(s), 0 warning(s), 0 info in 1 file(s)"),
        "{out}"
    );

    // Without the target the same statement is presumed to hit a large table.
    let (code, out) = project.run(&["lint", "--offline"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("presumed to be a large production table"),
        "{out}"
    );
}

#[test]
fn up_refuses_a_create_index_on_a_populated_table_until_it_carries_a_reasoned_exemption() {
    // Any populated table counts as large here.
    let project = Project::new("[lint]\nlarge_table_bytes = 1\n");
    project.psql("CREATE TABLE accounts (id bigint PRIMARY KEY, email text); INSERT INTO accounts SELECT g, 'a' || g FROM generate_series(1, 100) g;");
    project.file(
        "V1__first.sql",
        "CREATE TABLE notes (id bigint PRIMARY KEY);\n",
    );
    project.file(
        "V2__index.sql",
        "-- speed up login\n\nCREATE INDEX accounts_email_idx ON accounts (email);\n",
    );
    let (code, out) = project.run(&["up"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("V2__index.sql:3:1: error[create-index-non-concurrently]"),
        "{out}"
    );
    assert!(out.contains("nothing was applied"), "{out}");
    assert_eq!(project.psql("SELECT to_regclass('notes') IS NULL"), "t");
    assert_eq!(project.psql("SELECT to_regclass('refinery_schema_history') IS NULL OR NOT EXISTS (SELECT FROM refinery_schema_history)"), "t");

    // An exemption without a reason does not count.
    project.file(
        "V2__index.sql",
        "-- pgwarden:allow create-index-non-concurrently\nCREATE INDEX accounts_email_idx ON accounts (email);\n",
    );
    let (code, out) = project.run(&["up"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("error[exemption-without-reason]"), "{out}");

    project.file(
        "V2__index.sql",
        "-- pgwarden:allow create-index-non-concurrently because accounts has 100 rows and no traffic yet\nCREATE INDEX accounts_email_idx ON accounts (email);\n",
    );
    let (code, out) = project.run(&["up"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        project.psql("SELECT to_regclass('accounts_email_idx') IS NOT NULL"),
        "t"
    );
    assert_eq!(
        project.psql("SELECT count(*) FROM refinery_schema_history"),
        "2"
    );
}

#[test]
fn exit_codes_and_formats_for_ci_without_a_database() {
    let dir = workdir();
    let file = write_file(
        dir.path(),
        "V1__mixed.sql",
        "CREATE TABLE t (id bigint PRIMARY KEY, at timestamp);\nDROP TABLE old_things;\n",
    );
    let lint = |args: &[&str]| {
        let out = pgwarden(dir.path())
            .args(["migrate", "lint"])
            .args(args)
            .arg(&file)
            .output()
            .unwrap();
        (out.status.code(), output_text(&out))
    };
    // Warnings only: exit 0 unless --fail-on warning.
    let (code, out) = lint(&[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(":1:1: warning[prefer-timestamptz]"), "{out}");
    assert!(out.contains(":2:1: warning[drop-table]"), "{out}");
    let (code, _) = lint(&["--fail-on", "warning"]);
    assert_eq!(code, Some(1));
    let (code, out) = lint(&[
        "--fail-on",
        "warning",
        "--allow",
        "drop-table",
        "--allow",
        "prefer-timestamptz",
    ]);
    assert_eq!(code, Some(0), "{out}");
    let (_, out) = lint(&["--format", "github"]);
    assert!(out.contains("::warning file="), "{out}");
    assert!(
        out.contains(",line=2,col=1,title=pgwarden drop-table::"),
        "{out}"
    );
    let (code, out) = lint(&["--allow", "no-such-rule"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("unknown lint rule `no-such-rule`"), "{out}");
}

#[test]
fn the_rules_are_listed_with_severity_and_advice() {
    let dir = workdir();
    let out = pgwarden(dir.path())
        .args(["migrate", "lint", "--rules"])
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    let rules = text.lines().filter(|l| l.contains("safe way:")).count();
    assert!(rules >= 30, "{text}");
    assert!(text.contains("create-index-non-concurrently"), "{text}");
}

#[test]
fn sigusr1_refuses_a_run_with_a_lint_error_and_exports_the_count() {
    let dir = workdir();
    let url = shared().create_database().unwrap();
    shared()
        .psql(&url.database(), "CREATE TABLE accounts (id bigint PRIMARY KEY, email text); INSERT INTO accounts VALUES (1, 'a');")
        .unwrap();
    let migrations = migrations_dir(
        dir.path(),
        &[(
            "V1__index.sql",
            "CREATE INDEX accounts_email_idx ON accounts (email);",
        )],
    );
    let addr = free_addr();
    let config = format!(
        "[http]\nlisten = \"{addr}\"\n[checks]\ninterval = \"1s\"\n[migrations]\ndir = \"{}\"\n[lint]\nlarge_table_bytes = 1\n{}",
        migrations.display(),
        serve_support::target("primary", url.expose(), "migrate = true")
    );
    let serve = Serve::start(dir.path(), &addr, &config);
    serve.wait_ready();
    let primary = [("target", "primary")];
    serve.signal(libc::SIGUSR1);
    let scrape = serve.wait_metrics("a refused run", Duration::from_secs(30), |s| {
        value(s, "pgwarden_migration_last_run_success", &primary) == Some(0.0)
    });
    assert_eq!(
        value(&scrape, "pgwarden_migration_lint_errors", &primary),
        Some(1.0)
    );
    assert_eq!(
        value(&scrape, "pgwarden_migrations_pending", &primary),
        Some(1.0)
    );
    assert!(!index_exists(&url.database(), "accounts_email_idx"));
    assert!(
        serve.log().contains("create-index-non-concurrently"),
        "{}",
        serve.log()
    );

    // With a reasoned exemption the next signal applies it, and the count drops to 0.
    write_file(
        &migrations,
        "V1__index.sql",
        "-- pgwarden:allow create-index-non-concurrently because one row, no traffic yet\nCREATE INDEX accounts_email_idx ON accounts (email);",
    );
    // The refused run may still be finishing (a signal then is ignored): signal until it runs.
    let ran = |s: &prometheus_parse::Scrape| {
        value(s, "pgwarden_migration_last_run_success", &primary) == Some(1.0)
    };
    for _ in 0..30 {
        serve.signal(libc::SIGUSR1);
        std::thread::sleep(Duration::from_secs(1));
        if ran(&serve.metrics()) {
            break;
        }
    }
    let scrape = serve.wait_metrics("a successful run", Duration::from_secs(10), ran);
    assert_eq!(
        value(&scrape, "pgwarden_migration_lint_errors", &primary),
        Some(0.0)
    );
    assert!(index_exists(&url.database(), "accounts_email_idx"));
    serve.stop();
}

fn index_exists(database: &str, name: &str) -> bool {
    shared()
        .psql(
            database,
            &format!("SELECT to_regclass('{name}') IS NOT NULL"),
        )
        .unwrap()
        == "t"
}

#[test]
fn trace_reports_locks_and_rewrites_from_a_scratch_copy_and_leaves_the_target_alone() {
    let project = Project::new("");
    project.psql(
        "CREATE TABLE parent (id int PRIMARY KEY);
         CREATE TABLE child (id int PRIMARY KEY, parent_id int);
         CREATE TABLE big (id int PRIMARY KEY, code text) WITH (fillfactor = 10);
         INSERT INTO big SELECT g, repeat('x', 700) FROM generate_series(1, 2000) g;",
    );
    project.file(
        "V1__widen_and_link.sql",
        "ALTER TABLE big ALTER COLUMN id TYPE bigint;\n\
         ALTER TABLE child ADD CONSTRAINT child_parent_fk FOREIGN KEY (parent_id) REFERENCES parent (id);\n",
    );
    project.file(
        "V2__index.sql",
        "-- pgwarden:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS big_code_idx ON big (code);\n",
    );
    let (code, out) = project.stdout(&["trace", "--format", "json"]);
    assert_eq!(code, Some(0), "{out}");
    let json: serde_json::Value = serde_json::from_str(&out).expect(&out);
    let statements = json["statements"].as_array().unwrap();
    assert_eq!(statements.len(), 3, "{out}");
    let has_lock = |s: &serde_json::Value, relation: &str, mode: &str| {
        s["locks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["relation"] == relation && l["mode"] == mode)
    };
    let rewritten = |s: &serde_json::Value| -> Vec<String> {
        s["rewritten"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_string())
            .collect()
    };
    let alter = &statements[0];
    assert!(has_lock(alter, "big", "AccessExclusiveLock"), "{out}");
    assert!(rewritten(alter).contains(&"big".to_string()), "{out}");
    assert!(
        alter["production"][0]
            .as_str()
            .unwrap()
            .contains("blocks every read and write"),
        "{out}"
    );
    let fk = &statements[1];
    assert!(has_lock(fk, "child", "ShareRowExclusiveLock"), "{out}");
    assert!(has_lock(fk, "parent", "ShareRowExclusiveLock"), "{out}");
    assert!(rewritten(fk).is_empty(), "{out}");
    let index = &statements[2];
    assert!(has_lock(index, "big", "ShareUpdateExclusiveLock"), "{out}");
    assert!(rewritten(index).is_empty(), "{out}");
    assert_eq!(index["line"], 2);

    // The target is untouched: nothing applied, no new constraint, no index, old type.
    assert_eq!(
        project.psql("SELECT to_regclass('refinery_schema_history') IS NULL"),
        "t"
    );
    assert_eq!(
        project.psql("SELECT count(*) FROM pg_constraint WHERE conname = 'child_parent_fk'"),
        "0"
    );
    assert_eq!(
        project.psql("SELECT to_regclass('big_code_idx') IS NULL"),
        "t"
    );
    assert_eq!(project.psql("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'big'::regclass AND attname = 'id'"), "integer");

    let (code, out) = project.run(&["trace"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("V1__widen_and_link.sql:1  ALTER TABLE big ALTER COLUMN id TYPE bigint"),
        "{out}"
    );
    assert!(out.contains("rewritten: big"), "{out}");
}
