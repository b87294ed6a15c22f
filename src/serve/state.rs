//! What the daemon knows, in memory: the last report of every target and
//! the outcome of reloads and migration runs.
//!
//! Collectors write here once per cycle; HTTP handlers only read. A scrape
//! therefore never touches a database, and ten scrapers cost the database
//! what one does. The rendered `/metrics` body is cached and rebuilt only when
//! something changed (a cycle finished, a reload, a migration run) or when it
//! is older than a second (process metrics and extra sources move on their own).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use prometheus::core::Collector;

use super::history::{History, Sample};
use super::metrics::Families;
use crate::report::{Measurement, Overall, Report, TargetReport};

/// Extra per-target measurements from another part of the daemon (the backup
/// scheduler, say). Register one with [`super::Daemon::add_source`]; it is
/// asked at most once a second, from the scrape path, so it must answer from
/// memory (no queries, no I/O) and quickly.
///
/// Each `(target, measurement)` is exported as
/// `pgwarden_<measurement.metric>{target="…", <labels>}`, exactly like a
/// check's measurements.
pub trait MetricSource: Send + Sync {
    fn measurements(&self) -> Vec<(String, Measurement)>;
}

/// How long a rendered body may be reused when nothing else changed.
const MAX_BODY_AGE: Duration = Duration::from_secs(1);

/// Where a migration-flagged target stands.
#[derive(Clone, Debug, Default)]
pub struct MigrationState {
    pub version: Option<i64>,
    pub pending: Option<usize>,
    /// Outcome of the last SIGUSR1 run (None: no run yet).
    pub last_run_success: Option<bool>,
    /// Unix time that run ended (the status page shows it).
    pub last_run_at: Option<f64>,
    /// Objects changed out of band since pgwarden last migrated the target
    /// (`schema.drift_interval`; None: not watched, or never migrated by pgwarden).
    pub drift_objects: Option<usize>,
    /// Lint errors in what the last SIGUSR1 run would have applied (it
    /// refuses when above 0; None: no run yet).
    pub lint_errors: Option<usize>,
}

/// When scheduled backups run (for the status page's "next run").
#[derive(Clone, Debug)]
pub struct BackupPlan {
    pub schedule: crate::backup::schedule::CronSchedule,
    pub timezone: crate::backup::schedule::TimeZone,
}

pub struct Shared {
    environment: RwLock<String>,
    /// Targets in config order; `None` until its first cycle finishes.
    reports: RwLock<Vec<(String, Option<TargetReport>)>>,
    migrations: Mutex<BTreeMap<String, MigrationState>>,
    sources: RwLock<Vec<Arc<dyn MetricSource>>>,
    reload_ok: AtomicBool,
    /// Collector restarts after a panic, by target.
    restarts: Mutex<BTreeMap<String, u64>>,
    /// Bumped on every change, so the cached body knows it is stale.
    generation: AtomicU64,
    cache: Mutex<Option<Cached>>,
    /// Held by the one scrape rendering a new body.
    rendering: Mutex<()>,
    /// Recent cycles' key numbers, for the status page's charts.
    history: Mutex<History>,
    backup_plan: RwLock<Option<BackupPlan>>,
    /// Discovery targets' databases, by target.
    fleets: RwLock<BTreeMap<String, Fleet>>,
    process: prometheus::process_collector::ProcessCollector,
}

/// A discover target's databases, for the status page.
pub struct FleetView {
    pub discovery_up: bool,
    pub watched: usize,
    pub down: usize,
    /// Databases with a warning or worse (down ones included).
    pub not_ok: usize,
    pub pass_seconds: Option<f64>,
    pub worst: Vec<TargetReport>,
}

