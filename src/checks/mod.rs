//! The ten health checks, shaped like postgres_exporter's `collector/`:
//! one file per check holding its SQL, its metric names and help texts, and
//! a small evaluation that turns rows and thresholds into a [`Status`].
//!
//! All of them sit behind the [`Check`] trait and are registered in
//! [`registry`]; [`Checker`] runs one cycle of them against a target. A cycle
//! runs all checks concurrently: the connectivity check on a fresh
//! connection (its probe also decides whether the target is up), every other
//! check on its own pooled connection inside a read-only transaction with its
//! own `statement_timeout`/`lock_timeout` ([`session`]), so one check stuck
//! behind a lock reports `timed out` while the rest finish, and the cycle
//! takes as long as its slowest check, not the sum. A check keeps between cycles whatever its
//! "since the last cycle" numbers need (cache hit deltas, growth,
//! deadlocks), which is why a [`Checker`] is long-lived in the daemon.

mod archive;
mod bloat;
mod cache_hit_ratio;
pub mod config;
mod connection_pool;
mod connectivity;
mod custom;
mod disk_usage;
mod horizon;
mod indexes;
mod locks;
mod long_queries;
pub mod metric;
mod performance;
mod replication;
pub mod rows;
mod server_state;
mod session;
mod table_integrity;

use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;

pub use self::config::*;
pub use self::connectivity::ServerInfo;
pub use self::custom::{CustomCheckConfig, CustomThreshold, Direction};
pub use self::metric::{Metric, Scope, Spec, Unit};
pub use self::session::Session;
use crate::config::TargetConfig;
use crate::report::{CheckResult, Measurement, Status, TargetReport};
use crate::sql::quote_ident;

/// Every check's name and metrics, in display order: the one list the
/// check names, `--check`, `[checks.intervals]` and the metric reference
/// tests are derived from.
pub static SPECS: [&Spec; 10] = [
    &connectivity::SPEC,
    &performance::SPEC,
    &replication::SPEC,
    &disk_usage::SPEC,
    &connection_pool::SPEC,
    &long_queries::SPEC,
    &table_integrity::SPEC,
    &indexes::SPEC,
    &locks::SPEC,
    &cache_hit_ratio::SPEC,
];

/// The check names, in display order; `pgwarden_check_status{check=…}` uses them.
pub static CHECK_NAMES: [&str; SPECS.len()] = {
    let mut names = [""; SPECS.len()];
    let mut i = 0;
    while i < SPECS.len() {
        names[i] = SPECS[i].static_name();
        i += 1;
    }
    names
};

/// The checks that may have their own interval: the keys of `[checks.intervals]`.
pub static INTERVAL_CHECKS: [&str; SPECS.len() - 1] = {
    let mut names = [""; SPECS.len() - 1];
    let (mut i, mut n) = (0, 0);
    while i < SPECS.len() {
        if SPECS[i].own_interval {
            names[n] = SPECS[i].static_name();
            n += 1;
        }
        i += 1;
    }
    assert!(n == names.len(), "exactly one check runs every cycle");
    names
};

/// Every metric a check may export, with the name of its check.
pub fn metrics() -> impl Iterator<Item = (&'static str, &'static Metric)> {
    SPECS
        .iter()
        .flat_map(|spec: &&'static Spec| spec.metrics.iter().map(|m| (spec.static_name(), m)))
}

const CACHE_HIT_RATIO: &str = "cache_hit_ratio";

/// Every check, in [`CHECK_NAMES`] order.
pub fn registry() -> Vec<Box<dyn Check>> {
    vec![
        Box::new(connectivity::Connectivity),
        Box::new(performance::Performance::default()),
        Box::new(replication::Replication::default()),
        Box::new(disk_usage::DiskUsage::default()),
        Box::new(connection_pool::ConnectionPool),
        Box::new(long_queries::LongQueries),
        Box::new(table_integrity::TableIntegrity),
        Box::new(indexes::Indexes),
        Box::new(locks::Locks::default()),
        Box::new(cache_hit_ratio::CacheHitRatio::default()),
    ]
}

/// One health check. `run` may keep state in `self` for the next cycle.
pub trait Check: Send {
    /// Its name and metrics, declared beside its SQL (a custom check's
    /// come from its config entry).
    fn spec(&self) -> &Spec;

    fn name(&self) -> &str {
        &self.spec().name
    }

    /// The catalog queries this check runs on a primary, as sent (the
    /// benchmark times them raw through psql for comparison).
    fn queries(&self, config: &ChecksConfig) -> Vec<String>;

    fn run<'a>(&'a mut self, ctx: &'a Context<'_>) -> BoxFuture<'a, Result<Outcome, String>>;
}

