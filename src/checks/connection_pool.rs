//! connection_pool: pgwarden's own pool (deadpool's status as the cycle
//! began: capacity, idle, in use, waiting) and the server's client
//! connections by state against `max_connections` minus the reserved slots.
//!
//! The pool part needs no connection, so an exhausted pool is still
//! reported as such rather than as "could not connect".

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::json;

use super::{Check, ChecksConfig, Context, Labelled, Outcome, at_least};

const POOL_MAX: &str = "pool_max_size";
const POOL_MAX_HELP: &str = "pgwarden's pool capacity (pool_size + max_overflow).";
const POOL_CONNECTIONS: &str = "pool_connections";
const POOL_CONNECTIONS_HELP: &str = "pgwarden's pooled connections by state (idle, in_use).";
const POOL_WAITING: &str = "pool_waiting";
const POOL_WAITING_HELP: &str = "Callers waiting for a pooled connection.";
const SERVER_CONNECTIONS: &str = "server_connections";
const SERVER_CONNECTIONS_HELP: &str = "Server client backends by pg_stat_activity state.";
const SERVER_MAX: &str = "server_max_connections";
const SERVER_MAX_HELP: &str = "max_connections.";
const SERVER_RESERVED: &str = "server_reserved_connections";
const SERVER_RESERVED_HELP: &str =
    "Slots of max_connections kept for superusers (and pg_use_reserved_connections from 16).";
const USAGE: &str = "server_connections_usage_ratio";
const USAGE_HELP: &str = "Client connections / (max_connections - reserved), 0-1.";

/// Every state is exported (0 when absent) so the series set never changes.
const STATES: [&str; 6] = [
    "active",
    "idle",
    "idle_in_transaction",
    "idle_in_transaction_aborted",
    "fastpath_function_call",
    "disabled",
];

const SERVER_SQL: &str = "SELECT coalesce(replace(replace(replace(state, ' (aborted)', '_aborted'), \
     ' ', '_'), '(', ''), 'unknown'), count(*)::int8 \
     FROM pg_stat_activity WHERE backend_type = 'client backend' GROUP BY 1";
/// `reserved_connections` exists from PostgreSQL 16 (NULL before).
const LIMITS_SQL: &str = "SELECT current_setting('max_connections')::int8, \
     current_setting('superuser_reserved_connections')::int8 \
       + coalesce(current_setting('reserved_connections', true)::int8, 0)";

pub struct ConnectionPool;

impl Check for ConnectionPool {
    fn name(&self) -> &'static str {
        "connection_pool"
    }

    fn queries(&self, _: &ChecksConfig) -> Vec<String> {
        vec![SERVER_SQL.into(), LIMITS_SQL.into()]
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
    out.gauge(POOL_MAX, POOL_MAX_HELP, status.max_size as f64);
    out.gauge(POOL_CONNECTIONS, POOL_CONNECTIONS_HELP, idle as f64)
        .with("state", "idle");
    out.gauge(POOL_CONNECTIONS, POOL_CONNECTIONS_HELP, in_use as f64)
        .with("state", "in_use");
    out.gauge(POOL_WAITING, POOL_WAITING_HELP, status.waiting as f64);
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

async fn server(ctx: &Context<'_>, out: &mut Outcome) -> Result<(), String> {
    let session = ctx.session().await?;
    let by_state = session.query(SERVER_SQL).await?;
    let limits_row = session.query_one(LIMITS_SQL).await?;
    session.finish().await;
    let (max, reserved): (i64, i64) = (limits_row.get(0), limits_row.get(1));
    let counts: Vec<(String, i64)> = by_state.iter().map(|r| (r.get(0), r.get(1))).collect();
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    for state in STATES {
        let n = counts
            .iter()
            .find(|(s, _)| s == state)
            .map_or(0, |(_, n)| *n);
        out.gauge(SERVER_CONNECTIONS, SERVER_CONNECTIONS_HELP, n as f64)
            .with("state", state);
    }
    let usable = (max - reserved).max(1);
    let ratio = total as f64 / usable as f64;
    out.gauge(SERVER_MAX, SERVER_MAX_HELP, max as f64);
    out.gauge(SERVER_RESERVED, SERVER_RESERVED_HELP, reserved as f64);
    out.gauge(USAGE, USAGE_HELP, ratio);
    let limits = &ctx.config.connection_pool;
    out.flag(
        at_least(ratio, limits.warning.get(), limits.critical.get()),
        format!("server connections {total}/{usable} in use"),
    );
    let headline = format!("server {total}/{usable} ({:.0}%)", ratio * 100.0);
    out.detail(
        "server",
        json!({"connections": total, "max_connections": max, "reserved": reserved}),
    );
    out.set_headline(format!("{headline}, {}", pool_headline(ctx)));
    Ok(())
}

fn pool_headline(ctx: &Context<'_>) -> String {
    let s = ctx.pool_status;
    format!(
        "pool {}/{} in use",
        s.size.saturating_sub(s.available),
        s.max_size
    )
}
