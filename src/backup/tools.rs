//! Finding and running `pg_dump`, `pg_restore` and `psql`.
//!
//! This is the only place that builds their command lines. The connection
//! goes in `--dbname` as a URL *without* its password; the password travels
//! in `PGPASSWORD`, which only the process's owner (and root) can read, so
//! `ps` never shows it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use tokio::process::Command;

use crate::config::{SslMode, TargetConfig};
use crate::error::{Error, Result};

const INSTALL_HINT: &str = "install the PostgreSQL client tools (Debian: apt-get install postgresql-client) or set backup.bin_dir";

/// The client programs, all from one directory (or PATH).
#[derive(Clone, Debug)]
pub struct Tools {
    pub pg_dump: PathBuf,
    pub pg_restore: PathBuf,
    pub psql: PathBuf,
}

impl Tools {
    /// Find the programs in `bin_dir` when configured, else where
    /// [`crate::pg_bin::find`] finds them (PATH, /usr/lib/postgresql/*/bin).
    pub fn locate(bin_dir: Option<&Path>) -> Result<Tools> {
        if let Some(dir) = bin_dir {
            let tools = Self::in_dir(dir);
            return match tools.missing() {
                None => Ok(tools),
                Some(name) => Err(Error::usage(format!(
                    "backup.bin_dir = {:?} has no `{name}`; point it at the directory holding pg_dump, pg_restore and psql",
                    dir.display().to_string()
                ))),
            };
        }
        crate::pg_bin::find(&["pg_dump", "pg_restore", "psql"])
            .map(|dir| Self::in_dir(&dir))
            .ok_or_else(|| {
                Error::failed(format!(
                    "pg_dump, pg_restore and psql not found on PATH or in /usr/lib/postgresql/*/bin; {INSTALL_HINT}"
                ))
            })
    }

    fn in_dir(dir: &Path) -> Tools {
        Tools {
            pg_dump: dir.join("pg_dump"),
            pg_restore: dir.join("pg_restore"),
            psql: dir.join("psql"),
        }
    }

    fn missing(&self) -> Option<&'static str> {
        [
            (&self.pg_dump, "pg_dump"),
            (&self.pg_restore, "pg_restore"),
            (&self.psql, "psql"),
        ]
        .into_iter()
        .find(|(p, _)| !p.is_file())
        .map(|(_, name)| name)
    }

    /// pg_dump's version line (`pg_dump (PostgreSQL) 15.8 …`) and major version.
    pub async fn pg_dump_version(&self) -> Result<(String, u32)> {
        let out = run(
            Command::new(&self.pg_dump).arg("--version"),
            "pg_dump --version",
        )
        .await?;
        let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let major = parse_major(&line).ok_or_else(|| {
            Error::failed(format!(
                "cannot read the version of {}: {line:?}",
                self.pg_dump.display()
            ))
        })?;
        Ok((line, major))
    }
}

/// The major version in `pg_dump (PostgreSQL) 15.8 (Debian …)` or `16beta1`.
pub fn parse_major(version_line: &str) -> Option<u32> {
    let number = version_line
        .split_whitespace()
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))?;
    let digits: String = number.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// How a client program reaches one database of a target.
#[derive(Clone)]
pub struct Connection {
    /// `postgres://user@host:port/db`, no password.
    pub url: String,
    pub database: String,
    password: Option<String>,
    env: Vec<(&'static str, String)>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Connection({})", self.url)
    }
}

