//! `seed stats`: rows per table, and how many of them came from seeding.
//!
//! Seeded rows are the ones whose id carries the seed prefix
//! ([`super::ids::SEEDED_PREFIX`]); counting them is one range condition on
//! the primary key, so no bookkeeping table is needed.

use serde::Serialize;

use super::generate::TABLES;
use super::ids::seeded_range;
use super::writer::db_error;
use crate::checks::rows::value;
use crate::config::TargetConfig;
use crate::error::Result;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TableStats {
    pub table: String,
    pub rows: i64,
    pub seeded: i64,
}

/// Row counts of every seeded table of `target`.
pub async fn stats(target: &TargetConfig) -> Result<Vec<TableStats>> {
    let client = crate::pool::connect_direct(target).await?;
    super::ensure_schema(&client).await?;
    let (lo, hi) = seeded_range();
    let mut out = Vec::new();
    for table in TABLES {
        let row = client
            .query_one(
                &format!(
                    "SELECT count(*), count(*) FILTER (WHERE id BETWEEN $1 AND $2) FROM {}",
                    table.name()
                ),
                &[&lo, &hi],
            )
            .await
            .map_err(|e| db_error(&format!("counting {}", table.name()), &e))?;
        let what = format!("counting {}", table.name());
        out.push(TableStats {
            table: table.name().to_string(),
            rows: value(&row, 0, &what)?,
            seeded: value(&row, 1, &what)?,
        });
    }
    Ok(out)
}
