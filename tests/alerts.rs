//! The shipped Prometheus rules and configs: promtool accepts them, every
//! alert is unit tested both ways (and the unit tests are shown to catch a
//! broken threshold or `for:`), every alert carries the labels and
//! annotations Alertmanager routes and operators read, and every metric the
//! rules use is one pgwarden exports (README's metric table).
//!
//! Needs promtool: Debian package `prometheus`.

use crate::monitoring;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use monitoring::*;
use serde_norway::Value as Yaml;

fn assert_promtool_ok(args: &[&str]) {
    let out = prometheus_tool("promtool", args, &repo());
    assert!(
        out.status.success(),
        "promtool {} failed:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn promtool_accepts_the_rules() {
    assert_promtool_ok(&["check", "rules", ALERTS]);
}

#[test]
fn promtool_accepts_the_prometheus_config() {
    assert_promtool_ok(&["check", "config", PROMETHEUS_CONFIG]);
}

#[test]
fn promtool_unit_tests_pass() {
    assert_promtool_ok(&["test", "rules", ALERT_TESTS]);
}

#[test]
fn prometheus_config_scrapes_pgwarden_where_it_listens_and_loads_the_rules() {
    let config = yaml(PROMETHEUS_CONFIG);
    let rule_files: Vec<&str> = config["rule_files"]
        .as_sequence()
        .expect("rule_files")
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    assert_eq!(rule_files, ["alerts.yml"]);
    let jobs = config["scrape_configs"]
        .as_sequence()
        .expect("scrape_configs");
    let job = jobs
        .iter()
        .find(|j| j["job_name"].as_str() == Some("pgwarden"))
        .expect("a scrape job named pgwarden (the rules' absent(up{job=\"pgwarden\"}) needs it)");
    let targets: Vec<&str> = job["static_configs"][0]["targets"]
        .as_sequence()
        .expect("static targets")
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    let default_listen = pgwarden::serve::HttpConfig::default().listen;
    assert_eq!(targets, [default_listen.as_str()]);
}

/// The alert test cases of alerts_test.yml: (alertname, severities expected to fire).
fn unit_test_cases() -> Vec<(String, BTreeSet<String>)> {
    let doc = yaml(ALERT_TESTS);
    let mut cases = Vec::new();
    for test in doc["tests"].as_sequence().expect("tests") {
        for case in test["alert_rule_test"].as_sequence().into_iter().flatten() {
            let name = case["alertname"].as_str().expect("alertname").to_string();
            let firing = case["exp_alerts"]
                .as_sequence()
                .into_iter()
                .flatten()
                .filter_map(|a| a["exp_labels"]["severity"].as_str().map(String::from))
                .collect();
            cases.push((name, firing));
        }
    }
    cases
}

#[test]
fn every_alert_has_a_unit_test_where_it_fires_and_one_where_it_does_not() {
    let cases = unit_test_cases();
    let mut missing = Vec::new();
    for rule in alert_rules() {
        let of_rule = || cases.iter().filter(|(name, _)| *name == rule.alert);
        if !of_rule().any(|(_, firing)| firing.contains(rule.severity())) {
            missing.push(format!("{} ({}) never fires", rule.alert, rule.severity()));
        }
        if !of_rule().any(|(_, firing)| !firing.contains(rule.severity())) {
            missing.push(format!(
                "{} ({}) is never quiet",
                rule.alert,
                rule.severity()
            ));
        }
    }
    assert!(
        missing.is_empty(),
        "alerts_test.yml lacks cases: {missing:#?}"
    );
}

#[test]
fn every_alert_has_severity_summary_description_and_a_real_runbook() {
    let anchors = readme_anchors();
    let readme = read("README.md");
    let runbooks = section(&readme, "## Runbooks");
    let mut problems = Vec::new();
    for rule in alert_rules() {
        let name = &rule.alert;
        if !["warning", "critical"].contains(&rule.severity()) {
            problems.push(format!("{name}: severity must be warning or critical"));
        }
        for key in ["summary", "description", "runbook_url"] {
            if rule
                .annotations
                .get(key)
                .is_none_or(|v| v.trim().is_empty())
            {
                problems.push(format!("{name}: no {key} annotation"));
            }
        }
        let watches_a_target = metric_names(&rule.expr)
            .iter()
            .any(|m| m.starts_with("pgwarden_"));
        let text = format!("{rule:?}");
        if watches_a_target && !text.contains("$labels.target") {
            problems.push(format!("{name}: its annotations never name $labels.target"));
        }
        let url = rule
            .annotations
            .get("runbook_url")
            .cloned()
            .unwrap_or_default();
        let Some(anchor) = url.strip_prefix(RUNBOOK_BASE) else {
            problems.push(format!(
                "{name}: runbook_url {url} does not start with {RUNBOOK_BASE}"
            ));
            continue;
        };
        if anchor != github_slug(&format!("Runbook: {name}")) {
            problems.push(format!(
                "{name}: runbook_url anchor {anchor} is not its own runbook"
            ));
        }
        if !anchors.contains(anchor) {
            problems.push(format!(
                "{name}: README.md has no heading with anchor #{anchor}"
            ));
            continue;
        }
        let runbook = section(runbooks, &format!("### Runbook: {name}"));
        if !runbook.contains("pgwarden health") {
            problems.push(format!(
                "{name}: its runbook never says how to confirm with pgwarden health"
            ));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn every_metric_the_rules_use_is_in_the_readme_contract() {
    let contract = readme_metrics();
    let mut unknown = Vec::new();
    for rule in alert_rules() {
        for metric in metric_names(&rule.expr) {
            if !in_contract(&contract, &metric)
                && !PROMETHEUS_OWN_METRICS.contains(&metric.as_str())
            {
                unknown.push(format!("{}: {metric}", rule.alert));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "metrics not in README's metric table: {unknown:?}"
    );
}

fn amtool_route(labels: &[String]) -> String {
    let mut args = vec![
        "config",
        "routes",
        "test",
        "--config.file",
        ALERTMANAGER_CONFIG,
    ];
    args.extend(labels.iter().map(String::as_str));
    let out = Command::new("amtool")
        .args(&args)
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run amtool ({e}): install the Debian package `prometheus-alertmanager`")
        });
    assert!(
        out.status.success(),
        "amtool {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn alertmanager_config_is_valid_and_routes_by_severity() {
    let out = Command::new("amtool")
        .args(["check-config", ALERTMANAGER_CONFIG])
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run amtool ({e}): install the Debian package `prometheus-alertmanager`")
        });
    assert!(
        out.status.success(),
        "amtool check-config: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    for rule in alert_rules() {
        let want = match rule.severity() {
            "critical" => "pager",
            _ => "chat",
        };
        let labels = [
            format!("alertname={}", rule.alert),
            format!("severity={}", rule.severity()),
            "target=main".to_string(),
            "environment=production".to_string(),
        ];
        assert_eq!(
            amtool_route(&labels),
            want,
            "{} ({})",
            rule.alert,
            rule.severity()
        );
    }
    // Pending migrations page only in production.
    let staging = [
        "alertname=PgwardenMigrationsPending".to_string(),
        "severity=warning".to_string(),
        "environment=staging".to_string(),
    ];
    assert_eq!(amtool_route(&staging), "blackhole");
}

#[test]
fn scanner_finds_metric_names_and_thresholds() {
    let names = |e: &str| metric_names(e).into_iter().collect::<Vec<_>>();
    assert_eq!(
        names(
            r#"sum by (target, state) (rate(pgwarden_deadlocks_total{target=~"$target", x="a b"}[$__rate_interval])) > 64 * 1e3"#
        ),
        ["pgwarden_deadlocks_total"]
    );
    assert_eq!(
        names(r#"up{job="pgwarden"} == 0 or absent(up{job="pgwarden"})"#),
        ["up"]
    );
    assert_eq!(
        names("a_b < on (target) group_left () pgwarden_x"),
        ["a_b", "pgwarden_x"]
    );
    assert_eq!(
        threshold("time() - pgwarden_last_cycle_timestamp_seconds > 3 * 15"),
        Some((
            "pgwarden_last_cycle_timestamp_seconds".into(),
            ">".into(),
            45.0
        ))
    );
    assert_eq!(threshold("pgwarden_a < pgwarden_b"), None);
    assert_eq!(
        top_level_comparison(r#"up{job!="x"} == 0 or absent(up)"#).map(|(l, o, _)| (l, o)),
        Some((r#"up{job!="x"}"#.into(), "==".into()))
    );
}

/// One rule of alerts.yml broken on purpose, and the unit tests of that
/// alert run against it: they must fail, or they would not catch the bug.
struct Mutation {
    rule: Rule,
    what: &'static str,
    change: fn(&mut Yaml),
}

fn run_mutation(dir: &Path, m: &Mutation) -> Option<String> {
    let mut alerts = yaml(ALERTS);
    let mut count = 0;
    for group in alerts["groups"].as_sequence_mut().into_iter().flatten() {
        for rule in group["rules"].as_sequence_mut().into_iter().flatten() {
            let same = rule["alert"].as_str() == Some(m.rule.alert.as_str())
                && rule["labels"]["severity"].as_str() == Some(m.rule.severity());
            if same {
                (m.change)(rule);
                count += 1;
            }
        }
    }
    assert_eq!(
        count,
        1,
        "{} {} is not unique",
        m.rule.alert,
        m.rule.severity()
    );
    let mut tests = yaml(ALERT_TESTS);
    let list = tests["tests"].as_sequence_mut().expect("tests");
    list.retain(|t| {
        t["alert_rule_test"]
            .as_sequence()
            .into_iter()
            .flatten()
            .any(|c| c["alertname"].as_str() == Some(m.rule.alert.as_str()))
    });
    let write = |name: &str, value: &Yaml| {
        let text = serde_norway::to_string(value).expect("serialize YAML");
        std::fs::write(dir.join(name), text).expect("write mutated file");
    };
    write("alerts.yml", &alerts);
    write("alerts_test.yml", &tests);
    let out = prometheus_tool("promtool", &["test", "rules", "alerts_test.yml"], dir);
    out.status.success().then(|| {
        format!(
            "{} ({}) with {}: its unit tests still pass",
            m.rule.alert,
            m.rule.severity(),
            m.what
        )
    })
}

#[test]
fn the_unit_tests_catch_a_broken_threshold_or_for_of_every_alert() {
    fn drop_comparison(rule: &mut Yaml) {
        let expr = rule["expr"].as_str().expect("expr").to_string();
        let (left, _, _) = top_level_comparison(&expr).expect("a comparison");
        rule["expr"] = Yaml::String(left);
    }
    fn never(rule: &mut Yaml) {
        let expr = rule["expr"].as_str().expect("expr").to_string();
        rule["expr"] = Yaml::String(format!("({expr}) and on () (vector(0) > 1)"));
    }
    fn no_for(rule: &mut Yaml) {
        rule["for"] = Yaml::String("0s".into());
    }
    let raw = yaml(ALERTS);
    let has_for = |r: &Rule| {
        raw["groups"].as_sequence().into_iter().flatten().any(|g| {
            g["rules"].as_sequence().into_iter().flatten().any(|x| {
                x["alert"].as_str() == Some(r.alert.as_str())
                    && x["labels"]["severity"].as_str() == Some(r.severity())
                    && x["for"].as_str().is_some_and(|f| f != "0s")
            })
        })
    };
    let mut mutations = Vec::new();
    for rule in alert_rules() {
        assert!(
            top_level_comparison(&rule.expr).is_some(),
            "{}: expected a comparison in {}",
            rule.alert,
            rule.expr
        );
        mutations.push(Mutation {
            rule: rule.clone(),
            what: "no threshold (fires on any value)",
            change: drop_comparison,
        });
        mutations.push(Mutation {
            rule: rule.clone(),
            what: "a condition that is never true",
            change: never,
        });
        if has_for(&rule) {
            mutations.push(Mutation {
                rule: rule.clone(),
                what: "`for: 0s`",
                change: no_for,
            });
        }
    }
    let survivors: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..2)
            .map(|worker| {
                let mine: Vec<&Mutation> = mutations.iter().skip(worker).step_by(2).collect();
                scope.spawn(move || {
                    let dir = tempfile::tempdir().expect("temp dir");
                    mine.into_iter()
                        .filter_map(|m| run_mutation(dir.path(), m))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("mutation worker"))
            .collect()
    });
    assert!(
        survivors.is_empty(),
        "unit tests that miss a broken rule: {survivors:#?}"
    );
}
