//! The shipped scrape config and rules in a real Prometheus (Debian package
//! `prometheus`), before any pgwarden runs: every rule loads and evaluates
//! without error, every alert and dashboard query parses, and with nothing
//! listening where pgwarden should be, `PgwardenAbsent` goes pending.
//!
//! (That panel queries return data and that the names match pgwarden's
//! /metrics needs `pgwarden serve`: see the end-to-end test.)

use crate::monitoring;

use std::time::Duration;

use monitoring::live::*;
use monitoring::*;

#[test]
fn prometheus_loads_the_rules_parses_every_query_and_notices_pgwarden_is_absent() {
    // A port nobody listens on: where pgwarden should be, and is not.
    let nobody = free_port();
    let dir = tempfile::tempdir().expect("temp dir");
    let (_prometheus, prom) = start_prometheus(dir.path(), nobody);

    assert_rules_loaded_and_healthy(prom);
    for rule in alert_rules() {
        if let Err(e) = query(prom, &rule.expr) {
            panic!("alert {}: {} does not run: {e}", rule.alert, rule.expr);
        }
    }
    for (panel, expr) in all_panel_exprs() {
        if let Err(e) = query(prom, &substitute(&expr, "main")) {
            panic!("{panel}: {expr} does not run: {e}");
        }
    }

    let instance = format!("127.0.0.1:{nobody}");
    wait_until(
        "PgwardenAbsent pending for the unreachable pgwarden",
        Duration::from_secs(60),
        || {
            alert_in_state(
                prom,
                "PgwardenAbsent",
                &[
                    ("job", "pgwarden"),
                    ("instance", &instance),
                    ("severity", "critical"),
                ],
                &["pending", "firing"],
            )
        },
    );
    // pgwarden is simply not there: nothing about its targets can fire.
    assert!(
        alert_in_state(prom, "PgwardenTargetDown", &[], &["pending", "firing"]).is_err(),
        "PgwardenTargetDown without any pgwarden metrics"
    );
}
