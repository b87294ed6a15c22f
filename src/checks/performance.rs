//! performance: the latency of a probe query on a pooled connection, and,
//! when pg_stat_statements is installed in the target database, the top-N
//! statements by total execution time. Statements are labelled by rank only:
//! a query text is unbounded and never a label (it is in the details).

use std::time::Instant;

use futures::FutureExt;
use futures::future::BoxFuture;

use super::metric::{List, Metric, Spec, Text};
use super::rows::{col, fetch, fetch_one, query_text, typed};
use super::server_state;
use super::{Check, ChecksConfig, Context, Outcome, Session, at_least, quote_ident};

const NAME: &str = "performance";

const PROBE: Metric = Metric::gauge(
    "probe_latency_seconds",
    "Latency of the performance probe query.",
    &[],
);
const AVAILABLE: Metric = Metric::gauge(
    "statements_available",
    "1 when pg_stat_statements is installed and readable.",
    &[],
);
const MEAN: Metric = Metric::gauge(
    "statement_mean_seconds",
    "Mean execution time of the top-N statements by total time.",
    &["rank"],
);
const MAX: Metric = Metric::gauge(
    "statement_max_seconds",
    "Max execution time of the top-N statements by total time.",
    &["rank"],
);
const CALLS: Metric = Metric::gauge(
    "statement_calls",
    "Calls of the top-N statements by total time since stats reset.",
    &["rank"],
);

/// This check and every metric it may export.
pub static SPEC: Spec = Spec {
    name: Text::Borrowed(NAME),
    own_interval: true,
    metrics: List::Static(&[
        &PROBE,
        &AVAILABLE,
        &MEAN,
        &MAX,
        &CALLS,
        &server_state::CHECKPOINT_AGE,
        &server_state::REQUESTED,
        &server_state::PENDING_RESTART,
        &server_state::IDENTIFIER_CHANGED,
    ]),
};

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

/// What the server-state measurements compare with next cycle.
#[derive(Default)]
pub struct Performance {
    server: server_state::Watch,
}

impl Check for Performance {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }

    fn queries(&self, config: &ChecksConfig) -> Vec<String> {
        vec![
            PROBE_SQL.into(),
            server_state::sql(150000),
            EXTENSION_SQL.into(),
        ]
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
            let sql = server_state::sql(ctx.server.version_num);
            let server = fetch_one(&session, NAME, &sql, server_state::state).await?;
            let statements = statements(&session, ctx.top_n()).await?;
            session.finish().await;
            let mut out = evaluate(ctx.config, latency, &statements);
            self.server.evaluate(ctx.config, &server, &mut out);
            Ok(out)
        }
        .boxed()
    }
}

/// One of the top-N statements by total time.
#[derive(Debug)]
struct Statement {
    calls: f64,
    mean: f64,
    max: f64,
    /// [`QUERY_UNAVAILABLE`](super::rows::QUERY_UNAVAILABLE) when the server
    /// has no text for it (e.g. the text file was garbage-collected).
    query: String,
    queryid: String,
}

/// What pg_stat_statements gave.
#[derive(Debug)]
enum Statements {
    NotInstalled,
    Unreadable(String),
    Top(Vec<Statement>),
}

/// The top-N statements, or why there are none (never a failure).
async fn statements(session: &Session, top_n: usize) -> Result<Statements, String> {
    let schema: Option<String> = fetch(session, NAME, EXTENSION_SQL, |r| col(r, 0))
        .await?
        .into_iter()
        .next();
    let Some(schema) = schema else {
        return Ok(Statements::NotInstalled);
    };
    // Last query of the session: if the library is not preloaded this fails
    // and aborts the transaction, which no later query needs.
    let sql = statements_sql(&schema, top_n);
    let rows = match session.query(&sql).await {
        Ok(rows) => rows,
        Err(e) => return Ok(Statements::Unreadable(e)),
    };
    let top = typed(NAME, &sql, &rows, |r| {
        Ok(Statement {
            calls: col(r, 0)?,
            mean: col(r, 1)?,
            max: col(r, 2)?,
            query: query_text(r, 3)?,
            queryid: col(r, 4)?,
        })
    })?;
    Ok(Statements::Top(top))
}

