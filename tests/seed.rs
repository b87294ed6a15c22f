//! Seed data against real PostgreSQL: exact counts per environment,
//! idempotence, identical data on two databases, realistic and consistent
//! rows, the production admin, refusals, atomicity, stats and --scale.

use crate::support;

use std::path::Path;
use std::process::{Command, Output};

use pgwarden::dburl::DbUrl;
use support::*;

const TABLES: [&str; 11] = [
    "users",
    "achievements",
    "learning_paths",
    "modules",
    "assessments",
    "study_sessions",
    "progress",
    "assessment_attempts",
    "user_achievements",
    "notifications",
    "audit_log",
];

/// Rows per table after `seed run --env development` with the default seed.
const DEVELOPMENT_COUNTS: [(&str, i64); 11] = [
    ("users", 100),
    ("achievements", 30),
    ("learning_paths", 50),
    ("modules", 250),
    ("assessments", 300),
    ("study_sessions", 1291),
    ("progress", 841),
    ("assessment_attempts", 586),
    ("user_achievements", 144),
    ("notifications", 400),
    ("audit_log", 125),
];

/// A working directory with a config pointing at a fresh database.
struct Db {
    dir: tempfile::TempDir,
    url: DbUrl,
}

impl Db {
    /// A fresh database, migrated to the head; `seed` goes into `[seed]`.
    fn migrated(seed: &str) -> Db {
        let db = Db::unmigrated(seed);
        db.migrate_to_head();
        db
    }

    fn unmigrated(seed: &str) -> Db {
        let dir = workdir();
        let url = shared().create_database().expect("create database");
        let migrations = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        write_file(
            dir.path(),
            "pgwarden.toml",
            &format!(
                "[migrations]\ndir = \"{}\"\n\n[seed]\n{seed}\n\n[[targets]]\nname = \"db\"\nurl = \"{}\"\n",
                migrations.display(),
                url.expose()
            ),
        );
        Db { dir, url }
    }

    /// The one place tests put the schema in: the migration engine's `up`.
    fn migrate_to_head(&self) {
        let options = pgwarden::config::LoadOptions {
            path: Some(self.dir.path().join("pgwarden.toml")),
            ..Default::default()
        };
        let config = pgwarden::config::Config::load(&options).unwrap();
        let target = config.target(None).unwrap().clone();
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(pgwarden::migrate::up(&config, &target, &Default::default()))
            .unwrap_or_else(|e| panic!("migrate up: {e}"));
    }

    fn name(&self) -> String {
        self.url.database()
    }

