//! Scratch databases: where folders of SQL and migrations become catalogs.
//!
//! On `schema.dev_url` when it is set (each scratch database is created
//! there and dropped afterwards), otherwise in a throwaway local cluster
//! started on first use and removed when the [`Scratch`] is closed (its
//! reaper removes it even if pgwarden is killed). A scratch database is
//! never a configured target.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use tokio_postgres::Client;

use crate::cluster::Cluster;
use crate::config::{Config, Environment, TargetConfig};
use crate::dburl::DbUrl;
use crate::error::{Error, Result};
use crate::migrate::session::db_message;
use crate::migrate::{self, UpOptions};

pub struct Scratch {
    dev_url: Option<DbUrl>,
    cluster: Option<Arc<Cluster>>,
    created: Vec<String>,
}

impl Scratch {
    pub fn new(config: &Config) -> Scratch {
        Scratch {
            dev_url: config.schema.dev_url.clone(),
            cluster: None,
            created: Vec::new(),
        }
    }

    /// The server's maintenance URL, starting the local cluster if needed.
    async fn admin_url(&mut self) -> Result<DbUrl> {
        if let Some(url) = &self.dev_url {
            return Ok(url.clone());
        }
        if self.cluster.is_none() {
            tracing::info!("starting a throwaway PostgreSQL cluster for scratch databases");
            let cluster = tokio::task::spawn_blocking(Cluster::start)
                .await
                .map_err(|e| Error::failed(format!("starting the scratch cluster was interrupted: {e}")))?
                .map_err(|e| {
                    e.context("cannot start a scratch PostgreSQL (set schema.dev_url to use an existing server instead)")
                })?;
            self.cluster = Some(Arc::new(cluster));
        }
        Ok(self.cluster.as_ref().expect("just started").url())
    }

    /// A new empty database; returns its URL.
    pub async fn database(&mut self) -> Result<DbUrl> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let admin = self.admin_url().await?;
        let name = format!(
            "pgwarden_scratch_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let client = connect(&admin, "scratch").await?;
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .map_err(|e| {
                Error::failed(format!(
                    "cannot create scratch database {name} on {}: {}; the dev database's user needs CREATEDB",
                    admin.redacted(),
                    db_message(&e)
                ))
            })?;
        self.created.push(name.clone());
        Ok(admin.with_database(&name))
    }

    /// Drop the scratch databases made on the dev server; stop the cluster.
    pub async fn close(mut self) {
        if let (Some(admin), false) = (&self.dev_url, self.created.is_empty())
            && let Ok(client) = connect(admin, "scratch").await
        {
            for name in self.created.drain(..) {
                if let Err(e) = client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                {
                    tracing::warn!("could not drop scratch database {name}: {}", db_message(&e));
                }
            }
        }
        if let Some(cluster) = self.cluster.take() {
            let _ = tokio::task::spawn_blocking(move || drop(cluster)).await;
        }
    }

    /// A database holding what the SQL files of `dir` create.
    pub async fn load_folder(&mut self, dir: &Path) -> Result<DbUrl> {
        let files = sql_files(dir)?;
        let url = self.database().await?;
        let client = connect(&url, "scratch").await?;
        for file in files {
            let sql = std::fs::read_to_string(&file)
                .map_err(|e| Error::usage(format!("cannot read {}: {e}", file.display())))?;
            client
                .batch_execute(&sql)
                .await
                .map_err(|e| Error::usage(sql_error(&file, &sql, &e)))?;
        }
        Ok(url)
    }

    /// A database migrated by the migrations folder up to `version` (None: all).
    pub async fn load_migrations(
        &mut self,
        config: &Config,
        version: Option<i64>,
    ) -> Result<DbUrl> {
        if version.is_none() && !migrate::dir(config).exists() {
            // No migrations yet (the first `migrate create --autogenerate`): an empty schema.
            return self.database().await;
        }
        let files = migrate::load(config)?;
        if let Some(v) = version
            && !files.iter().any(|m| m.version == v)
        {
            let known: Vec<String> = files.iter().map(|m| m.version.to_string()).collect();
            return Err(Error::usage(format!(
                "migrations@{v}: no migration has version {v} in {}; known versions: {}",
                migrate::dir(config).display(),
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            )));
        }
        let url = self.database().await?;
        let (scratch_config, target) = scratch_target(config, &url);
        migrate::up(&scratch_config, &target, &UpOptions { revision: version })
            .await
            .map_err(|e| e.context("applying the migrations to a scratch database"))?;
        Ok(url)
    }
}

/// The configuration that migrates a scratch database: the same migrations,
/// never production's backup-before-migrate.
pub fn scratch_target(config: &Config, url: &DbUrl) -> (Config, TargetConfig) {
    let mut scratch = config.clone();
    scratch.environment = Environment::Development;
    let mut target = TargetConfig::from_url("scratch", url.clone());
    target.backup = false;
    scratch.targets = vec![target.clone()];
    (scratch, target)
}

/// Connect to `url` directly (no pool).
pub async fn connect(url: &DbUrl, name: &str) -> Result<Client> {
    let mut target = TargetConfig::from_url(name, url.clone());
    target.connect_timeout = crate::config::Duration::secs(10);
    crate::pool::connect_direct(&target).await
}

/// The `.sql` files under `dir`, in name order (subfolders included, by path).
pub fn sql_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    collect(dir, &mut found)?;
    found.sort();
    if found.is_empty() {
        return Err(Error::usage(format!(
            "{} holds no .sql files; put the CREATE statements of the desired schema there (schema.dir)",
            dir.display()
        )));
    }
    Ok(found)
}

fn collect(dir: &Path, found: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Error::usage(format!("cannot read folder {}: {e}", dir.display())))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, found)?;
        } else if path.extension().is_some_and(|e| e == "sql") {
            found.push(path);
        }
    }
    Ok(())
}

/// The error of a file, with its line when the server gave a position.
fn sql_error(file: &Path, sql: &str, error: &tokio_postgres::Error) -> String {
    let line = error
        .as_db_error()
        .and_then(|db| match db.position() {
            Some(tokio_postgres::error::ErrorPosition::Original(p)) => Some(*p as usize),
            _ => None,
        })
        .map(|p| {
            let upto: String = sql.chars().take(p.saturating_sub(1)).collect();
            format!(" line {}", upto.matches('\n').count() + 1)
        })
        .unwrap_or_default();
    format!(
        "{}{line}: {}; fix the SQL (it is loaded into a scratch database)",
        file.display(),
        db_message(error)
    )
}
