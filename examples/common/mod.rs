//! Helpers the benchmarks share: start the release `pgwarden serve` binary
//! against a database and talk plain HTTP/1.1 to it without a client crate.
//!
//! Not an example itself (Cargo only discovers `examples/*.rs` and
//! `examples/*/main.rs`); each benchmark includes it with `mod common;`.

#![allow(dead_code)]

pub mod load;
pub mod process;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `pgwarden serve`; killed when dropped.
pub struct Serve {
    pub addr: String,
    pub child: Child,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `target/release/pgwarden` (or `$PGWARDEN_BIN`), which the caller must
/// have built: examples do not depend on the binary target.
pub fn pgwarden_bin(bench: &str) -> PathBuf {
    let bin = std::env::var_os("PGWARDEN_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/pgwarden")
        });
    if !bin.exists() {
        fail(
            bench,
            &format!(
                "{} not found: run `cargo build --release --bins --examples` first",
                bin.display()
            ),
        );
    }
    bin
}

/// Start `pgwarden serve` with one target named `bench` (plus `extra`
/// config) and wait until `/ready` says its first check cycle finished.
pub fn start_serve(bench: &str, work: &Path, url: &str, extra: &str) -> Serve {
    let config = format!("{extra}\n[[targets]]\nname = \"bench\"\nurl = \"{url}\"\n");
    let serve = spawn_serve(bench, work, &config);
    wait_until(
        bench,
        || http_get(&serve.addr, "/ready").map(|(status, _)| status) == Some(200),
        "pgwarden /ready",
    );
    serve
}

/// Start `pgwarden serve` with `config` (everything but `[http]`, which
/// this adds with a free port) without waiting for it.
pub fn spawn_serve(bench: &str, work: &Path, config: &str) -> Serve {
    let bin = pgwarden_bin(bench);
    let addr = free_addr();
    let path = work.join(format!("pgwarden-{}.toml", addr.replace([':', '.'], "-")));
    std::fs::write(&path, format!("{config}\n[http]\nlisten = \"{addr}\"\n"))
        .unwrap_or_else(|e| fail(bench, &format!("cannot write {}: {e}", path.display())));
    let child = die_with_bench(&mut Command::new(&bin))
        .arg("--config")
        .arg(&path)
        .arg("serve")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| fail(bench, &format!("cannot start {}: {e}", bin.display())));
    Serve { addr, child }
}

/// The Debian package's postgres_exporter binary.
pub const EXPORTER: &str = "prometheus-postgres-exporter";

/// Start postgres_exporter on `dsn` (one URL, or several separated by
/// commas) with `args`, and wait until it answers `/metrics`; None when it
/// is not installed.
pub fn start_exporter(bench: &str, dsn: &str, args: &[&str]) -> Option<Serve> {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {EXPORTER}")])
        .output()
        .ok()?;
    if !found.status.success() {
        return None;
    }
    let addr = free_addr();
    let child = die_with_bench(&mut Command::new(EXPORTER))
        .arg(format!("--web.listen-address={addr}"))
        .args(args)
        .env("DATA_SOURCE_NAME", dsn)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let serve = Serve { addr, child };
    // Its landing page answers without touching a database, unlike /metrics.
    wait_until(
        bench,
        || http_get(&serve.addr, "/").is_some(),
        "postgres_exporter",
    );
    Some(serve)
}

/// Have the child killed when the benchmark dies, however it dies: `fail`
/// exits without running `Serve`'s destructor.
fn die_with_bench(command: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe, as a pre_exec hook must be.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// Status and body of `GET path`, or None when nothing answers.
pub fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Some((status, body.to_string()))
}

/// The samples of one scrape, counted as Prometheus counts them
/// (`scrape_samples_scraped`): every line that is not a comment.
pub fn count_samples(exposition: &str) -> usize {
    exposition
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count()
}

pub fn free_addr() -> String {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string()
}

pub fn wait_until(bench: &str, ready: impl Fn() -> bool, what: &str) {
    wait_until_within(bench, Duration::from_secs(60), ready, what);
}

pub fn wait_until_within(bench: &str, timeout: Duration, ready: impl Fn() -> bool, what: &str) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        if Instant::now() > deadline {
            fail(bench, &format!("{what} did not come up within {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn fail(bench: &str, message: &str) -> ! {
    eprintln!("{bench}: {message}");
    std::process::exit(1)
}