/// What a discovery target found on its server, and its databases' last
/// reports (shared, so that rendering copies pointers, not reports, and
/// holds no lock while it renders).
#[derive(Clone, Default)]
struct Fleet {
    /// Did the last listing of `pg_database` succeed?
    discovery_up: bool,
    /// Matching databases this instance watches (its shard's).
    discovered: usize,
    /// How long the last pass over every database took.
    pass_seconds: Option<f64>,
    databases: BTreeMap<String, Arc<TargetReport>>,
}

struct Cached {
    generation: u64,
    at: Instant,
    /// How long rendering it took.
    took: Duration,
    metrics: Bytes,
}

/// A body that took longer than this to render is reused for up to
/// [`RENDER_SHARE`] times its render time even when something changed, so
/// that a fleet (a report finishing every few milliseconds) does not spend
/// a core rendering: at most a tenth of one. Small bodies stay fresh at once.
const CHEAP_RENDER: Duration = Duration::from_millis(1);
const RENDER_SHARE: u32 = 10;

impl Cached {
    fn serves(&self, generation: u64) -> bool {
        let age = self.at.elapsed();
        let unchanged = self.generation == generation;
        let costly = self.took > CHEAP_RENDER && age < self.took * RENDER_SHARE;
        age < MAX_BODY_AGE && (unchanged || costly)
    }
}

impl Shared {
    pub fn new(environment: &str, targets: &[String]) -> Self {
        Self {
            environment: RwLock::new(environment.to_string()),
            reports: RwLock::new(targets.iter().map(|t| (t.clone(), None)).collect()),
            migrations: Mutex::new(BTreeMap::new()),
            sources: RwLock::new(Vec::new()),
            reload_ok: AtomicBool::new(true),
            restarts: Mutex::new(BTreeMap::new()),
            generation: AtomicU64::new(0),
            cache: Mutex::new(None),
            rendering: Mutex::new(()),
            history: Mutex::new(History::default()),
            backup_plan: RwLock::new(None),
            fleets: RwLock::new(BTreeMap::new()),
            process: prometheus::process_collector::ProcessCollector::new(
                std::process::id() as i32,
                "pgwarden",
            ),
        }
    }

    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// A collector finished a cycle.
    pub fn publish(&self, report: TargetReport) {
        lock(&self.history).record(&report);
        let mut reports = write(&self.reports);
        if let Some(slot) = reports.iter_mut().find(|(name, _)| *name == report.target) {
            slot.1 = Some(report);
        }
        drop(reports);
        self.changed();
    }

    /// A reload changed the target list: keep the last report of targets that stay.
    pub fn set_targets(&self, environment: &str, targets: &[String]) {
        let mut reports = write(&self.reports);
        let mut old: BTreeMap<String, Option<TargetReport>> = reports.drain(..).collect();
        *reports = targets
            .iter()
            .map(|t| (t.clone(), old.remove(t).flatten()))
            .collect();
        drop(reports);
        *write(&self.environment) = environment.to_string();
        lock(&self.migrations).retain(|name, _| targets.contains(name));
        lock(&self.history).retain(targets);
        self.changed();
    }

    /// A reload: forget the databases of targets that no longer discover.
    pub fn retain_fleets(&self, discovering: &[String]) {
        write(&self.fleets).retain(|name, _| discovering.contains(name));
        self.changed();
    }

    /// A discovered database's cycle finished.
    pub fn publish_database(&self, report: TargetReport) {
        let Some(database) = report.database.clone() else {
            return self.publish(report);
        };
        write(&self.fleets)
            .entry(report.target.clone())
            .or_default()
            .databases
            .insert(database, Arc::new(report));
        self.changed();
    }

    /// A discovery listed `databases` (this shard's) on `target`'s server,
    /// or failed (`None`): the reports of databases no longer listed go.
    pub fn set_discovered(&self, target: &str, databases: Option<&[String]>) {
        let mut fleets = write(&self.fleets);
        let fleet = fleets.entry(target.to_string()).or_default();
        fleet.discovery_up = databases.is_some();
        if let Some(databases) = databases {
            fleet.discovered = databases.len();
            fleet.databases.retain(|name, _| databases.contains(name));
        }
        drop(fleets);
        self.changed();
    }