/// What a check gets: the target, its thresholds, what the connect step learned.
pub struct Context<'a> {
    pub target: &'a TargetConfig,
    pub pool: &'a crate::pool::Pool,
    /// pgwarden's own pool as it was when the cycle began.
    pub pool_status: crate::pool::Status,
    pub config: &'a ChecksConfig,
    /// What this cycle's connect probe learned.
    pub server: ServerInfo,
    /// What the checker measures: everything, or its part of a fleet.
    pub unit: Unit,
}

impl Context<'_> {
    /// A pooled connection in a read-only transaction with this check's timeouts.
    pub async fn session(&self) -> Result<Session, String> {
        self.session_timed(self.config.timeout.get()).await
    }

    /// [`Context::session`] with another timeout (a custom check's own,
    /// which validation keeps within `checks.timeout`).
    pub async fn session_timed(&self, timeout: Duration) -> Result<Session, String> {
        Session::open(self.pool, self.target, timeout).await
    }

    pub fn top_n(&self) -> usize {
        self.config.top_n()
    }

    /// Is `metric` measured here? A check that measures in several scopes
    /// skips the queries of the others (and judges nothing from them).
    pub fn wants(&self, metric: &Metric) -> bool {
        self.unit.wants(metric)
    }
}

/// A check's verdict before the runner adds its name and duration.
#[derive(Debug, Default)]
pub struct Outcome {
    status: Option<Status>,
    /// The key number, e.g. `hit ratio 0.993`.
    headline: String,
    problems: Vec<String>,
    pub measurements: Vec<Measurement>,
    pub details: serde_json::Map<String, serde_json::Value>,
}

impl Outcome {
    pub fn new(headline: impl Into<String>) -> Self {
        Self {
            headline: headline.into(),
            ..Self::default()
        }
    }

    /// Raise the status to at least `status`, saying why.
    pub fn flag(&mut self, status: Status, why: impl Into<String>) {
        if status == Status::Ok {
            return;
        }
        self.status = Some(self.status().max(status));
        self.problems
            .push(format!("{}: {}", status.as_str(), why.into()));
    }

    pub fn status(&self) -> Status {
        self.status.unwrap_or(Status::Ok)
    }

    pub fn set_headline(&mut self, headline: impl Into<String>) {
        self.headline = headline.into();
    }

    /// A sample of `metric` with `labels` (values of its declared label names).
    pub fn set(&mut self, metric: &Metric, labels: &[&str], value: f64) {
        self.measurements.push(metric.sample(labels, value));
    }

    pub fn detail(&mut self, key: &str, value: impl serde::Serialize) {
        let value = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
        self.details.insert(key.to_string(), value);
    }

    fn into_result(self, check: &str, duration: Duration) -> CheckResult {
        let status = self.status();
        let mut summary = self.headline;
        if !self.problems.is_empty() {
            summary = format!("{summary} ({})", self.problems.join("; "));
        }
        CheckResult {
            check: check.to_string(),
            status,
            summary,
            duration_seconds: duration.as_secs_f64(),
            measurements: self.measurements,
            details: if self.details.is_empty() {
                serde_json::Value::Null
            } else {
                serde_json::Value::Object(self.details)
            },
        }
    }
}

/// Runs check cycles against one target, keeping between cycles what the
/// interval-based measurements (cache hit ratio now, growth, deadlocks) need,
/// and each check's last result for `[checks.intervals]`.
pub struct Checker {
    target: crate::pool::Target,
    config: ChecksConfig,
    checks: Vec<Box<dyn Check>>,
    /// Per check (registry order): when it last ran against a reachable
    /// target, and what it found.
    last: Vec<Option<(Instant, CheckResult)>>,
    unit: Unit,
}

impl Checker {
    pub fn new(target: crate::pool::Target, config: ChecksConfig) -> Self {
        Self::for_unit(target, config, Unit::Whole)
    }

