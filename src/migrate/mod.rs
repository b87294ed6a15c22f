//! The migration engine: refinery's files, checksums and history table, and
//! what refinery lacks — down scripts, offline SQL, a lock between runners,
//! timeouts with retries, non-transactional files, drift detection, `stamp`.
//!
//! Why pgwarden sends the SQL itself instead of calling refinery's runner:
//! refinery sends a whole file as one batch inside a transaction it opens,
//! which cannot run `CREATE INDEX CONCURRENTLY`, cannot tell which statement
//! (hence which line) failed when PostgreSQL gives no position, cannot retry a
//! lock timeout, and would make `--sql` an imitation of what runs. Here one
//! plan ([`plan`]) is both executed ([`exec`]) and printed, and every history
//! row is written in refinery's format with refinery's checksum ([`files`]),
//! so refinery (or an app embedding it) sees the same history.
//!
//! Every run uses its own direct session ([`session`]), never a pooled one,
//! holding the runners' advisory lock; waiters find nothing left to do.

pub mod embedded;
pub mod exec;
pub mod files;
pub mod history;
pub mod lint;
pub mod plan;
pub mod session;
pub mod split;
pub mod trace;

use std::collections::BTreeSet;
use std::path::PathBuf;

use chrono::Utc;
use serde::{Deserialize, Serialize};

use self::files::Migration;
use self::history::{Drift, HistoryRow, Incomplete};
use self::plan::Step;
use self::session::{Session, db_message};
use crate::config::{Bounded, Config, Duration, Environment, TargetConfig};
use crate::error::{Error, Result};

/// `[migrations]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MigrationsConfig {
    /// Folder of the migration files.
    pub dir: PathBuf,
    /// lock_timeout of migration sessions: keeps production traffic moving.
    pub lock_timeout: Duration,
    /// statement_timeout of migration sessions (0 = none).
    pub statement_timeout: Duration,
    /// How often a lock timeout is retried before the migration fails.
    pub lock_retries: Bounded<0, 100>,
}

impl Default for MigrationsConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("migrations"),
            lock_timeout: Duration::secs(5),
            statement_timeout: Duration::secs(0),
            lock_retries: Bounded::new(3),
        }
    }
}

/// What a run did; the daemon exports it after SIGUSR1.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MigrateReport {
    pub applied: Vec<AppliedMigration>,
    /// Migrations reverted by `migrate down`, latest first.
    #[serde(default)]
    pub reverted: Vec<AppliedMigration>,
    /// Versions recorded without running by `migrate stamp`.
    #[serde(default)]
    pub stamped: Vec<i64>,
    /// Latest applied version after the run (None: nothing applied ever).
    pub current_version: Option<i64>,
    /// Migrations still pending after the run.
    pub pending: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AppliedMigration {
    pub version: i64,
    pub name: String,
    pub duration_seconds: f64,
}

/// Options of `migrate up`.
#[derive(Clone, Debug, Default)]
pub struct UpOptions {
    /// Stop after this version (None: apply everything).
    pub revision: Option<i64>,
}

/// Where a target stands: what `migrate status` prints and the daemon exports.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MigrationStatus {
    /// Latest applied version (None: nothing applied).
    pub current_version: Option<i64>,
    /// Versions with files that are not applied yet.
    pub pending: Vec<i64>,
    /// Applied versions whose file changed or disappeared.
    pub drifted: Vec<i64>,
    /// The history, oldest first.
    #[serde(default)]
    pub applied: Vec<HistoryRow>,
    /// The pending migrations' files.
    #[serde(default)]
    pub pending_files: Vec<PathBuf>,
    /// Why each drifted version drifted (file, both checksums).
    #[serde(default)]
    pub drift: Vec<Drift>,
    /// Non-transactional migrations that stopped midway, with what to clean up.
    #[serde(default)]
    pub incomplete: Vec<Incomplete>,
}

impl MigrationStatus {
    /// Nothing pending, drifted or half-done: what `migrate status` exits 0 on.
    pub fn is_clean(&self) -> bool {
        self.pending.is_empty() && self.drifted.is_empty() && self.incomplete.is_empty()
    }
}

