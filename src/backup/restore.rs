//! Restoring a backup, in two steps so nothing is touched until it is safe.
//!
//! [`prepare`] checks the file against its manifest (size, sha256, readable
//! archive) and the production guard without touching any database; the
//! CLI asks for confirmation in between; [`Prepared::run`] then creates the
//! database if needed and loads the dump in a single transaction, so a
//! restore that fails half-way leaves the database as it was (and a
//! database it created is dropped again).

use crate::sql::quote_ident;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use super::manifest::Manifest;
use super::tools::{self, Connection, Tools};
use super::{Format, dump, verify};
use crate::config::{Config, Environment, TargetConfig};
use crate::error::{Error, Result};
use crate::pool::Target;

#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    /// Restore into this database (created when missing) instead of the target's own.
    pub database: Option<String>,
    /// Drop the objects in the dump before recreating them.
    pub clean: bool,
    /// Allow restoring in production.
    pub force: bool,
}

/// A backup that passed every check, ready to be restored.
#[derive(Debug)]
pub struct Prepared {
    pub path: PathBuf,
    pub manifest: Manifest,
    pub target: TargetConfig,
    pub database: String,
    clean: bool,
    tools: Tools,
}

#[derive(Clone, Debug, Serialize)]
pub struct RestoreReport {
    pub database: String,
    pub created: bool,
    pub duration_seconds: f64,
    /// Tables whose row count differs from the manifest's (empty: all match).
    pub mismatched_tables: Vec<String>,
}

/// Check the backup and the guard rails; touches no database.
pub async fn prepare(
    config: &Config,
    target: &TargetConfig,
    path: &Path,
    options: &RestoreOptions,
) -> Result<Prepared> {
    let (manifest, tools) = verify::check_file(config, path).await.map_err(|e| {
        e.context(format!(
            "refusing to restore {}; the database was not touched",
            path.display()
        ))
    })?;
    if config.environment == Environment::Production && !options.force {
        return Err(Error::usage(format!(
            "refusing to restore into target `{}` in production without --force",
            target.name
        )));
    }
    if options.clean && manifest.format == Format::Plain {
        return Err(Error::usage(
            "--clean needs a custom or directory backup; restore a plain backup into a new database (--database NAME) instead",
        ));
    }
    let database = options
        .database
        .clone()
        .unwrap_or_else(|| target.url().database());
    Ok(Prepared {
        path: path.to_path_buf(),
        manifest,
        target: target.clone(),
        database,
        clean: options.clean,
        tools,
    })
}

impl Prepared {
    /// Create the database if missing, load the dump, compare row counts.
    /// A restore that fails after creating the database drops it again.
    pub async fn run(&self) -> Result<RestoreReport> {
        let started = Instant::now();
        let created = ensure_database(&self.target, &self.database).await?;
        let counts = match self.load_and_count().await {
            Ok(counts) => counts,
            Err(e) if created => return Err(self.drop_created(e).await),
            Err(e) => return Err(e),
        };
        Ok(RestoreReport {
            database: self.database.clone(),
            created,
            duration_seconds: started.elapsed().as_secs_f64(),
            mismatched_tables: verify::mismatches(&self.manifest.row_counts, &counts),
        })
    }

    async fn load_and_count(&self) -> Result<std::collections::BTreeMap<String, i64>> {
        load_into(
            &self.tools,
            &self.target,
            &self.database,
            &self.path,
            self.manifest.format,
            self.clean,
        )
        .await?;
        count_rows_in(&self.target, &self.database).await
    }

    /// Leave no database behind that the failed restore itself created; if
    /// even that fails, say so next to the first error (never hide it).
    async fn drop_created(&self, error: Error) -> Error {
        match drop_database(&self.target, &self.database).await {
            Ok(()) => error.context(format!(
                "database `{}` (created by this restore) dropped again",
                self.database
            )),
            Err(drop) => error.context(format!(
                "database `{}` was created by this restore and could not be dropped ({drop}); drop it by hand",
                self.database
            )),
        }
    }
}

/// The target's settings, pointed at another database of the same server.
pub fn on_database(target: &TargetConfig, database: &str) -> TargetConfig {
    let mut other = target.clone();
    other.url = Some(target.url().with_database(database));
    other.pool_size = crate::config::PoolSize::new(1);
    other.max_overflow = crate::config::Overflow::new(0);
    other
}

/// Create `database` unless it exists; true when created.
pub async fn ensure_database(target: &TargetConfig, database: &str) -> Result<bool> {
    let admin = admin_session(target, database)?;
    let client = admin.client().await?;
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&database])
        .await
        .map_err(|e| super::sql_error(target, "cannot look up the database", &e))?
        .is_some();
    if exists {
        return Ok(false);
    }
    client
        .batch_execute(&format!("CREATE DATABASE {}", quote_ident(database)))
        .await
        .map_err(|e| {
            super::sql_error(target, &format!("cannot create database `{database}`"), &e)
        })?;
    Ok(true)
}

/// Drop a (scratch) database, disconnecting anyone still in it.
pub async fn drop_database(target: &TargetConfig, database: &str) -> Result<()> {
    let admin = admin_session(target, database)?;
    let client = admin.client().await?;
    client
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(database)
        ))
        .await
        .map_err(|e| super::sql_error(target, &format!("cannot drop database `{database}`"), &e))
}

/// A session on another database of the server than `database` itself:
/// the target's own, or `postgres` when that is the one being handled.
fn admin_session(target: &TargetConfig, database: &str) -> Result<Target> {
    let own = target.url().database();
    let admin_db = if own == database {
        "postgres"
    } else {
        own.as_str()
    };
    Target::new(&on_database(target, admin_db))
}

/// Load a dump into an existing database in one transaction.
pub async fn load_into(
    tools: &Tools,
    target: &TargetConfig,
    database: &str,
    path: &Path,
    format: Format,
    clean: bool,
) -> Result<()> {
    let connection = Connection::new(target, Some(database));
    let (program, what) = match format {
        Format::Plain => (&tools.psql, "psql"),
        _ => (&tools.pg_restore, "pg_restore"),
    };
    let mut command = connection.command(program);
    match format {
        Format::Plain => {
            command.args([
                "--no-psqlrc",
                "--quiet",
                "--no-password",
                "--set=ON_ERROR_STOP=1",
                "--single-transaction",
            ]);
            command.arg("--file").arg(path);
        }
        _ => {
            command.args(["--no-password", "--exit-on-error", "--single-transaction"]);
            if clean {
                command.args(["--clean", "--if-exists"]);
            }
            command.arg(path);
        }
    }
    command.arg(connection.dbname_arg());
    tools::run(&mut command, what)
        .await
        .map(|_| ())
        .map_err(|e| {
            e.context(format!(
            "restore of {} into database `{database}` of target `{}` failed and was rolled back",
            path.display(),
            target.name
        ))
        })
}

/// Exact row counts of every table of `database`.
pub async fn count_rows_in(
    target: &TargetConfig,
    database: &str,
) -> Result<std::collections::BTreeMap<String, i64>> {
    let session = Target::new(&on_database(target, database))?;
    let client = session.client().await?;
    dump::count_rows(&client)
        .await
        .map_err(|e| super::sql_error(target, "cannot count rows", &e))
}
