//! The education schema as code: `schema/` and `migrations/` agree, and
//! `migrate create --autogenerate` writes a migration that applies, passes
//! `migrate check` and reverts with its down file.

use crate::support;

use std::path::Path;

use support::{output_text, pgwarden, shared, workdir, write_file};

const HEAD: &str = "20240901000000";

/// A working directory holding copies of the repository's migrations/ and schema/.
fn project() -> tempfile::TempDir {
    let dir = workdir();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for folder in ["migrations", "schema"] {
        std::fs::create_dir_all(dir.path().join(folder)).unwrap();
        for entry in std::fs::read_dir(root.join(folder)).unwrap().flatten() {
            std::fs::copy(
                entry.path(),
                dir.path().join(folder).join(entry.file_name()),
            )
            .unwrap();
        }
    }
    dir
}

/// Scratch databases on the shared cluster instead of a cluster per command.
fn with_dev_url(dir: &Path) {
    let url = shared().url();
    write_file(
        dir,
        "pgwarden.toml",
        &format!("[schema]\ndev_url = \"{}\"\n", url.expose()),
    );
}

fn run(dir: &Path, args: &[&str], database: Option<&str>) -> (i32, String, String) {
    let mut command = pgwarden(dir);
    if dir.join("pgwarden.toml").exists() {
        command.args(["--config", "pgwarden.toml"]);
    }
    if let Some(db) = database {
        command.env("DATABASE_URL", shared().url_for(db).expose());
    }
    let out = command.args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        output_text(&out),
    )
}

#[test]
fn the_schema_folder_and_the_migrations_agree() {
    // No dev_url: pgwarden starts and removes a throwaway cluster itself.
    let dir = project();
    let (code, stdout, all) = run(
        dir.path(),
        &["schema", "diff", "migrations", "schema", "--exit-code"],
        None,
    );
    assert_eq!(code, 0, "{all}");
    assert_eq!(stdout, "", "{all}");
    let (code, _, all) = run(dir.path(), &["migrate", "check"], None);
    assert_eq!(code, 0, "{all}");
    assert!(all.contains("agree"), "{all}");
}

#[test]
fn autogenerate_writes_a_migration_that_applies_checks_and_reverts() {
    let dir = project();
    with_dev_url(dir.path());
    let schema = dir.path().join("schema/education.sql");
    let text = std::fs::read_to_string(&schema).unwrap();
    let changed = text
        .replace("'admin', 'parent');", "'admin', 'parent', 'guest');")
        .replace(
            "    last_login_at timestamptz,\n",
            "    last_login_at timestamptz,\n    timezone      text NOT NULL DEFAULT 'UTC',\n",
        )
        + "\nCREATE INDEX users_last_login_idx ON users (last_login_at);\n";
    assert_ne!(changed, text);
    std::fs::write(&schema, changed).unwrap();

    let (code, stdout, all) = run(dir.path(), &["migrate", "check"], None);
    assert_eq!(code, 1, "{all}");
    assert!(stdout.contains("ADD COLUMN timezone"), "{all}");
    assert!(stdout.contains("ADD VALUE 'guest'"), "{all}");

    let (code, _, all) = run(
        dir.path(),
        &["migrate", "create", "profile fields", "--autogenerate"],
        None,
    );
    assert_eq!(code, 0, "{all}");
    let files = migration_files(dir.path());
    // The enum value, the rest, the concurrent index: three up/down pairs.
    assert_eq!(files.len(), 8, "{files:?}\n{all}");
    assert!(
        files
            .iter()
            .any(|f| f.ends_with("profile_fields_enum_values.sql")),
        "{files:?}"
    );
    let indexes = files
        .iter()
        .find(|f| f.ends_with("profile_fields_indexes.sql"))
        .expect("an index migration");
    let index_sql = std::fs::read_to_string(dir.path().join("migrations").join(indexes)).unwrap();
    assert!(
        index_sql.contains("-- pgwarden:no-transaction"),
        "{index_sql}"
    );
    assert!(
        index_sql.contains("CREATE INDEX CONCURRENTLY IF NOT EXISTS users_last_login_idx"),
        "{index_sql}"
    );

    let (code, _, all) = run(dir.path(), &["migrate", "check"], None);
    assert_eq!(code, 0, "{all}");
    // What autogenerate writes passes the lint by construction, even where
    // every table is presumed large (no database to ask).
    let (code, _, all) = run(
        dir.path(),
        &[
            "migrate",
            "lint",
            "--all",
            "--offline",
            "--fail-on",
            "warning",
        ],
        None,
    );
    assert_eq!(code, 0, "{all}");

    let db = shared().create_database().unwrap().database();
    let (code, _, all) = run(dir.path(), &["migrate", "up"], Some(&db));
    assert_eq!(code, 0, "{all}");
    let url = shared().url_for(&db);
    let (code, stdout, all) = run(
        dir.path(),
        &["schema", "diff", url.expose(), "schema", "--exit-code"],
        None,
    );
    assert_eq!((code, stdout.as_str()), (0, ""), "{all}");

    let (code, _, all) = run(
        dir.path(),
        &["migrate", "down", "--revision", HEAD],
        Some(&db),
    );
    assert_eq!(code, 0, "{all}");
    let head = format!("migrations@{HEAD}");
    let (code, stdout, all) = run(
        dir.path(),
        &["schema", "diff", url.expose(), &head, "--exit-code"],
        None,
    );
    assert_eq!((code, stdout.as_str()), (0, ""), "{all}");

    let (code, stdout, all) = run(
        dir.path(),
        &["migrate", "create", "nothing new", "--autogenerate"],
        None,
    );
    assert_eq!(code, 0, "{all}");
    assert!(stdout.contains("No changes"), "{all}");
    assert_eq!(migration_files(dir.path()).len(), 8);
}

fn migration_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("migrations"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn the_first_migration_is_autogenerated_in_a_project_without_migrations() {
    let dir = workdir();
    with_dev_url(dir.path());
    std::fs::create_dir_all(dir.path().join("schema")).unwrap();
    write_file(
        &dir.path().join("schema"),
        "app.sql",
        "CREATE TABLE a (id int PRIMARY KEY);\nCREATE INDEX a_idx ON a (id);\n",
    );
    let (code, stdout, all) = run(
        dir.path(),
        &["migrate", "create", "Initial schema", "--autogenerate"],
        None,
    );
    assert_eq!(code, 0, "{all}");
    assert!(stdout.contains("__initial_schema.sql"), "{all}");
    let files = migration_files(dir.path());
    assert_eq!(files.len(), 2, "{files:?}");
    let up = std::fs::read_to_string(dir.path().join("migrations").join(&files[1])).unwrap();
    // A new table's index needs no CONCURRENTLY: nobody uses the table yet.
    assert!(up.contains("CREATE INDEX a_idx ON public.a"), "{up}");
    let (code, _, all) = run(dir.path(), &["migrate", "check"], None);
    assert_eq!(code, 0, "{all}");
}

#[test]
fn a_bad_schema_file_is_named_with_its_line() {
    let dir = workdir();
    with_dev_url(dir.path());
    std::fs::create_dir_all(dir.path().join("schema")).unwrap();
    write_file(
        &dir.path().join("schema"),
        "bad.sql",
        "CREATE TABLE a (id int);\n\nCREATE TABLE b (id nosuchtype);\n",
    );
    let (code, _, all) = run(dir.path(), &["schema", "diff", "schema", "schema"], None);
    assert_eq!(code, 2, "{all}");
    assert!(
        all.contains("bad.sql line 3: type \"nosuchtype\" does not exist"),
        "{all}"
    );
}