    fn sql(&self, sql: &str) -> String {
        shared()
            .psql(&self.name(), sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    fn count(&self, sql: &str) -> i64 {
        self.sql(sql)
            .parse()
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = pgwarden(self.dir.path());
        command
            .args(["--config", "pgwarden.toml", "seed"])
            .args(args)
            .env_remove("PGWARDEN_ADMIN_EMAIL")
            .env_remove("PGWARDEN_ADMIN_PASSWORD");
        command
    }

    fn seed(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run pgwarden")
    }

    /// Run `seed …` and expect exit `code`; returns stdout + stderr.
    fn seed_exits(&self, args: &[&str], code: i32) -> String {
        let out = self.seed(args);
        let text = output_text(&out);
        assert_eq!(out.status.code(), Some(code), "seed {args:?}:\n{text}");
        text
    }

    /// (table, rows, md5 of every row in id order), for every seeded table.
    fn checksums(&self) -> Vec<(String, i64, String)> {
        TABLES
            .iter()
            .map(|t| {
                let rows = self.count(&format!("SELECT count(*) FROM {t}"));
                let md5 = self.sql(&format!(
                    "SELECT coalesce(md5(string_agg(x::text, ',' ORDER BY id)), '') FROM {t} x"
                ));
                (t.to_string(), rows, md5)
            })
            .collect()
    }

    /// Every constraint and index definition of the schema.
    fn definitions(&self) -> String {
        self.sql(
            "SELECT (SELECT string_agg(conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid), E'\\n' ORDER BY conrelid::regclass::text, conname)
                       FROM pg_constraint WHERE connamespace = 'public'::regnamespace)
                 || E'\\n' ||
                    (SELECT string_agg(indexdef, E'\\n' ORDER BY indexname) FROM pg_indexes WHERE schemaname = 'public')",
        )
    }

    /// `pg_dump --schema-only`: every table, constraint, index and trigger
    /// (with its enabled state) as the real tool restores them; without the
    /// `\restrict` lines, whose key is random on every dump.
    fn schema_dump(&self) -> String {
        let out = Command::new(shared().bin_dir().join("pg_dump"))
            .args(["--schema-only", "--no-owner", "--dbname", self.url.expose()])
            .output()
            .expect("run pg_dump (Debian: postgresql-client-15)");
        assert!(out.status.success(), "pg_dump: {}", output_text(&out));
        String::from_utf8(out.stdout)
            .expect("pg_dump prints UTF-8")
            .lines()
            .filter(|l| !l.starts_with("\\restrict ") && !l.starts_with("\\unrestrict "))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn total_rows(&self) -> i64 {
        self.checksums().iter().map(|c| c.1).sum()
    }
}

#[test]
fn development_counts_are_exact_and_a_second_run_changes_nothing() {
    let db = Db::migrated("");
    let out = db.seed_exits(&["run", "--env", "development"], 0);
    assert!(out.contains("seeded development data"), "{out}");
    assert_eq!(db.count("SELECT count(*) FROM users"), 100);
    assert_eq!(
        db.sql("SELECT string_agg(role || '=' || n, ',' ORDER BY role) FROM (SELECT role::text, count(*) n FROM users GROUP BY 1) r"),
        "admin=5,parent=10,student=70,teacher=15"
    );
    assert_eq!(db.count("SELECT count(*) FROM learning_paths"), 50);
    assert_eq!(db.count("SELECT count(*) FROM modules"), 250);
    assert_eq!(db.count("SELECT count(*) FROM achievements"), 30);
    assert_eq!(db.count("SELECT count(*) FROM assessments"), 300);
    for table in [
        "study_sessions",
        "progress",
        "assessment_attempts",
        "user_achievements",
        "notifications",
        "audit_log",
    ] {
        assert!(
            db.count(&format!("SELECT count(*) FROM {table}")) > 0,
            "{table}"
        );
    }
    assert_eq!(db.count("SELECT count(*) FROM notifications"), 400);
    // With the default seed every count is fixed (the README lists them).
    let counts: Vec<(String, i64)> = db.checksums().into_iter().map(|(t, n, _)| (t, n)).collect();
    let expected: Vec<(String, i64)> = DEVELOPMENT_COUNTS
        .iter()
        .map(|(t, n)| (t.to_string(), *n))
        .collect();
    assert_eq!(counts, expected);
    // Every path is written by a teacher.
    assert_eq!(
        db.count("SELECT count(*) FROM learning_paths p JOIN users u ON u.id = p.author_id WHERE u.role = 'teacher'"),
        50
    );

    let before = db.checksums();
    let again = db.seed_exits(&["run"], 0);
    assert!(again.contains("nothing inserted"), "{again}");
    assert_eq!(db.checksums(), before, "a second run changed the data");
}

#[test]
fn two_fresh_databases_get_identical_data() {
    let a = Db::migrated("anchor = \"2024-09-01\"");
    let b = Db::migrated("anchor = \"2024-09-01\"");
    a.seed_exits(&["run"], 0);
    b.seed_exits(&["run"], 0);
    let (sa, sb) = (a.checksums(), b.checksums());
    assert_eq!(sa, sb);
    assert!(sa.iter().all(|(_, rows, _)| *rows > 0), "{sa:?}");
    // The anchor is the only clock: nothing is later than it.
    assert_eq!(
        a.count("SELECT count(*) FROM study_sessions WHERE ended_at > '2024-09-01' OR started_at < '2024-09-01'::timestamptz - interval '57 days'"),
        0
    );
    // Another random seed is other data.
    let c = Db::migrated("anchor = \"2024-09-01\"\nrandom_seed = 7");
    c.seed_exits(&["run"], 0);
    assert_ne!(c.checksums()[0], sa[0]);
    assert_eq!(c.checksums()[0].1, 100);
}

#[test]
fn seeded_data_is_realistic_and_consistent() {
    let db = Db::migrated("");
    db.seed_exits(&["run"], 0);
    // Sessions over the last weeks, up to today.
    assert_eq!(
        db.count("SELECT count(*) FROM study_sessions WHERE started_at < now() - interval '57 days' OR ended_at > now()"),
        0
    );
    assert!(
        db.count("SELECT count(DISTINCT date_trunc('week', started_at)) FROM study_sessions") >= 6
    );
    assert!(
        db.count(
            "SELECT count(*) FROM study_sessions WHERE started_at > now() - interval '7 days'"
        ) > 0
    );
    // Mixed progress.
    assert_eq!(
        db.sql("SELECT string_agg(DISTINCT status::text, ',' ORDER BY status::text) FROM progress WHERE path_id IS NOT NULL"),
        "completed,in_progress,not_started"
    );
    // Progress follows the sessions: every module worked on has sessions,
    // completion is the end of its last session, and a completed path has all
    // its modules completed.
    assert_eq!(
        db.count("SELECT count(*) FROM progress p WHERE module_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM study_sessions s WHERE s.user_id = p.user_id AND s.module_id = p.module_id)"),
        0
    );
    assert_eq!(
        db.count("SELECT count(*) FROM progress p WHERE status = 'completed' AND module_id IS NOT NULL AND completed_at <> (SELECT max(ended_at) FROM study_sessions s WHERE s.user_id = p.user_id AND s.module_id = p.module_id)"),
        0
    );
    assert_eq!(
        db.count("SELECT count(*) FROM progress p WHERE status = 'completed' AND path_id IS NOT NULL AND (SELECT count(*) FROM progress m JOIN modules mo ON mo.id = m.module_id WHERE m.user_id = p.user_id AND mo.path_id = p.path_id AND m.status = 'completed') <> 5"),
        0
    );
    assert_eq!(
        db.count("SELECT count(*) FROM study_sessions s JOIN users u ON u.id = s.user_id WHERE u.role <> 'student'"),
        0
    );
    // Read and unread notifications; submitted and open attempts; passes and fails.
    assert!(db.count("SELECT count(*) FROM notifications WHERE read_at IS NULL") > 0);
    assert!(db.count("SELECT count(*) FROM notifications WHERE read_at IS NOT NULL") > 0);
    assert!(db.count("SELECT count(*) FROM assessment_attempts WHERE submitted_at IS NULL") > 0);
    assert!(db.count("SELECT count(*) FROM assessment_attempts a JOIN assessments s ON s.id = a.assessment_id WHERE a.score < s.passing_score") > 0);
    assert!(db.count("SELECT count(*) FROM assessment_attempts a JOIN assessments s ON s.id = a.assessment_id WHERE a.score >= s.passing_score") > 0);
    assert!(db.count("SELECT count(*) FROM audit_log WHERE action = 'user.create'") == 100);
    // Every development account logs in with the documented password's hash.
    assert_eq!(
        db.count(
            "SELECT count(DISTINCT password_hash) FROM users WHERE password_hash LIKE '$argon2id$%'"
        ),
        1
    );
}

#[test]
fn staging_gets_its_own_smaller_data_set() {
    let db = Db::migrated("");
    db.seed_exits(&["run", "--env", "staging"], 0);
    assert_eq!(db.count("SELECT count(*) FROM users"), 50);
    assert_eq!(db.count("SELECT count(*) FROM learning_paths"), 20);
    assert_eq!(db.count("SELECT count(*) FROM achievements"), 20);
    assert_eq!(db.count("SELECT count(*) FROM notifications"), 50);
    assert_eq!(db.count("SELECT count(*) FROM modules"), 100);
    assert_eq!(db.count("SELECT count(*) FROM assessments"), 120);
    assert_eq!(db.count("SELECT count(*) FROM audit_log"), 63);
    // Limited sessions: one per module worked on, two paths per student.
    assert_eq!(
        db.count("SELECT count(*) FROM (SELECT 1 FROM study_sessions GROUP BY user_id, module_id HAVING count(*) > 1) x"),
        0
    );
    assert!(db.count("SELECT count(*) FROM study_sessions") > 0);
    assert_eq!(
        db.count("SELECT count(*) FROM (SELECT 1 FROM progress WHERE path_id IS NOT NULL GROUP BY user_id HAVING count(*) > 2) x"),
        0
    );
}

#[test]
fn production_gets_the_admin_essential_achievements_and_five_paths_only() {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};

    let db = Db::migrated("");
    let refused = db
        .command(&["run", "--env", "production"])
        .env("PGWARDEN_ADMIN_EMAIL", "root@school.example")
        .output()
        .unwrap();
    let text = output_text(&refused);
    assert_eq!(refused.status.code(), Some(2), "{text}");
    assert!(text.contains("PGWARDEN_ADMIN_PASSWORD"), "{text}");
    assert_eq!(db.total_rows(), 0);

    let password = "Corr3ct-Horse-Battery";
    let out = db
        .command(&["run", "--env", "production"])
        .env("PGWARDEN_ADMIN_EMAIL", "root@school.example")
        .env("PGWARDEN_ADMIN_PASSWORD", password)
        .output()
        .unwrap();
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(
        db.sql("SELECT email || ' ' || role FROM users"),
        "root@school.example admin"
    );
    let hash = db.sql("SELECT password_hash FROM users");
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let parsed = PasswordHash::new(&hash).unwrap();
    assert!(
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    );
    assert!(
        argon2::Argon2::default()
            .verify_password(b"wrong", &parsed)
            .is_err()
    );
    assert!(!text.contains(password) && !text.contains(&hash), "{text}");
    assert_eq!(
        db.sql("SELECT string_agg(code, ',' ORDER BY code) FROM achievements"),
        "first_assessment,first_module,first_path,first_session,hours_10,hours_100,perfect_score,streak_3,streak_30,streak_7"
    );
    assert_eq!(db.count("SELECT count(*) FROM learning_paths"), 5);
    assert_eq!(db.count("SELECT count(*) FROM modules"), 25);
    let counts = db.checksums();
    let others: i64 = counts
        .iter()
        .filter(|(t, _, _)| {
            !["users", "achievements", "learning_paths", "modules"].contains(&t.as_str())
        })
        .map(|c| c.1)
        .sum();
    assert_eq!(others, 0, "{counts:?}");
    // Again, with another password: the existing admin is left alone.
    let out = db
        .command(&["run", "--env", "production"])
        .env("PGWARDEN_ADMIN_EMAIL", "root@school.example")
        .env("PGWARDEN_ADMIN_PASSWORD", "another-one")
        .output()
        .unwrap();
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("nothing inserted"), "{text}");
    assert_eq!(db.sql("SELECT password_hash FROM users"), hash);
    assert_eq!(db.checksums(), counts);
}

