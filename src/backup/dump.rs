//! Taking one backup: pg_dump into a temporary name, check, fsync, rename.
//!
//! The order is the safety guarantee. pg_dump writes `.<name>.tmp-…` in the
//! destination directory; only after it exited 0 and the result passed a
//! sanity check (`pg_restore --list`, or the trailer of a plain dump) is it
//! fsynced and renamed to its final name, then the manifest is written. If
//! anything fails, or the task is dropped (the daemon stopping), the
//! temporary file is removed and pg_dump is killed, so a final name always
//! means a complete dump.
//!
//! The row counts in the manifest come from the same snapshot pg_dump uses:
//! a session exports it (`pg_export_snapshot()`), pg_dump adopts it with
//! `--snapshot`, and the session counts rows while pg_dump runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use chrono::Utc;

use super::lock::{BackupLock, Purpose};
use super::manifest::{self, Manifest, Verification, create_private_dir};
use super::tools::{self, Connection, Tools};
use super::{Compression, Format};
use crate::config::{Config, TargetConfig};
use crate::error::{Error, Result, io_error};
use crate::pool::Target;

/// Overrides of the `[backup]` settings for one backup (the CLI flags).
#[derive(Clone, Debug, Default)]
pub struct BackupOptions {
    /// Exact destination instead of an auto-named file in `backup.dir`.
    pub output: Option<PathBuf>,
    pub format: Option<Format>,
    pub compress: Option<Compression>,
    pub jobs: Option<u64>,
    /// Why this backup runs (written into the lock file for others to read).
    pub purpose: Purpose,
    /// How long to wait for another backup of the target to finish; zero
    /// refuses at once.
    pub lock_wait: std::time::Duration,
}

/// A backup that was written and checked.
#[derive(Clone, Debug)]
pub struct BackupOutcome {
    pub path: PathBuf,
    pub manifest: Manifest,
}

/// The settings of one backup, after the CLI overrides and their checks.
struct Plan {
    format: Format,
    compress: Compression,
    jobs: u64,
}

impl Plan {
    fn new(config: &Config, options: &BackupOptions) -> Result<Plan> {
        let format = options.format.unwrap_or(config.backup.format);
        let jobs = options.jobs.unwrap_or(config.backup.jobs.get());
        if jobs > 1 && format != Format::Directory {
            return Err(Error::usage(format!(
                "{jobs} parallel jobs (--jobs or backup.jobs) need the directory format: pg_dump dumps in parallel only into a directory; use --format directory (backup.format = \"directory\") or 1 job"
            )));
        }
        if jobs == 0 {
            return Err(Error::usage("--jobs must be at least 1"));
        }
        // Plain dumps stay plain SQL text, readable like the old toolkit's.
        let compress = match format {
            Format::Plain => Compression::None,
            _ => options.compress.unwrap_or(config.backup.compress),
        };
        Ok(Plan {
            format,
            compress,
            jobs,
        })
    }
}

/// Take a backup of `target` and return where it is. See the module docs for
/// the guarantees. Holds the target's [`BackupLock`] throughout; another
/// backup of it running (in any process) is an error once
/// `options.lock_wait` has passed.
pub async fn take(
    config: &Config,
    target: &TargetConfig,
    options: &BackupOptions,
) -> Result<BackupOutcome> {
    Plan::new(config, options)?;
    let lock = BackupLock::acquire(
        &config.backup.dir,
        target.name.as_str(),
        options.purpose,
        options.lock_wait,
    )
    .await?;
    take_locked(config, target, options, &lock).await
}

