//! The JSON manifest written beside every backup (`<backup>.json`).
//!
//! It is what makes a backup checkable later: the sha256 and size catch a
//! truncated or corrupted file, the per-table row counts (taken inside the
//! dump's own snapshot) let a restore test prove the data came back, and the
//! versions say which tools can read it.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Format;
use crate::error::{Error, Result, io_error};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// File (or directory) name of the backup, beside this manifest.
    pub file: String,
    pub target: String,
    pub database: String,
    pub format: Format,
    pub compress: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub duration_seconds: f64,
    pub size_bytes: u64,
    /// sha256 of the file; of a directory: see [`sha256`].
    pub sha256: String,
    pub server_version: String,
    pub pg_dump_version: String,
    /// True when the counts come from the dump's own snapshot.
    pub row_counts_exact: bool,
    /// `schema.table` → rows at dump time.
    pub row_counts: std::collections::BTreeMap<String, i64>,
    #[serde(default)]
    pub verification: Option<Verification>,
}

/// The outcome of the last verification of this backup.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    pub at: DateTime<Utc>,
    pub ok: bool,
    /// Whether it was restored into a scratch database (not only read).
    pub restore_test: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Manifest {
    /// Where the manifest of `backup` lives.
    pub fn path_for(backup: &Path) -> PathBuf {
        let mut name = backup.as_os_str().to_os_string();
        name.push(".json");
        PathBuf::from(name)
    }

    /// The manifest of `backup`, or an error saying it is missing or unreadable.
    pub fn read_for(backup: &Path) -> Result<Manifest> {
        let path = Self::path_for(backup);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Error::failed(format!(
                "no readable manifest {} beside the backup ({e}); pgwarden restores and verifies only backups it can check against their manifest",
                path.display()
            ))
        })?;
        serde_json::from_str(&text)
            .map_err(|e| Error::failed(format!("manifest {} is not valid: {e}", path.display())))
    }

    /// Write beside `backup`: to a temporary name, fsynced, then renamed.
    pub fn write_for(&self, backup: &Path) -> Result<()> {
        let path = Self::path_for(backup);
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::failed(format!("cannot encode manifest: {e}")))?;
        write_atomically(&path, text.as_bytes())
    }

    pub fn verified(&self) -> Option<bool> {
        self.verification.as_ref().map(|v| v.ok)
    }
}

/// Write `bytes` to `path` without ever leaving a half-written file under it.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".pgwarden-")
        .tempfile_in(dir)
        .map_err(|e| io_error("create a temporary file in", dir, e))?;
    tmp.write_all(bytes)
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(|e| io_error("write", tmp.path(), e))?;
    tmp.persist(path)
        .map_err(|e| io_error("rename into", path, e.error))?;
    sync_dir(dir)
}

/// Create `dir` and its missing parents as 0700 (backups hold whole
/// databases); an existing directory is left as the operator made it.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// fsync a directory, so a rename in it survives a crash.
pub fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error("fsync", dir, e))
}

/// fsync a file, or every file of a directory and the directory itself.
pub fn sync_tree(path: &Path) -> Result<()> {
    let sync = |p: &Path| {
        std::fs::File::open(p)
            .and_then(|f| f.sync_all())
            .map_err(|e| io_error("fsync", p, e))
    };
    if path.is_dir() {
        for file in sorted_files(path)? {
            sync(&file)?;
        }
    }
    sync(path)
}

/// Size and sha256 of a backup (and an fsync of it when `fsync`), off the
/// async threads: hashing a large dump must not stall the daemon's other
/// work. The fsync and the hash run side by side — one waits on the disk,
/// the other reads the freshly written file from the page cache — and both
/// must succeed.
pub async fn measure(path: &Path, fsync: bool) -> Result<(u64, String)> {
    let blocking = |job: fn(&Path) -> Result<()>| {
        let path = path.to_path_buf();
        async move {
            tokio::task::spawn_blocking(move || job(&path))
                .await
                .map_err(|e| Error::failed(format!("fsync task failed: {e}")))?
        }
    };
    let synced = async {
        if fsync {
            blocking(sync_tree).await
        } else {
            Ok(())
        }
    };
    let hashed = {
        let path = path.to_path_buf();
        async move {
            tokio::task::spawn_blocking(move || Ok((size(&path)?, sha256(&path)?)))
                .await
                .map_err(|e| Error::failed(format!("checksum task failed: {e}")))?
        }
    };
    let ((), measured) = tokio::try_join!(synced, hashed)?;
    Ok(measured)
}

/// The sha256 of a file, or of a directory backup: every file sorted by
/// name, hashing each name, a zero byte, its length (u64 LE) and its bytes.
pub fn sha256(path: &Path) -> Result<String> {
    let mut hasher = Sha256::new();
    if path.is_dir() {
        for file in sorted_files(path)? {
            let name = file
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let len = std::fs::metadata(&file)
                .map_err(|e| io_error("read", &file, e))?
                .len();
            hasher.update(name.as_bytes());
            hasher.update([0u8]);
            hasher.update(len.to_le_bytes());
            hash_file(&file, &mut hasher)?;
        }
    } else {
        hash_file(path, &mut hasher)?;
    }
    Ok(hex::encode(hasher.finalize()))
}

fn hash_file(path: &Path, hasher: &mut Sha256) -> Result<()> {
    let mut file = std::fs::File::open(path).map_err(|e| io_error("open", path, e))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| io_error("read", path, e))?;
        if n == 0 {
            return Ok(());
        }
        hasher.update(&buf[..n]);
    }
}

/// Total size in bytes of a file or of the files of a directory backup.
pub fn size(path: &Path) -> Result<u64> {
    if !path.is_dir() {
        return std::fs::metadata(path)
            .map(|m| m.len())
            .map_err(|e| io_error("read", path, e));
    }
    sorted_files(path)?.iter().try_fold(0u64, |sum, f| {
        let len = std::fs::metadata(f)
            .map_err(|e| io_error("read", f, e))?
            .len();
        Ok(sum + len)
    })
}

/// The files of a directory backup (it is flat), sorted by name.
pub fn sorted_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| io_error("list", dir, e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    Ok(files)
}
