//! `pgwarden migrate lint`: migration safety rules on PostgreSQL's own parse
//! tree, aware of the live data when a target is at hand.
//!
//! Two phases, so the database is asked once per run: [`analyze`] walks the
//! statements of a migration set (what `up` would send, split by
//! [`super::split`]) and yields raw findings, each naming the table it is
//! about; [`resolve`] then weighs them against table sizes (from `pg_class`
//! via [`sizes`], or the static presumption that a table the set does not
//! create is large), exemptions, `--allow` and the `[lint]` severities.
//! Rules live one group per file; [`RULES`] is their registry.

mod ast;
pub mod report;
mod rules_alter;
mod rules_destructive;
mod rules_index;
mod rules_misc;
mod rules_transaction;
mod rules_types;
pub mod run;
pub mod sizes;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use pg_query::NodeEnum;
use serde::{Deserialize, Deserializer, Serialize};

use super::files::Script;
use super::split::{self, Statement};

/// How bad a finding is. `error` fails the run (and the `migrate up` gate).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// What a rule's finding depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Impact {
    /// Nothing about a particular table.
    Statement,
    /// Harmless on a table created earlier in the same set (renames, drops).
    ExistingTable,
    /// A rewrite or a long lock: it scales with the table's size.
    Sized,
    /// Fails outright when the table has rows.
    FailsWithRows,
}

/// One rule: its id, default severity, what happens in production, the safe way.
#[derive(Debug)]
pub struct Rule {
    pub id: &'static str,
    pub severity: Severity,
    pub impact: Impact,
    /// What happens in production.
    pub why: &'static str,
    /// The safe way to write it.
    pub fix: &'static str,
}

/// Every rule, in the order the README lists them.
pub static RULES: &[&Rule] = &[
    &rules_index::CREATE_INDEX,
    &rules_index::DROP_INDEX,
    &rules_index::REINDEX,
    &rules_index::CONCURRENTLY_IN_TRANSACTION,
    &rules_index::ADD_UNIQUE_WITHOUT_INDEX,
    &rules_index::ADD_EXCLUSION,
    &rules_alter::ADD_COLUMN_VOLATILE_DEFAULT,
    &rules_alter::ADD_COLUMN_SERIAL_OR_IDENTITY,
    &rules_alter::ADD_COLUMN_GENERATED_STORED,
    &rules_alter::ADD_COLUMN_REQUIRED,
    &rules_alter::ALTER_COLUMN_TYPE,
    &rules_alter::SET_NOT_NULL,
    &rules_alter::ADD_FOREIGN_KEY,
    &rules_alter::ADD_CHECK,
    &rules_alter::SET_LOGGED,
    &rules_alter::SET_TABLESPACE,
    &rules_misc::VACUUM_FULL,
    &rules_misc::VACUUM_IN_TRANSACTION,
    &rules_misc::CLUSTER,
    &rules_misc::REFRESH_MATVIEW,
    &rules_misc::LOCK_TABLE,
    &rules_misc::LOCK_TIMEOUT_DISABLED,
    &rules_misc::NON_IDEMPOTENT,
    &rules_misc::IDENTIFIER_TOO_LONG,
    &rules_destructive::DROP_TABLE,
    &rules_destructive::DROP_COLUMN,
    &rules_destructive::DROP_NOT_NULL,
    &rules_destructive::DROP_DATABASE,
    &rules_destructive::DROP_CASCADE,
    &rules_destructive::RENAME_TABLE,
    &rules_destructive::RENAME_COLUMN,
    &rules_destructive::TRUNCATE_CASCADE,
    &rules_transaction::TRANSACTION_CONTROL,
    &rules_transaction::LOCK_HELD,
    &rules_transaction::ENUM_ADD_VALUE,
    &rules_types::PREFER_BIGINT_PK,
    &rules_types::PREFER_IDENTITY,
    &rules_types::PREFER_TIMESTAMPTZ,
    &rules_types::PREFER_TEXT,
    &rules_types::PREFER_TEXT_OVER_CHAR,
    &SYNTAX_ERROR,
    &EXEMPTION_WITHOUT_REASON,
];

pub static SYNTAX_ERROR: Rule = Rule {
    id: "syntax-error",
    severity: Severity::Error,
    impact: Impact::Statement,
    why: "PostgreSQL's parser rejects the file; the migration would fail at this statement",
    fix: "fix the SQL (the parser is PostgreSQL's own)",
};

