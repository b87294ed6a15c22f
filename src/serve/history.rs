//! The last cycles' key numbers, per target, for the status page's charts.
//!
//! A bounded ring buffer in memory: [`CAPACITY`] samples per target (an hour
//! at a 5 s interval, 3 h at the default 15 s), so memory stays flat however
//! long the daemon runs. Only the few series the page charts are kept, not
//! whole reports.

use std::collections::{BTreeMap, VecDeque};

use crate::report::TargetReport;

/// Samples kept per target (the README states it).
pub const CAPACITY: usize = 720;

/// How a chart folds several labelled values of one metric into its lines.
#[derive(Clone, Copy)]
pub enum Fold {
    /// One line per value of this label (connections by state).
    ByLabel(&'static str),
    /// One line: the smallest value (the worst cache hit ratio).
    Min,
    /// One line: the largest value (the worst lag, the longest query).
    Max,
    /// One line: the sum (every database's size).
    Sum,
}

/// One chart of the status page.
pub struct Chart {
    pub title: &'static str,
    /// Metric names (without `pgwarden_`); the first one present wins.
    pub metrics: &'static [&'static str],
    pub fold: Fold,
    pub unit: Unit,
}

#[derive(Clone, Copy)]
pub enum Unit {
    Ratio,
    Count,
    Seconds,
    Bytes,
}

pub const CHARTS: &[Chart] = &[
    Chart {
        title: "Cache hit ratio",
        metrics: &["cache_hit_ratio"],
        fold: Fold::Min,
        unit: Unit::Ratio,
    },
    Chart {
        title: "Connections by state",
        metrics: &["server_connections"],
        fold: Fold::ByLabel("state"),
        unit: Unit::Count,
    },
    Chart {
        title: "Replication lag",
        metrics: &["replication_lag_seconds", "standby_replay_lag_seconds"],
        fold: Fold::Max,
        unit: Unit::Seconds,
    },
    Chart {
        title: "Longest query",
        metrics: &["long_query_max_seconds"],
        fold: Fold::Max,
        unit: Unit::Seconds,
    },
    Chart {
        title: "Database size",
        metrics: &["database_size_bytes"],
        fold: Fold::Sum,
        unit: Unit::Bytes,
    },
];

/// One cycle's values: (chart index, line name) -> value.
#[derive(Clone, Debug)]
pub struct Sample {
    pub at: f64,
    pub values: BTreeMap<(usize, String), f64>,
}

#[derive(Default)]
pub struct History {
    targets: BTreeMap<String, VecDeque<Sample>>,
}

impl History {
    pub fn record(&mut self, report: &TargetReport) {
        let samples = self.targets.entry(report.target.clone()).or_default();
        if samples.len() >= CAPACITY {
            samples.pop_front();
        }
        samples.push_back(sample(report));
    }

    /// Forget targets no longer configured.
    pub fn retain(&mut self, targets: &[String]) {
        self.targets.retain(|name, _| targets.contains(name));
    }

    /// The samples of `target` taken at or after `since` (Unix seconds).
    pub fn since(&self, target: &str, since: f64) -> Vec<Sample> {
        self.targets
            .get(target)
            .map(|s| s.iter().filter(|s| s.at >= since).cloned().collect())
            .unwrap_or_default()
    }
}

fn sample(report: &TargetReport) -> Sample {
    let mut values = BTreeMap::new();
    for (index, chart) in CHARTS.iter().enumerate() {
        let measurements = report.checks.iter().flat_map(|c| &c.measurements);
        let Some(metric) = chart
            .metrics
            .iter()
            .find(|m| measurements.clone().any(|x| x.metric == **m))
        else {
            continue;
        };
        for m in measurements.filter(|x| x.metric == *metric && x.value.is_finite()) {
            let line = match chart.fold {
                Fold::ByLabel(label) => m
                    .labels
                    .iter()
                    .find(|(k, _)| k == label)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default(),
                _ => String::new(),
            };
            let slot = values.entry((index, line));
            match chart.fold {
                Fold::ByLabel(_) | Fold::Sum => *slot.or_insert(0.0) += m.value,
                Fold::Min => {
                    let v = slot.or_insert(m.value);
                    *v = v.min(m.value);
                }
                Fold::Max => {
                    let v = slot.or_insert(m.value);
                    *v = v.max(m.value);
                }
            }
        }
    }
    Sample {
        at: report.finished_at,
        values,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{CheckResult, Measurement, Status};

    fn report(at: f64, measurements: Vec<Measurement>) -> TargetReport {
        TargetReport {
            target: "db".into(),
            database: None,
            up: true,
            error: None,
            finished_at: at,
            duration_seconds: 0.0,
            checks: vec![CheckResult {
                check: "x".into(),
                status: Status::Ok,
                summary: String::new(),
                duration_seconds: 0.0,
                measurements,
                details: serde_json::Value::Null,
            }],
        }
    }

    #[test]
    fn the_buffer_is_bounded_and_folds_labelled_values() {
        let mut history = History::default();
        for i in 0..CAPACITY + 10 {
            history.record(&report(
                i as f64,
                vec![
                    Measurement::gauge("cache_hit_ratio", "", 0.9).label("database", "a"),
                    Measurement::gauge("cache_hit_ratio", "", 0.5).label("database", "b"),
                    Measurement::gauge("server_connections", "", 3.0).label("state", "active"),
                    Measurement::gauge("database_size_bytes", "", 10.0).label("database", "a"),
                    Measurement::gauge("database_size_bytes", "", 5.0).label("database", "b"),
                ],
            ));
        }
        let all = history.since("db", 0.0);
        assert_eq!(all.len(), CAPACITY);
        assert_eq!(all[0].at, 10.0, "the oldest samples went first");
        let last = &all[CAPACITY - 1].values;
        assert_eq!(last[&(0, String::new())], 0.5, "min of the ratios");
        assert_eq!(last[&(1, "active".to_string())], 3.0);
        assert_eq!(last[&(4, String::new())], 15.0, "sum of the sizes");
        assert!(!last.contains_key(&(2, String::new())), "no lag measured");
        assert_eq!(history.since("db", (CAPACITY + 5) as f64).len(), 5);
        history.retain(&[]);
        assert!(history.since("db", 0.0).is_empty());
    }
}