/// [`take`] for a caller that already holds the target's lock (the
/// scheduler, which keeps it through the restore test and pruning).
pub async fn take_locked(
    config: &Config,
    target: &TargetConfig,
    options: &BackupOptions,
    _lock: &BackupLock,
) -> Result<BackupOutcome> {
    let plan = Plan::new(config, options)?;
    let started_at = Utc::now();
    let clock = Instant::now();
    let tools = Tools::locate(config.backup.bin_dir.as_deref())?;
    let session = Target::new(target)?;
    // Fixed costs of every backup, side by side: pg_dump's version (a
    // process) and the session that reads the server's and exports the
    // snapshot (round trips).
    let prepared = async {
        let client = session.client().await?;
        let server = server_version(&client, target).await?;
        let snapshot = export_snapshot(&client).await;
        Ok::<_, Error>((client, server, snapshot))
    };
    let (version, prepared) = tokio::join!(tools.pg_dump_version(), prepared);
    let (pg_dump_version, dump_major) = version?;
    let (client, (server_version, server_major), snapshot) = prepared?;
    check_versions(target, &tools, dump_major, &server_version, server_major)?;
    let compress_arg = plan.compress.pg_dump_arg(dump_major)?;

    let connection = Connection::new(target, None);
    let path = destination(config, target, &connection, &plan, options)?;
    let temp = TempPath::new(&path)?;

    let mut command = connection.command(&tools.pg_dump);
    owner_only_files(&mut command);
    command.args(pg_dump_args(
        plan.format,
        plan.jobs,
        &compress_arg,
        temp.path(),
        snapshot.as_deref(),
        &connection,
    ));
    let dump_clock = Instant::now();
    let row_counts = dump_and_count(command, &client, target).await?;
    let dumped_in = dump_clock.elapsed();

    // The finished file is only read from here on, so the archive check,
    // the fsync and the hash run side by side (with ending the snapshot's
    // transaction); all must pass before the rename.
    let rolled_back = async {
        let _ = client.batch_execute("ROLLBACK").await;
        Ok(())
    };
    let (size_bytes, sha256) = tokio::try_join!(
        sanity_check(&tools, plan.format, temp.path()),
        manifest::measure(temp.path(), true),
        rolled_back,
    )?
    .1;
    let checked_in = dump_clock.elapsed() - dumped_in;
    temp.persist(&path)?;
    tracing::debug!(
        target = %target.name,
        setup_seconds = (clock.elapsed() - dump_clock.elapsed()).as_secs_f64(),
        dump_seconds = dumped_in.as_secs_f64(),
        check_fsync_hash_seconds = checked_in.as_secs_f64(),
        rename_seconds = (dump_clock.elapsed() - dumped_in - checked_in).as_secs_f64(),
        "backup phases"
    );

    let finished_at = Utc::now();
    let manifest = Manifest {
        file: file_name(&path),
        target: target.name.to_string(),
        database: connection.database.clone(),
        format: plan.format,
        compress: plan.compress.to_string(),
        started_at,
        finished_at,
        duration_seconds: clock.elapsed().as_secs_f64(),
        size_bytes,
        sha256,
        server_version,
        pg_dump_version,
        row_counts_exact: snapshot.is_some(),
        row_counts,
        verification: Some(Verification {
            at: finished_at,
            ok: true,
            restore_test: false,
            error: None,
        }),
    };
    manifest.write_for(&path)?;
    Ok(BackupOutcome { path, manifest })
}

/// The server's version string and major version.
async fn server_version(
    client: &tokio_postgres::Client,
    target: &TargetConfig,
) -> Result<(String, u32)> {
    let rows = client
        .simple_query(
            "SELECT current_setting('server_version'), current_setting('server_version_num')",
        )
        .await
        .map_err(|e| super::sql_error(target, "cannot read the server version", &e))?;
    let row = rows.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(row) => Some(row),
        _ => None,
    });
    let (version, num) = row
        .and_then(|r| Some((r.get(0)?, r.get(1)?.parse::<u32>().ok()?)))
        .ok_or_else(|| {
            Error::failed(format!(
                "target `{}`: cannot read the server version",
                target.name
            ))
        })?;
    Ok((version.to_string(), num / 10000))
}

/// An error naming both versions when pg_dump is older than the server.
fn check_versions(
    target: &TargetConfig,
    tools: &Tools,
    dump_major: u32,
    server_version: &str,
    server_major: u32,
) -> Result<()> {
    if dump_major < server_major {
        return Err(Error::failed(format!(
            "{} is version {dump_major} but target `{}` runs PostgreSQL {server_version}: pg_dump must be at least as new as the server; install postgresql-client-{server_major} or set backup.bin_dir",
            tools.pg_dump.display(),
            target.name
        )));
    }
    Ok(())
}

