//! Throwaway PostgreSQL clusters: for the test suite and for `pgwarden demo`.
//!
//! A cluster lives in its own temp directory, listens on a free loopback port
//! and a private Unix socket, and is stopped and deleted when dropped. Because
//! a test can panic, or a process can be killed, before `Drop` runs, every
//! cluster also has a *reaper*: a tiny detached shell that waits for this
//! process to exit and then stops the server and deletes the directory. So no
//! run leaves a postgres behind, not even a shared cluster held in a static.
//!
//! `initdb` runs once (its result is cached as a template in the temp dir, and
//! rebuilt when missing); each cluster copies it, which makes a start take
//! well under a second. Durability is switched off (`fsync=off`): these
//! clusters hold nothing worth keeping.
//!
//! PostgreSQL refuses to run as root, so as root every server binary runs as
//! the `postgres` OS user through `runuser`.
//!
//! Only what the demo and the benchmarks need lives here; the tests' fault
//! injection (stopping, crashing and restarting a server, replicas) is built
//! on [`Cluster::run_program`] and [`Cluster::start_from`] in the test support.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::dburl::DbUrl;
use crate::error::{Error, Result, io_error};

/// The superuser password of every throwaway cluster (loopback only).
pub const PASSWORD: &str = "warden-test-s3cret";
const SUPERUSER: &str = "postgres";
const OS_USER: &str = "postgres";
const INSTALL_HINT: &str = "install the PostgreSQL server (Debian: apt-get install postgresql)";

/// Server settings for a new cluster, written to `postgresql.auto.conf`.
#[derive(Clone, Debug, Default)]
pub struct ClusterOptions {
    pub settings: Vec<(String, String)>,
}

impl ClusterOptions {
    pub fn setting(mut self, name: &str, value: &str) -> Self {
        self.settings.push((name.to_string(), value.to_string()));
        self
    }
}

/// A running throwaway cluster.
pub struct Cluster {
    root: PathBuf,
    port: u16,
    bin: PathBuf,
    reaper: Option<Child>,
}

impl Cluster {
    /// Start a fresh cluster with default settings.
    pub fn start() -> Result<Cluster> {
        Self::start_with(&ClusterOptions::default())
    }

    pub fn start_with(options: &ClusterOptions) -> Result<Cluster> {
        let bin = bin_dir()?;
        let template = template(&bin)?;
        Self::start_from(options, |data| copy_dir(template, data))
    }