    /// A checker of one part of a fleet: only the checks that measure
    /// something in `unit` (connectivity always: it decides `up`).
    pub fn for_unit(target: crate::pool::Target, config: ChecksConfig, unit: Unit) -> Self {
        let checks = checks_for(&config, unit);
        Self {
            last: vec![None; checks.len()],
            target,
            config,
            checks,
            unit,
        }
    }

    pub fn target(&self) -> &crate::pool::Target {
        &self.target
    }

    pub fn config(&self) -> &ChecksConfig {
        &self.config
    }

    /// One cycle of all checks that are due: a check with its own interval
    /// (`[checks.intervals]`) that ran more recently repeats its last result.
    /// The first cycle of a checker runs them all.
    pub async fn run_cycle(&mut self) -> TargetReport {
        self.run_selected(None).await
    }

    /// A one-shot run (`pgwarden health`) of the check `only` (all when
    /// `None`): with no previous cycle, the cache hit ratio would be judged
    /// since stats reset, which says ok at 0.93 while the cache thrashes, so
    /// it is first sampled and measured again after
    /// `checks.cache_hit_ratio.sample_window`.
    pub async fn run_once(&mut self, only: Option<&str>) -> TargetReport {
        let window = self.config.cache_hit_ratio.sample_window.get();
        if !window.is_zero() && only.is_none_or(|name| name == CACHE_HIT_RATIO) {
            let baseline = self.run_selected(Some(CACHE_HIT_RATIO)).await;
            if baseline.up {
                tokio::time::sleep(window).await;
            }
            // The sample is only the baseline (kept in the check itself): its
            // result must not be repeated under `[checks.intervals]`.
            self.last.iter_mut().for_each(|last| *last = None);
        }
        self.run_selected(only).await
    }

    /// One cycle of the check named `only` (all due ones when `None`).
    /// Unknown names run nothing; callers validate them with [`check_name`].
    pub async fn run_selected(&mut self, only: Option<&str>) -> TargetReport {
        let started = Instant::now();
        let Self {
            target,
            config,
            checks,
            last,
            unit,
        } = self;
        let pool_status = target.pool.status();
        let server = connectivity::probe(target).await;
        let ctx = Context {
            target: &target.config,
            pool: &target.pool,
            pool_status,
            config,
            server: server.clone(),
            unit: *unit,
        };
        let selected = checks
            .iter_mut()
            .zip(last.iter_mut())
            .filter(|(c, _)| only.is_none_or(|name| name == c.name()));
        let results = futures::future::join_all(selected.map(|(check, last)| {
            let ctx = &ctx;
            async move {
                // Unreachable: their errors would only repeat the probe's, after
                // waiting out the pool timeout each. What they found before the
                // outage may no longer hold (a failover), so it is forgotten.
                if check.name() != "connectivity" && !ctx.server.reachable {
                    *last = None;
                    return not_run(check.name(), 0.0);
                }
                if let Some((_, result)) = last.as_ref().filter(|(ran, _)| {
                    only.is_none() && !due(ran.elapsed(), ctx.config, check.name())
                }) {
                    return result.clone();
                }
                let result = run_one(check.as_mut(), ctx).await;
                // Timed from the cycle's start, as cycles are; an error is
                // retried next cycle rather than served for a whole interval.
                *last = (result.status != Status::Error).then(|| (started, result.clone()));
                result
            }
        }))
        .await;
        TargetReport {
            target: target.name().to_string(),
            database: None,
            up: server.reachable,
            error: (!server.reachable).then(|| server.message.clone()),
            finished_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            duration_seconds: started.elapsed().as_secs_f64(),
            checks: results,
        }
    }
}

/// The checks a checker of `unit` runs: the built-in and custom ones that
/// measure something there, and connectivity always (it decides `up`).
pub fn checks_for(config: &ChecksConfig, unit: Unit) -> Vec<Box<dyn Check>> {
    (registry().into_iter())
        .chain(custom::checks(config))
        .filter(|c| c.name() == "connectivity" || unit.runs(c.spec()))
        .collect()
}