    /// A pass over every database of `target` took `seconds`.
    pub fn set_fleet_pass(&self, target: &str, seconds: f64) {
        write(&self.fleets)
            .entry(target.to_string())
            .or_default()
            .pass_seconds = Some(seconds);
        self.changed();
    }

    /// What the status page shows of a discover target's databases: counts,
    /// and the `limit` worst (down first, then by status and name).
    pub fn fleet_view(&self, target: &str, limit: usize) -> Option<FleetView> {
        let fleets = read(&self.fleets);
        let fleet = fleets.get(target)?;
        let mut worst: Vec<&TargetReport> = fleet
            .databases
            .values()
            .map(|r| &**r)
            .filter(|r| r.worst() != crate::report::Status::Ok)
            .collect();
        worst.sort_by_key(|r| (r.up, std::cmp::Reverse(r.worst())));
        Some(FleetView {
            discovery_up: fleet.discovery_up,
            watched: fleet.databases.len(),
            down: fleet.databases.values().filter(|r| !r.up).count(),
            not_ok: worst.len(),
            pass_seconds: fleet.pass_seconds,
            worst: worst.into_iter().take(limit).cloned().collect(),
        })
    }

    /// The discovered databases of `target` this instance watches.
    pub fn databases(&self, target: &str) -> Vec<String> {
        read(&self.fleets)
            .get(target)
            .map(|f| f.databases.keys().cloned().collect())
            .unwrap_or_default()
    }

    pub fn set_reload_ok(&self, ok: bool) {
        self.reload_ok.store(ok, Ordering::Relaxed);
        self.changed();
    }

    /// A target's collector died and was started again.
    pub fn record_restart(&self, target: &str) {
        *lock(&self.restarts).entry(target.to_string()).or_default() += 1;
        self.changed();
    }

    pub fn update_migration(&self, target: &str, update: impl FnOnce(&mut MigrationState)) {
        update(
            lock(&self.migrations)
                .entry(target.to_string())
                .or_default(),
        );
        self.changed();
    }

    pub fn migration(&self, target: &str) -> Option<MigrationState> {
        lock(&self.migrations).get(target).cloned()
    }

    pub fn add_source(&self, source: Arc<dyn MetricSource>) {
        write(&self.sources).push(source);
        self.changed();
    }

    /// A target's samples since `since` (Unix seconds), oldest first.
    pub fn history(&self, target: &str, since: f64) -> Vec<Sample> {
        lock(&self.history).since(target, since)
    }

    pub fn set_backup_plan(&self, plan: Option<BackupPlan>) {
        *write(&self.backup_plan) = plan;
    }

    pub fn backup_plan(&self) -> Option<BackupPlan> {
        read(&self.backup_plan).clone()
    }

    /// Every target's configured name and last report (None before its first cycle).
    pub fn targets(&self) -> Vec<(String, Option<TargetReport>)> {
        read(&self.reports).clone()
    }

    /// What the extra sources (backups) measure for `target`.
    pub fn source_measurements(&self, target: &str) -> Vec<Measurement> {
        read(&self.sources)
            .iter()
            .flat_map(|s| s.measurements())
            .filter(|(t, _)| t == target)
            .map(|(_, m)| m)
            .collect()
    }

