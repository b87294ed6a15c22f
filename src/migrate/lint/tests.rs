//! Every rule: a statement it must flag and a close variant it must not.

use std::path::Path;

use super::*;

/// Static lint of one file (no target).
fn lint_file(sql: &str, transactional: bool) -> Vec<Finding> {
    let split = split::split(sql);
    let input = Input {
        path: Path::new("V1__t.sql"),
        sql,
        transactional,
        statements: &split.statements,
        syntax_error: split.syntax_error.as_ref(),
    };
    resolve(analyze(&[input]), None, &LintConfig::default(), &[])
}

fn ids(sql: &str, transactional: bool) -> Vec<&'static str> {
    lint_file(sql, transactional)
        .iter()
        .map(|f| f.rule)
        .collect()
}

/// (rule, flagged, not flagged, transactional file?)
const CASES: &[(&str, &str, &str, bool)] = &[
    (
        "create-index-non-concurrently",
        "CREATE INDEX i ON users (email)",
        "CREATE TABLE users (email text); CREATE INDEX i ON users (email)",
        true,
    ),
    (
        "create-index-non-concurrently",
        "CREATE INDEX i ON users (email)",
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON users (email)",
        false,
    ),
    (
        "drop-index-non-concurrently",
        "DROP INDEX users_email_idx",
        "DROP INDEX CONCURRENTLY IF EXISTS users_email_idx",
        false,
    ),
    (
        "reindex-non-concurrently",
        "REINDEX TABLE users",
        "REINDEX TABLE CONCURRENTLY users",
        false,
    ),
    (
        "concurrently-in-transaction",
        "CREATE INDEX CONCURRENTLY i ON users (email)",
        "CREATE INDEX i ON users (email)",
        true,
    ),
    (
        "add-unique-without-index",
        "ALTER TABLE users ADD CONSTRAINT u UNIQUE (email)",
        "ALTER TABLE users ADD CONSTRAINT u UNIQUE USING INDEX users_email_key",
        true,
    ),
    (
        "add-exclusion-constraint",
        "ALTER TABLE rooms ADD CONSTRAINT no_overlap EXCLUDE USING gist (during WITH &&)",
        "CREATE TABLE rooms (during tstzrange); ALTER TABLE rooms ADD CONSTRAINT no_overlap EXCLUDE USING gist (during WITH &&)",
        true,
    ),
    (
        "add-column-volatile-default",
        "ALTER TABLE users ADD COLUMN token uuid DEFAULT gen_random_uuid()",
        "ALTER TABLE users ADD COLUMN created timestamptz DEFAULT now()",
        true,
    ),
    (
        "add-column-serial-or-identity",
        "ALTER TABLE users ADD COLUMN n bigint GENERATED ALWAYS AS IDENTITY",
        "ALTER TABLE users ADD COLUMN n bigint",
        true,
    ),
    (
        "add-column-generated-stored",
        "ALTER TABLE users ADD COLUMN lower_email text GENERATED ALWAYS AS (lower(email)) STORED",
        "ALTER TABLE users ADD COLUMN lower_email text",
        true,
    ),
    (
        "add-column-required-without-default",
        "ALTER TABLE users ADD COLUMN plan text NOT NULL",
        "ALTER TABLE users ADD COLUMN plan text NOT NULL DEFAULT 'free'",
        true,
    ),
    (
        "alter-column-type",
        "ALTER TABLE users ALTER COLUMN id TYPE bigint",
        "ALTER TABLE users ALTER COLUMN name TYPE text",
        true,
    ),
    (
        "set-not-null",
        "ALTER TABLE users ALTER COLUMN email SET NOT NULL",
        "ALTER TABLE users VALIDATE CONSTRAINT email_not_null; ALTER TABLE users ALTER COLUMN email SET NOT NULL",
        true,
    ),
    (
        "add-foreign-key-without-not-valid",
        "ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (user_id) REFERENCES users (id)",
        "ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID",
        true,
    ),
    (
        "add-check-without-not-valid",
        "ALTER TABLE users ADD CONSTRAINT c CHECK (length(email) < 320)",
        "ALTER TABLE users ADD CONSTRAINT c CHECK (length(email) < 320) NOT VALID",
        true,
    ),
    (
        "set-logged-or-unlogged",
        "ALTER TABLE events SET UNLOGGED",
        "CREATE UNLOGGED TABLE events (id bigint)",
        true,
    ),
    (
        "set-tablespace",
        "ALTER TABLE events SET TABLESPACE fast",
        "CREATE TABLE events (id bigint) TABLESPACE fast",
        true,
    ),
    (
        "vacuum-full",
        "VACUUM FULL users",
        "VACUUM (ANALYZE) users",
        false,
    ),
    (
        "vacuum-in-transaction",
        "VACUUM users",
        "ANALYZE users",
        true,
    ),
    (
        "cluster",
        "CLUSTER users USING users_pkey",
        "CREATE TABLE users (id bigint PRIMARY KEY); CLUSTER users USING users_pkey",
        true,
    ),
    (
        "refresh-materialized-view-non-concurrently",
        "REFRESH MATERIALIZED VIEW stats",
        "REFRESH MATERIALIZED VIEW CONCURRENTLY stats",
        false,
    ),
    (
        "lock-table",
        "LOCK TABLE users",
        "LOCK TABLE users IN SHARE MODE",
        true,
    ),
    (
        "lock-timeout-disabled",
        "SET lock_timeout = 0",
        "SET lock_timeout = '2s'",
        true,
    ),
    (
        "non-idempotent-without-transaction",
        "CREATE INDEX CONCURRENTLY i ON users (email)",
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON users (email)",
        false,
    ),
    (
        "identifier-too-long",
        "CREATE TABLE a_table_whose_name_goes_on_and_on_well_beyond_what_postgres_keeps_x (id bigint)",
        "CREATE TABLE a_table_whose_name_goes_on_and_on_but_stops_in_time (id bigint)",
        true,
    ),
    (
        "drop-table",
        "DROP TABLE users",
        "CREATE TABLE scratch (id bigint); DROP TABLE scratch",
        true,
    ),
    (
        "drop-column",
        "ALTER TABLE users DROP COLUMN nickname",
        "CREATE TABLE users (nickname text); ALTER TABLE users DROP COLUMN nickname",
        true,
    ),
    (
        "drop-not-null",
        "ALTER TABLE users ALTER COLUMN email DROP NOT NULL",
        "ALTER TABLE users ALTER COLUMN email DROP DEFAULT",
        true,
    ),
    (
        "drop-database",
        "DROP DATABASE app",
        "DROP SCHEMA IF EXISTS scratch",
        true,
    ),
    ("drop-cascade", "DROP VIEW v CASCADE", "DROP VIEW v", true),
    (
        "rename-table",
        "ALTER TABLE users RENAME TO accounts",
        "CREATE TABLE users (id bigint); ALTER TABLE users RENAME TO accounts",
        true,
    ),
    (
        "rename-column",
        "ALTER TABLE users RENAME COLUMN name TO full_name",
        "CREATE TABLE users (name text); ALTER TABLE users RENAME COLUMN name TO full_name",
        true,
    ),
    (
        "truncate-cascade",
        "TRUNCATE sessions CASCADE",
        "TRUNCATE sessions",
        true,
    ),
    (
        "transaction-control",
        "CREATE TABLE a (id bigint); COMMIT",
        "CREATE TABLE a (id bigint)",
        true,
    ),
    (
        "lock-held-by-later-statements",
        "ALTER TABLE users ADD COLUMN bio text; UPDATE users SET bio = ''",
        "ALTER TABLE users ADD COLUMN bio text",
        true,
    ),
    (
        "lock-held-by-later-statements",
        "CREATE INDEX i ON users (email); SELECT 1",
        "-- pgwarden:allow create-index-non-concurrently because users is tiny\nCREATE INDEX i ON users (email); SELECT 1",
        true,
    ),
    (
        "enum-add-value-in-transaction",
        "ALTER TYPE mood ADD VALUE 'meh'; INSERT INTO t VALUES ('meh')",
        "ALTER TYPE mood ADD VALUE 'meh'; ALTER TYPE mood ADD VALUE 'bof'",
        true,
    ),
    (
        "prefer-bigint-primary-key",
        "CREATE TABLE t (id int PRIMARY KEY)",
        "CREATE TABLE t (id bigint PRIMARY KEY)",
        true,
    ),
    (
        "prefer-identity",
        "CREATE TABLE t (id bigserial PRIMARY KEY)",
        "CREATE TABLE t (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY)",
        true,
    ),
    (
        "prefer-timestamptz",
        "CREATE TABLE t (at timestamp)",
        "CREATE TABLE t (at timestamptz)",
        true,
    ),
    (
        "prefer-text",
        "CREATE TABLE t (name varchar(100))",
        "CREATE TABLE t (name text)",
        true,
    ),
    (
        "prefer-text-over-char",
        "CREATE TABLE t (code char(2))",
        "CREATE TABLE t (code text)",
        true,
    ),
    (
        "syntax-error",
        "CREAT TABLE t (id bigint)",
        "CREATE TABLE t (id bigint)",
        true,
    ),
    (
        "exemption-without-reason",
        "-- pgwarden:allow drop-table\nDROP TABLE users",
        "-- pgwarden:allow drop-table because the app stopped using it in 2.3\nDROP TABLE users",
        true,
    ),
];

