//! Bloat estimate for tables and B-tree indexes, part of table_integrity:
//! how many bytes each would shrink by if rewritten, from the statistics
//! alone (pg_class sizes and row counts, pg_stats widths) — no extension,
//! no lock beyond what reading the catalog takes, no page read. A table's
//! expected size is its rows times their width (tuple header, null bitmap,
//! alignment and line pointer included) over the usable space of a page at
//! its fillfactor; an index's likewise with index tuples on leaf pages at
//! 90 %. Relations without statistics (never analysed, or not readable by
//! the monitoring role: pg_stats shows only tables it may SELECT from) and
//! expression indexes are not estimated. Top N by wasted bytes.

use serde_json::json;

use super::metric::Metric;
use super::rows::col;
use super::{ChecksConfig, Outcome, USER_SCHEMAS, at_least};

pub const WASTED: Metric = Metric::gauge(
    "bloat_wasted_bytes",
    "Estimated bytes a rewrite would free, of the top-N tables and B-tree indexes by it.",
    &["relation"],
)
.per_database();
pub const MAX_RATIO: Metric = Metric::gauge(
    "bloat_max_ratio",
    "Highest estimated wasted share of a table or B-tree index of at least bloat_min_bytes, 0-1.",
    &[],
)
.per_database();

pub fn sql(top_n: usize) -> String {
    format!(
        "WITH widths AS ( \
           SELECT schemaname, tablename, attname, (1 - null_frac) * avg_width AS width, null_frac > 0 AS nulls \
           FROM pg_stats WHERE schemaname NOT IN ('pg_catalog', 'information_schema') \
         ), tables AS ( \
           SELECT n.nspname || '.' || c.relname AS name, 'table' AS kind, c.relpages::float8 AS pages, \
             c.reltuples::float8 AS tuples, \
             ceil((ceil((23 + CASE WHEN bool_or(w.nulls) THEN ceil(count(*) / 8.0) ELSE 0 END) / 8.0) * 8 \
                   + sum(w.width)) / 8.0) * 8 + 4 AS tuple_bytes, \
             (current_setting('block_size')::float8 - 24) * coalesce((SELECT substr(o, 12)::float8 \
               FROM unnest(c.reloptions) o WHERE o LIKE 'fillfactor=%'), 100) / 100 AS usable, \
             0 AS meta \
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
           JOIN widths w ON w.schemaname = n.nspname AND w.tablename = c.relname \
           WHERE c.relkind IN ('r', 'm') AND c.reltuples >= 0 AND {USER_SCHEMAS} \
           GROUP BY c.oid, n.nspname, c.relname \
         ), indexes AS ( \
           SELECT n.nspname || '.' || ci.relname, 'index', ci.relpages::float8, ci.reltuples::float8, \
             ceil((8 + sum(w.width)) / 8.0) * 8 + 4, \
             (current_setting('block_size')::float8 - 40) * coalesce((SELECT substr(o, 12)::float8 \
               FROM unnest(ci.reloptions) o WHERE o LIKE 'fillfactor=%'), 90) / 100, \
             1 \
           FROM pg_index i JOIN pg_class ci ON ci.oid = i.indexrelid \
           JOIN pg_class ct ON ct.oid = i.indrelid \
           JOIN pg_namespace n ON n.oid = ci.relnamespace \
           JOIN pg_am am ON am.oid = ci.relam AND am.amname = 'btree' \
           JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) \
           JOIN widths w ON w.schemaname = n.nspname AND w.tablename = ct.relname AND w.attname = a.attname \
           WHERE ci.reltuples >= 0 AND {USER_SCHEMAS} \
           GROUP BY ci.oid, n.nspname, ci.relname, i.indnkeyatts \
           HAVING count(*) = i.indnkeyatts \
         ), estimated AS ( \
           SELECT name, kind, pages * current_setting('block_size')::float8 AS bytes, \
             greatest(pages - meta - ceil(tuples * tuple_bytes / usable), 0) \
               * current_setting('block_size')::float8 AS wasted \
           FROM (SELECT * FROM tables UNION ALL SELECT * FROM indexes) r \
         ) \
         SELECT name, kind, bytes::float8, wasted::float8 FROM estimated \
         ORDER BY wasted DESC, name LIMIT {top_n}"
    )
}

#[derive(Debug)]
pub struct Bloat {
    pub name: String,
    pub kind: String,
    pub bytes: f64,
    pub wasted: f64,
}

pub fn bloat(row: &tokio_postgres::Row) -> Result<Bloat, String> {
    Ok(Bloat {
        name: col(row, 0)?,
        kind: col(row, 1)?,
        bytes: col(row, 2)?,
        wasted: col(row, 3)?,
    })
}

pub fn evaluate(config: &ChecksConfig, rows: &[Bloat], out: &mut Outcome) {
    let limits = &config.table_integrity;
    for b in rows {
        out.set(&WASTED, &[&b.name], b.wasted);
    }
    // Small relations' estimates are noise (a few pages either way).
    let judged = rows
        .iter()
        .filter(|b| b.bytes >= limits.bloat_min_bytes as f64 && b.bytes > 0.0)
        .map(|b| (b, b.wasted / b.bytes))
        .max_by(|(_, x), (_, y)| x.total_cmp(y));
    out.set(&MAX_RATIO, &[], judged.map_or(0.0, |(_, r)| r));
    if let Some((b, ratio)) = judged {
        out.flag(
            at_least(ratio, limits.bloat_ratio_warning.get(), f64::INFINITY),
            format!(
                "{} {} is an estimated {:.0}% bloat ({}); VACUUM FULL or pg_repack it, REINDEX CONCURRENTLY an index",
                b.kind,
                b.name,
                ratio * 100.0,
                crate::report::human_bytes(b.wasted)
            ),
        );
    }
    let listed: Vec<_> = rows
        .iter()
        .map(|b| json!({"relation": b.name, "kind": b.kind, "bytes": b.bytes, "wasted_bytes": b.wasted}))
        .collect();
    out.detail("bloat", listed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Status;

    fn bloat(name: &str, bytes: f64, wasted: f64) -> Bloat {
        Bloat {
            name: name.into(),
            kind: "table".into(),
            bytes,
            wasted,
        }
    }

    #[test]
    fn a_bloated_relation_over_the_minimum_size_warns_a_small_one_does_not() {
        let config = ChecksConfig::default();
        let min = config.table_integrity.bloat_min_bytes as f64;
        let mut out = Outcome::new("");
        evaluate(
            &config,
            &[bloat("public.tiny", min / 2.0, min / 2.0 * 0.9)],
            &mut out,
        );
        assert_eq!(out.status(), Status::Ok, "{out:?}");
        let mut out = Outcome::new("");
        let rows = [
            bloat("public.big", min * 10.0, min * 6.0),
            bloat("public.ok", min, 0.0),
        ];
        evaluate(&config, &rows, &mut out);
        assert_eq!(out.status(), Status::Warning, "{out:?}");
        assert!(
            out.problems[0].contains("table public.big is an estimated 60% bloat"),
            "{out:?}"
        );
        assert_eq!(out.measurements.len(), 3, "{out:?}");
    }
}
