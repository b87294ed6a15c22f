//! `seed clear`: delete the seeded rows, in development only.
//!
//! Only rows with a seeded id go (plus rows that would block their deletion:
//! awards of a seeded achievement), children before parents. `audit_log` is
//! append-only through user triggers; clearing disables them for the length
//! of its own transaction, which is why this is development-only.

use tokio_postgres::Transaction;

use super::generate::TABLES;
use super::ids::seeded_range;
use super::writer::db_error;
use crate::config::Environment;
use crate::error::{Error, Result};

/// Refuse anything but development, before touching the database.
pub fn ensure_allowed(environment: Environment, what: &str) -> Result<()> {
    if environment == Environment::Development {
        return Ok(());
    }
    Err(Error::usage(format!(
        "{what} is refused in {environment}: it deletes data and runs only in development; \
         nothing was deleted (the environment comes from --env, PGWARDEN_ENV or `environment` in the config)"
    )))
}

/// Delete every seeded row inside `tx`; returns (table, rows deleted).
pub async fn clear_in(tx: &Transaction<'_>) -> Result<Vec<(String, u64)>> {
    let (lo, hi) = seeded_range();
    let mut deleted = Vec::new();
    for table in TABLES.iter().rev() {
        let name = table.name();
        let extra = if name == "user_achievements" {
            " OR achievement_id BETWEEN $1 AND $2"
        } else {
            ""
        };
        let append_only = name == "audit_log";
        if append_only {
            tx.batch_execute("ALTER TABLE audit_log DISABLE TRIGGER USER")
                .await
                .map_err(|e| db_error("clearing audit_log", &e))?;
        }
        let n = tx
            .execute(
                &format!("DELETE FROM {name} WHERE id BETWEEN $1 AND $2{extra}"),
                &[&lo, &hi],
            )
            .await
            .map_err(|e| db_error(&format!("clearing {name}"), &e))?;
        if append_only {
            tx.batch_execute("ALTER TABLE audit_log ENABLE TRIGGER USER")
                .await
                .map_err(|e| db_error("clearing audit_log", &e))?;
        }
        deleted.push((name.to_string(), n));
    }
    deleted.reverse();
    Ok(deleted)
}