/// Run pg_dump while counting rows in the exported snapshot. The first
/// failure wins: a dead pg_dump must not wait for the counts.
async fn dump_and_count(
    mut command: tokio::process::Command,
    client: &tokio_postgres::Client,
    target: &TargetConfig,
) -> Result<BTreeMap<String, i64>> {
    let mut busy = tools::BusyRetry::default();
    let child = loop {
        match command.spawn() {
            Err(e) if busy.again(&e).await => continue,
            Err(e) => return Err(Error::failed(format!("cannot run pg_dump: {e}"))),
            Ok(child) => break child,
        }
    };
    let dumped = async {
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| Error::failed(format!("pg_dump did not finish: {e}")))?;
        tools::check(out, "pg_dump")
            .map_err(|e| e.context(format!("backup of target `{}`", target.name)))
    };
    let counted = async {
        let clock = Instant::now();
        let counts = count_rows(client)
            .await
            .map_err(|e| super::sql_error(target, "cannot count rows", &e));
        tracing::debug!(target = %target.name, count_seconds = clock.elapsed().as_secs_f64(), "row counts taken");
        counts
    };
    let (_, row_counts) = tokio::try_join!(dumped, counted)?;
    Ok(row_counts)
}

/// The arguments of pg_dump: never the password, which travels in PGPASSWORD.
pub fn pg_dump_args(
    format: Format,
    jobs: u64,
    compress_arg: &str,
    file: &Path,
    snapshot: Option<&str>,
    connection: &Connection,
) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> =
        vec![format.pg_dump_flag().into(), "--no-password".into()];
    if format != Format::Plain {
        args.push(compress_arg.into());
    }
    if jobs > 1 {
        args.push(format!("--jobs={jobs}").into());
    }
    if let Some(id) = snapshot {
        args.push(format!("--snapshot={id}").into());
    }
    let mut file_arg = std::ffi::OsString::from("--file=");
    file_arg.push(file);
    args.push(file_arg);
    args.push(connection.dbname_arg());
    args
}

/// Export a snapshot for pg_dump to share; None where that is impossible
/// (then counts and dump are close in time but not in one snapshot).
async fn export_snapshot(client: &tokio_postgres::Client) -> Option<String> {
    // One worker for the counts: the dump, not the bookkeeping, should get
    // the server's spare cores.
    const BEGIN: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET LOCAL max_parallel_workers_per_gather = 0";
    // One round trip: the simple protocol runs the three statements in order.
    match client
        .simple_query(&format!("{BEGIN}; SELECT pg_export_snapshot()"))
        .await
    {
        Ok(messages) => messages.iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
            _ => None,
        }),
        Err(e) => {
            tracing::info!(
                "cannot export a snapshot ({e}); row counts will be taken beside the dump"
            );
            let _ = client.batch_execute(&format!("ROLLBACK; {BEGIN}")).await;
            None
        }
    }
}

/// Exact row counts of every user table (`schema.table`, quoted as needed).
pub async fn count_rows(
    client: &tokio_postgres::Client,
) -> std::result::Result<BTreeMap<String, i64>, tokio_postgres::Error> {
    let tables = client
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname)
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind = 'r'
                AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
              ORDER BY 1",
            &[],
        )
        .await?;
    let tables: Vec<String> = tables
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    let mut counts = BTreeMap::new();
    // Many counts per round trip: a database of thousands of small tables
    // must not pay one (or two, with a prepared statement) for each.
    for chunk in tables.chunks(200) {
        // The names come from format('%I.%I'), so they are safely quoted.
        let sql: String = chunk
            .iter()
            .map(|table| format!("SELECT count(*) FROM ONLY {table};"))
            .collect();
        let values = client
            .simple_query(&sql)
            .await?
            .into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => {
                    row.get(0).and_then(|v| v.parse().ok())
                }
                _ => None,
            });
        counts.extend(chunk.iter().cloned().zip(values));
    }
    Ok(counts)
}