#[test]
fn clear_is_refused_outside_development_and_deletes_nothing() {
    let db = Db::migrated("");
    db.seed_exits(&["run", "--env", "staging"], 0);
    let before = db.checksums();
    for env in ["staging", "production"] {
        let out = db.seed_exits(&["clear", "--env", env], 2);
        assert!(out.contains(&format!("refused in {env}")), "{out}");
        let out = db.seed_exits(&["run", "--clear", "--env", env], 2);
        assert!(out.contains("refused"), "{out}");
        assert_eq!(db.checksums(), before);
    }
    let out = db
        .command(&["clear"])
        .env("PGWARDEN_ENV", "production")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert_eq!(db.checksums(), before);
}

#[test]
fn clear_in_development_removes_seeded_rows_only() {
    let db = Db::migrated("");
    db.seed_exits(&["run"], 0);
    db.sql("INSERT INTO users (email, display_name, password_hash) VALUES ('real@user.example', 'Real User', repeat('x', 40))");
    let out = db.seed_exits(&["clear"], 0);
    assert!(out.contains("deleted"), "{out}");
    assert_eq!(db.total_rows(), 1);
    assert_eq!(db.sql("SELECT email FROM users"), "real@user.example");
    // The append-only trigger is back on.
    assert!(shared().psql(&db.name(), "DELETE FROM audit_log").is_ok());
    db.sql("INSERT INTO audit_log (action, entity) VALUES ('x', 'y')");
    assert!(shared().psql(&db.name(), "DELETE FROM audit_log").is_err());
    // And seeding again after a clear gives the same data as the first time.
    db.seed_exits(&["run", "--clear"], 0);
    assert_eq!(db.count("SELECT count(*) FROM users"), 101);
}

