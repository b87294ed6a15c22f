//! Lint output: for people, `--format json`, `--format github` (workflow annotations).

use serde::Serialize;

use super::{Finding, Severity};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Github,
}

#[derive(Serialize)]
struct Summary {
    errors: usize,
    warnings: usize,
    infos: usize,
    files: usize,
}

fn summary(findings: &[Finding], files: usize) -> Summary {
    let count = |s| findings.iter().filter(|f| f.severity == s).count();
    Summary {
        errors: count(Severity::Error),
        warnings: count(Severity::Warning),
        infos: count(Severity::Info),
        files,
    }
}

pub fn render(findings: &[Finding], files: usize, format: Format) -> String {
    match format {
        Format::Text => text(findings, files),
        Format::Json => {
            #[derive(Serialize)]
            struct Out<'a> {
                findings: &'a [Finding],
                summary: Summary,
            }
            let out = Out {
                findings,
                summary: summary(findings, files),
            };
            serde_json::to_string_pretty(&out)
                .unwrap_or_else(|e| format!("{{\"error\": \"cannot render JSON: {e}\"}}"))
                + "\n"
        }
        Format::Github => findings.iter().map(github).collect(),
    }
}

fn text(findings: &[Finding], files: usize) -> String {
    let mut out = String::new();
    for f in findings {
        out.push_str(&format!(
            "{}:{}:{}: {}[{}] {}\n",
            f.file.display(),
            f.line,
            f.column,
            f.severity.as_str(),
            f.rule,
            f.message
        ));
        for line in excerpt(&f.statement).lines() {
            out.push_str(&format!("    | {line}\n"));
        }
        out.push_str(&format!("    = safe way: {}\n\n", f.advice));
    }
    let s = summary(findings, files);
    out.push_str(&format!(
        "{} error(s), {} warning(s), {} info in {} file(s)\n",
        s.errors, s.warnings, s.infos, s.files
    ));
    out
}

/// The first lines of a statement (long bodies cut).
fn excerpt(statement: &str) -> String {
    let lines: Vec<&str> = statement.lines().collect();
    if lines.len() <= 4 {
        return statement.to_string();
    }
    format!("{}\n…", lines[..4].join("\n"))
}

/// `::error file=…,line=…,col=…,title=…::message` with GitHub's escapes.
fn github(f: &Finding) -> String {
    let level = match f.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "notice",
    };
    let property = |s: &str| escape(s).replace(':', "%3A").replace(',', "%2C");
    format!(
        "::{level} file={},line={},col={},title={}::{}\n",
        property(&f.file.display().to_string()),
        f.line,
        f.column,
        property(&format!("pgwarden {}", f.rule)),
        escape(&format!("{}. Safe way: {}", f.message, f.advice))
    )
}

fn escape(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}
