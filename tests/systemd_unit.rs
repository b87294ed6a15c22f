//! The shipped systemd unit passes `systemd-analyze verify` and keeps its hardening.

use std::process::Command;

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
