//! performance: the latency of a probe query on a pooled connection, and,
//! when pg_stat_statements is installed in the target database, the top-N
//! statements by total execution time. Statements are labelled by rank only:
//! a query text is unbounded and never a label (it is in the details).

use std::time::Instant;

use futures::FutureExt;
use futures::future::BoxFuture;

use super::{Check, ChecksConfig, Context, Labelled, Outcome, Session, at_least, quote_ident};

const PROBE: &str = "probe_latency_seconds";
const PROBE_HELP: &str = "Latency of the performance probe query.";
const AVAILABLE: &str = "statements_available";
const AVAILABLE_HELP: &str = "1 when pg_stat_statements is installed and readable.";
const MEAN: &str = "statement_mean_seconds";
const MEAN_HELP: &str = "Mean execution time of the top-N statements by total time.";
const MAX: &str = "statement_max_seconds";
const MAX_HELP: &str = "Max execution time of the top-N statements by total time.";
const CALLS: &str = "statement_calls";
const CALLS_HELP: &str = "Calls of the top-N statements by total time since stats reset.";

const PROBE_SQL: &str = "SELECT 1";
const EXTENSION_SQL: &str = "SELECT n.nspname FROM pg_extension e \
     JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_stat_statements'";

fn statements_sql(schema: &str, top_n: usize) -> String {
    format!(
        "SELECT calls::float8, (mean_exec_time / 1000)::float8, (max_exec_time / 1000)::float8, \
         left(query, 200), coalesce(queryid::text, '') \
         FROM {}.pg_stat_statements ORDER BY total_exec_time DESC LIMIT {top_n}",
        quote_ident(schema)
    )
}

pub struct Performance;

impl Check for Performance {
    fn name(&self) -> &'static str {
        "performance"
    }

    fn queries(&self, config: &ChecksConfig) -> Vec<String> {
        vec![PROBE_SQL.into(), EXTENSION_SQL.into()]
            .into_iter()
            .chain(std::iter::once(statements_sql("public", config.top_n())))
            .collect()
    }

    fn run<'a>(&'a mut self, ctx: &'a Context<'_>) -> BoxFuture<'a, Result<Outcome, String>> {
        async move {
            let session = ctx.session().await?;
            let started = Instant::now();
            session.query(PROBE_SQL).await?;
            let latency = started.elapsed().as_secs_f64();
            let mut out = Outcome::new(format!("probe {:.1} ms", latency * 1000.0));
            out.gauge(PROBE, PROBE_HELP, latency);
            let limits = &ctx.config.performance;
            out.flag(
                at_least(
                    latency,
                    limits.probe_warning.get().as_secs_f64(),
                    limits.probe_critical.get().as_secs_f64(),
                ),
                format!(
                    "probe latency over {} / {}",
                    limits.probe_warning, limits.probe_critical
                ),
            );
            statements(&session, ctx.top_n(), &mut out).await?;
            session.finish().await;
            Ok(out)
        }
        .boxed()
    }
}

/// The top-N statements, or a note why there are none (never a failure).
async fn statements(session: &Session, top_n: usize, out: &mut Outcome) -> Result<(), String> {
    let schema: Option<String> = session
        .query(EXTENSION_SQL)
        .await?
        .first()
        .map(|r| r.get(0));
    let Some(schema) = schema else {
        out.gauge(AVAILABLE, AVAILABLE_HELP, 0.0);
        out.detail("pg_stat_statements", "not installed in this database");
        return Ok(());
    };
    // Last query of the session: if the library is not preloaded this fails
    // and aborts the transaction, which no later query needs.
    let rows = match session.query(&statements_sql(&schema, top_n)).await {
        Ok(rows) => rows,
        Err(e) => {
            out.gauge(AVAILABLE, AVAILABLE_HELP, 0.0);
            out.detail(
                "pg_stat_statements",
                format!("installed but unreadable: {e}"),
            );
            return Ok(());
        }
    };
    out.gauge(AVAILABLE, AVAILABLE_HELP, 1.0);
    let mut top = Vec::new();
    for (index, row) in rows.iter().enumerate() {
        let rank = (index + 1).to_string();
        let (calls, mean, max): (f64, f64, f64) = (row.get(0), row.get(1), row.get(2));
        out.gauge(MEAN, MEAN_HELP, mean).with("rank", &rank);
        out.gauge(MAX, MAX_HELP, max).with("rank", &rank);
        out.gauge(CALLS, CALLS_HELP, calls).with("rank", &rank);
        top.push(serde_json::json!({
            "rank": index + 1, "calls": calls, "mean_seconds": mean, "max_seconds": max,
            "query": row.get::<_, String>(3), "queryid": row.get::<_, String>(4),
        }));
    }
    out.detail("top_statements", top);
    Ok(())
}
