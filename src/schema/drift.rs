//! Drift: objects changed out of band, by hand, on a migrated database.
//!
//! `migrate drift` compares the live database with what its applied
//! migrations produce (in a scratch database). The daemon cannot start
//! scratch databases on its schedule, so whenever pgwarden applies or
//! reverts migrations it records a fingerprint of the catalog (a hash per
//! object) in the target itself; the daemon compares against that
//! (`pgwarden_schema_drift_objects`).

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use tokio_postgres::Client;

use super::Model;
use super::introspect::read_model;
use super::scratch::Scratch;
use crate::config::{Config, TargetConfig};
use crate::error::{Error, Result};
use crate::migrate::session::db_message;

/// Where the fingerprint is kept, beside the migration history.
pub const FINGERPRINT_TABLE: &str = "pgwarden_schema_fingerprint";

/// One object changed out of band.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    /// "added", "removed" or "changed".
    pub how: &'static str,
    /// "index public.users_x_idx".
    pub object: String,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.how, self.object)
    }
}

/// A hash per object: what the daemon compares.
pub fn fingerprint(model: &Model) -> BTreeMap<String, String> {
    model
        .objects
        .iter()
        .map(|(key, o)| {
            let hash = Sha256::digest(o.def.as_bytes());
            (key.clone(), hex::encode(&hash[..8]))
        })
        .collect()
}

/// What differs between two fingerprints, leaving out what comes with a
/// parent that is itself added or removed (a new table's columns).
pub fn changes(
    expected: &BTreeMap<String, String>,
    live: &BTreeMap<String, String>,
    parents: &dyn Fn(&str) -> Option<String>,
) -> Vec<Change> {
    let mut out = Vec::new();
    let mut whole = std::collections::BTreeSet::new();
    for (key, hash) in expected {
        match live.get(key) {
            None => {
                whole.insert(key.clone());
                out.push(("removed", key.clone()));
            }
            Some(h) if h != hash => out.push(("changed", key.clone())),
            _ => {}
        }
    }
    for key in live.keys().filter(|k| !expected.contains_key(*k)) {
        whole.insert(key.clone());
        out.push(("added", key.clone()));
    }
    out.into_iter()
        .filter(|(_, key)| !parents(key).is_some_and(|p| whole.contains(&p)))
        .map(|(how, key)| Change {
            how,
            object: key.replacen(':', " ", 1),
        })
        .collect()
}

fn model_parents(a: &Model, b: &Model) -> impl Fn(&str) -> Option<String> {
    let mut parents: BTreeMap<String, String> = BTreeMap::new();
    for o in a.objects.values().chain(b.objects.values()) {
        if let Some(p) = &o.parent {
            parents.insert(o.key.clone(), p.clone());
        }
    }
    move |k: &str| parents.get(k).cloned()
}

/// Record the target's fingerprint (after pgwarden migrated it), when drift
/// detection is on (`schema.drift_interval` above 0: it adds a table to the
/// target). A failure is logged, never fails the migration that already happened.
pub async fn record_after_migrate(config: &Config, client: &Client, version: Option<i64>) {
    if !enabled(config) {
        return;
    }
    if let Err(e) = record(client, version).await {
        tracing::warn!("could not record the schema fingerprint (drift detection): {e}");
    }
}

async fn record(client: &Client, version: Option<i64>) -> Result<()> {
    let model = read_model(client).await?;
    let objects = serde_json::to_value(fingerprint(&model))
        .map_err(|e| Error::failed(format!("cannot encode the fingerprint: {e}")))?;
    let fail = |e: tokio_postgres::Error| Error::failed(db_message(&e));
    if !table_exists(client).await? {
        client
            .batch_execute(&format!(
                "CREATE TABLE {FINGERPRINT_TABLE} (one boolean PRIMARY KEY DEFAULT true CHECK (one), version bigint, recorded_at timestamptz NOT NULL, objects jsonb NOT NULL)"
            ))
            .await
            .map_err(fail)?;
    }
    client
        .execute(
            &format!(
                "WITH gone AS (DELETE FROM {FINGERPRINT_TABLE}) INSERT INTO {FINGERPRINT_TABLE} (version, recorded_at, objects) VALUES ($1, now(), $2)"
            ),
            &[&version, &objects],
        )
        .await
        .map_err(fail)?;
    Ok(())
}

async fn table_exists(client: &Client) -> Result<bool> {
    let row = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&FINGERPRINT_TABLE])
        .await
        .map_err(|e| Error::failed(db_message(&e)))?;
    row.try_get(0).map_err(|e| Error::failed(e.to_string()))
}

/// The live catalog against the recorded fingerprint; None when pgwarden
/// never recorded one there (it never migrated this database).
pub async fn against_fingerprint(client: &Client) -> Result<Option<Vec<Change>>> {
    if !table_exists(client).await? {
        return Ok(None);
    }
    let row = client
        .query_opt(
            &format!("SELECT objects FROM {FINGERPRINT_TABLE} LIMIT 1"),
            &[],
        )
        .await
        .map_err(|e| Error::failed(db_message(&e)))?;
    let Some(row) = row else { return Ok(None) };
    let objects: serde_json::Value = row.try_get(0).map_err(|e| Error::failed(e.to_string()))?;
    let expected: BTreeMap<String, String> = serde_json::from_value(objects).map_err(|e| {
        Error::failed(format!(
            "{FINGERPRINT_TABLE} holds an unreadable fingerprint ({e}); `pgwarden migrate stamp` or the next migration records a new one"
        ))
    })?;
    let live = read_model(client).await?;
    let parents = model_parents(&live, &live);
    Ok(Some(changes(&expected, &fingerprint(&live), &parents)))
}

/// What `migrate drift` reports.
pub struct DriftReport {
    pub version: Option<i64>,
    pub changes: Vec<Change>,
    /// The SQL that would put the database back (diff live → migrations).
    pub undo: super::Diff,
}

/// The live target against its applied migrations, rebuilt in a scratch database.
pub async fn against_migrations(config: &Config, target: &TargetConfig) -> Result<DriftReport> {
    let status = crate::migrate::status(config, target).await?;
    let client = crate::pool::connect_direct(target).await?;
    let live = read_model(&client).await?;
    let mut scratch = Scratch::new(config);
    let expected = match status.current_version {
        Some(v) => scratch.load_migrations(config, Some(v)).await,
        None => scratch.database().await,
    };
    let expected = match expected {
        Ok(url) => super::read_url(&url).await,
        Err(e) => Err(e),
    };
    scratch.close().await;
    let expected = expected?;
    let parents = model_parents(&expected, &live);
    Ok(DriftReport {
        version: status.current_version,
        changes: changes(&fingerprint(&expected), &fingerprint(&live), &parents),
        undo: super::diff::diff(&live, &expected),
    })
}

/// Whether the daemon watches for drift (and migrations record fingerprints).
pub fn enabled(config: &Config) -> bool {
    !config.schema.drift_interval.get().is_zero()
}
