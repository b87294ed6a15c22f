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
    /// Where it is measured when a target discovers its server's databases.
    pub scope: Scope,
}

/// Where a metric is measured for a discovery target (see [`crate::fleet`]):
/// by the target's own unit once per server, by each database's unit, or
/// by both (each unit's own connection latency). A plain target measures
/// everything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The server's view: replication, WAL, settings, every database's size and xid age.
    Server,
    /// What only a session in that database sees: its tables, indexes, sessions.
    Database,
    Both,
}

/// What one checker measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Unit {
    /// A plain target: everything.
    #[default]
    Whole,
    /// A discovery target's own unit: the server-wide metrics.
    Server,
    /// One discovered database: the database-scoped metrics.
    Database,
}

impl Unit {
    pub fn wants(self, metric: &Metric) -> bool {
        match (self, metric.scope) {
            (Unit::Whole, _) | (_, Scope::Both) => true,
            (Unit::Server, scope) => scope == Scope::Server,
            (Unit::Database, scope) => scope == Scope::Database,
        }
    }

    /// Does a check with `spec` measure anything in this unit?
    pub fn runs(self, spec: &Spec) -> bool {
        spec.metrics.iter().any(|m| self.wants(m))
    }
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
            scope: Scope::Server,
        }
    }

    /// Measured in each discovered database's unit (see [`Scope`]).
    pub const fn per_database(self) -> Self {
        Self {
            scope: Scope::Database,
            ..self
        }
    }

    /// Measured in every unit.
    pub const fn in_every_unit(self) -> Self {
        Self {
            scope: Scope::Both,
            ..self
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
        self.metric(metric).is_some()
    }

    pub fn metric(&self, name: &str) -> Option<&'static Metric> {
        self.metrics.iter().find(|m| m.name == name).copied()
    }
}
