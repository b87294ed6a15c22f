//! A load generator for the scrape endpoints: keep-alive HTTP/1.1
//! connections, each sending requests back to back, with every request's
//! latency kept.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

pub struct Run {
    pub count: usize,
    pub elapsed: Duration,
    /// Latencies in milliseconds, sorted.
    pub latencies: Vec<f64>,
    /// The size of the last body read.
    pub body_bytes: usize,
}

impl Run {
    pub fn per_second(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64()
    }

    pub fn percentile(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let at = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[at]
    }
}

/// `connections` keep-alive connections, each requesting `paths` in turn
/// (connection i starting at path i) until `duration` has passed; a request
/// in flight then is waited for and counted.
pub fn load(addr: &str, paths: &[String], connections: usize, duration: Duration) -> Run {
    let started = Instant::now();
    let deadline = started + duration;
    let workers: Vec<_> = (0..connections)
        .map(|i| {
            let addr = addr.to_string();
            let mut paths = paths.to_vec();
            let first = i % paths.len();
            paths.rotate_left(first);
            std::thread::spawn(move || request_until(&addr, &paths, deadline))
        })
        .collect();
    let mut latencies = Vec::new();
    let mut body_bytes = 0;
    for worker in workers {
        let (mine, bytes) = worker.join().expect("a load worker");
        latencies.extend(mine);
        body_bytes = bytes;
    }
    let elapsed = started.elapsed();
    latencies.sort_by(f64::total_cmp);
    Run {
        count: latencies.len(),
        elapsed,
        latencies,
        body_bytes,
    }
}

fn request_until(addr: &str, paths: &[String], deadline: Instant) -> (Vec<f64>, usize) {
    let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream.set_nodelay(true).expect("TCP_NODELAY");
    let mut writer = stream.try_clone().expect("a second handle on the socket");
    let mut reader = BufReader::with_capacity(1 << 16, stream);
    // Whole requests, formatted once: one write (one packet) each.
    let requests: Vec<String> = paths
        .iter()
        .map(|path| format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n"))
        .collect();
    let mut latencies = Vec::new();
    let mut body = Vec::new();
    // At least one request, however short the run: a slow server's only
    // scrape still counts.
    for (path, request) in paths.iter().zip(&requests).cycle() {
        let started = Instant::now();
        writer
            .write_all(request.as_bytes())
            .expect("send a request");
        body.clear();
        let status = read_response(&mut reader, &mut body);
        assert_eq!(
            status,
            200,
            "GET {path}: {}",
            String::from_utf8_lossy(&body)
        );
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        if Instant::now() >= deadline {
            break;
        }
    }
    (latencies, body.len())
}

/// One `GET path` on a new connection, however long it takes: its latency
/// in milliseconds, status and body.
pub fn fetch(addr: &str, path: &str) -> Option<(f64, u16, String)> {
    let stream = TcpStream::connect(addr).ok()?;
    let mut writer = stream.try_clone().ok()?;
    let mut reader = BufReader::with_capacity(1 << 16, stream);
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let started = Instant::now();
    writer.write_all(request.as_bytes()).ok()?;
    let mut body = Vec::new();
    let status = read_response(&mut reader, &mut body);
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    Some((ms, status, String::from_utf8_lossy(&body).into_owned()))
}

/// One HTTP/1.1 response (Content-Length or chunked, as Go's promhttp
/// sends): its status, with the body appended to `body`.
pub fn read_response(reader: &mut BufReader<TcpStream>, body: &mut Vec<u8>) -> u16 {
    let mut line = String::new();
    reader.read_line(&mut line).expect("a status line");
    let status = line.split(' ').nth(1).and_then(|s| s.parse().ok());
    let status = status.unwrap_or_else(|| panic!("not an HTTP status line: {line:?}"));
    let mut length = None;
    let mut chunked = false;
    loop {
        line.clear();
        reader.read_line(&mut line).expect("a header line");
        let header = line.trim_end().to_ascii_lowercase();
        if header.is_empty() {
            break;
        }
        if let Some(v) = header.strip_prefix("content-length:") {
            length = v.trim().parse::<usize>().ok();
        }
        if header.starts_with("transfer-encoding:") && header.contains("chunked") {
            chunked = true;
        }
    }
    if !chunked {
        read_exact_appended(reader, body, length.expect("a Content-Length"));
        return status;
    }
    loop {
        line.clear();
        reader.read_line(&mut line).expect("a chunk size");
        let size = usize::from_str_radix(line.trim(), 16).expect("a hexadecimal chunk size");
        read_exact_appended(reader, body, size);
        line.clear();
        reader.read_line(&mut line).expect("a chunk's line end");
        if size == 0 {
            return status;
        }
    }
}

fn read_exact_appended(reader: &mut BufReader<TcpStream>, body: &mut Vec<u8>, n: usize) {
    let start = body.len();
    body.resize(start + n, 0);
    reader.read_exact(&mut body[start..]).expect("a body");
}
