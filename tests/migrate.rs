//! The migration engine against real PostgreSQL: the education schema, down
//! scripts, concurrent runners, errors with file and line, drift, stamp,
//! non-transactional files, offline SQL through psql, lock timeouts.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use pgwarden::dburl::DbUrl;
use support::*;

/// A working directory with a config, a migrations folder and a database.
struct Project {
    dir: tempfile::TempDir,
    url: DbUrl,
}

impl Project {
    fn empty() -> Self {
        Self::with_settings("")
    }

    /// `settings` go into the `[migrations]` table of the config.
    fn with_settings(settings: &str) -> Self {
        let dir = workdir();
        let url = shared().create_database().expect("create database");
        std::fs::create_dir(dir.path().join("migrations")).unwrap();
        write_file(
            dir.path(),
            "pgwarden.toml",
            &format!(
                "[migrations]\ndir = \"migrations\"\n{settings}\n\n[[targets]]\nname = \"db\"\nurl = \"{}\"\nmigrate = true\n",
                url.expose()
            ),
        );
        Project { dir, url }
    }

    /// A project holding the real schema of `migrations/`.
    fn education() -> Self {
        let project = Self::empty();
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        for entry in std::fs::read_dir(source).unwrap().flatten() {
            std::fs::copy(entry.path(), project.migrations().join(entry.file_name())).unwrap();
        }
        project
    }

    fn migrations(&self) -> PathBuf {
        self.dir.path().join("migrations")
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        write_file(&self.migrations(), name, text)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = pgwarden(self.dir.path());
        command
            .args(["--config", "pgwarden.toml", "migrate"])
            .args(args);
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run pgwarden")
    }