#[test]
fn a_failure_midway_leaves_nothing_behind() {
    let db = Db::migrated("");
    // Notifications come late, after users, paths, sessions and progress.
    db.sql(
        "CREATE FUNCTION fail_seed() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF (SELECT count(*) FROM notifications) >= 10 THEN
                 RAISE EXCEPTION 'injected failure' USING ERRCODE = 'check_violation';
             END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER fail_seed BEFORE INSERT ON notifications FOR EACH ROW EXECUTE FUNCTION fail_seed();",
    );
    let out = db.seed_exits(&["run"], 1);
    assert!(out.contains("injected failure"), "{out}");
    assert!(out.contains("notifications"), "{out}");
    assert_eq!(db.total_rows(), 0, "{:?}", db.checksums());
    db.sql("DROP TRIGGER fail_seed ON notifications");
    db.seed_exits(&["run"], 0);
    assert_eq!(db.count("SELECT count(*) FROM users"), 100);
}

#[test]
fn seeding_an_unmigrated_database_is_refused() {
    let db = Db::unmigrated("");
    let out = db.seed_exits(&["run"], 1);
    assert!(out.contains("not migrated to the head"), "{out}");
    assert!(out.contains("pgwarden migrate up"), "{out}");
    assert_eq!(
        db.count("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"),
        0
    );
}

