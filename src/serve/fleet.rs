//! A discovery target's databases (see [`crate::fleet`]): `pg_database` is
//! listed every `fleet.discover_interval` (and at once after a database
//! went down, so a dropped one leaves quickly); every database this
//! instance owns is checked once per `checks.interval`, at most
//! `fleet.max_concurrent_databases` at a time, each on one connection that
//! holds a slot of the server's budget and is closed when its cycle ends.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::time::MissedTickBehavior;

use super::collector::{ProblemLog, bounded_cycle, cycle_deadline, down, pooled_read};
use super::state::Shared;
use crate::checks::{Checker, Unit};
use crate::config::{Config, TargetConfig};
use crate::fleet::{DATABASES_SQL, Database};
use crate::report::TargetReport;

/// Watch `target`'s databases until aborted.
pub async fn run(
    config: Arc<Config>,
    target: TargetConfig,
    budget: Arc<Semaphore>,
    shared: Arc<Shared>,
) {
    let name = target.name.to_string();
    let set_up = crate::pool::Budget::new(&target, budget)
        .and_then(|budget| Ok((crate::pool::Target::budgeted(&target, 1, &budget)?, budget)));
    let (lister, budget) = match set_up {
        Ok(set_up) => set_up,
        Err(e) => {
            tracing::error!(target = %name, "cannot set up discovery: {e}");
            shared.set_discovered(&name, None);
            return std::future::pending().await;
        }
    };
    let interval = config.checks.interval.get();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut fleet = Fleet::new(&config, &target, budget);
    let mut listed: Option<Instant> = None;
    let mut relist = true;
    let mut listing_failed = false;
    loop {
        ticker.tick().await;
        let every = config.fleet.discover_interval.get();
        if relist || listed.is_none_or(|at| at.elapsed() + interval / 2 >= every) {
            listed = Some(Instant::now());
            match list(&lister, &config).await {
                Ok(found) => {
                    if listing_failed {
                        tracing::info!(target = %name, "discovery works again");
                    }
                    listing_failed = false;
                    let names = fleet.reconcile(found);
                    shared.set_discovered(&name, Some(&names));
                }
                Err(e) => {
                    if !listing_failed {
                        tracing::warn!(target = %name, "discovery failed (listing pg_database): {e}");
                    }
                    listing_failed = true;
                    shared.set_discovered(&name, None);
                }
            }
            lister.close_idle();
        }
        let started = Instant::now();
        relist = fleet.pass(&shared).await;
        shared.set_fleet_pass(&name, started.elapsed().as_secs_f64());
    }
}

/// `pg_database`, on a read-only session with the checks' timeouts.
async fn list(lister: &crate::pool::Target, config: &Config) -> Result<Vec<Database>, String> {
    pooled_read(lister, &config.checks, async |session| {
        let read = crate::fleet::database;
        crate::checks::rows::fetch(session, "discovery", DATABASES_SQL, read).await
    })
    .await
}

/// The databases of one discovery target that this instance watches.
struct Fleet {
    config: Arc<Config>,
    target: TargetConfig,
    budget: crate::pool::Budget,
    databases: BTreeMap<String, Watched>,
}

/// One database: its checker (kept between cycles for the interval-based
/// numbers), or why it is not connected to.
struct Watched {
    target: TargetConfig,
    checker: Result<Checker, String>,
    log: ProblemLog,
    /// How long its cycle may take (its checks share one connection).
    deadline: Duration,
}

impl Fleet {
    fn new(config: &Arc<Config>, target: &TargetConfig, budget: crate::pool::Budget) -> Self {
        Self {
            config: config.clone(),
            target: target.clone(),
            budget,
            databases: BTreeMap::new(),
        }
    }

    /// Take a new listing: add the matching databases this shard owns, drop
    /// the ones gone. Returns the names watched.
    fn reconcile(&mut self, found: Vec<Database>) -> Vec<String> {
        let name = self.target.name.as_str();
        let pattern = self.target.discover.as_ref();
        let wanted: BTreeMap<String, Database> = found
            .into_iter()
            .filter(|db| pattern.is_some_and(|p| p.matches(&db.name)))
            .filter(|db| {
                let key = crate::fleet::unit_key(name, Some(&db.name));
                self.config.fleet.owns(&key)
            })
            .map(|db| (db.name.clone(), db))
            .collect();
        self.databases.retain(|db, watched| {
            let keep = wanted
                .get(db)
                .is_some_and(|now| now.refused.is_none() == watched.checker.is_ok());
            if !keep {
                tracing::info!(target = name, database = %db, "no longer watching the database");
            }
            keep
        });
        for (db, database) in wanted {
            if !self.databases.contains_key(&db) {
                tracing::info!(target = name, database = %db, "watching a discovered database");
                let watched = self.watch(&database);
                self.databases.insert(db, watched);
            }
        }
        self.databases.keys().cloned().collect()
    }

    fn watch(&self, database: &Database) -> Watched {
        let mut target = self.target.clone();
        target.url = Some(self.target.url().with_database(&database.name));
        // Only the fleet matches names (a regex clone keeps caches of its own).
        target.discover = None;
        // One connection serves the cycle's checks in turn, so a check may
        // wait for every one before it, each bounded by checks.timeout: a
        // wait that long is a queue, not an exhausted pool.
        let checks = &self.config.checks;
        let queued = crate::checks::checks_for(checks, Unit::Database).len() as u32;
        let queue = checks.timeout.get() * queued;
        target.pool_timeout = crate::config::Duration(target.pool_timeout.get() + queue);
        let deadline = cycle_deadline(&target, checks) + queue;
        let checker = match database.refused {
            Some(why) => Err(why.to_string()),
            None => crate::pool::Target::budgeted(&target, 1, &self.budget)
                .map(|pooled| Checker::for_unit(pooled, self.config.checks.clone(), Unit::Database))
                .map_err(|e| format!("cannot set up the database: {e}")),
        };
        Watched {
            target,
            checker,
            log: ProblemLog::default(),
            deadline,
        }
    }

    /// One cycle of every database, a few at a time; true when one of them
    /// was down (it may have been dropped: list again).
    async fn pass(&mut self, shared: &Shared) -> bool {
        let turns = Semaphore::new(self.config.fleet.max_concurrent_databases.get() as usize);
        // Every future is made before any runs, so the closure is not held
        // across an await (a stream of closures here is not `Send`).
        let cycles: Vec<_> = self
            .databases
            .iter_mut()
            .map(|(db, watched)| {
                let turns = &turns;
                async move {
                    let _turn = turns.acquire().await;
                    let report = watched.cycle(db).await;
                    let up = report.up;
                    watched.log.record(&report);
                    shared.publish_database(report);
                    up
                }
            })
            .collect();
        let reports = futures::future::join_all(cycles).await;
        reports.contains(&false)
    }
}

impl Watched {
    async fn cycle(&mut self, database: &str) -> TargetReport {
        let name = self.target.name.as_str();
        let mut report = match &mut self.checker {
            Err(why) => down(name, Instant::now(), why.clone()),
            Ok(checker) => {
                let report = bounded_cycle(checker, name, self.deadline).await;
                // Opened for this cycle, closed with it: the slot goes back.
                checker.target().close_idle();
                report
            }
        };
        report.database = Some(database.to_string());
        report
    }
}
