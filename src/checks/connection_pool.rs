//! connection_pool: pgwarden's own pool (deadpool's status as the cycle
//! began: capacity, idle, in use, waiting) and the server's client
//! connections by state against `max_connections` minus the reserved slots.
//!
//! The pool part needs no connection, so an exhausted pool is still
//! reported as such rather than as "could not connect".

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::json;

use super::metric::{List, Metric, Spec, Text};
use super::rows::{col, fetch, fetch_one};
use super::{Check, ChecksConfig, Context, Outcome, at_least};

const NAME: &str = "connection_pool";

const POOL_MAX: Metric = Metric::gauge(
    "pool_max_size",
    "pgwarden's pool capacity (pool_size + max_overflow).",
    &[],
);
const POOL_CONNECTIONS: Metric = Metric::gauge(
    "pool_connections",
    "pgwarden's pooled connections by state (idle, in_use).",
    &["state"],
);
const POOL_WAITING: Metric = Metric::gauge(
    "pool_waiting",
    "Callers waiting for a pooled connection.",
    &[],
);
const SERVER_CONNECTIONS: Metric = Metric::gauge(
    "server_connections",
    "Server client backends by pg_stat_activity state.",
    &["state"],
);
const SERVER_PGWARDEN: Metric = Metric::gauge(
    "server_connections_pgwarden",
    "pgwarden's own client backends on the server (application_name pgwarden), left out of server_connections.",
    &[],
);
const SERVER_MAX: Metric = Metric::gauge("server_max_connections", "max_connections.", &[]);
const SERVER_RESERVED: Metric = Metric::gauge(
    "server_reserved_connections",
    "Slots of max_connections kept for superusers (and pg_use_reserved_connections from 16).",
    &[],
);
const USAGE: Metric = Metric::gauge(
    "server_connections_usage_ratio",
    "Client connections / (max_connections - reserved), 0-1.",
    &[],
);

/// This check and every metric it may export.
pub static SPEC: Spec = Spec {
    name: Text::Borrowed(NAME),
    own_interval: true,
    metrics: List::Static(&[
        &POOL_MAX,
        &POOL_CONNECTIONS,
        &POOL_WAITING,
        &SERVER_CONNECTIONS,
        &SERVER_PGWARDEN,
        &SERVER_MAX,
        &SERVER_RESERVED,
        &USAGE,
    ]),
};

/// Every state is exported (0 when absent) so the series set never changes.
const STATES: [&str; 6] = [
    "active",
    "idle",
    "idle_in_transaction",
    "idle_in_transaction_aborted",
    "fastpath_function_call",
    "disabled",
];

/// pgwarden's own sessions are told apart by the `application_name` its
/// pool sets.
fn server_sql() -> String {
    format!(
        "SELECT coalesce(replace(replace(replace(state, ' (aborted)', '_aborted'), \
         ' ', '_'), '(', ''), 'unknown'), \
         application_name IS NOT DISTINCT FROM '{}', count(*)::int8 \
         FROM pg_stat_activity WHERE backend_type = 'client backend' GROUP BY 1, 2",
        crate::pool::APPLICATION_NAME
    )
}
/// `reserved_connections` exists from PostgreSQL 16 (NULL before).
const LIMITS_SQL: &str = "SELECT current_setting('max_connections')::int8, \
     current_setting('superuser_reserved_connections')::int8 \
       + coalesce(current_setting('reserved_connections', true)::int8, 0)";

pub struct ConnectionPool;

impl Check for ConnectionPool {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }

    fn queries(&self, _: &ChecksConfig) -> Vec<String> {
        vec![server_sql(), LIMITS_SQL.into()]
    }

    fn run<'a>(&'a mut self, ctx: &'a Context<'_>) -> BoxFuture<'a, Result<Outcome, String>> {
        async move {
            let mut out = pool(ctx);
            if let Err(e) = server(ctx, &mut out).await {
                // A busy pool explains the failure and is the verdict; an
                // idle pool that cannot reach the server is an error.
                if out.status() == crate::report::Status::Ok {
                    out.flag(
                        crate::report::Status::Error,
                        format!("server connections: {e}"),
                    );
                } else {
                    out.detail("server_error", e);
                }
            }
            Ok(out)
        }
        .boxed()
    }
}

fn pool(ctx: &Context<'_>) -> Outcome {
    let status = ctx.pool_status;
    let in_use = status.size.saturating_sub(status.available);
    let idle = status.available;
    let ratio = in_use as f64 / status.max_size.max(1) as f64;
    let mut out = Outcome::new(format!(
        "pool {in_use}/{} in use, {} waiting",
        status.max_size, status.waiting
    ));
    out.set(&POOL_MAX, &[], status.max_size as f64);
    out.set(&POOL_CONNECTIONS, &["idle"], idle as f64);
    out.set(&POOL_CONNECTIONS, &["in_use"], in_use as f64);
    out.set(&POOL_WAITING, &[], status.waiting as f64);
    let limits = &ctx.config.connection_pool;
    out.flag(
        at_least(ratio, limits.warning.get(), limits.critical.get()),
        format!("pgwarden's pool is {:.0}% in use", ratio * 100.0),
    );
    if status.waiting > 0 {
        out.flag(
            crate::report::Status::Warning,
            format!("{} callers wait for a pooled connection", status.waiting),
        );
    }
    out.detail(
        "pool",
        json!({"max_size": status.max_size, "size": status.size, "idle": idle,
               "in_use": in_use, "waiting": status.waiting}),
    );
    out
}

