//! connectivity: get a connection from pgwarden's pool, run a probe query,
//! and name the failure: refused, authentication failed, timed out... Its
//! probe also decides whether the target counts as up.
//!
//! The probe goes through the pool (so pgwarden never holds more connections
//! than `pool_size + max_overflow`, and a server that restarted is seen at
//! once: its dead pooled connections are discarded and a new one is made).
//! Only when the pool is exhausted does it connect beside it (through the
//! pool's gate, the one extra attempt it allows), because an exhausted pool
//! must not make a healthy server look down.

use futures::FutureExt;
use futures::future::BoxFuture;

use super::metric::{List, Metric, Spec, Text};
use super::{Check, ChecksConfig, Context, Outcome, at_least};
use crate::report::Status;

const LATENCY: Metric = Metric::gauge(
    "connect_latency_seconds",
    "Getting a connection from the pool (connecting when none is idle) + one round trip.",
    &[],
)
.in_every_unit();
const IN_RECOVERY: Metric = Metric::gauge("in_recovery", "1 on a standby.", &[]);
const VERSION_NUM: Metric = Metric::gauge(
    "server_version_num",
    "server_version_num, e.g. 150018.",
    &[],
);

/// This check and every metric it may export.
pub static SPEC: Spec = Spec {
    name: Text::Borrowed("connectivity"),
    // It runs every cycle: it is how a cycle learns whether the target is up.
    own_interval: false,
    metrics: List::Static(&[&LATENCY, &IN_RECOVERY, &VERSION_NUM]),
};

/// What the connect step learned.
#[derive(Clone, Debug, Default)]
pub struct ServerInfo {
    pub reachable: bool,
    /// "reachable: PostgreSQL 15.8, primary" or why not.
    pub message: String,
    pub latency_seconds: f64,
    pub version: String,
    pub version_num: i64,
    pub in_recovery: bool,
}

pub async fn probe(target: &crate::pool::Target) -> ServerInfo {
    let status = target.pool.status();
    let exhausted = status.available == 0 && status.size >= status.max_size;
    let r = if exhausted {
        crate::pool::probe_beside_pool(&target.pool, &target.config).await
    } else {
        crate::pool::probe_pool(&target.pool, &target.config).await
    };
    let version = r.server_version.unwrap_or_default();
    ServerInfo {
        reachable: r.reachable,
        message: r.message,
        latency_seconds: r.latency_seconds,
        version_num: version_num(&version),
        version,
        in_recovery: r.in_recovery.unwrap_or(false),
    }
}

/// `"15.8 (Debian 15.8-1)"` → 150008 (the `server_version_num` scheme since 10).
fn version_num(version: &str) -> i64 {
    let mut parts = version
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<i64>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    major * 10_000 + minor
}

pub struct Connectivity;

impl Check for Connectivity {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }

    fn queries(&self, _: &ChecksConfig) -> Vec<String> {
        vec!["SELECT current_setting('server_version'), pg_is_in_recovery()".into()]
    }

    fn run<'a>(&'a mut self, ctx: &'a Context<'_>) -> BoxFuture<'a, Result<Outcome, String>> {
        async move { Ok(evaluate(&ctx.server, ctx.config)) }.boxed()
    }
}

fn evaluate(server: &ServerInfo, config: &ChecksConfig) -> Outcome {
    let mut out = Outcome::new(format!("{:.0} ms", server.latency_seconds * 1000.0));
    out.set(&LATENCY, &[], server.latency_seconds);
    if !server.reachable {
        out.set_headline("unreachable");
        out.flag(Status::Critical, server.message.clone());
        return out;
    }
    out.set(&IN_RECOVERY, &[], f64::from(server.in_recovery as u8));
    out.set(&VERSION_NUM, &[], server.version_num as f64);
    let role = if server.in_recovery {
        "standby"
    } else {
        "primary"
    };
    out.set_headline(format!(
        "{:.0} ms, PostgreSQL {}, {role}",
        server.latency_seconds * 1000.0,
        server.version.split_whitespace().next().unwrap_or("?")
    ));
    let limits = &config.connectivity;
    out.flag(
        at_least(
            server.latency_seconds,
            limits.latency_warning.get().as_secs_f64(),
            limits.latency_critical.get().as_secs_f64(),
        ),
        format!(
            "latency over {} / {}",
            limits.latency_warning, limits.latency_critical
        ),
    );
    out.detail("version", &server.version);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn version_numbers_follow_server_version_num() {
        assert_eq!(super::version_num("15.8 (Debian 15.8-1.pgdg120+1)"), 150008);
        assert_eq!(super::version_num("16.2"), 160002);
    }
}

#[cfg(test)]
mod evaluation {
    use super::*;

    fn server(reachable: bool, latency_seconds: f64) -> ServerInfo {
        ServerInfo {
            reachable,
            message: "connection refused; is the server running?".into(),
            latency_seconds,
            version: "15.8 (Debian)".into(),
            version_num: 150008,
            in_recovery: false,
        }
    }

    #[test]
    fn latency_is_judged_against_the_limits() {
        let config = ChecksConfig::default();
        let ok = evaluate(&server(true, 0.01), &config);
        assert_eq!(ok.status(), Status::Ok, "{ok:?}");
        assert_eq!(ok.headline, "10 ms, PostgreSQL 15.8, primary");
        let slow = config.connectivity.latency_critical.get().as_secs_f64() + 0.5;
        assert_eq!(
            evaluate(&server(true, slow), &config).status(),
            Status::Critical
        );
    }

    #[test]
    fn an_unreachable_server_is_critical_with_the_reason() {
        let out = evaluate(&server(false, 0.0), &ChecksConfig::default());
        assert_eq!(out.status(), Status::Critical);
        assert_eq!(out.headline, "unreachable");
        assert!(out.problems[0].contains("connection refused"), "{out:?}");
        // No version or recovery gauges for a server that did not answer.
        assert_eq!(out.measurements.len(), 1);
    }
}
