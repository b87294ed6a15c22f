//! The status page at `/`: server-rendered HTML from what [`Shared`] holds,
//! so it costs the databases nothing, like `/metrics`.
//!
//! Every status is told by a word and a shape as well as a colour. Offenders
//! come from each check's `details`, rendered generically (a list of objects
//! becomes a table), so a check that adds details shows them without a change
//! here. Everything a database said is HTML-escaped.

use std::fmt::Write;

use serde_json::Value;

use super::collector::unix_now;
use super::history::{CHARTS, Chart, Sample, Unit};
use super::state::{MigrationState, Shared};
use crate::report::{CheckResult, Measurement, Overall, Status, TargetReport, human_bytes};

/// Charts span this much time.
const CHART_SECONDS: f64 = 3600.0;
/// Rows shown per offender list, and characters per cell (query texts).
const MAX_ROWS: usize = 20;
const MAX_CELL: usize = 300;

pub fn render(shared: &Shared) -> String {
    let now = unix_now();
    let report = shared.report();
    let mut out = String::with_capacity(32 * 1024);
    out.push_str(HEAD);
    let _ = write!(
        out,
        "<header><h1>pgwarden</h1><p>{} · overall {} · {} UTC</p></header><main>",
        esc(&report.environment),
        overall_badge(report.overall),
        clock(now)
    );
    for (name, target) in shared.targets() {
        target_section(&mut out, shared, &name, target.as_ref(), now);
    }
    out.push_str(
        "</main><footer><a href=\"/metrics\">/metrics</a> · <a href=\"/health\">/health</a> \
         (JSON) · <a href=\"/ready\">/ready</a></footer></body></html>\n",
    );
    out
}

fn target_section(
    out: &mut String,
    shared: &Shared,
    name: &str,
    report: Option<&TargetReport>,
    now: f64,
) {
    let _ = write!(
        out,
        "<section class=\"target\" data-target=\"{0}\"><h2>{0} ",
        esc(name)
    );
    let Some(report) = report else {
        out.push_str("<span class=\"badge s-wait\">… waiting</span></h2><p>the first check cycle has not finished yet</p></section>");
        return;
    };
    if report.up {
        out.push_str("<span class=\"badge s-ok\">▲ up</span>");
    } else {
        out.push_str("<span class=\"badge s-error\">▼ down</span>");
    }
    let _ = write!(
        out,
        " {}</h2><p class=\"meta\">{} · checked {} ago in {:.0} ms</p>",
        badge(report.worst()),
        server_line(report),
        age(now - report.finished_at),
        report.duration_seconds * 1000.0
    );
    if let Some(error) = &report.error {
        let _ = write!(out, "<p class=\"error\">{}</p>", esc(error));
    }
    checks_table(out, &report.checks);
    if let Some(fleet) = shared.fleet_view(name, MAX_ROWS) {
        fleet_table(out, &fleet);
    }
    for check in report.checks.iter().filter(|c| has_details(c)) {
        offenders(out, check);
    }
    charts(out, &shared.history(name, now - CHART_SECONDS), now);
    backups(out, shared, name, now);
    if let Some(state) = shared.migration(name) {
        migrations(out, &state, now);
    }
    out.push_str("</section>");
}

/// A discover target's databases: how many, and the worst ones (a fleet of
/// hundreds must stay one screen: `/health` and `/probe` have every one).
fn fleet_table(out: &mut String, fleet: &super::state::FleetView) {
    let pass = fleet
        .pass_seconds
        .map(|s| format!(" · last pass over all of them {s:.1} s"))
        .unwrap_or_default();
    let discovery = if fleet.discovery_up {
        ""
    } else {
        " · <span class=\"error\">listing pg_database fails</span>"
    };
    let _ = write!(
        out,
        "<p class=\"meta fleet\">{} database(s) watched · {} down · {} not ok{pass}{discovery}</p>",
        fleet.watched, fleet.down, fleet.not_ok
    );
    if fleet.worst.is_empty() {
        return;
    }
    out.push_str("<table class=\"checks fleet\"><thead><tr><th>status</th><th>database</th><th>why</th></tr></thead><tbody>");
    for report in &fleet.worst {
        let why = report.error.clone().unwrap_or_else(|| {
            let worst = report.checks.iter().max_by_key(|c| c.status);
            worst.map_or(String::new(), |c| format!("{}: {}", c.check, c.summary))
        });
        let status = if report.up {
            badge(report.worst())
        } else {
            "<span class=\"badge s-error\">▼ down</span>".into()
        };
        let _ = write!(
            out,
            "<tr><td>{status}</td><td>{}</td><td>{}</td></tr>",
            esc(report.database.as_deref().unwrap_or("")),
            esc(&truncate(&why))
        );
    }
    out.push_str("</tbody></table>");
}

