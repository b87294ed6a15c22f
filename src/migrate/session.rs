//! The migration session: a direct connection (never pooled, so its advisory
//! lock and `SET`s cannot leak to anyone), the runners' lock, and a watcher
//! that knows which lock a statement is waiting for.
//!
//! Runners serialise on a session-level advisory lock, taken by *polling*
//! `pg_try_advisory_lock`: a session blocked in `pg_advisory_lock` sits in an
//! open transaction, and `CREATE INDEX CONCURRENTLY` in the lock holder waits
//! for every such transaction — an undetected deadlock. The lock goes away
//! with the session, so a killed runner cannot leave it behind.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_postgres::Client;

use super::MigrationsConfig;
use super::plan;
use crate::checks::rows::{col, value};
use crate::config::TargetConfig;
use crate::error::{Error, Result};
use crate::pool;

/// The advisory lock key of migration runners ("pgwarden" in ASCII).
pub const LOCK_KEY: i64 = 0x7067_7761_7264_656e;
const POLL: Duration = Duration::from_millis(100);

pub struct Session {
    pub client: Client,
    pid: i32,
    waits: Arc<Mutex<Option<String>>>,
    watcher: Option<tokio::task::JoinHandle<()>>,
    target: String,
}

impl Session {
    /// Connect and apply the session settings (lock_timeout, statement_timeout).
    pub async fn open(target: &TargetConfig, config: &MigrationsConfig) -> Result<Session> {
        let client = pool::connect_direct(target).await?;
        for setting in plan::session_settings(config) {
            client
                .batch_execute(&setting)
                .await
                .map_err(|e| Error::failed(format!("{setting}: {}", db_message(&e))))?;
        }
        let row = client
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .map_err(|e| Error::failed(db_message(&e)))?;
        let pid: i32 = value(&row, 0, "reading pg_backend_pid()")?;
        Ok(Session {
            client,
            pid,
            waits: Arc::default(),
            watcher: None,
            target: target.name.to_string(),
        })
    }

    /// Wait (polling) until this session holds the runners' lock.
    pub async fn lock(&self) -> Result<()> {
        let mut told = false;
        loop {
            let row = self
                .client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&LOCK_KEY])
                .await
                .map_err(|e| {
                    Error::failed(format!("taking the migration lock: {}", db_message(&e)))
                })?;
            let got: bool = value(&row, 0, "taking the migration lock")?;
            if got {
                return Ok(());
            }
            if !told {
                // Awaited before the macro: its format arguments are not Send.
                let holder = self.lock_holder().await;
                tracing::info!(
                    target = %self.target,
                    holder = %holder,
                    "another migration runner holds the lock; waiting for it to finish"
                );
                told = true;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Who holds the runners' lock, for the operator watching a waiter.
    async fn lock_holder(&self) -> String {
        // A bigint advisory key is stored as classid (high half), objid (low half), objsubid 1.
        let row = self
            .client
            .query_one(
                "SELECT coalesce(string_agg(format('pid %s (%s, %s)', a.pid, \
                        coalesce(nullif(a.application_name, ''), 'no application_name'), \
                        coalesce(host(a.client_addr), 'local socket')), ', '), 'unknown') \
                 FROM pg_locks l JOIN pg_stat_activity a USING (pid) \
                 WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
                   AND l.classid = ($1::int8 >> 32)::oid AND l.objid = ($1::int8 & 4294967295)::oid",
                &[&LOCK_KEY],
            )
            .await;
        row.ok()
            .and_then(|r| col(&r, 0).ok())
            .unwrap_or_else(|| "unknown".into())
    }

    pub async fn unlock(&self) {
        let _ = self
            .client
            .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
            .await;
    }

    /// Start watching which locks this session waits for (a second session
    /// polls `pg_locks`), so a lock timeout can say what it waited for.
    pub async fn watch_locks(&mut self, target: &TargetConfig) {
        let Ok(watcher) = pool::connect_direct(target).await else {
            return; // the message will just not name the lock
        };
        let waits = self.waits.clone();
        let pid = self.pid;
        self.watcher = Some(tokio::spawn(async move {
            loop {
                if let Ok(rows) = watcher.query(WAIT_QUERY, &[&pid]).await
                    && let Some(Ok(wait)) = rows.first().map(|row| col(row, 0))
                {
                    *waits.lock().unwrap_or_else(|e| e.into_inner()) = Some(wait);
                }
                tokio::time::sleep(POLL / 2).await;
            }
        }));
    }

    /// Forget what was seen before a new attempt.
    pub fn clear_waits(&self) {
        *self.waits.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// The last lock this session was seen waiting for.
    pub fn last_wait(&self) -> Option<String> {
        self.waits.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(watcher) = self.watcher.take() {
            watcher.abort();
        }
    }
}

/// "AccessExclusiveLock on relation users, held by pid 42 (psql, idle in transaction)".
const WAIT_QUERY: &str = "
SELECT format('%s on %s%s%s', l.mode, l.locktype,
              coalesce(' ' || l.relation::regclass::text, ''),
              coalesce(', held by ' || (
                  SELECT string_agg(format('pid %s (%s, %s)', a.pid,
                                           coalesce(nullif(a.application_name, ''), 'no application_name'),
                                           coalesce(a.state, 'unknown state')), ', ')
                  FROM pg_stat_activity a WHERE a.pid = ANY (pg_blocking_pids(l.pid))), ''))
FROM pg_locks l
WHERE l.pid = $1 AND NOT l.granted
LIMIT 1";

/// The server's message (or the driver's) without the driver's prefix.
pub fn db_message(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => db.message().to_string(),
        None => error.to_string(),
    }
}