fn evaluate(config: &ChecksConfig, latency: f64, statements: &Statements) -> Outcome {
    let mut out = Outcome::new(format!("probe {:.1} ms", latency * 1000.0));
    out.set(&PROBE, &[], latency);
    let limits = &config.performance;
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
    let top = match statements {
        Statements::NotInstalled => {
            out.set(&AVAILABLE, &[], 0.0);
            out.detail("pg_stat_statements", "not installed in this database");
            return out;
        }
        Statements::Unreadable(e) => {
            out.set(&AVAILABLE, &[], 0.0);
            out.detail(
                "pg_stat_statements",
                format!("installed but unreadable: {e}"),
            );
            return out;
        }
        Statements::Top(top) => top,
    };
    out.set(&AVAILABLE, &[], 1.0);
    let mut listed = Vec::new();
    for (index, s) in top.iter().enumerate() {
        let rank = (index + 1).to_string();
        out.set(&MEAN, &[&rank], s.mean);
        out.set(&MAX, &[&rank], s.max);
        out.set(&CALLS, &[&rank], s.calls);
        listed.push(serde_json::json!({
            "rank": index + 1, "calls": s.calls, "mean_seconds": s.mean, "max_seconds": s.max,
            "query": s.query, "queryid": s.queryid,
        }));
    }
    out.detail("top_statements", listed);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Status;

    fn statement(calls: f64, query: &str) -> Statement {
        Statement {
            calls,
            mean: 0.002,
            max: 0.5,
            query: query.into(),
            queryid: "42".into(),
        }
    }

    #[test]
    fn a_slow_probe_is_flagged_against_the_limits() {
        let config = ChecksConfig::default();
        let limits = &config.performance;
        let ok = evaluate(&config, 0.0001, &Statements::NotInstalled);
        assert_eq!(ok.status(), Status::Ok, "{ok:?}");
        let slow = limits.probe_critical.get().as_secs_f64() + 0.1;
        let out = evaluate(&config, slow, &Statements::NotInstalled);
        assert_eq!(out.status(), Status::Critical, "{out:?}");
        let slowish = limits.probe_warning.get().as_secs_f64();
        assert_eq!(
            evaluate(&config, slowish, &Statements::NotInstalled).status(),
            Status::Warning
        );
    }

    #[test]
    fn the_top_statements_are_ranked_and_a_missing_text_is_shown_as_unavailable() {
        let config = ChecksConfig::default();
        let top = Statements::Top(vec![
            statement(10.0, "SELECT 1"),
            statement(3.0, super::super::rows::QUERY_UNAVAILABLE),
        ]);
        let out = evaluate(&config, 0.0001, &top);
        assert_eq!(out.status(), Status::Ok);
        let calls: Vec<(String, f64)> = out
            .measurements
            .iter()
            .filter(|m| m.metric == CALLS.name)
            .map(|m| (m.labels[0].1.clone(), m.value))
            .collect();
        assert_eq!(calls, [("1".into(), 10.0), ("2".into(), 3.0)]);
        let listed = &out.details["top_statements"];
        assert_eq!(listed[1]["query"], "(query text unavailable)");
        assert_eq!(listed[0]["query"], "SELECT 1");
    }

    #[test]
    fn an_unreadable_extension_is_reported_not_failed() {
        let config = ChecksConfig::default();
        let out = evaluate(
            &config,
            0.0001,
            &Statements::Unreadable("must be loaded via shared_preload_libraries".into()),
        );
        assert_eq!(out.status(), Status::Ok);
        let available = out.measurements.iter().find(|m| m.metric == AVAILABLE.name);
        assert_eq!(available.map(|m| m.value), Some(0.0));
        assert!(
            out.details["pg_stat_statements"]
                .as_str()
                .is_some_and(|d| d.contains("shared_preload_libraries"))
        );
    }
}