/// Options of `migrate down`.
#[derive(Clone, Debug, Default)]
pub struct DownOptions {
    /// Revert every migration above this version (0: all of them).
    /// None: only the latest applied one.
    pub revision: Option<i64>,
}

/// The migrations folder, as configured (relative paths: from the working directory).
pub fn dir(config: &Config) -> PathBuf {
    config.migrations.dir.clone()
}

/// The migration files of the configured folder.
pub fn load(config: &Config) -> Result<Vec<Migration>> {
    files::load(&dir(config))
}

/// A locked session: the caller's work runs alone among pgwarden runners.
async fn locked_session(config: &Config, target: &TargetConfig) -> Result<Session> {
    let session = Session::open(target, &config.migrations).await?;
    session.lock().await?;
    // Checked first (we hold the lock) so IF NOT EXISTS does not log a NOTICE every run.
    if !history::table_exists(&session.client, plan::HISTORY_TABLE).await? {
        session
            .client
            .batch_execute(&plan::history_ddl())
            .await
            .map_err(|e| {
                Error::failed(format!(
                    "creating the history table {}: {}",
                    plan::HISTORY_TABLE,
                    db_message(&e)
                ))
            })?;
    }
    Ok(session)
}

/// Run `work` under the lock; the lock is released however it ends (and
/// with the session, should the process die).
async fn with_lock<T>(
    config: &Config,
    target: &TargetConfig,
    work: impl AsyncFnOnce(&mut Session) -> Result<T>,
) -> Result<T> {
    let mut session = locked_session(config, target).await?;
    let result = work(&mut session).await;
    session.unlock().await;
    result.map_err(|e| e.context(format!("target `{}`", target.name)))
}

/// `migrate init`: the folder and the history table.
pub async fn init(config: &Config, target: &TargetConfig) -> Result<PathBuf> {
    let dir = dir(config);
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::failed(format!("cannot create {}: {e}", dir.display())))?;
    with_lock(config, target, async |_| Ok(())).await?;
    Ok(dir)
}

/// `migrate create "message"`: a new up/down pair from the template.
pub fn create(config: &Config, message: &str) -> Result<(PathBuf, PathBuf)> {
    files::create(&dir(config), message, Utc::now())
}

/// The versions not applied yet, in order; refuses a file older than the
/// latest applied one (refinery would too): it would never run.
fn pending<'a>(files: &'a [Migration], history: &[HistoryRow]) -> Result<Vec<&'a Migration>> {
    let applied: BTreeSet<i64> = history.iter().map(|r| r.version).collect();
    let latest = applied.last().copied();
    let pending: Vec<&Migration> = files
        .iter()
        .filter(|m| !applied.contains(&m.version))
        .collect();
    let too_old = latest.and_then(|l| pending.iter().find(|m| m.version < l).map(|m| (l, m)));
    if let Some((latest, old)) = too_old {
        return Err(Error::failed(format!(
            "{} is not applied but is older than the latest applied version {latest}; migrations apply in version order, so it would never run. Give it a version above {latest} (rename the file and its .down.sql), or `pgwarden migrate down --revision {}` first",
            old.up.path.display(),
            old.version - 1
        )));
    }
    Ok(pending)
}

