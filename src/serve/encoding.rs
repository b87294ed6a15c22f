//! How `/metrics` is sent: the Prometheus text format or OpenMetrics,
//! as the scraper's `Accept` asks, gzip-compressed when its
//! `Accept-Encoding` allows (Prometheus asks for both).

use std::io::Write;

use bytes::Bytes;
use hyper::HeaderMap;
use hyper::header::{ACCEPT, ACCEPT_ENCODING};

pub const PROMETHEUS_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
pub const OPENMETRICS_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Whether `header` lists `media` (a type or an encoding) with a non-zero q.
fn accepts(headers: &HeaderMap, header: hyper::header::HeaderName, media: &str) -> bool {
    headers
        .get_all(header)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let name = parts.next().unwrap_or("");
            let zero = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            name.eq_ignore_ascii_case(media) && !zero
        })
}

pub fn wants_openmetrics(headers: &HeaderMap) -> bool {
    accepts(headers, ACCEPT, "application/openmetrics-text")
}

pub fn wants_gzip(headers: &HeaderMap) -> bool {
    accepts(headers, ACCEPT_ENCODING, "gzip")
}

/// The Prometheus text exposition as OpenMetrics: a counter's family name
/// drops its `_total` (its samples keep it), a counter without the suffix
/// or an untyped metric becomes `unknown`, and the body ends with `# EOF`.
pub fn openmetrics(text: &str) -> String {
    let counters: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .filter(|name| name.ends_with("_total"))
        .collect();
    let mut out = String::with_capacity(text.len() + 16);
    for line in text.lines() {
        out.push_str(&openmetrics_line(line, &counters));
        out.push('\n');
    }
    out.push_str("# EOF\n");
    out
}

fn openmetrics_line(line: &str, counters: &[&str]) -> String {
    for prefix in ["# HELP ", "# TYPE "] {
        let Some(rest) = line.strip_prefix(prefix) else {
            continue;
        };
        let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
        let family = match counters.contains(&name) {
            true => name.strip_suffix("_total").unwrap_or(name),
            false => name,
        };
        let tail = match (prefix, tail) {
            ("# TYPE ", "untyped") => "unknown",
            ("# TYPE ", "counter") if !counters.contains(&name) => "unknown",
            _ => tail,
        };
        return format!("{prefix}{family} {tail}");
    }
    line.to_string()
}

/// gzip at the fast level: a scrape body is small and compresses well anyway.
pub fn gzip(body: &[u8]) -> Option<Bytes> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    encoder.write_all(body).ok()?;
    encoder.finish().ok().map(Bytes::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    #[test]
    fn counters_lose_total_in_their_family_name_only_and_the_body_ends_with_eof() {
        let text = "# HELP pgwarden_deadlocks_total Deadlocks\n# TYPE pgwarden_deadlocks_total counter\n\
                    pgwarden_deadlocks_total{target=\"a\"} 2\n# HELP pgwarden_up Up\n# TYPE pgwarden_up gauge\n\
                    pgwarden_up{target=\"a\"} 1\n# TYPE odd counter\nodd 1\n";
        let om = openmetrics(text);
        assert_eq!(
            om,
            "# HELP pgwarden_deadlocks Deadlocks\n# TYPE pgwarden_deadlocks counter\n\
             pgwarden_deadlocks_total{target=\"a\"} 2\n# HELP pgwarden_up Up\n# TYPE pgwarden_up gauge\n\
             pgwarden_up{target=\"a\"} 1\n# TYPE odd unknown\nodd 1\n# EOF\n"
        );
    }

    #[test]
    fn accept_headers_are_read_with_their_q_values() {
        let mut h = HeaderMap::new();
        h.insert(
            ACCEPT,
            HeaderValue::from_static(
                "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
            ),
        );
        h.insert(
            ACCEPT_ENCODING,
            HeaderValue::from_static("deflate, gzip;q=0"),
        );
        assert!(wants_openmetrics(&h));
        assert!(!wants_gzip(&h));
        h.insert(ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        assert!(wants_gzip(&h));
        assert!(!wants_openmetrics(&HeaderMap::new()));
        let packed = gzip(b"hello hello hello").unwrap();
        let mut out = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&packed[..]), &mut out)
            .unwrap();
        assert_eq!(out, "hello hello hello");
    }
}
