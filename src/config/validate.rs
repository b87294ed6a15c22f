//! What deserialisation alone cannot check, checked once at load time for
//! every entry point (`config check`, `serve`, SIGHUP, `health`, `seed`,
//! `backup`, …): bounds that depend on which key a value sits in, and values
//! whose parser lives with their consumer.
//!
//! Each bound is what the value's consumer accepts, so a config that loads
//! never fails later on its own values (PostgreSQL refusing a
//! `statement_timeout`, a zero-period timer).

use std::fmt;

use super::{Config, Duration};
use crate::error::{Error, Result};

/// A config value that is refused, with the key it sits in. Library callers
/// find it in an [`Error`]'s source chain (`err.find::<ConfigError>()`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A duration outside what its consumer accepts.
    #[error("{key} = \"{value}\" is out of range: expected from \"{min}\" to \"{max}\" ({why})")]
    OutOfRange {
        key: String,
        value: Duration,
        min: Duration,
        max: Duration,
        why: &'static str,
    },
    /// A value its consumer cannot parse.
    #[error("{key} = {value:?} is not valid: {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
    /// `${NAME}` in a path names a variable that is unset or empty.
    #[error(
        "{key} = {path:?}: environment variable {name} is not set (or empty); set it in the environment or .env (under systemd, LoadCredential= sets CREDENTIALS_DIRECTORY)"
    )]
    UnsetVariable {
        key: String,
        path: String,
        name: String,
    },
    /// A secret file that holds nothing.
    #[error("{key} {path} is empty; write the {what} into it (a trailing newline is fine)")]
    EmptyFile {
        key: String,
        path: String,
        what: &'static str,
    },
}

impl From<ConfigError> for Error {
    fn from(error: ConfigError) -> Self {
        Error::usage(error.to_string()).with_source(error)
    }
}

/// The largest `statement_timeout` / `lock_timeout` PostgreSQL takes (ms).
const PG_TIMEOUT_MAX: Duration = Duration::millis(2_147_483_647);
const ONE_MS: Duration = Duration::millis(1);
const ZERO: Duration = Duration::millis(0);

struct Rule {
    key: String,
    value: Duration,
    min: Duration,
    max: Duration,
    why: &'static str,
}

impl Rule {
    fn new(key: impl fmt::Display, value: Duration, min: Duration, max: Duration) -> Self {
        Self {
            key: key.to_string(),
            value,
            min,
            max,
            why: "",
        }
    }

    fn because(self, why: &'static str) -> Self {
        Self { why, ..self }
    }

    fn check(self) -> Result<(), ConfigError> {
        if (self.min..=self.max).contains(&self.value) {
            return Ok(());
        }
        Err(ConfigError::OutOfRange {
            key: self.key,
            value: self.value,
            min: self.min,
            max: self.max,
            why: self.why,
        })
    }
}

/// Every duration key with the range its consumer accepts.
fn duration_rules(config: &Config) -> Vec<Rule> {
    let checks = &config.checks;
    let migrations = &config.migrations;
    let mut rules = vec![
        Rule::new(
            "checks.interval",
            checks.interval,
            Duration::secs(1),
            Duration::secs(86_400),
        )
        .because("the daemon runs one check cycle per interval; it cannot be zero"),
        Rule::new("checks.timeout", checks.timeout, ONE_MS, PG_TIMEOUT_MAX).because(
            "it is each check's statement_timeout and lock_timeout; 0 would turn them off",
        ),
        Rule::new(
            "migrations.lock_timeout",
            migrations.lock_timeout,
            ZERO,
            PG_TIMEOUT_MAX,
        )
        .because("PostgreSQL's lock_timeout; 0 = none"),
        Rule::new(
            "migrations.statement_timeout",
            migrations.statement_timeout,
            ZERO,
            PG_TIMEOUT_MAX,
        )
        .because("PostgreSQL's statement_timeout; 0 = none"),
        Rule::new(
            "backup.lock_wait",
            config.backup.lock_wait,
            ZERO,
            Duration::secs(86_400),
        )
        .because("how long a backup waits for another one of the same target"),
        Rule::new(
            "fleet.discover_interval",
            config.fleet.discover_interval,
            Duration::secs(1),
            Duration::secs(86_400),
        )
        .because("discovery lists pg_database once per interval; it cannot be zero"),
    ];
    for (check, interval) in checks.intervals.set() {
        rules.push(
            Rule::new(
                format!("checks.intervals.{check}"),
                interval,
                checks.interval,
                Duration::secs(30 * 86_400),
            )
            .because("a check runs at most once per cycle (checks.interval)"),
        );
    }
    for (index, custom) in checks.custom.iter().enumerate() {
        let key = |name: &str| format!("checks.custom[{index}].{name} (check `{}`)", custom.name);
        if let Some(interval) = custom.interval {
            rules.push(
                Rule::new(
                    key("interval"),
                    interval,
                    checks.interval,
                    Duration::secs(30 * 86_400),
                )
                .because("a check runs at most once per cycle (checks.interval)"),
            );
        }
        if let Some(timeout) = custom.timeout {
            rules.push(Rule::new(key("timeout"), timeout, ONE_MS, checks.timeout).because(
                "its statement_timeout; the cycle waits for its slowest check at most checks.timeout",
            ));
        }
    }
    for (index, target) in config.targets.iter().enumerate() {
        let key = |name: &str| format!("targets[{index}].{name} (target `{}`)", target.name);
        let hour = Duration::secs(3600);
        rules.push(
            Rule::new(key("connect_timeout"), target.connect_timeout, ONE_MS, hour)
                .because("a connection attempt cannot wait zero time"),
        );
        rules.push(
            Rule::new(key("pool_timeout"), target.pool_timeout, ONE_MS, hour)
                .because("a wait for a pooled connection cannot be zero"),
        );
    }
    rules
}

