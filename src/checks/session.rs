//! A check's connection: a pooled client inside a read-only transaction
//! whose `statement_timeout` and `lock_timeout` are `SET LOCAL`.
//!
//! `SET LOCAL` dies with the transaction, so the timeouts never leak into
//! the pool. A session that is not finished cleanly (a query failed or hit
//! its timeout, the check's future was dropped) is rolled back in the
//! background and only then handed back to the pool. The connection is
//! kept rather than closed because a new one may be exactly what a sick
//! server cannot give: under a locked catalog, a connection that hit
//! `lock_timeout` is fine, while a new one would hang in startup. Only a
//! connection that does not answer the `ROLLBACK` in time is closed.

use std::time::Duration;

use tokio_postgres::Row;

use crate::config::TargetConfig;
use crate::pool::{Object, Pool, describe_pool_error};

pub struct Session {
    client: Option<Object>,
    finished: bool,
    /// How long a `ROLLBACK` after an unfinished check may take before the
    /// connection is given up: a query still running is stopped by its
    /// `statement_timeout` well within it.
    rollback_bound: Duration,
}

impl Session {
    pub async fn open(
        pool: &Pool,
        target: &TargetConfig,
        timeout: Duration,
    ) -> Result<Self, String> {
        // A pool smaller than the number of checks makes some wait for
        // another to finish, which may take up to that check's timeout.
        let mut timeouts = pool.timeouts();
        timeouts.wait = timeouts.wait.map(|wait| wait + timeout);
        let client = pool
            .timeout_get(&timeouts)
            .await
            .map_err(|e| describe_pool_error(&e, pool, target))?;
        let session = Self {
            client: Some(client),
            finished: false,
            rollback_bound: timeout + target.connect_timeout.get(),
        };
        let ms = timeout.as_millis().max(1);
        session
            .batch(&format!(
                "BEGIN READ ONLY; SET LOCAL statement_timeout = {ms}; SET LOCAL lock_timeout = {ms}"
            ))
            .await?;
        Ok(session)
    }

    /// The session's connection (inside its read-only transaction).
    pub fn client(&self) -> &Object {
        self.client.as_ref().expect("present until drop")
    }

    pub async fn query(&self, sql: &str) -> Result<Vec<Row>, String> {
        self.client()
            .query(sql, &[])
            .await
            .map_err(|e| describe_query_error(&e))
    }

    pub async fn query_one(&self, sql: &str) -> Result<Row, String> {
        self.query(sql)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| format!("no row from: {sql}"))
    }

    async fn batch(&self, sql: &str) -> Result<(), String> {
        self.client()
            .batch_execute(sql)
            .await
            .map_err(|e| describe_query_error(&e))
    }

    /// Commit (ending the `SET LOCAL`s) and give the connection back.
    pub async fn finish(mut self) {
        if self.batch("COMMIT").await.is_ok() {
            self.finished = true;
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        if self.finished {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(roll_back(client, self.rollback_bound));
            }
            Err(_) => drop(Object::take(client)),
        }
    }
}

/// End the transaction of an unfinished session, then give the connection
/// back; a server that does not answer in time loses the connection instead,
/// so no half-open transaction or running query is ever handed out.
async fn roll_back(client: Object, bound: Duration) {
    match tokio::time::timeout(bound, client.batch_execute("ROLLBACK")).await {
        Ok(Ok(())) => drop(client),
        _ => drop(Object::take(client)),
    }
}

/// The operator's words for a failed check query; timeouts say so first.
pub fn describe_query_error(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => match db.code().code() {
            "57014" => format!("timed out ({})", db.message()),
            "55P03" => format!("timed out waiting for a lock ({})", db.message()),
            "42501" => format!(
                "permission denied ({}); grant the monitoring role pg_monitor",
                db.message()
            ),
            _ => db.message().to_string(),
        },
        None => error.to_string(),
    }
}