/// "primary, PostgreSQL 15.8" from the connectivity check's measurements.
fn server_line(report: &TargetReport) -> String {
    let value = |metric: &str| {
        report
            .checks
            .iter()
            .flat_map(|c| &c.measurements)
            .find(|m| m.metric == metric)
            .map(|m| m.value)
    };
    let role = match value("in_recovery") {
        Some(v) if v > 0.0 => "standby",
        Some(_) => "primary",
        None => "role unknown",
    };
    match value("server_version_num") {
        Some(v) if v >= 100_000.0 => {
            let v = v as u64;
            format!("{role}, PostgreSQL {}.{}", v / 10_000, v % 10_000)
        }
        _ => role.to_string(),
    }
}

fn checks_table(out: &mut String, checks: &[CheckResult]) {
    out.push_str("<table class=\"checks\"><thead><tr><th>status</th><th>check</th><th>headline</th></tr></thead><tbody>");
    for c in checks {
        let _ = write!(
            out,
            "<tr data-check=\"{0}\" data-status=\"{1}\"><td>{2}</td><td>{0}</td><td>{3}</td></tr>",
            esc(&c.check),
            c.status.as_str(),
            badge(c.status),
            esc(&c.summary)
        );
    }
    out.push_str("</tbody></table>");
}

fn has_details(check: &CheckResult) -> bool {
    match &check.details {
        Value::Object(map) => map.values().any(|v| !empty(v)),
        _ => false,
    }
}

fn empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// A check's details: open when the check is not ok, folded otherwise.
fn offenders(out: &mut String, check: &CheckResult) {
    let Value::Object(map) = &check.details else {
        return;
    };
    let open = if check.status == Status::Ok {
        ""
    } else {
        " open"
    };
    let _ = write!(
        out,
        "<details class=\"offenders\" data-check=\"{0}\"{open}><summary>{1} {0}</summary>",
        esc(&check.check),
        badge(check.status)
    );
    let mut scalars = Vec::new();
    for (key, value) in map.iter().filter(|(_, v)| !empty(v)) {
        match value {
            Value::Array(rows) if rows.iter().all(Value::is_object) => table(out, key, rows),
            Value::Object(inner) => {
                let rows = [Value::Object(inner.clone())];
                table(out, key, &rows);
            }
            _ => scalars.push((key, value)),
        }
    }
    if !scalars.is_empty() {
        out.push_str("<dl>");
        for (key, value) in scalars {
            let _ = write!(
                out,
                "<dt>{}</dt><dd>{}</dd>",
                esc(&words(key)),
                cell(key, value)
            );
        }
        out.push_str("</dl>");
    }
    out.push_str("</details>");
}

