//! cache_hit_ratio: buffer cache hits / (hits + reads) per database, since
//! stats reset and over the last interval. The interval figure (deltas of
//! pg_stat_database's counters between two cycles) is what an operator means
//! by "the hit ratio now": the since-reset figure of a database that has run
//! for months barely moves when the cache stops working. Status comes from
//! the interval once there is one, and only for databases that did at least
//! `min_blocks` block accesses in it — a ratio over a handful is noise — and
//! only for the target's own database: every database's ratio is exported,
//! but another database on the same server is another target's verdict.
//!
//! pgwarden's own cycle makes thousands of buffer accesses (mostly hits) to
//! the catalogs of the target's database, which pg_stat_database counts with
//! the application's: on a quiet database they would dilute its ratio and
//! always exceed `min_blocks`. pgwarden never reads a user table, so for the
//! target's own database the interval figures are the sums of
//! pg_statio_user_tables (heap, indexes, TOAST) instead: the application's
//! accesses to its data, pgwarden's left out. Sequences are left out too
//! (table_integrity reads their last values).

use std::collections::HashMap;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::json;

use super::metric::{List, Metric, Spec, Text};
use super::rows::{col, fetch, fetch_one};
use super::{Check, ChecksConfig, Context, Outcome, below};

const NAME: &str = "cache_hit_ratio";

const RATIO: Metric = Metric::gauge(
    "cache_hit_ratio",
    "Buffer cache hit ratio over the last interval, 0-1.",
    &["database"],
);
const SINCE_RESET: Metric = Metric::gauge(
    "cache_hit_ratio_since_reset",
    "Buffer cache hit ratio since stats reset, 0-1.",
    &["database"],
);

/// This check and every metric it may export.
pub static SPEC: Spec = Spec {
    name: Text::Borrowed(NAME),
    own_interval: true,
    metrics: List::Static(&[&RATIO, &SINCE_RESET]),
};

const SQL: &str = "SELECT datname::text, blks_hit::float8, blks_read::float8, \
     datname = current_database() FROM pg_stat_database WHERE datname IS NOT NULL ORDER BY datname";

/// Hits and reads of the target database's user tables, their indexes and
/// TOAST; never touched by pgwarden itself.
const OWN_SQL: &str = "SELECT coalesce(sum(heap_blks_hit + coalesce(idx_blks_hit, 0) \
       + coalesce(toast_blks_hit, 0) + coalesce(tidx_blks_hit, 0)), 0)::float8, \
     coalesce(sum(heap_blks_read + coalesce(idx_blks_read, 0) \
       + coalesce(toast_blks_read, 0) + coalesce(tidx_blks_read, 0)), 0)::float8 \
     FROM pg_statio_user_tables";

/// One row of pg_stat_database; `target` marks the target's own database.
struct Counters {
    database: String,
    hits: f64,
    reads: f64,
    target: bool,
}

/// (hits, reads) per database at the previous cycle.
#[derive(Default)]
pub struct CacheHitRatio {
    previous: Option<HashMap<String, (f64, f64)>>,
}

impl Check for CacheHitRatio {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }

    fn queries(&self, _: &ChecksConfig) -> Vec<String> {
        vec![SQL.into(), OWN_SQL.into()]
    }

    fn run<'a>(&'a mut self, ctx: &'a Context<'_>) -> BoxFuture<'a, Result<Outcome, String>> {
        async move {
            let session = ctx.session().await?;
            let counters = fetch(&session, NAME, SQL, |r| {
                Ok(Counters {
                    database: col(r, 0)?,
                    hits: col(r, 1)?,
                    reads: col(r, 2)?,
                    target: col(r, 3)?,
                })
            })
            .await?;
            let own = fetch_one(&session, NAME, OWN_SQL, |r| Ok((col(r, 0)?, col(r, 1)?))).await?;
            session.finish().await;
            Ok(self.evaluate(ctx.config, &counters, own))
        }
        .boxed()
    }
}

fn ratio(hits: f64, reads: f64) -> Option<f64> {
    let total = hits + reads;
    (total > 0.0).then(|| hits / total)
}

