//! Drift: hand-made changes on a migrated database are named by
//! `pgwarden migrate drift` and counted by the daemon's
//! `pgwarden_schema_drift_objects` within one drift interval.

use crate::serve_support;
use crate::support;

use std::path::Path;
use std::time::Duration;

use serve_support::{Serve, free_addr, target, value};
use support::{output_text, pgwarden, shared, workdir};

/// Add an index, drop a constraint, alter a column: by hand, out of band.
const HAND_MADE: &str = "CREATE INDEX users_last_login_idx ON users (last_login_at);
     ALTER TABLE users DROP CONSTRAINT users_email_format;
     ALTER TABLE users ALTER COLUMN is_active DROP NOT NULL;";

fn with_migrations(dir: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    std::fs::create_dir_all(dir.join("migrations")).unwrap();
    for entry in std::fs::read_dir(root).unwrap().flatten() {
        std::fs::copy(entry.path(), dir.join("migrations").join(entry.file_name())).unwrap();
    }
}

fn migrate(dir: &Path, config: &Path, args: &[&str]) -> (i32, String) {
    let out = pgwarden(dir)
        .arg("--config")
        .arg(config)
        .arg("migrate")
        .args(args)
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), output_text(&out))
}

#[test]
fn migrate_drift_names_each_hand_made_change() {
    let dir = workdir();
    with_migrations(dir.path());
    let db = shared().create_database().unwrap();
    let config = support::write_file(
        dir.path(),
        "pgwarden.toml",
        &format!(
            "[schema]\ndev_url = \"{}\"\n{}",
            shared().url().expose(),
            target("main", db.expose(), "migrate = true")
        ),
    );
    let (code, text) = migrate(dir.path(), &config, &["up"]);
    assert_eq!(code, 0, "{text}");
    let (code, text) = migrate(dir.path(), &config, &["drift"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("no drift"), "{text}");

    shared().psql(&db.database(), HAND_MADE).unwrap();
    shared()
        .psql(
            &db.database(),
            "CREATE TABLE scratchpad (id int PRIMARY KEY, note text)",
        )
        .unwrap();
    let (code, text) = migrate(dir.path(), &config, &["drift", "--target", "main"]);
    assert_eq!(code, 1, "{text}");
    for line in [
        // A new table counts once, not once per column and key.
        "4 object(s) changed out of band",
        "added table public.scratchpad",
        "DROP TABLE public.scratchpad",
        "added index public.users_last_login_idx",
        "removed constraint public.users.users_email_format",
        "changed column public.users.is_active",
        "ALTER TABLE public.users ALTER COLUMN is_active SET NOT NULL",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
}

#[test]
fn the_daemon_counts_drifted_objects_within_one_interval() {
    let dir = workdir();
    with_migrations(dir.path());
    let db = shared().create_database().unwrap();
    let addr = free_addr();
    let config = format!(
        "[http]\nlisten = \"{addr}\"\n[checks]\ninterval = \"1s\"\n[schema]\ndrift_interval = \"1s\"\n{}{}",
        target("main", db.expose(), "migrate = true"),
        target(
            "unmigrated",
            shared().create_database().unwrap().expose(),
            ""
        )
    );
    let path = support::write_file(dir.path(), "pgwarden.toml", &config);
    // The fingerprint is recorded by the migration, because drift detection is on.
    let (code, text) = migrate(dir.path(), &path, &["up", "--target", "main"]);
    assert_eq!(code, 0, "{text}");

    let serve = Serve::start(dir.path(), &addr, &config);
    let metric = "pgwarden_schema_drift_objects";
    let main = [("target", "main")];
    serve.wait_metrics("no drift on main", Duration::from_secs(20), |s| {
        value(s, metric, &main) == Some(0.0)
    });
    shared().psql(&db.database(), HAND_MADE).unwrap();
    let scrape = serve.wait_metrics("3 drifted objects on main", Duration::from_secs(10), |s| {
        value(s, metric, &main) == Some(3.0)
    });
    // A database pgwarden never migrated has no fingerprint: no series.
    assert_eq!(value(&scrape, metric, &[("target", "unmigrated")]), None);
    serve.stop();
}
