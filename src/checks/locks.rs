//! locks: sessions waiting on a lock another session holds
//! (`pg_blocking_pids`), the longest wait, who blocks whom, and deadlocks
//! since the previous cycle (pg_stat_database's counter, per database).

use std::collections::HashMap;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::json;

use super::metric::{List, Metric, Spec, Text};
use super::rows::{col, fetch, fetch_one, query_text};
use super::{Check, ChecksConfig, Context, Outcome, at_least};
use crate::report::Status;

const NAME: &str = "locks";

const BLOCKED: Metric = Metric::gauge(
    "blocked_sessions",
    "Sessions waiting on a lock held by another.",
    &[],
)
.per_database();
const WAIT_MAX: Metric = Metric::gauge(
    "lock_wait_max_seconds",
    "The longest current lock wait.",
    &[],
)
.per_database();
const DEADLOCKS: Metric = Metric::counter(
    "deadlocks_total",
    "Deadlocks detected in each database (pg_stat_database).",
    &["database"],
);

/// This check and every metric it may export.
pub static SPEC: Spec = Spec {
    name: Text::Borrowed(NAME),
    own_interval: true,
    metrics: List::Static(&[&BLOCKED, &WAIT_MAX, &DEADLOCKS]),
};

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
    fn spec(&self) -> &'static Spec {
        &SPEC
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
            let sessions = match ctx.wants(&BLOCKED) {
                true => waiters(&session).await?,
                false => Vec::new(),
            };
            let deadlocks = match ctx.wants(&DEADLOCKS) {
                true => {
                    fetch(&session, NAME, DEADLOCKS_SQL, |r| {
                        Ok((col(r, 0)?, col(r, 1)?))
                    })
                    .await?
                }
                false => Vec::new(),
            };
            session.finish().await;
            let mut out = blocking(ctx.config, &sessions);
            self.deadlocks(&deadlocks.into_iter().collect(), &mut out);
            Ok(out)
        }
        .boxed()
    }
}

/// The blocked sessions of this database and the sessions blocking them.
async fn waiters(session: &super::Session) -> Result<Vec<Waiter>, String> {
    let version: i32 = fetch_one(session, NAME, VERSION_SQL, |r| col(r, 0)).await?;
    let sql = sessions_sql(version.into());
    let sessions = fetch(session, NAME, &sql, |r| {
        Ok(Waiter {
            pid: col(r, 0)?,
            blocked_by: col(r, 1)?,
            waited: col(r, 2)?,
            user: col(r, 3)?,
            database: col(r, 4)?,
            state: col(r, 5)?,
            query: query_text(r, 6)?,
        })
    })
    .await?;
    Ok(sessions)
}

/// A blocked session (`blocked_by` not empty) or one blocking another.
#[derive(Debug)]
struct Waiter {
    pid: i32,
    blocked_by: Vec<i32>,
    waited: f64,
    user: String,
    database: String,
    state: String,
    query: String,
}

fn blocking(config: &ChecksConfig, waiters: &[Waiter]) -> Outcome {
    let mut blocked = Vec::new();
    let mut blockers = Vec::new();
    let mut longest = 0.0f64;
    for w in waiters {
        let entry = json!({
            "pid": w.pid, "blocked_by": w.blocked_by, "user": w.user,
            "database": w.database, "state": w.state, "query": w.query,
        });
        if w.blocked_by.is_empty() {
            blockers.push(entry);
        } else {
            longest = longest.max(w.waited);
            blocked.push((w.waited, entry));
        }
    }
    blocked.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut out = Outcome::new(format!(
        "{} blocked session(s), longest wait {longest:.1} s",
        blocked.len()
    ));
    out.set(&BLOCKED, &[], blocked.len() as f64);
    out.set(&WAIT_MAX, &[], longest);
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
            out.set(&DEADLOCKS, &[database], *count);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn waiter(pid: i32, blocked_by: Vec<i32>, waited: f64, query: &str) -> Waiter {
        Waiter {
            pid,
            blocked_by,
            waited,
            user: "app".into(),
            database: "app".into(),
            state: "active".into(),
            query: query.into(),
        }
    }

    fn counts(pairs: &[(&str, f64)]) -> HashMap<String, f64> {
        pairs.iter().map(|(d, n)| (d.to_string(), *n)).collect()
    }

    #[test]
    fn a_long_lock_wait_is_flagged_naming_the_waiter_and_the_blocker() {
        let config = ChecksConfig::default();
        let critical = config.locks.wait_critical.get().as_secs_f64();
        let out = blocking(
            &config,
            &[
                waiter(10, vec![], 0.0, "LOCK t"),
                waiter(11, vec![10], critical + 1.0, "SELECT 1"),
            ],
        );
        assert_eq!(out.status(), Status::Critical, "{out:?}");
        assert!(out.problems[0].contains("pid 11 waits"), "{out:?}");
        assert_eq!(out.details["blockers"][0]["pid"], 10);
        let quiet = blocking(&config, &[]);
        assert_eq!(quiet.status(), Status::Ok);
    }

    #[test]
    fn a_blocker_without_query_text_is_listed_as_unavailable() {
        let config = ChecksConfig::default();
        let out = blocking(
            &config,
            &[
                waiter(10, vec![], 0.0, super::super::rows::QUERY_UNAVAILABLE),
                waiter(11, vec![10], 0.5, "SELECT 1"),
            ],
        );
        assert_eq!(
            out.details["blockers"][0]["query"],
            "(query text unavailable)"
        );
    }

    #[test]
    fn new_deadlocks_warn_and_a_counter_going_backwards_is_not_negative() {
        let mut check = Locks::default();
        let mut out = Outcome::new("");
        check.deadlocks(&counts(&[("app", 5.0)]), &mut out);
        assert_eq!(out.status(), Status::Ok, "the first cycle has no baseline");
        let mut out = Outcome::new("");
        check.deadlocks(&counts(&[("app", 7.0), ("new", 3.0)]), &mut out);
        assert_eq!(out.status(), Status::Warning, "{out:?}");
        assert_eq!(out.details["deadlocks_since_previous_cycle"], 2.0);
        // pg_stat_reset(): the counter restarts at 0.
        let mut out = Outcome::new("");
        check.deadlocks(&counts(&[("app", 0.0), ("new", 3.0)]), &mut out);
        assert_eq!(out.status(), Status::Ok, "{out:?}");
        assert_eq!(out.details["deadlocks_since_previous_cycle"], 0.0);
        let mut out = Outcome::new("");
        check.deadlocks(&counts(&[("app", 1.0), ("new", 3.0)]), &mut out);
        assert_eq!(out.details["deadlocks_since_previous_cycle"], 1.0);
    }
}
