//! long_queries: active queries and open transactions running longer than
//! their thresholds, and sessions idle in a transaction (which hold locks and
//! stop vacuum) longer than theirs. Only sessions of the target's database
//! count: a target is a database, and another database on the same server
//! is another target's business. Metrics carry counts and the longest
//! duration; who, where and a truncated query text go to the details only.
//! The xmin horizon and prepared transactions ([`super::horizon`]) are
//! judged here too: what holds back vacuum is most often a transaction.

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::json;

use super::horizon;
use super::metric::{List, Metric, Spec, Text};
use super::rows::{col, fetch, fetch_one, query_text};
use super::{Check, ChecksConfig, Context, Outcome, at_least};
use crate::config::Duration;

const NAME: &str = "long_queries";

const LONG_QUERIES: Metric = Metric::gauge(
    "long_queries",
    "Active queries running longer than query_warning.",
    &[],
)
.per_database();
const LONG_QUERY_MAX: Metric = Metric::gauge(
    "long_query_max_seconds",
    "The longest running active query.",
    &[],
)
.per_database();
const LONG_TRANSACTIONS: Metric = Metric::gauge(
    "long_transactions",
    "Transactions open longer than transaction_warning.",
    &[],
)
.per_database();
const LONG_TRANSACTION_MAX: Metric = Metric::gauge(
    "long_transaction_max_seconds",
    "The longest open transaction.",
    &[],
)
.per_database();
const IDLE_IN_TX: Metric = Metric::gauge(
    "idle_in_transaction_sessions",
    "Sessions idle in a transaction longer than idle_in_transaction_warning.",
    &[],
)
.per_database();
const IDLE_IN_TX_MAX: Metric = Metric::gauge(
    "idle_in_transaction_max_seconds",
    "The longest idle-in-transaction session.",
    &[],
)
.per_database();

/// This check and every metric it may export.
pub static SPEC: Spec = Spec {
    name: Text::Borrowed(NAME),
    own_interval: true,
    metrics: List::Static(&[
        &LONG_QUERIES,
        &LONG_QUERY_MAX,
        &LONG_TRANSACTIONS,
        &LONG_TRANSACTION_MAX,
        &IDLE_IN_TX,
        &IDLE_IN_TX_MAX,
        &horizon::HORIZON_AGE,
        &horizon::PREPARED,
        &horizon::PREPARED_MAX,
    ]),
};

/// Client sessions inside a transaction; bounded by max_connections.
const SESSIONS_SQL: &str = "SELECT pid, coalesce(usename::text, ''), coalesce(datname::text, ''), \
     coalesce(state, ''), \
     coalesce(extract(epoch FROM clock_timestamp() - query_start), 0)::float8, \
     coalesce(extract(epoch FROM clock_timestamp() - xact_start), 0)::float8, \
     coalesce(extract(epoch FROM clock_timestamp() - state_change), 0)::float8, \
     left(query, 200) \
     FROM pg_stat_activity \
     WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() \
       AND datname = current_database() AND xact_start IS NOT NULL";

#[derive(Debug)]
struct Session {
    pid: i32,
    user: String,
    database: String,
    state: String,
    query_seconds: f64,
    xact_seconds: f64,
    state_seconds: f64,
    query: String,
}

pub struct LongQueries;

impl Check for LongQueries {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }

    fn queries(&self, config: &ChecksConfig) -> Vec<String> {
        vec![
            SESSIONS_SQL.into(),
            horizon::holders_sql(config.top_n()),
            horizon::PREPARED_SQL.into(),
        ]
    }

    fn run<'a>(&'a mut self, ctx: &'a Context<'_>) -> BoxFuture<'a, Result<Outcome, String>> {
        async move {
            let session = ctx.session().await?;
            let sessions = fetch(&session, NAME, SESSIONS_SQL, |r| {
                Ok(Session {
                    pid: col(r, 0)?,
                    user: col(r, 1)?,
                    database: col(r, 2)?,
                    state: col(r, 3)?,
                    query_seconds: col(r, 4)?,
                    xact_seconds: col(r, 5)?,
                    state_seconds: col(r, 6)?,
                    query: query_text(r, 7)?,
                })
            })
            .await?;
            let holders = fetch(
                &session,
                NAME,
                &horizon::holders_sql(ctx.top_n()),
                horizon::holder,
            )
            .await?;
            let prepared =
                fetch_one(&session, NAME, horizon::PREPARED_SQL, horizon::prepared).await?;
            session.finish().await;
            let mut out = evaluate(ctx.config, &sessions);
            horizon::evaluate(ctx.config, &holders, prepared, &mut out);
            Ok(out)
        }
        .boxed()
    }
}

/// Sessions at or over `warning` by `seconds`, longest first.
struct Over<'s> {
    sessions: Vec<&'s Session>,
    longest: f64,
}

fn over<'s>(
    all: &'s [Session],
    keep: impl Fn(&Session) -> bool,
    seconds: impl Fn(&Session) -> f64,
    warning: Duration,
) -> Over<'s> {
    let candidates: Vec<&Session> = all.iter().filter(|s| keep(s)).collect();
    let longest = candidates.iter().map(|s| seconds(s)).fold(0.0, f64::max);
    let mut sessions: Vec<&Session> = candidates
        .into_iter()
        .filter(|s| seconds(s) >= warning.get().as_secs_f64())
        .collect();
    sessions.sort_by(|a, b| seconds(b).total_cmp(&seconds(a)));
    Over { sessions, longest }
}