    /// Targets whose first cycle has not finished yet.
    pub fn waiting_for(&self) -> Vec<String> {
        read(&self.reports)
            .iter()
            .filter(|(_, r)| r.is_none())
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The last completed reports, as one `Report` (what `/health` returns).
    pub fn report(&self) -> Report {
        let mut targets: Vec<TargetReport> = read(&self.reports)
            .iter()
            .filter_map(|(_, r)| r.clone())
            .collect();
        for fleet in read(&self.fleets).values() {
            targets.extend(fleet.databases.values().map(|r| (**r).clone()));
        }
        Report::new(&read(&self.environment), targets)
    }

    /// `/health`: the report, and whether a load balancer should use us.
    pub fn health(&self) -> (bool, Report) {
        let report = self.report();
        let healthy = report.overall != Overall::Unhealthy && self.waiting_for().is_empty();
        (healthy, report)
    }

    /// The `/metrics` body, rebuilt only when stale.
    ///
    /// While one scrape renders, the others get the previous body instead
    /// of waiting for it (a fleet's body takes tens of milliseconds), so no
    /// HTTP thread blocks behind a render.
    pub fn metrics(&self) -> Bytes {
        let generation = self.generation.load(Ordering::Acquire);
        let previous = lock(&self.cache)
            .as_ref()
            .map(|c| (c.serves(generation), c.metrics.clone()));
        let free = match self.rendering.try_lock() {
            Ok(guard) => Some(guard),
            // A render that panicked left nothing half-written: go on.
            Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        };
        let rendering = match (previous, free) {
            (Some((true, body)), _) | (Some((false, body)), None) => return body,
            (_, Some(rendering)) => rendering,
            // The first body: wait for the render in flight.
            (None, None) => lock(&self.rendering),
        };
        let started = Instant::now();
        let body = Bytes::from(self.render());
        *lock(&self.cache) = Some(Cached {
            generation,
            at: Instant::now(),
            took: started.elapsed(),
            metrics: body.clone(),
        });
        drop(rendering);
        body
    }

    fn render(&self) -> String {
        let mut families = Families::default();
        families.add(
            None,
            &Measurement::gauge("build_info", "pgwarden's version; always 1", 1.0)
                .label("version", env!("CARGO_PKG_VERSION")),
        );
        families.add(
            None,
            &Measurement::gauge(
                "config_last_reload_successful",
                "0 after a rejected SIGHUP reload, 1 otherwise",
                if self.reload_ok.load(Ordering::Relaxed) {
                    1.0
                } else {
                    0.0
                },
            ),
        );
        for (target, report) in read(&self.reports).iter() {
            self.add_target_series(&mut families, target, report.as_ref());
        }
        for (target, state) in lock(&self.migrations).iter() {
            add_migration(&mut families, target, state);
        }
        // A snapshot: collectors publish while this renders.
        let fleets = read(&self.fleets).clone();
        for (target, fleet) in &fleets {
            add_fleet(&mut families, target, fleet);
            for report in fleet.databases.values() {
                families.add_target(report);
            }
        }
        for source in read(&self.sources).iter() {
            for (target, m) in source.measurements() {
                families.add(Some(&target), &m);
            }
        }
        let mut out = String::with_capacity(8192);
        families.render(&mut out);
        let process = prometheus::TextEncoder::new()
            .encode_to_string(&self.process.collect())
            .unwrap_or_default();
        out.push_str(&process);
        out
    }
}

impl Shared {
    /// A configured target's own series: its restarts and last report.
    fn add_target_series(
        &self,
        families: &mut Families,
        target: &str,
        report: Option<&TargetReport>,
    ) {
        families.add(
            Some(target),
            &Measurement::counter(
                "collector_restarts_total",
                "times the target's collector task died (a panic) and was started again",
                lock(&self.restarts).get(target).copied().unwrap_or(0) as f64,
            ),
        );
        if let Some(report) = report {
            families.add_target(report);
        }
    }

    /// `/probe?target=…[&database=…]`: one unit's series, from memory, as
    /// the multi-target exporter pattern wants; or a message naming the
    /// known targets (or the target's databases) for a 404.
    pub fn probe(&self, target: &str, database: Option<&str>) -> Result<String, String> {
        let mut families = Families::default();
        match database {
            Some(database) => families.add_target(&*self.database_report(target, database)?),
            None => self.add_probed_target(&mut families, target)?,
        }
        let mut out = String::with_capacity(4096);
        families.render(&mut out);
        Ok(out)
    }

