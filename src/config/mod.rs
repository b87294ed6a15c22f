//! Configuration: one TOML file, environment overrides, secrets from files.
//!
//! The order is fixed and documented in the README: built-in defaults, then
//! the file (`--config` or `PGWARDEN_CONFIG`), then the environment
//! (`DATABASE_URL`, `DATABASE_POOL_SIZE`, …, with a `.env` file in the working
//! directory filling in what the process environment lacks), then `--env`.
//! `DATABASE_URL` alone, with no file, is a complete configuration.
//!
//! Almost every check happens while the TOML is deserialised (see
//! [`values`]), so that errors carry the line they come from.

mod diagnose;
mod env;
mod validate;
pub mod values;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use self::env::EnvVars;
pub use self::validate::{ConfigError, listen_address};
pub use self::values::{Bounded, Duration, Environment, SslMode, TargetName};
use crate::dburl::DbUrl;
use crate::error::{Error, Result};

pub use diagnose::closest;

/// The whole configuration, after overrides and secrets are resolved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// development | staging | production.
    pub environment: Environment,
    pub log: LogConfig,
    pub http: crate::serve::HttpConfig,
    pub checks: crate::checks::ChecksConfig,
    pub migrations: crate::migrate::MigrationsConfig,
    pub backup: crate::backup::BackupConfig,
    pub seed: crate::seed::SeedConfig,
    /// `[lint]`: migration safety rules (`migrate lint`, the `migrate up` gate).
    pub lint: crate::migrate::lint::LintConfig,
    pub schema: crate::schema::SchemaConfig,
    /// `[fleet]`: discovery targets' connection budget, sharding.
    pub fleet: crate::fleet::FleetConfig,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<TargetConfig>,
    /// The file this came from, if any (not a key).
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            environment: Environment::Development,
            log: LogConfig::default(),
            http: Default::default(),
            checks: Default::default(),
            migrations: Default::default(),
            backup: Default::default(),
            seed: Default::default(),
            lint: Default::default(),
            schema: Default::default(),
            fleet: Default::default(),
            targets: Vec::new(),
            source: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// text | json
    pub format: LogFormat,
    /// A tracing filter such as `info` or `pgwarden=debug`; RUST_LOG wins.
    pub level: String,
    /// Log every SQL statement (DATABASE_ECHO).
    pub echo: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
            echo: false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

pub type PoolSize = Bounded<1, 1000>;
pub type Overflow = Bounded<0, 1000>;
pub type ReplicaCount = Bounded<0, 100>;

/// One database pgwarden watches: a primary, a replica, another database.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    pub name: TargetName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<DbUrl>,
    /// Read the URL from this file (systemd `LoadCredential=`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_file: Option<PathBuf>,
    /// Read the password from this file; it replaces the URL's password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    #[serde(default = "default_pool_size")]
    pub pool_size: PoolSize,
    #[serde(default = "default_overflow")]
    pub max_overflow: Overflow,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: Duration,
    /// How long a caller waits for a free pooled connection.
    #[serde(default = "default_connect_timeout")]
    pub pool_timeout: Duration,
    #[serde(default)]
    pub sslmode: SslMode,
    /// CA bundle (PEM) for verify-ca / verify-full; the system's web roots otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sslrootcert: Option<PathBuf>,
    /// Standbys this primary must have; fewer is critical (replication check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_replicas: Option<ReplicaCount>,
    /// Apply migrations here on SIGUSR1 (the daemon) and by default in `migrate`.
    #[serde(default)]
    pub migrate: bool,
    /// Take scheduled backups of this target (the daemon).
    #[serde(default)]
    pub backup: bool,
    /// Watch every database of the server whose name matches (the daemon);
    /// the URL's own database is only where `pg_database` is listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discover: Option<crate::fleet::Pattern>,
}

fn default_pool_size() -> PoolSize {
    PoolSize::new(5)
}
fn default_overflow() -> Overflow {
    Overflow::new(2)
}
fn default_connect_timeout() -> Duration {
    Duration::secs(5)
}