/// Client backends in one state, pgwarden's own (`application_name`) or not.
#[derive(Debug)]
struct StateCount {
    state: String,
    pgwarden: bool,
    count: i64,
}

/// What the server answered: connections by state, max_connections, reserved slots.
#[derive(Debug)]
struct Server {
    counts: Vec<StateCount>,
    max: i64,
    reserved: i64,
}

async fn server(ctx: &Context<'_>, out: &mut Outcome) -> Result<(), String> {
    let session = ctx.session().await?;
    let counts = fetch(&session, NAME, &server_sql(), |r| {
        Ok(StateCount {
            state: col(r, 0)?,
            pgwarden: col(r, 1)?,
            count: col(r, 2)?,
        })
    })
    .await?;
    let (max, reserved) =
        fetch_one(&session, NAME, LIMITS_SQL, |r| Ok((col(r, 0)?, col(r, 1)?))).await?;
    session.finish().await;
    let server = Server {
        counts,
        max,
        reserved,
    };
    evaluate_server(ctx.config, &server, out);
    out.set_headline(format!("{}, {}", out.headline, pool_headline(ctx)));
    Ok(())
}

/// The per-state counts leave pgwarden's own sessions out (they are the
/// monitor, not the application); the usage ratio counts every slot taken.
fn evaluate_server(config: &ChecksConfig, server: &Server, out: &mut Outcome) {
    let Server {
        counts,
        max,
        reserved,
    } = server;
    let total: i64 = counts.iter().map(|c| c.count).sum();
    let ours: i64 = counts.iter().filter(|c| c.pgwarden).map(|c| c.count).sum();
    for state in STATES {
        let n: i64 = counts
            .iter()
            .filter(|c| !c.pgwarden && c.state == state)
            .map(|c| c.count)
            .sum();
        out.set(&SERVER_CONNECTIONS, &[state], n as f64);
    }
    out.set(&SERVER_PGWARDEN, &[], ours as f64);
    let usable = (max - reserved).max(1);
    let ratio = total as f64 / usable as f64;
    out.set(&SERVER_MAX, &[], *max as f64);
    out.set(&SERVER_RESERVED, &[], *reserved as f64);
    out.set(&USAGE, &[], ratio);
    let limits = &config.connection_pool;
    out.flag(
        at_least(ratio, limits.warning.get(), limits.critical.get()),
        format!("server connections {total}/{usable} in use"),
    );
    out.set_headline(format!(
        "server {total}/{usable} ({:.0}%, {ours} pgwarden's)",
        ratio * 100.0
    ));
    out.detail(
        "server",
        json!({"connections": total, "pgwarden_connections": ours,
               "max_connections": max, "reserved": reserved}),
    );
}

fn pool_headline(ctx: &Context<'_>) -> String {
    let s = ctx.pool_status;
    format!(
        "pool {}/{} in use",
        s.size.saturating_sub(s.available),
        s.max_size
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Status;

    fn count(state: &str, pgwarden: bool, count: i64) -> StateCount {
        StateCount {
            state: state.into(),
            pgwarden,
            count,
        }
    }

    fn value(out: &Outcome, metric: Metric, state: Option<&str>) -> f64 {
        out.measurements
            .iter()
            .find(|m| m.metric == metric.name && state.is_none_or(|s| m.labels[0].1 == s))
            .map_or(f64::NAN, |m| m.value)
    }

    #[test]
    fn pgwarden_sessions_are_left_out_of_the_states_but_count_in_the_ratio() {
        let config = ChecksConfig::default();
        let server = Server {
            counts: vec![
                count("active", false, 1),
                count("active", true, 2),
                count("idle_in_transaction", true, 4),
                count("idle", false, 3),
            ],
            max: 13,
            reserved: 3,
        };
        let mut out = Outcome::new("");
        evaluate_server(&config, &server, &mut out);
        assert_eq!(value(&out, SERVER_CONNECTIONS, Some("active")), 1.0);
        assert_eq!(value(&out, SERVER_CONNECTIONS, Some("idle")), 3.0);
        assert_eq!(
            value(&out, SERVER_CONNECTIONS, Some("idle_in_transaction")),
            0.0
        );
        assert_eq!(value(&out, SERVER_CONNECTIONS, Some("disabled")), 0.0);
        assert_eq!(value(&out, SERVER_PGWARDEN, None), 6.0);
        assert_eq!(value(&out, USAGE, None), 1.0);
        assert_eq!(out.status(), Status::Critical, "{out:?}");
        assert_eq!(out.headline, "server 10/10 (100%, 6 pgwarden's)");
    }

    #[test]
    fn a_server_below_the_ratio_is_ok() {
        let config = ChecksConfig::default();
        let server = Server {
            counts: vec![count("idle", false, 5)],
            max: 100,
            reserved: 3,
        };
        let mut out = Outcome::new("");
        evaluate_server(&config, &server, &mut out);
        assert_eq!(out.status(), Status::Ok, "{out:?}");
        assert_eq!(value(&out, SERVER_PGWARDEN, None), 0.0);
    }
}