pub static EXEMPTION_WITHOUT_REASON: Rule = Rule {
    id: "exemption-without-reason",
    severity: Severity::Error,
    impact: Impact::Statement,
    why: "an exemption must say why the statement is safe, or name a rule that exists, so reviewers can judge it",
    fix: "write `-- pgwarden:allow RULE because WHY` on the line before the statement, with a rule id from `pgwarden migrate lint --rules`",
};

pub fn rule(id: &str) -> Option<&'static Rule> {
    RULES.iter().copied().find(|r| r.id == id)
}

/// `[lint]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LintConfig {
    /// Above this size (bytes, from pg_class: no scan) a rewrite or long
    /// lock on a table is an error; below it (and not empty) a warning.
    pub large_table_bytes: u64,
    /// Rule id = "error" | "warning" | "info" | "off".
    #[serde(deserialize_with = "severities")]
    pub severity: BTreeMap<String, Level>,
}

impl Default for LintConfig {
    fn default() -> Self {
        Self {
            large_table_bytes: 100 * 1024 * 1024,
            severity: BTreeMap::new(),
        }
    }
}

/// A configured severity, or `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Off,
    Info,
    Warning,
    Error,
}

impl Level {
    fn severity(self) -> Option<Severity> {
        match self {
            Level::Off => None,
            Level::Info => Some(Severity::Info),
            Level::Warning => Some(Severity::Warning),
            Level::Error => Some(Severity::Error),
        }
    }
}

fn severities<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Level>, D::Error> {
    let map = BTreeMap::<String, Level>::deserialize(d)?;
    for id in map.keys() {
        if rule(id).is_none() {
            return Err(serde::de::Error::custom(unknown_rule(id)));
        }
    }
    Ok(map)
}

/// "unknown rule `x` (did you mean `y`?); …" — one wording for config, `--allow` and exemptions.
pub fn unknown_rule(id: &str) -> String {
    let ids: Vec<String> = RULES.iter().map(|r| r.id.to_string()).collect();
    let hint = crate::config::closest(id, &ids)
        .map(|c| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default();
    format!("unknown lint rule `{id}`{hint}; `pgwarden migrate lint --rules` lists them")
}

/// What a rule reports about one statement, before sizes and exemptions.
#[derive(Clone, Debug)]
pub struct Hit {
    pub rule: &'static Rule,
    /// The table (or index) it is about: `name` or `schema.name`.
    pub table: Option<String>,
    /// What the statement does, e.g. `CREATE INDEX on users`.
    pub what: String,
}

impl Hit {
    pub fn new(rule: &'static Rule, table: Option<String>, what: impl Into<String>) -> Self {
        Hit {
            rule,
            table,
            what: what.into(),
        }
    }
}

/// A raw finding: a hit at its place, with the statement's exemptions.
#[derive(Clone, Debug)]
pub struct RawFinding {
    pub hit: Hit,
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub statement: String,
    /// Rules exempted on this statement (with a reason).
    allowed: HashSet<String>,
}

/// A table's size in the target's catalog.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TableSize {
    pub bytes: i64,
    /// pg_class.reltuples (an estimate; -1: never analysed).
    pub rows: f64,
}

/// What lint reports.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub rule: &'static str,
    pub severity: Severity,
    /// What the statement does and what that means in production.
    pub message: String,
    /// The safe way.
    pub advice: &'static str,
    pub statement: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table_bytes: Option<i64>,
}

/// One file to lint: what `up` would send.
pub struct Input<'a> {
    pub path: &'a Path,
    pub sql: &'a str,
    pub transactional: bool,
    pub statements: &'a [Statement],
    pub syntax_error: Option<&'a split::SyntaxError>,
}

impl<'a> From<&'a Script> for Input<'a> {
    fn from(s: &'a Script) -> Self {
        Input {
            path: &s.path,
            sql: &s.sql,
            transactional: s.transactional,
            statements: &s.statements,
            syntax_error: s.syntax_error.as_ref(),
        }
    }
}

/// What the set did so far (rules and the engine read it).
#[derive(Debug, Default)]
pub struct State {
    /// Tables, indexes and views created earlier in the set.
    pub created: HashSet<String>,
    /// Tables with a constraint validated earlier in the set.
    pub validated: HashSet<String>,
}

/// One statement as a rule sees it.
pub struct Stmt<'a> {
    pub node: &'a NodeEnum,
    pub transactional: bool,
    /// Nothing but more `ALTER TYPE … ADD VALUE`s follows it in its file
    /// (none of which can use a value added before it).
    pub only_enum_values_follow: bool,
    /// Its source text (the parse tree has identifiers already truncated).
    pub text: &'a str,
}