#[test]
fn every_rule_flags_its_case_and_not_the_close_variant() {
    for (rule, flagged, clean, transactional) in CASES {
        let found = ids(flagged, *transactional);
        assert!(
            found.contains(rule),
            "{rule} not flagged in {flagged:?}: {found:?}"
        );
        let found = ids(clean, *transactional);
        assert!(
            !found.contains(rule),
            "{rule} flagged in {clean:?}: {found:?}"
        );
    }
    for r in RULES {
        assert!(
            CASES.iter().any(|c| c.0 == r.id),
            "rule {} has no test case",
            r.id
        );
    }
    assert!(RULES.len() >= 30);
}

#[test]
fn rules_have_unique_ids_and_say_what_happens_and_the_safe_way() {
    let mut ids: Vec<&str> = RULES.iter().map(|r| r.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), RULES.len());
    for r in RULES {
        assert!(r.why.len() > 30 && r.fix.len() > 15, "{}", r.id);
    }
}

#[test]
fn findings_carry_file_line_column_and_the_static_presumption() {
    let findings = lint_file(
        "CREATE TABLE a (id bigint);\n\n  CREATE INDEX i ON users (email);\n",
        true,
    );
    let f = &findings[0];
    assert_eq!(
        (f.rule, f.line, f.column, f.severity),
        ("create-index-non-concurrently", 3, 3, Severity::Error)
    );
    assert!(
        f.message
            .contains("presumed to be a large production table"),
        "{}",
        f.message
    );
    assert_eq!(f.statement, "CREATE INDEX i ON users (email)");
}