/// Apply pending migrations to `target` (up to `options.revision`),
/// serialised with every other runner by an advisory lock; in production,
/// after `backup::before_migrate`. What the daemon calls on SIGUSR1.
pub async fn up(
    config: &Config,
    target: &TargetConfig,
    options: &UpOptions,
) -> Result<MigrateReport> {
    let files = load(config)?;
    with_lock(config, target, async |session| {
        let history = history::read(&session.client).await?;
        history::refuse_drift(&history::drift(&history, &files, &dir(config)))?;
        let pending = pending(&files, &history)?;
        let to_apply: Vec<&Migration> = pending
            .iter()
            .copied()
            .filter(|m| options.revision.is_none_or(|r| m.version <= r))
            .collect();
        let mut report = MigrateReport {
            current_version: history.last().map(|r| r.version),
            pending: pending.len(),
            ..Default::default()
        };
        if to_apply.is_empty() {
            return Ok(report);
        }
        gate(config, session, &to_apply).await?;
        guard_production(config, target).await?;
        let incomplete: Vec<i64> = history::incomplete(&session.client)
            .await?
            .iter()
            .map(|i| i.version)
            .collect();
        session.watch_locks(target).await;
        for migration in to_apply {
            let step = Step::up(migration);
            let clear = incomplete.contains(&migration.version);
            let took = exec::run_step(session, &step, &config.migrations, clear)
                .await
                .map_err(|e| after_partial_run(e, &report.applied))?;
            tracing::info!(migration = %migration.label(), seconds = took, "applied");
            report.applied.push(AppliedMigration {
                version: migration.version,
                name: migration.name.clone(),
                duration_seconds: took,
            });
            report.current_version = Some(migration.version);
            report.pending -= 1;
        }
        crate::schema::drift::record_after_migrate(config, &session.client, report.current_version)
            .await;
        Ok(report)
    })
    .await
}

/// The lint gate: refuse the run when what it would apply has a lint error.
async fn gate(config: &Config, session: &Session, to_apply: &[&Migration]) -> Result<()> {
    let scripts: Vec<&files::Script> = to_apply.iter().map(|m| &m.up).collect();
    let findings =
        lint::run::lint_scripts(&scripts, Some(&session.client), &config.lint, &[]).await?;
    for f in findings
        .iter()
        .filter(|f| f.severity == lint::Severity::Warning)
    {
        tracing::warn!(file = %f.file.display(), line = f.line, rule = f.rule, "{}", f.message);
    }
    let errors = lint::run::errors(&findings);
    if errors.is_empty() {
        return Ok(());
    }
    Err(lint::run::refusal(&errors, scripts.len()))
}

/// What `migrate lint` lints: the given files, or the target's pending
/// migrations (all with `all`), or without a target every migration file.
pub async fn lint(
    config: &Config,
    target: Option<&TargetConfig>,
    paths: &[PathBuf],
    all: bool,
    allow: &[String],
) -> Result<(Vec<lint::Finding>, usize)> {
    lint::run::check_allow(allow)?;
    let given: Vec<files::Script> = paths
        .iter()
        .map(|p| files::read_any(p))
        .collect::<Result<_>>()?;
    let migrations = if paths.is_empty() {
        load(config)?
    } else {
        Vec::new()
    };
    let session = match target {
        Some(target) => Some(
            Session::open(target, &config.migrations)
                .await
                .map_err(|e| e.context(format!("target `{}`", target.name)))?,
        ),
        None => None,
    };
    let applied: BTreeSet<i64> = match (&session, all) {
        (Some(session), false) => history::read(&session.client)
            .await?
            .iter()
            .map(|r| r.version)
            .collect(),
        _ => BTreeSet::new(),
    };
    let scripts: Vec<&files::Script> = if paths.is_empty() {
        migrations
            .iter()
            .filter(|m| !applied.contains(&m.version))
            .map(|m| &m.up)
            .collect()
    } else {
        given.iter().collect()
    };
    let client = session.as_ref().map(|s| &s.client);
    let findings = lint::run::lint_scripts(&scripts, client, &config.lint, allow).await?;
    Ok((findings, scripts.len()))
}

