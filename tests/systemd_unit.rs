//! What systemd sees of pgwarden: the shipped unit passes `systemd-analyze
//! verify` and keeps its hardening; logs reach journald without colour codes;
//! bad watchdog variables are named and the watchdog is still fed.

use crate::serve_support;
use crate::support;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serve_support::*;
use support::*;

const UNIT: &str = include_str!("../config/systemd/pgwarden.service");

#[test]
fn the_unit_passes_systemd_analyze_verify_without_warnings() {
    let dir = tempfile::tempdir().unwrap();
    // verify checks that ExecStart exists: point it at the binary under test.
    let unit = UNIT.replace("/usr/local/bin/pgwarden", env!("CARGO_BIN_EXE_pgwarden"));
    let path = dir.path().join("pgwarden.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run systemd-analyze ({e}); install it: apt-get install systemd")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{text}"
    );
    // verify only warns about unknown keys and bad values: any output is a defect.
    assert!(
        text.trim().is_empty(),
        "systemd-analyze verify complained:\n{text}"
    );
}

#[test]
fn the_unit_is_notify_hardened_and_reloadable() {
    for line in [
        "Type=notify",
        "WatchdogSec=",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "User=pgwarden",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "LoadCredential=database-url:",
        "ExecStart=/usr/local/bin/pgwarden --config /etc/pgwarden/pgwarden.toml serve",
    ] {
        assert!(
            UNIT.lines().any(|l| l.starts_with(line)),
            "the unit lacks `{line}`"
        );
    }
}

/// A config whose one target is unreachable: serve starts, logs and keeps trying.
fn unreachable_target_config(dir: &std::path::Path, addr: &str) -> std::path::PathBuf {
    write_file(
        dir,
        "pgwarden.toml",
        &format!(
            "[http]\nlisten = \"{addr}\"\n[checks]\ninterval = \"1s\"\n{}",
            target("gone", "postgres://u:p@127.0.0.1:1/db", "")
        ),
    )
}

/// `pgwarden serve` until it listens, then SIGTERM; its stderr went to a
/// pipe or, through `script`, to a pseudo-terminal. What it printed.
fn serve_briefly(on_terminal: bool, no_color: Option<&str>) -> String {
    let dir = workdir();
    let addr = free_addr();
    let config = unreachable_target_config(dir.path(), &addr);
    let pidfile = dir.path().join("pid");
    // `exec`: the pid written is pgwarden's, whichever way it was started.
    let serve = format!(
        "echo $$ > '{}'; exec '{}' --config '{}' serve",
        pidfile.display(),
        env!("CARGO_BIN_EXE_pgwarden"),
        config.display()
    );
    let mut command = if on_terminal {
        let mut c = Command::new("script");
        // -e: script's exit code is the command's; the output is the terminal's.
        c.args(["-q", "-e", "-c", &serve, "/dev/null"]);
        c
    } else {
        let mut c = Command::new("sh");
        c.args(["-c", &serve]);
        c
    };
    command
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(value) = no_color {
        command.env("NO_COLOR", value);
    }
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {serve} (script: apt-get install bsdutils): {e}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "pgwarden serve did not listen on {addr}"
        );
        assert!(child.try_wait().unwrap().is_none(), "pgwarden serve exited");
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: kill has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let out = child.wait_with_output().unwrap();
    let text = output_text(&out);
    assert!(text.contains("pgwarden serving"), "{text}");
    text
}

const ESCAPE: &str = "\x1b[";

#[test]
fn logs_to_a_pipe_carry_no_colour_codes() {
    let text = serve_briefly(false, None);
    assert!(
        !text.contains(ESCAPE),
        "escape codes in piped logs:\n{text:?}"
    );
}

#[test]
fn logs_on_a_terminal_are_coloured_unless_no_color_is_set() {
    let text = serve_briefly(true, None);
    assert!(text.contains(ESCAPE), "no colour on a terminal:\n{text:?}");
    let text = serve_briefly(true, Some("1"));
    assert!(
        !text.contains(ESCAPE),
        "colour despite NO_COLOR=1:\n{text:?}"
    );
    // An empty NO_COLOR does not count (no-color.org).
    let text = serve_briefly(true, Some(""));
    assert!(
        text.contains(ESCAPE),
        "no colour with an empty NO_COLOR:\n{text:?}"
    );
}

/// Serve with `WATCHDOG_USEC=value` and a notify socket bound here; the
/// watchdog pings must arrive at the minimum period (100 ms), the process
/// must stay up, and the log must name the variable.
fn watchdog_is_fed_at_the_minimum_despite(value: &str) {
    let dir = workdir();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let addr = free_addr();
    let config = std::fs::read_to_string(unreachable_target_config(dir.path(), &addr)).unwrap();
    let serve = Serve::start_with(
        dir.path(),
        &addr,
        &config,
        &[],
        &[
            ("NOTIFY_SOCKET", socket_path.to_str().unwrap()),
            ("WATCHDOG_USEC", value),
        ],
    );
    let mut buf = [0u8; 1024];
    let mut pings = Vec::new();
    let started = Instant::now();
    while pings.len() < 10 && started.elapsed() < Duration::from_secs(10) {
        let n = socket
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no notification ({e}):\n{}", serve.log()));
        if &buf[..n] == b"WATCHDOG=1" {
            pings.push(Instant::now());
        }
    }
    // Ten pings at 100 ms take about a second; allow a busy machine three.
    assert_eq!(pings.len(), 10, "{}", serve.log());
    let span = pings[9] - pings[0];
    assert!(span < Duration::from_secs(3), "9 periods took {span:?}");
    let log = serve.log();
    assert!(!log.contains("panicked"), "{log}");
    let warning = log
        .lines()
        .find(|l| l.contains("WARN") && l.contains("WATCHDOG_USEC="))
        .unwrap_or_else(|| panic!("no warning naming WATCHDOG_USEC:\n{log}"));
    assert!(warning.contains("100 ms"), "{warning}");
    assert!(serve.stop().success());
}

#[test]
fn a_watchdog_timeout_of_one_microsecond_is_named_and_pinged_at_the_minimum() {
    watchdog_is_fed_at_the_minimum_despite("1");
}

#[test]
fn a_watchdog_timeout_that_is_not_a_number_is_named_and_pinged_at_the_minimum() {
    watchdog_is_fed_at_the_minimum_despite("abc");
}
