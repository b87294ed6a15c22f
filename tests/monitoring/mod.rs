//! What the alert, dashboard and end-to-end tests share: the shipped files,
//! README's metric contract and anchors, and a PromQL scanner that finds the
//! metric names an expression uses.
//!
//! The README's metric table is the contract between the exporters and the
//! dashboards/rules, so the tests read it rather than keeping a second list.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value as Json;
use serde_norway::Value as Yaml;

/// Where every shipped monitoring file lives, relative to the repository.
pub const ALERTS: &str = "config/prometheus/alerts.yml";
pub const ALERT_TESTS: &str = "config/prometheus/alerts_test.yml";
pub const PROMETHEUS_CONFIG: &str = "config/prometheus/prometheus.yml";
pub const ALERTMANAGER_CONFIG: &str = "config/alertmanager/alertmanager.yml";
pub const DASHBOARDS: [&str; 2] = [
    "grafana/dashboards/overview.json",
    "grafana/dashboards/target.json",
];
/// Every `runbook_url` is this plus a README anchor.
pub const RUNBOOK_BASE: &str = "https://github.com/pgwarden/pgwarden/blob/main/README.md#";
/// Metrics Prometheus makes itself; dashboards may use them beside pgwarden's.
pub const PROMETHEUS_OWN_METRICS: [&str; 1] = ["up"];

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn read(relative: &str) -> String {
    let path = repo().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

pub fn yaml(relative: &str) -> Yaml {
    serde_norway::from_str(&read(relative))
        .unwrap_or_else(|e| panic!("{relative} is not valid YAML: {e}"))
}

pub fn json(relative: &str) -> Json {
    serde_json::from_str(&read(relative))
        .unwrap_or_else(|e| panic!("{relative} is not valid JSON: {e}"))
}

/// Run one of the Debian `prometheus` package's binaries, failing loudly when
/// the package is missing rather than skipping.
pub fn prometheus_tool(tool: &str, args: &[&str], dir: &Path) -> Output {
    Command::new(tool)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `{tool}` ({e}): install the Debian package `prometheus` \
                 (apt-get install prometheus), which ships promtool and prometheus"
            )
        })
}

/// One alerting rule of alerts.yml.
#[derive(Debug, Clone)]
pub struct Rule {
    pub alert: String,
    pub expr: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

impl Rule {
    pub fn severity(&self) -> &str {
        self.labels.get("severity").map_or("", String::as_str)
    }
}

fn string_map(value: &Yaml) -> BTreeMap<String, String> {
    value
        .as_mapping()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

pub fn alert_rules() -> Vec<Rule> {
    let doc = yaml(ALERTS);
    let groups = doc["groups"].as_sequence().expect("alerts.yml has groups");
    groups
        .iter()
        .flat_map(|g| g["rules"].as_sequence().cloned().unwrap_or_default())
        .filter_map(|rule| {
            Some(Rule {
                alert: rule["alert"].as_str()?.to_string(),
                expr: rule["expr"]
                    .as_str()
                    .expect("every rule has an expr")
                    .to_string(),
                labels: string_map(&rule["labels"]),
                annotations: string_map(&rule["annotations"]),
            })
        })
        .collect()
}

/// A metric of README's metric reference table.
#[derive(Debug, Clone)]
pub struct ContractMetric {
    pub kind: String,
    pub labels: BTreeSet<String>,
}

/// README's `## Metric reference` table: name → type and labels. A row like
/// `pgwarden_process_*` is kept under its prefix with a trailing `*`.
pub fn readme_metrics() -> BTreeMap<String, ContractMetric> {
    let readme = read("README.md");
    let section = section(&readme, "## Metric reference");
    let mut metrics = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with("| `pgwarden_")) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let name = cells[0].trim_matches('`').to_string();
        let labels = cells
            .get(2)
            .map(|l| {
                l.split(',')
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && *l != "—")
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        let kind = cells.get(1).unwrap_or(&"").to_string();
        metrics.insert(name, ContractMetric { kind, labels });
    }
    assert!(
        metrics.len() > 20,
        "README's metric table looks unparsed: found {metrics:?}"
    );
    metrics
}

/// Whether README's table promises `name` (directly or through a `prefix_*` row).
pub fn in_contract(contract: &BTreeMap<String, ContractMetric>, name: &str) -> bool {
    contract.contains_key(name)
        || contract
            .keys()
            .filter_map(|k| k.strip_suffix('*'))
            .any(|prefix| name.starts_with(prefix))
}

/// The text of a README section, from its heading to the next heading of the
/// same or a higher level.
pub fn section<'a>(text: &'a str, heading: &str) -> &'a str {
    let level = heading.chars().take_while(|c| *c == '#').count();
    let start = text
        .lines()
        .scan(0, |offset, line| {
            let here = *offset;
            *offset += line.len() + 1;
            Some((here, line))
        })
        .find(|(_, line)| line.trim_end() == heading)
        .map(|(offset, _)| offset)
        .unwrap_or_else(|| panic!("README.md has no `{heading}` section"));
    let body = &text[start + heading.len()..];
    let mut offset = 0;
    for line in body.lines() {
        let hashes = line.chars().take_while(|c| *c == '#').count();
        if offset > 0 && hashes > 0 && hashes <= level && line[hashes..].starts_with(' ') {
            return &body[..offset];
        }
        offset += line.len() + 1;
    }
    body
}

