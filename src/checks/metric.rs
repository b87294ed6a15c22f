//! Metrics declared once, beside the SQL that measures them, as
//! postgres_exporter's collectors declare their descriptors: the name, the
//! help text, the type and the label names. A check's [`Spec`] lists its
//! metrics; the check names, the `--check` values, the interval keys and the
//! tests of the README's metric reference and of the dashboards are all
//! derived from the specs in [`super::SPECS`].

use crate::report::{Measurement, MetricKind};

/// One exported metric, `pgwarden_<name>{target, <labels>}`.
#[derive(Debug, PartialEq)]
pub struct Metric {
    /// Without the `pgwarden_` prefix, in base units.
    pub name: &'static str,
    pub help: &'static str,
    pub kind: MetricKind,
    /// Label names besides `target`; each must have bounded values.
    pub labels: &'static [&'static str],
}

impl Metric {
    pub const fn gauge(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Self {
        Self {
            name,
            help,
            kind: MetricKind::Gauge,
            labels,
        }
    }

    pub const fn counter(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Self {
        Self {
            kind: MetricKind::Counter,
            ..Self::gauge(name, help, labels)
        }
    }

    /// A sample with `values` for the declared labels, in their order.
    pub fn sample(&self, values: &[&str], value: f64) -> Measurement {
        debug_assert_eq!(
            values.len(),
            self.labels.len(),
            "pgwarden_{} takes the labels {:?}",
            self.name,
            self.labels
        );
        Measurement {
            metric: self.name.to_string(),
            help: self.help.to_string(),
            kind: self.kind,
            labels: self
                .labels
                .iter()
                .zip(values)
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
            value,
        }
    }
}

/// A check as the rest of pgwarden knows it: its name (the `check` label,
/// the `--check` value, its `[checks.<name>]` and `[checks.intervals]`
/// keys) and every metric it may export.
#[derive(Debug)]
pub struct Spec {
    pub name: &'static str,
    /// May it have a longer interval of its own (`[checks.intervals]`)?
    pub own_interval: bool,
    pub metrics: &'static [&'static Metric],
}

impl Spec {
    pub fn declares(&self, metric: &str) -> bool {
        self.metrics.iter().any(|m| m.name == metric)
    }
}
