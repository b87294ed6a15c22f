//! The real-PostgreSQL harness itself: clusters start, replicas stream,
//! faults can be injected, and nothing is left behind.

use crate::support;

use std::time::Duration;

use support::*;

#[test]
fn replica_streams_rows_written_on_the_primary() {
    let primary = own_cluster(&ClusterOptions::default());
    primary
        .psql(
            "postgres",
            "CREATE TABLE t (v text); INSERT INTO t VALUES ('before')",
        )
        .unwrap();
    let replica = primary.start_replica().unwrap();
    assert_eq!(
        replica
            .psql("postgres", "SELECT pg_is_in_recovery()")
            .unwrap(),
        "t"
    );
    primary
        .psql("postgres", "INSERT INTO t VALUES ('streamed')")
        .unwrap();
    replica
        .wait_for(
            "postgres",
            "SELECT count(*) FROM t WHERE v = 'streamed'",
            "1",
            Duration::from_secs(20),
        )
        .unwrap();
    let senders = primary
        .psql("postgres", "SELECT state FROM pg_stat_replication")
        .unwrap();
    assert_eq!(senders, "streaming");
}

#[test]
fn a_cluster_can_be_stopped_restarted_and_configured() {
    let options = ClusterOptions::default()
        .setting("shared_buffers", "1MB")
        .setting("shared_preload_libraries", "pg_stat_statements");
    let cluster = own_cluster(&options);
    assert_eq!(
        cluster.psql("postgres", "SHOW shared_buffers").unwrap(),
        "1MB"
    );
    cluster
        .psql("postgres", "CREATE EXTENSION pg_stat_statements")
        .unwrap();
    cluster.stop().unwrap();
    let err = cluster.psql("postgres", "SELECT 1").unwrap_err();
    assert!(err.to_string().contains("psql failed"), "{err}");
    cluster.start_again().unwrap();
    assert_eq!(cluster.psql("postgres", "SELECT 1").unwrap(), "1");
}

#[test]
fn dropping_a_cluster_stops_it_and_removes_its_files() {
    let cluster = own_cluster(&ClusterOptions::default());
    let data = cluster.data_dir();
    let port = cluster.port();
    assert!(data.join("PG_VERSION").exists());
    drop(cluster);
    assert!(!data.exists(), "data dir {data:?} still exists");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "something still listens on {port}"
    );
}

#[test]
fn databases_on_the_shared_cluster_are_separate() {
    let a = shared().create_database().unwrap();
    let b = shared().create_database().unwrap();
    assert_ne!(a.database(), b.database());
    shared()
        .psql(&a.database(), "CREATE TABLE only_in_a (x int)")
        .unwrap();
    let in_b = shared()
        .psql(
            &b.database(),
            "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'",
        )
        .unwrap();
    assert_eq!(in_b, "0");
}
