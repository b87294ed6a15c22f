//! Benchmark: `pgwarden migrate lint` on 1,000 generated migration files,
//! beside squawk (`pip install squawk-cli`) on the very same files in the
//! same run, when squawk is on PATH. Goal: pgwarden no slower than squawk.
//!
//! ```sh
//! cargo build --release --bin pgwarden --example lint_bench
//! target/release/examples/lint_bench [N]
//! ```
//!
//! Both run as processes over the same file list (start-up, reading, parsing,
//! reporting included), pgwarden statically (`--offline`, no database). The
//! rounds alternate which tool goes first; the median of 5 is printed.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

const BENCH: &str = "lint_bench";

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let pgwarden = common::pgwarden_bin(BENCH);
    let dir = tempfile::tempdir().expect("temp dir");
    let files = write_files(dir.path(), n);
    let statements: usize = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap().matches(";\n").count())
        .sum();
    let squawk = squawk();
    println!("{BENCH}: {n} files, {statements} statements");
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for round in 0..5 {
        let run_ours = || {
            time(
                Command::new(&pgwarden)
                    .args(["migrate", "lint", "--offline", "--format", "json"])
                    .args(&files),
            )
        };
        let run_theirs = |s: &PathBuf| time(Command::new(s).args(&files));
        match &squawk {
            Some(s) if round % 2 == 1 => {
                theirs.push(run_theirs(s));
                ours.push(run_ours());
            }
            Some(s) => {
                ours.push(run_ours());
                theirs.push(run_theirs(s));
            }
            None => ours.push(run_ours()),
        }
    }
    let findings = count_findings(&pgwarden, &files);
    let ours = median(ours);
    println!(
        "pgwarden migrate lint: {:>8.1} ms  ({findings} findings, {:.1} µs per statement)",
        ours * 1e3,
        ours * 1e6 / statements as f64
    );
    match &squawk {
        Some(path) => {
            let theirs = median(theirs);
            println!(
                "squawk:                {:>8.1} ms  ({})",
                theirs * 1e3,
                path.display()
            );
            println!("ratio pgwarden/squawk: {:.2} (goal ≤ 1.00)", ours / theirs);
        }
        None => println!("squawk: not installed (pip install squawk-cli), no comparison"),
    }
}

/// Migrations as teams write them: new tables, indexes, column changes,
/// constraints, a backfill — some safe, some not.
fn write_files(dir: &Path, n: usize) -> Vec<PathBuf> {
    (1..=n)
        .map(|i| {
            let path = dir.join(format!("V{i}__change_{i}.sql"));
            let sql = format!(
                "-- change {i}\n\
                 CREATE TABLE orders_{i} (\n    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n    customer_id bigint NOT NULL REFERENCES customers (id),\n    status text NOT NULL DEFAULT 'new' CHECK (status IN ('new', 'paid', 'shipped')),\n    total numeric(12, 2) NOT NULL,\n    created_at timestamptz NOT NULL DEFAULT now()\n);\n\
                 CREATE INDEX orders_{i}_customer_idx ON orders_{i} (customer_id);\n\
                 ALTER TABLE customers ADD COLUMN note_{i} text;\n\
                 ALTER TABLE customers ALTER COLUMN score_{i} TYPE bigint;\n\
                 CREATE INDEX customers_note_{i}_idx ON customers (note_{i});\n\
                 ALTER TABLE invoices ADD CONSTRAINT invoices_order_{i}_fk FOREIGN KEY (order_id) REFERENCES orders_{i} (id);\n\
                 UPDATE customers SET note_{i} = 'migrated' WHERE id < 1000;\n\
                 CREATE FUNCTION order_total_{i}(o bigint) RETURNS numeric LANGUAGE sql STABLE\n    AS $$ SELECT total FROM orders_{i} WHERE id = o $$;\n"
            );
            std::fs::write(&path, sql).expect("write migration");
            path
        })
        .collect()
}

fn time(command: &mut Command) -> f64 {
    let started = Instant::now();
    let status = command.stdout(Stdio::null()).stderr(Stdio::null()).status();
    let took = started.elapsed().as_secs_f64();
    match status {
        // Both exit 1 when they find something: that is expected here.
        Ok(s) if s.code().is_some_and(|c| c <= 1) => took,
        Ok(s) => common::fail(BENCH, &format!("{command:?} exited with {s}")),
        Err(e) => common::fail(BENCH, &format!("cannot run {command:?}: {e}")),
    }
}

fn count_findings(pgwarden: &Path, files: &[PathBuf]) -> usize {
    let out = Command::new(pgwarden)
        .args(["migrate", "lint", "--offline", "--format", "json"])
        .args(files)
        .output()
        .expect("run pgwarden");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    json["findings"].as_array().map_or(0, Vec::len)
}

/// `$SQUAWK`, else squawk on PATH; a pyenv shim (a shell script that
/// starts pyenv on every call) is resolved to the real binary, so the
/// comparison is binary against binary.
fn squawk() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("SQUAWK") {
        return Some(PathBuf::from(path));
    }
    let found = which("squawk")?;
    if !found.to_string_lossy().contains("/shims/") {
        return Some(found);
    }
    let out = Command::new("pyenv")
        .args(["which", "squawk"])
        .output()
        .ok()?;
    let real = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Some(if out.status.success() && !real.is_empty() {
        PathBuf::from(real)
    } else {
        found
    })
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}
