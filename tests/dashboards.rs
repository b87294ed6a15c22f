//! The Grafana dashboards and provisioning files: valid, wired to the
//! datasource and target variables, using only metrics (and labels) pgwarden
//! exports, with units that match the metrics and the alert thresholds drawn.

use crate::monitoring;

use std::collections::BTreeSet;

use monitoring::*;
use serde_json::Value as Json;

const DATASOURCE: &str = "${datasource}";

fn dashboards() -> Vec<(&'static str, Json)> {
    DASHBOARDS.iter().map(|path| (*path, json(path))).collect()
}

fn is_row(panel: &Json) -> bool {
    panel["type"] == "row"
}

/// A field property of one query of a panel: its override, else the default.
fn property<'a>(panel: &'a Json, ref_id: &str, id: &str) -> Option<&'a Json> {
    let overridden = panel["fieldConfig"]["overrides"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|o| o["matcher"]["id"] == "byFrameRefID" && o["matcher"]["options"] == ref_id)
        .flat_map(|o| o["properties"].as_array().into_iter().flatten())
        .find(|p| p["id"] == id)
        .map(|p| &p["value"]);
    overridden.or_else(|| {
        let value = &panel["fieldConfig"]["defaults"][id];
        (!value.is_null()).then_some(value)
    })
}

#[test]
fn dashboards_are_valid_json_with_unique_panel_ids() {
    let mut uids = BTreeSet::new();
    for (path, dashboard) in dashboards() {
        let uid = dashboard["uid"].as_str().expect("a uid");
        assert!(uids.insert(uid.to_string()), "{path}: uid {uid} used twice");
        let mut ids = BTreeSet::new();
        for panel in panels(&dashboard) {
            let id = panel["id"]
                .as_u64()
                .unwrap_or_else(|| panic!("{path}: panel without id"));
            assert!(ids.insert(id), "{path}: panel id {id} used twice");
            assert!(
                panel["title"].as_str().is_some_and(|t| !t.is_empty()),
                "{path}: panel {id} has no title"
            );
        }
        assert!(ids.len() > 10, "{path}: only {} panels", ids.len());
    }
}

#[test]
fn every_panel_and_query_uses_the_datasource_variable() {
    for (path, dashboard) in dashboards() {
        let variables = dashboard["templating"]["list"]
            .as_array()
            .expect("templating");
        let datasource = variables
            .iter()
            .find(|v| v["name"] == "datasource")
            .expect("a datasource variable");
        assert_eq!(datasource["type"], "datasource", "{path}");
        assert_eq!(datasource["query"], "prometheus", "{path}");
        let target = variables
            .iter()
            .find(|v| v["name"] == "target")
            .expect("a target variable");
        assert_eq!(
            target["query"], "label_values(pgwarden_up, target)",
            "{path}"
        );
        assert_eq!(
            target["datasource"]["uid"], DATASOURCE,
            "{path}: target variable"
        );
        for panel in panels(&dashboard).into_iter().filter(|p| !is_row(p)) {
            let title = &panel["title"];
            assert_eq!(
                panel["datasource"]["uid"], DATASOURCE,
                "{path}: panel {title}"
            );
            let queries = panel["targets"].as_array().expect("panel queries");
            assert!(!queries.is_empty(), "{path}: panel {title} has no query");
            for query in queries {
                assert_eq!(
                    query["datasource"]["uid"], DATASOURCE,
                    "{path}: a query of {title}"
                );
            }
        }
    }
}