fn size(bytes: i64) -> Sizes {
    HashMap::from([(
        "users".to_string(),
        TableSize {
            bytes,
            rows: 1000.0,
        },
    )])
}

#[test]
fn sizes_decide_sized_rules() {
    let sql = "ALTER TABLE users ALTER COLUMN id TYPE bigint";
    let split = split::split(sql);
    let input = || Input {
        path: Path::new("V1__t.sql"),
        sql,
        transactional: true,
        statements: &split.statements,
        syntax_error: None,
    };
    let config = LintConfig::default();
    let large = resolve(analyze(&[input()]), Some(&size(300 << 20)), &config, &[]);
    assert_eq!(large[0].severity, Severity::Error);
    assert!(
        large[0]
            .message
            .contains("(users is 300.0 MiB, ~1000 rows, in the target)"),
        "{}",
        large[0].message
    );
    let small = resolve(analyze(&[input()]), Some(&size(8192)), &config, &[]);
    assert_eq!(small[0].severity, Severity::Warning);
    assert!(resolve(analyze(&[input()]), Some(&size(0)), &config, &[]).is_empty());
}

#[test]
fn exemptions_allow_and_config_change_what_is_reported() {
    let sql = "-- pgwarden:allow create-index-non-concurrently because the table is tiny\nCREATE INDEX i ON users (email);\nDROP TABLE old;";
    assert_eq!(ids(sql, true), vec!["drop-table"]);
    let unknown = lint_file(
        "-- pgwarden:allow drop-tabel because x\nDROP TABLE users",
        true,
    );
    assert!(
        unknown.iter().any(|f| f.rule == "exemption-without-reason"
            && f.message.contains("did you mean `drop-table`")),
        "{unknown:?}"
    );
    let split = split::split("CREATE TABLE t (at timestamp); DROP TABLE old");
    let input = Input {
        path: Path::new("V1__t.sql"),
        sql: "",
        transactional: true,
        statements: &split.statements,
        syntax_error: None,
    };
    let mut config = LintConfig::default();
    config.severity.insert("drop-table".into(), Level::Error);
    config
        .severity
        .insert("prefer-timestamptz".into(), Level::Off);
    let found = resolve(analyze(&[input]), None, &config, &["nothing".into()]);
    assert_eq!(found.len(), 1);
    assert_eq!(
        (found[0].rule, found[0].severity),
        ("drop-table", Severity::Error)
    );
    let split = split::split("DROP TABLE old");
    let input = Input {
        path: Path::new("V1__t.sql"),
        sql: "",
        transactional: true,
        statements: &split.statements,
        syntax_error: None,
    };
    assert!(resolve(analyze(&[input]), None, &config, &["drop-table".into()]).is_empty());
}