fn adds_enum_value(node: &NodeEnum) -> bool {
    matches!(node, NodeEnum::AlterEnumStmt(e) if !e.new_val.is_empty())
}

/// Every rule on every statement of the set, in order.
pub fn analyze(inputs: &[Input]) -> Vec<RawFinding> {
    let mut state = State::default();
    let mut out = Vec::new();
    for input in inputs {
        analyze_file(input, &mut state, &mut out);
    }
    out
}

fn analyze_file(input: &Input, state: &mut State, out: &mut Vec<RawFinding>) {
    if let Some(error) = input.syntax_error {
        let statement = input
            .statements
            .iter()
            .find(|s| s.code_offset >= error.offset)
            .map(|s| s.code().to_string())
            .unwrap_or_default();
        out.push(at(
            input,
            error.offset,
            statement,
            HashSet::new(),
            Hit::new(&SYNTAX_ERROR, None, error.message.clone()),
        ));
    }
    // The table a lock-heavy statement holds until the transaction ends.
    let mut holding: Option<(String, usize)> = None;
    for (index, statement) in input.statements.iter().enumerate() {
        let Some(node) = &statement.node else {
            continue;
        };
        let (allowed, bad) = exemptions(statement.leading_comments());
        let stmt = Stmt {
            node,
            transactional: input.transactional,
            only_enum_values_follow: input.statements[index + 1..]
                .iter()
                .all(|s| s.node.as_ref().is_none_or(adds_enum_value)),
            text: statement.code(),
        };
        let mut hits = Vec::new();
        if let Some(why) = bad {
            hits.push(Hit::new(&EXEMPTION_WITHOUT_REASON, None, why));
        }
        if let Some((table, line)) = &holding {
            hits.push(Hit::new(
                &rules_transaction::LOCK_HELD,
                Some(table.clone()),
                format!("runs while the lock on {table} taken at line {line} is still held"),
            ));
            holding = None;
        }
        rules_index::check(&stmt, state, &mut hits);
        rules_alter::check(&stmt, state, &mut hits);
        rules_destructive::check(&stmt, state, &mut hits);
        rules_misc::check(&stmt, state, &mut hits);
        rules_transaction::check(&stmt, state, &mut hits);
        rules_types::check(&stmt, state, &mut hits);
        let line = split::line_of(input.sql, statement.code_offset);
        // An exempted statement was judged safe here, its lock included.
        if input.transactional && allowed.is_empty() {
            holding = rules_transaction::lock_taken(node, state)
                .map(|t| (t, line))
                .or(holding.take());
        }
        for hit in hits {
            let about_new = hit
                .table
                .as_ref()
                .is_some_and(|t| state.created.contains(t));
            if about_new && hit.rule.impact != Impact::Statement {
                continue;
            }
            out.push(at(
                input,
                statement.code_offset,
                statement.code().to_string(),
                allowed.clone(),
                hit,
            ));
        }
        remember(node, state);
    }
}

fn at(
    input: &Input,
    offset: usize,
    statement: String,
    allowed: HashSet<String>,
    hit: Hit,
) -> RawFinding {
    RawFinding {
        hit,
        file: input.path.to_path_buf(),
        line: split::line_of(input.sql, offset),
        column: split::column_of(input.sql, offset),
        statement,
        allowed,
    }
}

/// Record what a statement creates or validates, for the statements after it.
fn remember(node: &NodeEnum, state: &mut State) {
    match node {
        NodeEnum::CreateStmt(s) => state.created.extend(s.relation.as_ref().map(ast::table)),
        NodeEnum::CreateTableAsStmt(s) => state
            .created
            .extend(s.into.as_ref().and_then(|i| i.rel.as_ref()).map(ast::table)),
        NodeEnum::IndexStmt(s) if !s.idxname.is_empty() => {
            let schema = s
                .relation
                .as_ref()
                .map(|r| r.schemaname.as_str())
                .unwrap_or("");
            state.created.insert(ast::qualified(schema, &s.idxname));
        }
        NodeEnum::ViewStmt(s) => state.created.extend(s.view.as_ref().map(ast::table)),
        NodeEnum::RenameStmt(s) => {
            if let Some(old) = s.relation.as_ref().map(ast::table)
                && state.created.contains(&old)
                && s.subname.is_empty()
            {
                let schema = s
                    .relation
                    .as_ref()
                    .map(|r| r.schemaname.as_str())
                    .unwrap_or("");
                state.created.insert(ast::qualified(schema, &s.newname));
            }
        }
        NodeEnum::AlterTableStmt(s) => {
            let validates = ast::commands(s).any(|c| {
                c.subtype == ast::at(pg_query::protobuf::AlterTableType::AtValidateConstraint)
            });
            if validates {
                state.validated.extend(s.relation.as_ref().map(ast::table));
            }
        }
        _ => {}
    }
}