#[test]
fn every_query_uses_only_exported_metrics_and_their_labels_and_filters_by_target() {
    let contract = readme_metrics();
    let mut problems = Vec::new();
    for (path, dashboard) in dashboards() {
        for panel in panels(&dashboard).into_iter().filter(|p| !is_row(p)) {
            for query in panel["targets"].as_array().into_iter().flatten() {
                let expr = query["expr"].as_str().unwrap_or_default();
                let where_ = format!("{path}: {} {expr}", panel["title"]);
                let metrics = metric_names(expr);
                if metrics.is_empty() {
                    problems.push(format!("{where_}: no metric"));
                }
                let mut labels: BTreeSet<String> = ["instance", "job"].map(String::from).into();
                for metric in &metrics {
                    match contract.get(metric) {
                        Some(m) => labels.extend(m.labels.iter().cloned()),
                        None if PROMETHEUS_OWN_METRICS.contains(&metric.as_str()) => {}
                        None => problems.push(format!(
                            "{where_}: {metric} is not in README's metric table"
                        )),
                    }
                }
                let per_target = metrics
                    .iter()
                    .any(|m| contract.get(m).is_some_and(|m| m.labels.contains("target")));
                if per_target && !expr.contains("$target") {
                    problems.push(format!("{where_}: not filtered by $target"));
                }
                let legend = query["legendFormat"].as_str().unwrap_or_default();
                for used in legend
                    .split("{{")
                    .skip(1)
                    .filter_map(|s| s.split("}}").next())
                {
                    if !labels.contains(used.trim()) {
                        problems.push(format!(
                            "{where_}: legend uses label {used} the metrics lack"
                        ));
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// The unit a query's values have, from its metric's name (base units).
fn expected_unit(expr: &str) -> Option<&'static str> {
    let metrics = metric_names(expr);
    let metric = metrics.iter().next()?;
    if metrics.len() > 1 {
        return None;
    }
    if metric.ends_with("_bytes") {
        Some("bytes")
    } else if metric.ends_with("_seconds") {
        Some("s")
    } else if metric.ends_with("_ratio") {
        Some("percentunit")
    } else {
        None
    }
}

#[test]
fn units_match_the_metrics() {
    let mut problems = Vec::new();
    for (path, dashboard) in dashboards() {
        for panel in panels(&dashboard).into_iter().filter(|p| !is_row(p)) {
            for query in panel["targets"].as_array().into_iter().flatten() {
                let expr = query["expr"].as_str().unwrap_or_default();
                let ref_id = query["refId"].as_str().unwrap_or_default();
                let Some(want) = expected_unit(expr) else {
                    continue;
                };
                let got = property(panel, ref_id, "unit").and_then(Json::as_str);
                if got != Some(want) {
                    problems.push(format!(
                        "{path}: {} {ref_id} ({expr}): unit {got:?}, want {want}",
                        panel["title"]
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn alert_thresholds_are_drawn_wherever_a_dashboard_shows_the_metric() {
    let mut problems = Vec::new();
    let mut checked = 0;
    let dashboards = dashboards();
    for rule in alert_rules() {
        let Some((metric, op, value)) = threshold(&rule.expr) else {
            continue;
        };
        let metric = &metric;
        for (path, dashboard) in &dashboards {
            let showing: Vec<(&Json, String)> = panels(dashboard)
                .into_iter()
                .flat_map(|p| {
                    p["targets"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(move |q| {
                            let expr = q["expr"].as_str()?;
                            metric_names(expr)
                                .contains(metric)
                                .then(|| (p, q["refId"].as_str().unwrap_or_default().to_string()))
                        })
                })
                .collect();
            if showing.is_empty() {
                continue;
            }
            // An equality alert (`pgwarden_up == 0`) is a state: the panel
            // must name and colour that value rather than draw a line.
            let state = format!("{value}");
            let mapped = |panel: &Json| {
                panel["fieldConfig"]["defaults"]["mappings"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|m| m["options"][state.as_str()]["color"].is_string())
            };
            let drawn = showing.iter().any(|(panel, ref_id)| {
                if op == "==" {
                    return mapped(panel);
                }
                let steps = property(panel, ref_id, "thresholds").map(|t| &t["steps"]);
                let at_value = steps
                    .and_then(Json::as_array)
                    .is_some_and(|s| s.iter().any(|s| s["value"].as_f64() == Some(value)));
                let line = panel["type"] != "timeseries"
                    || panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"]
                        != "off";
                at_value && line
            });
            checked += 1;
            if !drawn {
                problems.push(format!(
                    "{path}: no panel showing {metric} draws {}'s {} threshold {op} {value}",
                    rule.alert,
                    rule.severity()
                ));
            }
        }
    }
    assert!(
        checked > 20,
        "only {checked} thresholds compared: is the threshold parser broken?"
    );
    assert!(problems.is_empty(), "{problems:#?}");
}

fn used_metrics(dashboard: &Json) -> BTreeSet<String> {
    panel_queries(dashboard)
        .iter()
        .flat_map(|(_, _, expr)| metric_names(expr))
        .collect()
}

#[test]
fn the_overview_shows_what_operators_watch_and_the_detail_dashboard_everything() {
    let overview = used_metrics(&json(DASHBOARDS[0]));
    for metric in [
        "pgwarden_up",
        "pgwarden_check_status",
        "pgwarden_cache_hit_ratio",
        "pgwarden_replication_lag_bytes",
        "pgwarden_replication_lag_seconds",
        "pgwarden_server_connections",
        "pgwarden_server_max_connections",
        "pgwarden_long_query_max_seconds",
        "pgwarden_blocked_sessions",
        "pgwarden_database_size_bytes",
        "pgwarden_table_size_bytes",
        "pgwarden_indexes_invalid",
        "pgwarden_indexes_unused",
        "pgwarden_backup_last_success_timestamp_seconds",
        "pgwarden_backup_last_size_bytes",
        "pgwarden_backup_failures_total",
        "pgwarden_migration_version",
        "pgwarden_migrations_pending",
        "pgwarden_xmin_horizon_age",
        "pgwarden_prepared_transaction_max_seconds",
        "pgwarden_archive_failures_since_success",
        "pgwarden_replication_slot_wal_status",
        "pgwarden_multixact_wraparound_ratio",
    ] {
        assert!(
            overview.contains(metric),
            "the overview does not show {metric}"
        );
    }
    let detail = used_metrics(&json(DASHBOARDS[1]));
    let missing: Vec<String> = readme_metrics()
        .into_keys()
        .filter(|m| !m.ends_with('*') && !detail.contains(m))
        .collect();
    assert!(
        missing.is_empty(),
        "the target dashboard does not show {missing:?}"
    );
}

#[test]
fn provisioning_loads_the_datasource_and_the_dashboards_folder() {
    let datasources = yaml("grafana/provisioning/datasources/pgwarden.yml");
    let first = &datasources["datasources"][0];
    assert_eq!(first["type"].as_str(), Some("prometheus"));
    assert!(first["url"].as_str().is_some_and(|u| u.starts_with("http")));
    let providers = yaml("grafana/provisioning/dashboards/pgwarden.yml");
    let provider = &providers["providers"][0];
    assert_eq!(provider["type"].as_str(), Some("file"));
    let folder = provider["options"]["path"].as_str().expect("options.path");
    let readme = read("README.md");
    let how = section(&readme, "## Dashboards and alerts");
    assert!(
        how.contains(&format!("cp grafana/dashboards/*.json {folder}/")),
        "README does not say how grafana/dashboards gets to the provisioned folder {folder}"
    );
}

#[test]
fn links_between_dashboards_point_at_shipped_dashboards() {
    let dashboards = dashboards();
    let uids: BTreeSet<&str> = dashboards
        .iter()
        .filter_map(|(_, d)| d["uid"].as_str())
        .collect();
    let mut links = 0;
    for (path, dashboard) in &dashboards {
        let text = dashboard.to_string();
        for link in text.split("/d/").skip(1) {
            let uid = link.split(['/', '?', '"']).next().unwrap_or_default();
            assert!(
                uids.contains(uid),
                "{path}: link to unknown dashboard {uid}"
            );
            links += 1;
        }
    }
    assert!(links > 0, "the overview links to no target detail");
}

/// The checks' registry is the source of truth: every metric a check
/// declares is in README's metric reference with its type and labels, and
/// on the target dashboard; every check has its row in the Health checks
/// table, its thresholds section in config/pgwarden.toml and the README's
/// configuration table, and the `[checks.intervals]` keys are its names.
#[test]
fn the_readme_config_and_dashboards_follow_the_checks_registry() {
    let contract = readme_metrics();
    let detail = used_metrics(&json(DASHBOARDS[1]));
    let mut problems = Vec::new();
    for (check, metric) in pgwarden::checks::metrics() {
        let name = format!("pgwarden_{}", metric.name);
        let kind = match metric.kind {
            pgwarden::report::MetricKind::Gauge => "gauge",
            pgwarden::report::MetricKind::Counter => "counter",
        };
        // A fleet's database-scoped series carry `database` after `target`.
        let per_database = metric.scope != pgwarden::checks::Scope::Server;
        let labels: BTreeSet<String> = std::iter::once("target")
            .chain(per_database.then_some("database"))
            .chain(metric.labels.iter())
            .map(String::from)
            .collect();
        match contract.get(&name) {
            None => problems.push(format!("{check}: {name} is not in README's metric reference")),
            Some(row) if row.kind != kind || row.labels != labels => problems.push(format!(
                "{check}: README says {name} is a {} with {:?}; the check declares a {kind} with {labels:?}",
                row.kind, row.labels
            )),
            Some(_) => {}
        }
        if !detail.contains(&name) {
            problems.push(format!(
                "{check}: {name} is on no panel of the target dashboard"
            ));
        }
    }
    let readme = read("README.md");
    let checks_table = section(&readme, "## Health checks");
    let toml = read("config/pgwarden.toml");
    for check in pgwarden::checks::CHECK_NAMES {
        if !checks_table.contains(&format!("| `{check}` |")) {
            problems.push(format!("{check}: no row in README's Health checks table"));
        }
        if !toml.contains(&format!("[checks.{check}]")) {
            problems.push(format!(
                "{check}: no [checks.{check}] in config/pgwarden.toml"
            ));
        }
        if !readme.contains(&format!("| `checks.{check}.")) {
            problems.push(format!(
                "{check}: no checks.{check}.* key in README's configuration table"
            ));
        }
    }
    assert_eq!(
        pgwarden::checks::INTERVAL_CHECKS.len() + 1,
        pgwarden::checks::CHECK_NAMES.len(),
        "every check but connectivity may have its own interval"
    );
    assert!(problems.is_empty(), "{problems:#?}");
}
