//! Custom checks: `[[checks.custom]]` entries, each one SQL query whose
//! answer becomes gauges and a check status, as postgres_exporter's
//! `queries.yaml` did.
//!
//! A custom check is a [`Check`] like the built-in ones: its [`Spec`] (name
//! `custom_<name>`, one gauge `custom_<name>_<column>` per value column,
//! labelled by the label columns) is built from its entry when the
//! [`super::Checker`] is, and dropped with it on a config reload. It runs
//! through the same `run_one` (panics caught, an outer time bound), on the
//! same read-only session with `statement_timeout`/`lock_timeout`, with its
//! own `timeout` (at most `checks.timeout`, so the cycle's deadline still
//! covers it) and its own `interval`.
//!
//! Answers are read by column name. A label column that is NULL becomes the
//! empty string; a value column that is NULL, or a column of the wrong type,
//! makes the check `error`, naming the column. Rows beyond `series_limit`
//! and rows repeating an earlier row's labels are dropped with a warning,
//! so a runaway query cannot flood Prometheus or break the exposition.

use std::collections::HashSet;

use futures::future::BoxFuture;
use futures::{FutureExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Column, Row};

use super::metric::{List, Metric, Scope, Spec, Text};
use super::rows::{self, Label, Number};
use super::session::describe_query_error;
use super::{Check, ChecksConfig, Context, Outcome, at_least, below};
use crate::config::{Bounded, Duration};
use crate::report::Status;

/// One `[[checks.custom]]` entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomCheckConfig {
    /// `[a-z][a-z0-9_]*`; the check is `custom_<name>`.
    pub name: String,
    /// Help text of its gauges (the column is appended).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub help: String,
    /// One SELECT, run in a read-only transaction.
    pub sql: String,
    /// Columns whose values label the series.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Numeric columns, one gauge each.
    pub values: Vec<String>,
    /// Run it this often (at least `checks.interval`); every cycle if unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    /// Its statement_timeout and lock_timeout (at most `checks.timeout`,
    /// the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// At most this many rows (label sets) are exported.
    #[serde(default = "default_series_limit")]
    pub series_limit: Bounded<1, 10_000>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<CustomThreshold>,
    /// For a `discover` target: run in every discovered database (series
    /// labelled `database`) instead of once per server, in the URL's database.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub per_database: bool,
}

fn default_series_limit() -> Bounded<1, 10_000> {
    Bounded::new(100)
}

/// Warning and critical limits on one value column, judged on every row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomThreshold {
    pub column: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical: Option<f64>,
    #[serde(default)]
    pub direction: Direction,
}

/// Which side of a limit is bad.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// `value >= limit` (a queue's length).
    #[default]
    Above,
    /// `value < limit` (rows processed in the last hour).
    Below,
}

impl CustomCheckConfig {
    /// Its name as a check: the `check` label, `health --check`.
    pub fn check_name(&self) -> String {
        format!("custom_{}", self.name)
    }

    /// A value column's gauge, without the `pgwarden_` prefix.
    fn metric_name(&self, column: &str) -> String {
        format!("custom_{}_{column}", self.name)
    }

    fn help_for(&self, column: &str) -> String {
        match self.help.trim() {
            "" => format!("Custom check {}: column {column} of its query.", self.name),
            help => format!("{help} ({column})"),
        }
    }
}

/// The custom checks of `config`, in config order, after the built-in ones.
pub(super) fn checks(config: &ChecksConfig) -> Vec<Box<dyn Check>> {
    config
        .custom
        .iter()
        .map(|entry| Box::new(Custom::new(entry.clone())) as Box<dyn Check>)
        .collect()
}

/// The custom check named `check`'s own interval, if it has one.
pub(super) fn interval_of(config: &ChecksConfig, check: &str) -> Option<Duration> {
    config
        .custom
        .iter()
        .find(|entry| entry.check_name() == check)
        .and_then(|entry| entry.interval)
}

struct Custom {
    entry: CustomCheckConfig,
    spec: Spec,
}

impl Custom {
    fn new(entry: CustomCheckConfig) -> Self {
        let metrics = entry.values.iter().map(|column| {
            Box::new(Metric::owned_gauge(
                entry.metric_name(column),
                entry.help_for(column),
                entry.labels.clone(),
                match entry.per_database {
                    true => Scope::Database,
                    false => Scope::Server,
                },
            ))
        });
        let spec = Spec {
            name: Text::Owned(entry.check_name()),
            own_interval: true,
            metrics: List::Owned(metrics.collect()),
        };
        Self { entry, spec }
    }
}

