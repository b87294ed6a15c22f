//! Background collection: one task per target, each on its own interval.
//!
//! Targets never wait for each other: a target that is down, slow or hanging
//! only delays its own next report. A cycle that overruns its deadline is
//! abandoned and reported as down, so a server that stops answering in the
//! middle of a query (where `statement_timeout` cannot help) still turns
//! `pgwarden_up` to 0.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::state::Shared;
use crate::checks::{Checker, ChecksConfig};
use crate::config::{Config, TargetConfig};
use crate::report::{Status, TargetReport};

/// The running collectors, by target name (and `<name>/fleet` for the
/// databases of a discovery target).
#[derive(Default)]
pub struct Collectors {
    running: BTreeMap<String, Running>,
    budgets: Arc<crate::fleet::Budgets>,
}

/// What a reload that changes it restarts the task for.
type Key = (
    TargetConfig,
    ChecksConfig,
    crate::migrate::MigrationsConfig,
    crate::fleet::FleetConfig,
);

struct Running {
    key: Key,
    task: JoinHandle<()>,
}

/// How a collector reaches its target.
#[derive(Clone)]
pub enum Part {
    /// A plain target: every check, on the target's own pool.
    Whole,
    /// A discovery target's own unit: the server-wide checks, on a pool
    /// that takes its connections from the server's budget and closes them
    /// after each cycle.
    Server(Arc<tokio::sync::Semaphore>),
}

impl Collectors {
    /// Start (or keep, when unchanged) the collectors of every target of
    /// `config` this instance owns (see `fleet.shard`), stopping those of
    /// targets that are gone or changed.
    pub fn apply(&mut self, config: &Arc<Config>, shared: &Arc<Shared>) {
        let mut old = std::mem::take(&mut self.running);
        for target in &config.targets {
            let key: Key = (
                target.clone(),
                config.checks.clone(),
                config.migrations.clone(),
                config.fleet.clone(),
            );
            let name = target.name.to_string();
            let budget = target
                .discover
                .as_ref()
                .map(|_| self.budgets.of(target, &config.fleet));
            if config.fleet.owns(&name) {
                let part = budget.clone().map_or(Part::Whole, Part::Server);
                let (config, target, shared2) = (config.clone(), target.clone(), shared.clone());
                self.keep_or_start(&mut old, name.clone(), &key, shared, move || {
                    collect(
                        config.clone(),
                        target.clone(),
                        part.clone(),
                        shared2.clone(),
                    )
                });
            }
            if let Some(budget) = budget {
                let (config, target, shared2) = (config.clone(), target.clone(), shared.clone());
                self.keep_or_start(&mut old, format!("{name}/fleet"), &key, shared, move || {
                    super::fleet::run(
                        config.clone(),
                        target.clone(),
                        budget.clone(),
                        shared2.clone(),
                    )
                });
            }
        }
        for (_, gone) in old {
            gone.task.abort();
        }
    }

    fn keep_or_start<F, Fut>(
        &mut self,
        old: &mut BTreeMap<String, Running>,
        name: String,
        key: &Key,
        shared: &Arc<Shared>,
        start: F,
    ) where
        F: Fn() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        match old.remove(&name) {
            Some(running) if running.key == *key => {
                self.running.insert(name, running);
            }
            previous => {
                if let Some(previous) = previous {
                    previous.task.abort();
                }
                let task = tokio::spawn(supervise(name.clone(), shared.clone(), start));
                let key = key.clone();
                self.running.insert(name, Running { key, task });
            }
        }
    }

    /// Stop every collector. An in-flight cycle is cancelled: its connection
    /// goes back to (or is dropped with) the pool, and nothing is half-written.
    pub async fn stop(&mut self) {
        for (_, running) in std::mem::take(&mut self.running) {
            running.task.abort();
            let _ = running.task.await;
        }
    }
}

/// How long a collector that died waits before it starts again, so a
/// collector that panics on every cycle does not spin.
const RESTART_DELAY: Duration = Duration::from_secs(1);

/// Run a collector (`start` makes it), starting it again (logged, and
/// counted in `pgwarden_collector_restarts_total`) whenever it dies, so a
/// panic never leaves the target's last report frozen. Aborting the
/// supervisor aborts the collector with it.
async fn supervise<F, Fut>(name: String, shared: Arc<Shared>, start: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    // The restarts of `<target>/fleet` count under the target.
    let target = name.split('/').next().unwrap_or(&name).to_string();
    loop {
        let mut task = AbortOnDrop(tokio::spawn(start()));
        let why = match (&mut task.0).await {
            Err(e) if e.is_panic() => crate::checks::panic_message(e.into_panic().as_ref()),
            Err(_) => return,
            Ok(()) => "it returned".to_string(),
        };
        tracing::error!(
            collector = %name,
            "the collector task died ({why}); starting it again in {RESTART_DELAY:?}"
        );
        shared.record_restart(&target);
        tokio::time::sleep(RESTART_DELAY).await;
    }
}

