//! `[checks]` and one sub-table of thresholds per check.
//!
//! Every threshold has a default here, the same value in
//! `config/pgwarden.toml` (a test keeps them in agreement) and a row in the
//! README. Durations are `Duration`s, byte counts plain integers, ratios a
//! [`Ratio`] checked to lie in 0–1 while the TOML is read, so a typo is
//! reported with its line.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, de};

use crate::config::{Bounded, Duration};
use crate::report::Status;

/// `[checks]`: how often and how long checks run, and their thresholds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChecksConfig {
    /// How often the daemon runs a cycle per target.
    pub interval: Duration,
    /// statement_timeout and lock_timeout of each check's queries.
    pub timeout: Duration,
    /// Length of every top-N list (tables, statements...).
    pub top_n: Bounded<1, 100>,
    /// Longer intervals for single checks; the rest run every cycle.
    pub intervals: CheckIntervals,
    pub connectivity: ConnectivityConfig,
    pub performance: PerformanceConfig,
    pub replication: ReplicationConfig,
    pub disk_usage: DiskUsageConfig,
    pub connection_pool: ConnectionPoolConfig,
    pub long_queries: LongQueriesConfig,
    pub table_integrity: TableIntegrityConfig,
    pub indexes: IndexesConfig,
    pub locks: LocksConfig,
    pub cache_hit_ratio: CacheHitRatioConfig,
    /// `[[checks.custom]]`: checks defined by their SQL.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub custom: Vec<super::CustomCheckConfig>,
}

impl Default for ChecksConfig {
    fn default() -> Self {
        Self {
            interval: Duration::secs(15),
            timeout: Duration::secs(5),
            top_n: Bounded::new(10),
            intervals: Default::default(),
            connectivity: Default::default(),
            performance: Default::default(),
            replication: Default::default(),
            disk_usage: Default::default(),
            connection_pool: Default::default(),
            long_queries: Default::default(),
            table_integrity: Default::default(),
            indexes: Default::default(),
            locks: Default::default(),
            cache_hit_ratio: Default::default(),
            custom: Vec::new(),
        }
    }
}

impl ChecksConfig {
    pub fn top_n(&self) -> usize {
        self.top_n.get() as usize
    }

    /// The check's own interval (`[checks.intervals]`, or a custom
    /// check's `interval`); `None` runs it every cycle.
    pub fn own_interval(&self, check: &str) -> Option<Duration> {
        (self.intervals.get(check)).or_else(|| super::custom::interval_of(self, check))
    }

    /// A per-check interval below the cycle's could never be honoured;
    /// custom checks are refused at their first problem.
    pub fn validate(&self) -> crate::Result<()> {
        super::custom::validate(self).map_err(crate::Error::usage)?;
        for (check, interval) in self.intervals.set() {
            if interval.get() < self.interval.get() {
                return Err(crate::Error::usage(format!(
                    "checks.intervals.{check} = \"{interval}\" is shorter than checks.interval = \"{}\": \
                     a check runs at most once per cycle; remove it or make it at least \"{}\"",
                    self.interval, self.interval
                )));
            }
        }
        Ok(())
    }
}

/// `[checks.intervals]`: a longer interval for a check whose queries cost
/// more than its figures change between cycles (database sizes walk every
/// file; integrity and index checks read the whole catalog). Between its
/// runs the daemon keeps serving the check's last result. The keys are the
/// checks' names ([`super::INTERVAL_CHECKS`]); `connectivity` has none: it
/// runs every cycle, since it is how a cycle learns whether the target is up.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CheckIntervals(Vec<(&'static str, Duration)>);

impl CheckIntervals {
    /// Every (check, interval) pair that is set, in check order.
    pub fn set(&self) -> Vec<(&'static str, Duration)> {
        self.0.clone()
    }

    pub fn get(&self, check: &str) -> Option<Duration> {
        self.0
            .iter()
            .find(|(name, _)| *name == check)
            .map(|(_, interval)| *interval)
    }
}

/// A key of `[checks.intervals]`: an unknown one is reported at its line,
/// with the known ones.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct IntervalKey(&'static str);

