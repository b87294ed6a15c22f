//! Seed data per environment, and load-test data at scale.
//!
//! One job per module:
//! - [`dataset`]: what each environment gets (volumes, catalogs);
//! - [`ids`]: stable ids and the seeded random streams;
//! - [`generate`]: the deterministic rows of every table, as typed [`rows`];
//! - [`rows`]: typed field values, and the two encodings tokio-postgres lacks;
//! - [`writer`]: COPY into the database (idempotent or fast);
//! - [`bulk`]: keys and indexes after the data, for `--scale` on empty tables;
//! - [`stats`], [`clear`]: `seed stats` and `seed clear`;
//! - [`admin`]: password hashes (argon2id).
//!
//! **Deterministic.** Ids and random choices derive from `seed.random_seed`,
//! the row's kind and its index. Timestamps are offsets from an *anchor*,
//! never `now()`: `seed.anchor` (a date) when set, so data is byte-identical
//! on every run on every day (fixtures, CI); by default the start (00:00 UTC)
//! of the current day, so dashboards show sessions over the last weeks. With
//! the default, two databases seeded on the same UTC day are identical; on
//! different days every timestamp is shifted by whole days and nothing else
//! differs. Data that is recent *and* identical on every day cannot exist;
//! this makes the trade-off explicit.
//!
//! **Idempotent.** Ids are stable and every row goes in with `ON CONFLICT DO
//! NOTHING`, so a second run inserts nothing. **Atomic.** One transaction
//! (serialised with other seeders by an advisory lock): a failure leaves the
//! database as it was. **Countable.** Seeded ids share a prefix
//! ([`ids::SEEDED_PREFIX`]), which is how `seed stats` and `seed clear` find them.

pub mod admin;
pub mod bulk;
pub mod clear;
pub mod dataset;
pub mod generate;
pub mod ids;
pub mod rows;
pub mod stats;
pub mod writer;

use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

pub use self::admin::{AdminCredentials, DEV_PASSWORD};
use self::dataset::Plan;
use self::generate::TABLES;
pub use self::stats::{TableStats, stats};
pub use self::writer::Progress;
use self::writer::{Mode, Tracker, db_error};
use crate::checks::rows::value;
use crate::config::{Environment, TargetConfig};
use crate::error::{Error, Result};

/// `[seed]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SeedConfig {
    /// The fixed random seed that makes seeding deterministic.
    pub random_seed: u64,
    /// The date (YYYY-MM-DD, 00:00 UTC) seed timestamps are relative to;
    /// empty: the start of the current UTC day.
    pub anchor: String,
}

impl Default for SeedConfig {
    fn default() -> Self {
        Self {
            random_seed: 20_240_901,
            anchor: String::new(),
        }
    }
}

/// Called as a seed run progresses (the CLI draws a progress bar with it).
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// Options of `seed run`.
#[derive(Clone, Default)]
pub struct SeedOptions {
    /// The environment whose data set to load (the config's by default).
    pub environment: Option<crate::config::Environment>,
    /// Remove earlier seed data first (development only).
    pub clear: bool,
    /// Multiply the development volumes (development only).
    pub scale: Option<u32>,
    /// The production admin's login (PGWARDEN_ADMIN_EMAIL / _PASSWORD).
    pub admin: Option<AdminCredentials>,
    pub progress: Option<ProgressFn>,
}

impl std::fmt::Debug for SeedOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeedOptions")
            .field("environment", &self.environment)
            .field("clear", &self.clear)
            .field("scale", &self.scale)
            .field("admin", &self.admin)
            .finish_non_exhaustive()
    }
}

/// What a seed run inserted, per table.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SeedReport {
    pub inserted: Vec<(String, u64)>,
    /// Rows deleted first by `--clear`, per table.
    #[serde(default)]
    pub cleared: Vec<(String, u64)>,
    /// Wall time of the run.
    #[serde(default)]
    pub seconds: f64,
    /// Of which writing the rows (COPY or staged inserts).
    #[serde(default)]
    pub copy_seconds: f64,
    /// Of which building keys and indexes and checking foreign keys after a
    /// bulk load into empty tables (0 otherwise).
    #[serde(default)]
    pub rebuild_seconds: f64,
}

impl SeedReport {
    pub fn total(&self) -> u64 {
        self.inserted.iter().map(|(_, n)| n).sum()
    }
}

