//! The backups in `backup.dir`, as their manifests describe them.
//!
//! A backup without a manifest is not listed: pgwarden only vouches for
//! backups it can check. A manifest whose backup is gone is listed as missing.

use std::path::{Path, PathBuf};

use super::manifest::Manifest;
use crate::error::{Result, io_error};

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

/// Remove temporary files (`.<name>.tmp-<pid>-<n>`) left in `dir` by a
/// pgwarden process that no longer runs (a crash, a `kill -9`). Files of a
/// live process are left alone. Returns what was (or, with `dry_run`,
/// would be) removed.
pub fn remove_stale_temporaries(dir: &Path, dry_run: bool) -> Result<Vec<PathBuf>> {
    let read = match std::fs::read_dir(dir) {
        Ok(read) => read,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error("list the backup directory", dir, e)),
    };
    let mut removed = Vec::new();
    for item in read.flatten() {
        let name = item.file_name().to_string_lossy().into_owned();
        let Some(pid) = temporary_owner(&name) else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let path = item.path();
        if dry_run {
            removed.push(path);
            continue;
        }
        let result = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        result.map_err(|e| io_error("remove the stale temporary file", &path, e))?;
        removed.push(path);
    }
    Ok(removed)
}

/// The pid in a temporary name written by `dump` (`.<name>.tmp-<pid>-<n>`).
fn temporary_owner(name: &str) -> Option<u32> {
    if !name.starts_with('.') {
        return None;
    }
    let (_, suffix) = name.rsplit_once(".tmp-")?;
    let (pid, n) = suffix.split_once('-')?;
    n.parse::<u32>().ok()?;
    pid.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_are_recognised() {
        assert_eq!(
            temporary_owner(".main_db_20240101_030000.dump.tmp-4242-0"),
            Some(4242)
        );
        assert_eq!(temporary_owner("main_db_20240101_030000.dump"), None);
        assert_eq!(temporary_owner(".main.dump.tmp-x-0"), None);
        assert_eq!(temporary_owner(".pgwarden-abc123"), None);
    }
}