/// `-- pgwarden:allow RULE[, RULE] because WHY` lines in a statement's
/// leading comments: the rules allowed, and what is wrong with a bad one.
pub fn exemptions(comments: &str) -> (HashSet<String>, Option<String>) {
    let mut allowed = HashSet::new();
    let mut bad = None;
    for line in comments.lines() {
        let Some(rest) = line.split_once("pgwarden:allow").map(|(_, r)| r) else {
            continue;
        };
        let (ids, reason) = match rest.split_once(" because ") {
            Some((ids, reason)) => (ids, reason.trim()),
            None => (rest, ""),
        };
        let ids: Vec<&str> = ids
            .split([',', ' '])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if reason.is_empty() || ids.is_empty() {
            bad.get_or_insert(format!("`{}` gives no reason (write `pgwarden:allow RULE because WHY`); nothing is exempted", line.trim()));
            continue;
        }
        for id in ids {
            if rule(id).is_some() {
                allowed.insert(id.to_string());
            } else {
                bad.get_or_insert(format!("`{}`: {}", line.trim(), unknown_rule(id)));
            }
        }
    }
    (allowed, bad)
}

/// Sizes by table name; None: linting without a target (static verdict).
pub type Sizes = HashMap<String, TableSize>;

/// Apply sizes, exemptions, `--allow` and the configured severities.
pub fn resolve(
    raw: Vec<RawFinding>,
    sizes: Option<&Sizes>,
    config: &LintConfig,
    allow: &[String],
) -> Vec<Finding> {
    raw.into_iter()
        .filter_map(|f| resolve_one(f, sizes, config, allow))
        .collect()
}

fn resolve_one(
    f: RawFinding,
    sizes: Option<&Sizes>,
    config: &LintConfig,
    allow: &[String],
) -> Option<Finding> {
    let rule = f.hit.rule;
    if allow.iter().any(|a| a == rule.id) || f.allowed.contains(rule.id) {
        return None;
    }
    let mut severity = match config.severity.get(rule.id) {
        Some(level) => level.severity()?,
        None => rule.severity,
    };
    let size = f
        .hit
        .table
        .as_ref()
        .and_then(|t| sizes.and_then(|s| s.get(t)).copied());
    let mut note = String::new();
    if let (Some(table), Some(size)) = (&f.hit.table, size) {
        let big = format!(
            " ({table} is {}, {}, in the target)",
            human_bytes(size.bytes),
            rows(size.rows)
        );
        match rule.impact {
            Impact::Statement => {}
            _ if size.bytes == 0 => return None,
            Impact::Sized if size.bytes as u64 >= config.large_table_bytes => {
                severity = Severity::Error;
                note = big;
            }
            Impact::Sized => {
                severity = severity.min(Severity::Warning);
                note = format!(
                    " ({table} is only {} in the target, below lint.large_table_bytes = {}: brief today)",
                    human_bytes(size.bytes),
                    human_bytes(config.large_table_bytes as i64)
                );
            }
            Impact::FailsWithRows | Impact::ExistingTable => note = big,
        }
    } else if sizes.is_none()
        && matches!(rule.impact, Impact::Sized | Impact::FailsWithRows)
        && f.hit.table.is_some()
    {
        note = " (no target: presumed to be a large production table)".into();
    }
    let message = format!("{}{note}: {}", f.hit.what, rule.why);
    Some(Finding {
        file: f.file,
        line: f.line,
        column: f.column,
        rule: rule.id,
        severity,
        message,
        advice: rule.fix,
        statement: f.statement,
        table: f.hit.table,
        table_bytes: size.map(|s| s.bytes),
    })
}

fn rows(rows: f64) -> String {
    if rows < 0.0 {
        "rows not counted yet".into()
    } else {
        format!("~{} rows", rows.round() as i64)
    }
}

/// Sizes as everywhere in pgwarden (IEC units).
pub fn human_bytes(bytes: i64) -> String {
    crate::report::human_bytes(bytes as f64)
}

/// The tables findings are about (to look up in the target).
pub fn tables(raw: &[RawFinding]) -> Vec<String> {
    let mut tables: Vec<String> = raw.iter().filter_map(|f| f.hit.table.clone()).collect();
    tables.sort();
    tables.dedup();
    tables
}

#[cfg(test)]
mod tests;
