//! The Prometheus text format, rendered from the `Report` and nothing else.
//!
//! Rendering is generic: every `Measurement` of every check becomes
//! `pgwarden_<metric>{target="…", <its labels>}` with the measurement's help
//! and type, so a new check's metrics appear without touching this file.
//! Samples of one metric are grouped under one `# HELP`/`# TYPE` header, as
//! the format requires, whatever order the checks emitted them in.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::report::{Measurement, MetricKind, TargetReport};

pub const PREFIX: &str = "pgwarden_";

/// Families in first-seen order, each with its samples.
#[derive(Default)]
pub struct Families {
    order: Vec<Family>,
    index: HashMap<String, usize>,
}

struct Family {
    name: String,
    help: String,
    kind: MetricKind,
    samples: String,
}

impl Families {
    /// Add one sample of `pgwarden_<metric>`, `target` first when given.
    pub fn add(&mut self, target: Option<&str>, m: &Measurement) {
        let base: &[(&str, &str)] = match target {
            Some(target) => &[("target", target)],
            None => &[],
        };
        self.add_labeled(base, m);
    }

    /// Add one sample of `pgwarden_<metric>` with `base` labels before its own.
    pub fn add_labeled(&mut self, base: &[(&str, &str)], m: &Measurement) {
        let name = format!("{PREFIX}{}", sanitize_name(&m.metric));
        let at = match self.index.get(&name) {
            Some(&at) => at,
            None => {
                self.order.push(Family {
                    name: name.clone(),
                    help: m.help.clone(),
                    kind: m.kind,
                    samples: String::new(),
                });
                self.index.insert(name.clone(), self.order.len() - 1);
                self.order.len() - 1
            }
        };
        let samples = &mut self.order[at].samples;
        samples.push_str(&name);
        let labels = base
            .iter()
            .copied()
            .chain(m.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let mut first = true;
        for (key, value) in labels {
            samples.push(if first { '{' } else { ',' });
            first = false;
            samples.push_str(&sanitize_name(key));
            samples.push_str("=\"");
            escape_label(samples, value);
            samples.push('"');
        }
        if !first {
            samples.push('}');
        }
        samples.push(' ');
        push_value(samples, m.value);
        samples.push('\n');
    }

    /// Every measurement of a target's report, plus the daemon's own per-target series.
    pub fn add_target(&mut self, report: &TargetReport) {
        let mut base = vec![("target", report.target.as_str())];
        if let Some(database) = &report.database {
            base.push(("database", database.as_str()));
        }
        let target = base.as_slice();
        self.add_labeled(
            target,
            &Measurement::gauge(
                "up",
                "1 if the last connection and probe query succeeded, else 0",
                if report.up { 1.0 } else { 0.0 },
            ),
        );
        self.add_labeled(
            target,
            &Measurement::gauge(
                "last_cycle_timestamp_seconds",
                "Unix time the last check cycle finished",
                report.finished_at,
            ),
        );
        self.add_labeled(
            target,
            &Measurement::gauge(
                "cycle_duration_seconds",
                "how long the last check cycle took",
                report.duration_seconds,
            ),
        );
        for check in &report.checks {
            self.add_labeled(
                target,
                &Measurement::gauge(
                    "check_status",
                    "0 ok, 1 warning, 2 critical, 3 error",
                    check.status.metric_value(),
                )
                .label("check", &check.check),
            );
            self.add_labeled(
                target,
                &Measurement::gauge(
                    "check_duration_seconds",
                    "how long the check took in the last cycle",
                    check.duration_seconds,
                )
                .label("check", &check.check),
            );
        }
        for check in &report.checks {
            for m in &check.measurements {
                self.add_labeled(target, m);
            }
        }
    }

    /// The text exposition format.
    pub fn render(&self, out: &mut String) {
        for family in &self.order {
            let kind = match family.kind {
                MetricKind::Gauge => "gauge",
                MetricKind::Counter => "counter",
            };
            let _ = writeln!(out, "# HELP {} {}", family.name, escape_help(&family.help));
            let _ = writeln!(out, "# TYPE {} {kind}", family.name);
            out.push_str(&family.samples);
        }
    }
}

/// Metric and label names allow `[a-zA-Z0-9_:]`; anything else becomes `_`.
fn sanitize_name(name: &str) -> std::borrow::Cow<'_, str> {
    let valid = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    if name.chars().all(valid) && !name.starts_with(|c: char| c.is_ascii_digit()) {
        return name.into();
    }
    let mut clean: String = name
        .chars()
        .map(|c| if valid(c) { c } else { '_' })
        .collect();
    if clean.starts_with(|c: char| c.is_ascii_digit()) {
        clean.insert(0, '_');
    }
    clean.into()
}

fn escape_label(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

fn push_value(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value.is_infinite() {
        out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        let _ = write!(out, "{value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{CheckResult, Status};

    #[test]
    fn samples_of_one_metric_share_one_header_and_labels_are_escaped() {
        let report = TargetReport {
            target: "primary".into(),
            database: None,
            up: true,
            error: None,
            finished_at: 1700000000.5,
            duration_seconds: 0.25,
            checks: vec![
                CheckResult {
                    check: "cache_hit_ratio".into(),
                    status: Status::Warning,
                    summary: String::new(),
                    duration_seconds: 0.01,
                    measurements: vec![
                        Measurement::gauge("cache_hit_ratio", "hit ratio", 0.9)
                            .label("database", "a\"b\\c\nd"),
                        Measurement::counter("deadlocks_total", "deadlocks", 3.0)
                            .label("database", "x"),
                    ],
                    details: serde_json::Value::Null,
                },
                CheckResult {
                    check: "disk_usage".into(),
                    status: Status::Ok,
                    summary: String::new(),
                    duration_seconds: 0.02,
                    measurements: vec![
                        Measurement::gauge("cache_hit_ratio", "hit ratio", 0.5)
                            .label("database", "y"),
                    ],
                    details: serde_json::Value::Null,
                },
            ],
        };
        let mut families = Families::default();
        families.add_target(&report);
        let mut text = String::new();
        families.render(&mut text);
        assert_eq!(
            text.matches("# TYPE pgwarden_cache_hit_ratio gauge")
                .count(),
            1
        );
        assert!(
            text.contains("# TYPE pgwarden_deadlocks_total counter"),
            "{text}"
        );
        assert!(
            text.contains(
                r#"pgwarden_cache_hit_ratio{target="primary",database="a\"b\\c\nd"} 0.9"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"pgwarden_check_status{target="primary",check="cache_hit_ratio"} 1"#)
        );
        assert!(text.contains(r#"pgwarden_up{target="primary"} 1"#));
        let header = text.find("# HELP pgwarden_cache_hit_ratio").unwrap();
        let y = text.find(r#"database="y""#).unwrap();
        let deadlocks = text.find("# HELP pgwarden_deadlocks_total").unwrap();
        assert!(header < y && y < deadlocks, "samples not grouped:\n{text}");
    }

    #[test]
    fn odd_names_and_values_stay_valid() {
        let mut families = Families::default();
        families.add(None, &Measurement::gauge("9bad-name", "h", f64::NAN));
        let mut text = String::new();
        families.render(&mut text);
        assert!(text.contains("pgwarden__9bad_name NaN"), "{text}");
    }
}