#[test]
fn stats_count_rows_and_seeded_rows() {
    let db = Db::migrated("");
    db.seed_exits(&["run"], 0);
    db.sql("INSERT INTO users (email, display_name, password_hash) VALUES ('real@user.example', 'Real User', repeat('x', 40))");
    let out = db.seed(&["stats", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(doc["target"], "db");
    let tables = doc["tables"].as_array().unwrap();
    assert_eq!(tables.len(), 11);
    let users = tables.iter().find(|t| t["table"] == "users").unwrap();
    assert_eq!(users["rows"], 101);
    assert_eq!(users["seeded"], 100);
    for t in tables {
        let name = t["table"].as_str().unwrap();
        let rows = db.count(&format!("SELECT count(*) FROM {name}"));
        assert_eq!(t["rows"], rows, "{name}");
    }
    let text = output_text(&db.seed(&["stats"]));
    assert!(text.contains("study_sessions"), "{text}");
}

#[test]
fn scale_multiplies_the_development_volumes() {
    let db = Db::migrated("anchor = \"2024-09-01\"");
    let schema = db.definitions();
    assert!(
        schema.contains("FOREIGN KEY") && schema.contains("users_email_lower_key"),
        "{schema}"
    );
    let out = db.seed_exits(&["run", "--scale", "3"], 0);
    // The bulk load put back every key and index it deferred.
    assert_eq!(db.definitions(), schema);
    assert!(out.contains("rows/s"), "{out}");
    assert!(out.contains("; writing rows "), "{out}");
    assert!(out.contains("keys and indexes "), "{out}");
    // No progress bar when stderr is not a terminal.
    assert!(!out.contains('\r'), "{out:?}");
    assert_eq!(db.count("SELECT count(*) FROM users"), 300);
    assert_eq!(db.count("SELECT count(*) FROM learning_paths"), 150);
    assert_eq!(db.count("SELECT count(*) FROM achievements"), 90);
    let sessions = db.count("SELECT count(*) FROM study_sessions");
    assert!(sessions > 3 * 1000, "{sessions}");
    // Again: nothing to do.
    let before = db.checksums();
    let again = db.seed_exits(&["run", "--scale", "3"], 0);
    assert!(again.contains("nothing inserted"), "{again}");
    assert_eq!(db.checksums(), before);
    // Another size needs --clear; refused outside development.
    let other = db.seed_exits(&["run", "--scale", "2"], 2);
    assert!(other.contains("--clear"), "{other}");
    db.seed_exits(&["run", "--scale", "2", "--env", "staging"], 2);
    db.seed_exits(&["run", "--scale", "2", "--clear"], 0);
    assert_eq!(db.count("SELECT count(*) FROM users"), 200);
    // The first 100 users of a scaled run are the development users.
    let dev = Db::migrated("anchor = \"2024-09-01\"");
    dev.seed_exits(&["run"], 0);
    let ids = dev.sql("SELECT string_agg(quote_literal(id::text), ',') FROM users");
    let digest = format!(
        "SELECT md5(string_agg(x::text, ',' ORDER BY id)) FROM users x WHERE id IN ({ids})"
    );
    assert_eq!(dev.sql(&digest), db.sql(&digest));
}

#[test]
fn a_bulk_load_leaves_the_schema_exactly_as_migrated_and_valid() {
    let db = Db::migrated("anchor = \"2024-09-01\"");
    let before = db.schema_dump();
    assert!(
        before.contains("FOREIGN KEY") && before.contains("CREATE TRIGGER audit_log_no_truncate")
    );
    db.seed_exits(&["run", "--scale", "2"], 0);
    assert_eq!(db.schema_dump(), before);
    // Recreated, not merely declared: every index is usable and every
    // constraint checked (a NOT VALID leftover would show in the dump too).
    assert_eq!(
        db.count("SELECT count(*) FROM pg_index WHERE NOT (indisvalid AND indisready)"),
        0
    );
    assert_eq!(
        db.count("SELECT count(*) FROM pg_constraint WHERE connamespace = 'public'::regnamespace AND NOT convalidated"),
        0
    );
    assert_eq!(db.count("SELECT count(*) FROM users"), 200);
}

#[test]
fn scale_keeps_rows_it_did_not_write() {
    let db = Db::migrated("anchor = \"2024-09-01\"");
    // An application row (not seeded): the tables are not empty, so the bulk
    // path, which empties its tables to load them frozen, must not run.
    db.sql(
        "INSERT INTO users (email, display_name, password_hash) \
         VALUES ('own@example.org', 'Own User', repeat('x', 20))",
    );
    db.seed_exits(&["run", "--scale", "2"], 0);
    assert_eq!(
        db.count("SELECT count(*) FROM users WHERE email = 'own@example.org'"),
        1
    );
    assert_eq!(db.count("SELECT count(*) FROM users"), 201);
}

/// The anchor is checked when the config loads, before any database work
/// (so this needs no schema).
#[test]
fn bad_arguments_are_usage_errors() {
    let db = Db::unmigrated("anchor = \"yesterday\"");
    let out = db.seed_exits(&["run"], 2);
    assert!(out.contains("seed.anchor"), "{out}");
    let out = db.seed_exits(&["run", "--scale", "0"], 2);
    assert!(out.contains("--scale"), "{out}");
}

#[test]
fn a_bulk_load_that_fails_keeps_keys_indexes_and_no_rows() {
    let db = Db::migrated("");
    let schema = db.definitions();
    db.sql(
        "CREATE FUNCTION fail_seed() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             -- Fails only while the keys are deferred: proves the bulk path ran.
             IF to_regclass('study_sessions_pkey') IS NULL
                AND (SELECT count(*) FROM study_sessions) >= 1000 THEN
                 RAISE EXCEPTION 'injected failure';
             END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER fail_seed BEFORE INSERT ON study_sessions FOR EACH ROW EXECUTE FUNCTION fail_seed();",
    );
    let out = db.seed_exits(&["run", "--scale", "2"], 1);
    assert!(out.contains("injected failure"), "{out}");
    assert_eq!(db.total_rows(), 0);
    assert_eq!(db.definitions(), schema);
}

#[test]
fn concurrent_runs_queue_and_seed_once() {
    let db = Db::migrated("");
    let children: Vec<_> = (0..2)
        .map(|_| db.command(&["run"]).spawn().expect("spawn pgwarden"))
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    }
    let counts: Vec<(String, i64)> = db.checksums().into_iter().map(|(t, n, _)| (t, n)).collect();
    let expected: Vec<(String, i64)> = DEVELOPMENT_COUNTS
        .iter()
        .map(|(t, n)| (t.to_string(), *n))
        .collect();
    assert_eq!(counts, expected);
}

#[test]
fn an_unreachable_database_exits_3() {
    let dir = workdir();
    write_file(
        dir.path(),
        "pgwarden.toml",
        &format!(
            "[migrations]\ndir = \"{}\"\n\n[[targets]]\nname = \"down\"\nurl = \"postgres://nobody@127.0.0.1:1/x\"\nconnect_timeout = \"2s\"\n",
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("migrations")
                .display()
        ),
    );
    for args in [
        &["seed", "stats"][..],
        &["seed", "run"][..],
        &["seed", "clear"][..],
    ] {
        let out = pgwarden(dir.path())
            .args(["--config", "pgwarden.toml"])
            .args(args)
            .output()
            .unwrap();
        let text = output_text(&out);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {text}");
        assert!(text.contains("connection refused"), "{text}");
    }
}

#[test]
fn scale_draws_a_progress_bar_on_a_terminal() {
    let db = Db::migrated("");
    // `script` (bsdutils, essential on Debian) gives the command a terminal.
    let command = format!(
        "{} --config pgwarden.toml seed run --scale 2",
        env!("CARGO_BIN_EXE_pgwarden")
    );
    let out = Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .current_dir(db.dir.path())
        .env_remove("DATABASE_URL")
        .env_remove("PGWARDEN_ENV")
        .env_remove("PGWARDEN_CONFIG")
        .output()
        .unwrap_or_else(|e| panic!("cannot run script: {e}; install bsdutils"));
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("\r["), "no progress bar: {text:?}");
    assert!(text.contains("rows/s"), "{text:?}");
    assert_eq!(db.count("SELECT count(*) FROM users"), 200);
}

