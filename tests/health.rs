//! The health checks against real PostgreSQL: each bad condition is made
//! real (a long pg_sleep, a held lock, an invalid index, a paused replica…),
//! the check must flip, and after the condition is cleared it must recover.

use crate::health_support;
use crate::support;

use std::time::Duration;

use health_support::{check, checker_for, metric, one};
use pgwarden::checks::Checker;
use pgwarden::config::Config;
use pgwarden::dburl::DbUrl;
use pgwarden::pool::Target;
use pgwarden::report::{Status, TargetReport};
use support::*;

/// A config with one target `db` at `url` and extra TOML (thresholds).
fn config(url: &DbUrl, extra: &str) -> Config {
    health_support::config(url, extra, "pool_timeout = \"2s\"")
}

/// Latency thresholds out of reach, for tests that want every check ok on a
/// busy machine: they are about behaviour, not speed.
const RELAXED_LATENCY: &str = "[checks.connectivity]\nlatency_warning = \"1m\"\nlatency_critical = \"2m\"\n\
     [checks.performance]\nprobe_warning = \"1m\"\nprobe_critical = \"2m\"\n";

fn checker(url: &DbUrl, extra: &str) -> Checker {
    checker_for(config(url, extra))
}

/// A session of our own, for holding locks and transactions.
async fn session(url: &DbUrl) -> tokio_postgres::Client {
    let (client, connection) = url
        .pg_config()
        .connect(tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
}

fn new_db() -> DbUrl {
    shared().create_database().unwrap()
}

fn psql(url: &DbUrl, sql: &str) -> String {
    shared().psql(&url.database(), sql).unwrap()
}

/// Wait until `sql` returns `expected` on the shared cluster.
fn wait_for(url: &DbUrl, sql: &str, expected: &str) {
    shared()
        .wait_for(&url.database(), sql, expected, Duration::from_secs(30))
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fresh_database_is_healthy_on_every_check() {
    let url = new_db();
    let mut checker = checker(&url, RELAXED_LATENCY);
    let report = checker.run_cycle().await;
    assert!(report.up, "{report:#?}");
    let names: Vec<&str> = report.checks.iter().map(|c| c.check.as_str()).collect();
    assert_eq!(names, pgwarden::checks::CHECK_NAMES);
    for c in &report.checks {
        assert_eq!(c.status, Status::Ok, "{c:#?}");
    }
    let connectivity = check(&report, "connectivity");
    assert_eq!(metric(connectivity, "in_recovery"), 0.0);
    assert!(metric(connectivity, "server_version_num") >= 130000.0);
    assert_eq!(
        metric(check(&report, "performance"), "statements_available"),
        0.0
    );
    // The README's metric table is the contract with the daemon and dashboards.
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for c in &report.checks {
        for m in &c.measurements {
            let row = format!("| `pgwarden_{}` |", m.metric);
            assert!(
                readme.contains(&row),
                "{} is not in the README's metric table",
                m.metric
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_query_flips_long_queries_and_recovers_when_cancelled() {
    let url = new_db();
    let mut checker = checker(&url, "[checks.long_queries]\nquery_warning = \"1s\"\n");
    assert_eq!(one(&mut checker, "long_queries").await.status, Status::Ok);
    let sleeper = session(&url).await;
    let sleep = tokio::spawn(async move { sleeper.simple_query("SELECT pg_sleep(60)").await });
    wait_for(
        &url,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query = 'SELECT pg_sleep(60)' \
         AND clock_timestamp() - query_start > interval '1.5 s'",
        "1",
    );
    let result = one(&mut checker, "long_queries").await;
    assert_eq!(result.status, Status::Warning, "{result:#?}");
    assert_eq!(metric(&result, "long_queries"), 1.0);
    assert!(metric(&result, "long_query_max_seconds") >= 1.0);
    let offenders = result.details["long_queries"].to_string();
    assert!(offenders.contains("pg_sleep(60)"), "{offenders}");
    psql(
        &url,
        "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query = 'SELECT pg_sleep(60)'",
    );
    assert!(sleep.await.unwrap().is_err(), "the sleep was cancelled");
    // The client sees the error before the backend reports itself idle.
    wait_for(
        &url,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query = 'SELECT pg_sleep(60)' AND state = 'active'",
        "0",
    );
    let result = one(&mut checker, "long_queries").await;
    assert_eq!(result.status, Status::Ok, "{result:#?}");
    assert_eq!(metric(&result, "long_queries"), 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_in_transaction_flips_long_queries_and_recovers_on_commit() {
    let url = new_db();
    let mut checker = checker(
        &url,
        "[checks.long_queries]\nidle_in_transaction_warning = \"1s\"\ntransaction_warning = \"1s\"\n",
    );
    let idler = session(&url).await;
    idler.batch_execute("BEGIN; SELECT 1").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let result = one(&mut checker, "long_queries").await;
    assert_eq!(result.status, Status::Warning, "{result:#?}");
    assert_eq!(metric(&result, "idle_in_transaction_sessions"), 1.0);
    assert_eq!(metric(&result, "long_transactions"), 1.0);
    assert!(metric(&result, "idle_in_transaction_max_seconds") >= 1.0);
    assert!(metric(&result, "long_transaction_max_seconds") >= 1.0);
    idler.batch_execute("COMMIT").await.unwrap();
    let result = one(&mut checker, "long_queries").await;
    assert_eq!(result.status, Status::Ok, "{result:#?}");
    assert!(metric(&result, "long_transaction_max_seconds") < 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_held_lock_flips_locks_with_who_blocks_whom_and_recovers_on_release() {
    let url = new_db();
    psql(&url, "CREATE TABLE accounts (id int PRIMARY KEY)");
    let mut checker = checker(&url, "[checks.locks]\nwait_warning = \"0s\"\n");
    assert_eq!(one(&mut checker, "locks").await.status, Status::Ok);
    let holder = session(&url).await;
    holder
        .batch_execute("BEGIN; LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let waiter = session(&url).await;
    let wait = tokio::spawn(async move { waiter.simple_query("SELECT * FROM accounts").await });
    wait_for(
        &url,
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
         AND query = 'SELECT * FROM accounts'",
        "1",
    );
    let result = one(&mut checker, "locks").await;
    assert_eq!(result.status, Status::Warning, "{result:#?}");
    assert_eq!(metric(&result, "blocked_sessions"), 1.0);
    let blocked = result.details["blocked"].to_string();
    let blockers = result.details["blockers"].to_string();
    assert!(blocked.contains("SELECT * FROM accounts"), "{blocked}");
    assert!(blockers.contains("LOCK TABLE accounts"), "{blockers}");
    holder.batch_execute("COMMIT").await.unwrap();
    wait.await.unwrap().unwrap();
    let result = one(&mut checker, "locks").await;
    assert_eq!(result.status, Status::Ok, "{result:#?}");
    assert_eq!(metric(&result, "blocked_sessions"), 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deadlock_since_the_previous_cycle_warns_once() {
    let url = new_db();
    psql(
        &url,
        "CREATE TABLE a (id int PRIMARY KEY); INSERT INTO a VALUES (1), (2)",
    );
    let mut checker = checker(&url, "");
    assert_eq!(one(&mut checker, "locks").await.status, Status::Ok);
    let (one_session, two) = (session(&url).await, session(&url).await);
    one_session
        .batch_execute("BEGIN; UPDATE a SET id = id WHERE id = 1")
        .await
        .unwrap();
    two.batch_execute("BEGIN; UPDATE a SET id = id WHERE id = 2")
        .await
        .unwrap();
    let first = tokio::spawn(async move {
        let r = one_session
            .batch_execute("UPDATE a SET id = id WHERE id = 2")
            .await;
        let _ = one_session.batch_execute("ROLLBACK").await;
        r
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = two.batch_execute("UPDATE a SET id = id WHERE id = 1").await;
    let _ = two.batch_execute("ROLLBACK").await;
    let first = first.await.unwrap();
    assert!(
        first.is_err() || second.is_err(),
        "one of the two must be the deadlock victim"
    );
    wait_for(
        &url,
        "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()",
        "1",
    );
    let result = one(&mut checker, "locks").await;
    assert_eq!(result.status, Status::Warning, "{result:#?}");
    assert!(result.summary.contains("1 deadlock"), "{}", result.summary);
    let result = one(&mut checker, "locks").await;
    assert_eq!(result.status, Status::Ok, "{result:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_index_never_scanned_is_unused_until_a_query_uses_it() {
    let url = new_db();
    psql(
        &url,
        "CREATE TABLE events (id int PRIMARY KEY, kind int); \
         INSERT INTO events SELECT g, g FROM generate_series(1, 100000) g; \
         CREATE INDEX events_kind ON events (kind)",
    );
    let mut checker = checker(&url, "");
    let result = one(&mut checker, "indexes").await;
    assert_eq!(result.status, Status::Warning, "{result:#?}");
    assert_eq!(
        metric(&result, "indexes_unused"),
        1.0,
        "the PK is not counted"
    );
    assert!(metric(&result, "indexes_unused_bytes") > 1_000_000.0);
    assert!(
        result.summary.contains("public.events_kind"),
        "{}",
        result.summary
    );
    psql(
        &url,
        "SET enable_seqscan = off; SELECT count(*) FROM events WHERE kind = 7",
    );
    wait_for(
        &url,
        "SELECT idx_scan > 0 FROM pg_stat_user_indexes WHERE indexrelname = 'events_kind'",
        "t",
    );
    let result = one(&mut checker, "indexes").await;
    assert_eq!(result.status, Status::Ok, "{result:#?}");
    assert_eq!(metric(&result, "indexes_unused"), 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_create_index_concurrently_leaves_an_invalid_index_until_dropped() {
    let url = new_db();
    psql(
        &url,
        "CREATE TABLE users (id int PRIMARY KEY, email text); \
         INSERT INTO users VALUES (1, 'a@x'), (2, 'a@x')",
    );
    let failed = shared().psql(
        &url.database(),
        "CREATE UNIQUE INDEX CONCURRENTLY users_email ON users (email)",
    );
    assert!(failed.is_err(), "duplicate emails make the build fail");
    let mut checker = checker(&url, "");
    let result = one(&mut checker, "indexes").await;
    assert_eq!(result.status, Status::Warning, "{result:#?}");
    assert_eq!(metric(&result, "indexes_invalid"), 1.0);
    // The build failed before writing a page: nothing on disk to report.
    assert_eq!(metric(&result, "indexes_invalid_bytes"), 0.0, "{result:#?}");
    assert!(
        result.summary.contains("public.users_email"),
        "{}",
        result.summary
    );
    psql(&url, "DROP INDEX users_email");
    let result = one(&mut checker, "indexes").await;
    assert_eq!(result.status, Status::Ok, "{result:#?}");
    assert_eq!(metric(&result, "indexes_invalid"), 0.0);
    assert_eq!(metric(&result, "indexes_invalid_bytes"), 0.0);
}

/// A CREATE INDEX CONCURRENTLY cancelled while it waits for an older
/// snapshot has built the whole index but left it invalid: disk spent and
/// written on every insert, never used. Its size is what an operator weighs.
#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_create_index_concurrently_leaves_a_built_invalid_index_with_its_size() {
    let url = new_db();
    psql(
        &url,
        "CREATE TABLE events (id int PRIMARY KEY, kind text); \
         INSERT INTO events SELECT g, 'k' || g FROM generate_series(1, 20000) g",
    );
    let old_snapshot = session(&url).await;
    old_snapshot
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1")
        .await
        .unwrap();
    let builder = session(&url).await;
    builder
        .batch_execute("SET statement_timeout = '2s'")
        .await
        .unwrap();
    let cancelled = builder
        .batch_execute("CREATE INDEX CONCURRENTLY events_kind ON events (kind)")
        .await
        .expect_err("the old snapshot makes the build wait until cancelled");
    assert!(
        cancelled
            .as_db_error()
            .is_some_and(|e| e.message().contains("statement timeout")),
        "{cancelled:?}"
    );
    old_snapshot.batch_execute("COMMIT").await.unwrap();
    let on_disk: f64 = psql(&url, "SELECT pg_relation_size('events_kind')")
        .trim()
        .parse()
        .unwrap();
    assert!(on_disk > 100_000.0, "built before the wait: {on_disk}");
    let mut checker = checker(&url, "");
    let result = one(&mut checker, "indexes").await;
    assert_eq!(result.status, Status::Warning, "{result:#?}");
    assert_eq!(metric(&result, "indexes_invalid"), 1.0);
    assert_eq!(metric(&result, "indexes_invalid_bytes"), on_disk);
    psql(&url, "DROP INDEX events_kind");
    let result = one(&mut checker, "indexes").await;
    assert_eq!(metric(&result, "indexes_invalid_bytes"), 0.0, "{result:#?}");
}

/// `[checks.intervals]`: between its runs a check repeats its last result,
/// while the checks without an interval of their own see a change at once.
#[tokio::test(flavor = "multi_thread")]
async fn a_check_with_its_own_interval_repeats_its_last_result_until_due() {
    let url = new_db();
    let mut checker = checker(
        &url,
        "[checks]\ninterval = \"1s\"\n[checks.intervals]\ntable_integrity = \"3s\"\n",
    );
    let first = checker.run_cycle().await;
    let integrity = check(&first, "table_integrity").clone();
    assert_eq!(integrity.status, Status::Ok, "{integrity:#?}");
    psql(
        &url,
        "CREATE TABLE no_key (v int); CREATE INDEX no_key_v ON no_key (v)",
    );

    let second = checker.run_cycle().await;
    assert_eq!(check(&second, "table_integrity"), &integrity);
    let indexes = check(&second, "indexes");
    assert_eq!(metric(indexes, "indexes_unused"), 1.0, "{indexes:#?}");

    tokio::time::sleep(Duration::from_millis(2600)).await;
    let third = checker.run_cycle().await;
    let integrity = check(&third, "table_integrity");
    assert_eq!(
        metric(integrity, "tables_without_primary_key"),
        1.0,
        "{integrity:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_duplicate_index_warns_until_dropped() {
    let url = new_db();
    psql(
        &url,
        "CREATE TABLE t (id int PRIMARY KEY, x int); CREATE INDEX t_x1 ON t (x); \
         CREATE INDEX t_x2 ON t (x); SELECT * FROM t WHERE x = 1",
    );
    let mut checker = checker(&url, "");
    let result = one(&mut checker, "indexes").await;
    assert_eq!(metric(&result, "indexes_duplicate"), 1.0, "{result:#?}");
    // One of the two copies is redundant: an empty btree is its metapage.
    assert_eq!(metric(&result, "indexes_duplicate_bytes"), 8192.0);
    assert_eq!(result.status, Status::Warning);
    psql(&url, "DROP INDEX t_x2");
    let result = one(&mut checker, "indexes").await;
    assert_eq!(metric(&result, "indexes_duplicate"), 0.0, "{result:#?}");
    assert_eq!(metric(&result, "indexes_duplicate_bytes"), 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn table_integrity_flags_a_missing_primary_key_and_a_not_valid_constraint() {
    let url = new_db();
    let mut checker = checker(&url, "");
    assert_eq!(
        one(&mut checker, "table_integrity").await.status,
        Status::Ok
    );

    psql(&url, "CREATE TABLE logs (id int, msg text)");
    let result = one(&mut checker, "table_integrity").await;
    assert_eq!(result.status, Status::Warning, "{result:#?}");
    assert_eq!(metric(&result, "tables_without_primary_key"), 1.0);
    assert!(result.summary.contains("public.logs"), "{}", result.summary);
    psql(&url, "ALTER TABLE logs ADD PRIMARY KEY (id)");
    assert_eq!(
        one(&mut checker, "table_integrity").await.status,
        Status::Ok
    );

    psql(
        &url,
        "ALTER TABLE logs ADD CONSTRAINT positive CHECK (id > 0) NOT VALID",
    );
    let result = one(&mut checker, "table_integrity").await;
    assert_eq!(result.status, Status::Warning, "{result:#?}");
    assert_eq!(metric(&result, "constraints_not_valid"), 1.0);
    psql(&url, "ALTER TABLE logs VALIDATE CONSTRAINT positive");
    let result = one(&mut checker, "table_integrity").await;
    assert_eq!(result.status, Status::Ok, "{result:#?}");
    assert_eq!(metric(&result, "constraints_not_valid"), 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn table_integrity_flags_an_unindexed_foreign_key_and_a_nearly_exhausted_sequence() {
    let url = new_db();
    psql(
        &url,
        "CREATE TABLE parents (id int PRIMARY KEY); \
         CREATE TABLE children (id int PRIMARY KEY, parent int REFERENCES parents)",
    );
    let mut checker = checker(&url, "");
    let result = one(&mut checker, "table_integrity").await;
    assert_eq!(
        metric(&result, "foreign_keys_without_index"),
        1.0,
        "{result:#?}"
    );
    // A partial index on anything but `parent IS NOT NULL` does not cover every lookup.
    psql(
        &url,
        "CREATE INDEX partial ON children (parent) WHERE id > 100",
    );
    let result = one(&mut checker, "table_integrity").await;
    assert_eq!(metric(&result, "foreign_keys_without_index"), 1.0);
    // The usual index of an optional reference does.
    psql(
        &url,
        "DROP INDEX partial; CREATE INDEX ON children (parent) WHERE parent IS NOT NULL",
    );
    let result = one(&mut checker, "table_integrity").await;
    assert_eq!(metric(&result, "foreign_keys_without_index"), 0.0);
    assert_eq!(result.status, Status::Ok, "{result:#?}");

    psql(
        &url,
        "CREATE SEQUENCE tickets MAXVALUE 100; SELECT setval('tickets', 95)",
    );
    let result = one(&mut checker, "table_integrity").await;
    assert_eq!(result.status, Status::Critical, "{result:#?}");
    assert!(metric(&result, "sequence_max_usage_ratio") > 0.9);
    psql(&url, "ALTER SEQUENCE tickets MAXVALUE 1000");
    let result = one(&mut checker, "table_integrity").await;
    assert_eq!(result.status, Status::Ok, "{result:#?}");
}

/// A `bigint` sequence feeding a `smallint` column is full at 32,767, not
/// at 2^63: at 26,214 it is 80 % used, and the offender names the column.
#[tokio::test(flavor = "multi_thread")]
async fn a_sequence_is_measured_against_the_narrowest_column_it_feeds() {
    let url = new_db();
    psql(
        &url,
        "CREATE SEQUENCE ticket_ids AS bigint; \
         CREATE TABLE tickets (id smallint PRIMARY KEY DEFAULT nextval('ticket_ids')); \
         CREATE TABLE archive (id bigint PRIMARY KEY DEFAULT nextval('ticket_ids')); \
         SELECT setval('ticket_ids', 26214)",
    );
    let mut checker = checker(&url, "");
    let result = one(&mut checker, "table_integrity").await;
    assert_eq!(result.status, Status::Warning, "{result:#?}");
    let usage = metric(&result, "sequence_max_usage_ratio");
    assert!((usage - 0.8).abs() < 0.001, "{usage}");
    assert!(
        result
            .summary
            .contains("sequence public.ticket_ids is 80% used by column tickets.id smallint"),
        "{}",
        result.summary
    );
    assert_eq!(
        result.details["sequences"][0]["column"],
        "tickets.id smallint"
    );
    // Widened, the column no longer limits it.
    psql(&url, "ALTER TABLE tickets ALTER id TYPE bigint");
    let result = one(&mut checker, "table_integrity").await;
    assert_eq!(result.status, Status::Ok, "{result:#?}");
    assert!(metric(&result, "sequence_max_usage_ratio") < 0.001);
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_tuples_and_stale_vacuum_warn_until_vacuumed() {
    let url = new_db();
    psql(
        &url,
        "CREATE TABLE churn (id int PRIMARY KEY) WITH (autovacuum_enabled = off); \
         INSERT INTO churn SELECT generate_series(1, 20000); DELETE FROM churn WHERE id > 5000",
    );
    wait_for(
        &url,
        "SELECT n_dead_tup >= 15000 FROM pg_stat_user_tables WHERE relname = 'churn'",
        "t",
    );
    let mut checker = checker(&url, "");
    let result = one(&mut checker, "table_integrity").await;
    assert_eq!(result.status, Status::Warning, "{result:#?}");
    assert!(metric(&result, "dead_tuples_max_ratio") > 0.5);
    assert_eq!(metric(&result, "tables_vacuum_stale"), 1.0);
    assert!(
        result.summary.contains("(public.churn never vacuumed)"),
        "{}",
        result.summary
    );
    assert_eq!(
        result.details["dead_tuples"][0]["last_vacuum"],
        "never vacuumed"
    );
    psql(&url, "VACUUM churn");
    wait_for(
        &url,
        "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'churn'",
        "0",
    );
    let result = one(&mut checker, "table_integrity").await;
    assert_eq!(result.status, Status::Ok, "{result:#?}");
    assert_eq!(metric(&result, "tables_vacuum_stale"), 0.0);
    let xid = result
        .measurements
        .iter()
        .find(|m| m.metric == "xid_wraparound_ratio" && m.labels[0].1 == url.database())
        .expect("xid ratio of the test database");
    assert!(xid.value > 0.0 && xid.value < 0.1, "{xid:?}");
}

/// Two sessions sharing a row lock make a multixact: the database's
/// multixact age, reported beside the xid age, grows by it.
#[tokio::test(flavor = "multi_thread")]
async fn multixact_age_is_reported_beside_the_xid_age_and_grows_with_shared_locks() {
    let url = new_db();
    psql(
        &url,
        "CREATE TABLE shared_rows (id int PRIMARY KEY); INSERT INTO shared_rows VALUES (1)",
    );
    let mut checker = checker(&url, "");
    let mxid_age = |result: &pgwarden::report::CheckResult| {
        result
            .measurements
            .iter()
            .find(|m| m.metric == "multixact_age" && m.labels[0].1 == url.database())
            .unwrap_or_else(|| panic!("no multixact_age: {result:#?}"))
            .value
    };
    let before = mxid_age(&one(&mut checker, "table_integrity").await);
    for _ in 0..3 {
        let (a, b) = (session(&url).await, session(&url).await);
        for s in [&a, &b] {
            s.batch_execute("BEGIN; SELECT * FROM shared_rows FOR SHARE")
                .await
                .unwrap();
        }
        for s in [&a, &b] {
            s.batch_execute("COMMIT").await.unwrap();
        }
    }
    let result = one(&mut checker, "table_integrity").await;
    assert_eq!(result.status, Status::Ok, "{result:#?}");
    assert!(mxid_age(&result) >= before + 3.0, "{before} -> {result:#?}");
    let ratio = result
        .measurements
        .iter()
        .find(|m| m.metric == "multixact_wraparound_ratio" && m.labels[0].1 == url.database())
        .expect("multixact ratio");
    assert!(ratio.value > 0.0 && ratio.value < 0.001, "{ratio:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn disk_usage_reports_top_tables_sized_and_growth_between_cycles() {
    let url = new_db();
    psql(
        &url,
        "CREATE TABLE big (id int PRIMARY KEY, pad text); \
         INSERT INTO big SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g; \
         CREATE TABLE small (id int PRIMARY KEY); ANALYZE",
    );
    let mut checker = checker(&url, "[checks]\ntop_n = 1\n");
    let first = one(&mut checker, "disk_usage").await;
    assert_eq!(first.status, Status::Ok, "{first:#?}");
    let tables: Vec<_> = first
        .measurements
        .iter()
        .filter(|m| m.metric == "table_size_bytes")
        .collect();
    assert_eq!(tables.len(), 1, "top_n bounds the series: {tables:?}");
    assert_eq!(
        tables[0].labels,
        vec![("table".into(), "public.big".into())]
    );
    assert!(tables[0].value > 4_000_000.0, "heap + index: {tables:?}");
    let template0 = first
        .measurements
        .iter()
        .find(|m| m.metric == "database_size_bytes" && m.labels[0].1 == "template0");
    assert!(
        template0.is_some_and(|m| m.value > 1_000_000.0),
        "{first:#?}"
    );
    assert!(
        !first
            .measurements
            .iter()
            .any(|m| m.metric == "database_growth_bytes"),
        "no growth without a previous cycle"
    );
    psql(
        &url,
        "INSERT INTO big SELECT g, repeat('x', 200) FROM generate_series(20001, 40000) g",
    );
    let second = one(&mut checker, "disk_usage").await;
    let growth = second
        .measurements
        .iter()
        .find(|m| m.metric == "database_growth_bytes" && m.labels[0].1 == url.database())
        .expect("growth of the test database");
    assert!(growth.value > 4_000_000.0, "{growth:?}");
}

/// `relpages` stays 0 until VACUUM or ANALYZE: a freshly loaded table is
/// still ranked by its real size, beside ten tiny analysed ones.
#[tokio::test(flavor = "multi_thread")]
async fn a_freshly_loaded_table_never_analysed_is_among_the_largest() {
    let url = new_db();
    let tiny: Vec<String> = (1..=10)
        .map(|i| format!("CREATE TABLE tiny{i} (id int); INSERT INTO tiny{i} VALUES (1);"))
        .collect();
    psql(&url, &format!("{} ANALYZE", tiny.join(" ")));
    psql(
        &url,
        "CREATE TABLE loaded (id int, pad text) WITH (autovacuum_enabled = off); \
         INSERT INTO loaded SELECT g, repeat('x', 400) FROM generate_series(1, 100000) g",
    );
    wait_for(
        &url,
        "SELECT relpages = 0 AND reltuples < 0 FROM pg_class WHERE relname = 'loaded'",
        "t",
    );
    wait_for(
        &url,
        "SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = 'loaded'",
        "100000",
    );
    let mut checker = checker(&url, "");
    let result = one(&mut checker, "disk_usage").await;
    let tables: Vec<_> = result
        .measurements
        .iter()
        .filter(|m| m.metric == "table_size_bytes")
        .collect();
    assert_eq!(tables.len(), 10, "{tables:?}");
    assert_eq!(tables[0].labels[0].1, "public.loaded", "{tables:?}");
    assert!(tables[0].value > 45_000_000.0, "{tables:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exhausted_pool_is_critical_and_recovers_when_released() {
    let url = new_db();
    let config = config(&url, "");
    let target = Target::new(&config.targets[0]).unwrap();
    let mut checker = Checker::new(target.clone(), config.checks.clone());
    assert_eq!(
        one(&mut checker, "connection_pool").await.status,
        Status::Ok
    );
    let max = config.targets[0].max_connections();
    let mut held = Vec::new();
    for _ in 0..max {
        held.push(target.client().await.unwrap());
    }
    let result = one(&mut checker, "connection_pool").await;
    assert_eq!(result.status, Status::Critical, "{result:#?}");
    assert_eq!(metric(&result, "pool_max_size"), max as f64);
    let in_use = result
        .measurements
        .iter()
        .find(|m| m.metric == "pool_connections" && m.labels[0].1 == "in_use")
        .unwrap();
    assert_eq!(in_use.value, max as f64);
    drop(held);
    let result = one(&mut checker, "connection_pool").await;
    assert_eq!(result.status, Status::Ok, "{result:#?}");
    assert!(metric(&result, "server_connections_usage_ratio") > 0.0);
    assert_eq!(metric(&result, "server_max_connections"), 100.0);
    assert_eq!(metric(&result, "server_reserved_connections"), 3.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn server_connection_usage_over_the_ratio_warns() {
    let url = new_db();
    // 100 max_connections - 3 reserved; a warning ratio of 0.05 is ~5 connections.
    let mut checker = checker(&url, "[checks.connection_pool]\nwarning = 0.05\n");
    let mut held = Vec::new();
    for _ in 0..6 {
        held.push(session(&url).await);
    }
    let result = one(&mut checker, "connection_pool").await;
    assert_eq!(result.status, Status::Warning, "{result:#?}");
    drop(held);
}

/// The per-state counts are the application's: with exactly one active,
/// one idle-in-transaction and one idle client session, they read 1, 1, 1
/// while a full cycle has pgwarden's own sessions open in those states too
/// (exported apart, and still counted in the usage ratio). A cluster of its
/// own: the shared one has other tests' sessions.
#[tokio::test(flavor = "multi_thread")]
async fn server_connection_states_count_client_sessions_not_pgwardens_own() {
    let cluster = own_cluster(&ClusterOptions::default());
    let url = cluster.url();
    let sleeper = session(&url).await;
    let sleeping = tokio::spawn(async move { sleeper.simple_query("SELECT pg_sleep(60)").await });
    let in_transaction = session(&url).await;
    in_transaction
        .batch_execute("BEGIN; SELECT 1")
        .await
        .unwrap();
    let idle = session(&url).await;
    idle.batch_execute("SELECT 1").await.unwrap();
    cluster
        .wait_for(
            "postgres",
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' AND query = 'SELECT pg_sleep(60)'",
            "1",
            Duration::from_secs(30),
        )
        .unwrap();
    let mut checker = checker(&url, RELAXED_LATENCY);
    // Two cycles: the second finds the pool warm, as the daemon does.
    checker.run_cycle().await;
    let report = checker.run_cycle().await;
    let result = check(&report, "connection_pool");
    assert_ne!(result.status, Status::Error, "{result:#?}");
    let state = |name: &str| {
        result
            .measurements
            .iter()
            .find(|m| m.metric == "server_connections" && m.labels[0].1 == name)
            .unwrap_or_else(|| panic!("no state {name} in {result:#?}"))
            .value
    };
    assert_eq!(state("active"), 1.0, "{result:#?}");
    assert_eq!(state("idle_in_transaction"), 1.0, "{result:#?}");
    assert_eq!(state("idle"), 1.0, "{result:#?}");
    let ours = metric(result, "server_connections_pgwarden");
    assert!(ours >= 1.0, "{result:#?}");
    // The ratio counts every slot taken: 3 clients + pgwarden's, of 100 - 3.
    let ratio = metric(result, "server_connections_usage_ratio");
    assert_eq!((ratio * 97.0).round(), 3.0 + ours, "{result:#?}");
    cluster
        .psql(
            "postgres",
            "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query = 'SELECT pg_sleep(60)'",
        )
        .unwrap();
    let cancelled = sleeping.await.unwrap().unwrap_err();
    assert_eq!(
        cancelled.code(),
        Some(&tokio_postgres::error::SqlState::QUERY_CANCELED),
        "{cancelled:?}"
    );
}

/// Typed reads of real server answers: `pg_database_size` and
/// `pg_total_relation_size` of an object that is gone answer NULL, which a
/// nullable column reads as `None`; the same NULL where a value is required
/// is an error naming the check, the column and the query, not a panic.
#[tokio::test(flavor = "multi_thread")]
async fn a_null_answer_is_none_where_allowed_and_a_named_error_elsewhere() {
    use pgwarden::checks::rows::{col, opt, typed};
    let url = new_db();
    let client = session(&url).await;
    let sql = "SELECT 'gone'::text AS name, pg_database_size(0::oid)::float8 AS size, \
               pg_total_relation_size(0::oid)::float8 AS total";
    let rows = client.query(sql, &[]).await.unwrap();
    let read = typed("disk_usage", sql, &rows, |r| {
        Ok((col::<String>(r, 0)?, opt::<f64>(r, 1)?, opt::<f64>(r, 2)?))
    })
    .unwrap();
    assert_eq!(read, [("gone".to_string(), None, None)]);
    let err = typed("disk_usage", sql, &rows, |r| col::<f64>(r, 1)).unwrap_err();
    assert_eq!(
        err,
        format!("disk_usage: column `size` (#2) is NULL in the answer to: {sql}")
    );
    let err = typed("disk_usage", sql, &rows, |r| col::<i32>(r, 0)).unwrap_err();
    assert!(
        err.starts_with("disk_usage: cannot read column `name` (#1): "),
        "{err}"
    );
    let err = typed("disk_usage", sql, &rows, |r| col::<f64>(r, 7)).unwrap_err();
    assert!(err.contains("column #8 (the answer has 3)"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_check_stuck_on_a_lock_times_out_alone_while_the_other_nine_complete() {
    let url = new_db();
    psql(
        &url,
        "CREATE TABLE hot (id int PRIMARY KEY); INSERT INTO hot SELECT generate_series(1, 1000); ANALYZE hot",
    );
    let mut checker = checker(&url, "[checks]\ntimeout = \"1s\"\n");
    let holder = session(&url).await;
    holder
        .batch_execute("BEGIN; LOCK TABLE hot IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let report = checker.run_cycle().await;
    let elapsed = started.elapsed();
    let disk = check(&report, "disk_usage");
    assert_eq!(disk.status, Status::Error, "{disk:#?}");
    assert!(disk.summary.contains("timed out"), "{}", disk.summary);
    for c in report.checks.iter().filter(|c| c.check != "disk_usage") {
        assert_ne!(c.status, Status::Error, "{c:#?}");
    }
    assert!(
        elapsed < Duration::from_secs(10),
        "the cycle is bounded by the timeout, took {elapsed:?}"
    );
    holder.batch_execute("COMMIT").await.unwrap();
    let report = checker.run_cycle().await;
    assert_eq!(check(&report, "disk_usage").status, Status::Ok);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_check_passes_as_a_pg_monitor_role() {
    let url = new_db();
    let role = format!("monitor_{}", url.database());
    // The README's role SQL.
    psql(
        &url,
        &format!(
            "CREATE ROLE {role} LOGIN PASSWORD 'mon-pw' IN ROLE pg_monitor; \
             GRANT CONNECT ON DATABASE {db} TO {role}; \
             CREATE TABLE orders (id serial PRIMARY KEY, note text); \
             INSERT INTO orders (note) VALUES ('x')",
            db = url.database()
        ),
    );
    let monitor = DbUrl::parse(&format!(
        "postgres://{role}:mon-pw@127.0.0.1:{}/{}",
        url.port(),
        url.database()
    ))
    .unwrap();
    assert_eq!(
        psql(
            &url,
            &format!("SELECT rolsuper FROM pg_roles WHERE rolname = '{role}'")
        ),
        "f"
    );
    let thresholds = format!("{RELAXED_LATENCY}[checks.long_queries]\nquery_warning = \"1s\"\n");
    let mut checker = checker(&monitor, &thresholds);
    let report = checker.run_cycle().await;
    for c in &report.checks {
        assert_eq!(c.status, Status::Ok, "{c:#?}");
    }
    // It sees other users' sessions, not only its own.
    let sleeper = session(&url).await;
    let sleep = tokio::spawn(async move { sleeper.simple_query("SELECT pg_sleep(60)").await });
    wait_for(
        &url,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query = 'SELECT pg_sleep(60)' \
         AND clock_timestamp() - query_start > interval '1.5 s'",
        "1",
    );
    let result = one(&mut checker, "long_queries").await;
    assert_eq!(result.status, Status::Warning, "{result:#?}");
    assert!(result.details.to_string().contains("pg_sleep(60)"));
    psql(
        &url,
        "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query = 'SELECT pg_sleep(60)'",
    );
    let _ = sleep.await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_target_reports_connectivity_critical_and_the_rest_not_run() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = DbUrl::parse(&format!("postgres://app:pw@127.0.0.1:{port}/app")).unwrap();
    let mut checker = checker(&url, "");
    let report = checker.run_cycle().await;
    assert!(!report.up);
    let connectivity = check(&report, "connectivity");
    assert_eq!(connectivity.status, Status::Critical);
    assert!(
        connectivity.summary.contains("connection refused"),
        "{}",
        connectivity.summary
    );
    assert_eq!(check(&report, "locks").status, Status::Error);
    assert_eq!(report.checks.len(), 10);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_number_of_series_does_not_grow_with_the_number_of_tables() {
    // Its own cluster: per-database series would grow with the databases
    // other tests create on the shared one.
    let cluster = own_cluster(&ClusterOptions::default());
    let url = cluster.create_database().unwrap();
    let psql = |url: &DbUrl, sql: &str| cluster.psql(&url.database(), sql).unwrap();
    let series = |report: &TargetReport| -> usize {
        report
            .checks
            .iter()
            .flat_map(|c| &c.measurements)
            .filter(|m| !m.labels.iter().any(|(name, _)| name == "database"))
            .count()
    };
    psql(
        &url,
        "DO $$ BEGIN FOR i IN 1..3 LOOP \
         EXECUTE format('CREATE TABLE few_%s (id int PRIMARY KEY, v int)', i); END LOOP; END $$",
    );
    // A new checker each time: a second cycle adds the interval series.
    let few = series(&checker(&url, "[checks]\ntop_n = 3\n").run_cycle().await);
    psql(
        &url,
        "DO $$ BEGIN FOR i IN 1..200 LOOP \
         EXECUTE format('CREATE TABLE many_%s (id int, v int REFERENCES few_1)', i); \
         EXECUTE format('CREATE INDEX ON many_%s (id)', i); END LOOP; END $$",
    );
    let report = checker(&url, "[checks]\ntop_n = 3\n").run_cycle().await;
    assert_eq!(series(&report), few, "{report:#?}");
    let integrity = check(&report, "table_integrity");
    assert_eq!(metric(integrity, "tables_without_primary_key"), 200.0);
    assert_eq!(metric(integrity, "foreign_keys_without_index"), 200.0);
    assert_eq!(
        integrity.details["tables_without_primary_key"]
            .as_array()
            .unwrap()
            .len(),
        3,
        "offenders are cut to top_n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_locked_catalog_times_out_the_check_reading_it_while_the_other_nine_complete() {
    let url = new_db();
    let mut checker = checker(&url, "[checks]\ntimeout = \"1s\"\n");
    let holder = session(&url).await;
    // pg_sequence is read by table_integrity (through pg_sequences) and by no
    // other check, nor by connecting.
    holder
        .batch_execute("BEGIN; LOCK TABLE pg_catalog.pg_sequence IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let report = checker.run_cycle().await;
    let integrity = check(&report, "table_integrity");
    assert_eq!(integrity.status, Status::Error, "{integrity:#?}");
    assert!(
        integrity.summary.contains("timed out"),
        "{}",
        integrity.summary
    );
    for c in report
        .checks
        .iter()
        .filter(|c| c.check != "table_integrity")
    {
        assert_ne!(c.status, Status::Error, "{c:#?}");
    }
    holder.batch_execute("COMMIT").await.unwrap();
    let report = checker.run_cycle().await;
    assert_ne!(check(&report, "table_integrity").status, Status::Error);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_is_named_authentication_failed() {
    let url = shared()
        .url_for(&new_db().database())
        .with_password("not-the-password")
        .unwrap();
    let report = checker(&url, "").run_cycle().await;
    assert!(!report.up);
    let connectivity = check(&report, "connectivity");
    assert_eq!(connectivity.status, Status::Critical);
    assert!(
        connectivity.summary.contains("authentication failed"),
        "{}",
        connectivity.summary
    );
    assert!(!format!("{report:?}").contains("not-the-password"));
}
