//! Every integration test, in one binary: each file under `tests/` is a
//! module here (`cargo test --test all serve::` runs the daemon's tests).
//! One binary links the crate once instead of once per file. The support
//! modules are declared here, once; the files `use crate::support` etc.

mod health_support;
mod monitoring;
mod serve_support;
mod support;

#[path = "alerts.rs"]
mod alerts;
#[path = "backup.rs"]
mod backup;
#[path = "bad_input.rs"]
mod bad_input;
#[path = "config_check.rs"]
mod config_check;
#[path = "custom_checks.rs"]
mod custom_checks;
#[path = "dashboards.rs"]
mod dashboards;
#[path = "demo.rs"]
mod demo;
#[path = "demo_scenario.rs"]
mod demo_scenario;
#[path = "exporter_flags.rs"]
mod exporter_flags;
#[path = "fleet.rs"]
mod fleet;
#[path = "harness.rs"]
mod harness;
#[path = "health.rs"]
mod health;
#[path = "health_cli.rs"]
mod health_cli;
#[path = "health_clusters.rs"]
mod health_clusters;
#[path = "lint.rs"]
mod lint;
#[path = "migrate.rs"]
mod migrate;
#[path = "prometheus.rs"]
mod prometheus;
#[path = "prometheus_e2e.rs"]
mod prometheus_e2e;
#[path = "schema_diff.rs"]
mod schema_diff;
#[path = "schema_drift.rs"]
mod schema_drift;
#[path = "schema_education.rs"]
mod schema_education;
#[path = "seed.rs"]
mod seed;
#[path = "serve.rs"]
mod serve;
#[path = "serve_backup.rs"]
mod serve_backup;
#[path = "serve_sigusr1.rs"]
mod serve_sigusr1;
#[path = "status_page.rs"]
mod status_page;
#[path = "systemd_unit.rs"]
mod systemd_unit;
#[path = "thresholds.rs"]
mod thresholds;
#[path = "tls.rs"]
mod tls;
#[path = "trust.rs"]
mod trust;

/// With `autotests = false`, a test file missing above would silently not run.
#[test]
fn every_test_file_is_a_module_of_this_binary() {
    let this = include_str!("all.rs");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if path.extension().is_some_and(|e| e == "rs") && stem != "all" {
            assert!(
                this.contains(&format!("#[path = \"{stem}.rs\"]\nmod {stem};")),
                "tests/{stem}.rs is not a module of tests/all.rs, so none of its tests run; add it there"
            );
        }
    }
}