/// Seed `target` with the data set of an environment, in one transaction.
pub async fn run(
    config: &crate::config::Config,
    target: &TargetConfig,
    options: &SeedOptions,
) -> crate::Result<SeedReport> {
    let started = Instant::now();
    let plan = plan_for(config, options)?;
    ensure_at_head(config, target).await?;
    let mut client = crate::pool::connect_direct(target).await?;
    ensure_schema(&client).await?;
    let tx = client
        .transaction()
        .await
        .map_err(|e| db_error("starting the seed transaction", &e))?;
    tx.execute("SELECT pg_advisory_xact_lock(7240901)", &[])
        .await
        .map_err(|e| db_error("waiting for another seed run", &e))?;
    let cleared = if options.clear {
        clear::clear_in(&tx).await?
    } else {
        Vec::new()
    };
    check_same_seed(&tx, &plan).await?;
    let mode = if options.scale.is_some() {
        scale_mode(&tx, &plan).await?
    } else {
        Some(Mode::Upsert)
    };
    let mut report = match mode {
        Some(mode) => load(&tx, &plan, mode, options, started).await?,
        // This scale is already there.
        None => SeedReport {
            inserted: TABLES.iter().map(|t| (t.name().to_string(), 0)).collect(),
            ..SeedReport::default()
        },
    };
    tx.commit()
        .await
        .map_err(|e| db_error("committing the seed data", &e))?;
    report.cleared = cleared;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// The data set to load: the environment's, checked against the options,
/// with its password hashes.
fn plan_for(config: &crate::config::Config, options: &SeedOptions) -> Result<Plan> {
    let environment = options.environment.unwrap_or(config.environment);
    if options.clear {
        clear::ensure_allowed(environment, "`seed run --clear`")?;
    }
    let scale = match options.scale {
        None => 1,
        Some(0) => return Err(Error::usage("--scale must be at least 1")),
        Some(n) if environment == Environment::Development => u64::from(n),
        Some(_) => {
            return Err(Error::usage(format!(
                "--scale is for load tests and runs only in development, not in {environment}"
            )));
        }
    };
    let mut plan = Plan::new(
        environment,
        config.seed.random_seed,
        anchor(&config.seed)?,
        scale,
    );
    if environment == Environment::Production {
        plan.admin = Some(admin::admin_account(options.admin.as_ref())?);
    } else {
        plan.user_password_hash = admin::dev_password_hash()?;
    }
    Ok(plan)
}

/// Write every table; with [`Mode::Direct`] into empty tables, keys and
/// indexes are built after the data ([`bulk`]). Returns the rows per table
/// and the time of each phase.
async fn load(
    tx: &tokio_postgres::Transaction<'_>,
    plan: &Plan,
    mode: Mode,
    options: &SeedOptions,
    started: Instant,
) -> Result<SeedReport> {
    let silent = |_: &Progress| {};
    let mut tracker = Tracker {
        started,
        units_done: 0,
        units_total: TABLES.iter().map(|t| t.units(plan)).sum(),
        rows: 0,
        report: options.progress.as_deref().unwrap_or(&silent),
    };
    let names: Vec<&str> = TABLES.iter().map(|t| t.name()).collect();
    let deferred = match mode {
        Mode::Direct => bulk::defer_if_empty(tx, &names).await?,
        _ => None,
    };
    let mut inserted = Vec::new();
    let copying = Instant::now();
    for table in TABLES {
        let mode = match &deferred {
            Some(d) if d.frozen(table.name()) => Mode::Frozen,
            _ => mode,
        };
        let n = writer::write_table(tx, plan, table, mode, &mut tracker).await?;
        inserted.push((table.name().to_string(), n));
    }
    let copy_seconds = copying.elapsed().as_secs_f64();
    tracing::debug!(seconds = copy_seconds, rows = tracker.rows, "phase: COPY");
    let mut rebuild_seconds = 0.0;
    if let Some(deferred) = deferred {
        let rebuilding = Instant::now();
        (tracker.report)(&Progress {
            table: "(keys and indexes)",
            units_done: tracker.units_done,
            units_total: tracker.units_total,
            rows: tracker.rows,
            elapsed: started.elapsed(),
        });
        tracing::debug!(statements = deferred.len(), "recreating keys and indexes");
        bulk::restore(tx, deferred).await?;
        rebuild_seconds = rebuilding.elapsed().as_secs_f64();
        tracing::debug!(
            seconds = rebuild_seconds,
            "phase: keys, indexes and foreign keys rebuilt"
        );
    }
    Ok(SeedReport {
        inserted,
        copy_seconds,
        rebuild_seconds,
        ..SeedReport::default()
    })
}

/// `seed clear`: delete every seeded row of `target`, development only.
pub async fn clear(
    config: &crate::config::Config,
    target: &TargetConfig,
    environment: Option<Environment>,
) -> Result<Vec<(String, u64)>> {
    clear::ensure_allowed(environment.unwrap_or(config.environment), "`seed clear`")?;
    let mut client = crate::pool::connect_direct(target).await?;
    ensure_schema(&client).await?;
    let tx = client
        .transaction()
        .await
        .map_err(|e| db_error("starting the clear transaction", &e))?;
    let deleted = clear::clear_in(&tx).await?;
    tx.commit()
        .await
        .map_err(|e| db_error("committing the clear", &e))?;
    Ok(deleted)
}

/// The anchor (Unix seconds) of every seeded timestamp; see the module docs.
pub fn anchor(config: &SeedConfig) -> Result<i64> {
    let text = config.anchor.trim();
    let date = if text.is_empty() {
        chrono::Utc::now().date_naive()
    } else {
        chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|e| {
            Error::usage(format!(
                "seed.anchor = {text:?} is not a date: {e}; write it as \"2024-09-01\", or \"\" for today"
            ))
        })?
    };
    Ok(date.and_time(chrono::NaiveTime::MIN).and_utc().timestamp())
}