/// md5 of every row in id order, per table in [`TABLES`] order, with
/// `anchor = "2024-09-01"`: after `seed run` (rows through the staging
/// tables) and after `seed run --scale 2` (the bulk load, COPY FREEZE).
/// Recorded with the hand-written binary COPY encoder that tokio-postgres'
/// `BinaryCopyInWriter` replaced, so the switch changed no stored value. A
/// deliberate change to the data set updates them.
const PINNED_DEVELOPMENT: [&str; 11] = [
    "0703ef30186ddf9fe2974ae2f0ed2fab",
    "592d824b2954210d0b81803855c2888c",
    "f3fee82abea96b14cf96464315f54429",
    "ee0291b74c306789ba5420bd4b6f1fbe",
    "047464fdb84b03fdd081a4fed7fcde06",
    "729d55a6d8714c717e2f2ab9e043a877",
    "7e1b1da22c56d5679be392ada8c4c977",
    "5768207f82560ba9f5adde47fbbbe090",
    "ef0fac4eccec3c8dc0934871ee2cb9b1",
    "bd180093a8fc31bc1d0529aa38c32e15",
    "3a6dfdcf2be3f0cdf0cef00802a7e01e",
];
const PINNED_SCALE_2: [&str; 11] = [
    "617b1ae58f6832f302a2bff32d407780",
    "84adbb6325d78273c0eb1a4be71ec8bb",
    "1290e7567e7533fc07914bfb488fc00c",
    "8bce4777d2936c18fc9244d0e40351e7",
    "8c2fd8dc62399fed259226e65fbe777c",
    "190a5a36310c38cc64f9fb8caaf9d5c7",
    "21c383e582fc92e7960eedad1225ad7a",
    "b125c9398959a6058b6ccdcd58aa8405",
    "11244b74e12a21a34547ff77af7d2a79",
    "18900623a3f886e1dfb442f5e2ba9168",
    "7306b85030b55581b8d6960280ccd5f2",
];

