//! `pgwarden demo`: a throwaway PostgreSQL, the daemon on loopback, and
//! nothing left behind after Ctrl-C.

use crate::serve_support;
use crate::support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use serve_support::*;
use support::*;

#[test]
fn demo_serves_a_throwaway_database_and_removes_it_on_ctrl_c() {
    let dir = workdir();
    let addr = free_addr();
    let config = write_file(
        dir.path(),
        "pgwarden.toml",
        &format!("[http]\nlisten = \"{addr}\"\n[checks]\ninterval = \"1s\"\n"),
    );
    let mut child = Interrupted(
        pgwarden(dir.path())
            .arg("--config")
            .arg(&config)
            .arg("demo")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (lines_tx, lines) = mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = lines_tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    let mut seen = Vec::new();
    let mut data_dir = None;
    // stdout (the URLs) and stderr (the log) arrive through two threads, in
    // either order: wait for both.
    let has = |seen: &[String], text: &str| seen.iter().any(|l| l.contains(text));
    while !has(&seen, "/metrics") || !has(&seen, "demo: seed data") || data_dir.is_none() {
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("demo printed no URLs ({e}):\n{}", seen.join("\n")));
        if let Some((_, rest)) = line.split_once("(data in ") {
            data_dir = Some(std::path::PathBuf::from(rest.trim_end_matches(')')));
        }
        seen.push(line);
    }
    let text = seen.join("\n");
    assert!(text.contains(&format!("http://{addr}/metrics")), "{text}");
    assert!(text.contains("demo: seed data loaded"), "{text}");
    assert!(!text.contains(PASSWORD), "password printed:\n{text}");
    let data_dir = data_dir.unwrap();
    assert!(data_dir.join("PG_VERSION").exists(), "{data_dir:?}");

    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = http_get(&addr, "/metrics", None);
        assert_eq!(status, 200);
        let scrape = parse(&body);
        let demo = [("target", "demo")];
        // Up, on the education schema built into the binary (this working
        // directory has no migrations folder).
        if value(&scrape, "pgwarden_up", &demo) == Some(1.0)
            && value(&scrape, "pgwarden_migration_version", &demo) == Some(20240901000000.0)
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "demo target never up:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(
        !data_dir.exists(),
        "the demo cluster was left behind in {data_dir:?}"
    );
    assert!(std::net::TcpStream::connect(&addr).is_err());
}