/// Is the file a complete dump? pg_restore must read its table of contents;
/// a plain dump must end with pg_dump's closing comment.
pub async fn sanity_check(tools: &Tools, format: Format, path: &Path) -> Result<()> {
    if manifest::size(path)? == 0 {
        return Err(Error::failed(format!("{} is empty", path.display())));
    }
    match format {
        Format::Plain => {
            if plain_dump_complete(path)? {
                Ok(())
            } else {
                Err(Error::failed(format!(
                    "{} does not end with \"PostgreSQL database dump complete\": the dump is truncated",
                    path.display()
                )))
            }
        }
        Format::Custom | Format::Directory => {
            let mut command = tokio::process::Command::new(&tools.pg_restore);
            command.arg("--list").arg(path);
            tools::run(&mut command, "pg_restore --list")
                .await
                .map(|_| ())
                .map_err(|e| e.context(format!("{} is not a readable archive", path.display())))
        }
    }
}

fn plain_dump_complete(path: &Path) -> Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path).map_err(|e| io_error("open", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| io_error("read", path, e))?
        .len();
    let mut tail = Vec::new();
    file.seek(SeekFrom::Start(len.saturating_sub(4096)))
        .and_then(|_| file.read_to_end(&mut tail))
        .map_err(|e| io_error("read", path, e))?;
    Ok(String::from_utf8_lossy(&tail).contains("PostgreSQL database dump complete"))
}

/// Where the backup goes: `--output`, or `<target>_<database>_<UTC time>.<ext>`
/// in `backup.dir` (with `_2`, `_3`… if two land in the same second).
fn destination(
    config: &Config,
    target: &TargetConfig,
    connection: &Connection,
    plan: &Plan,
    options: &BackupOptions,
) -> Result<PathBuf> {
    if let Some(path) = &options.output {
        if path.exists() {
            return Err(Error::usage(format!(
                "{} already exists; pgwarden never overwrites a backup, choose another --output",
                path.display()
            )));
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            create_private_dir(parent).map_err(|e| io_error("create", parent, e))?;
        }
        return Ok(path.clone());
    }
    let dir = &config.backup.dir;
    create_private_dir(dir)
        .map_err(|e| io_error("create the backup directory (backup.dir)", dir, e))?;
    let stem = format!(
        "{}_{}_{}",
        target.name,
        file_safe(&connection.database),
        Utc::now().format("%Y%m%d_%H%M%S")
    );
    let ext = plan.format.extension();
    (1..1000)
        .map(|n| match n {
            1 => dir.join(format!("{stem}.{ext}")),
            n => dir.join(format!("{stem}_{n}.{ext}")),
        })
        .find(|p| !p.exists() && !Manifest::path_for(p).exists())
        .ok_or_else(|| {
            Error::failed(format!(
                "no free backup name for {stem} in {}",
                dir.display()
            ))
        })
}

/// A dump holds the whole database: pg_dump creates its file (or a directory
/// format's folder and files) for the owner alone (0600/0700), whatever the
/// umask pgwarden was started with.
fn owner_only_files(command: &mut tokio::process::Command) {
    // SAFETY: umask is async-signal-safe, cannot fail and touches no memory.
    unsafe {
        command.pre_exec(|| {
            libc::umask(0o077);
            Ok(())
        });
    }
}

fn file_safe(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A temporary name beside the final one, removed unless persisted.
struct TempPath {
    path: Option<PathBuf>,
}

impl TempPath {
    fn new(final_path: &Path) -> Result<TempPath> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = final_path.parent().unwrap_or(Path::new(""));
        let name = format!(
            ".{}.tmp-{}-{}",
            file_name(final_path),
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = dir.join(name);
        remove_path(&path);
        Ok(TempPath { path: Some(path) })
    }

    fn path(&self) -> &Path {
        self.path.as_deref().expect("not yet persisted")
    }

    /// Rename to `to`. The contents were fsynced before; the rename becomes
    /// durable with the directory fsync that writing the manifest beside it
    /// does (same directory), before [`take`] returns.
    fn persist(mut self, to: &Path) -> Result<()> {
        let from = self.path.take().expect("persisted once");
        if let Err(e) = std::fs::rename(&from, to) {
            remove_path(&from);
            return Err(io_error("rename the finished backup to", to, e));
        }
        Ok(())
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if let Some(path) = &self.path {
            remove_path(path);
        }
    }
}

fn remove_path(path: &Path) {
    if path.is_dir() {
        let _ = std::fs::remove_dir_all(path);
    } else {
        let _ = std::fs::remove_file(path);
    }
}