    /// One discovered database's last report (a pointer: no lock is held
    /// while it renders), or why there is none.
    fn database_report(&self, target: &str, database: &str) -> Result<Arc<TargetReport>, String> {
        let fleets = read(&self.fleets);
        let Some(fleet) = fleets.get(target) else {
            drop(fleets);
            return Err(self.unknown_target(target));
        };
        fleet.databases.get(database).cloned().ok_or_else(|| {
            let known: Vec<&str> = fleet.databases.keys().map(String::as_str).collect();
            format!(
                "target `{target}` watches no database `{database}` (on this instance); its databases are: {}\n",
                known.join(", ")
            )
        })
    }

    /// A target's own series; a discover target another shard runs the
    /// server-wide unit of has only its discovery series here.
    fn add_probed_target(&self, families: &mut Families, target: &str) -> Result<(), String> {
        let own = read(&self.reports)
            .iter()
            .find(|(name, _)| name == target)
            .map(|(_, report)| report.clone());
        let fleet = read(&self.fleets).get(target).map(|f| Fleet {
            discovery_up: f.discovery_up,
            discovered: f.discovered,
            pass_seconds: f.pass_seconds,
            databases: BTreeMap::new(),
        });
        if own.is_none() && fleet.is_none() {
            return Err(self.unknown_target(target));
        }
        if let Some(report) = own {
            self.add_target_series(families, target, report.as_ref());
        }
        if let Some(state) = lock(&self.migrations).get(target) {
            add_migration(families, target, state);
        }
        if let Some(fleet) = fleet {
            add_fleet(families, target, &fleet);
        }
        for m in self.source_measurements(target) {
            families.add(Some(target), &m);
        }
        Ok(())
    }