impl TargetConfig {
    /// A target built from `DATABASE_URL` alone.
    pub fn from_url(name: &str, url: DbUrl) -> Self {
        Self {
            name: TargetName::parse(name).expect("built-in name is valid"),
            url: Some(url),
            url_file: None,
            password_file: None,
            pool_size: default_pool_size(),
            max_overflow: default_overflow(),
            connect_timeout: default_connect_timeout(),
            pool_timeout: default_connect_timeout(),
            sslmode: SslMode::default(),
            sslrootcert: None,
            expected_replicas: None,
            migrate: true,
            backup: true,
            discover: None,
        }
    }

    /// The resolved URL. `Config::load` guarantees it is present.
    pub fn url(&self) -> &DbUrl {
        self.url
            .as_ref()
            .expect("Config::load resolves every target's url")
    }

    /// Pool capacity: the steady size plus the overflow.
    pub fn max_connections(&self) -> usize {
        (self.pool_size.get() + self.max_overflow.get()) as usize
    }
}

/// Where to look for configuration, and with which environment.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    pub path: Option<PathBuf>,
    /// `--env`, which beats the file and PGWARDEN_ENV.
    pub environment: Option<Environment>,
    pub env: EnvVars,
}

impl Config {
    /// Load, override, resolve secrets and validate.
    pub fn load(options: &LoadOptions) -> Result<Config> {
        let path = options
            .path
            .clone()
            .or_else(|| options.env.get("PGWARDEN_CONFIG").map(PathBuf::from));
        let mut config = match &path {
            Some(path) => Self::from_file(path)?,
            None => Config::default(),
        };
        env::apply(&mut config, &options.env)?;
        if let Some(environment) = options.environment {
            config.environment = environment;
        }
        config.resolve_targets(&options.env)?;
        validate::validate(&config)?;
        Ok(config)
    }

    /// Parse a config file. Errors name the file, the line and the key.
    pub fn from_file(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::usage(format!(
                "cannot read config file {}: {e}; pass an existing file with --config",
                path.display()
            ))
            .with_source(e)
        })?;
        let mut config = Self::from_toml(&text, path)?;
        config.source = Some(path.to_path_buf());
        Ok(config)
    }

    /// Parse TOML text; `path` is only used in messages.
    pub fn from_toml(text: &str, path: &Path) -> Result<Config> {
        toml::from_str(text).map_err(|e| Error::usage(diagnose::describe(path, text, &e)))
    }

    /// The effective configuration as TOML, every secret redacted.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }

    /// At least one target, or a message that says how to add one.
    pub fn require_targets(&self) -> Result<&[TargetConfig]> {
        if self.targets.is_empty() {
            return Err(Error::usage(
                "no database configured: set DATABASE_URL, or add a [[targets]] entry with a url to the config file (--config)",
            ));
        }
        Ok(&self.targets)
    }

    /// The named target, or the first one when no name is given.
    pub fn target(&self, name: Option<&str>) -> Result<&TargetConfig> {
        let targets = self.require_targets()?;
        let Some(name) = name else {
            return Ok(&targets[0]);
        };
        targets
            .iter()
            .find(|t| t.name.as_str() == name)
            .ok_or_else(|| {
                let known: Vec<String> = targets.iter().map(|t| t.name.to_string()).collect();
                let hint = closest(name, &known)
                    .map(|k| format!(" Did you mean `{k}`?"))
                    .unwrap_or_default();
                Error::usage(format!(
                    "no target named `{name}`; configured targets: {}.{hint}",
                    known.join(", ")
                ))
            })
    }

    fn resolve_targets(&mut self, env: &EnvVars) -> Result<()> {
        let mut seen = std::collections::BTreeSet::new();
        for (index, target) in self.targets.iter_mut().enumerate() {
            if !seen.insert(target.name.clone()) {
                return Err(Error::usage(format!(
                    "targets[{index}]: target name `{}` is used twice; give each [[targets]] entry its own name",
                    target.name
                )));
            }
            resolve_secrets(target, env)
                .map_err(|e| e.context(format!("target `{}` (targets[{index}])", target.name)))?;
        }
        Ok(())
    }
}