    /// Start a cluster whose data directory `fill` creates at the path it is
    /// given (as the OS user that runs PostgreSQL), e.g. with `pg_basebackup`
    /// from another cluster ([`Cluster::run_program`]).
    pub fn start_from(
        options: &ClusterOptions,
        fill: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<Cluster> {
        let root = new_root()?;
        fill(&root.join("data"))?;
        Self::launch(bin_dir()?, root, options)
    }

    fn launch(bin: PathBuf, root: PathBuf, options: &ClusterOptions) -> Result<Cluster> {
        let mut cluster = Cluster {
            reaper: Some(spawn_reaper(&bin, &root)?),
            root,
            port: 0,
            bin,
        };
        let mut last_error = None;
        for _attempt in 0..3 {
            cluster.port = free_port()?;
            cluster.write_settings(options)?;
            match cluster.pg_ctl_start() {
                Ok(()) => return Ok(cluster),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.expect("three attempts were made"))
    }

    fn write_settings(&self, options: &ClusterOptions) -> Result<()> {
        let mut text = format!(
            "\n# pgwarden throwaway cluster\nport = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 100\n\
             logging_collector = off\nmax_wal_senders = 10\nwal_level = replica\n",
            self.port,
            self.socket_dir().display()
        );
        for (name, value) in &options.settings {
            text.push_str(&format!("{name} = '{}'\n", value.replace('\'', "''")));
        }
        let path = self.data_dir().join("postgresql.auto.conf");
        let mut existing = std::fs::read_to_string(&path).unwrap_or_default();
        existing.push_str(&text);
        std::fs::write(&path, existing).map_err(|e| io_error("write", &path, e))
    }

    fn pg_ctl_start(&self) -> Result<()> {
        let log = self.log_path();
        let out = run_pg(
            &self.bin,
            "pg_ctl",
            &[
                &"-D",
                &self.data_dir(),
                &"-l",
                &log,
                &"-w",
                &"-t",
                &"60",
                &"start",
            ],
        )?;
        if out.status.success() {
            return Ok(());
        }
        let server_log = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = server_log.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        Err(Error::failed(format!(
            "pg_ctl start failed: {}\nserver log:\n{}",
            String::from_utf8_lossy(&out.stderr).trim(),
            tail.join("\n")
        )))
    }

    /// Run one of this cluster's PostgreSQL programs (`pg_ctl`,
    /// `pg_basebackup`…) as the OS user that runs the server; its stdout.
    pub fn run_program(&self, program: &str, args: &[&str]) -> Result<String> {
        let args: Vec<&dyn AsRef<std::ffi::OsStr>> = args.iter().map(|a| a as _).collect();
        check_output(run_pg(&self.bin, program, &args)?, program)
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<()> {
        let data = self.data_dir();
        let mut all: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"-D", &data];
        all.extend(args.iter().map(|a| a as &dyn AsRef<std::ffi::OsStr>));
        let out = run_pg(&self.bin, "pg_ctl", &all)?;
        check_output(out, "pg_ctl").map(|_| ())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    pub fn socket_dir(&self) -> PathBuf {
        self.root.clone()
    }

    /// The directory of the PostgreSQL binaries this cluster runs.
    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    /// The server log, for diagnosing a failed test.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Where the server writes its log (`pg_ctl -l`).
    pub fn log_path(&self) -> PathBuf {
        self.root.join("server.log")
    }

    /// The superuser URL of database `postgres` (password included).
    pub fn url(&self) -> DbUrl {
        self.url_for("postgres")
    }

    pub fn url_for(&self, database: &str) -> DbUrl {
        DbUrl::parse(&format!(
            "postgres://{SUPERUSER}:{PASSWORD}@127.0.0.1:{}/{database}",
            self.port
        ))
        .expect("well-formed URL")
    }

    /// Create a database with a name nobody else in this process uses.
    pub fn create_database(&self) -> Result<DbUrl> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "t{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        self.psql("postgres", &format!("CREATE DATABASE {name}"))?;
        Ok(self.url_for(&name))
    }

    /// Run SQL through `psql` (as the superuser) and return its unaligned output.
    pub fn psql(&self, database: &str, sql: &str) -> Result<String> {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.socket_dir())
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                SUPERUSER,
                "-d",
                database,
                "-c",
                sql,
            ])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::failed(format!("cannot run psql: {e}; {INSTALL_HINT}")))?;
        check_output(out, "psql").map(|s| s.trim().to_string())
    }

    /// Poll `sql` until it returns `expected` or `timeout` passes.
    pub fn wait_for(
        &self,
        database: &str,
        sql: &str,
        expected: &str,
        timeout: Duration,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.psql(database, sql);
            if matches!(&got, Ok(v) if v == expected) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::failed(format!(
                    "waited {timeout:?} for `{sql}` to return {expected:?}; last: {got:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["stop", "-m", "immediate", "-w"]);
        let _ = std::fs::remove_dir_all(&self.root);
        if let Some(mut reaper) = self.reaper.take() {
            let _ = reaper.kill();
            let _ = reaper.wait();
        }
    }
}

/// The directory holding `initdb`, `pg_ctl`, `postgres` and friends.
pub fn bin_dir() -> Result<PathBuf> {
    static FOUND: OnceLock<Result<PathBuf>> = OnceLock::new();
    FOUND.get_or_init(find_bin_dir).clone()
}

fn find_bin_dir() -> Result<PathBuf> {
    crate::pg_bin::find(&["initdb", "pg_ctl", "postgres", "pg_basebackup"])
        .map(|dir| dir.canonicalize().unwrap_or(dir))
        .ok_or_else(|| {
            Error::failed(format!(
                "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on PATH or in /usr/lib/postgresql/*/bin; {INSTALL_HINT}"
            ))
        })
}

/// PostgreSQL refuses to run as root; as root its binaries run as `postgres`.
pub fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Run a PostgreSQL binary, as the `postgres` OS user when we are root.
fn run_pg(bin: &Path, program: &str, args: &[&dyn AsRef<std::ffi::OsStr>]) -> Result<Output> {
    let path = bin.join(program);
    let mut command = if running_as_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", OS_USER, "--"]).arg(&path);
        c
    } else {
        Command::new(&path)
    };
    command
        .args(args.iter().map(|a| a.as_ref()))
        .current_dir("/")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            Error::failed(format!(
                "cannot run {}: {e}; {INSTALL_HINT}",
                path.display()
            ))
        })
}