/// Revert applied migrations: the latest one, or all above `options.revision`.
/// Each down script and its history-row removal form one transaction.
pub async fn down(
    config: &Config,
    target: &TargetConfig,
    options: &DownOptions,
) -> Result<MigrateReport> {
    let files = load(config)?;
    with_lock(config, target, async |session| {
        let history = history::read(&session.client).await?;
        history::refuse_drift(&history::drift(&history, &files, &dir(config)))?;
        let versions = versions_to_revert(&history, options.revision);
        let steps = down_steps(&files, &versions)?;
        let mut report = MigrateReport {
            current_version: history.last().map(|r| r.version),
            pending: files.len().saturating_sub(history.len()),
            ..Default::default()
        };
        if steps.is_empty() {
            return Ok(report);
        }
        guard_production(config, target).await?;
        session.watch_locks(target).await;
        for step in steps {
            let took = exec::run_step(session, &step, &config.migrations, false)
                .await
                .map_err(|e| after_partial_run(e, &report.reverted))?;
            tracing::info!(migration = %step.migration.label(), seconds = took, "reverted");
            report.reverted.push(AppliedMigration {
                version: step.migration.version,
                name: step.migration.name.clone(),
                duration_seconds: took,
            });
            report.pending += 1;
            report.current_version = history
                .iter()
                .map(|r| r.version)
                .filter(|v| *v < step.migration.version)
                .max();
        }
        crate::schema::drift::record_after_migrate(config, &session.client, report.current_version)
            .await;
        Ok(report)
    })
    .await
}

/// Latest first: the latest one (no revision) or all above `revision`.
fn versions_to_revert(history: &[HistoryRow], revision: Option<i64>) -> Vec<i64> {
    let mut versions: Vec<i64> = match revision {
        None => history.last().map(|r| r.version).into_iter().collect(),
        Some(revision) => history
            .iter()
            .map(|r| r.version)
            .filter(|v| *v > revision)
            .collect(),
    };
    versions.sort_unstable_by(|a, b| b.cmp(a));
    versions
}

/// The down steps, or an error naming every migration without a down script.
fn down_steps<'a>(files: &'a [Migration], versions: &[i64]) -> Result<Vec<Step<'a>>> {
    let mut steps = Vec::new();
    let mut missing = Vec::new();
    for version in versions {
        // Drift was refused before, so every applied version has its file.
        let Some(migration) = files.iter().find(|m| m.version == *version) else {
            missing.push(format!("V{version} (no file)"));
            continue;
        };
        match Step::down(migration) {
            Some(step) => steps.push(step),
            None => missing.push(format!("{}.down.sql", migration.label())),
        }
    }
    if !missing.is_empty() {
        return Err(Error::failed(format!(
            "cannot revert: no down script for {}; write it (it must drop exactly what the up script created), nothing was reverted",
            missing.join(", ")
        )));
    }
    Ok(steps)
}

/// `migrate stamp V`: record every migration up to V as applied without
/// running it (adopting a database whose schema already exists).
pub async fn stamp(config: &Config, target: &TargetConfig, version: i64) -> Result<MigrateReport> {
    let files = load(config)?;
    if !files.iter().any(|m| m.version == version) {
        let known: Vec<String> = files.iter().map(|m| m.version.to_string()).collect();
        return Err(Error::usage(format!(
            "no migration has version {version}; known versions: {}",
            if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            }
        )));
    }
    with_lock(config, target, async |session| {
        let history = history::read(&session.client).await?;
        history::refuse_drift(&history::drift(&history, &files, &dir(config)))?;
        if let Some(latest) = history.last().filter(|r| r.version > version) {
            return Err(Error::usage(format!(
                "version {} is already applied, above {version}; use `pgwarden migrate down --revision {version}` to go back",
                latest.version
            )));
        }
        let applied: BTreeSet<i64> = history.iter().map(|r| r.version).collect();
        let to_record: Vec<&Migration> = files
            .iter()
            .filter(|m| m.version <= version && !applied.contains(&m.version))
            .collect();
        let mut sql = vec!["BEGIN".to_string()];
        sql.extend(to_record.iter().map(|m| plan::insert_history(m, Utc::now())));
        sql.push("COMMIT".into());
        for statement in &sql {
            if let Err(e) = session.client.batch_execute(statement).await {
                let _ = session.client.batch_execute("ROLLBACK").await;
                return Err(Error::failed(format!("stamping failed, nothing recorded: {}", db_message(&e))));
            }
        }
        Ok(MigrateReport {
            stamped: to_record.iter().map(|m| m.version).collect(),
            current_version: Some(version),
            pending: files.iter().filter(|m| m.version > version && !applied.contains(&m.version)).count(),
            ..Default::default()
        })
    })
    .await
}

