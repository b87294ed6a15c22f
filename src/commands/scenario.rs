//! `pgwarden demo --scenario`: a small workload on the demo database that
//! provokes what pgwarden is there to notice — a session holding a row lock
//! while idle in its transaction, another blocked behind it, a long query, a
//! table full of dead tuples, and a standby the config expects but that
//! never comes — so the status page and the metrics show warnings at once.
//!
//! The sessions live in tasks owned by [`Scenario`]; dropping it aborts them,
//! and the cluster's removal ends whatever is left on the server side.

use tokio::task::JoinHandle;
use tokio_postgres::{Client, NoTls};

use crate::config::{Config, Duration};
use crate::dburl::DbUrl;
use crate::error::{Error, Result};

/// Tables the scenario creates, prefixed so they never meet the schema's.
const SETUP: &str = "
    CREATE TABLE scenario_accounts (id int PRIMARY KEY, balance numeric NOT NULL DEFAULT 0);
    INSERT INTO scenario_accounts SELECT g FROM generate_series(1, 100) g;
    -- Autovacuum off, so the dead tuples stay for the demo to show.
    CREATE TABLE scenario_churn (id int PRIMARY KEY, payload text)
        WITH (autovacuum_enabled = false);
    INSERT INTO scenario_churn SELECT g, md5(g::text) FROM generate_series(1, 20000) g;
    DELETE FROM scenario_churn WHERE id > 5000;
";

/// The sessions the scenario keeps busy, and what they run.
const HOLDER: &str = "BEGIN; UPDATE scenario_accounts SET balance = balance + 1 WHERE id = 1";
const WAITER: &str = "UPDATE scenario_accounts SET balance = balance - 1 WHERE id = 1";
const SLEEPER: &str = "SELECT pg_sleep(86400) /* pgwarden demo: a long query */";

pub struct Scenario {
    tasks: Vec<JoinHandle<()>>,
    _holder: Client,
}

impl Drop for Scenario {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Thresholds a newcomer does not have to wait minutes for, and one
/// expected standby that does not exist.
pub fn configure(config: &mut Config) {
    let checks = &mut config.checks;
    checks.long_queries.query_warning = Duration::secs(10);
    checks.long_queries.idle_in_transaction_warning = Duration::secs(10);
    checks.locks.wait_warning = Duration::secs(5);
    if let Some(target) = config.targets.first_mut() {
        target.expected_replicas = crate::config::ReplicaCount::try_new(1).ok();
    }
}

async fn session(url: &DbUrl, name: &str) -> Result<(Client, JoinHandle<()>)> {
    let (client, connection) = tokio_postgres::connect(url.expose(), NoTls)
        .await
        .map_err(|e| Error::failed(format!("demo scenario: cannot connect ({name}): {e}")))?;
    let task = tokio::spawn(async move {
        let _ = connection.await;
    });
    client
        .batch_execute(&format!("SET application_name = 'pgwarden-demo-{name}'"))
        .await
        .map_err(|e| Error::failed(format!("demo scenario: {name}: {e}")))?;
    Ok((client, task))
}

/// Create the tables and start the sessions; they run until the returned
/// handle is dropped.
pub async fn start(url: &DbUrl) -> Result<Scenario> {
    let failed =
        |what: &str, e: tokio_postgres::Error| Error::failed(format!("demo scenario: {what}: {e}"));
    let (setup, setup_task) = session(url, "setup").await?;
    setup
        .batch_execute(SETUP)
        .await
        .map_err(|e| failed("creating its tables", e))?;
    drop(setup);
    let (holder, holder_task) = session(url, "holder").await?;
    holder
        .batch_execute(HOLDER)
        .await
        .map_err(|e| failed("taking the row lock", e))?;
    let mut tasks = vec![setup_task, holder_task];
    for (name, sql) in [("waiter", WAITER), ("sleeper", SLEEPER)] {
        let (client, task) = session(url, name).await?;
        tasks.push(task);
        tasks.push(tokio::spawn(async move {
            // Ends with an error when the demo stops the server: expected.
            let _ = client.batch_execute(sql).await;
        }));
    }
    Ok(Scenario {
        tasks,
        _holder: holder,
    })
}
