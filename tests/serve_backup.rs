//! Backups as the daemon and the production guard rails take them: a
//! scheduled backup shows up in `/metrics`, and in production `migrate up`
//! backs up first and runs nothing when that backup fails.

use crate::serve_support;
use crate::support;

use std::path::Path;
use std::time::Duration;

use serve_support::*;
use support::*;

fn backup_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A fresh database with a table of 100 rows to back up.
fn notes_database() -> pgwarden::dburl::DbUrl {
    let url = shared().create_database().unwrap();
    shared()
        .psql(
            url.database().as_str(),
            "CREATE TABLE notes (id int PRIMARY KEY); INSERT INTO notes SELECT generate_series(1, 100)",
        )
        .unwrap();
    url
}

#[test]
fn the_daemon_takes_scheduled_backups_and_exports_them() {
    let dir = workdir();
    let url = notes_database();
    let backups = dir.path().join("backups");
    let addr = free_addr();
    // Every two seconds (the optional leading seconds field).
    let config = format!(
        "[http]\nlisten = \"{addr}\"\n[checks]\ninterval = \"1s\"\n\
         [backup]\ndir = \"{}\"\nschedule = \"*/2 * * * * *\"\n{}",
        backups.display(),
        target("primary", url.expose(), "backup = true")
    );
    let serve = Serve::start(dir.path(), &addr, &config);
    let primary = [("target", "primary")];
    let scrape = serve.wait_metrics("a scheduled backup", Duration::from_secs(60), |s| {
        value(
            s,
            "pgwarden_backup_last_success_timestamp_seconds",
            &primary,
        )
        .is_some_and(|t| t > 0.0)
    });
    assert!(
        value(&scrape, "pgwarden_backup_last_size_bytes", &primary).is_some_and(|b| b > 0.0),
        "no size exported"
    );
    assert_eq!(
        value(&scrape, "pgwarden_backup_failures_total", &primary),
        Some(0.0)
    );
    assert!(serve.stop().success());
    let log = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
    for line in ["scheduled backup started", "scheduled backup finished"] {
        assert!(
            log.lines()
                .any(|l| l.contains(line) && l.contains("primary")),
            "no {line:?} in the log:\n{log}"
        );
    }
    let files = backup_files(&backups);
    let dumps: Vec<&String> = files.iter().filter(|n| n.ends_with(".dump")).collect();
    assert!(!dumps.is_empty(), "no backup written: {files:?}");
    for dump in dumps {
        assert!(
            files.contains(&format!("{dump}.json")),
            "{dump} has no manifest: {files:?}"
        );
    }
}

#[test]
fn production_migrate_up_backs_up_first_and_stops_when_the_backup_fails() {
    let dir = workdir();
    let url = shared().create_database().unwrap();
    let database = url.database().to_string();
    let migrations = migrations_dir(
        dir.path(),
        &[(
            "V1__widgets.sql",
            "CREATE TABLE widgets (id bigint PRIMARY KEY);",
        )],
    );
    let backups = dir.path().join("backups");
    let config_with = |bin_dir: &str| {
        let path = write_file(
            dir.path(),
            "pgwarden.toml",
            &format!(
                "environment = \"production\"\n[migrations]\ndir = \"{}\"\n\
                 [backup]\ndir = \"{}\"\n{bin_dir}\n{}",
                migrations.display(),
                backups.display(),
                target("primary", url.expose(), "migrate = true\nbackup = true")
            ),
        );
        path.to_str().unwrap().to_string()
    };
    let widgets = || table_exists(&database, "widgets");

    let broken = wrapper_bin_dir(
        dir.path(),
        "case \"$1\" in --version) exec \"$REAL\" \"$@\";; esac\n\
         echo 'pg_dump: error: disk full (simulated)' >&2; exit 1",
    );
    let config = config_with(&format!("bin_dir = \"{}\"", broken.display()));
    let out = pgwarden(dir.path())
        .args(["--config", &config, "migrate", "up"])
        .output()
        .unwrap();
    let text = output_text(&out);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("no migration ran"), "{text}");
    assert!(text.contains("disk full (simulated)"), "{text}");
    assert!(!text.contains(PASSWORD), "password printed:\n{text}");
    assert!(!widgets(), "the migration ran although the backup failed");
    assert!(
        backup_files(&backups).iter().all(|n| !n.ends_with(".dump")),
        "a failed backup left a file: {:?}",
        backup_files(&backups)
    );

    let config = config_with("");
    let out = pgwarden(dir.path())
        .args(["--config", &config, "migrate", "up"])
        .output()
        .unwrap();
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(widgets());
    let files = backup_files(&backups);
    assert!(
        files.iter().any(|n| n.ends_with(".dump")),
        "no backup before the migration: {files:?}"
    );
}

/// Lines of the daemon's log that contain `text`.
fn log_lines(serve: &Serve, text: &str) -> usize {
    serve.log().lines().filter(|l| l.contains(text)).count()
}

fn wait_for_log(serve: &Serve, text: &str, count: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while log_lines(serve, text) < count {
        assert!(
            std::time::Instant::now() < deadline,
            "waited for {count} × {text:?}:\n{}",
            serve.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_scheduled_backup_is_logged_and_a_cancelled_one_counts_as_a_failure_and_leaves_nothing() {
    let dir = workdir();
    let url = notes_database();
    let backups = dir.path().join("backups");
    let addr = free_addr();
    let config = |schedule: &str| {
        format!(
            "[http]\nlisten = \"{addr}\"\n[checks]\ninterval = \"1s\"\n\
             [backup]\ndir = \"{}\"\nschedule = \"{schedule}\"\n{}",
            backups.display(),
            target("primary", url.expose(), "backup = true")
        )
    };
    let primary = [("target", "primary")];
    // Every second; pg_dump then waits on the lock held here (from before
    // the first backup): a slow backup.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let locker = lock_table(&rt, &url, "notes");
    let serve = Serve::start(dir.path(), &addr, &config("* * * * * *"));
    wait_for_pg_dump_blocked(&url);
    assert!(
        log_lines(&serve, "scheduled backup started") >= 1,
        "{}",
        serve.log()
    );

    // A reload that changes the backup settings cancels the backup in flight.
    write_file(dir.path(), "pgwarden.toml", &config("*/1 * * * * *"));
    serve.signal(libc::SIGHUP);
    wait_for_log(&serve, "scheduled backup cancelled", 1);
    serve.wait_metrics(
        "the cancelled backup counted",
        Duration::from_secs(10),
        |s| value(s, "pgwarden_backup_failures_total", &primary) == Some(1.0),
    );

    // SIGTERM cancels the next one (started by the new schedule) too: the
    // second start overall, which may already be logged by now (while it
    // waits on the lock, later runs are skipped, not started).
    wait_for_log(&serve, "scheduled backup started", 2);
    std::thread::sleep(Duration::from_millis(500));
    let log_path = dir.path().join("stderr.log");
    assert!(serve.stop().success());
    let log = std::fs::read_to_string(log_path).unwrap();
    let cancelled: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("scheduled backup cancelled"))
        .collect();
    assert_eq!(cancelled.len(), 2, "{log}");
    assert!(
        cancelled
            .iter()
            .all(|l| l.contains("WARN") && l.contains("primary")),
        "{log}"
    );
    assert!(!log.contains("scheduled backup finished"), "{log}");
    // Neither a dump under its final name nor a temporary file is left.
    let left: Vec<String> = std::fs::read_dir(&backups)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".primary.lock")
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    rt.block_on(locker.batch_execute("ROLLBACK")).unwrap();
}
