//! The backups in `backup.dir`, as their manifests describe them.
//!
//! A backup without a manifest is not listed: pgwarden only vouches for
//! backups it can check. A manifest whose backup is gone is listed as missing.

use std::path::{Path, PathBuf};

use super::manifest::{Manifest, io_error};
use crate::error::Result;

#[derive(Clone, Debug)]
pub struct Entry {
    pub path: PathBuf,
    pub manifest: Manifest,
    /// The backup file (or directory) still exists.
    pub present: bool,
}

impl Entry {
    /// Present and passed its last verification: retention counts only these.
    pub fn good(&self) -> bool {
        self.present && self.manifest.verified() == Some(true)
    }
}

/// Every backup with a manifest in `dir`, oldest first. A missing directory
/// is an empty list.
pub fn list(dir: &Path) -> Result<Vec<Entry>> {
    let read = match std::fs::read_dir(dir) {
        Ok(read) => read,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error("list the backup directory", dir, e)),
    };
    let mut entries = Vec::new();
    for item in read.flatten() {
        let name = item.file_name().to_string_lossy().into_owned();
        let Some(backup_name) = name.strip_suffix(".json") else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let path = dir.join(backup_name);
        match Manifest::read_for(&path) {
            Ok(manifest) => entries.push(Entry {
                present: path.exists(),
                path,
                manifest,
            }),
            Err(e) => tracing::warn!("skipping {name}: {e}"),
        }
    }
    entries.sort_by(|a, b| (a.manifest.started_at, &a.path).cmp(&(b.manifest.started_at, &b.path)));
    Ok(entries)
}