/// The anchor GitHub gives a heading: lower case, punctuation dropped,
/// spaces to hyphens.
pub fn github_slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Every anchor README.md has: heading slugs (with GitHub's `-1`, `-2`
/// suffixes for repeats), outside code blocks.
pub fn readme_anchors() -> BTreeSet<String> {
    let readme = read("README.md");
    let mut anchors = BTreeSet::new();
    let mut in_code = false;
    for line in readme.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        let hashes = line.chars().take_while(|c| *c == '#').count();
        if in_code || hashes == 0 || !line[hashes..].starts_with(' ') {
            continue;
        }
        let slug = github_slug(&line[hashes..]);
        let mut candidate = slug.clone();
        let mut n = 0;
        while anchors.contains(&candidate) {
            n += 1;
            candidate = format!("{slug}-{n}");
        }
        anchors.insert(candidate);
    }
    anchors
}

/// Words that are never metric names here: operators, modifiers, and the
/// aggregations, which may be followed by `by (…)` instead of `(`.
const PROMQL_KEYWORDS: [&str; 26] = [
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "atan2",
    "inf",
    "nan",
];

/// The metric names a PromQL expression selects. Label matchers (`{…}`),
/// ranges (`[…]`), strings, numbers, function names, keywords, grouping label
/// lists (`by (…)`) and Grafana variables (`$target`) are not metric names.
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let mut braces = 0usize;
    let mut brackets = 0usize;
    let mut grouping = false; // inside `by (…)` and friends
    let mut after_grouping_keyword = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => {
                i += 1;
                while i < chars.len() && chars[i] != c {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
                continue;
            }
            '{' => braces += 1,
            '}' => braces = braces.saturating_sub(1),
            '[' => brackets += 1,
            ']' => brackets = brackets.saturating_sub(1),
            '(' if after_grouping_keyword => {
                grouping = true;
                after_grouping_keyword = false;
            }
            ')' if grouping => grouping = false,
            '$' => {
                i += 1;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                continue;
            }
            _ => {}
        }
        if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "_:".contains(chars[i])) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = chars[i..].iter().find(|c| !c.is_whitespace());
            let keyword = PROMQL_KEYWORDS.contains(&word.to_lowercase().as_str());
            if [
                "by",
                "without",
                "on",
                "ignoring",
                "group_left",
                "group_right",
            ]
            .contains(&word.as_str())
            {
                after_grouping_keyword = true;
                continue;
            }
            after_grouping_keyword = false;
            if braces == 0 && brackets == 0 && !grouping && !keyword && next != Some(&'(') {
                names.insert(word);
            }
            continue;
        }
        if !c.is_whitespace() && c != '(' {
            after_grouping_keyword = false;
        }
        i += 1;
    }
    names
}

/// A dashboard's panels, rows' nested panels included.
pub fn panels(dashboard: &Json) -> Vec<&Json> {
    let mut out = Vec::new();
    for panel in dashboard["panels"]
        .as_array()
        .expect("dashboard has panels")
    {
        out.push(panel);
        if let Some(nested) = panel["panels"].as_array() {
            out.extend(nested);
        }
    }
    out
}

/// The PromQL of every query of every panel: (panel title, refId, expr).
pub fn panel_queries(dashboard: &Json) -> Vec<(String, String, String)> {
    panels(dashboard)
        .into_iter()
        .flat_map(|panel| {
            let title = panel["title"].as_str().unwrap_or("?").to_string();
            panel["targets"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |t| {
                    (
                        title.clone(),
                        t["refId"].as_str().unwrap_or("?").to_string(),
                        t["expr"].as_str().unwrap_or_default().to_string(),
                    )
                })
        })
        .collect()
}

/// A comparison at the top level of an expression (outside parentheses,
/// matchers, ranges and strings): `(left, operator, right)`.
pub fn top_level_comparison(expr: &str) -> Option<(String, String, String)> {
    let bytes = expr.as_bytes();
    let mut depth = 0i32;
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if let Some(q) = quote {
            if c == b'\\' {
                i += 1;
            } else if c == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        match c {
            b'"' | b'\'' | b'`' => quote = Some(c),
            b'(' | b'{' | b'[' => depth += 1,
            b')' | b'}' | b']' => depth -= 1,
            b'=' | b'!' | b'>' | b'<' if depth == 0 => {
                let two = bytes.get(i + 1) == Some(&b'=');
                if c != b'=' || two {
                    let len = if two { 2 } else { 1 };
                    if c == b'!' && !two {
                        i += 1;
                        continue;
                    }
                    return Some((
                        expr[..i].trim().to_string(),
                        expr[i..i + len].to_string(),
                        expr[i + len..].trim().to_string(),
                    ));
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The value of a constant like `0.9`, `300` or `64 * 1024 * 1024`.
pub fn constant(text: &str) -> Option<f64> {
    text.split('*')
        .map(|factor| factor.trim().parse::<f64>().ok())
        .product()
}

/// An alert of the form `<one metric, maybe in a function> <op> <constant>`:
/// its metric, operator and threshold.
pub fn threshold(expr: &str) -> Option<(String, String, f64)> {
    let (left, op, right) = top_level_comparison(expr)?;
    let value = constant(&right)?;
    let metrics = metric_names(&left);
    (metrics.len() == 1).then(|| (metrics.into_iter().next().unwrap_or_default(), op, value))
}
pub mod live;