impl<'de> Deserialize<'de> for IntervalKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        super::INTERVAL_CHECKS
            .iter()
            .find(|known| **known == name)
            .map(|known| Self(known))
            .ok_or_else(|| de::Error::unknown_field(&name, &super::INTERVAL_CHECKS))
    }
}

impl<'de> Deserialize<'de> for CheckIntervals {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let set = std::collections::BTreeMap::<IntervalKey, Duration>::deserialize(d)?;
        let order = |name: &str| super::CHECK_NAMES.iter().position(|n| *n == name);
        let mut set: Vec<_> = set.into_iter().map(|(k, v)| (k.0, v)).collect();
        set.sort_by_key(|(name, _)| order(name));
        Ok(Self(set))
    }
}

impl Serialize for CheckIntervals {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(name, interval)| (*name, interval)))
    }
}

/// A number from 0 to 1.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Serialize)]
pub struct Ratio(f64);

impl Ratio {
    /// For defaults written in code.
    pub const fn new(value: f64) -> Self {
        assert!(value >= 0.0 && value <= 1.0);
        Self(value)
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de> Deserialize<'de> for Ratio {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = f64::deserialize(d)?;
        if (0.0..=1.0).contains(&value) {
            Ok(Self(value))
        } else {
            Err(de::Error::custom(format!(
                "{value} is out of range: expected a ratio from 0 to 1, e.g. 0.9"
            )))
        }
    }
}

/// Warning when `value >= warning`, critical when `value >= critical`.
pub fn at_least(value: f64, warning: f64, critical: f64) -> Status {
    if value >= critical {
        Status::Critical
    } else if value >= warning {
        Status::Warning
    } else {
        Status::Ok
    }
}

/// Warning when `value < warning`, critical when `value < critical` (ratios where low is bad).
pub fn below(value: f64, warning: f64, critical: f64) -> Status {
    if value < critical {
        Status::Critical
    } else if value < warning {
        Status::Warning
    } else {
        Status::Ok
    }
}

/// `at_least`, where a limit of 0 means "no limit".
pub fn at_least_unless_zero(value: f64, warning: f64, critical: f64) -> Status {
    let off = |limit: f64| if limit > 0.0 { limit } else { f64::INFINITY };
    at_least(value, off(warning), off(critical))
}

macro_rules! section {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident: $ty:ty = $default:expr),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct $name {
            $($(#[$fdoc])* pub $field: $ty),*
        }

        impl Default for $name {
            fn default() -> Self {
                Self { $($field: $default),* }
            }
        }
    };
}

const MIB: u64 = 1024 * 1024;

section!(
    /// `[checks.connectivity]`: connect + round trip latency.
    ConnectivityConfig {
        latency_warning: Duration = Duration::millis(500),
        latency_critical: Duration = Duration::secs(2),
    }
);

section!(
    /// `[checks.performance]`: latency of the probe query.
    PerformanceConfig {
        probe_warning: Duration = Duration::millis(100),
        probe_critical: Duration = Duration::secs(1),
        /// Share of requested (not timed) checkpoints: more means
        /// max_wal_size is too small for the write load.
        checkpoints_requested_warning: Ratio = Ratio::new(0.5),
    }
);

section!(
    /// `[checks.replication]`: lag of each standby (on a primary) or of this standby.
    ReplicationConfig {
        lag_bytes_warning: u64 = 16 * MIB,
        lag_bytes_critical: u64 = 256 * MIB,
        lag_warning: Duration = Duration::secs(30),
        lag_critical: Duration = Duration::secs(300),
        /// WAL a replication slot holds back.
        slot_retained_bytes_warning: u64 = 1024 * MIB,
        slot_retained_bytes_critical: u64 = 10 * 1024 * MIB,
    }
);

section!(
    /// `[checks.disk_usage]`: database size limits (0 = none).
    DiskUsageConfig {
        database_bytes_warning: u64 = 0,
        database_bytes_critical: u64 = 0,
    }
);

section!(
    /// `[checks.connection_pool]`: usage ratios of the server's connection
    /// slots and of pgwarden's own pool.
    ConnectionPoolConfig {
        warning: Ratio = Ratio::new(0.8),
        critical: Ratio = Ratio::new(0.9),
    }
);

