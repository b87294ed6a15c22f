//! Shared test support: throwaway clusters and a way to run the binary.
//!
//! Each test binary includes this with `mod support;`. Not every binary uses
//! every helper, hence the `dead_code` allowance.
#![allow(dead_code, unused_imports)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

pub use pgwarden::cluster::{Cluster, ClusterOptions, PASSWORD};

/// One cluster per test binary, for tests that only need their own database
/// (`shared().create_database()`). Its reaper removes it when the binary exits.
pub fn shared() -> &'static Cluster {
    static SHARED: OnceLock<Cluster> = OnceLock::new();
    SHARED
        .get_or_init(|| Cluster::start().unwrap_or_else(|e| panic!("cannot start PostgreSQL: {e}")))
}

/// A cluster of one's own, for tests that stop it or change its settings.
pub fn own_cluster(options: &ClusterOptions) -> Cluster {
    Cluster::start_with(options).unwrap_or_else(|e| panic!("cannot start PostgreSQL: {e}"))
}

/// Fault injection on a throwaway cluster: stop it, crash it, start it
/// again, give it a streaming replica. (Test-only: the library's
/// [`Cluster`] keeps what `pgwarden demo` needs.)
pub trait ClusterFaults {
    /// Stop the server (fast shutdown), keeping its files.
    fn stop(&self) -> pgwarden::Result<()>;
    /// Stop at once, like a crash (`-m immediate`).
    fn kill(&self) -> pgwarden::Result<()>;
    /// Start again after `stop` or `kill`, on the same port.
    fn start_again(&self) -> pgwarden::Result<()>;
    fn restart(&self) -> pgwarden::Result<()>;
    /// A streaming replica of this cluster (`pg_basebackup -R`).
    fn start_replica(&self) -> pgwarden::Result<Cluster>;
}

impl ClusterFaults for Cluster {
    fn stop(&self) -> pgwarden::Result<()> {
        pg_ctl(self, &["stop", "-m", "fast", "-w", "-t", "60"])
    }

    fn kill(&self) -> pgwarden::Result<()> {
        pg_ctl(self, &["stop", "-m", "immediate", "-w"])
    }

    fn start_again(&self) -> pgwarden::Result<()> {
        let log = self.log_path();
        pg_ctl(self, &["-l", path_str(&log), "-w", "-t", "60", "start"])
            .map_err(|e| e.context(format!("server log:\n{}", self.log())))
    }

    fn restart(&self) -> pgwarden::Result<()> {
        self.stop()?;
        self.start_again()
    }

    fn start_replica(&self) -> pgwarden::Result<Cluster> {
        let (socket_dir, port) = (self.socket_dir(), self.port().to_string());
        Cluster::start_from(&ClusterOptions::default(), |data| {
            self.run_program(
                "pg_basebackup",
                &[
                    "-D",
                    path_str(data),
                    "-h",
                    path_str(&socket_dir),
                    "-p",
                    &port,
                    "-U",
                    "postgres",
                    "-X",
                    "stream",
                    "-R",
                    "-c",
                    "fast",
                ],
            )
            .map(|_| ())
        })
    }
}

fn pg_ctl(cluster: &Cluster, args: &[&str]) -> pgwarden::Result<()> {
    let data = cluster.data_dir();
    let mut all = vec!["-D", path_str(&data)];
    all.extend_from_slice(args);
    cluster.run_program("pg_ctl", &all).map(|_| ())
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

/// The pgwarden binary, in a scratch working directory, with none of the
/// caller's database environment leaking in.
pub fn pgwarden(workdir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pgwarden"));
    command.current_dir(workdir);
    for var in [
        "DATABASE_URL",
        "DATABASE_POOL_SIZE",
        "DATABASE_MAX_OVERFLOW",
        "DATABASE_ECHO",
        "PGWARDEN_ENV",
        "PGWARDEN_CONFIG",
        "RUST_LOG",
    ] {
        command.env_remove(var);
    }
    command
}

/// A scratch directory that lives as long as the returned guard.
pub fn workdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// Write `text` as `name` in `dir` and return its path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write file");
    path
}