fn check_output(out: Output, what: &str) -> Result<String> {
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    Err(Error::failed(format!(
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim(),
        String::from_utf8_lossy(&out.stdout).trim()
    )))
}

/// A temp directory owned by the OS user that runs PostgreSQL.
fn new_root() -> Result<PathBuf> {
    let dir = tempfile::Builder::new()
        .prefix("pgwarden-pg-")
        .tempdir()
        .map_err(|e| Error::failed(format!("cannot create a temp dir: {e}")))?
        .keep();
    give_to_postgres(&dir)?;
    Ok(dir)
}

fn give_to_postgres(path: &Path) -> Result<()> {
    if !running_as_root() {
        return Ok(());
    }
    let status = Command::new("chown")
        .args(["-R", &format!("{OS_USER}:")])
        .arg(path)
        .status()
        .map_err(|e| Error::failed(format!("cannot run chown: {e}")))?;
    if !status.success() {
        return Err(Error::failed(format!(
            "chown {OS_USER} {} failed: does the `{OS_USER}` OS user exist? {INSTALL_HINT}",
            path.display()
        )));
    }
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .map_err(|e| Error::failed(format!("cannot run cp: {e}")))?;
    if !status.success() {
        return Err(Error::failed(format!(
            "cp -a {} {} failed",
            from.display(),
            to.display()
        )));
    }
    give_to_postgres(to)
}

/// `initdb` once, cached in the temp dir for later runs; rebuilt when missing.
fn template(bin: &Path) -> Result<&'static Path> {
    static TEMPLATE: OnceLock<Result<PathBuf>> = OnceLock::new();
    TEMPLATE
        .get_or_init(|| build_template(bin))
        .as_ref()
        .map(PathBuf::as_path)
        .map_err(Clone::clone)
}

fn build_template(bin: &Path) -> Result<PathBuf> {
    let version = bin
        .parent()
        .and_then(|p| p.file_name())
        .map(|v| v.to_string_lossy().into_owned())
        .unwrap_or_default();
    let uid = unsafe { libc::geteuid() };
    let dir = std::env::temp_dir().join(format!("pgwarden-initdb-template-v1-pg{version}-{uid}"));
    if dir.join("PG_VERSION").exists() && dir.join("postgresql.conf").exists() {
        return Ok(dir);
    }
    let build_root = new_root()?;
    let data = build_root.join("data");
    let pwfile = build_root.join("pw");
    std::fs::write(&pwfile, PASSWORD).map_err(|e| io_error("write", &pwfile, e))?;
    give_to_postgres(&pwfile)?;
    let out = run_pg(
        bin,
        "initdb",
        &[
            &"-D",
            &data,
            &"-U",
            &SUPERUSER,
            &"--pwfile",
            &pwfile,
            &"--auth-local=trust",
            &"--auth-host=scram-sha-256",
            &"-E",
            &"UTF8",
            &"--locale=C",
            &"-N",
        ],
    )?;
    check_output(out, "initdb")?;
    let _ = std::fs::remove_file(&pwfile);
    // Another process may have won the race; either copy is as good.
    if std::fs::rename(&data, &dir).is_err() && !dir.join("PG_VERSION").exists() {
        return Err(Error::failed(format!(
            "cannot move the initdb template to {}",
            dir.display()
        )));
    }
    let _ = std::fs::remove_dir_all(&build_root);
    Ok(dir)
}

fn free_port() -> Result<u16> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Error::failed(format!("cannot find a free loopback port: {e}")))
}

/// A detached shell that cleans up after this process, however it ends.
fn spawn_reaper(bin: &Path, root: &Path) -> Result<Child> {
    let pg_ctl = bin.join("pg_ctl");
    let data = root.join("data");
    let as_postgres = if running_as_root() {
        format!("runuser -u {OS_USER} -- ")
    } else {
        String::new()
    };
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
         {as_postgres}'{pg_ctl}' -D '{data}' stop -m immediate -w >/dev/null 2>&1; rm -rf '{root}'",
        pid = std::process::id(),
        pg_ctl = pg_ctl.display(),
        data = data.display(),
        root = root.display(),
    );
    let mut command = Command::new("sh");
    command
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // Its own session, so Ctrl-C on the terminal does not kill the reaper too early.
    unsafe {
        use std::os::unix::process::CommandExt;
        command.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    command
        .spawn()
        .map_err(|e| Error::failed(format!("cannot start the cleanup shell: {e}")))
}
