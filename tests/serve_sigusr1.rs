//! SIGUSR1 applies pending migrations through the migration engine, once,
//! and the outcome is exported.

use crate::serve_support;
use crate::support;

use std::time::Duration;

use serve_support::*;
use support::*;

#[test]
fn sigusr1_applies_a_new_migration_and_a_second_one_during_a_run_is_ignored() {
    let dir = workdir();
    let url = shared().create_database().unwrap();
    let database = url.database().to_string();
    let migrations = migrations_dir(
        dir.path(),
        &[(
            "V1__widgets.sql",
            "CREATE TABLE widgets (id bigint PRIMARY KEY, name text NOT NULL);",
        )],
    );
    let addr = free_addr();
    let config = format!(
        "[http]\nlisten = \"{addr}\"\n[checks]\ninterval = \"1s\"\n[migrations]\ndir = \"{}\"\n{}",
        migrations.display(),
        target("primary", url.expose(), "migrate = true")
    );
    let serve = Serve::start(dir.path(), &addr, &config);
    serve.wait_ready();
    let primary = [("target", "primary")];
    serve.wait_metrics("one pending migration", Duration::from_secs(10), |s| {
        value(s, "pgwarden_migrations_pending", &primary) == Some(1.0)
    });

    serve.signal(libc::SIGUSR1);
    let scrape = serve.wait_metrics("a successful run", Duration::from_secs(30), |s| {
        value(s, "pgwarden_migration_last_run_success", &primary) == Some(1.0)
    });
    assert_eq!(
        value(&scrape, "pgwarden_migration_version", &primary),
        Some(1.0)
    );
    assert_eq!(
        value(&scrape, "pgwarden_migrations_pending", &primary),
        Some(0.0)
    );
    assert!(table_exists(&database, "widgets"));

    // A slow migration, and a second SIGUSR1 while it runs.
    write_file(
        &migrations,
        "V2__slow.sql",
        "SELECT pg_sleep(3); ALTER TABLE widgets ADD COLUMN color text;",
    );
    serve.signal(libc::SIGUSR1);
    std::thread::sleep(Duration::from_millis(500));
    serve.signal(libc::SIGUSR1);
    serve.wait_metrics("version 2", Duration::from_secs(30), |s| {
        value(s, "pgwarden_migration_version", &primary) == Some(2.0)
    });
    let log = serve.log();
    assert!(
        log.contains("SIGUSR1 ignored: a migration run is already in progress"),
        "{log}"
    );
    assert_eq!(log.matches("migrations applied").count(), 2, "{log}");
    assert!(serve.stop().success());
}
