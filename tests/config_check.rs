//! `pgwarden config check` against real servers, and every kind of bad
//! configuration an operator can write: each gets a message that names the
//! problem and exit code 2.

use crate::support;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use support::*;

fn config_check(dir: &std::path::Path, config: &str) -> std::process::Output {
    let path = write_file(dir, "pgwarden.toml", config);
    pgwarden(dir)
        .args(["--config", path.to_str().unwrap(), "config", "check"])
        .output()
        .unwrap()
}

fn target_config(url: &str) -> String {
    format!("[[targets]]\nname = \"primary\"\nurl = \"{url}\"\nconnect_timeout = \"2s\"\n")
}

#[test]
fn a_good_config_reports_every_target_reachable() {
    let dir = workdir();
    let replica = shared().start_replica().unwrap();
    let config = format!(
        "{}\n[[targets]]\nname = \"replica\"\nurl = \"{}\"\n",
        target_config(shared().url().expose()),
        replica.url().expose()
    );
    let out = config_check(dir.path(), &config);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("reachable: PostgreSQL 15"), "{text}");
    assert!(
        text.contains("primary") && text.contains("standby"),
        "{text}"
    );
    assert!(text.contains("postgres://postgres:***@127.0.0.1"), "{text}");
    assert!(!text.contains(PASSWORD), "password printed:\n{text}");
}

#[test]
fn a_wrong_password_says_authentication_failed_and_never_prints_it() {
    let dir = workdir();
    let url = format!(
        "postgres://postgres:wrong-Pa55word@127.0.0.1:{}/postgres",
        shared().port()
    );
    let out = config_check(dir.path(), &target_config(&url));
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(text.contains("authentication failed"), "{text}");
    assert!(text.contains("FAIL"), "{text}");
    assert!(
        !text.contains("wrong-Pa55word"),
        "password printed:\n{text}"
    );
}

#[test]
fn a_closed_port_says_refused() {
    let dir = workdir();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://app:pw@127.0.0.1:{port}/postgres");
    let out = config_check(dir.path(), &target_config(&url));
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(text.contains("connection refused"), "{text}");
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
}

#[test]
fn a_server_that_never_answers_times_out_within_connect_timeout() {
    let dir = workdir();
    // Accepts TCP connections (the kernel's backlog does) and never speaks.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let url = format!("postgres://app:pw@127.0.0.1:{port}/postgres");
    let started = Instant::now();
    let out = config_check(dir.path(), &target_config(&url));
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(3), "{text}");
    // TCP connected, so the message says startup did not finish (not "check
    // the firewall"), and names connect_timeout.
    assert!(
        text.contains("did not finish the connection startup") && text.contains("connect_timeout"),
        "{text}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    drop(silent);
}

#[test]
fn database_url_alone_is_a_complete_configuration() {
    let dir = workdir();
    let out = pgwarden(dir.path())
        .args(["config", "check"])
        .env("DATABASE_URL", shared().url().expose())
        .env("DATABASE_POOL_SIZE", "3")
        .output()
        .unwrap();
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("name = \"default\""), "{text}");
    assert!(text.contains("pool_size = 3"), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");
}

#[test]
fn a_dot_env_file_and_a_password_file_are_read() {
    let dir = workdir();
    let url = shared().url();
    let without_password = format!("postgres://postgres@127.0.0.1:{}/postgres", url.port());
    write_file(
        dir.path(),
        ".env",
        &format!("DATABASE_URL={without_password}\nPGWARDEN_ENV=staging\n"),
    );
    let secret = write_file(dir.path(), "db-password", &format!("{PASSWORD}\n"));
    let config = format!(
        "[[targets]]\nname = \"main\"\npassword_file = \"{}\"\n",
        secret.display()
    );
    let out = config_check(dir.path(), &config);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("# environment: staging"), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");
}

/// A password is data, not URL text: `%41` in a password file is those three
/// characters (it used to be decoded to `A`, so the login failed), and `@`,
/// `:`, `/`, `?`, `#` need no escaping by the operator.
#[test]
fn a_password_file_may_hold_any_characters() {
    let dir = workdir();
    let password = "p%41ss:w@rd/?#x";
    shared()
        .psql(
            "postgres",
            &format!(
                "DROP ROLE IF EXISTS odd_password; CREATE ROLE odd_password LOGIN PASSWORD '{password}'"
            ),
        )
        .unwrap();
    let secret = write_file(dir.path(), "pw", &format!("{password}\n"));
    let config = format!(
        "[[targets]]\nname = \"main\"\nurl = \"postgres://odd_password@127.0.0.1:{}/postgres\"\npassword_file = \"{}\"\n",
        shared().port(),
        secret.display()
    );
    let out = config_check(dir.path(), &config);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("reachable"), "{text}");
    assert!(!text.contains("p%41ss") && !text.contains("w@rd"), "{text}");
}

