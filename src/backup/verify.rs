//! Is a backup still good? Checked against its manifest, and optionally
//! proven by restoring it.
//!
//! The basic check reads the whole file: its size and sha256 must match the
//! manifest (a truncated or altered file fails here, before anything reads
//! it as a dump), and pg_restore must read its table of contents (or a plain
//! dump must end with pg_dump's closing line). The restore test restores
//! into a scratch database on the target's server, compares every table's
//! row count with the manifest and drops the scratch database again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use chrono::Utc;
use serde::Serialize;

use super::dump;
use super::manifest::{self, Manifest, Verification};
use super::restore;
use super::tools::Tools;
use crate::config::{Config, TargetConfig};
use crate::error::{Error, Result};

#[derive(Clone, Debug, Serialize)]
pub struct VerifyReport {
    pub path: PathBuf,
    pub manifest: Manifest,
    pub restore_test: bool,
    /// Tables compared in the restore test.
    pub tables_compared: usize,
}

/// Size, sha256 and readability, against the manifest. Reads no database.
pub async fn check_file(config: &Config, path: &Path) -> Result<(Manifest, Tools)> {
    if !path.exists() {
        return Err(Error::usage(format!("{} does not exist", path.display())));
    }
    let manifest = Manifest::read_for(path)?;
    let (size, sha256) = manifest::measure(path, false).await?;
    if size != manifest.size_bytes {
        return Err(Error::failed(format!(
            "{} is {size} bytes but its manifest says {}: the file is truncated or was changed",
            path.display(),
            manifest.size_bytes
        )));
    }
    if sha256 != manifest.sha256 {
        return Err(Error::failed(format!(
            "the sha256 of {} ({sha256}) differs from its manifest ({}): the file is corrupt",
            path.display(),
            manifest.sha256
        )));
    }
    let tools = Tools::locate(config.backup.bin_dir.as_deref())?;
    dump::sanity_check(&tools, manifest.format, path).await?;
    Ok((manifest, tools))
}

/// Verify a backup, record the outcome in its manifest, and return it.
/// The restore test needs the target whose server to use: `target`, or the
/// one named in the manifest.
pub async fn verify(
    config: &Config,
    target: Option<&TargetConfig>,
    path: &Path,
    restore_test: bool,
) -> Result<VerifyReport> {
    if !path.exists() {
        return Err(Error::usage(format!("{} does not exist", path.display())));
    }
    let mut manifest = Manifest::read_for(path)?;
    let outcome = run_checks(config, target, path, restore_test).await;
    manifest.verification = Some(Verification {
        at: Utc::now(),
        ok: outcome.is_ok(),
        restore_test,
        error: outcome.as_ref().err().map(|e| e.to_string()),
    });
    manifest.write_for(path)?;
    let tables_compared = outcome?;
    Ok(VerifyReport {
        path: path.to_path_buf(),
        manifest,
        restore_test,
        tables_compared,
    })
}

async fn run_checks(
    config: &Config,
    target: Option<&TargetConfig>,
    path: &Path,
    restore_test: bool,
) -> Result<usize> {
    let (manifest, tools) = check_file(config, path).await?;
    if !restore_test {
        return Ok(0);
    }
    let target = match target {
        Some(t) => t,
        None => config.target(Some(&manifest.target)).map_err(|e| {
            e.context(
                "the restore test restores on the server of the backup's target; pass --target",
            )
        })?,
    };
    restore_test_on(&tools, target, &manifest, path).await
}

/// Restore into a scratch database, compare row counts, always drop it.
async fn restore_test_on(
    tools: &Tools,
    target: &TargetConfig,
    manifest: &Manifest,
    path: &Path,
) -> Result<usize> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let scratch = format!(
        "pgwarden_verify_{}_{}_{}",
        std::process::id(),
        Utc::now().format("%Y%m%d%H%M%S"),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    restore::ensure_database(target, &scratch).await?;
    let result = async {
        restore::load_into(tools, target, &scratch, path, manifest.format, false).await?;
        restore::count_rows_in(target, &scratch).await
    }
    .await;
    let dropped = restore::drop_database(target, &scratch).await;
    let counts = result?;
    dropped?;
    let wrong = mismatches(&manifest.row_counts, &counts);
    if !wrong.is_empty() {
        return Err(Error::failed(format!(
            "restore test of {}: row counts differ from the manifest: {}",
            path.display(),
            wrong.join(", ")
        )));
    }
    Ok(counts.len())
}

/// Tables whose counts differ, as `table (manifest N, restored M)`.
pub fn mismatches(expected: &BTreeMap<String, i64>, actual: &BTreeMap<String, i64>) -> Vec<String> {
    let mut tables: Vec<&String> = expected.keys().chain(actual.keys()).collect();
    tables.sort();
    tables.dedup();
    tables
        .into_iter()
        .filter(|t| expected.get(*t) != actual.get(*t))
        .map(|t| {
            let show = |v: Option<&i64>| v.map_or("missing".to_string(), |n| n.to_string());
            format!(
                "{t} (manifest {}, restored {})",
                show(expected.get(t)),
                show(actual.get(t))
            )
        })
        .collect()
}
