//! locks: sessions waiting on a lock another session holds
//! (`pg_blocking_pids`), the longest wait, who blocks whom, and deadlocks
//! since the previous cycle (pg_stat_database's counter, per database).

use std::collections::HashMap;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::json;

use super::{Check, ChecksConfig, Context, Labelled, Outcome, at_least};
use crate::report::Status;

const BLOCKED: &str = "blocked_sessions";
const BLOCKED_HELP: &str = "Sessions waiting on a lock held by another.";
const WAIT_MAX: &str = "lock_wait_max_seconds";
const WAIT_MAX_HELP: &str = "The longest current lock wait.";
const DEADLOCKS: &str = "deadlocks_total";
const DEADLOCKS_HELP: &str = "Deadlocks detected in each database (pg_stat_database).";

/// Blocked sessions and the sessions blocking them; `waitstart` exists from
/// PostgreSQL 14, before that the query's start bounds the wait.
fn sessions_sql(version_num: i64) -> String {
    let wait_start = if version_num >= 140000 {
        "(SELECT min(l.waitstart) FROM pg_locks l WHERE l.pid = a.pid AND NOT l.granted)"
    } else {
        "a.query_start"
    };
    format!(
        "WITH blocked AS ( \
           SELECT pid, pg_blocking_pids(pid) AS by FROM pg_stat_activity \
           WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid() \
             AND datname = current_database()) \
         SELECT a.pid, coalesce(b.by, '{{}}')::int4[], \
           coalesce(extract(epoch FROM clock_timestamp() - {wait_start}), 0)::float8, \
           coalesce(a.usename::text, ''), coalesce(a.datname::text, ''), coalesce(a.state, ''), \
           left(a.query, 200) \
         FROM pg_stat_activity a LEFT JOIN blocked b ON b.pid = a.pid \
         WHERE cardinality(b.by) > 0 \
            OR a.pid IN (SELECT unnest(by) FROM blocked WHERE cardinality(by) > 0)"
    )
}

const VERSION_SQL: &str = "SELECT current_setting('server_version_num')::int4";

const DEADLOCKS_SQL: &str =
    "SELECT datname::text, deadlocks::float8 FROM pg_stat_database WHERE datname IS NOT NULL";

/// Deadlock counters of the previous cycle.
#[derive(Default)]
pub struct Locks {
    previous: Option<HashMap<String, f64>>,
}

impl Check for Locks {
    fn name(&self) -> &'static str {
        "locks"
    }

    fn queries(&self, _: &ChecksConfig) -> Vec<String> {
        vec![
            VERSION_SQL.into(),
            sessions_sql(150000),
            DEADLOCKS_SQL.into(),
        ]
    }

    fn run<'a>(&'a mut self, ctx: &'a Context<'_>) -> BoxFuture<'a, Result<Outcome, String>> {
        async move {
            let session = ctx.session().await?;
            let version: i32 = session.query_one(VERSION_SQL).await?.get(0);
            let sessions = session.query(&sessions_sql(version.into())).await?;
            let deadlocks = session.query(DEADLOCKS_SQL).await?;
            session.finish().await;
            let mut out = blocking(ctx.config, &sessions);
            let counts: HashMap<String, f64> =
                deadlocks.iter().map(|r| (r.get(0), r.get(1))).collect();
            self.deadlocks(&counts, &mut out);
            Ok(out)
        }
        .boxed()
    }
}

fn blocking(config: &ChecksConfig, rows: &[tokio_postgres::Row]) -> Outcome {
    let mut blocked = Vec::new();
    let mut blockers = Vec::new();
    let mut longest = 0.0f64;
    for row in rows {
        let by: Vec<i32> = row.get(1);
        let entry = json!({
            "pid": row.get::<_, i32>(0), "blocked_by": by, "user": row.get::<_, String>(3),
            "database": row.get::<_, String>(4), "state": row.get::<_, String>(5),
            "query": row.get::<_, String>(6),
        });
        if by.is_empty() {
            blockers.push(entry);
        } else {
            let waited: f64 = row.get(2);
            longest = longest.max(waited);
            blocked.push((waited, entry));
        }
    }
    blocked.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut out = Outcome::new(format!(
        "{} blocked session(s), longest wait {longest:.1} s",
        blocked.len()
    ));
    out.gauge(BLOCKED, BLOCKED_HELP, blocked.len() as f64);
    out.gauge(WAIT_MAX, WAIT_MAX_HELP, longest);
    let limits = &config.locks;
    if let Some((_, first)) = blocked.first() {
        out.flag(
            at_least(
                longest,
                limits.wait_warning.get().as_secs_f64(),
                limits.wait_critical.get().as_secs_f64(),
            ),
            format!(
                "pid {} waits {longest:.0} s on pid(s) {}",
                first["pid"], first["blocked_by"]
            ),
        );
    }
    let top = config.top_n();
    let blocked: Vec<_> = blocked.into_iter().take(top).map(|(_, e)| e).collect();
    out.detail("blocked", blocked);
    out.detail(
        "blockers",
        blockers.into_iter().take(top).collect::<Vec<_>>(),
    );
    out
}

impl Locks {
    fn deadlocks(&mut self, counts: &HashMap<String, f64>, out: &mut Outcome) {
        let mut databases: Vec<_> = counts.iter().collect();
        databases.sort_by(|a, b| a.0.cmp(b.0));
        let mut new = 0.0;
        for (database, count) in databases {
            out.counter(DEADLOCKS, DEADLOCKS_HELP, *count)
                .with("database", database);
            if let Some(before) = self.previous.as_ref().and_then(|p| p.get(database)) {
                new += (count - before).max(0.0);
            }
        }
        if new > 0.0 {
            out.flag(
                Status::Warning,
                format!("{new:.0} deadlock(s) since the previous cycle"),
            );
        }
        out.detail("deadlocks_since_previous_cycle", new);
        self.previous = Some(counts.clone());
    }
}
