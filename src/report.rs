//! The result of a check cycle, shared by every renderer.
//!
//! Checks produce a `Report`; the CLI table, `/health` JSON and the
//! Prometheus metrics are all views of it. Measurements become metrics
//! (`pgwarden_<metric>{target, <labels>}`), so their labels must be bounded;
//! anything unbounded (query texts, pids, table lists beyond top-N) belongs in
//! `details`, which only the detailed CLI view and `/health` show.

use serde::{Deserialize, Serialize};

/// A check's verdict. The numeric value is what `pgwarden_check_status` exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok = 0,
    Warning = 1,
    Critical = 2,
    Error = 3,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warning => "warning",
            Self::Critical => "critical",
            Self::Error => "error",
        }
    }

    pub fn metric_value(self) -> f64 {
        self as u8 as f64
    }
}

/// Prometheus metric type of a measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricKind {
    #[default]
    Gauge,
    Counter,
}

/// One number a check measured. Exported as `pgwarden_<metric>`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// Metric name without the `pgwarden_` prefix, in base units
    /// (`_seconds`, `_bytes`, ratios 0-1, `_total` for counters).
    pub metric: String,
    pub help: String,
    #[serde(default)]
    pub kind: MetricKind,
    /// Bounded labels only (database, replica, top-N table); `target` is added by the renderer.
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Measurement {
    pub fn gauge(metric: &str, help: &str, value: f64) -> Self {
        Self {
            metric: metric.to_string(),
            help: help.to_string(),
            kind: MetricKind::Gauge,
            labels: Vec::new(),
            value,
        }
    }

    pub fn counter(metric: &str, help: &str, value: f64) -> Self {
        Self {
            kind: MetricKind::Counter,
            ..Self::gauge(metric, help, value)
        }
    }

    pub fn label(mut self, name: &str, value: impl Into<String>) -> Self {
        self.labels.push((name.to_string(), value.into()));
        self
    }
}

/// The outcome of one check on one target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The check's name, e.g. `cache_hit_ratio`.
    pub check: String,
    pub status: Status,
    /// One line with the key number, for the CLI table.
    pub summary: String,
    pub duration_seconds: f64,
    pub measurements: Vec<Measurement>,
    /// Offenders and other unbounded detail (`--detailed`, `/health`).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub details: serde_json::Value,
}

/// All checks of one target in one cycle.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetReport {
    pub target: String,
    /// The discovered database this reports on (a fleet's unit; see `fleet`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// The connection and the probe query succeeded.
    pub up: bool,
    /// Why the target could not be reached, when `up` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Unix time (seconds) the cycle finished.
    pub finished_at: f64,
    pub duration_seconds: f64,
    pub checks: Vec<CheckResult>,
}

impl TargetReport {
    /// The worst status of any check; `Error` when the target is down.
    pub fn worst(&self) -> Status {
        if !self.up {
            return Status::Error;
        }
        self.checks
            .iter()
            .map(|c| c.status)
            .max()
            .unwrap_or(Status::Ok)
    }
}

/// The one-word summary for load balancers and humans.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Overall {
    Healthy,
    Degraded,
    Unhealthy,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub overall: Overall,
    pub environment: String,
    pub targets: Vec<TargetReport>,
}

impl Report {
    pub fn new(environment: &str, targets: Vec<TargetReport>) -> Self {
        let overall = overall(&targets);
        Self {
            overall,
            environment: environment.to_string(),
            targets,
        }
    }
}

fn overall(targets: &[TargetReport]) -> Overall {
    match targets.iter().map(TargetReport::worst).max() {
        None | Some(Status::Ok) => Overall::Healthy,
        Some(Status::Warning) => Overall::Degraded,
        Some(_) => Overall::Unhealthy,
    }
}

/// A size for people: IEC units (1024-based, `KiB`, `MiB`…), the one
/// convention every size pgwarden prints uses.
pub fn human_bytes(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_printed_in_iec_units() {
        assert_eq!(human_bytes(0.0), "0 B");
        assert_eq!(human_bytes(1023.0), "1023 B");
        assert_eq!(human_bytes(1536.0), "1.5 KiB");
        assert_eq!(human_bytes(16.0 * 1048576.0), "16.0 MiB");
        assert_eq!(human_bytes(3.0 * 1024f64.powi(5)), "3072.0 TiB");
    }
}
