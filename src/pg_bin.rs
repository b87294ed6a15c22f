//! Finding PostgreSQL's programs: the client tools for backups
//! ([`crate::backup::tools`]) and the server programs for throwaway clusters
//! ([`crate::cluster`]) are looked up the same way.

use std::path::{Path, PathBuf};

/// The first directory holding every one of `programs`: `PATH` first, then
/// the versioned `/usr/lib/postgresql/<major>/bin`, newest first. Debian's
/// `pg_wrapper` (what `/usr/bin/pg_dump` links to there) goes last: it is a
/// Perl script that costs ~25 ms a call and picks a version by its own
/// rules, while the newest installed major it would usually pick can dump
/// any older server. Failing all that, a program on `PATH` that is a
/// symlink (`/usr/local/bin/initdb` alone) leads to its real directory.
pub fn find(programs: &[&str]) -> Option<PathBuf> {
    let has_all = |dir: &Path| programs.iter().all(|p| dir.join(p).is_file());
    let first = programs.first()?;
    candidate_dirs(first)
        .into_iter()
        .find(|dir| has_all(dir))
        .or_else(|| {
            let real = path_dirs()
                .into_iter()
                .map(|dir| dir.join(first))
                .find(|p| p.is_file())?
                .canonicalize()
                .ok()?;
            let dir = real.parent()?.to_path_buf();
            has_all(&dir).then_some(dir)
        })
}

/// Where [`find`] looks, best first (`probe`: the program whose being
/// Debian's wrapper sends a `PATH` directory to the back).
pub fn candidate_dirs(probe: &str) -> Vec<PathBuf> {
    let (wrapped, mut dirs): (Vec<PathBuf>, Vec<PathBuf>) = path_dirs()
        .into_iter()
        .partition(|dir| is_pg_wrapper(&dir.join(probe)));
    let mut versioned: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    let major = e.file_name().to_str()?.parse().ok()?;
                    Some((major, e.path().join("bin")))
                })
                .collect()
        })
        .unwrap_or_default();
    versioned.sort_by_key(|v| std::cmp::Reverse(v.0));
    dirs.extend(versioned.into_iter().map(|(_, p)| p));
    dirs.extend(wrapped);
    dirs
}

fn path_dirs() -> Vec<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default()
}

/// Is `program` Debian's `pg_wrapper` (through its symlinks)?
pub fn is_pg_wrapper(program: &Path) -> bool {
    std::fs::canonicalize(program)
        .is_ok_and(|real| real.file_name().is_some_and(|n| n == "pg_wrapper"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Debian's wrapper is skipped for the real programs behind it, so a
    /// backup does not pay a Perl start-up per program it runs.
    #[test]
    fn debian_pg_wrapper_goes_after_the_versioned_directories() {
        let Some(newest) = candidate_dirs("pg_dump")
            .into_iter()
            .find(|d| d.starts_with("/usr/lib/postgresql"))
        else {
            panic!("no /usr/lib/postgresql/*/bin: apt-get install postgresql-client");
        };
        let dir = find(&["pg_dump", "pg_restore", "psql"]).expect("client tools");
        assert!(!is_pg_wrapper(&dir.join("pg_dump")), "{}", dir.display());
        if is_pg_wrapper(Path::new("/usr/bin/pg_dump")) {
            assert_eq!(dir, newest);
        }
    }

    #[test]
    fn server_and_client_programs_are_found_in_one_directory_each() {
        let server = find(&["initdb", "pg_ctl", "postgres"]).expect("server programs");
        assert!(server.join("initdb").is_file());
        assert_eq!(find(&["no-such-program-pgwarden"]), None);
    }
}