/// Is a check that ran `since` ago due again? Always, unless it has its own
/// interval. Cycles start up to a tick late, so "due" allows half a cycle:
/// with a 15 s cycle, a 60 s check runs on every fourth cycle, not every fifth.
fn due(since: Duration, config: &ChecksConfig, check: &str) -> bool {
    config
        .own_interval(check)
        .is_none_or(|own| since + config.interval.get() / 2 >= own.get())
}

/// The known check name `name` (built in, or `custom_<name>` of a
/// `[[checks.custom]]` entry of `config`), or an error listing them.
pub fn check_name(name: &str, config: &ChecksConfig) -> Result<String, String> {
    let known: Vec<String> = CHECK_NAMES
        .iter()
        .map(|s| s.to_string())
        .chain(config.custom.iter().map(CustomCheckConfig::check_name))
        .collect();
    if known.iter().any(|k| k == name) {
        return Ok(name.to_string());
    }
    let hint = crate::config::closest(name, &known)
        .map(|k| format!(" Did you mean `{k}`?"))
        .unwrap_or_default();
    Err(format!(
        "unknown check `{name}`; the checks are: {}.{hint}",
        known.join(", ")
    ))
}

/// Run one check, bounded: the server-side timeouts stop its queries, and
/// this outer bound covers a server that stops answering altogether. A
/// check that panics reports `error` for itself alone; the cycle, the
/// other checks and the collector go on.
async fn run_one(check: &mut dyn Check, ctx: &Context<'_>) -> CheckResult {
    let started = Instant::now();
    let name = check.name().to_string();
    // Waiting for a connection (pool_timeout, plus another check's timeout
    // when the pool is smaller than the cycle), then its own queries.
    let timeout = ctx.config.timeout.get();
    let bound = 2 * timeout + ctx.target.pool_timeout.get() + Duration::from_secs(1);
    let running = std::panic::AssertUnwindSafe(async {
        // Tests make one check panic with FAILPOINTS=check.<name>=panic.
        fail::fail_point!(&format!("check.{name}"));
        tokio::time::timeout(bound, check.run(ctx)).await
    });
    let mut outcome = match running.catch_unwind().await {
        Ok(Ok(Ok(outcome))) => outcome,
        Ok(Ok(Err(message))) => failed(message),
        Ok(Err(_)) => failed(format!("timed out after {bound:?}")),
        Err(panic) => {
            let why = panic_message(panic.as_ref());
            tracing::error!(check = %name, "the check panicked: {why}");
            failed(format!(
                "internal error: the check panicked ({why}); the other checks are unaffected; please report this"
            ))
        }
    };
    // A measurement its spec does not declare would escape the README and
    // dashboard tests: caught in every test run.
    debug_assert!(
        outcome
            .measurements
            .iter()
            .all(|m| check.spec().declares(&m.metric)),
        "{name} exports an undeclared metric: {:?}",
        outcome.measurements
    );
    // A fleet exports each series once: from the server's unit or from the database's.
    let spec = check.spec();
    outcome
        .measurements
        .retain(|m| spec.metric(&m.metric).is_none_or(|m| ctx.wants(m)));
    outcome.into_result(&name, started.elapsed())
}

/// The text of a panic payload (`panic!` with a literal or a format).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}

fn failed(message: String) -> Outcome {
    let mut outcome = Outcome::new("");
    outcome.status = Some(Status::Error);
    outcome.headline = message;
    outcome
}

fn not_run(name: &str, seconds: f64) -> CheckResult {
    failed("not run: the database is unreachable".into())
        .into_result(name, Duration::from_secs_f64(seconds))
}

/// The user schemas filter shared by the catalog queries.
const USER_SCHEMAS: &str =
    "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_holds_the_ten_checks_in_order() {
        let checks = registry();
        let names: Vec<&str> = checks.iter().map(|c| c.name()).collect();
        assert_eq!(names, CHECK_NAMES);
    }

    /// The daemon spawns cycles on tokio: the future must be `Send`.
    #[allow(dead_code)]
    fn a_cycle_can_be_spawned(checker: &'static mut Checker) {
        tokio::spawn(checker.run_cycle());
    }

    #[test]
    fn an_unknown_check_name_suggests_the_closest() {
        let err = check_name("lock", &ChecksConfig::default()).unwrap_err();
        assert!(err.contains("Did you mean `locks`?"), "{err}");
    }
}