section!(
    /// `[checks.long_queries]`
    LongQueriesConfig {
        query_warning: Duration = Duration::secs(60),
        query_critical: Duration = Duration::secs(300),
        transaction_warning: Duration = Duration::secs(300),
        transaction_critical: Duration = Duration::secs(1800),
        idle_in_transaction_warning: Duration = Duration::secs(60),
        idle_in_transaction_critical: Duration = Duration::secs(600),
        /// Age in transactions of the oldest xmin anyone holds (a backend,
        /// a replication slot, a prepared transaction, a standby's feedback).
        xmin_horizon_age_warning: u64 = 20_000_000,
        xmin_horizon_age_critical: u64 = 200_000_000,
        /// Age of the oldest prepared transaction of the target database.
        prepared_transaction_warning: Duration = Duration::secs(300),
        prepared_transaction_critical: Duration = Duration::secs(3600),
    }
);

section!(
    /// `[checks.table_integrity]`: sequences, wraparound, dead tuples.
    TableIntegrityConfig {
        sequence_usage_warning: Ratio = Ratio::new(0.75),
        sequence_usage_critical: Ratio = Ratio::new(0.9),
        /// `age(datfrozenxid) / 2^31`.
        xid_wraparound_warning: Ratio = Ratio::new(0.5),
        xid_wraparound_critical: Ratio = Ratio::new(0.75),
        /// `mxid_age(datminmxid) / 2^31`.
        multixact_wraparound_warning: Ratio = Ratio::new(0.5),
        multixact_wraparound_critical: Ratio = Ratio::new(0.75),
        /// dead / (live + dead) of a table with at least `dead_tuples_min` dead tuples.
        dead_tuples_ratio_warning: Ratio = Ratio::new(0.2),
        dead_tuples_min: u64 = 10_000,
        /// A table with `dead_tuples_min` dead tuples not vacuumed for this long is stale.
        vacuum_stale_after: Duration = Duration::secs(7 * 86_400),
        /// Estimated wasted share of a table or B-tree index, judged only
        /// for relations of at least `bloat_min_bytes`.
        bloat_ratio_warning: Ratio = Ratio::new(0.5),
        bloat_min_bytes: u64 = 10 * MIB,
    }
);

section!(
    /// `[checks.indexes]`
    IndexesConfig {
        /// Unused indexes smaller than this are reported but do not warn.
        unused_min_bytes: u64 = MIB,
    }
);

section!(
    /// `[checks.locks]`: how long a session may wait on another's lock.
    LocksConfig {
        wait_warning: Duration = Duration::secs(5),
        wait_critical: Duration = Duration::secs(60),
    }
);

section!(
    /// `[checks.cache_hit_ratio]`
    CacheHitRatioConfig {
        warning: Ratio = Ratio::new(0.9),
        critical: Ratio = Ratio::new(0.8),
        /// Fewer block accesses than this in an interval are too few to judge.
        min_blocks: u64 = 1000,
        /// A one-shot `pgwarden health` measures the ratio over this window
        /// (two samples this far apart) instead of judging the since-reset
        /// figure; "0s" judges the since-reset figure.
        sample_window: Duration = Duration::secs(3),
    }
);

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn parse(text: &str) -> Result<Config, String> {
        Config::from_toml(text, std::path::Path::new("pgwarden.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn thresholds_are_read_and_bad_ones_named_with_their_line() {
        let config = parse("[checks.cache_hit_ratio]\nwarning = 0.95\ncritical = 1\n").unwrap();
        assert_eq!(config.checks.cache_hit_ratio.warning.get(), 0.95);
        assert_eq!(config.checks.cache_hit_ratio.critical.get(), 1.0);
        let err = parse("[checks.connection_pool]\n\nwarning = 1.5\n").unwrap_err();
        assert!(
            err.contains("line 3") && err.contains("ratio from 0 to 1"),
            "{err}"
        );
        let err = parse("[checks.locks]\nwait_warnin = \"1s\"\n").unwrap_err();
        assert!(err.contains("wait_warning"), "{err}");
    }
}