/// A task handle that aborts its task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How long one cycle may take before it is abandoned.
pub fn cycle_deadline(target: &TargetConfig, checks: &ChecksConfig) -> Duration {
    checks.interval.get() + target.connect_timeout.get() + checks.timeout.get()
}

/// The checker of a target (or of its server-wide part).
pub fn checker(target: &TargetConfig, config: &Config, part: &Part) -> crate::Result<Checker> {
    let checks = config.checks.clone();
    Ok(match part {
        Part::Whole => Checker::new(crate::pool::Target::new(target)?, checks),
        Part::Server(budget) => {
            let size = config.fleet.server_pool_size(target);
            let budget = crate::pool::Budget::new(target, budget.clone())?;
            let pooled = crate::pool::Target::budgeted(target, size, &budget)?;
            Checker::for_unit(pooled, checks, crate::checks::Unit::Server)
        }
    })
}

async fn collect(config: Arc<Config>, target: TargetConfig, part: Part, shared: Arc<Shared>) {
    let name = target.name.to_string();
    let interval = config.checks.interval.get();
    let deadline = cycle_deadline(&target, &config.checks);
    let mut checker = match checker(&target, &config, &part) {
        Ok(checker) => Some(checker),
        Err(e) => {
            tracing::error!(target = %name, "cannot set up the target: {e}");
            None
        }
    };
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut log = ProblemLog::default();
    let mut drift = DriftWatch::new(&config);
    let mut migration_status_known = !target.migrate;
    loop {
        ticker.tick().await;
        // Tests kill the collector with FAILPOINTS=collector=1*panic.
        fail::fail_point!("collector");
        let report = match checker.as_mut() {
            Some(checker) => bounded_cycle(checker, &name, deadline).await,
            None => down(
                &name,
                Instant::now(),
                "the target could not be set up; see the log".into(),
            ),
        };
        log.record(&report);
        let up = report.up;
        shared.publish(report);
        if let (true, Some(checker)) = (up, checker.as_ref()) {
            let (pooled, checks) = (checker.target().clone(), checker.config().clone());
            if !migration_status_known {
                migration_status_known =
                    refresh_pooled_status(&config, &pooled, &checks, &shared).await;
            }
            drift.tick(&pooled, &checks, &shared).await;
        }
        // A server's budget is shared with its databases: hold no idle slot.
        if let (Part::Server(_), Some(checker)) = (&part, checker.as_ref()) {
            checker.target().close_idle();
        }
    }
}

/// Drift against the fingerprint pgwarden recorded when it last migrated the
/// target (see `schema::drift`), every `schema.drift_interval`: on a pooled,
/// read-only session with the checks' timeouts, so it costs the server no
/// connection of its own, and it lives and dies with the collector.
struct DriftWatch {
    every: Option<Duration>,
    last: Option<Instant>,
    objects: Option<usize>,
}

impl DriftWatch {
    fn new(config: &Config) -> Self {
        let every =
            crate::schema::drift::enabled(config).then(|| config.schema.drift_interval.get());
        Self {
            every,
            last: None,
            objects: None,
        }
    }

    async fn tick(&mut self, pooled: &crate::pool::Target, checks: &ChecksConfig, shared: &Shared) {
        let Some(every) = self.every else {
            return;
        };
        if self.last.is_some_and(|at| at.elapsed() < every) {
            return;
        }
        self.last = Some(Instant::now());
        let target = pooled.name();
        match drift_objects(pooled, checks).await {
            Ok(found) => {
                if found != self.objects && found.is_some_and(|n| n > 0) {
                    tracing::warn!(
                        target,
                        objects = found,
                        "schema drift: objects changed since pgwarden last migrated this target; see `pgwarden migrate drift`"
                    );
                }
                self.objects = found;
                shared.update_migration(target, |state| state.drift_objects = found);
            }
            // The checks report a sick target; the last value stays.
            Err(e) => tracing::debug!(target, "drift check skipped: {e}"),
        }
    }
}

async fn drift_objects(
    target: &crate::pool::Target,
    checks: &ChecksConfig,
) -> Result<Option<usize>, String> {
    pooled_read(target, checks, async |session| {
        let found = crate::schema::drift::against_fingerprint(session.client()).await;
        found
            .map(|changes| changes.map(|c| c.len()))
            .map_err(|e| e.to_string())
    })
    .await
}