impl Connection {
    /// The target's server and credentials; `database` replaces the URL's.
    pub fn new(target: &TargetConfig, database: Option<&str>) -> Connection {
        let url = match database {
            Some(db) => target.url().with_database(db),
            None => target.url().clone(),
        };
        let password = url.password();
        let mut stripped = url::Url::parse(url.expose()).expect("DbUrl holds a valid URL");
        let _ = stripped.set_password(None);
        let pairs: Vec<(String, String)> = stripped
            .query_pairs()
            .filter(|(k, _)| k != "password")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        stripped.set_query(None);
        if !pairs.is_empty() {
            stripped.query_pairs_mut().extend_pairs(pairs);
        }
        let mut env = vec![
            ("PGSSLMODE", sslmode(target.sslmode).to_string()),
            (
                "PGCONNECT_TIMEOUT",
                target.connect_timeout.get().as_secs().max(1).to_string(),
            ),
        ];
        if let Some(cert) = &target.sslrootcert {
            env.push(("PGSSLROOTCERT", cert.display().to_string()));
        }
        Connection {
            url: stripped.to_string(),
            database: url.database(),
            password,
            env,
        }
    }

    /// A command for `program` with this connection's environment: the
    /// password in `PGPASSWORD`, killed if the future running it is dropped.
    pub fn command(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        command
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(password) = &self.password {
            command.env("PGPASSWORD", password);
        }
        command
    }

    /// `--dbname=URL`, the way every program is pointed at the database.
    pub fn dbname_arg(&self) -> OsString {
        format!("--dbname={}", self.url).into()
    }
}

fn sslmode(mode: SslMode) -> &'static str {
    match mode {
        SslMode::Disable => "disable",
        SslMode::Prefer => "prefer",
        SslMode::Require => "require",
        SslMode::VerifyCa => "verify-ca",
        SslMode::VerifyFull => "verify-full",
    }
}

/// Run a command to completion; a non-zero exit is an error carrying its stderr.
pub async fn run(command: &mut Command, what: &str) -> Result<Output> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut busy = BusyRetry::default();
    let out = loop {
        match command.output().await {
            Err(e) if busy.again(&e).await => continue,
            Err(e) => {
                return Err(Error::failed(format!(
                    "cannot run {what}: {e}; {INSTALL_HINT}"
                )));
            }
            Ok(out) => break out,
        }
    };
    check(out, what)
}

/// Starting a program fails with `ETXTBSY` while some process still holds
/// the file open for writing: a wrapper script written a moment ago (whose
/// descriptor a concurrently forked child inherited until its exec), a
/// package upgrade. That passes within milliseconds, so it is tried again a
/// few times before it counts as a failure.
#[derive(Default)]
pub struct BusyRetry {
    tries: u32,
}

impl BusyRetry {
    /// Whether to try again (after waiting) after `error`.
    pub async fn again(&mut self, error: &std::io::Error) -> bool {
        if error.raw_os_error() != Some(libc::ETXTBSY) || self.tries >= 5 {
            return false;
        }
        self.tries += 1;
        tokio::time::sleep(std::time::Duration::from_millis(20 << self.tries)).await;
        true
    }
}

/// Turn a finished program's exit status into a result with its stderr.
pub fn check(out: Output, what: &str) -> Result<Output> {
    if out.status.success() {
        return Ok(out);
    }
    let status = describe_status(&out.status);
    let stderr = String::from_utf8_lossy(&out.stderr);
    Err(Error::failed(match stderr.trim() {
        "" if out.status.code().is_none() => format!(
            "{what} failed ({status}) without a message: something outside pgwarden ended it (an operator, the OOM killer); see the system log"
        ),
        "" => format!("{what} failed ({status}) without a message"),
        stderr => format!("{what} failed ({status}): {stderr}"),
    }))
}

fn describe_status(status: &std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}{}", signal_name(signal)),
        _ => status.to_string(),
    }
}

/// The name of the signals that end programs, for the operator reading the log.
fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGKILL => ", SIGKILL",
        libc::SIGTERM => ", SIGTERM",
        libc::SIGINT => ", SIGINT",
        libc::SIGSEGV => ", SIGSEGV",
        libc::SIGABRT => ", SIGABRT",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read() {
        assert_eq!(
            parse_major("pg_dump (PostgreSQL) 15.8 (Debian 15.8-1.pgdg120+1)"),
            Some(15)
        );
        assert_eq!(parse_major("pg_dump (PostgreSQL) 16beta1"), Some(16));
        assert_eq!(parse_major("pg_dump"), None);
    }
}