#[test]
fn config_refuses_unknown_rules_with_a_suggestion() {
    let e = toml::from_str::<LintConfig>("[severity]\ndrop-tabel = \"off\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("did you mean `drop-table`"), "{e}");
    let ok: LintConfig =
        toml::from_str("large_table_bytes = 1024\n[severity]\ndrop-table = \"error\"\n").unwrap();
    assert_eq!(ok.large_table_bytes, 1024);
}

#[test]
fn formats() {
    let findings = lint_file("DROP TABLE users", true);
    let text = report::render(&findings, 1, report::Format::Text);
    assert!(
        text.contains("V1__t.sql:1:1: warning[drop-table] DROP TABLE users: DROP TABLE deletes"),
        "{text}"
    );
    assert!(
        text.contains("    | DROP TABLE users\n    = safe way: "),
        "{text}"
    );
    assert!(
        text.contains("0 error(s), 1 warning(s), 0 info in 1 file(s)"),
        "{text}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&report::render(&findings, 1, report::Format::Json)).unwrap();
    assert_eq!(json["findings"][0]["rule"], "drop-table");
    assert_eq!(json["summary"]["warnings"], 1);
    let github = report::render(&findings, 1, report::Format::Github);
    assert!(
        github.starts_with(
            "::warning file=V1__t.sql,line=1,col=1,title=pgwarden drop-table::DROP TABLE users"
        ),
        "{github}"
    );
}

#[test]
fn the_education_schema_lints_clean() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let migrations = crate::migrate::files::load(&dir).unwrap();
    let inputs: Vec<Input> = migrations.iter().map(|m| Input::from(&m.up)).collect();
    let findings = resolve(analyze(&inputs), None, &LintConfig::default(), &[]);
    assert!(findings.is_empty(), "{findings:#?}");
}

#[test]
fn the_readme_lists_every_rule() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    for r in RULES {
        let row = format!("| `{}` | {} |", r.id, r.severity.as_str());
        assert!(
            readme.contains(&row),
            "README's Migration lint table lacks {row}"
        );
    }
}

#[test]
fn table_aware_rules_are_silent_on_a_table_created_earlier_in_the_set() {
    for (rule, flagged, _, transactional) in CASES {
        let found = lint_file(flagged, *transactional);
        let Some(finding) = found.iter().find(|f| f.rule == *rule) else {
            continue;
        };
        let Some(table) = &finding.table else {
            continue;
        };
        assert_ne!(
            super::rule(rule).unwrap().impact,
            Impact::Statement,
            "{rule}"
        );
        // Earlier in the set: a file of its own before this one.
        let first = "CREATE TABLE created (id bigint)".replace("created", table);
        let (a, b) = (split::split(&first), split::split(flagged));
        let inputs = [
            Input {
                path: Path::new("V1__a.sql"),
                sql: &first,
                transactional: true,
                statements: &a.statements,
                syntax_error: None,
            },
            Input {
                path: Path::new("V2__b.sql"),
                sql: flagged,
                transactional: *transactional,
                statements: &b.statements,
                syntax_error: None,
            },
        ];
        let found = resolve(analyze(&inputs), None, &LintConfig::default(), &[]);
        assert!(
            !found.iter().any(|f| f.rule == *rule),
            "{rule} reported on {table} created earlier in the set: {found:?}"
        );
    }
}
