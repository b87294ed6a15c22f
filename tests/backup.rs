//! Backups and restore against real PostgreSQL with the real pg_dump,
//! pg_restore and psql: round trips in every format, killed and failing
//! pg_dumps, truncated files, restore tests, the schedule, retention on
//! disk and the production guard rails.

use crate::support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pgwarden::backup::schedule;
use pgwarden::backup::{self, BackupMetrics, BackupOptions, Format};
use pgwarden::config::{Config, EnvVars, LoadOptions};
use pgwarden::dburl::DbUrl;
use support::*;

/// Many column types, an enum, a quoted schema and table name, an empty table.
const SCHEMA: &str = "
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE people (
    id uuid PRIMARY KEY, name text NOT NULL, mood mood, tags text[], scores int[],
    profile jsonb, born date, seen timestamptz, avatar bytea, balance numeric(12,2),
    ratio double precision, active boolean, note varchar(50), ip inet, span interval);
INSERT INTO people
SELECT md5(i::text)::uuid, 'person ' || i, (ARRAY['sad','ok','happy']::mood[])[1 + i % 3],
       ARRAY['t' || i, 'x'], ARRAY[i, i * 2], jsonb_build_object('i', i, 'nested', jsonb_build_object('odd', i % 2 = 1), 'list', jsonb_build_array(i, 'a')),
       date '2000-01-01' + i, timestamptz '2024-01-01 00:00:00+00' + i * interval '37 minutes',
       decode(md5(i::text), 'hex'), i * 1.25, i / 7.0, i % 2 = 0, CASE WHEN i % 5 = 0 THEN NULL ELSE 'n''ote ' || i END,
       ('10.0.' || (i % 256) || '.1')::inet, i * interval '1 second'
FROM generate_series(1, 500) i;
CREATE TABLE events (id bigserial PRIMARY KEY, person uuid REFERENCES people, payload jsonb, at timestamptz DEFAULT now());
INSERT INTO events (person, payload) SELECT md5((1 + i % 500)::text)::uuid, jsonb_build_object('n', i) FROM generate_series(1, 1200) i;
CREATE SCHEMA audit;
CREATE TABLE audit.\"Log Entries\" (id int, msg text);
INSERT INTO audit.\"Log Entries\" SELECT i, repeat('x', i) FROM generate_series(1, 40) i;
CREATE TABLE empty_table (id int);
";

fn seeded_database() -> DbUrl {
    let url = shared().create_database().unwrap();
    shared().psql(&url.database(), SCHEMA).unwrap();
    url
}

/// `schema.table` → (row count, md5 of every row's text, sorted).
fn fingerprint(database: &str) -> BTreeMap<String, (i64, String)> {
    let tables = shared()
        .psql(
            database,
            "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables
              WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
        )
        .unwrap();
    tables
        .lines()
        .map(|table| {
            let row = shared()
                .psql(
                    database,
                    &format!(
                        "SELECT count(*) || ' ' || md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {table} t"
                    ),
                )
                .unwrap();
            let (count, md5) = row.split_once(' ').unwrap();
            (table.to_string(), (count.parse().unwrap(), md5.to_string()))
        })
        .collect()
}

fn database_exists(name: &str) -> bool {
    shared()
        .psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'"),
        )
        .unwrap()
        == "1"
}

/// A config file in `dir` for one target, with `extra` TOML appended to [backup].
fn write_config(dir: &Path, url: &DbUrl, environment: &str, backup_extra: &str) -> PathBuf {
    let text = format!(
        "environment = \"{environment}\"\n[backup]\ndir = \"{}\"\n{backup_extra}\n[[targets]]\nname = \"main\"\nurl = \"{}\"\nbackup = true\n",
        dir.join("backups").display(),
        url.expose()
    );
    write_file(dir, "pgwarden.toml", &text)
}