/// Bad configuration: (what is wrong, file text, phrases the message must contain).
const BAD_CONFIGS: &[(&str, &str, &[&str])] = &[
    (
        "misspelt target key",
        "[[targets]]\nname = \"p\"\nurl = \"postgres://u@h/db\"\npool_szie = 3\n",
        &[
            "line 4",
            "`pool_szie`",
            "did you mean `pool_size`?",
            "[[targets]]",
        ],
    ),
    (
        "misspelt top-level key",
        "enviroment = \"production\"\n",
        &[
            "line 1",
            "unknown key `enviroment`",
            "did you mean `environment`?",
        ],
    ),
    (
        "misspelt section key",
        "[checks]\nintervall = \"10s\"\n",
        &["line 2", "[checks]", "did you mean `interval`?"],
    ),
    (
        "a per-check interval for connectivity, which runs every cycle",
        "[checks.intervals]\ndisk_usage = \"5m\"\nconnectivity = \"1m\"\n",
        &["line 3", "unknown key `connectivity`", "disk_usage"],
    ),
    (
        "a per-check interval shorter than the cycle",
        "[checks]\ninterval = \"30s\"\n[checks.intervals]\nindexes = \"10s\"\n",
        &[
            "checks.intervals.indexes = \"10s\" is shorter than checks.interval = \"30s\"",
            "at least \"30s\"",
        ],
    ),
    (
        "wrong type",
        "[[targets]]\nname = \"p\"\nurl = \"postgres://u@h/db\"\npool_size = \"ten\"\n",
        &[
            "line 4",
            "key `pool_size`",
            "invalid type",
            "from 1 to 1000",
        ],
    ),
    (
        "number out of range",
        "[[targets]]\nname = \"p\"\nurl = \"postgres://u@h/db\"\nmax_overflow = -1\n",
        &["line 4", "key `max_overflow`", "from 0 to 1000"],
    ),
    (
        "pool size zero",
        "[[targets]]\nname = \"p\"\nurl = \"postgres://u@h/db\"\npool_size = 0\n",
        &["line 4", "key `pool_size`", "from 1 to 1000"],
    ),
    (
        "missing url",
        "[[targets]]\nname = \"replica\"\n",
        &["target `replica`", "no url", "url_file"],
    ),
    (
        "malformed url",
        "[[targets]]\nname = \"p\"\nurl = \"mysql://u:hunter2@h/db\"\n",
        &[
            "line 3",
            "key `url`",
            "postgres://",
            "expected postgres://user:password@host:port/database",
        ],
    ),
    (
        "bad duration",
        "[[targets]]\nname = \"p\"\nurl = \"postgres://u@h/db\"\nconnect_timeout = \"5 parsecs\"\n",
        &["line 4", "key `connect_timeout`", "unknown unit", "\"5s\""],
    ),
    (
        "unknown environment",
        "environment = \"prodution\"\n",
        &[
            "line 1",
            "unknown value `prodution`",
            "did you mean `production`?",
        ],
    ),
    (
        "unknown sslmode",
        "[[targets]]\nname = \"p\"\nurl = \"postgres://u@h/db\"\nsslmode = \"verify_full\"\n",
        &["line 4", "did you mean `verify-full`?"],
    ),
    (
        "duplicate target names",
        "[[targets]]\nname = \"p\"\nurl = \"postgres://u@h/db\"\n[[targets]]\nname = \"p\"\nurl = \"postgres://u@h/db2\"\n",
        &["`p` is used twice"],
    ),
    (
        "TOML syntax error",
        "[http]\nlisten = \"127.0.0.1:9733\n",
        &["line 2"],
    ),
    (
        "bad target name",
        "[[targets]]\nname = \"pri mary\"\nurl = \"postgres://u@h/db\"\n",
        &["line 2", "letters, digits"],
    ),
    (
        "url and url_file together",
        "[[targets]]\nname = \"p\"\nurl = \"postgres://u@h/db\"\nurl_file = \"/x\"\n",
        &["either `url` or `url_file`"],
    ),
    (
        "unreadable password_file",
        "[[targets]]\nname = \"p\"\nurl = \"postgres://u@h/db\"\npassword_file = \"/nonexistent/pw\"\n",
        &[
            "cannot read password_file /nonexistent/pw",
            "LoadCredential=",
        ],
    ),
    (
        "missing sslrootcert",
        "[[targets]]\nname = \"p\"\nurl = \"postgres://u@h/db\"\nsslmode = \"verify-full\"\nsslrootcert = \"/nonexistent/ca.pem\"\n",
        &[
            "target `p`",
            "cannot read sslrootcert /nonexistent/ca.pem",
            "PEM",
        ],
    ),
    (
        "no targets",
        "environment = \"staging\"\n",
        &["no database configured", "DATABASE_URL"],
    ),
];