/// Read the target's migration state without changing it (no lock, no
/// history table created): what `migrate status` prints and the daemon exports.
pub async fn status(config: &Config, target: &TargetConfig) -> Result<MigrationStatus> {
    let session = Session::open(target, &config.migrations)
        .await
        .map_err(|e| e.context(format!("target `{}`", target.name)))?;
    status_on(config, &session.client).await
}

/// [`status`] on a session the caller has (it only reads): the daemon uses
/// one of the target's pooled sessions, so it opens no connection of its own.
pub async fn status_on(
    config: &Config,
    client: &tokio_postgres::Client,
) -> Result<MigrationStatus> {
    let files = load(config)?;
    let history = history::read(client).await?;
    let drift = history::drift(&history, &files, &dir(config));
    let applied: BTreeSet<i64> = history.iter().map(|r| r.version).collect();
    let pending: Vec<&Migration> = files
        .iter()
        .filter(|m| !applied.contains(&m.version))
        .collect();
    Ok(MigrationStatus {
        current_version: history.last().map(|r| r.version),
        pending: pending.iter().map(|m| m.version).collect(),
        pending_files: pending.iter().map(|m| m.up.path.clone()).collect(),
        drifted: drift.iter().map(|d| d.version).collect(),
        drift,
        incomplete: history::incomplete(client).await?,
        applied: history,
    })
}

/// `migrate up --sql`: the script that would bring a database at version
/// `from` (None: empty) up to `revision` (None: the latest). Offline.
pub fn render_up(config: &Config, from: Option<i64>, revision: Option<i64>) -> Result<String> {
    let files = load(config)?;
    let steps: Vec<Step> = files
        .iter()
        .filter(|m| from.is_none_or(|f| m.version > f))
        .filter(|m| revision.is_none_or(|r| m.version <= r))
        .map(Step::up)
        .collect();
    let title = format!(
        "pgwarden migrate up --sql: from {} to {}",
        from.map_or("an empty history".into(), |v| format!("version {v}")),
        revision.map_or("the latest version".into(), |v| format!("version {v}"))
    );
    Ok(plan::render(&config.migrations, &title, &steps, Utc::now()))
}

/// `migrate down --sql`: the script that would revert a database at version
/// `from` (None: the latest file) to `revision` (None: one migration back). Offline.
pub fn render_down(config: &Config, from: Option<i64>, revision: Option<i64>) -> Result<String> {
    let files = load(config)?;
    let history: Vec<HistoryRow> = files
        .iter()
        .filter(|m| from.is_none_or(|f| m.version <= f))
        .map(|m| HistoryRow {
            version: m.version,
            name: m.name.clone(),
            applied_on: String::new(),
            checksum: m.checksum.to_string(),
        })
        .collect();
    let versions = versions_to_revert(&history, revision);
    let steps = down_steps(&files, &versions)?;
    let title = format!(
        "pgwarden migrate down --sql: from {} to {}",
        history
            .last()
            .map_or("an empty history".into(), |r| format!(
                "version {}",
                r.version
            )),
        revision.map_or("one migration back".into(), |v| format!("version {v}"))
    );
    Ok(plan::render(&config.migrations, &title, &steps, Utc::now()))
}

/// In production, a backup first; its failure stops the migration.
async fn guard_production(config: &Config, target: &TargetConfig) -> Result<()> {
    if config.environment != Environment::Production {
        return Ok(());
    }
    crate::backup::before_migrate(config, target)
        .await
        .map_err(|e| {
            e.context("production: the backup before migrating failed, nothing was migrated")
        })
}

/// A failure after some migrations went through: say which ones stay done.
fn after_partial_run(error: Error, done: &[AppliedMigration]) -> Error {
    if done.is_empty() {
        return error;
    }
    let done: Vec<String> = done
        .iter()
        .map(|m| format!("V{}__{}", m.version, m.name))
        .collect();
    Error::failed(format!(
        "{}
Completed before it (and kept): {}",
        error.message(),
        done.join(", ")
    ))
}