/// Fill `url` from `url_file`, then apply `password_file`.
fn resolve_secrets(target: &mut TargetConfig, env: &EnvVars) -> Result<()> {
    if let Some(file) = &target.url_file {
        if target.url.is_some() {
            return Err(Error::usage("set either `url` or `url_file`, not both"));
        }
        let (path, text) = read_secret_file(file, env, "url_file", "database URL")?;
        let url = DbUrl::parse(&text)
            .map_err(|e| Error::usage(format!("url_file {}: {e}", path.display())))?;
        target.url = Some(url);
    }
    let Some(url) = &target.url else {
        return Err(Error::usage(
            "no url: set `url` or `url_file` (DATABASE_URL sets the first target's url)",
        ));
    };
    if let Some(file) = &target.sslrootcert {
        std::fs::metadata(file).map_err(|e| {
            Error::usage(format!(
                "cannot read sslrootcert {}: {e}; point it at the PEM file of the CA that signed the server's certificate",
                file.display()
            ))
            .with_source(e)
        })?;
    }
    if let Some(file) = &target.password_file {
        let (path, password) = read_secret_file(file, env, "password_file", "password")?;
        let url = url
            .with_password(&password)
            .map_err(|e| Error::usage(format!("password_file {}: {e}", path.display())))?;
        target.url = Some(url);
    }
    Ok(())
}

/// Read a secret file (after `${VAR}` expansion), trimming the trailing
/// newline editors add. An empty file is refused by name: an empty password
/// would otherwise surface later as a vague driver error.
fn read_secret_file(
    file: &Path,
    env: &EnvVars,
    key: &str,
    what: &'static str,
) -> Result<(PathBuf, String)> {
    let path = expand_vars(file, env, key)?;
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Error::usage(format!(
            "cannot read {key} {}: {e}; check the path (and LoadCredential= under systemd)",
            path.display()
        ))
        .with_source(e)
    })?;
    let text = text.trim_end_matches(['\n', '\r']).to_string();
    if text.trim().is_empty() {
        return Err(ConfigError::EmptyFile {
            key: key.into(),
            path: path.display().to_string(),
            what,
        }
        .into());
    }
    Ok((path, text))
}

/// Expand `${VAR}` in a path, so `${CREDENTIALS_DIRECTORY}/db-url` works
/// under systemd. One pass over the written text: a value that itself holds
/// `${...}` is taken literally, never expanded again (no loops). An unset or
/// empty variable is an error that names it, not a path that silently points
/// at `/db-url`.
fn expand_vars(path: &Path, env: &EnvVars, key: &str) -> Result<PathBuf> {
    let written = path.to_string_lossy();
    let mut expanded = String::with_capacity(written.len());
    let mut rest: &str = &written;
    while let Some(start) = rest.find("${") {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        let name = &rest[start + 2..start + len];
        let value =
            env.get(name)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| ConfigError::UnsetVariable {
                    key: key.into(),
                    path: written.to_string(),
                    name: name.into(),
                })?;
        expanded.push_str(&rest[..start]);
        expanded.push_str(value);
        rest = &rest[start + len + 1..];
    }
    expanded.push_str(rest);
    Ok(PathBuf::from(expanded))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_expand_once_and_unset_ones_are_named() {
        let env = EnvVars::from_pairs([("A", "${A}/x"), ("B", "/run/creds")]);
        let path = expand_vars(Path::new("${A}-${B}/db"), &env, "url_file").unwrap();
        assert_eq!(path, PathBuf::from("${A}/x-/run/creds/db"));
        let err = expand_vars(Path::new("${NOPE}/db"), &env, "url_file").unwrap_err();
        assert!(err.to_string().contains("NOPE"), "{err}");
        assert!(err.to_string().contains("url_file"), "{err}");
        assert_eq!(
            expand_vars(Path::new("/a/${unterminated"), &env, "k").unwrap(),
            PathBuf::from("/a/${unterminated")
        );
    }
}