fn evaluate(config: &ChecksConfig, sessions: &[Session]) -> Outcome {
    let limits = &config.long_queries;
    let is_active = |s: &Session| s.state == "active";
    let is_idle_tx = |s: &Session| s.state.starts_with("idle in transaction");
    let queries = over(
        sessions,
        is_active,
        |s| s.query_seconds,
        limits.query_warning,
    );
    let transactions = over(
        sessions,
        |_| true,
        |s| s.xact_seconds,
        limits.transaction_warning,
    );
    let idle = over(
        sessions,
        is_idle_tx,
        |s| s.state_seconds,
        limits.idle_in_transaction_warning,
    );
    let mut out = Outcome::new(format!(
        "{} long queries (longest {:.0} s), {} long transactions, {} idle in transaction",
        queries.sessions.len(),
        queries.longest,
        transactions.sessions.len(),
        idle.sessions.len()
    ));
    out.set(&LONG_QUERIES, &[], queries.sessions.len() as f64);
    out.set(&LONG_QUERY_MAX, &[], queries.longest);
    out.set(&LONG_TRANSACTIONS, &[], transactions.sessions.len() as f64);
    out.set(&LONG_TRANSACTION_MAX, &[], transactions.longest);
    out.set(&IDLE_IN_TX, &[], idle.sessions.len() as f64);
    out.set(&IDLE_IN_TX_MAX, &[], idle.longest);
    let secs = |d: Duration| d.get().as_secs_f64();
    let checks = [
        (
            &queries,
            "query",
            limits.query_warning,
            limits.query_critical,
        ),
        (
            &transactions,
            "transaction",
            limits.transaction_warning,
            limits.transaction_critical,
        ),
        (
            &idle,
            "idle in transaction",
            limits.idle_in_transaction_warning,
            limits.idle_in_transaction_critical,
        ),
    ];
    for (found, what, warning, critical) in checks {
        if found.sessions.is_empty() {
            continue;
        }
        let longest = match what {
            "transaction" => found.sessions[0].xact_seconds,
            "query" => found.sessions[0].query_seconds,
            _ => found.sessions[0].state_seconds,
        };
        out.flag(
            at_least(longest, secs(warning), secs(critical)),
            format!(
                "{} {what} over {warning}, longest {longest:.0} s (pid {})",
                found.sessions.len(),
                found.sessions[0].pid
            ),
        );
    }
    let top = config.top_n();
    out.detail("long_queries", offenders(&queries.sessions, top));
    out.detail("long_transactions", offenders(&transactions.sessions, top));
    out.detail("idle_in_transaction", offenders(&idle.sessions, top));
    out
}

fn offenders(sessions: &[&Session], top: usize) -> Vec<serde_json::Value> {
    sessions
        .iter()
        .take(top)
        .map(|s| {
            json!({"pid": s.pid, "user": s.user, "database": s.database, "state": s.state,
                   "query_seconds": s.query_seconds, "transaction_seconds": s.xact_seconds,
                   "state_seconds": s.state_seconds, "query": s.query})
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Status;

    fn session(pid: i32, state: &str, seconds: f64, query: &str) -> Session {
        Session {
            pid,
            user: "app".into(),
            database: "app".into(),
            state: state.into(),
            query_seconds: seconds,
            xact_seconds: seconds,
            state_seconds: seconds,
            query: query.into(),
        }
    }

    fn value(out: &Outcome, metric: Metric) -> f64 {
        out.measurements
            .iter()
            .find(|m| m.metric == metric.name)
            .map_or(f64::NAN, |m| m.value)
    }

    #[test]
    fn queries_and_idle_transactions_over_their_limits_are_flagged() {
        let config = ChecksConfig::default();
        let limits = &config.long_queries;
        let query_critical = limits.query_critical.get().as_secs_f64();
        let idle_warning = limits.idle_in_transaction_warning.get().as_secs_f64();
        let out = evaluate(
            &config,
            &[
                session(1, "active", query_critical + 1.0, "SELECT pg_sleep(600)"),
                session(
                    2,
                    "idle in transaction",
                    idle_warning + 1.0,
                    "UPDATE t SET a = 1",
                ),
                session(3, "active", 0.1, "SELECT 1"),
            ],
        );
        assert_eq!(out.status(), Status::Critical, "{out:?}");
        assert_eq!(value(&out, LONG_QUERIES), 1.0);
        assert_eq!(value(&out, LONG_QUERY_MAX), query_critical + 1.0);
        assert_eq!(value(&out, IDLE_IN_TX), 1.0);
        assert_eq!(out.details["long_queries"][0]["pid"], 1);
        assert_eq!(out.details["idle_in_transaction"][0]["pid"], 2);
        let quiet = evaluate(&config, &[session(3, "active", 0.1, "SELECT 1")]);
        assert_eq!(quiet.status(), Status::Ok, "{quiet:?}");
        // The longest transaction is exported below its threshold too.
        assert_eq!(value(&quiet, LONG_TRANSACTION_MAX), 0.1);
        assert_eq!(value(&quiet, LONG_TRANSACTIONS), 0.0);
    }

    #[test]
    fn a_session_without_query_text_is_still_counted_and_shown_as_unavailable() {
        let config = ChecksConfig::default();
        let seconds = config.long_queries.query_critical.get().as_secs_f64() + 1.0;
        let out = evaluate(
            &config,
            &[session(
                7,
                "active",
                seconds,
                super::super::rows::QUERY_UNAVAILABLE,
            )],
        );
        assert_eq!(out.status(), Status::Critical);
        assert_eq!(
            out.details["long_queries"][0]["query"],
            "(query text unavailable)"
        );
    }
}
