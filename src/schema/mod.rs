//! Schema as code: the desired schema as a folder of SQL, compared with
//! databases and migrations through PostgreSQL's own catalogs.
//!
//! Anything that is not a live database (a folder, the migrations) becomes
//! one in a [`scratch`] database; every side is then read into a
//! [`model::Model`] by [`introspect`] and compared by [`diff`].

pub mod autogen;
pub mod diff;
pub mod drift;
pub mod introspect;
pub mod model;
pub mod scratch;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use self::diff::{Diff, Statement};
pub use self::model::Model;
use self::scratch::Scratch;
use crate::config::{Config, Duration};
use crate::dburl::DbUrl;
use crate::error::{Error, Result};

/// `[schema]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchemaConfig {
    /// Folder of the desired schema's SQL files.
    pub dir: PathBuf,
    /// A server for scratch databases (needs CREATEDB); unset: a throwaway local cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dev_url: Option<DbUrl>,
    /// How often the daemon compares each migrated target with the catalog
    /// fingerprint recorded when pgwarden migrated it; 0 (the default): off,
    /// and migrations record no fingerprint.
    pub drift_interval: Duration,
}

impl Default for SchemaConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("schema"),
            dev_url: None,
            drift_interval: Duration::secs(0),
        }
    }
}

/// One side of a comparison, as written on the command line.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    Url(DbUrl),
    Target(String),
    Folder(PathBuf),
    /// The migrations folder at its head (None) or at a version.
    Migrations(Option<i64>),
}

impl Source {
    /// A URL, `migrations[@VERSION]`, a configured target's name, or a folder.
    pub fn parse(text: &str, config: &Config) -> Result<Source> {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return DbUrl::parse(text).map(Source::Url).map_err(Error::usage);
        }
        if text == "migrations" {
            return Ok(Source::Migrations(None));
        }
        if let Some(version) = text.strip_prefix("migrations@") {
            return version.parse().map(|v| Source::Migrations(Some(v))).map_err(|_| {
                Error::usage(format!(
                    "`{text}`: the version after migrations@ must be a migration's number, e.g. migrations@20240901000000"
                ))
            });
        }
        if config.targets.iter().any(|t| t.name.as_str() == text) {
            return Ok(Source::Target(text.to_string()));
        }
        let path = PathBuf::from(text);
        if path.is_dir() {
            return Ok(Source::Folder(path));
        }
        let known: Vec<String> = config.targets.iter().map(|t| t.name.to_string()).collect();
        Err(Error::usage(format!(
            "`{text}` is not a postgresql:// URL, `migrations`, `migrations@VERSION`, a configured target ({}) or an existing folder",
            if known.is_empty() {
                "none configured".to_string()
            } else {
                known.join(", ")
            }
        )))
    }

    /// Whether reading it needs a scratch database.
    pub fn needs_scratch(&self) -> bool {
        matches!(self, Source::Folder(_) | Source::Migrations(_))
    }
}

/// Read a database's schema.
pub async fn read_url(url: &DbUrl) -> Result<Model> {
    let client = scratch::connect(url, "schema").await?;
    introspect::read_model(&client).await
}

/// A side as a live database: folders and migrations are loaded into a scratch one.
pub async fn materialize(
    source: &Source,
    config: &Config,
    scratch: &mut Scratch,
) -> Result<Source> {
    Ok(match source {
        Source::Folder(dir) => Source::Url(scratch.load_folder(dir).await?),
        Source::Migrations(version) => {
            Source::Url(scratch.load_migrations(config, *version).await?)
        }
        live => live.clone(),
    })
}

/// The model of a live side (after [`materialize`]).
pub async fn load(source: &Source, config: &Config) -> Result<Model> {
    match source {
        Source::Url(url) => read_url(url).await,
        Source::Target(name) => {
            let target = config.target(Some(name))?;
            let client = crate::pool::connect_direct(target).await?;
            introspect::read_model(&client).await
        }
        other => Err(Error::failed(format!(
            "{other:?} must be loaded into a scratch database first"
        ))),
    }
}

/// The diff between two sources.
pub async fn diff_sources(config: &Config, from: &Source, to: &Source) -> Result<Diff> {
    let mut scratch = Scratch::new(config);
    let result = async {
        // Databases are read side by side; what needs a scratch database loads first.
        let from = materialize(from, config, &mut scratch).await?;
        let to = materialize(to, config, &mut scratch).await?;
        let (a, b) = futures::try_join!(load(&from, config), load(&to, config))?;
        Ok(diff::diff(&a, &b))
    }
    .await;
    scratch.close().await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TargetConfig;

    #[test]
    fn sides_are_urls_migrations_targets_or_folders() {
        let mut config = Config::default();
        let url = DbUrl::parse("postgresql://u:p@db/app").unwrap();
        config
            .targets
            .push(TargetConfig::from_url("prod", url.clone()));
        let parse = |t: &str| Source::parse(t, &config);
        assert_eq!(parse("postgresql://u:p@db/app"), Ok(Source::Url(url)));
        assert_eq!(parse("migrations"), Ok(Source::Migrations(None)));
        assert_eq!(parse("migrations@42"), Ok(Source::Migrations(Some(42))));
        assert_eq!(parse("prod"), Ok(Source::Target("prod".into())));
        assert_eq!(parse("src"), Ok(Source::Folder("src".into())));
        let bad = parse("migrations@head").unwrap_err();
        assert!(bad.message().contains("migrations@20240901000000"), "{bad}");
        let unknown = parse("prdo").unwrap_err();
        assert!(
            unknown.message().contains("configured target (prod)"),
            "{unknown}"
        );
        assert_eq!(unknown.exit_code(), 2);
    }
}