impl Check for Custom {
    fn spec(&self) -> &Spec {
        &self.spec
    }

    fn queries(&self, _: &ChecksConfig) -> Vec<String> {
        vec![self.entry.sql.clone()]
    }

    fn run<'a>(&'a mut self, ctx: &'a Context<'_>) -> BoxFuture<'a, Result<Outcome, String>> {
        async move {
            let timeout = self.entry.timeout.unwrap_or(ctx.config.timeout);
            let session = ctx.session_timed(timeout.get()).await?;
            let (samples, dropped) = self.fetch(&session).await?;
            session.finish().await;
            Ok(evaluate(&self.entry, &self.spec, &samples, dropped))
        }
        .boxed()
    }
}

/// One row of the answer: its label values and its numbers, in the
/// entry's column order.
#[derive(Debug, PartialEq)]
struct Sample {
    labels: Vec<String>,
    values: Vec<f64>,
}

/// Where the entry's columns sit in the answer.
struct Layout {
    labels: Vec<usize>,
    values: Vec<usize>,
}

impl Custom {
    /// The first `series_limit` rows, read; and how many more there were
    /// (counted, never decoded or held, so a runaway query costs no memory).
    async fn fetch(&self, session: &super::Session) -> Result<(Vec<Sample>, usize), String> {
        let client = session.client();
        let statement = client
            .prepare(&self.entry.sql)
            .await
            .map_err(|e| describe_query_error(&e))?;
        if !statement.params().is_empty() {
            return Err("the SQL takes parameters ($1 …); a custom check's SQL cannot".into());
        }
        let layout = self.layout(statement.columns())?;
        let rows = client
            .query_raw(&statement, std::iter::empty::<&(dyn ToSql + Sync)>())
            .await
            .map_err(|e| describe_query_error(&e))?;
        futures::pin_mut!(rows);
        let limit = self.entry.series_limit.get() as usize;
        let (mut samples, mut dropped) = (Vec::new(), 0);
        while let Some(row) = rows
            .try_next()
            .await
            .map_err(|e| describe_query_error(&e))?
        {
            if samples.len() < limit {
                samples.push(self.read(&layout, &row, samples.len() + 1)?);
            } else {
                dropped += 1;
            }
        }
        Ok((samples, dropped))
    }

    /// Every declared column, found once by name and of a usable type.
    fn layout(&self, columns: &[Column]) -> Result<Layout, String> {
        let find = |kind, names: &[String], accepts| {
            (names.iter())
                .map(|name| column_index(columns, kind, name, accepts))
                .collect::<Result<_, _>>()
        };
        Ok(Layout {
            labels: find("label", &self.entry.labels, Label::accepts_type)?,
            values: find("value", &self.entry.values, Number::accepts_type)?,
        })
    }

