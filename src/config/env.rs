//! Environment overrides, as the old toolkit read them.

use std::collections::BTreeMap;
use std::path::Path;

use super::{Config, Environment, Overflow, PoolSize, TargetConfig};
use crate::dburl::DbUrl;
use crate::error::{Error, Result};

/// A snapshot of the environment variables pgwarden reads.
///
/// Taking a snapshot (instead of calling `std::env::var` everywhere) keeps the
/// library free of global state, so tests can load configs side by side.
#[derive(Clone, Debug, Default)]
pub struct EnvVars(BTreeMap<String, String>);

impl EnvVars {
    /// The process environment, with `.env` in `dir` filling in unset variables.
    pub fn from_process(dir: &Path) -> Result<Self> {
        let mut vars: BTreeMap<String, String> = BTreeMap::new();
        let dotenv = dir.join(".env");
        if dotenv.exists() {
            let entries = dotenvy::from_path_iter(&dotenv)
                .map_err(|e| Error::usage(format!("cannot read {}: {e}", dotenv.display())))?;
            for entry in entries {
                let (key, value) = entry.map_err(|e| {
                    Error::usage(format!(
                        "{}: {e}; write one KEY=value per line",
                        dotenv.display()
                    ))
                })?;
                vars.insert(key, value);
            }
        }
        vars.extend(std::env::vars());
        Ok(Self(vars))
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A variable that is set and not empty.
    fn non_empty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.trim().is_empty())
    }
}

pub(super) fn apply(config: &mut Config, env: &EnvVars) -> Result<()> {
    if let Some(text) = env.non_empty("DATABASE_URL") {
        let url = DbUrl::parse(text)
            .map_err(|e| Error::usage(format!("DATABASE_URL is not usable: {e}")))?;
        match config.targets.first_mut() {
            Some(first) => {
                first.url = Some(url);
                first.url_file = None;
            }
            None => config.targets.push(TargetConfig::from_url("default", url)),
        }
    }
    if let Some(text) = env.non_empty("DATABASE_POOL_SIZE") {
        let size: PoolSize = parse_number("DATABASE_POOL_SIZE", text, PoolSize::try_new)?;
        config.targets.iter_mut().for_each(|t| t.pool_size = size);
    }
    if let Some(text) = env.non_empty("DATABASE_MAX_OVERFLOW") {
        let overflow: Overflow = parse_number("DATABASE_MAX_OVERFLOW", text, Overflow::try_new)?;
        config
            .targets
            .iter_mut()
            .for_each(|t| t.max_overflow = overflow);
    }
    if let Some(text) = env.non_empty("DATABASE_ECHO") {
        config.log.echo = parse_bool("DATABASE_ECHO", text)?;
    }
    if let Some(text) = env.non_empty("PGWARDEN_ENV") {
        config.environment =
            Environment::parse(text).map_err(|e| Error::usage(format!("PGWARDEN_ENV: {e}")))?;
    }
    Ok(())
}

fn parse_number<T>(name: &str, text: &str, build: fn(u64) -> Result<T, String>) -> Result<T> {
    let number: u64 = text.trim().parse().map_err(|_| {
        Error::usage(format!(
            "{name}=`{text}` is not a whole number; set it like {name}=10"
        ))
    })?;
    build(number).map_err(|e| Error::usage(format!("{name}: {e}")))
}

fn parse_bool(name: &str, text: &str) -> Result<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(Error::usage(format!(
            "{name}=`{text}` is not a boolean; use true or false"
        ))),
    }
}
