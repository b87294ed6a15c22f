//! Running `pgwarden serve` as a real process and talking real HTTP to it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::{pgwarden, write_file};

/// A free loopback address for `http.listen`.
pub fn free_addr() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// The daemon as a child process; killed if a test fails before stopping it.
pub struct Serve {
    pub child: Option<Child>,
    pub addr: String,
    pub dir: PathBuf,
    pub config: PathBuf,
}

impl Serve {
    /// Start `pgwarden --config <dir>/pgwarden.toml serve` listening on `addr`.
    pub fn start(dir: &Path, addr: &str, config: &str) -> Serve {
        Self::start_with(dir, addr, config, &[], &[])
    }

    pub fn start_with(
        dir: &Path,
        addr: &str,
        config: &str,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> Serve {
        Self::spawn(dir, addr, config, extra_args, &[], env)
    }

    /// `pgwarden --config … serve <serve_args>`.
    pub fn start_serving(dir: &Path, addr: &str, config: &str, serve_args: &[&str]) -> Serve {
        Self::spawn(dir, addr, config, &[], serve_args, &[])
    }

    fn spawn(
        dir: &Path,
        addr: &str,
        config: &str,
        global_args: &[&str],
        serve_args: &[&str],
        env: &[(&str, &str)],
    ) -> Serve {
        let path = write_file(dir, "pgwarden.toml", config);
        let mut command = pgwarden(dir);
        command
            .arg("--config")
            .arg(&path)
            .args(global_args)
            .arg("serve")
            .args(serve_args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("stdout.log")).unwrap())
            .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap());
        let child = command.spawn().expect("start pgwarden serve");
        let mut serve = Serve {
            child: Some(child),
            addr: addr.to_string(),
            dir: dir.to_path_buf(),
            config: path,
        };
        serve.wait_listening();
        serve
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(&self.addr).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("pgwarden serve exited ({status}):\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "not listening:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill has no memory-safety preconditions.
        assert_eq!(unsafe { libc::kill(self.pid(), signal) }, 0);
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(&self.addr, path, None)
    }

    pub fn metrics(&self) -> prometheus_parse::Scrape {
        let (status, body) = self.get("/metrics");
        assert_eq!(status, 200, "{body}");
        parse(&body)
    }

    /// Poll `/metrics` until `pred` holds, failing with the last scrape after `timeout`.
    pub fn wait_metrics(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&prometheus_parse::Scrape) -> bool,
    ) -> prometheus_parse::Scrape {
        let deadline = Instant::now() + timeout;
        loop {
            let scrape = self.metrics();
            if pred(&scrape) {
                return scrape;
            }
            if Instant::now() > deadline {
                panic!(
                    "waited {timeout:?} for {what}; last scrape:\n{}\nlog:\n{}",
                    self.get("/metrics").1,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, body) = self.get("/ready");
            if status == 200 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not ready: {body}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, and the exit status within a bound (panics past it).
    pub fn stop(self) -> std::process::ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait_exit(Duration::from_secs(20)).0
    }

    /// The exit status of a process that ends by itself within `timeout`
    /// (panics past it), and its log.
    pub fn wait_exit(mut self, timeout: Duration) -> (std::process::ExitStatus, String) {
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return (status, self.log());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("pgwarden did not exit within {timeout:?}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One HTTP/1.1 GET with `Connection: close`; (status, body).
pub fn http_get(addr: &str, path: &str, basic_auth: Option<(&str, &str)>) -> (u16, String) {
    use base64::Engine;
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let auth = basic_auth
        .map(|(user, password)| {
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            format!("Authorization: Basic {token}\r\n")
        })
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

pub fn parse(body: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string())))
        .unwrap_or_else(|e| panic!("not Prometheus text ({e}):\n{body}"))
}

/// The value of the sample of `metric` whose labels include `labels`.
pub fn value(
    scrape: &prometheus_parse::Scrape,
    metric: &str,
    labels: &[(&str, &str)],
) -> Option<f64> {
    use prometheus_parse::Value;
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .find(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
            _ => f64::NAN,
        })
}

/// A `[[targets]]` entry.
pub fn target(name: &str, url: &str, extra: &str) -> String {
    format!("[[targets]]\nname = \"{name}\"\nurl = \"{url}\"\n{extra}\n")
}