/// `read` on one of the target's pooled sessions (read-only, with the
/// checks' timeouts), bounded as a check is: the daemon's own reads beside
/// the checks open no connection of their own, so a stalled server costs no
/// more than the pool (and a failed read rolls back and keeps it).
pub async fn pooled_read<T>(
    target: &crate::pool::Target,
    checks: &ChecksConfig,
    read: impl AsyncFnOnce(&crate::checks::Session) -> Result<T, String>,
) -> Result<T, String> {
    let timeout = checks.timeout.get();
    let bound = 2 * timeout + target.config.pool_timeout.get() + Duration::from_secs(1);
    let reading = async {
        let session = crate::checks::Session::open(&target.pool, &target.config, timeout).await?;
        let value = read(&session).await?;
        session.finish().await;
        Ok(value)
    };
    tokio::time::timeout(bound, reading)
        .await
        .unwrap_or_else(|_| Err(format!("timed out after {bound:?}")))
}

/// One cycle of `checker`, abandoned (and reported down) after `deadline`:
/// a server that stops answering mid-query, where `statement_timeout`
/// cannot help, still turns `pgwarden_up` to 0.
pub async fn bounded_cycle(checker: &mut Checker, name: &str, deadline: Duration) -> TargetReport {
    let started = Instant::now();
    match tokio::time::timeout(deadline, checker.run_cycle()).await {
        Ok(report) => report,
        Err(_) => down(
            name,
            started,
            format!(
                "the check cycle did not finish within {deadline:?}; the server is not answering"
            ),
        ),
    }
}

pub fn down(name: &str, started: Instant, error: String) -> TargetReport {
    TargetReport {
        target: name.to_string(),
        database: None,
        up: false,
        error: Some(error),
        finished_at: unix_now(),
        duration_seconds: started.elapsed().as_secs_f64(),
        checks: Vec::new(),
    }
}

pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Export where a migration-flagged target stands; false to try again later.
pub async fn refresh_migration_status(
    config: &Config,
    target: &TargetConfig,
    shared: &Shared,
) -> bool {
    let status = crate::migrate::status(config, target).await;
    record_status(
        shared,
        target.name.as_str(),
        status.map_err(|e| e.to_string()),
    )
}

/// The collector's way: on a pooled session (see [`pooled_read`]).
async fn refresh_pooled_status(
    config: &Config,
    target: &crate::pool::Target,
    checks: &ChecksConfig,
    shared: &Shared,
) -> bool {
    let status = pooled_read(target, checks, async |session| {
        (crate::migrate::status_on(config, session.client()).await).map_err(|e| e.to_string())
    })
    .await;
    record_status(shared, target.name(), status)
}

/// Export a target's migration status; false to try again later.
fn record_status(
    shared: &Shared,
    target: &str,
    status: Result<crate::migrate::MigrationStatus, String>,
) -> bool {
    match status {
        Ok(status) => {
            shared.update_migration(target, |state| {
                state.version = status.current_version;
                state.pending = Some(status.pending.len());
            });
            true
        }
        Err(e) => {
            tracing::debug!(target, "migration status unavailable: {e}");
            false
        }
    }
}

/// "connection refused" of "connection refused (…); is PostgreSQL running …".
fn failure_kind(error: &str) -> &str {
    error.split(['(', ';']).next().unwrap_or(error).trim()
}

/// Logs a line when something changes (a target goes down or comes back, a
/// check changes status), not on every cycle, so a long outage is one line.
#[derive(Default)]
pub struct ProblemLog {
    up: Option<bool>,
    /// While down: what kind of failure (its words before the details), so
    /// a change of cause is one more line and a repeat none.
    down_because: Option<String>,
    statuses: BTreeMap<String, Status>,
}

impl ProblemLog {
    pub fn record(&mut self, report: &TargetReport) {
        let unit = crate::fleet::unit_key(&report.target, report.database.as_deref());
        let target = unit.as_str();
        let error = report.error.as_deref().unwrap_or("unknown error");
        let because = (!report.up).then(|| failure_kind(error).to_string());
        match (self.up, report.up) {
            (Some(true) | None, false) => tracing::warn!(target, "target down: {error}"),
            (Some(false), false) if because != self.down_because => {
                tracing::warn!(target, "target still down, now: {error}")
            }
            (Some(false), true) => tracing::info!(target, "target reachable again"),
            _ => {}
        }
        self.up = Some(report.up);
        self.down_because = because;
        // A target that is down has every check "not run": that is the one
        // line above, not one more per check (and none again on return).
        if !report.up {
            return;
        }
        for check in &report.checks {
            let before = self.statuses.insert(check.check.clone(), check.status);
            if before == Some(check.status) || (before.is_none() && check.status == Status::Ok) {
                continue;
            }
            if check.status == Status::Ok {
                tracing::info!(target, check = %check.check, "check ok again: {}", check.summary);
            } else {
                tracing::warn!(
                    target,
                    check = %check.check,
                    status = check.status.as_str(),
                    "{}",
                    check.summary
                );
            }
        }
    }
}