fn load(path: &Path) -> Config {
    Config::load(&LoadOptions {
        path: Some(path.to_path_buf()),
        environment: None,
        env: EnvVars::default(),
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

/// `pgwarden restore BACKUP --database NAME --yes`: a copy beside the original.
fn restore_copy(dir: &Path, config: &Path, backup: &Path, database: &str) -> (Option<i32>, String) {
    let backup = backup.to_str().unwrap();
    run(
        dir,
        config,
        &["restore", backup, "--database", database, "--yes"],
    )
}

fn run(dir: &Path, config: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = pgwarden(dir)
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(!text.contains(PASSWORD), "password printed:\n{text}");
    (out.status.code(), text)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A backup (as the scheduler takes it) whose pg_dump waits on a lock held
/// by `locker` on `table`: caught mid-dump, its pid known from a wrapper.
struct MidDump {
    dir: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
    locker: tokio_postgres::Client,
    metrics: BackupMetrics,
    task: tokio::task::JoinHandle<Option<pgwarden::Result<backup::BackupOutcome>>>,
    pid: String,
}

fn backup_caught_mid_dump(table: &str) -> MidDump {
    let url = seeded_database();
    let dir = workdir();
    let pidfile = dir.path().join("pg_dump.pid");
    let bin = wrapper_bin_dir(
        dir.path(),
        &format!("echo $$ > '{}'\nexec \"$REAL\" \"$@\"", pidfile.display()),
    );
    let config = load(&write_config(
        dir.path(),
        &url,
        "development",
        &format!("bin_dir = \"{}\"", bin.display()),
    ));
    let target = config.target(None).unwrap().clone();
    let rt = runtime();
    let locker = lock_table(&rt, &url, table);
    let metrics = BackupMetrics::new(["main"]);
    let task = {
        let (config, metrics) = (config.clone(), metrics.clone());
        rt.spawn(async move { schedule::backup_and_record(&config, &target, &metrics).await })
    };
    wait_for_pg_dump_blocked(&url);
    let pid = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .to_string();
    MidDump {
        dir,
        rt,
        locker,
        metrics,
        task,
        pid,
    }
}

/// Files and directories in the backup dir, hidden (temporary) ones included;
/// not the target's lock file, which stays (unlocked) after every backup.
fn backup_dir_contents(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("backups"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != ".main.lock")
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn every_format_round_trips_into_a_new_database() {
    let url = seeded_database();
    let source = url.database();
    let before = fingerprint(&source);
    assert_eq!(before.len(), 4);
    assert_eq!(before["public.people"].0, 500);
    let dir = workdir();
    let config = write_config(dir.path(), &url, "development", "");
    for format in ["custom", "plain", "directory"] {
        let output = dir.path().join(format!("backup-{format}"));
        let (code, text) = run(
            dir.path(),
            &config,
            &[
                "backup",
                "--format",
                format,
                "--output",
                output.to_str().unwrap(),
            ],
        );
        assert_eq!(code, Some(0), "{text}");
        assert!(
            text.contains("4 tables, 1740 rows (counted in the dump's snapshot)"),
            "{text}"
        );
        let copy = format!("{source}_{format}");
        let (code, text) = restore_copy(dir.path(), &config, &output, &copy);
        assert_eq!(code, Some(0), "{format}: {text}");
        assert!(text.contains("(created)"), "{text}");
        assert!(text.contains("row counts of all 4 tables match"), "{text}");
        assert_eq!(fingerprint(&copy), before, "{format} restore differs");
    }
}

#[test]
fn the_manifest_records_checksums_versions_and_snapshot_row_counts() {
    let url = seeded_database();
    let dir = workdir();
    let config = load(&write_config(dir.path(), &url, "development", ""));
    let target = config.target(None).unwrap();
    let outcome = runtime()
        .block_on(backup::take(&config, target, &BackupOptions::default()))
        .unwrap();
    let name = outcome.path.file_name().unwrap().to_str().unwrap();
    let expected_prefix = format!("main_{}_", url.database());
    assert!(
        name.starts_with(&expected_prefix) && name.ends_with(".dump"),
        "{name}"
    );
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("backups").join(format!("{name}.json"))).unwrap(),
    )
    .unwrap();
    let bytes = std::fs::read(&outcome.path).unwrap();
    assert_eq!(manifest["size_bytes"], bytes.len() as u64);
    assert_eq!(manifest["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(manifest["format"], "custom");
    assert_eq!(manifest["compress"], "gzip:6");
    assert!(
        manifest["server_version"]
            .as_str()
            .unwrap()
            .starts_with("15")
    );
    assert!(
        manifest["pg_dump_version"]
            .as_str()
            .unwrap()
            .contains("pg_dump (PostgreSQL)")
    );
    assert_eq!(manifest["row_counts_exact"], true);
    assert_eq!(manifest["row_counts"]["public.people"], 500);
    assert_eq!(manifest["row_counts"]["audit.\"Log Entries\""], 40);
    assert_eq!(manifest["row_counts"]["public.empty_table"], 0);
    assert_eq!(manifest["verification"]["ok"], true);
    // Only the backup and its manifest: no temporary file left over.
    assert_eq!(
        backup_dir_contents(dir.path()),
        vec![name.to_string(), format!("{name}.json")]
    );
}

#[test]
fn backups_and_their_directory_are_for_the_owner_only_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let url = seeded_database();
    let dir = workdir();
    let config = write_config(dir.path(), &url, "development", "");
    for format in ["custom", "plain", "directory"] {
        let mut command = pgwarden(dir.path());
        command.arg("--config").arg(&config);
        command.args(["backup", "--format", format]);
        // The common umask, which leaves new files readable by everyone.
        // SAFETY: umask is async-signal-safe and touches no memory.
        unsafe {
            command.pre_exec(|| {
                libc::umask(0o022);
                Ok(())
            });
        }
        let out = command.output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    }
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let backups = dir.path().join("backups");
    assert_eq!(mode(&backups), 0o700, "backup.dir, created by pgwarden");
    let names = backup_dir_contents(dir.path());
    assert_eq!(
        names.len(),
        6,
        "three backups and their manifests: {names:?}"
    );
    for name in names {
        let path = backups.join(&name);
        if path.is_dir() {
            assert_eq!(mode(&path), 0o700, "{name}");
            for file in std::fs::read_dir(&path).unwrap().flatten() {
                assert_eq!(mode(&file.path()), 0o600, "{}", file.path().display());
            }
        } else {
            assert_eq!(mode(&path), 0o600, "{name}");
        }
    }
}

#[test]
fn a_pg_dump_killed_mid_dump_leaves_no_file_and_counts_a_failure() {
    let MidDump {
        dir,
        rt,
        locker,
        metrics,
        task,
        pid,
    } = backup_caught_mid_dump("events");
    assert_eq!(metrics.value("main", "backup_running"), Some(1.0));
    // `ps` shows pg_dump's command line: it carries no password.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(
        cmdline.contains("--dbname=postgres://postgres@127.0.0.1"),
        "{cmdline}"
    );
    assert!(
        !cmdline.contains(PASSWORD),
        "password on the command line: {cmdline}"
    );
    // A temporary file exists while pg_dump runs…
    assert!(
        backup_dir_contents(dir.path())
            .iter()
            .any(|n| n.starts_with('.') && n.contains(".tmp-")),
        "{:?}",
        backup_dir_contents(dir.path())
    );
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let result = rt.block_on(task).unwrap().expect("not skipped");
    let err = result.expect_err("a killed pg_dump must fail the backup");
    // pg_dump printed nothing: the message says so instead of ending in ": ".
    let err = err.to_string();
    assert!(
        err.contains("pg_dump failed (killed by signal 9, SIGKILL) without a message"),
        "{err}"
    );
    assert!(err.contains("OOM killer"), "{err}");
    assert!(!err.trim_end().ends_with(':'), "{err}");
    // …and nothing is left under any name.
    assert_eq!(backup_dir_contents(dir.path()), Vec::<String>::new());
    assert_eq!(metrics.value("main", "backup_failures_total"), Some(1.0));
    assert_eq!(metrics.value("main", "backup_running"), Some(0.0));
    assert_eq!(
        metrics.value("main", "backup_last_verify_success"),
        Some(0.0)
    );
    assert_eq!(
        metrics.value("main", "backup_last_success_timestamp_seconds"),
        None
    );
    rt.block_on(locker.batch_execute("ROLLBACK")).unwrap();
}

#[test]
fn a_failing_pg_dump_is_reported_with_its_stderr() {
    let url = seeded_database();
    let dir = workdir();
    let bin = wrapper_bin_dir(
        dir.path(),
        "case \"$1\" in --version) exec \"$REAL\" --version;; esac\necho 'pg_dump: error: could not write: No space left on device' >&2\nexit 1",
    );
    let config = write_config(
        dir.path(),
        &url,
        "development",
        &format!("bin_dir = \"{}\"", bin.display()),
    );
    let (code, text) = run(dir.path(), &config, &["backup"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("pg_dump failed (exit code 1)"), "{text}");
    assert!(text.contains("No space left on device"), "{text}");
    assert!(
        backup_dir_contents(dir.path()).is_empty(),
        "{:?}",
        backup_dir_contents(dir.path())
    );
}

#[test]
fn a_pg_dump_older_than_the_server_is_refused_naming_both_versions() {
    let url = seeded_database();
    let dir = workdir();
    let bin = wrapper_bin_dir(dir.path(), "echo 'pg_dump (PostgreSQL) 12.17'");
    let config = write_config(
        dir.path(),
        &url,
        "development",
        &format!("bin_dir = \"{}\"", bin.display()),
    );
    let (code, text) = run(dir.path(), &config, &["backup"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("is version 12 but target `main` runs PostgreSQL 15"),
        "{text}"
    );
}

#[test]
fn a_truncated_backup_is_refused_by_verify_and_restore_and_the_target_is_unchanged() {
    let url = seeded_database();
    let database = url.database();
    let dir = workdir();
    let config = write_config(dir.path(), &url, "development", "");
    let output = dir.path().join("full.dump");
    let (code, text) = run(
        dir.path(),
        &config,
        &["backup", "-o", output.to_str().unwrap()],
    );
    assert_eq!(code, Some(0), "{text}");
    // Change the database after the backup, so a restore would be visible.
    shared()
        .psql(&database, "DELETE FROM events WHERE id > 1000")
        .unwrap();
    let before = fingerprint(&database);

    let len = std::fs::metadata(&output).unwrap().len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&output)
        .unwrap();
    file.set_len(len / 2).unwrap();
    drop(file);

    let (code, text) = run(
        dir.path(),
        &config,
        &["backup", "verify", output.to_str().unwrap()],
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("the file is truncated or was changed"),
        "{text}"
    );

    let (code, text) = run(
        dir.path(),
        &config,
        &["restore", output.to_str().unwrap(), "--clean", "--yes"],
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("refusing to restore"), "{text}");
    assert!(text.contains("the database was not touched"), "{text}");
    assert_eq!(fingerprint(&database), before);

    let fresh = format!("{database}_never");
    let (code, _) = restore_copy(dir.path(), &config, &output, &fresh);
    assert_eq!(code, Some(1));
    assert!(
        !database_exists(&fresh),
        "a refused restore created {fresh}"
    );

    // Same length, one byte changed: the sha256 catches it.
    let (code, text) = run(
        dir.path(),
        &config,
        &["backup", "-o", dir.path().join("b.dump").to_str().unwrap()],
    );
    assert_eq!(code, Some(0), "{text}");
    let mut bytes = std::fs::read(dir.path().join("b.dump")).unwrap();
    let last = bytes.len() - 10;
    bytes[last] ^= 0xff;
    std::fs::write(dir.path().join("b.dump"), bytes).unwrap();
    let (code, text) = run(
        dir.path(),
        &config,
        &[
            "backup",
            "verify",
            dir.path().join("b.dump").to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("differs from its manifest"), "{text}");
}

#[test]
fn a_plain_dump_cut_short_is_refused() {
    let url = seeded_database();
    let dir = workdir();
    let config = load(&write_config(dir.path(), &url, "development", ""));
    let target = config.target(None).unwrap();
    let rt = runtime();
    let outcome = rt
        .block_on(backup::take(
            &config,
            target,
            &BackupOptions {
                format: Some(Format::Plain),
                ..Default::default()
            },
        ))
        .unwrap();
    assert!(outcome.path.extension().unwrap() == "sql");
    let text = std::fs::read_to_string(&outcome.path).unwrap();
    assert!(text.contains("CREATE TYPE public.mood"));
    // Cut the SQL before its closing line and make the manifest agree, so
    // only the trailer check stands between it and a restore.
    let cut = &text[..text.len() * 3 / 4];
    std::fs::write(&outcome.path, cut).unwrap();
    let mut manifest = outcome.manifest.clone();
    manifest.size_bytes = cut.len() as u64;
    manifest.sha256 = backup::manifest::sha256(&outcome.path).unwrap();
    manifest.write_for(&outcome.path).unwrap();
    let err = rt
        .block_on(backup::verify::verify(&config, None, &outcome.path, false))
        .unwrap_err();
    assert!(err.to_string().contains("the dump is truncated"), "{err}");
}

#[test]
fn verify_restore_test_restores_compares_and_drops_the_scratch_database() {
    let url = seeded_database();
    let dir = workdir();
    let config = write_config(dir.path(), &url, "development", "");
    let output = dir.path().join("backups").join("x.dump");
    let (code, text) = run(
        dir.path(),
        &config,
        &["backup", "-o", output.to_str().unwrap()],
    );
    assert_eq!(code, Some(0), "{text}");
    // Scratch databases of pgwarden processes (the scheduler test in this
    // process makes its own, named with this process's pid).
    let scratch_count = || {
        shared()
            .psql(
                "postgres",
                &format!(
                    "SELECT count(*) FROM pg_database WHERE datname LIKE 'pgwarden_verify_%' AND datname NOT LIKE 'pgwarden_verify_{}_%'",
                    std::process::id()
                ),
            )
            .unwrap()
    };
    let scratch_before = scratch_count();

    let (code, text) = run(
        dir.path(),
        &config,
        &[
            "backup",
            "verify",
            output.to_str().unwrap(),
            "--restore-test",
        ],
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("restore test: 4 tables restored"), "{text}");
    assert_eq!(scratch_count(), scratch_before);
    let (code, text) = run(dir.path(), &config, &["backup", "list"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("restored") && text.contains("x.dump"),
        "{text}"
    );

    // A manifest that promises rows the dump does not hold fails the test.
    let manifest_path = backup::manifest::Manifest::path_for(&output);
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
    manifest["row_counts"]["public.people"] = 501.into();
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
    let (code, text) = run(
        dir.path(),
        &config,
        &[
            "backup",
            "verify",
            output.to_str().unwrap(),
            "--restore-test",
        ],
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("public.people (manifest 501, restored 500)"),
        "{text}"
    );
    assert_eq!(
        scratch_count(),
        scratch_before,
        "scratch database left behind"
    );
    let (_, text) = run(dir.path(), &config, &["backup", "list"]);
    assert!(text.contains("FAILED"), "{text}");
}

#[test]
fn production_restore_needs_force_and_a_confirmation() {
    let url = seeded_database();
    let dir = workdir();
    let config = write_config(dir.path(), &url, "production", "");
    let output = dir.path().join("p.dump");
    let (code, text) = run(
        dir.path(),
        &config,
        &["backup", "-o", output.to_str().unwrap()],
    );
    assert_eq!(code, Some(0), "{text}");
    shared()
        .psql(&url.database(), "INSERT INTO empty_table VALUES (1)")
        .unwrap();

    let (code, text) = run(
        dir.path(),
        &config,
        &["restore", output.to_str().unwrap(), "--clean", "--yes"],
    );
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("in production without --force"), "{text}");

    // No terminal and no --yes: refused, not silently confirmed.
    let (code, text) = run(
        dir.path(),
        &config,
        &["restore", output.to_str().unwrap(), "--clean", "--force"],
    );
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("pass --yes"), "{text}");
    assert_eq!(
        shared()
            .psql(&url.database(), "SELECT count(*) FROM empty_table")
            .unwrap(),
        "1"
    );

    let (code, text) = run(
        dir.path(),
        &config,
        &[
            "restore",
            output.to_str().unwrap(),
            "--clean",
            "--force",
            "--yes",
        ],
    );
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(
        shared()
            .psql(&url.database(), "SELECT count(*) FROM empty_table")
            .unwrap(),
        "0"
    );
}

#[test]
fn before_migrate_backs_up_in_production_and_fails_when_pg_dump_fails() {
    let url = seeded_database();
    let rt = runtime();

    let dir = workdir();
    let config = load(&write_config(dir.path(), &url, "production", ""));
    rt.block_on(backup::before_migrate(
        &config,
        config.target(None).unwrap(),
    ))
    .unwrap();
    let files = backup_dir_contents(dir.path());
    assert_eq!(files.len(), 2, "{files:?}");

    let dev = workdir();
    let config = load(&write_config(dev.path(), &url, "development", ""));
    rt.block_on(backup::before_migrate(
        &config,
        config.target(None).unwrap(),
    ))
    .unwrap();
    assert!(
        backup_dir_contents(dev.path()).is_empty(),
        "no backup outside production"
    );

    let broken = workdir();
    let bin = wrapper_bin_dir(
        broken.path(),
        "case \"$1\" in --version) exec \"$REAL\" --version;; esac\necho 'pg_dump: error: query failed: permission denied for table secrets' >&2\nexit 1",
    );
    let config = load(&write_config(
        broken.path(),
        &url,
        "production",
        &format!("bin_dir = \"{}\"", bin.display()),
    ));
    let err = rt
        .block_on(backup::before_migrate(
            &config,
            config.target(None).unwrap(),
        ))
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("no migration ran"), "{text}");
    assert!(
        text.contains("permission denied for table secrets"),
        "{text}"
    );
}

#[test]
fn the_scheduler_takes_backups_and_the_metrics_show_them() {
    let url = seeded_database();
    let dir = workdir();
    let config = load(&write_config(
        dir.path(),
        &url,
        "development",
        "schedule = \"*/2 * * * * *\"\nrestore_test = true",
    ));
    let metrics = BackupMetrics::new(["main"]);
    let rt = runtime();
    let task = rt.spawn(schedule::run(
        config.clone(),
        config.targets.clone(),
        metrics.clone(),
    ));
    let deadline = Instant::now() + Duration::from_secs(60);
    while metrics
        .value("main", "backup_last_success_timestamp_seconds")
        .is_none()
    {
        assert!(
            Instant::now() < deadline,
            "no scheduled backup within 60 s: {:?}",
            metrics.state("main")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Read before stopping: a backup in flight when the loop is stopped ends as a failure.
    let state = metrics.state("main");
    task.abort();
    assert_eq!(state.last_verify_success, Some(true));
    assert!(state.last_size_bytes.unwrap() > 0);
    assert!(state.last_success_timestamp.unwrap() > (chrono::Utc::now().timestamp() - 120) as f64);
    let names: Vec<(String, String)> = metrics
        .measurements()
        .into_iter()
        .map(|(t, m)| (t, m.metric.into_owned()))
        .collect();
    for metric in [
        "backup_last_success_timestamp_seconds",
        "backup_last_duration_seconds",
        "backup_last_size_bytes",
        "backup_failures_total",
        "backup_running",
        "backup_last_verify_success",
        "backup_skipped_total",
    ] {
        assert!(
            names.contains(&("main".to_string(), metric.to_string())),
            "{metric} missing: {names:?}"
        );
    }
    let listed = backup::catalog::list(&config.backup.dir).unwrap();
    assert!(!listed.is_empty());
    let v = listed[0].manifest.verification.as_ref().unwrap();
    assert!(v.ok && v.restore_test, "{v:?}");
}

#[test]
fn a_backup_that_finds_one_running_is_skipped_and_counted() {
    let url = seeded_database();
    let dir = workdir();
    let config = load(&write_config(dir.path(), &url, "development", ""));
    let metrics = BackupMetrics::new(["main"]);
    assert!(metrics.try_start("main"));
    let outcome = runtime().block_on(schedule::backup_and_record(
        &config,
        config.target(None).unwrap(),
        &metrics,
    ));
    assert!(outcome.is_none());
    assert_eq!(metrics.value("main", "backup_skipped_total"), Some(1.0));
    assert!(backup_dir_contents(dir.path()).is_empty());
}

#[test]
fn prune_keeps_the_newest_and_dry_run_deletes_nothing() {
    let url = seeded_database();
    let dir = workdir();
    let config = write_config(
        dir.path(),
        &url,
        "development",
        "format = \"plain\"\n[backup.retention]\nkeep_last = 2\ndaily = 0\nweekly = 0\nmonthly = 0",
    );
    for _ in 0..4 {
        let (code, text) = run(dir.path(), &config, &["backup"]);
        assert_eq!(code, Some(0), "{text}");
    }
    let all = backup_dir_contents(dir.path());
    assert_eq!(all.len(), 8, "{all:?}");
    // Temporary files: one of a process that is gone, one of this live one.
    let backups = dir.path().join("backups");
    let stale = ".main_x_20240101_000000.dump.tmp-999999999-0";
    let live = format!(".main_x_20240101_000000.dump.tmp-{}-0", std::process::id());
    std::fs::write(backups.join(stale), "partial").unwrap();
    std::fs::write(backups.join(&live), "partial").unwrap();
    let all = backup_dir_contents(dir.path());
    let (code, text) = run(dir.path(), &config, &["backup", "prune", "--dry-run"]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(text.matches("would delete: ").count(), 2, "{text}");
    assert!(
        text.contains(&format!(
            "would delete (left by a dead process): {}",
            backups.join(stale).display()
        )),
        "{text}"
    );
    assert!(!text.contains(&live), "{text}");
    assert_eq!(backup_dir_contents(dir.path()), all);

    let (code, text) = run(dir.path(), &config, &["backup", "prune"]);
    assert_eq!(code, Some(0), "{text}");
    let left = backup_dir_contents(dir.path());
    // Names sort by time: the two newest (and their manifests) remain, and
    // the live process's temporary file.
    let expected: Vec<String> = std::iter::once(live.clone())
        .chain(all.iter().filter(|n| !n.starts_with('.')).skip(4).cloned())
        .collect();
    assert_eq!(left, expected, "{text}");
}

/// Pruning deletes from the directory a backup writes into, so it waits
/// for the target's lock like a backup does and deletes nothing without it.
#[test]
fn prune_waits_for_a_running_backup_and_deletes_nothing_without_the_lock() {
    let url = seeded_database();
    let dir = workdir();
    let config_path = write_config(
        dir.path(),
        &url,
        "development",
        "format = \"plain\"\nlock_wait = \"1s\"\n\
         [backup.retention]\nkeep_last = 1\ndaily = 0\nweekly = 0\nmonthly = 0",
    );
    for _ in 0..2 {
        let (code, text) = run(dir.path(), &config_path, &["backup"]);
        assert_eq!(code, Some(0), "{text}");
    }
    let config = load(&config_path);
    let all = backup_dir_contents(dir.path());
    let held =
        backup::BackupLock::try_acquire(&config.backup.dir, "main", backup::Purpose::Scheduled)
            .unwrap()
            .expect("the lock is free");

    let (code, text) = run(dir.path(), &config_path, &["backup", "prune"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("still locked after waiting 1s (backup.lock_wait)"),
        "{text}"
    );
    assert!(
        text.contains("scheduled backup of `pgwarden serve`"),
        "{text}"
    );
    assert_eq!(backup_dir_contents(dir.path()), all, "{text}");
    // A dry run only reads: it goes through and says what would go.
    let (code, text) = run(dir.path(), &config_path, &["backup", "prune", "--dry-run"]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(text.matches("would delete: ").count(), 1, "{text}");

    drop(held);
    let (code, text) = run(dir.path(), &config_path, &["backup", "prune"]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(text.matches("deleted: ").count(), 1, "{text}");
}

#[test]
fn a_bad_schedule_is_a_config_error_naming_the_key_and_field() {
    let dir = workdir();
    let path = write_file(
        dir.path(),
        "pgwarden.toml",
        "[backup]\nschedule = \"0 3 * * 1-8\"\n",
    );
    let out = pgwarden(dir.path())
        .args(["--config", path.to_str().unwrap(), "config", "check"])
        .output()
        .unwrap();
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("line 2, key `schedule` in [backup]"),
        "{text}"
    );
    assert!(text.contains("field 5 (day of week) `1-8`"), "{text}");
}

#[test]
fn the_password_reaches_pg_dump_only_through_the_environment() {
    let url = shared().url_for("somedb");
    let target = pgwarden::config::TargetConfig::from_url("main", url);
    let connection = backup::tools::Connection::new(&target, None);
    let args = backup::dump::pg_dump_args(
        Format::Custom,
        1,
        "--compress=6",
        Path::new("/tmp/x"),
        Some("00000003-1"),
        &connection,
    );
    let joined = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    assert!(!joined.contains(PASSWORD), "{joined}");
    assert!(
        joined.contains("--dbname=postgres://postgres@127.0.0.1"),
        "{joined}"
    );
    let command = connection.command(Path::new("pg_dump"));
    let env: Vec<(String, String)> = command
        .as_std()
        .get_envs()
        .filter_map(|(k, v)| {
            Some((
                k.to_string_lossy().into_owned(),
                v?.to_string_lossy().into_owned(),
            ))
        })
        .collect();
    assert!(
        env.contains(&("PGPASSWORD".to_string(), PASSWORD.to_string())),
        "{env:?}"
    );
}

/// Run pgwarden on a pseudo-terminal (util-linux `script`), typing `answer`.
fn run_on_terminal(
    dir: &Path,
    config: &Path,
    args: &[&str],
    answer: &str,
) -> (Option<i32>, String) {
    let command = std::iter::once(env!("CARGO_BIN_EXE_pgwarden").to_string())
        .chain(["--config".to_string(), config.display().to_string()])
        .chain(args.iter().map(|a| a.to_string()))
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("`script` runs a command on a terminal; install util-linux (Debian: bsdutils)");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{answer}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.code(), output_text(&out))
}

#[test]
fn restore_on_a_terminal_asks_first() {
    let url = seeded_database();
    let dir = workdir();
    let config = write_config(dir.path(), &url, "development", "");
    let output = dir.path().join("t.dump");
    let (code, text) = run(
        dir.path(),
        &config,
        &["backup", "-o", output.to_str().unwrap()],
    );
    assert_eq!(code, Some(0), "{text}");
    let copy = format!("{}_asked", url.database());
    let args = [
        "restore",
        output.to_str().unwrap(),
        "--database",
        copy.as_str(),
    ];

    let (code, text) = run_on_terminal(dir.path(), &config, &args, "no");
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains(&format!("into database `{copy}` of target `main`")),
        "{text}"
    );
    assert!(text.contains("Type yes to continue"), "{text}");
    assert!(text.contains("restore cancelled"), "{text}");
    assert!(!database_exists(&copy));

    let (code, text) = run_on_terminal(dir.path(), &config, &args, "yes");
    assert_eq!(code, Some(0), "{text}");
    assert!(database_exists(&copy));
    assert_eq!(fingerprint(&copy), fingerprint(&url.database()));
}

#[test]
fn stopping_mid_backup_kills_pg_dump_and_removes_the_temporary_file() {
    let MidDump {
        dir,
        rt,
        locker,
        metrics,
        task,
        pid,
    } = backup_caught_mid_dump("people");
    task.abort();
    assert!(rt.block_on(task).unwrap_err().is_cancelled());
    let deadline = Instant::now() + Duration::from_secs(10);
    let alive = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z"))
            .unwrap_or(false)
    };
    while alive() {
        assert!(
            Instant::now() < deadline,
            "pg_dump {pid} still runs after the backup was stopped"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(backup_dir_contents(dir.path()), Vec::<String>::new());
    assert_eq!(metrics.value("main", "backup_running"), Some(0.0));
    assert_eq!(metrics.value("main", "backup_failures_total"), Some(1.0));
    rt.block_on(locker.batch_execute("ROLLBACK")).unwrap();
}

#[test]
fn a_failed_restore_test_marks_the_backup_unverified_and_counts_a_failure() {
    // A role that may dump its database but not create the scratch database.
    let db = shared().create_database().unwrap().database();
    let role = format!("limited_{db}");
    shared()
        .psql(
            "postgres",
            &format!("CREATE ROLE {role} LOGIN PASSWORD 'limited-pw'; ALTER DATABASE {db} OWNER TO {role}"),
        )
        .unwrap();
    shared()
        .psql(
            &db,
            &format!("SET ROLE {role}; CREATE TABLE t AS SELECT generate_series(1, 10) AS a"),
        )
        .unwrap();
    let url = DbUrl::parse(&format!(
        "postgres://{role}:limited-pw@127.0.0.1:{}/{db}",
        shared().port()
    ))
    .unwrap();
    let dir = workdir();
    let config = load(&write_config(
        dir.path(),
        &url,
        "development",
        "restore_test = true",
    ));
    let metrics = BackupMetrics::new(["main"]);
    let outcome = runtime()
        .block_on(schedule::backup_and_record(
            &config,
            config.target(None).unwrap(),
            &metrics,
        ))
        .expect("not skipped")
        .expect("the dump itself succeeds");
    let verification = outcome.manifest.verification.clone().unwrap();
    assert!(!verification.ok && verification.restore_test);
    assert!(
        verification
            .error
            .as_deref()
            .unwrap()
            .contains("permission denied to create database"),
        "{verification:?}"
    );
    assert_eq!(
        metrics.value("main", "backup_last_verify_success"),
        Some(0.0)
    );
    assert_eq!(metrics.value("main", "backup_failures_total"), Some(1.0));
    assert_eq!(
        metrics.value("main", "backup_last_success_timestamp_seconds"),
        None
    );
    // The backup stays for an operator to inspect, listed as FAILED.
    assert!(outcome.path.exists());
    let listed = backup::catalog::list(&config.backup.dir).unwrap();
    assert_eq!(listed.len(), 1);
    assert!(!listed[0].good());
}

#[test]
fn a_restore_that_fails_half_way_rolls_back() {
    let url = seeded_database();
    let database = url.database();
    let dir = workdir();
    let config = write_config(dir.path(), &url, "development", "");
    let output = dir.path().join("r.dump");
    let (code, text) = run(
        dir.path(),
        &config,
        &["backup", "-o", output.to_str().unwrap()],
    );
    assert_eq!(code, Some(0), "{text}");
    // A database that already has a table `events` (and nothing else): the
    // restore creates the schema, the type and `people`, then collides on
    // `events`; the single transaction undoes everything it did.
    let other = format!("{database}_other");
    shared()
        .psql("postgres", &format!("CREATE DATABASE {other}"))
        .unwrap();
    shared()
        .psql(
            &other,
            "CREATE TABLE events (x int); INSERT INTO events VALUES (7)",
        )
        .unwrap();
    let before = fingerprint(&other);
    let (code, text) = restore_copy(dir.path(), &config, &output, &other);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("failed and was rolled back"), "{text}");
    assert!(
        text.contains("relation \"events\" already exists"),
        "{text}"
    );
    assert_eq!(fingerprint(&other), before);
    assert_eq!(
        shared()
            .psql(
                &other,
                "SELECT count(*) FROM pg_type WHERE typname = 'mood'"
            )
            .unwrap(),
        "0"
    );

    // A plain dump that fails part-way into a new database: the database
    // the restore created is dropped again.
    let cfg = load(&config);
    let rt = runtime();
    let outcome = rt
        .block_on(backup::take(
            &cfg,
            cfg.target(None).unwrap(),
            &BackupOptions {
                format: Some(Format::Plain),
                ..Default::default()
            },
        ))
        .unwrap();
    let sql = std::fs::read_to_string(&outcome.path).unwrap();
    let broken = sql.replacen(
        "CREATE TABLE public.events",
        "SELECT 1/0;\nCREATE TABLE public.events",
        1,
    );
    std::fs::write(&outcome.path, &broken).unwrap();
    let mut manifest = outcome.manifest.clone();
    manifest.size_bytes = broken.len() as u64;
    manifest.sha256 = backup::manifest::sha256(&outcome.path).unwrap();
    manifest.write_for(&outcome.path).unwrap();
    let copy = format!("{database}_half");
    let (code, text) = restore_copy(dir.path(), &config, &outcome.path, &copy);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("division by zero"), "{text}");
    assert!(!database_exists(&copy), "{copy} left behind");
}

#[test]
fn the_scheduler_skips_and_counts_runs_while_a_backup_still_runs() {
    let url = seeded_database();
    let dir = workdir();
    let config = load(&write_config(
        dir.path(),
        &url,
        "development",
        "schedule = \"* * * * * *\"",
    ));
    let rt = runtime();
    // The first scheduled pg_dump waits on this lock for as long as we hold it.
    let locker = lock_table(&rt, &url, "events");
    let metrics = BackupMetrics::new(["main"]);
    let task = rt.spawn(schedule::run(
        config.clone(),
        config.targets.clone(),
        metrics.clone(),
    ));
    let deadline = Instant::now() + Duration::from_secs(60);
    while metrics.state("main").skipped_total < 2 {
        assert!(Instant::now() < deadline, "{:?}", metrics.state("main"));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(metrics.value("main", "backup_running"), Some(1.0));
    assert_eq!(
        shared()
            .psql(
                &url.database(),
                // Other tests dump their own databases on the shared cluster.
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE application_name = 'pg_dump' AND datname = current_database()"
            )
            .unwrap(),
        "1",
        "one pg_dump at a time"
    );
    rt.block_on(locker.batch_execute("ROLLBACK")).unwrap();
    while metrics
        .value("main", "backup_last_success_timestamp_seconds")
        .is_none()
    {
        assert!(Instant::now() < deadline, "{:?}", metrics.state("main"));
        std::thread::sleep(Duration::from_millis(100));
    }
    // Read before stopping: a backup in flight when the loop is stopped ends as a failure.
    let state = metrics.state("main");
    task.abort();
    assert!(state.skipped_total >= 2, "{state:?}");
    assert_eq!(state.failures_total, 0, "{state:?}");
}

/// Start a real `pgwarden backup` process whose pg_dump waits on a table lock
/// held by the returned client; returns once that pg_dump is waiting, so the
/// process holds the target's backup lock.
fn backup_process_caught_mid_dump(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    config: &Path,
    url: &DbUrl,
) -> (std::process::Child, tokio_postgres::Client) {
    let locker = lock_table(rt, url, "events");
    let child = pgwarden(dir)
        .arg("--config")
        .arg(config)
        .arg("backup")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_pg_dump_blocked(url);
    (child, locker)
}

#[test]
fn a_backup_running_in_another_process_refuses_manual_skips_scheduled_and_stops_migrate() {
    let url = seeded_database();
    let dir = workdir();
    let migrations = migrations_dir(
        dir.path(),
        &[(
            "V1__widgets.sql",
            "CREATE TABLE widgets (id bigint PRIMARY KEY);",
        )],
    );
    let config_path = write_file(
        dir.path(),
        "pgwarden.toml",
        &format!(
            "environment = \"production\"\n[migrations]\ndir = \"{}\"\n\
             [backup]\ndir = \"{}\"\nlock_wait = \"1s\"\n\
             [[targets]]\nname = \"main\"\nurl = \"{}\"\nbackup = true\nmigrate = true\n",
            migrations.display(),
            dir.path().join("backups").display(),
            url.expose()
        ),
    );
    let config = load(&config_path);
    let rt = runtime();
    let (holder, locker) = backup_process_caught_mid_dump(&rt, dir.path(), &config_path, &url);
    let holder_pid = format!("pid {}", holder.id());

    // A manual backup fails at once, naming the process that holds the lock.
    let (code, text) = run(dir.path(), &config_path, &["backup"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("another backup of target `main` is running"),
        "{text}"
    );
    assert!(text.contains(&holder_pid), "{text}");
    assert!(text.contains("manual `pgwarden backup`"), "{text}");

    // The daemon's scheduled run is skipped and counted, not failed.
    let metrics = BackupMetrics::new(["main"]);
    let outcome = rt.block_on(schedule::backup_and_record(
        &config,
        config.target(None).unwrap(),
        &metrics,
    ));
    assert!(outcome.is_none(), "a second backup ran");
    let state = metrics.state("main");
    assert_eq!(
        (state.skipped_total, state.failures_total, state.running),
        (1, 0, false),
        "{state:?}"
    );

    // A production `migrate up` waits lock_wait for its backup, then runs nothing.
    let (code, text) = run(dir.path(), &config_path, &["migrate", "up"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("no migration ran"), "{text}");
    assert!(
        text.contains("still locked after waiting 1s (backup.lock_wait)"),
        "{text}"
    );
    assert!(text.contains(&holder_pid), "{text}");
    let widgets = || table_exists(&url.database(), "widgets");
    assert!(!widgets(), "the migration ran without its backup");

    // Only one pg_dump ever ran against the database.
    assert_eq!(
        shared()
            .psql(
                &url.database(),
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE application_name = 'pg_dump' AND datname = current_database()"
            )
            .unwrap(),
        "1"
    );
    rt.block_on(locker.batch_execute("ROLLBACK")).unwrap();
    let out = holder.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert_eq!(backup::catalog::list(&config.backup.dir).unwrap().len(), 1);

    // With the holder gone, the same commands go through.
    let (code, text) = run(dir.path(), &config_path, &["migrate", "up"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(widgets());
    assert_eq!(backup::catalog::list(&config.backup.dir).unwrap().len(), 2);
}

#[test]
fn a_killed_backup_process_leaves_no_stale_lock() {
    let url = seeded_database();
    let dir = workdir();
    let config_path = write_config(dir.path(), &url, "development", "");
    let config = load(&config_path);
    let rt = runtime();
    let (mut holder, locker) = backup_process_caught_mid_dump(&rt, dir.path(), &config_path, &url);
    let (code, text) = run(dir.path(), &config_path, &["backup"]);
    assert_eq!(code, Some(1), "{text}");

    let killed = std::process::Command::new("kill")
        .args(["-9", &holder.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    holder.wait().unwrap();
    // Its pg_dump outlives it (still waiting on the table lock) but did not
    // inherit the backup lock: the lock is free at once.
    assert_eq!(
        shared()
            .psql(
                &url.database(),
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE application_name = 'pg_dump' AND datname = current_database()"
            )
            .unwrap(),
        "1"
    );
    let lock = backup::BackupLock::try_acquire(&config.backup.dir, "main", backup::Purpose::Manual)
        .unwrap()
        .expect("the killed process's lock is gone");
    drop(lock);
    shared()
        .psql(
            &url.database(),
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = 'pg_dump' AND datname = current_database()",
        )
        .unwrap();
    rt.block_on(locker.batch_execute("ROLLBACK")).unwrap();

    let (code, text) = run(dir.path(), &config_path, &["backup"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("backup written"), "{text}");
}