#[test]
fn seeded_values_with_a_fixed_anchor_are_pinned() {
    for (args, pinned) in [
        (&["run"][..], PINNED_DEVELOPMENT),
        (&["run", "--scale", "2"][..], PINNED_SCALE_2),
    ] {
        let db = Db::migrated("anchor = \"2024-09-01\"");
        db.seed_exits(args, 0);
        let got: Vec<(String, String)> = db
            .checksums()
            .into_iter()
            .map(|(t, _, md5)| (t, md5))
            .collect();
        let want: Vec<(String, String)> = TABLES
            .iter()
            .zip(pinned)
            .map(|(t, md5)| (t.to_string(), md5.to_string()))
            .collect();
        assert_eq!(got, want, "seed {args:?}");
    }
}

/// The one numeric encoding pgwarden writes itself, read back by the server.
#[test]
fn hundredths_arrive_as_the_numbers_they_stand_for() {
    use pgwarden::seed::rows::Hundredths;
    let url = shared().create_database().expect("create database");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let shown: Vec<String> = runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url.expose(), tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        let mut shown = Vec::new();
        for h in [0, 5, 1234, 10_000, 1_000_000, 123_456_789, -250] {
            let row = client
                .query_one("SELECT $1::numeric(12, 2)::text", &[&Hundredths(h)])
                .await
                .unwrap_or_else(|e| panic!("{h}: {e}"));
            shown.push(row.get(0));
        }
        shown
    });
    assert_eq!(
        shown,
        [
            "0.00",
            "0.05",
            "12.34",
            "100.00",
            "10000.00",
            "1234567.89",
            "-2.50"
        ]
    );
}
