//! "One backup at a time per target", across processes.
//!
//! The daemon's scheduled backup (and its retention pass), a manual
//! `pgwarden backup`, the backup before a production `migrate up` and a
//! manual `pgwarden backup prune` can run in different processes. They
//! exclude each other with an exclusive, non-blocking `flock(2)` on
//! `<backup.dir>/.<target>.lock`:
//!
//! - the kernel drops the lock when its holder exits, however it dies
//!   (`kill -9` included), so there is never a stale lock to clean up; the
//!   file itself stays and means nothing while unlocked (removing it on
//!   release would let two processes lock two different inodes);
//! - the holder writes its pid and purpose into the file, so whoever is
//!   refused can say which process holds it;
//! - the lock guards what actually needs exclusion: one backup directory —
//!   its file names, the retention pass that prunes it, and not dumping
//!   the same target twice into it at once.
//!
//! Why not a PostgreSQL advisory lock: two pgwarden hosts that back up the
//! same database into *different* directories (independent copies) would
//! then exclude each other, and with the same schedule one of them would
//! skip every run, silently losing the second copy. An advisory lock also
//! needs the server reachable just to find out that another backup runs, and
//! a pooled session could keep it after the backup ended. The file lock is
//! per directory; on a shared NFS directory Linux maps `flock` onto NFS
//! byte-range locks, so hosts sharing one directory still exclude each other.
//!
//! The file is opened close-on-exec, so pg_dump never inherits the lock and
//! cannot keep it after pgwarden died.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result, io_error};

/// How often a waiting backup looks again.
const POLL: Duration = Duration::from_millis(250);

/// Why a backup runs, written into the lock file for whoever is refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Purpose {
    #[default]
    Manual,
    Scheduled,
    BeforeMigrate,
    /// `backup prune`: deletes from the directory a backup writes into.
    Prune,
}

impl Purpose {
    fn describe(self) -> &'static str {
        match self {
            Self::Manual => "manual `pgwarden backup`",
            Self::Scheduled => "scheduled backup of `pgwarden serve`",
            Self::BeforeMigrate => "backup before `migrate up`",
            Self::Prune => "`pgwarden backup prune`",
        }
    }
}

/// A held backup lock; dropping it releases the lock.
#[derive(Debug)]
pub struct BackupLock {
    _file: File,
}

/// The lock is held by someone else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Busy {
    pub target: String,
    pub path: PathBuf,
    /// What the holder wrote: `pid N: <purpose> since <time>`, when readable.
    pub holder: Option<String>,
}

impl Busy {
    /// The holder's pid, when it wrote one.
    pub fn pid(&self) -> Option<u32> {
        let holder = self.holder.as_deref()?;
        holder.strip_prefix("pid ")?.split(':').next()?.parse().ok()
    }

    /// The refusal as an operator-facing error.
    pub fn into_error(self) -> Error {
        let who = match &self.holder {
            Some(h) => format!("pgwarden {h}"),
            None => "another pgwarden process".to_string(),
        };
        Error::failed(format!(
            "another backup of target `{}` is running ({who}; lock file {}); wait for it to finish or stop that process, then retry",
            self.target,
            self.path.display()
        ))
    }
}

impl BackupLock {
    /// Where the lock of `target` lives in backup directory `dir`.
    pub fn path_for(dir: &Path, target: &str) -> PathBuf {
        dir.join(format!(".{target}.lock"))
    }

    /// Take the lock of `target` in `dir` now, or say who holds it.
    pub fn try_acquire(
        dir: &Path,
        target: &str,
        purpose: Purpose,
    ) -> Result<std::result::Result<BackupLock, Busy>> {
        super::manifest::create_private_dir(dir)
            .map_err(|e| io_error("create the backup directory (backup.dir)", dir, e))?;
        let path = Self::path_for(dir, target);
        // std opens with O_CLOEXEC: pg_dump does not inherit the lock.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io_error("open the backup lock file", &path, e))?;
        // SAFETY: flock on a descriptor this function owns; no memory is shared.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = Some(holder.trim().to_string()).filter(|h| !h.is_empty());
                return Ok(Err(Busy {
                    target: target.to_string(),
                    path,
                    holder,
                }));
            }
            return Err(io_error("lock", &path, e));
        }
        let line = format!(
            "pid {}: {} since {}\n",
            std::process::id(),
            purpose.describe(),
            chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC")
        );
        file.set_len(0)
            .and_then(|_| file.rewind())
            .and_then(|_| file.write_all(line.as_bytes()))
            .map_err(|e| io_error("write", &path, e))?;
        Ok(Ok(BackupLock { _file: file }))
    }

    /// Take the lock, waiting up to `wait` for a running backup to finish;
    /// afterwards an error naming the holder. `wait` zero refuses at once.
    pub async fn acquire(
        dir: &Path,
        target: &str,
        purpose: Purpose,
        wait: Duration,
    ) -> Result<BackupLock> {
        let deadline = Instant::now() + wait;
        loop {
            let busy = match Self::try_acquire(dir, target, purpose)? {
                Ok(lock) => return Ok(lock),
                Err(busy) => busy,
            };
            if Instant::now() >= deadline {
                let err = busy.into_error();
                return Err(if wait.is_zero() {
                    err
                } else {
                    err.context(format!(
                        "still locked after waiting {} (backup.lock_wait)",
                        crate::config::Duration(wait)
                    ))
                });
            }
            tokio::time::sleep(POLL.min(deadline - Instant::now())).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_and_told_who_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let lock = BackupLock::try_acquire(dir.path(), "main", Purpose::Scheduled)
            .unwrap()
            .unwrap();
        // A second open file description conflicts even inside one process.
        let busy = BackupLock::try_acquire(dir.path(), "main", Purpose::Manual)
            .unwrap()
            .unwrap_err();
        assert_eq!(busy.pid(), Some(std::process::id()));
        let text = busy.into_error().to_string();
        assert!(
            text.contains("scheduled backup of `pgwarden serve`"),
            "{text}"
        );
        // Other targets have their own lock.
        assert!(
            BackupLock::try_acquire(dir.path(), "other", Purpose::Manual)
                .unwrap()
                .is_ok()
        );
        drop(lock);
        assert!(
            BackupLock::try_acquire(dir.path(), "main", Purpose::Manual)
                .unwrap()
                .is_ok()
        );
    }
}