    /// Row `number` (from 1): a NULL label is the empty string, a NULL
    /// value an error naming the column.
    fn read(&self, layout: &Layout, row: &Row, number: usize) -> Result<Sample, String> {
        let labels = (layout.labels.iter())
            .map(|&i| Ok(rows::opt::<Label>(row, i)?.map(|l| l.0).unwrap_or_default()))
            .collect::<Result<Vec<_>, String>>()?;
        let values = (layout.values.iter().zip(&self.entry.values))
            .map(|(&i, column)| {
                rows::opt::<Number>(row, i)?.map(|n| n.0).ok_or_else(|| {
                    format!(
                        "value column `{column}` is NULL in row {number}{}: \
                         coalesce it in the SQL (coalesce({column}, 0)) or leave the row out",
                        describe_labels(&self.entry.labels, &labels)
                    )
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Sample { labels, values })
    }
}

/// Where the `kind` ("label" or "value") column `name` is in the answer;
/// missing, repeated or of a type `accepts` refuses is an error saying what
/// to change in the SQL.
fn column_index(
    columns: &[Column],
    kind: &str,
    name: &str,
    accepts: fn(&Type) -> bool,
) -> Result<usize, String> {
    let found: Vec<_> = (columns.iter().enumerate())
        .filter(|(_, c)| c.name() == name)
        .collect();
    match found.as_slice() {
        [(index, column)] if accepts(column.type_()) => Ok(*index),
        [(_, column)] => Err(format!(
            "{kind} column `{name}` is of type {}: cast it in the SQL ({name}::{})",
            column.type_(),
            if kind == "label" { "text" } else { "float8" }
        )),
        [] => {
            let names: Vec<&str> = columns.iter().map(Column::name).collect();
            Err(format!(
                "{kind} column `{name}` is not in the answer, whose columns are: {}; \
                 name it in the SQL (… AS {name})",
                names.join(", ")
            ))
        }
        _ => Err(format!(
            "the answer has {} columns named `{name}`",
            found.len()
        )),
    }
}

/// ` (state="failed")`, or nothing for a check without labels.
fn describe_labels(names: &[String], values: &[String]) -> String {
    if names.is_empty() {
        return String::new();
    }
    let pairs: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(n, v)| format!("{n}={v:?}"))
        .collect();
    format!(" ({})", pairs.join(", "))
}

/// Gauges, the series limit and the thresholds: the verdict on an answer.
fn evaluate(entry: &CustomCheckConfig, spec: &Spec, samples: &[Sample], dropped: usize) -> Outcome {
    let mut out = Outcome::new(headline(entry, samples));
    let mut seen = HashSet::new();
    let mut repeated = 0;
    let mut kept = Vec::new();
    for sample in samples {
        if !seen.insert(&sample.labels) {
            repeated += 1;
            continue;
        }
        let labels: Vec<&str> = sample.labels.iter().map(String::as_str).collect();
        for (metric, value) in spec.metrics.iter().zip(&sample.values) {
            out.set(metric, &labels, *value);
        }
        kept.push(sample);
    }
    if repeated > 0 {
        out.flag(
            Status::Warning,
            format!(
                "{repeated} row(s) repeat an earlier row's labels and were dropped; \
                 make the label columns unique (GROUP BY them)"
            ),
        );
    }
    if dropped > 0 {
        out.flag(
            Status::Warning,
            format!(
                "{dropped} row(s) beyond series_limit = {} were dropped; narrow the query \
                 (ORDER BY puts the rows that matter first) or raise series_limit",
                entry.series_limit.get()
            ),
        );
    }
    for threshold in &entry.thresholds {
        judge(entry, threshold, &kept, &mut out);
    }
    out.detail("rows", samples.len() + dropped);
    out.detail("rows_dropped", dropped + repeated);
    out
}

fn headline(entry: &CustomCheckConfig, samples: &[Sample]) -> String {
    match samples {
        [only] if entry.labels.is_empty() => (entry.values.iter().zip(&only.values))
            .map(|(column, value)| format!("{column} {value}"))
            .collect::<Vec<_>>()
            .join(", "),
        _ => format!("{} row(s)", samples.len()),
    }
}

/// Flag the worst row of `threshold`'s column, saying how many cross it.
fn judge(
    entry: &CustomCheckConfig,
    threshold: &CustomThreshold,
    rows: &[&Sample],
    out: &mut Outcome,
) {
    let Some(column) = entry.values.iter().position(|v| *v == threshold.column) else {
        return; // validation refuses it
    };
    let (status_of, sign): (Box<dyn Fn(f64) -> Status>, &str) = match threshold.direction {
        Direction::Above => {
            let limit = |l: Option<f64>| l.unwrap_or(f64::INFINITY);
            let (w, c) = (limit(threshold.warning), limit(threshold.critical));
            (Box::new(move |v| at_least(v, w, c)), ">=")
        }
        Direction::Below => {
            let limit = |l: Option<f64>| l.unwrap_or(f64::NEG_INFINITY);
            let (w, c) = (limit(threshold.warning), limit(threshold.critical));
            (Box::new(move |v| below(v, w, c)), "<")
        }
    };
    let judged: Vec<(Status, &Sample)> = rows
        .iter()
        .map(|s| (status_of(s.values[column]), *s))
        .filter(|(status, _)| *status != Status::Ok)
        .collect();
    let Some((status, worst)) = judged.iter().max_by(|a, b| {
        let (x, y) = (a.1.values[column], b.1.values[column]);
        let ordering = x.total_cmp(&y);
        match threshold.direction {
            Direction::Above => ordering,
            Direction::Below => ordering.reverse(),
        }
    }) else {
        return;
    };
    let limit = match status {
        Status::Critical => threshold.critical,
        _ => threshold.warning,
    };
    let more = match judged.len() {
        1 => String::new(),
        n => format!(" ({n} rows cross a threshold)"),
    };
    out.flag(
        *status,
        format!(
            "{} {}{} {sign} {}{more}",
            threshold.column,
            worst.values[column],
            describe_labels(&entry.labels, &worst.labels),
            limit.unwrap_or_default()
        ),
    );
}

/// Refuse at load what would fail or mislead at run time; each message
/// names the entry's key (`checks.custom[2].labels`) and its name.
pub(super) fn validate(config: &ChecksConfig) -> Result<(), String> {
    let mut names = HashSet::new();
    let mut metrics = HashSet::new();
    for (index, entry) in config.custom.iter().enumerate() {
        let key = |field: &str| format!("checks.custom[{index}].{field} (check `{}`)", entry.name);
        validate_entry(entry).map_err(|(field, why)| format!("{}: {why}", key(&field)))?;
        if !names.insert(&entry.name) {
            return Err(format!(
                "{}: the name is used twice; give each [[checks.custom]] entry its own",
                key("name")
            ));
        }
        for column in &entry.values {
            if !metrics.insert(entry.metric_name(column)) {
                return Err(format!(
                    "{}: pgwarden_{} is also another entry's gauge; rename the check or the column",
                    key("values"),
                    entry.metric_name(column)
                ));
            }
        }
    }
    Ok(())
}

/// The first problem of one entry: (its field, why).
fn validate_entry(entry: &CustomCheckConfig) -> Result<(), (String, String)> {
    let field = |name: &str| name.to_string();
    if !is_identifier(&entry.name) {
        return Err((
            field("name"),
            format!(
                "{:?} is not a name: write [a-z][a-z0-9_]*, e.g. \"job_queue\"",
                entry.name
            ),
        ));
    }
    // `custom_locks` could not clash, but would be read as the locks check.
    if super::CHECK_NAMES.contains(&entry.name.as_str()) {
        return Err((
            field("name"),
            format!("`{}` is a built-in check's name; pick another", entry.name),
        ));
    }
    sql_is_one_select(&entry.sql).map_err(|why| (field("sql"), why))?;
    columns(&entry.labels, "labels")?;
    if entry.values.is_empty() {
        return Err((
            field("values"),
            "no value column: name at least one numeric column".into(),
        ));
    }
    columns(&entry.values, "values")?;
    if let Some(both) = entry.labels.iter().find(|l| entry.values.contains(l)) {
        return Err((
            field("labels"),
            format!("`{both}` is both a label and a value column"),
        ));
    }
    if entry.labels.iter().any(|l| l == "target") {
        return Err((
            field("labels"),
            "`target` is the label pgwarden adds to every series; alias the column (… AS target_name)".into(),
        ));
    }
    entry
        .thresholds
        .iter()
        .enumerate()
        .try_for_each(|(i, t)| threshold(entry, t).map_err(|why| (format!("thresholds[{i}]"), why)))
}

/// Label and value column names: Prometheus label names and metric name
/// parts, lower case as PostgreSQL folds unquoted names.
fn columns(names: &[String], field: &str) -> Result<(), (String, String)> {
    let mut seen = HashSet::new();
    for name in names {
        if !is_identifier(name.trim_start_matches('_')) || name.starts_with("__") {
            return Err((
                field.to_string(),
                format!(
                    "{name:?} is not a column name pgwarden can export: write [a-z_][a-z0-9_]* and alias the column in the SQL"
                ),
            ));
        }
        if !seen.insert(name) {
            return Err((field.to_string(), format!("`{name}` is listed twice")));
        }
    }
    Ok(())
}

fn is_identifier(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Exactly one SELECT (VALUES, TABLE and WITH … SELECT are SELECTs). The
/// read-only transaction is what stops writes, including from functions
/// and data-modifying WITH; this only turns a plain mistake into a load error.
fn sql_is_one_select(sql: &str) -> Result<(), String> {
    if sql.trim().is_empty() {
        return Err("the SQL is empty: write one SELECT".into());
    }
    let parsed = pg_query::parse(sql, 0).map_err(|e| format!("{e}"))?;
    match parsed.protobuf.stmts.as_slice() {
        [one] => match one.stmt.as_ref().and_then(|s| s.node.as_ref()) {
            Some(pg_query::NodeEnum::SelectStmt(select)) if select.into_clause.is_some() => {
                Err("SELECT … INTO creates a table: a custom check only reads".into())
            }
            Some(pg_query::NodeEnum::SelectStmt(_)) => Ok(()),
            _ => Err(
                "not a SELECT: a custom check only reads (it runs in a read-only transaction)"
                    .into(),
            ),
        },
        [] => Err("the SQL holds no statement: write one SELECT".into()),
        more => Err(format!(
            "{} statements: write exactly one SELECT",
            more.len()
        )),
    }
}

fn threshold(entry: &CustomCheckConfig, t: &CustomThreshold) -> Result<(), String> {
    if !entry.values.contains(&t.column) {
        return Err(format!(
            "column `{}` is not among the values ({})",
            t.column,
            entry.values.join(", ")
        ));
    }
    let (warning, critical) = match (t.warning, t.critical) {
        (None, None) => return Err("set warning, critical or both".into()),
        (w, c) if w.is_some_and(|v| !v.is_finite()) || c.is_some_and(|v| !v.is_finite()) => {
            return Err("limits must be finite numbers".into());
        }
        (Some(w), Some(c)) => (w, c),
        _ => return Ok(()),
    };
    let ordered = match t.direction {
        Direction::Above => warning <= critical,
        Direction::Below => warning >= critical,
    };
    if !ordered {
        return Err(format!(
            "warning = {warning} and critical = {critical}: with direction = \"{}\" the warning \
             limit must come first (swap them, or set direction)",
            match t.direction {
                Direction::Above => "above",
                Direction::Below => "below",
            }
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(toml_text: &str) -> CustomCheckConfig {
        toml::from_str(toml_text).unwrap()
    }

    fn queue() -> CustomCheckConfig {
        entry(
            "name = \"queue\"\nsql = \"SELECT state, count(*) AS jobs FROM jobs GROUP BY state\"\n\
             labels = [\"state\"]\nvalues = [\"jobs\"]\nseries_limit = 3\n\
             thresholds = [{ column = \"jobs\", warning = 10, critical = 100 }]",
        )
    }

    fn sample(state: &str, jobs: f64) -> Sample {
        Sample {
            labels: vec![state.into()],
            values: vec![jobs],
        }
    }

    fn run(entry: &CustomCheckConfig, samples: &[Sample], dropped: usize) -> Outcome {
        evaluate(entry, &Custom::new(entry.clone()).spec, samples, dropped)
    }

    #[test]
    fn each_row_is_a_labelled_gauge_and_thresholds_judge_the_worst() {
        let entry = queue();
        let out = run(&entry, &[sample("new", 5.0), sample("failed", 12.0)], 0);
        assert_eq!(out.status(), Status::Warning, "{out:?}");
        let m = &out.measurements[1];
        assert_eq!(m.metric, "custom_queue_jobs");
        assert_eq!(m.labels, vec![("state".into(), "failed".into())]);
        assert_eq!(m.value, 12.0);
        let out = run(&entry, &[sample("new", 150.0), sample("failed", 12.0)], 0);
        assert_eq!(out.status(), Status::Critical);
        let summary = out.problems.join("; ");
        assert!(
            summary.contains("jobs 150 (state=\"new\") >= 100 (2 rows"),
            "{summary}"
        );
    }

    #[test]
    fn below_thresholds_flag_low_values() {
        let mut entry = queue();
        entry.thresholds[0] = CustomThreshold {
            column: "jobs".into(),
            warning: Some(10.0),
            critical: None,
            direction: Direction::Below,
        };
        assert_eq!(
            run(&entry, &[sample("done", 9.0)], 0).status(),
            Status::Warning
        );
        assert_eq!(run(&entry, &[sample("done", 10.0)], 0).status(), Status::Ok);
    }

    #[test]
    fn dropped_and_repeated_rows_warn_and_export_nothing() {
        let entry = queue();
        let out = run(&entry, &[sample("a", 1.0), sample("a", 2.0)], 4);
        assert_eq!(out.status(), Status::Warning);
        assert_eq!(out.measurements.len(), 1, "{out:?}");
        assert_eq!(out.details["rows_dropped"], 5);
        let summary = out.problems.join("; ");
        assert!(
            summary.contains("4 row(s) beyond series_limit = 3"),
            "{summary}"
        );
    }

    #[test]
    fn entries_are_validated_naming_key_and_entry() {
        let refused = |edit: &dyn Fn(&mut CustomCheckConfig), says: &str| {
            let mut config = ChecksConfig::default();
            let mut bad = queue();
            edit(&mut bad);
            config.custom = vec![queue(), bad];
            config.custom[0].name = "first".into();
            let err = validate(&config).unwrap_err();
            assert!(err.contains(says), "expected {says:?} in: {err}");
        };
        refused(
            &|e| e.name = "Queue".into(),
            "checks.custom[1].name (check `Queue`)",
        );
        refused(&|e| e.name = "locks".into(), "built-in");
        refused(&|e| e.sql = " ".into(), "checks.custom[1].sql");
        refused(&|e| e.sql = "SELECT 1; SELECT 2".into(), "2 statements");
        refused(
            &|e| e.sql = "INSERT INTO t VALUES (1)".into(),
            "not a SELECT",
        );
        refused(&|e| e.sql = "SELEC 1".into(), "syntax error");
        refused(
            &|e| e.sql = "SELECT 1 AS jobs INTO t".into(),
            "creates a table",
        );
        refused(
            &|e| e.labels = vec!["jobs".into()],
            "checks.custom[1].labels",
        );
        refused(&|e| e.labels = vec!["target".into()], "target");
        refused(&|e| e.values.clear(), "checks.custom[1].values");
        refused(&|e| e.values = vec!["Jobs".into()], "\"Jobs\"");
        refused(
            &|e| e.thresholds[0].column = "state".into(),
            "checks.custom[1].thresholds[0] (check `queue`): column `state`",
        );
        refused(
            &|e| e.thresholds[0].warning = Some(1000.0),
            "warning = 1000",
        );
        refused(&|e| e.thresholds[0].critical = Some(f64::NAN), "finite");
        let mut config = ChecksConfig {
            custom: vec![queue(), queue()],
            ..ChecksConfig::default()
        };
        assert!(validate(&config).unwrap_err().contains("used twice"));
        // custom_queue_x + jobs and custom_queue + x_jobs: one gauge name.
        let (mut clash, mut other) = (queue(), queue());
        clash.name = "queue_x".into();
        other.values = vec!["x_jobs".into()];
        other.thresholds.clear();
        config.custom = vec![clash, other];
        let err = validate(&config).unwrap_err();
        assert!(
            err.contains("checks.custom[1].values") && err.contains("pgwarden_custom_queue_x_jobs"),
            "{err}"
        );
        config.custom = vec![queue()];
        validate(&config).unwrap();
    }

    #[test]
    fn entries_print_back_as_they_were_read() {
        let text = "[[checks.custom]]\nname = \"queue\"\nsql = \"SELECT 1 AS n\"\nvalues = [\"n\"]\n\
                    interval = \"1m\"\n[[checks.custom.thresholds]]\ncolumn = \"n\"\ncritical = 2\n";
        let path = std::path::Path::new("pgwarden.toml");
        let config = crate::config::Config::from_toml(text, path).unwrap();
        assert_eq!(config.checks.custom[0].thresholds[0].critical, Some(2.0));
        let again = crate::config::Config::from_toml(&config.to_redacted_toml(), path).unwrap();
        assert_eq!(again.checks.custom, config.checks.custom);
    }

    #[test]
    fn a_custom_interval_spaces_the_checks_runs() {
        let mut entry = queue();
        entry.interval = Some(Duration::secs(60));
        let config = ChecksConfig {
            custom: vec![entry],
            ..ChecksConfig::default()
        };
        let due = |secs, config: &ChecksConfig| {
            super::super::due(std::time::Duration::from_secs(secs), config, "custom_queue")
        };
        assert!(!due(30, &config));
        assert!(due(55, &config), "half a 15 s cycle early is on time");
        let every_cycle = ChecksConfig {
            custom: vec![queue()],
            ..ChecksConfig::default()
        };
        assert!(due(1, &every_cycle));
    }

    #[test]
    fn a_fleet_runs_a_custom_check_once_per_server_unless_per_database() {
        use super::super::Unit;
        let mut entry = queue();
        let spec = |e: &CustomCheckConfig| Custom::new(e.clone()).spec;
        assert!(Unit::Whole.runs(&spec(&entry)));
        assert!(Unit::Server.runs(&spec(&entry)));
        assert!(!Unit::Database.runs(&spec(&entry)));
        entry.per_database = true;
        assert!(Unit::Whole.runs(&spec(&entry)));
        assert!(!Unit::Server.runs(&spec(&entry)));
        assert!(Unit::Database.runs(&spec(&entry)));
    }

    /// What makes `custom_` a namespace of its own.
    #[test]
    fn no_built_in_check_or_metric_starts_with_custom() {
        assert!(
            super::super::CHECK_NAMES
                .iter()
                .all(|c| !c.starts_with("custom_"))
        );
        assert!(super::super::metrics().all(|(_, m)| !m.name.starts_with("custom_")));
    }
}