    /// Run and expect exit 0; returns stdout + stderr.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let text = output_text(&out);
        assert!(out.status.success(), "migrate {args:?} failed:\n{text}");
        text
    }

    /// Run and expect exit `code`; returns stdout + stderr.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        let text = output_text(&out);
        assert_eq!(out.status.code(), Some(code), "migrate {args:?}:\n{text}");
        text
    }

    fn db(&self) -> String {
        self.url.database()
    }

    fn psql(&self, sql: &str) -> String {
        shared()
            .psql(&self.db(), sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    fn history(&self) -> String {
        self.psql("SELECT string_agg(version::text || ':' || name, ',' ORDER BY version) FROM refinery_schema_history")
    }

    fn relation_exists(&self, name: &str) -> bool {
        self.psql(&format!("SELECT to_regclass('{name}') IS NOT NULL")) == "t"
    }
}

const TABLES: [&str; 11] = [
    "achievements",
    "assessment_attempts",
    "assessments",
    "audit_log",
    "learning_paths",
    "modules",
    "notifications",
    "progress",
    "study_sessions",
    "user_achievements",
    "users",
];

/// Everything of ours in schema public, besides the history table.
fn our_objects(project: &Project) -> String {
    project.psql(
        "SELECT concat_ws(' | ',
           (SELECT string_agg(relname || ':' || relkind::text, ',' ORDER BY relname) FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public' AND relname NOT LIKE 'refinery_schema_history%'),
           (SELECT string_agg(typname, ',' ORDER BY typname) FROM pg_type t
             JOIN pg_namespace n ON n.oid = t.typnamespace
             WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd', 'b', 'r') AND t.typname NOT LIKE '%refinery%'),
           (SELECT string_agg(proname, ',' ORDER BY proname) FROM pg_proc p
             JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'),
           (SELECT string_agg(tgname, ',' ORDER BY tgname) FROM pg_trigger WHERE NOT tgisinternal))",
    )
}

fn pg_dump_schema(db: &str) -> String {
    let cluster = shared();
    let out = Command::new(cluster.bin_dir().join("pg_dump"))
        .args(["--schema-only", "--no-owner", "-h", "127.0.0.1", "-p"])
        .arg(cluster.port().to_string())
        .args(["-U", "postgres", "-d", db])
        .env("PGPASSWORD", PASSWORD)
        .output()
        .expect("pg_dump is needed: apt-get install postgresql-client");
    assert!(
        out.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // pg_dump 15.14+ brackets its output with a random \restrict key.
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn psql_file(db: &str, file: &Path) -> Output {
    let cluster = shared();
    Command::new(cluster.bin_dir().join("psql"))
        .args(["-X", "-q", "-h", "127.0.0.1", "-p"])
        .arg(cluster.port().to_string())
        .args(["-U", "postgres", "-d", db, "-f"])
        .arg(file)
        .env("PGPASSWORD", PASSWORD)
        .stdin(Stdio::null())
        .output()
        .expect("psql is needed: apt-get install postgresql-client")
}

#[test]
fn the_education_schema_goes_up_down_to_zero_and_up_again_cleanly() {
    let project = Project::education();
    let status = project.fails(&["status"], 1);
    assert!(status.contains("pending (1)"), "{status}");
    let out = project.ok(&["up"]);
    assert!(
        out.contains("applied  V20240901000000__education_schema"),
        "{out}"
    );
    let tables = project.psql(
        "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'refinery_schema_history'",
    );
    assert_eq!(tables, TABLES.join(","));
    let first_dump = pg_dump_schema(&project.db());
    project.ok(&["status"]);

    let out = project.ok(&["down", "--revision", "0"]);
    assert!(
        out.contains("reverted V20240901000000__education_schema"),
        "{out}"
    );
    assert_eq!(our_objects(&project), "", "objects left after down to 0");
    assert_eq!(project.history(), "");

    project.ok(&["up"]);
    assert_eq!(pg_dump_schema(&project.db()), first_dump);
    assert_eq!(project.history(), "20240901000000:education_schema");
    assert!(project.ok(&["up"]).contains("nothing to do"));
}

#[test]
fn the_database_rejects_rows_that_break_each_rule() {
    let project = Project::education();
    project.ok(&["up"]);
    // A valid row of everything, to break one rule at a time against.
    project.psql(
        "INSERT INTO users (id, email, display_name, role, password_hash) VALUES
           ('00000000-0000-0000-0000-000000000001', 'Ada@Example.org', 'Ada', 'teacher', repeat('h', 60)),
           ('00000000-0000-0000-0000-000000000002', 'bob@example.org', 'Bob', 'student', repeat('h', 60));
         INSERT INTO learning_paths (id, title, difficulty, author_id) VALUES
           ('00000000-0000-0000-0000-0000000000a1', 'SQL', 'beginner', '00000000-0000-0000-0000-000000000001');
         INSERT INTO modules (id, path_id, title, position) VALUES
           ('00000000-0000-0000-0000-0000000000b1', '00000000-0000-0000-0000-0000000000a1', 'Joins', 1);
         INSERT INTO assessments (id, module_id, title, max_score, passing_score) VALUES
           ('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000b1', 'Quiz', 10, 6);
         INSERT INTO achievements (id, code, title) VALUES
           ('00000000-0000-0000-0000-0000000000d1', 'first_steps', 'First steps');
         INSERT INTO user_achievements (user_id, achievement_id) VALUES
           ('00000000-0000-0000-0000-000000000002', '00000000-0000-0000-0000-0000000000d1');
         INSERT INTO progress (user_id, module_id, percent, status) VALUES
           ('00000000-0000-0000-0000-000000000002', '00000000-0000-0000-0000-0000000000b1', 50, 'in_progress');
         INSERT INTO audit_log (actor_id, action, entity) VALUES
           ('00000000-0000-0000-0000-000000000002', 'login', 'users');",
    );
    let u1 = "'00000000-0000-0000-0000-000000000001'";
    let u2 = "'00000000-0000-0000-0000-000000000002'";
    let path = "'00000000-0000-0000-0000-0000000000a1'";
    let module = "'00000000-0000-0000-0000-0000000000b1'";
    let quiz = "'00000000-0000-0000-0000-0000000000c1'";
    let badge = "'00000000-0000-0000-0000-0000000000d1'";
    let h = "repeat('h', 60)";
    let cases: Vec<(String, &str)> = vec![
        (format!("INSERT INTO users (email, display_name, password_hash) VALUES ('ada@EXAMPLE.org', 'A2', {h})"), "users_email_lower_key"),
        (format!("INSERT INTO users (email, display_name, password_hash) VALUES ('not-an-email', 'X', {h})"), "users_email_format"),
        (format!("INSERT INTO users (email, display_name, password_hash, role) VALUES ('x@y.z', 'X', {h}, 'janitor')"), "invalid input value for enum user_role"),
        ("INSERT INTO users (email, display_name, password_hash) VALUES ('x@y.z', 'X', 'short')".into(), "users_password_hash_length"),
        (format!("INSERT INTO users (email, display_name, password_hash, preferences) VALUES ('x@y.z', 'X', {h}, '[1]')"), "users_preferences_object"),
        (format!("INSERT INTO users (email, display_name, password_hash) VALUES ('x@y.z', '  ', {h})"), "users_display_name_not_blank"),
        ("INSERT INTO learning_paths (title, difficulty) VALUES ('T', 'expert')".into(), "invalid input value for enum difficulty_level"),
        ("INSERT INTO learning_paths (title, difficulty, author_id) VALUES ('T', 'beginner', gen_random_uuid())".into(), "learning_paths_author_id_fkey"),
        (format!("INSERT INTO modules (path_id, title, position) VALUES ({path}, 'Dup', 1)"), "modules_path_position_key"),
        (format!("INSERT INTO modules (path_id, title, position, estimated_minutes) VALUES ({path}, 'M', 2, -1)"), "modules_estimated_minutes_non_negative"),
        (format!("INSERT INTO study_sessions (user_id, module_id, started_at, ended_at) VALUES ({u2}, {module}, now(), now() - interval '1 minute')"), "study_sessions_ended_after_started"),
        (format!("INSERT INTO study_sessions (user_id, module_id, started_at, duration_seconds) VALUES ({u2}, {module}, now(), -5)"), "study_sessions_duration_non_negative"),
        (format!("INSERT INTO assessments (module_id, title, max_score, passing_score) VALUES ({module}, 'Q', 10, 11)"), "assessments_passing_score_in_range"),
        (format!("INSERT INTO assessments (module_id, path_id, title, max_score, passing_score) VALUES ({module}, {path}, 'Q', 10, 5)"), "assessments_one_parent"),
        ("INSERT INTO assessments (title, max_score, passing_score) VALUES ('Q', 10, 5)".into(), "assessments_one_parent"),
        (format!("INSERT INTO assessment_attempts (assessment_id, max_score, user_id, score) VALUES ({quiz}, 10, {u2}, 11)"), "assessment_attempts_score_in_range"),
        (format!("INSERT INTO assessment_attempts (assessment_id, max_score, user_id, score) VALUES ({quiz}, 100, {u2}, 50)"), "assessment_attempts_assessment_fkey"),
        ("INSERT INTO achievements (code, title, points) VALUES ('first_steps', 'Again', 1)".into(), "achievements_code_key"),
        ("INSERT INTO achievements (code, title, points) VALUES ('neg', 'Neg', -1)".into(), "achievements_points_non_negative"),
        (format!("INSERT INTO user_achievements (user_id, achievement_id) VALUES ({u2}, {badge})"), "user_achievements_user_achievement_key"),
        (format!("DELETE FROM achievements WHERE id = {badge}"), "user_achievements_achievement_id_fkey"),
        (format!("INSERT INTO progress (user_id, module_id, percent, status) VALUES ({u1}, {module}, 101, 'in_progress')"), "progress_percent_range"),
        (format!("INSERT INTO progress (user_id, module_id, status) VALUES ({u2}, {module}, 'in_progress')"), "progress_user_module_key"),
        (format!("INSERT INTO progress (user_id, module_id, path_id, status) VALUES ({u1}, {module}, {path}, 'in_progress')"), "progress_one_item"),
        (format!("INSERT INTO progress (user_id, path_id, percent, status) VALUES ({u1}, {path}, 40, 'completed')"), "progress_completed_is_full"),
        (format!("INSERT INTO notifications (user_id, type) VALUES ({u1}, 'spam')"), "invalid input value for enum notification_type"),
        (format!("INSERT INTO notifications (user_id, type, read_at, created_at) VALUES ({u1}, 'system', now() - interval '1 day', now())"), "notifications_read_after_created"),
        ("UPDATE audit_log SET action = 'edited'".into(), "audit_log is append-only"),
        ("DELETE FROM audit_log".into(), "audit_log is append-only"),
        ("TRUNCATE audit_log".into(), "audit_log is append-only"),
    ];
    for (sql, expected) in &cases {
        let result = shared().psql(&project.db(), sql);
        let error = match result {
            Ok(out) => panic!("accepted: {sql} ({out})"),
            Err(e) => e.to_string(),
        };
        assert!(
            error.contains(expected),
            "{sql}\nexpected {expected:?} in: {error}"
        );
    }

    // Deliberate ON DELETE: the actor's audit rows stay (actor NULL), the
    // path stays authorless, the user's progress and achievements go.
    project.psql(&format!("DELETE FROM users WHERE id = {u2}"));
    assert_eq!(
        project.psql("SELECT count(*) FROM audit_log WHERE actor_id IS NULL"),
        "1"
    );
    assert_eq!(project.psql("SELECT count(*) FROM progress"), "0");
    project.psql(&format!("DELETE FROM users WHERE id = {u1}"));
    assert_eq!(
        project.psql("SELECT count(*) FROM learning_paths WHERE author_id IS NULL"),
        "1"
    );
    // updated_at follows updates.
    project.psql("UPDATE modules SET updated_at = '2000-01-01', title = 'Joins 2'");
    assert_eq!(
        project.psql("SELECT updated_at > '2001-01-01' FROM modules"),
        "t"
    );
}

#[test]
fn five_concurrent_runs_all_succeed_and_apply_each_version_once() {
    let project = Project::empty();
    project.file(
        "V1__runs.sql",
        "CREATE TABLE runs (version int8 NOT NULL);\nINSERT INTO runs VALUES (1);",
    );
    for v in 2..=5 {
        // Each takes a moment, so the runners really overlap.
        project.file(
            &format!("V{v}__step{v}.sql"),
            &format!("SELECT pg_sleep(0.2);\nINSERT INTO runs VALUES ({v});"),
        );
    }
    let children: Vec<_> = (0..5)
        .map(|_| {
            project
                .command(&["up"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut applied_by = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let text = output_text(&out);
        assert!(out.status.success(), "a concurrent runner failed:\n{text}");
        applied_by.push(text.matches("applied  V").count());
    }
    assert_eq!(applied_by.iter().sum::<usize>(), 5, "{applied_by:?}");
    assert_eq!(
        project.psql("SELECT string_agg(version::text, ',' ORDER BY version) FROM runs"),
        "1,2,3,4,5"
    );
    assert_eq!(
        project.psql("SELECT count(*) FROM refinery_schema_history"),
        "5"
    );
}

#[test]
fn an_error_mid_file_leaves_nothing_and_names_file_and_line() {
    let project = Project::empty();
    project.file("V1__base.sql", "CREATE TABLE base (id int);");
    project.file(
        "V2__broken.sql",
        "-- creates two tables, the second one badly\n\
         CREATE TABLE first_half (id int);\n\
         INSERT INTO base VALUES (1);\n\
         CREATE TABLE second_half (\n    id int,\n    owner integr NOT NULL\n);\n",
    );
    let out = project.fails(&["up"], 1);
    assert!(out.contains("V2__broken.sql, line 6"), "{out}");
    assert!(
        out.contains("type \"integr\" does not exist (SQLSTATE 42704)"),
        "{out}"
    );
    assert!(out.contains("nothing of V2__broken was applied"), "{out}");
    assert!(!project.relation_exists("first_half"));
    assert_eq!(project.psql("SELECT count(*) FROM base"), "0");
    assert_eq!(project.history(), "1:base");

    // An error PostgreSQL gives no position for: the statement's line.
    project.file(
        "V2__broken.sql",
        "CREATE TABLE first_half (id int);\n\n/* note */ SELECT 1 / 0;\n",
    );
    let out = project.fails(&["up"], 1);
    assert!(out.contains("V2__broken.sql, line 3"), "{out}");
    assert!(out.contains("division by zero (SQLSTATE 22012)"), "{out}");
    assert!(!project.relation_exists("first_half"));
    assert_eq!(project.history(), "1:base");
}

#[test]
fn a_changed_or_missing_applied_file_is_refused_with_both_checksums() {
    let project = Project::empty();
    let file = project.file("V1__t.sql", "CREATE TABLE t (id int);");
    project.ok(&["up"]);
    let old = pgwarden::migrate::files::checksum(1, "t", "CREATE TABLE t (id int);").unwrap();
    std::fs::write(&file, "CREATE TABLE t (id bigint);").unwrap();
    let new = pgwarden::migrate::files::checksum(1, "t", "CREATE TABLE t (id bigint);").unwrap();
    project.file("V2__u.sql", "CREATE TABLE u (id int);");

    let out = project.fails(&["up"], 1);
    assert!(
        out.contains("V1__t.sql was changed after it was applied"),
        "{out}"
    );
    assert!(
        out.contains(&old.to_string()) && out.contains(&new.to_string()),
        "{out}"
    );
    assert!(
        !project.relation_exists("u"),
        "nothing may run while drifted"
    );
    let status = project.fails(&["status"], 1);
    assert!(
        status.contains("drift (1)") && status.contains(&new.to_string()),
        "{status}"
    );

    std::fs::remove_file(&file).unwrap();
    let out = project.fails(&["up"], 1);
    assert!(
        out.contains("V1__t is applied") && out.contains("missing"),
        "{out}"
    );
}

#[test]
fn stamp_records_versions_without_running_them() {
    let project = Project::empty();
    project.file("V10__existing.sql", "CREATE TABLE existing (id int);");
    project.file("V20__more.sql", "CREATE TABLE more (id int);");
    project.file("V30__new.sql", "CREATE TABLE new (id int);");
    let out = project.ok(&["stamp", "20"]);
    assert!(
        out.contains("stamped  V10") && out.contains("stamped  V20"),
        "{out}"
    );
    assert!(!project.relation_exists("existing") && !project.relation_exists("more"));
    assert_eq!(project.history(), "10:existing,20:more");
    let status = project.fails(&["status"], 1);
    assert!(status.contains("V30__new.sql"), "{status}");
    // Production goes through the backup hook first (issue 6 fills it in).
    project.ok(&["up", "--env", "production"]);
    assert!(project.relation_exists("new") && !project.relation_exists("existing"));
    project.ok(&["status"]);
    assert!(
        project
            .fails(&["stamp", "25"], 2)
            .contains("no migration has version 25")
    );
}

#[test]
fn create_index_concurrently_runs_outside_a_transaction() {
    let project = Project::empty();
    project.file(
        "V1__items.sql",
        "CREATE TABLE items (id int, code text);\nINSERT INTO items SELECT g, 'c' || (g % 3) FROM generate_series(1, 1000) g;",
    );
    project.file(
        "V2__index.sql",
        "-- pgwarden:no-transaction\n\
         CREATE INDEX CONCURRENTLY IF NOT EXISTS items_id_idx ON items (id);\n",
    );
    project.file(
        "V2__index.down.sql",
        "-- pgwarden:no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS items_id_idx;\n",
    );
    project.ok(&["up"]);
    assert_eq!(
        project.psql("SELECT indisvalid FROM pg_index WHERE indexrelid = 'items_id_idx'::regclass"),
        "t"
    );
    project.ok(&["down"]);
    assert!(!project.relation_exists("items_id_idx"));
    project.ok(&["up"]);

    // A failing CONCURRENTLY build leaves an invalid index: status says what to drop.
    project.file(
        "V3__unique.sql",
        "-- pgwarden:no-transaction\n\
         CREATE UNIQUE INDEX CONCURRENTLY items_code_key ON items (code);\n",
    );
    let out = project.fails(&["up"], 1);
    assert!(out.contains("V3__unique.sql, line 2"), "{out}");
    assert!(out.contains("could not create unique index"), "{out}");
    let status = project.fails(&["status"], 1);
    assert!(status.contains("incomplete (1)"), "{status}");
    assert!(
        status.contains("DROP INDEX CONCURRENTLY items_code_key;"),
        "{status}"
    );
    project.psql("DROP INDEX items_code_key");
    project.file(
        "V3__unique.sql",
        "-- pgwarden:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS items_code_idx ON items (code);\n",
    );
    project.ok(&["up"]);
    project.ok(&["status"]);
}

#[test]
fn up_sql_through_psql_builds_the_same_schema_as_up() {
    let applied = Project::education();
    applied.ok(&["up"]);

    let offline = Project::education();
    let script = offline.dir.path().join("up.sql");
    let out = offline.run(&["up", "--sql"]);
    assert!(out.status.success(), "{}", output_text(&out));
    std::fs::write(&script, &out.stdout).unwrap();
    assert!(
        !offline.history_table_exists(),
        "--sql must not touch the database"
    );
    let psql = psql_file(&offline.db(), &script);
    assert!(psql.status.success(), "psql -f: {}", output_text(&psql));

    assert_eq!(pg_dump_schema(&offline.db()), pg_dump_schema(&applied.db()));
    assert_eq!(offline.history(), applied.history());
    offline.ok(&["status"]);

    // And back: down --sql to 0 removes it all.
    let down = offline.dir.path().join("down.sql");
    let out = offline.run(&["down", "--sql", "--revision", "0"]);
    std::fs::write(&down, &out.stdout).unwrap();
    let psql = psql_file(&offline.db(), &down);
    assert!(psql.status.success(), "psql -f: {}", output_text(&psql));
    assert_eq!(our_objects(&offline), "");
    assert_eq!(offline.history(), "");
}

impl Project {
    fn history_table_exists(&self) -> bool {
        self.relation_exists("refinery_schema_history")
    }
}

#[test]
fn a_lock_timeout_is_retried_and_then_names_the_lock() {
    let project = Project::with_settings("lock_timeout = \"300ms\"\nlock_retries = 1");
    project.file("V1__t.sql", "CREATE TABLE t (id int);");
    project.ok(&["up"]);
    project.file("V2__alter.sql", "ALTER TABLE t ADD COLUMN note text;");

    let cluster = shared();
    let mut holder = Command::new(cluster.bin_dir().join("psql"))
        .args(["-X", "-q", "-h", "127.0.0.1", "-p"])
        .arg(cluster.port().to_string())
        .args([
            "-U",
            "postgres",
            "-d",
            &project.db(),
            "-v",
            "ON_ERROR_STOP=1",
        ])
        .args(["-c", "SET application_name = 'lock_holder'"])
        .args([
            "-c",
            "BEGIN; LOCK TABLE t IN ACCESS SHARE MODE; SELECT pg_sleep(60)",
        ])
        .env("PGPASSWORD", PASSWORD)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    cluster
        .wait_for(
            &project.db(),
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'lock_holder' AND l.relation = 't'::regclass AND l.granted",
            "1",
            std::time::Duration::from_secs(20),
        )
        .unwrap();
    let out = project.fails(&["up"], 1);
    project.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'lock_holder'");
    let _ = holder.kill();
    let _ = holder.wait();

    assert!(out.contains("lock timeout"), "{out}");
    assert!(out.contains("attempt 1 of 2; retrying"), "{out}");
    assert!(out.contains("2 attempt(s)"), "{out}");
    assert!(
        out.contains("AccessExclusiveLock on relation t, held by pid")
            && out.contains("lock_holder"),
        "{out}"
    );
    assert!(out.contains("V2__alter.sql, line 1"), "{out}");
    assert_eq!(project.history(), "1:t");
    project.ok(&["up"]);
    assert_eq!(project.history(), "1:t,2:alter");
}

#[test]
fn refinery_reads_the_history_pgwarden_writes() {
    let project = Project::education();
    project.file("V20240902000000__extra.sql", "CREATE TABLE extra (id int);");
    project.ok(&["up"]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let applied = runtime.block_on(async {
        let (mut client, connection) = project
            .url
            .pg_config()
            .connect(tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        // refinery's loader ignores the .down.sql files and agrees on checksums.
        let migrations = refinery::load_sql_migrations(project.migrations()).unwrap();
        assert_eq!(migrations.len(), 2);
        let report = refinery::Runner::new(&migrations)
            .run_async(&mut client)
            .await
            .unwrap();
        report.applied_migrations().len()
    });
    assert_eq!(
        applied, 0,
        "refinery found something pgwarden had not applied"
    );
}

#[test]
fn init_and_create_write_sortable_pairs() {
    let project = Project::empty();
    std::fs::remove_dir(project.migrations()).unwrap();
    project.ok(&["init"]);
    assert!(project.migrations().is_dir());
    assert!(project.history_table_exists());
    let first = project.ok(&["create", "Add users table"]);
    let second = project.ok(&["create", "add users table"]);
    let mut names: Vec<String> = std::fs::read_dir(project.migrations())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 4, "{first}{second}{names:?}");
    assert!(
        names[0].ends_with("__add_users_table.down.sql"),
        "{names:?}"
    );
    assert!(names[1].ends_with("__add_users_table.sql"), "{names:?}");
    assert_ne!(
        names[0][..15],
        names[2][..15],
        "two creates got one version"
    );
    // The templates are valid (empty) migrations.
    project.ok(&["up"]);
    project.ok(&["down", "--revision", "0"]);
    assert!(
        project
            .fails(&["create", "!!"], 2)
            .contains("no letters or digits")
    );
}

#[test]
fn files_that_cannot_run_safely_are_refused_before_anything_runs() {
    let project = Project::empty();
    project.file("V1__a.sql", "CREATE TABLE a (id int);");
    project.file(
        "V2__b.sql",
        "CREATE TABLE b (id int);\nCOMMIT;\nCREATE TABLE c (id int);",
    );
    let out = project.fails(&["up"], 2);
    assert!(out.contains("V2__b.sql, line 2: `COMMIT`"), "{out}");
    assert!(!project.relation_exists("a"));

    // The lint gate refuses the whole run: not even V1 is applied.
    project.file("V2__b.sql", "CREATE INDEX CONCURRENTLY a_id_idx ON a (id);");
    let out = project.fails(&["up"], 1);
    assert!(
        out.contains("V2__b.sql:1:1: error[concurrently-in-transaction]"),
        "{out}"
    );
    assert!(out.contains("pgwarden:no-transaction"), "{out}");
    assert!(out.contains("nothing was applied"), "{out}");
    assert_eq!(project.history(), "");

    // No down script: nothing is reverted, and the message names the file to write.
    std::fs::remove_file(project.migrations().join("V2__b.sql")).unwrap();
    project.ok(&["up"]);
    let out = project.fails(&["down"], 1);
    assert!(out.contains("no down script for V1__a.down.sql"), "{out}");
    assert!(project.relation_exists("a"));

    project.file("V3__bad_name.sql.txt", "");
    project.file("v4_lower.sql", "SELECT 1;");
    let out = project.fails(&["up"], 2);
    assert!(
        out.contains("v4_lower.sql") && out.contains("V<version>__<name>.sql"),
        "{out}"
    );
}

#[test]
fn an_unreachable_database_exits_3_and_a_missing_folder_exits_2() {
    let project = Project::empty();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    write_file(
        project.dir.path(),
        "pgwarden.toml",
        &format!(
            "[[targets]]\nname = \"gone\"\nurl = \"postgres://u:secret-pw@127.0.0.1:{port}/x\"\n"
        ),
    );
    let out = project.fails(&["status"], 3);
    assert!(
        out.contains("connection refused") && !out.contains("secret-pw"),
        "{out}"
    );
    std::fs::remove_dir(project.migrations()).unwrap();
    let out = project.fails(&["up"], 2);
    assert!(out.contains("migrate init"), "{out}");
}

#[test]
fn a_lock_released_between_retries_lets_the_migration_through() {
    let project = Project::with_settings("lock_timeout = \"300ms\"\nlock_retries = 8");
    project.file("V1__t.sql", "CREATE TABLE t (id int);");
    project.ok(&["up"]);
    project.file("V2__alter.sql", "ALTER TABLE t ADD COLUMN note text;");
    let cluster = shared();
    // Holds the table for three seconds, then commits.
    let mut holder = Command::new(cluster.bin_dir().join("psql"))
        .args(["-X", "-q", "-h", "127.0.0.1", "-p"])
        .arg(cluster.port().to_string())
        .args(["-U", "postgres", "-d", &project.db()])
        .args(["-c", "SET application_name = 'brief_holder'"])
        .args([
            "-c",
            "BEGIN; LOCK TABLE t IN ACCESS SHARE MODE; SELECT pg_sleep(3); COMMIT",
        ])
        .env("PGPASSWORD", PASSWORD)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    cluster
        .wait_for(
            &project.db(),
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'brief_holder' AND l.relation = 't'::regclass",
            "1",
            std::time::Duration::from_secs(20),
        )
        .unwrap();
    let out = project.ok(&["up"]);
    let _ = holder.wait();
    assert!(
        out.contains("retrying") && out.contains("brief_holder"),
        "{out}"
    );
    assert!(out.contains("applied  V2__alter"), "{out}");
    let status = project.ok(&["status", "--json"]);
    let json: serde_json::Value =
        serde_json::from_str(&status[..status.rfind('}').unwrap() + 1]).unwrap();
    assert_eq!(json["current_version"], 2);
    assert_eq!(json["pending"], serde_json::json!([]));
}

/// The schema passes pgwarden's own table-integrity and index checks: every
/// table has a primary key, every foreign key an index, nothing NOT VALID.
#[test]
fn the_education_schema_passes_pgwardens_own_integrity_and_index_checks() {
    let project = Project::education();
    project.ok(&["up"]);
    for check in ["table_integrity", "indexes"] {
        let out = pgwarden(project.dir.path())
            .args(["--config", "pgwarden.toml", "health", "--check", check])
            .output()
            .expect("run pgwarden health");
        let text = output_text(&out);
        assert_eq!(out.status.code(), Some(0), "{check}:\n{text}");
    }
}

#[test]
fn begin_atomic_function_bodies_run_whole_and_errors_keep_their_lines() {
    let project = Project::empty();
    project.file(
        "V1__atomic.sql",
        "CREATE TABLE counters (n bigint NOT NULL);\n\
         CREATE FUNCTION bump() RETURNS bigint LANGUAGE sql\n\
         BEGIN ATOMIC\n  INSERT INTO counters VALUES (1);\n  SELECT count(*) FROM counters;\nEND;\n",
    );
    project.ok(&["up"]);
    assert_eq!(project.psql("SELECT bump()"), "1");
    // The statement after the body keeps its file line in errors.
    project.file(
        "V2__after.sql",
        "CREATE FUNCTION twice() RETURNS bigint LANGUAGE sql\nBEGIN ATOMIC\n  SELECT 2;\nEND;\nSELECT 1 / 0;\n",
    );
    let out = project.fails(&["up"], 1);
    assert!(out.contains("V2__after.sql, line 5"), "{out}");
    assert_eq!(project.history(), "1:atomic");
}
