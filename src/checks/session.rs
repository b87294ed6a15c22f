//! A check's connection: a pooled client inside a read-only transaction
//! whose `statement_timeout` and `lock_timeout` are `SET LOCAL`.
//!
//! `SET LOCAL` dies with the transaction, so the timeouts never leak into
//! the pool. A session that is not finished cleanly (a query failed, the
//! check timed out and its future was dropped) takes its connection out of
//! the pool instead of returning it, so no half-open transaction or
//! still-running query is ever handed to the next caller.

use std::time::Duration;

use deadpool_postgres::{Object, Pool};
use tokio_postgres::Row;

use crate::config::TargetConfig;
use crate::pool::describe_pool_error;

pub struct Session {
    client: Option<Object>,
    finished: bool,
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
            .map_err(|e| describe_pool_error(&e, target))?;
        let session = Self {
            client: Some(client),
            finished: false,
        };
        let ms = timeout.as_millis().max(1);
        session
            .batch(&format!(
                "BEGIN READ ONLY; SET LOCAL statement_timeout = {ms}; SET LOCAL lock_timeout = {ms}"
            ))
            .await?;
        Ok(session)
    }

    fn client(&self) -> &Object {
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
        if let Some(client) = self.client.take()
            && !self.finished
        {
            // Closing the connection is the only sure way to end whatever it was doing.
            drop(Object::take(client));
        }
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