/// The process's stdout and stderr together, for assertions on what a user sees.
pub fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A bin_dir whose pg_restore and psql are the real ones and whose pg_dump
/// is `script` (with `$REAL` set to the real pg_dump).
pub fn wrapper_bin_dir(dir: &Path, script: &str) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let real = shared().bin_dir();
    for tool in ["pg_restore", "psql"] {
        std::os::unix::fs::symlink(real.join(tool), bin.join(tool)).unwrap();
    }
    let text = format!(
        "#!/bin/sh\nREAL='{}'\n{script}\n",
        real.join("pg_dump").display()
    );
    let path = bin.join("pg_dump");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(
        &path,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755),
    )
    .unwrap();
    bin
}

/// A `migrations` folder in `dir` holding `files` (name, SQL).
pub fn migrations_dir(dir: &Path, files: &[(&str, &str)]) -> PathBuf {
    let migrations = dir.join("migrations");
    std::fs::create_dir_all(&migrations).expect("create migrations folder");
    for (name, sql) in files {
        write_file(&migrations, name, sql);
    }
    migrations
}

/// Whether a table `name` exists in `database` on the shared cluster.
pub fn table_exists(database: &str, name: &str) -> bool {
    shared()
        .psql(
            database,
            &format!("SELECT count(*) FROM information_schema.tables WHERE table_name = '{name}'"),
        )
        .expect("query information_schema")
        == "1"
}

/// Open a session that holds an ACCESS EXCLUSIVE lock on `table` until it
/// ends its transaction: a pg_dump started meanwhile waits, caught mid-dump.
pub fn lock_table(
    rt: &tokio::runtime::Runtime,
    url: &pgwarden::dburl::DbUrl,
    table: &str,
) -> tokio_postgres::Client {
    let (locker, connection) = rt
        .block_on(tokio_postgres::connect(url.expose(), tokio_postgres::NoTls))
        .unwrap();
    rt.spawn(connection);
    rt.block_on(locker.batch_execute(&format!(
        "BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"
    )))
    .unwrap();
    locker
}

// Other tests catch their own pg_dumps on the shared cluster.
const PG_DUMPS_BLOCKED: &str = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_dump' \
     AND wait_event_type = 'Lock' AND datname = current_database()";

/// Wait until a pg_dump of `url`'s database waits on a lock.
pub fn wait_for_pg_dump_blocked(url: &pgwarden::dburl::DbUrl) {
    shared()
        .wait_for(
            &url.database(),
            PG_DUMPS_BLOCKED,
            "1",
            Duration::from_secs(30),
        )
        .unwrap();
}

/// A child process (such as `pgwarden demo`) that a failing test must not
/// leave running: dropped while it still runs, it gets SIGINT (so it removes
/// what it made) and, if it has not ended within 10 s, SIGKILL. Derefs to
/// the [`std::process::Child`].
pub struct Interrupted(pub std::process::Child);

impl std::ops::Deref for Interrupted {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.0
    }
}

impl std::ops::DerefMut for Interrupted {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.0
    }
}

impl Drop for Interrupted {
    fn drop(&mut self) {
        if !matches!(self.0.try_wait(), Ok(None)) {
            return;
        }
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGINT) };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while matches!(self.0.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The process titles (`postgres: user db host(port) state`) of the
/// postmaster's children whose title holds `needle` (` db ` for a database,
/// `127.0.0.1(` for TCP clients): every backend, including the ones still in
/// startup that pg_stat_activity does not show.
pub fn backend_titles(data_dir: &Path, needle: &str) -> Vec<String> {
    let pid_file = std::fs::read_to_string(data_dir.join("postmaster.pid")).unwrap();
    let postmaster = pid_file.lines().next().unwrap().trim().to_string();
    let mut titles = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let path = entry.path();
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
            continue;
        };
        // pid (comm) state ppid …; comm may hold spaces, so split after ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1));
        if ppid != Some(postmaster.as_str()) {
            continue;
        }
        let title = std::fs::read(path.join("cmdline"))
            .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
            .unwrap_or_default();
        if title.contains(needle) {
            titles.push(title);
        }
    }
    titles
}