#[test]
fn every_bad_config_is_explained_with_exit_code_2() {
    let dir = workdir();
    let mut failures = Vec::new();
    for (what, config, phrases) in BAD_CONFIGS {
        let out = config_check(dir.path(), config);
        let text = output_text(&out);
        if out.status.code() != Some(2) {
            failures.push(format!("{what}: exit {:?}\n{text}", out.status.code()));
        }
        for phrase in *phrases {
            if !text.contains(phrase) {
                failures.push(format!("{what}: missing {phrase:?} in:\n{text}"));
            }
        }
        if text.contains("hunter2") || text.contains("panicked") {
            failures.push(format!("{what}: leaks a password or panics:\n{text}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n---\n"));
}

/// Bad environment: (variable, value, phrases).
const BAD_ENV: &[(&str, &str, &[&str])] = &[
    (
        "DATABASE_URL",
        "postgres//u:hunter2@h/db",
        &["DATABASE_URL is not usable", "expected postgres://"],
    ),
    (
        "DATABASE_POOL_SIZE",
        "lots",
        &["DATABASE_POOL_SIZE=`lots` is not a whole number"],
    ),
    (
        "DATABASE_MAX_OVERFLOW",
        "5000",
        &["DATABASE_MAX_OVERFLOW", "from 0 to 1000"],
    ),
    (
        "DATABASE_ECHO",
        "maybe",
        &["DATABASE_ECHO=`maybe` is not a boolean"],
    ),
    (
        "PGWARDEN_ENV",
        "qa",
        &["PGWARDEN_ENV", "unknown environment `qa`"],
    ),
];

#[test]
fn every_bad_environment_variable_is_explained_with_exit_code_2() {
    let dir = workdir();
    let mut failures = Vec::new();
    for (var, value, phrases) in BAD_ENV {
        let out = pgwarden(dir.path())
            .args(["config", "check"])
            .env("DATABASE_URL", "postgres://u@127.0.0.1:1/db")
            .env(var, value)
            .output()
            .unwrap();
        let text = output_text(&out);
        if out.status.code() != Some(2) {
            failures.push(format!("{var}: exit {:?}\n{text}", out.status.code()));
        }
        for phrase in *phrases {
            if !text.contains(phrase) {
                failures.push(format!("{var}: missing {phrase:?} in:\n{text}"));
            }
        }
        if text.contains("hunter2") {
            failures.push(format!("{var}: leaks a password:\n{text}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n---\n"));
}

#[test]
fn a_missing_config_file_and_a_bad_flag_are_usage_errors() {
    let dir = workdir();
    let out = pgwarden(dir.path())
        .args(["--config", "/nonexistent/pgwarden.toml", "config", "check"])
        .output()
        .unwrap();
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("cannot read config file /nonexistent/pgwarden.toml"),
        "{text}"
    );

    let out = pgwarden(dir.path())
        .args(["--env", "qa", "config", "check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(output_text(&out).contains("unknown environment `qa`"));
}

#[test]
fn the_example_config_documents_every_key_at_its_default() {
    use pgwarden::config::Config;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/pgwarden.toml");
    let example = Config::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
    let defaults = Config::default();
    let without_targets = |c: &Config| Config {
        targets: vec![],
        source: None,
        ..c.clone()
    };
    assert_eq!(
        without_targets(&example),
        without_targets(&defaults),
        "config/pgwarden.toml disagrees with the defaults"
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let rendered = defaults.to_redacted_toml();
    for line in rendered.lines().filter(|l| l.contains(" = ")) {
        let key = line.split(" = ").next().unwrap().trim();
        assert!(
            text.contains(&format!("{key} = ")),
            "key `{key}` is not documented in config/pgwarden.toml"
        );
    }
}

#[test]
fn database_echo_logs_every_statement_without_the_password() {
    let dir = workdir();
    let out = pgwarden(dir.path())
        .args(["config", "check"])
        .env("DATABASE_URL", shared().url().expose())
        .env("DATABASE_ECHO", "true")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("SELECT current_setting('server_version')"),
        "{stderr}"
    );
    assert!(!output_text(&out).contains(PASSWORD), "{stderr}");
}
