//! Metrics declared once, beside the SQL that measures them, as
//! postgres_exporter's collectors declare their descriptors: the name, the
//! help text, the type and the label names. A check's [`Spec`] lists its
//! metrics; the check names, the `--check` values, the interval keys and the
//! tests of the README's metric reference and of the dashboards are all
//! derived from the specs in [`super::SPECS`].
//!
//! The built-in checks declare theirs in statics; a custom check
//! (`[[checks.custom]]`, see [`super::custom`]) builds the same types from
//! the config at run time. Their strings and lists are [`Text`] and [`List`]
//! so both kinds share one type and one code path, and a config reload
//! frees the old custom declarations instead of leaking them.

use std::borrow::Cow;

use crate::report::{Measurement, MetricKind};

/// A name or help text: written in the code, or taken from the config.
pub type Text = Cow<'static, str>;

/// A list declared in a static, or built from the config at run time.
#[derive(Debug, PartialEq)]
pub enum List<T: ?Sized + 'static> {
    Static(&'static [&'static T]),
    Owned(Vec<Box<T>>),
}

impl<T: ?Sized> List<T> {
    pub fn len(&self) -> usize {
        match self {
            Self::Static(items) => items.len(),
            Self::Owned(items) => items.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        (0..self.len()).map(|i| match self {
            Self::Static(items) => items[i],
            Self::Owned(items) => &*items[i],
        })
    }
}

/// One exported metric, `pgwarden_<name>{target, <labels>}`.
#[derive(Debug, PartialEq)]
pub struct Metric {
    /// Without the `pgwarden_` prefix, in base units.
    pub name: Text,
    pub help: Text,
    pub kind: MetricKind,
    /// Label names besides `target`; each must have bounded values.
    pub labels: List<str>,
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
        Self::declare(MetricKind::Gauge, name, help, labels)
    }

    /// Measured in each discovered database's unit (see [`Scope`]).
    pub const fn per_database(mut self) -> Self {
        // Not `..self`: a const fn cannot drop the rest of a `Metric`.
        self.scope = Scope::Database;
        self
    }

    /// Measured in every unit.
    pub const fn in_every_unit(mut self) -> Self {
        // Not `..self`: a const fn cannot drop the rest of a `Metric`.
        self.scope = Scope::Both;
        self
    }

    pub const fn counter(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Self {
        Self::declare(MetricKind::Counter, name, help, labels)
    }

    const fn declare(
        kind: MetricKind,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Self {
        Self {
            name: Cow::Borrowed(name),
            help: Cow::Borrowed(help),
            kind,
            labels: List::Static(labels),
            scope: Scope::Server,
        }
    }

    /// A gauge named at run time (a custom check's column).
    pub fn owned_gauge(name: String, help: String, labels: Vec<String>, scope: Scope) -> Self {
        Self {
            name: Cow::Owned(name),
            help: Cow::Owned(help),
            kind: MetricKind::Gauge,
            labels: List::Owned(labels.into_iter().map(String::into_boxed_str).collect()),
            scope,
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
    pub name: Text,
    /// May it have a longer interval of its own (`[checks.intervals]`, or
    /// a custom check's `interval`)?
    pub own_interval: bool,
    pub metrics: List<Metric>,
}

impl Spec {
    pub fn declares(&self, metric: &str) -> bool {
        self.metric(metric).is_some()
    }

    pub fn metric(&self, name: &str) -> Option<&Metric> {
        self.metrics.iter().find(|m| m.name == name)
    }

    /// The name of a check declared in a static, for the lists derived
    /// from [`super::SPECS`] at compile time.
    pub const fn static_name(&'static self) -> &'static str {
        match &self.name {
            Cow::Borrowed(name) => name,
            Cow::Owned(_) => panic!("a static Spec has a static name"),
        }
    }
}