/// A list of objects as a table; columns in the order the first row has them.
fn table(out: &mut String, key: &str, rows: &[Value]) {
    let mut columns: Vec<&String> = Vec::new();
    for row in rows {
        if let Value::Object(o) = row {
            for k in o.keys() {
                if !columns.contains(&k) {
                    columns.push(k);
                }
            }
        }
    }
    let _ = write!(
        out,
        "<div class=\"scroll\"><table class=\"list\" data-list=\"{}\"><caption>{}</caption><thead><tr>",
        esc(key),
        esc(&words(key))
    );
    for c in &columns {
        let _ = write!(out, "<th>{}</th>", esc(&words(c)));
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows.iter().take(MAX_ROWS) {
        out.push_str("<tr>");
        for c in &columns {
            let _ = write!(
                out,
                "<td>{}</td>",
                cell(c, row.get(c.as_str()).unwrap_or(&Value::Null))
            );
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>");
    if rows.len() > MAX_ROWS {
        let _ = write!(
            out,
            "<p class=\"meta\">and {} more (see /health)</p>",
            rows.len() - MAX_ROWS
        );
    }
}

/// One value, formatted by what its key says it is.
fn cell(key: &str, value: &Value) -> String {
    match value {
        Value::Null => "—".into(),
        Value::Number(n) => {
            let v = n.as_f64().unwrap_or(0.0);
            let unit = if key.ends_with("seconds") {
                Unit::Seconds
            } else if key.ends_with("bytes") || key == "bytes" {
                Unit::Bytes
            } else if key.ends_with("ratio") || key == "usage" {
                Unit::Ratio
            } else {
                return n.to_string();
            };
            esc(&format_value(unit, v))
        }
        Value::String(s) => esc(&truncate(s)),
        Value::Array(items) => items
            .iter()
            .map(|i| cell(key, i))
            .collect::<Vec<_>>()
            .join(", "),
        other => esc(&truncate(&other.to_string())),
    }
}

fn truncate(s: &str) -> String {
    match s.char_indices().nth(MAX_CELL) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

fn charts(out: &mut String, samples: &[Sample], now: f64) {
    out.push_str("<h3>Last hour</h3><div class=\"charts\">");
    for (index, chart) in CHARTS.iter().enumerate() {
        chart_svg(out, index, chart, samples, now);
    }
    out.push_str("</div>");
}

const LINE_COLOURS: [&str; 5] = ["#2563eb", "#d97706", "#059669", "#7c3aed", "#dc2626"];

/// One inline SVG line chart: x is the last hour, y spans the values seen.
fn chart_svg(out: &mut String, index: usize, chart: &Chart, samples: &[Sample], now: f64) {
    let lines = chart_lines(index, samples);
    let _ = write!(
        out,
        "<figure class=\"chart\" data-chart=\"{}\"><figcaption>{}",
        esc(chart.title),
        esc(chart.title)
    );
    let all: Vec<f64> = lines
        .iter()
        .flat_map(|(_, p)| p.iter().map(|x| x.1))
        .collect();
    if all.is_empty() {
        out.push_str("</figcaption><p class=\"meta\">no data yet</p></figure>");
        return;
    }
    let (lo, hi) = bounds(chart.unit, &all);
    let latest: Vec<String> = lines
        .iter()
        .filter_map(|(name, points)| {
            let v = format_value(chart.unit, points.last()?.1);
            Some(if name.is_empty() {
                v
            } else {
                format!("{name} {v}")
            })
        })
        .collect();
    let _ = write!(
        out,
        ": <b>{}</b></figcaption><svg viewBox=\"0 0 300 80\" role=\"img\" aria-label=\"{} over the last {}, from {} to {}\" preserveAspectRatio=\"none\">",
        esc(&latest.join(", ")),
        esc(chart.title),
        age(span(&lines, now)),
        esc(&format_value(chart.unit, lo)),
        esc(&format_value(chart.unit, hi))
    );
    let seconds = span(&lines, now);
    let (x, y) = (
        |t: f64| 300.0 * (1.0 - (now - t) / seconds).clamp(0.0, 1.0),
        |v: f64| 76.0 - 72.0 * (v - lo) / (hi - lo),
    );
    for (n, (name, points)) in lines.iter().enumerate() {
        let colour = LINE_COLOURS[n % LINE_COLOURS.len()];
        let coords: Vec<String> = points
            .iter()
            .map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v)))
            .collect();
        let _ = write!(
            out,
            "<polyline class=\"line\" data-line=\"{}\" data-points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" vector-effect=\"non-scaling-stroke\" points=\"{}\"/>",
            esc(name),
            points.len(),
            coords.join(" ")
        );
        if let Some((t, v)) = points.last() {
            let _ = write!(
                out,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"{colour}\"/>",
                x(*t),
                y(*v)
            );
        }
    }
    let _ = write!(
        out,
        "</svg><div class=\"axis\"><span>{} ago</span><span>y {} – {}</span><span>now</span></div></figure>",
        age(seconds),
        esc(&format_value(chart.unit, lo)),
        esc(&format_value(chart.unit, hi))
    );
}

/// Per line name, its (time, value) points in time order.
fn chart_lines(index: usize, samples: &[Sample]) -> Vec<(String, Vec<(f64, f64)>)> {
    let mut lines: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for s in samples {
        for ((i, name), v) in &s.values {
            if *i != index {
                continue;
            }
            match lines.iter_mut().find(|(n, _)| n == name) {
                Some((_, points)) => points.push((s.at, *v)),
                None => lines.push((name.clone(), vec![(s.at, *v)])),
            }
        }
    }
    // Connection states nobody is in stay off the chart and its caption.
    lines.retain(|(name, points)| name.is_empty() || points.iter().any(|p| p.1 != 0.0));
    lines
}

/// The y range: from 0 for amounts, ratios within 0-1, a visible band for a flat line.
fn bounds(unit: Unit, values: &[f64]) -> (f64, f64) {
    let hi = values.iter().copied().fold(f64::MIN, f64::max);
    let lo = values.iter().copied().fold(f64::MAX, f64::min);
    let (lo, hi) = match unit {
        Unit::Ratio => ((lo - 0.01).max(0.0), (hi + 0.01).min(1.0)),
        _ => (lo.min(0.0), hi),
    };
    if hi - lo < 1e-9 {
        (lo, lo + 1.0_f64.max(lo.abs() * 0.01))
    } else {
        (lo, hi)
    }
}

/// The x range: the last hour, or since the first sample when the daemon
/// started later (at least a minute), so a young daemon's lines are not slivers.
fn span(lines: &[(String, Vec<(f64, f64)>)], now: f64) -> f64 {
    let first = lines
        .iter()
        .filter_map(|(_, p)| p.first().map(|x| x.0))
        .fold(now, f64::min);
    (now - first).clamp(60.0, CHART_SECONDS)
}

fn format_value(unit: Unit, v: f64) -> String {
    match unit {
        Unit::Ratio => format!("{:.1} %", v * 100.0),
        Unit::Count => format!("{v:.0}"),
        Unit::Seconds => age(v),
        Unit::Bytes => human_bytes(v),
    }
}

fn backups(out: &mut String, shared: &Shared, target: &str, now: f64) {
    let measured = shared.source_measurements(target);
    let value = |metric: &str| find(&measured, metric);
    if measured.iter().all(|m| !m.metric.starts_with("backup_")) {
        return;
    }
    out.push_str("<h3>Backups</h3><dl class=\"facts\">");
    let last = match value("backup_last_success_timestamp_seconds") {
        Some(t) => format!("{} UTC ({} ago)", clock(t), age(now - t)),
        None => "none yet".into(),
    };
    let size = value("backup_last_size_bytes").map_or("—".into(), human_bytes);
    let next = shared
        .backup_plan()
        .and_then(|p| p.schedule.next_after(chrono::Utc::now(), p.timezone))
        .map_or("not scheduled".into(), |t| {
            format!("{} UTC", t.format("%Y-%m-%d %H:%M"))
        });
    let failures = value("backup_failures_total").unwrap_or(0.0);
    let running = value("backup_running").unwrap_or(0.0) > 0.0;
    let _ = write!(
        out,
        "<dt>last good</dt><dd>{}</dd><dt>size</dt><dd>{}</dd><dt>next run</dt><dd>{}</dd><dt>failures</dt><dd>{failures:.0}</dd><dt>running</dt><dd>{}</dd></dl>",
        esc(&last),
        esc(&size),
        esc(&next),
        if running { "yes" } else { "no" }
    );
}

fn find(measured: &[Measurement], metric: &str) -> Option<f64> {
    measured
        .iter()
        .find(|m| m.metric == metric)
        .map(|m| m.value)
}

fn migrations(out: &mut String, state: &MigrationState, now: f64) {
    let version = state.version.map_or("none".into(), |v| v.to_string());
    let pending = state.pending.map_or("unknown".into(), |p| p.to_string());
    let last = match (state.last_run_success, state.last_run_at) {
        (None, _) => "no run since start".to_string(),
        (Some(ok), at) => format!(
            "{}{}",
            if ok { "✓ succeeded" } else { "✖ failed" },
            at.map(|t| format!(" {} ago", age(now - t)))
                .unwrap_or_default()
        ),
    };
    let lint = state
        .lint_errors
        .map_or("not checked yet".into(), |n| n.to_string());
    let drift = match state.drift_objects {
        None => "not watched (schema.drift_interval)".to_string(),
        Some(0) => "✓ none".to_string(),
        Some(n) => format!("▲ {n} object(s) changed out of band: pgwarden migrate drift"),
    };
    let _ = write!(
        out,
        "<h3>Migrations</h3><dl class=\"facts\"><dt>version</dt><dd>{}</dd><dt>pending</dt><dd>{}</dd><dt>last run</dt><dd>{}</dd><dt>lint errors</dt><dd>{}</dd><dt>drift</dt><dd>{}</dd></dl>",
        esc(&version),
        esc(&pending),
        esc(&last),
        esc(&lint),
        esc(&drift)
    );
}

/// A status as shape, word and colour.
fn badge(status: Status) -> String {
    let shape = match status {
        Status::Ok => "●",
        Status::Warning => "▲",
        Status::Critical => "◆",
        Status::Error => "✖",
    };
    format!(
        "<span class=\"badge s-{0}\"><span aria-hidden=\"true\">{shape}</span> {0}</span>",
        status.as_str()
    )
}

fn overall_badge(overall: Overall) -> String {
    let (class, shape, word) = match overall {
        Overall::Healthy => ("ok", "●", "healthy"),
        Overall::Degraded => ("warning", "▲", "degraded"),
        Overall::Unhealthy => ("critical", "◆", "unhealthy"),
    };
    format!(
        "<span class=\"badge s-{class}\" id=\"overall\"><span aria-hidden=\"true\">{shape}</span> {word}</span>"
    )
}

/// "snake_case_key" -> "snake case key".
fn words(key: &str) -> String {
    key.replace('_', " ")
}

/// A duration for people: "850 ms", "42 s", "3 min", "2.5 h", "4 d".
fn age(seconds: f64) -> String {
    let s = seconds.max(0.0);
    if s < 1.0 {
        format!("{:.0} ms", s * 1000.0)
    } else if s < 120.0 {
        format!("{s:.0} s")
    } else if s < 7200.0 {
        format!("{:.0} min", s / 60.0)
    } else if s < 172_800.0 {
        format!("{:.1} h", s / 3600.0)
    } else {
        format!("{:.0} d", s / 86400.0)
    }
}

fn clock(unix: f64) -> String {
    chrono::DateTime::from_timestamp(unix as i64, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const HEAD: &str = concat!(
    "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">",
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
    "<title>pgwarden status</title><style>",
    "body{font:15px/1.4 system-ui,sans-serif;margin:0;color:#111;background:#f6f7f9}",
    "header,main,footer{max-width:72rem;margin:0 auto;padding:.5rem 1rem}",
    "h1{margin:.3rem 0;font-size:1.4rem}h2{font-size:1.2rem;margin:.2rem 0}h3{font-size:1rem;margin:1rem 0 .3rem}",
    ".target{background:#fff;border:1px solid #d0d4da;border-radius:6px;padding:.6rem 1rem;margin:0 0 1rem}",
    ".meta{color:#555;margin:.2rem 0}.error{color:#991b1b;font-weight:600}",
    "table{border-collapse:collapse;width:100%;font-size:.9rem}th,td{text-align:left;padding:.2rem .4rem;border-bottom:1px solid #e5e7eb;vertical-align:top}",
    "td{overflow-wrap:break-word}table.checks td:nth-child(2){white-space:nowrap}caption{text-align:left;font-weight:600;padding:.3rem 0}",
    ".scroll{overflow-x:auto}details{margin:.4rem 0}summary{cursor:pointer;font-weight:600}",
    ".badge{display:inline-block;padding:0 .45rem;border-radius:1rem;font-size:.85rem;font-weight:600;white-space:nowrap;border:1px solid}",
    ".s-ok{background:#dcfce7;color:#14532d;border-color:#16a34a}",
    ".s-warning{background:#fef3c7;color:#78350f;border-color:#d97706}",
    ".s-critical{background:#fee2e2;color:#7f1d1d;border-color:#dc2626}",
    ".s-error{background:#1f2937;color:#fff;border-color:#000}.s-wait{background:#e5e7eb;color:#333}",
    ".charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(15rem,1fr));gap:.6rem}",
    ".chart{margin:0;border:1px solid #e5e7eb;border-radius:4px;padding:.3rem}",
    ".chart figcaption{font-size:.85rem}.chart svg{width:100%;height:5rem;background:#fafafa}",
    ".axis{display:flex;justify-content:space-between;font-size:.75rem;color:#555}",
    "dl.facts,dl{display:grid;grid-template-columns:max-content 1fr;gap:.1rem .8rem;margin:.3rem 0}dd{margin:0}dt{color:#555}",
    "@media(max-width:40rem){body{font-size:14px}th,td{padding:.15rem .25rem}}",
    "</style><script>",
    // Every 10 s, swap the body for a fresh one instead of reloading: the scroll position
    // and open <details> survive. A failed fetch leaves the page as it was.
    "setInterval(function(){var open=[].map.call(document.querySelectorAll('details[open]'),function(d){return d.closest('section').dataset.target+'/'+d.dataset.check});",
    "fetch(location.href,{cache:'no-store'}).then(function(r){return r.text()}).then(function(t){",
    "var b=new DOMParser().parseFromString(t,'text/html').body;b.querySelectorAll('details').forEach(function(d){",
    "if(open.indexOf(d.closest('section').dataset.target+'/'+d.dataset.check)>=0)d.open=true});document.body.replaceWith(b)}).catch(function(){})},10000);",
    "</script></head><body>",
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offender_texts_are_escaped_and_units_follow_the_key() {
        assert_eq!(
            cell("query", &Value::from("<script>x</script>")),
            "&lt;script&gt;x&lt;/script&gt;"
        );
        assert_eq!(cell("query_seconds", &Value::from(90.0)), "90 s");
        assert_eq!(cell("bytes", &Value::from(2048)), "2.0 KiB");
        assert_eq!(cell("dead_ratio", &Value::from(0.25)), "25.0 %");
        assert_eq!(cell("pid", &Value::from(42)), "42");
        assert_eq!(cell("blocked_by", &serde_json::json!([1, 2])), "1, 2");
        assert_eq!(truncate(&"x".repeat(400)).chars().count(), MAX_CELL + 1);
    }

    #[test]
    fn the_page_shows_offenders_escaped_backups_migrations_and_a_waiting_target() {
        use crate::backup::BackupMetrics;
        use crate::report::Measurement;
        let shared = Shared::new("production", &["db".into(), "later".into()]);
        let backups = BackupMetrics::new(["db"]);
        shared.add_source(std::sync::Arc::new(backups));
        shared.update_migration("db", |m| {
            m.version = Some(20240901000000);
            m.pending = Some(2);
            m.drift_objects = Some(3);
        });
        let check = |name: &str, status, details| CheckResult {
            check: name.into(),
            status,
            summary: format!("{name} headline"),
            duration_seconds: 0.0,
            measurements: vec![Measurement::gauge("long_query_max_seconds", "", 90.0)],
            details,
        };
        for at in [unix_now() - 30.0, unix_now()] {
            shared.publish(TargetReport {
                target: "db".into(),
                database: None,
                up: true,
                error: None,
                finished_at: at,
                duration_seconds: 0.01,
                checks: vec![
                    check(
                        "long_queries",
                        Status::Warning,
                        serde_json::json!({"long_queries": [
                            {"pid": 7, "query": "SELECT '<b>'", "query_seconds": 90.0}]}),
                    ),
                    check(
                        "xmin",
                        Status::Ok,
                        serde_json::json!({"xmin_holder": {"pid": 9}}),
                    ),
                ],
            });
        }
        let page = render(&shared);
        assert!(page.contains("SELECT &#39;&lt;b&gt;&#39;"), "{page}");
        assert!(!page.contains("<b>'"), "unescaped query text");
        assert!(page.contains("<details class=\"offenders\" data-check=\"long_queries\" open>"));
        assert!(page.contains("<details class=\"offenders\" data-check=\"xmin\">"));
        assert!(
            page.contains("data-list=\"xmin_holder\""),
            "a new detail is a table"
        );
        assert!(page.contains("data-points=\"2\""), "two cycles, two points");
        assert!(page.contains("<dt>last good</dt><dd>none yet</dd>"));
        assert!(page.contains("<dt>next run</dt><dd>not scheduled</dd>"));
        assert!(page.contains("<dt>pending</dt><dd>2</dd>"));
        assert!(page.contains("▲ 3 object(s) changed out of band"), "{page}");
        assert!(page.contains("data-target=\"later\"") && page.contains("… waiting"));
        assert!(
            page.contains("▲</span> degraded"),
            "overall by shape and word"
        );
    }

    #[test]
    fn a_flat_series_still_gets_a_visible_band() {
        let (lo, hi) = bounds(Unit::Ratio, &[0.99, 0.99]);
        assert!(lo < 0.99 && hi > 0.99);
        assert_eq!(bounds(Unit::Count, &[3.0, 5.0]), (0.0, 5.0));
        assert_eq!(bounds(Unit::Ratio, &[1.0, 1.0]), (0.99, 1.0));
        assert_eq!(bounds(Unit::Count, &[0.0]), (0.0, 1.0));
    }
}
