//! cache_hit_ratio: buffer cache hits / (hits + reads) per database, since
//! stats reset and over the last interval. The interval figure (deltas of
//! pg_stat_database's counters between two cycles) is what an operator means
//! by "the hit ratio now": the since-reset figure of a database that has run
//! for months barely moves when the cache stops working. Status comes from
//! the interval once there is one, and only for databases that did at least
//! `min_blocks` block accesses in it — a ratio over a handful is noise — and
//! only for the target's own database: every database's ratio is exported,
//! but another database on the same server is another target's verdict.

use std::collections::HashMap;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::json;

use super::rows::{col, fetch};
use super::{Check, ChecksConfig, Context, Labelled, Outcome, below};

const NAME: &str = "cache_hit_ratio";

const RATIO: &str = "cache_hit_ratio";
const RATIO_HELP: &str = "Buffer cache hit ratio over the last interval, 0-1.";
const SINCE_RESET: &str = "cache_hit_ratio_since_reset";
const SINCE_RESET_HELP: &str = "Buffer cache hit ratio since stats reset, 0-1.";

const SQL: &str = "SELECT datname::text, blks_hit::float8, blks_read::float8, \
     datname = current_database() FROM pg_stat_database WHERE datname IS NOT NULL ORDER BY datname";

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
    fn name(&self) -> &'static str {
        NAME
    }

    fn queries(&self, _: &ChecksConfig) -> Vec<String> {
        vec![SQL.into()]
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
            session.finish().await;
            Ok(self.evaluate(ctx.config, &counters))
        }
        .boxed()
    }
}

fn ratio(hits: f64, reads: f64) -> Option<f64> {
    let total = hits + reads;
    (total > 0.0).then(|| hits / total)
}

impl CacheHitRatio {
    fn evaluate(&mut self, config: &ChecksConfig, counters: &[Counters]) -> Outcome {
        let limits = &config.cache_hit_ratio;
        let min_blocks = limits.min_blocks as f64;
        let mut out = Outcome::new("");
        let mut lowest: Option<(f64, &str)> = None;
        let mut listed = Vec::new();
        for Counters {
            database,
            hits,
            reads,
            target,
        } in counters
        {
            let since_reset = ratio(*hits, *reads);
            if let Some(r) = since_reset {
                out.gauge(SINCE_RESET, SINCE_RESET_HELP, r)
                    .with("database", database);
            }
            // Counters going backwards mean a stats reset: no interval this time.
            let delta = self
                .previous
                .as_ref()
                .and_then(|p| p.get(database))
                .map(|(h, r)| (hits - h, reads - r))
                .filter(|(h, r)| *h >= 0.0 && *r >= 0.0);
            let interval = delta.and_then(|(h, r)| ratio(h, r));
            if let Some(r) = interval {
                out.gauge(RATIO, RATIO_HELP, r).with("database", database);
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
                .map(|c| (c.database.clone(), (c.hits, c.reads)))
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

    fn value(out: &Outcome, metric: &str) -> Option<f64> {
        out.measurements
            .iter()
            .find(|m| m.metric == metric)
            .map(|m| m.value)
    }

    #[test]
    fn a_low_interval_ratio_of_the_target_database_is_flagged() {
        let config = ChecksConfig::default();
        let mut check = CacheHitRatio::default();
        let first = check.evaluate(&config, &[counters("app", 1e6, 0.0, true)]);
        assert_eq!(first.status(), Status::Ok, "{first:?}");
        // 1,000 hits and 9,000 reads since: 0.1 now, though 0.99 since reset.
        let second = check.evaluate(&config, &[counters("app", 1_001_000.0, 9_000.0, true)]);
        assert_eq!(second.status(), Status::Critical, "{second:?}");
        assert_eq!(value(&second, RATIO), Some(0.1));
        // Another database's ratio is exported but judged by its own target.
        let mut other = CacheHitRatio::default();
        other.evaluate(&config, &[counters("other", 0.0, 0.0, false)]);
        let out = other.evaluate(&config, &[counters("other", 1000.0, 9000.0, false)]);
        assert_eq!(out.status(), Status::Ok, "{out:?}");
    }

    #[test]
    fn counters_going_backwards_after_a_stats_reset_give_no_interval() {
        let config = ChecksConfig::default();
        let mut check = CacheHitRatio::default();
        check.evaluate(&config, &[counters("app", 1e6, 1e5, true)]);
        // pg_stat_reset(): both counters restart near zero.
        let reset = check.evaluate(&config, &[counters("app", 50.0, 900.0, true)]);
        assert_eq!(reset.status(), Status::Ok, "{reset:?}");
        assert_eq!(value(&reset, RATIO), None, "no negative delta exported");
        assert_eq!(reset.headline, "too little activity to judge");
        // The next cycle measures from the reset values again.
        let next = check.evaluate(&config, &[counters("app", 20_050.0, 900.0, true)]);
        assert_eq!(value(&next, RATIO), Some(1.0));
    }

    #[test]
    fn a_database_without_block_accesses_has_no_ratio() {
        let config = ChecksConfig::default();
        let mut check = CacheHitRatio::default();
        let out = check.evaluate(&config, &[counters("app", 0.0, 0.0, true)]);
        assert_eq!(out.status(), Status::Ok);
        assert_eq!(value(&out, SINCE_RESET), None);
    }
}