/// Run every check; the first refusal names its key (and the file).
pub fn validate(config: &Config) -> Result<()> {
    let file = |e: Error| match &config.source {
        Some(path) => e.context(format!("config error in {}", path.display())),
        None => e,
    };
    // First: its message for a per-check interval below the cycle's says more.
    config.checks.validate().map_err(file)?;
    config.fleet.validate().map_err(|e| file(e.into()))?;
    for rule in duration_rules(config) {
        rule.check().map_err(|e| file(e.into()))?;
    }
    listen_address(&config.http.listen).map_err(|e| file(e.into()))?;
    log_level(&config.log.level).map_err(|e| file(e.into()))?;
    crate::seed::anchor(&config.seed).map_err(file)?;
    config.http.validate().map_err(file)?;
    // The daemon's own TLS setup, so a certificate `serve` would refuse is
    // refused by `config check` too.
    crate::serve::http::tls_acceptor(&config.http).map_err(file)?;
    Ok(())
}

/// `log.level` is a tracing filter; a bad one would otherwise be replaced by
/// `info` without a word.
fn log_level(text: &str) -> Result<(), ConfigError> {
    tracing_subscriber::EnvFilter::try_new(text)
        .map(drop)
        .map_err(|e| ConfigError::Invalid {
            key: "log.level".into(),
            value: text.into(),
            reason: format!(
                "{e}; write a level such as \"info\" or a filter such as \"info,pgwarden=debug\""
            ),
        })
}

/// `http.listen` is HOST:PORT. A host name is fine (binding resolves it), so
/// this checks the shape; a port that is taken is found when binding.
pub fn listen_address(text: &str) -> Result<(), ConfigError> {
    let invalid = |reason: &str| ConfigError::Invalid {
        key: "http.listen".into(),
        value: text.into(),
        reason: format!(
            "{reason}; write HOST:PORT such as \"127.0.0.1:9733\", \"0.0.0.0:9733\" or \"[::1]:9733\""
        ),
    };
    if text.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(());
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(invalid("no port"));
    };
    if port.parse::<u16>().is_err() {
        return Err(invalid("the port must be a number from 0 to 65535"));
    }
    let name_ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !name_ok {
        return Err(invalid("the host is neither an IP address nor a host name"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        for good in ["127.0.0.1:9733", "[::1]:0", "localhost:9733", "0.0.0.0:1"] {
            assert!(listen_address(good).is_ok(), "{good}");
        }
        for bad in [
            "nonsense",
            "127.0.0.1:99999",
            ":9733",
            "a b:1",
            "[::1]",
            "1.2.3.4:-1",
        ] {
            let err = listen_address(bad).unwrap_err().to_string();
            assert!(err.contains("http.listen") && err.contains(bad), "{err}");
        }
    }

    #[test]
    fn out_of_range_durations_name_their_key() {
        let mut config = Config::default();
        config.checks.interval = Duration::secs(0);
        let err = validate(&config).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.to_string().contains("checks.interval = \"0s\""),
            "{err}"
        );
        assert!(matches!(
            err.find::<ConfigError>(),
            Some(ConfigError::OutOfRange { key, .. }) if key == "checks.interval"
        ));
        let mut config = Config::default();
        config.checks.timeout = Duration::secs(100_000 * 86_400 / 100_000 * 100);
        let err = validate(&config).unwrap_err().to_string();
        assert!(err.contains("checks.timeout"), "{err}");
    }
}