impl CacheHitRatio {
    /// `own` is the (hits, reads) of the target database's user tables: its
    /// interval is measured on them, everyone else's on pg_stat_database.
    fn evaluate(
        &mut self,
        config: &ChecksConfig,
        counters: &[Counters],
        own: (f64, f64),
    ) -> Outcome {
        let interval_counters = |c: &Counters| if c.target { own } else { (c.hits, c.reads) };
        let limits = &config.cache_hit_ratio;
        let min_blocks = limits.min_blocks as f64;
        let mut out = Outcome::new("");
        let mut lowest: Option<(f64, &str)> = None;
        let mut listed = Vec::new();
        for counted in counters {
            let Counters {
                database,
                hits,
                reads,
                target,
            } = counted;
            let since_reset = ratio(*hits, *reads);
            if let Some(r) = since_reset {
                out.set(&SINCE_RESET, &[database], r);
            }
            // Counters going backwards mean a stats reset: no interval this time.
            let (now_hits, now_reads) = interval_counters(counted);
            let delta = self
                .previous
                .as_ref()
                .and_then(|p| p.get(database))
                .map(|(h, r)| (now_hits - h, now_reads - r))
                .filter(|(h, r)| *h >= 0.0 && *r >= 0.0);
            let interval = delta.and_then(|(h, r)| ratio(h, r));
            if let Some(r) = interval {
                out.set(&RATIO, &[database], r);
            }
            // Judge the interval once there is one, else the since-reset figure.
            let (judged, accesses) = match (&self.previous, delta) {
                (Some(_), Some((h, r))) => (interval, h + r),
                (Some(_), None) => (None, 0.0),
                (None, _) => (since_reset, hits + reads),
            };
            if let Some(r) = judged.filter(|_| *target && accesses >= min_blocks) {
                out.flag(
                    below(r, limits.warning.get(), limits.critical.get()),
                    format!("database {database} hit ratio {r:.3}"),
                );
                if lowest.is_none_or(|(low, _)| r < low) {
                    lowest = Some((r, database));
                }
            }
            listed.push(json!({"database": database, "interval": interval,
                               "since_reset": since_reset, "blocks_in_interval": delta.map(|(h, r)| h + r)}));
        }
        out.set_headline(match lowest {
            Some((r, database)) => format!("lowest {r:.3} ({database})"),
            None => "too little activity to judge".into(),
        });
        out.detail("databases", listed);
        self.previous = Some(
            counters
                .iter()
                .map(|c| (c.database.clone(), interval_counters(c)))
                .collect(),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Status;

    fn counters(database: &str, hits: f64, reads: f64, target: bool) -> Counters {
        Counters {
            database: database.into(),
            hits,
            reads,
            target,
        }
    }

    /// A cycle where the target's user tables saw all of its accesses.
    fn same(check: &mut CacheHitRatio, config: &ChecksConfig, rows: &[Counters]) -> Outcome {
        let own = rows
            .iter()
            .filter(|c| c.target)
            .fold((0.0, 0.0), |(h, r), c| (h + c.hits, r + c.reads));
        check.evaluate(config, rows, own)
    }

    fn value(out: &Outcome, metric: Metric) -> Option<f64> {
        out.measurements
            .iter()
            .find(|m| m.metric == metric.name)
            .map(|m| m.value)
    }

    #[test]
    fn a_low_interval_ratio_of_the_target_database_is_flagged() {
        let config = ChecksConfig::default();
        let mut check = CacheHitRatio::default();
        let first = same(&mut check, &config, &[counters("app", 1e6, 0.0, true)]);
        assert_eq!(first.status(), Status::Ok, "{first:?}");
        // 1,000 hits and 9,000 reads since: 0.1 now, though 0.99 since reset.
        let second = same(
            &mut check,
            &config,
            &[counters("app", 1_001_000.0, 9_000.0, true)],
        );
        assert_eq!(second.status(), Status::Critical, "{second:?}");
        assert_eq!(value(&second, RATIO), Some(0.1));
        // Another database's ratio is exported but judged by its own target.
        let mut other = CacheHitRatio::default();
        same(&mut other, &config, &[counters("other", 0.0, 0.0, false)]);
        let out = same(
            &mut other,
            &config,
            &[counters("other", 1000.0, 9000.0, false)],
        );
        assert_eq!(out.status(), Status::Ok, "{out:?}");
    }

    #[test]
    fn counters_going_backwards_after_a_stats_reset_give_no_interval() {
        let config = ChecksConfig::default();
        let mut check = CacheHitRatio::default();
        same(&mut check, &config, &[counters("app", 1e6, 1e5, true)]);
        // pg_stat_reset(): both counters restart near zero.
        let reset = same(&mut check, &config, &[counters("app", 50.0, 900.0, true)]);
        assert_eq!(reset.status(), Status::Ok, "{reset:?}");
        assert_eq!(value(&reset, RATIO), None, "no negative delta exported");
        assert_eq!(reset.headline, "too little activity to judge");
        // The next cycle measures from the reset values again.
        let next = same(
            &mut check,
            &config,
            &[counters("app", 20_050.0, 900.0, true)],
        );
        assert_eq!(value(&next, RATIO), Some(1.0));
    }

    #[test]
    fn a_database_without_block_accesses_has_no_ratio() {
        let config = ChecksConfig::default();
        let mut check = CacheHitRatio::default();
        let out = same(&mut check, &config, &[counters("app", 0.0, 0.0, true)]);
        assert_eq!(out.status(), Status::Ok);
        assert_eq!(value(&out, SINCE_RESET), None);
    }

    #[test]
    fn pgwardens_own_catalog_accesses_are_left_out_of_the_interval_and_min_blocks() {
        let config = ChecksConfig::default();
        let mut check = CacheHitRatio::default();
        check.evaluate(
            &config,
            &[counters("app", 10_000.0, 100.0, true)],
            (500.0, 500.0),
        );
        // pgwarden's cycle: 5,000 catalog hits in pg_stat_database, none in user tables.
        let quiet = check.evaluate(
            &config,
            &[counters("app", 15_000.0, 100.0, true)],
            (500.0, 500.0),
        );
        assert_eq!(quiet.headline, "too little activity to judge", "{quiet:?}");
        assert_eq!(quiet.details["databases"][0]["blocks_in_interval"], 0.0);
        // The application: 1,000 hits and 1,000 reads; pgwarden another 5,000 hits.
        let busy = check.evaluate(
            &config,
            &[counters("app", 21_000.0, 1_100.0, true)],
            (1_500.0, 1_500.0),
        );
        assert_eq!(value(&busy, RATIO), Some(0.5));
        assert_eq!(busy.status(), Status::Critical, "{busy:?}");
    }
}