/// Seed data is written for the schema at the head of the migrations:
/// refuse while migrations are pending or half-done.
async fn ensure_at_head(config: &crate::config::Config, target: &TargetConfig) -> Result<()> {
    let status = crate::migrate::status(config, target).await?;
    if !status.drifted.is_empty() {
        tracing::warn!(versions = ?status.drifted, "applied migrations differ from their files");
    }
    if status.pending.is_empty() && status.incomplete.is_empty() {
        return Ok(());
    }
    let pending: Vec<String> = status.pending.iter().map(i64::to_string).collect();
    Err(Error::failed(format!(
        "target `{}` is not migrated to the head ({} pending: {}{}); run `pgwarden migrate up` first; nothing was seeded",
        target.name,
        status.pending.len(),
        pending.join(", "),
        if status.incomplete.is_empty() {
            ""
        } else {
            "; a migration stopped midway, see `pgwarden migrate status`"
        }
    )))
}

/// Seeding needs the education schema: refuse clearly when it is not there.
pub(crate) async fn ensure_schema(client: &tokio_postgres::Client) -> Result<()> {
    let names: Vec<&str> = TABLES.iter().map(|t| t.name()).collect();
    let row = client
        .query_one(
            "SELECT coalesce(array_agg(n ORDER BY n), '{}') FROM unnest($1::text[]) AS n WHERE to_regclass(n) IS NULL",
            &[&names],
        )
        .await
        .map_err(|e| db_error("checking the schema", &e))?;
    let missing: Vec<String> = value(&row, 0, "checking the schema")?;
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::failed(format!(
        "the database is not migrated to the head: tables {} are missing; run `pgwarden migrate up` first (nothing was seeded)",
        missing.join(", ")
    )))
}

/// Seed data made with another `seed.random_seed` has other ids (and maybe
/// the same emails): mixing the two could fail halfway and would blur what
/// `seed stats` counts, so refuse up front. Every data set starts with user 0.
async fn check_same_seed(tx: &tokio_postgres::Transaction<'_>, plan: &Plan) -> Result<()> {
    let (lo, hi) = ids::seeded_range();
    let first = ids::id(plan.seed, ids::Kind::User, 0);
    let row = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM users WHERE id BETWEEN $1 AND $2), \
                    EXISTS (SELECT 1 FROM users WHERE id = $3)",
            &[&lo, &hi, &first],
        )
        .await
        .map_err(|e| db_error("looking for earlier seed data", &e))?;
    let what = "looking for earlier seed data";
    let (any_seeded, ours): (bool, bool) = (value(&row, 0, what)?, value(&row, 1, what)?);
    if !any_seeded || ours {
        return Ok(());
    }
    Err(Error::usage(format!(
        "the database holds seed data this configuration did not make (another \
         seed.random_seed than {}, or ids from an earlier pgwarden build); \
         run `pgwarden seed clear` (development) or set seed.random_seed back",
        plan.seed
    )))
}

/// `--scale` copies straight into the tables, which only works on a database
/// without seed data. `None`: this scale is already seeded, nothing to do.
async fn scale_mode(tx: &tokio_postgres::Transaction<'_>, plan: &Plan) -> Result<Option<Mode>> {
    let (lo, hi) = ids::seeded_range();
    let last_user = ids::id(plan.seed, ids::Kind::User, plan.users - 1);
    let mut seeded = 0i64;
    for table in TABLES {
        let row = tx
            .query_one(
                &format!(
                    "SELECT count(*) FROM (SELECT 1 FROM {} WHERE id BETWEEN $1 AND $2 LIMIT 1) s",
                    table.name()
                ),
                &[&lo, &hi],
            )
            .await
            .map_err(|e| db_error("looking for earlier seed data", &e))?;
        seeded += value::<i64>(&row, 0, "looking for earlier seed data")?;
    }
    if seeded == 0 {
        return Ok(Some(Mode::Direct));
    }
    // This very scale: its last user is there and the next size's first is not.
    let beyond = ids::id(plan.seed, ids::Kind::User, plan.users);
    let row = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1) \
                    AND NOT EXISTS (SELECT 1 FROM users WHERE id = $2)",
            &[&last_user, &beyond],
        )
        .await
        .map_err(|e| db_error("looking for earlier seed data", &e))?;
    let done: bool = value(&row, 0, "looking for earlier seed data")?;
    if done {
        return Ok(None);
    }
    Err(Error::usage(
        "the database already holds seed data of another size; add --clear to replace it with this scale",
    ))
}