    fn unknown_target(&self, target: &str) -> String {
        let mut known: Vec<String> = read(&self.reports).iter().map(|(n, _)| n.clone()).collect();
        known.extend(read(&self.fleets).keys().cloned());
        known.sort();
        known.dedup();
        format!(
            "no target named `{target}`; the targets are: {}\n",
            known.join(", ")
        )
    }
}

fn add_fleet(families: &mut Families, target: &str, fleet: &Fleet) {
    let target = Some(target);
    families.add(
        target,
        &Measurement::gauge(
            "discovery_up",
            "1 if the last listing of pg_database on a discovery target's server succeeded",
            f64::from(u8::from(fleet.discovery_up)),
        ),
    );
    families.add(
        target,
        &Measurement::gauge(
            "discovery_databases",
            "databases a discovery target matches and this instance (its shard) watches",
            fleet.discovered as f64,
        ),
    );
    if let Some(seconds) = fleet.pass_seconds {
        families.add(
            target,
            &Measurement::gauge(
                "fleet_pass_duration_seconds",
                "how long the last pass over every discovered database of the target took",
                seconds,
            ),
        );
    }
}

fn add_migration(families: &mut Families, target: &str, state: &MigrationState) {
    let target = Some(target);
    if let Some(version) = state.version {
        families.add(
            target,
            &Measurement::gauge(
                "migration_version",
                "latest applied migration version",
                version as f64,
            ),
        );
    }
    if let Some(pending) = state.pending {
        families.add(
            target,
            &Measurement::gauge(
                "migrations_pending",
                "migrations not yet applied",
                pending as f64,
            ),
        );
    }
    if let Some(objects) = state.drift_objects {
        families.add(
            target,
            &Measurement::gauge(
                "schema_drift_objects",
                "Objects changed out of band since pgwarden last migrated the target",
                objects as f64,
            ),
        );
    }
    if let Some(errors) = state.lint_errors {
        families.add(
            target,
            &Measurement::gauge(
                "migration_lint_errors",
                "lint errors that made the last SIGUSR1 migration run refuse (0: it passed the gate)",
                errors as f64,
            ),
        );
    }
    if let Some(ok) = state.last_run_success {
        families.add(
            target,
            &Measurement::gauge(
                "migration_last_run_success",
                "1 if the last SIGUSR1 migration run succeeded",
                if ok { 1.0 } else { 0.0 },
            ),
        );
    }
}

// A panicking writer must not take the exporter down with it: use the data anyway.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|e| e.into_inner())
}
fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Backups;

    impl MetricSource for Backups {
        fn measurements(&self) -> Vec<(String, Measurement)> {
            vec![(
                "primary".into(),
                Measurement::gauge("backup_running", "1 while a backup runs", 1.0),
            )]
        }
    }

    #[test]
    fn a_metric_source_is_rendered_like_a_check_and_readiness_follows_reports() {
        let shared = Shared::new("development", &["primary".into(), "replica".into()]);
        shared.add_source(Arc::new(Backups));
        let text = String::from_utf8(shared.metrics().to_vec()).unwrap();
        assert!(
            text.contains("# TYPE pgwarden_backup_running gauge\npgwarden_backup_running{target=\"primary\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("pgwarden_process_resident_memory_bytes"),
            "{text}"
        );
        assert_eq!(shared.waiting_for(), ["primary", "replica"]);
        assert!(!shared.health().0, "healthy before any cycle");
        for target in ["primary", "replica"] {
            shared.publish(TargetReport {
                target: target.into(),
                database: None,
                up: true,
                error: None,
                finished_at: 1.0,
                duration_seconds: 0.1,
                checks: Vec::new(),
            });
        }
        assert!(shared.waiting_for().is_empty());
        assert!(shared.health().0);
        // A publish makes the cached body stale at once.
        let text = String::from_utf8(shared.metrics().to_vec()).unwrap();
        assert!(text.contains("pgwarden_up{target=\"replica\"} 1"), "{text}");
        shared.set_targets("production", &["replica".into()]);
        let text = String::from_utf8(shared.metrics().to_vec()).unwrap();
        assert!(!text.contains("pgwarden_up{target=\"primary\"}"), "{text}");
        assert_eq!(shared.report().environment, "production");
    }

    fn database_report(target: &str, database: &str, up: bool) -> TargetReport {
        TargetReport {
            target: target.into(),
            database: Some(database.into()),
            up,
            error: None,
            finished_at: 1.0,
            duration_seconds: 0.1,
            checks: Vec::new(),
        }
    }

    #[test]
    fn probe_answers_one_unit_even_of_a_target_another_shard_runs() {
        // "fleet" is a discover target whose own unit another shard runs.
        let shared = Shared::new("development", &["primary".into()]);
        shared.publish_database(database_report("fleet", "school_1", true));
        shared.publish_database(database_report("fleet", "school_2", false));
        shared.set_discovered("fleet", Some(&["school_1".into(), "school_2".into()]));
        let one = shared.probe("fleet", Some("school_1")).unwrap();
        assert!(
            one.contains(r#"pgwarden_up{target="fleet",database="school_1"} 1"#),
            "{one}"
        );
        assert!(!one.contains("school_2"), "{one}");
        let server = shared.probe("fleet", None).unwrap();
        assert!(
            server.contains(r#"pgwarden_discovery_databases{target="fleet"} 2"#),
            "{server}"
        );
        let missing = shared.probe("nope", None).unwrap_err();
        assert!(missing.contains("fleet, primary"), "{missing}");
        let missing = shared.probe("fleet", Some("school_9")).unwrap_err();
        assert!(missing.contains("school_1, school_2"), "{missing}");
        // A listing without school_2 drops its series; a reload without
        // the target drops the rest.
        shared.set_discovered("fleet", Some(&["school_1".into()]));
        assert!(shared.probe("fleet", Some("school_2")).is_err());
        shared.retain_fleets(&[]);
        assert!(shared.probe("fleet", Some("school_1")).is_err());
    }
}
