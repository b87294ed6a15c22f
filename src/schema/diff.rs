//! The diff: the statements that turn one [`Model`] into another.
//!
//! Three phases. Drops run first, dependents before what they depend on (the
//! `from` side's `pg_depend`, reversed). Then creates and in-place changes,
//! dependencies first (the `to` side's `pg_depend`). Last, types that columns
//! still used while they were being changed.
//!
//! Whatever is dropped takes its dependents with it: they are dropped before
//! and recreated after (a view over a column whose type changes, a default
//! calling a function that is replaced). An enum or domain that cannot be
//! changed in place is renamed aside, created anew, its columns converted
//! through text, and the old one dropped at the end.
//!
//! Changes to existing tables are written to keep production moving (see the
//! README's "Schema as code"): indexes CONCURRENTLY, foreign keys and checks
//! NOT VALID then VALIDATE, SET NOT NULL through a validated check.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::model::{Column, Detail, Kind, Model, Object, identity_clause};

/// One generated statement.
#[derive(Clone, Debug, PartialEq)]
pub struct Statement {
    pub sql: String,
    /// Why this statement can lose data (written above it, and on the terminal).
    pub warning: Option<String>,
    /// Must run outside a transaction (CREATE INDEX CONCURRENTLY).
    pub no_transaction: bool,
}

impl Statement {
    fn plain(sql: impl Into<String>) -> Self {
        Statement {
            sql: sql.into(),
            warning: None,
            no_transaction: false,
        }
    }
}

/// The result of comparing two schemas.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Diff {
    pub statements: Vec<Statement>,
    /// Things worth a look that are not statements (a drop plus an add that
    /// may be a rename).
    pub notes: Vec<String>,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.statements.is_empty()
    }

    pub fn warnings(&self) -> Vec<&str> {
        self.statements
            .iter()
            .filter_map(|s| s.warning.as_deref())
            .collect()
    }

    /// The SQL script: each statement ends with `;`, warnings are comments.
    pub fn render(&self) -> String {
        render(&self.statements)
    }
}

pub fn render(statements: &[Statement]) -> String {
    let mut out = String::new();
    for s in statements {
        if let Some(w) = &s.warning {
            out.push_str(&format!("-- WARNING: {w}\n"));
        }
        out.push_str(s.sql.trim_end());
        out.push_str(";\n");
    }
    out
}

#[derive(Clone, Debug, PartialEq)]
enum Action {
    Create,
    Drop,
    Rebuild,
    /// In place; `cascade`: dependents must be dropped and recreated around it.
    Alter {
        stmts: Vec<Statement>,
        cascade: bool,
    },
    /// A type renamed aside, created anew, its columns converted, the old dropped.
    Swap,
}

impl Action {
    fn dropping(&self) -> bool {
        matches!(self, Action::Drop | Action::Rebuild | Action::Swap)
    }

    fn creating(&self) -> bool {
        matches!(self, Action::Create | Action::Rebuild | Action::Swap)
    }

    fn strength(&self) -> u8 {
        match self {
            Action::Alter { cascade: false, .. } => 1,
            Action::Alter { cascade: true, .. } => 2,
            _ => 3,
        }
    }
}

/// The statements that turn `from` into `to`.
pub fn diff(from: &Model, to: &Model) -> Diff {
    let mut actions = initial_actions(from, to);
    if actions.is_empty() {
        return Diff::default();
    }
    propagate(from, to, &mut actions);
    let mut statements = Vec::new();
    let mut late = Vec::new();
    let from_order = order(from);
    let mut needs: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (a, b) in &from.deps {
        needs.entry(a.as_str()).or_default().push(b.as_str());
    }
    for key in from_order.iter().rev() {
        if let Some(action) = actions.get(key) {
            drop_phase(
                from,
                key,
                action,
                &actions,
                &needs,
                &mut statements,
                &mut late,
            );
        }
    }
    for key in order(to) {
        if let Some(action) = actions.get(&key) {
            statements.extend(create_phase(to, &key, action, &actions));
        }
    }
    for key in from_order.iter().rev() {
        if let Some(sql) = late.iter().find(|(k, _)| k == key) {
            statements.push(Statement::plain(sql.1.clone()));
        }
    }
    if statements.iter().any(|s| {
        s.sql.starts_with("CREATE OR REPLACE FUNCTION")
            || s.sql.starts_with("CREATE OR REPLACE PROCEDURE")
    }) {
        // As pg_dump: a SQL-language body may name a table created further down.
        statements.insert(0, Statement::plain("SET check_function_bodies = false"));
    }
    Diff {
        statements,
        notes: rename_notes(from, to, &actions),
    }
}

fn initial_actions(from: &Model, to: &Model) -> BTreeMap<String, Action> {
    let mut actions = BTreeMap::new();
    for (key, a) in &from.objects {
        match to.objects.get(key) {
            None => {
                actions.insert(key.clone(), Action::Drop);
            }
            Some(b) if a.def != b.def => {
                actions.insert(key.clone(), change(a, b, to));
            }
            Some(_) => {}
        }
    }
    for key in to.objects.keys() {
        if !from.objects.contains_key(key) {
            actions.insert(key.clone(), Action::Create);
        }
    }
    actions
}

/// How an object whose definition differs changes.
fn change(a: &Object, b: &Object, to: &Model) -> Action {
    let alter = |stmts: Vec<Statement>| Action::Alter {
        stmts,
        cascade: false,
    };
    match (&a.detail, &b.detail) {
        (Detail::Column(x), Detail::Column(y)) => column_change(x, y, false, to),
        (Detail::Enum { labels: x, .. }, Detail::Enum { labels: y, .. }) => {
            enum_values(&b.target, x, y).map_or(Action::Swap, alter)
        }
        (Detail::Domain { .. }, Detail::Domain { .. }) => {
            domain_change(a, b).map_or(Action::Swap, alter)
        }
        (Detail::Sequence { .. }, Detail::Sequence { options }) => alter(vec![Statement::plain(
            format!("ALTER {} {options}", b.target),
        )]),
        (Detail::Function { result: x }, Detail::Function { result: y }) if x == y => {
            alter(b.create.iter().map(Statement::plain).collect())
        }
        (
            Detail::Table { shape: x, .. },
            Detail::Table {
                shape: y,
                qname,
                unlogged,
            },
        ) if x == y => {
            let word = if *unlogged { "UNLOGGED" } else { "LOGGED" };
            alter(vec![Statement::plain(format!(
                "ALTER TABLE {qname} SET {word}"
            ))])
        }
        (
            Detail::Acl { entries: x, .. },
            Detail::Acl {
                entries: y, target, ..
            },
        ) => alter(
            acl_changes(target, x, y)
                .into_iter()
                .map(Statement::plain)
                .collect(),
        ),
        _ if matches!(a.kind, Kind::Comment | Kind::Owned) => {
            alter(b.create.iter().map(Statement::plain).collect())
        }
        _ if a.kind == Kind::Extension => alter(vec![Statement::plain(format!(
            "ALTER {} SET SCHEMA {}",
            b.target, b.def
        ))]),
        _ => Action::Rebuild,
    }
}

/// A column in place: its type (converting the data), nullability, identity.
/// A generated column's expression cannot change in place: drop and add.
fn column_change(x: &Column, y: &Column, via_text: bool, to: &Model) -> Action {
    if x.generated != y.generated {
        return Action::Rebuild;
    }
    let t = &y.table;
    let c = &y.name;
    let mut stmts = Vec::new();
    let retype = via_text || x.data_type != y.data_type || x.collation != y.collation;
    if retype {
        let collate = y
            .collation
            .as_ref()
            .map(|c| format!(" COLLATE {c}"))
            .unwrap_or_default();
        let using = if via_text {
            format!("{c}::text::{}", y.data_type)
        } else {
            format!("{c}::{}", y.data_type)
        };
        stmts.push(Statement {
            sql: format!("ALTER TABLE {t} ALTER COLUMN {c} TYPE {}{collate} USING {using}", y.data_type),
            warning: (x.data_type != y.data_type).then(|| {
                format!(
                    "changes column {t}.{c} from {} to {}: rewrites the table, and fails on (or truncates) values the new type cannot hold",
                    x.data_type, y.data_type
                )
            }),
            no_transaction: false,
        });
    }
    if x.identity != y.identity {
        match (x.identity, y.identity) {
            (Some(_), None) => stmts.push(Statement::plain(format!(
                "ALTER TABLE {t} ALTER COLUMN {c} DROP IDENTITY"
            ))),
            (None, Some(i)) => stmts.push(Statement::plain(format!(
                "ALTER TABLE {t} ALTER COLUMN {c} ADD{}",
                identity_clause(i)
            ))),
            (_, Some(i)) => stmts.push(Statement::plain(format!(
                "ALTER TABLE {t} ALTER COLUMN {c} SET GENERATED {}",
                if i == 'a' { "ALWAYS" } else { "BY DEFAULT" }
            ))),
            _ => {}
        }
    }
    if x.not_null != y.not_null {
        if y.not_null {
            stmts.extend(set_not_null(t, c, to));
        } else {
            stmts.push(Statement::plain(format!(
                "ALTER TABLE {t} ALTER COLUMN {c} DROP NOT NULL"
            )));
        }
    }
    Action::Alter {
        stmts,
        cascade: retype,
    }
}

/// SET NOT NULL scans the table under an ACCESS EXCLUSIVE lock; a validated
/// CHECK (c IS NOT NULL) lets it skip the scan, and VALIDATE only takes a
/// SHARE UPDATE EXCLUSIVE lock. (Partitioned tables cannot have NOT VALID checks.)
fn set_not_null(t: &str, c: &str, to: &Model) -> Vec<Statement> {
    let plain = Statement::plain(format!("ALTER TABLE {t} ALTER COLUMN {c} SET NOT NULL"));
    if partitioned(to, t) {
        return vec![plain];
    }
    let check = "pgwarden_not_null";
    vec![
        Statement::plain(format!(
            "ALTER TABLE {t} ADD CONSTRAINT {check} CHECK ({c} IS NOT NULL) NOT VALID"
        )),
        Statement::plain(format!("ALTER TABLE {t} VALIDATE CONSTRAINT {check}")),
        plain,
        Statement::plain(format!("ALTER TABLE {t} DROP CONSTRAINT {check}")),
    ]
}

fn partitioned(model: &Model, table: &str) -> bool {
    matches!(
        model.objects.get(&format!("table:{table}")).map(|o| &o.detail),
        Some(Detail::Table { shape, .. }) if shape.starts_with("p|")
    )
}

/// New enum values in place (ALTER TYPE … ADD VALUE), when every old value
/// stays, in the same order; None when a value goes or moves.
fn enum_values(target: &str, old: &[String], new: &[String]) -> Option<Vec<Statement>> {
    let kept: Vec<&String> = new.iter().filter(|l| old.contains(l)).collect();
    if kept.len() != old.len() || kept.iter().zip(old).any(|(a, b)| *a != b) {
        return None;
    }
    let mut stmts = Vec::new();
    for (i, label) in new.iter().enumerate() {
        if old.contains(label) {
            continue;
        }
        let place = match new[..i]
            .iter()
            .rev()
            .find(|l| old.contains(l) || stmts_added(&stmts, l))
        {
            Some(before) => format!(" AFTER {before}"),
            None => new
                .get(i + 1)
                .map(|n| format!(" BEFORE {n}"))
                .unwrap_or_default(),
        };
        stmts.push(Statement::plain(format!(
            "ALTER {target} ADD VALUE {label}{place}"
        )));
    }
    Some(stmts)
}

fn stmts_added(stmts: &[Statement], label: &str) -> bool {
    stmts
        .iter()
        .any(|s| s.sql.contains(&format!("ADD VALUE {label}")))
}

/// A domain in place: default, NOT NULL and checks; None when the base type changes.
fn domain_change(a: &Object, b: &Object) -> Option<Vec<Statement>> {
    let (
        Detail::Domain {
            base: xb,
            default: xd,
            not_null: xn,
            checks: xc,
            ..
        },
        Detail::Domain {
            base: yb,
            default: yd,
            not_null: yn,
            checks: yc,
            ..
        },
    ) = (&a.detail, &b.detail)
    else {
        return None;
    };
    if xb != yb {
        return None;
    }
    let t = &b.target;
    let mut stmts = Vec::new();
    if xd != yd {
        stmts.push(Statement::plain(match yd {
            Some(d) => format!("ALTER {t} SET DEFAULT {d}"),
            None => format!("ALTER {t} DROP DEFAULT"),
        }));
    }
    if xn != yn {
        stmts.push(Statement::plain(format!(
            "ALTER {t} {} NOT NULL",
            if *yn { "SET" } else { "DROP" }
        )));
    }
    for (name, def) in xc {
        if yc.get(name) != Some(def) {
            stmts.push(Statement::plain(format!(
                "ALTER {t} DROP CONSTRAINT {name}"
            )));
        }
    }
    for (name, def) in yc {
        if xc.get(name) != Some(def) {
            stmts.push(Statement::plain(format!(
                "ALTER {t} ADD CONSTRAINT {name} {def}"
            )));
        }
    }
    Some(stmts)
}

/// GRANT and REVOKE that turn privileges `from` into `to` (entries are
/// "grantee<TAB>PRIVILEGE<TAB>grantable").
pub fn acl_changes(target: &str, from: &BTreeSet<String>, to: &BTreeSet<String>) -> Vec<String> {
    let parse = |e: &String| -> Option<(String, String, bool)> {
        let mut parts = e.split('\t');
        Some((
            parts.next()?.to_string(),
            parts.next()?.to_string(),
            parts.next()? == "true",
        ))
    };
    let mut out = Vec::new();
    for (grantee, privilege, _) in from.difference(to).filter_map(parse) {
        out.push(format!("REVOKE {privilege} ON {target} FROM {grantee}"));
    }
    for (grantee, privilege, grantable) in to.difference(from).filter_map(parse) {
        let option = if grantable { " WITH GRANT OPTION" } else { "" };
        out.push(format!(
            "GRANT {privilege} ON {target} TO {grantee}{option}"
        ));
    }
    out
}

/// Everything that depends on a dropped, rebuilt or converted object is
/// dropped before and recreated after it.
fn propagate(from: &Model, to: &Model, actions: &mut BTreeMap<String, Action>) {
    let mut dependents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (a, b) in &from.deps {
        dependents.entry(b.as_str()).or_default().push(a.as_str());
    }
    let mut queue: Vec<String> = actions
        .iter()
        .filter(|(k, a)| a.strength() >= 2 && from.objects.contains_key(*k))
        .map(|(k, _)| k.clone())
        .collect();
    while let Some(key) = queue.pop() {
        let source = actions[&key].clone();
        let source_kind = from.objects[&key].kind;
        for &d in dependents.get(key.as_str()).into_iter().flatten() {
            let (Some(old), Some(new)) = (from.objects.get(d), to.objects.get(d)) else {
                continue; // only in `from`: dropped anyway
            };
            let in_place = matches!(source, Action::Alter { .. });
            if in_place && matches!(old.kind, Kind::Comment | Kind::Acl) {
                continue;
            }
            let wanted = match (&old.detail, &new.detail) {
                (Detail::Column(x), Detail::Column(y))
                    if matches!(source_kind, Kind::Enum | Kind::Domain) =>
                {
                    column_change(x, y, true, to)
                }
                _ => Action::Rebuild,
            };
            let current = actions.get(d).map_or(0, Action::strength);
            if wanted.strength() > current {
                actions.insert(d.to_string(), wanted);
                queue.push(d.to_string());
            }
        }
    }
}

/// Whether dropping `key` is implied by an ancestor's drop (a table's
/// drop takes its indexes). Not when it also needs something outside that
/// ancestor which is dropped too (a foreign key to another dropped table):
/// then it is dropped on its own, first, so that the other drop can go.
fn implied_by_ancestor(
    model: &Model,
    key: &str,
    actions: &BTreeMap<String, Action>,
    needs: &BTreeMap<&str, Vec<&str>>,
) -> bool {
    let mut parent = model.objects.get(key).and_then(|o| o.parent.clone());
    while let Some(p) = parent {
        if actions.get(&p).is_some_and(Action::dropping) {
            let inline = model.objects.get(key).is_some_and(|o| o.kind.inline());
            let elsewhere =
                needs.get(key).into_iter().flatten().any(|b| {
                    actions.get(*b).is_some_and(Action::dropping) && !model.is_within(b, &p)
                });
            return inline || !elsewhere;
        }
        parent = model.objects.get(&p).and_then(|o| o.parent.clone());
    }
    false
}

#[allow(clippy::too_many_arguments)]
fn drop_phase(
    from: &Model,
    key: &str,
    action: &Action,
    actions: &BTreeMap<String, Action>,
    needs: &BTreeMap<&str, Vec<&str>>,
    out: &mut Vec<Statement>,
    late: &mut Vec<(String, String)>,
) {
    if !action.dropping() || implied_by_ancestor(from, key, actions, needs) {
        return;
    }
    let object = &from.objects[key];
    match (&object.detail, action) {
        (Detail::Enum { schema, name, .. } | Detail::Domain { schema, name, .. }, Action::Swap) => {
            let aside = aside_name(name);
            out.push(Statement {
                sql: format!("ALTER TYPE {schema}.{name} RENAME TO {aside}"),
                warning: Some(format!(
                    "{} {schema}.{name} is recreated and its columns converted through text: values the new type rejects make it fail",
                    object.kind.label()
                )),
                no_transaction: false,
            });
            late.push((key.to_string(), format!("DROP TYPE {schema}.{aside}")));
        }
        // Columns may still use it until they are converted in the next phase.
        (Detail::Enum { .. } | Detail::Domain { .. }, Action::Drop) => {
            late.extend(object.drop.iter().map(|s| (key.to_string(), s.clone())));
        }
        _ => {
            let warning = destructive(object, action);
            for sql in &object.drop {
                out.push(Statement {
                    sql: sql.clone(),
                    warning: warning.clone(),
                    no_transaction: false,
                });
            }
        }
    }
}

fn aside_name(name: &str) -> String {
    let bare = name.trim_matches('"').replace('"', "");
    format!("\"{bare}__pgwarden_old\"")
}

fn destructive(object: &Object, action: &Action) -> Option<String> {
    let what = match object.kind {
        Kind::Table => "the table and all its rows",
        Kind::Column => "the column and its data",
        Kind::MatView => "the materialized view's data (recomputed on create)",
        Kind::Sequence => "the sequence's current value",
        _ => return None,
    };
    let why = if *action == Action::Rebuild {
        "dropped to be recreated: loses "
    } else {
        "drops "
    };
    Some(format!(
        "{} {}: {why}{what}",
        object.kind.label(),
        object.key.split_once(':').map_or("", |(_, n)| n)
    ))
}

fn create_phase(
    to: &Model,
    key: &str,
    action: &Action,
    actions: &BTreeMap<String, Action>,
) -> Vec<Statement> {
    let object = &to.objects[key];
    match action {
        Action::Alter { stmts, .. } => stmts.clone(),
        a if a.creating() => {
            let parent_action = object.parent.as_ref().and_then(|p| actions.get(p));
            let parent_created = parent_action.is_some_and(Action::creating);
            if object.kind.inline() && parent_created {
                return Vec::new();
            }
            safe_create(to, object, parent_created)
        }
        _ => Vec::new(),
    }
}

/// The create statements, made gentle on a table that already exists.
fn safe_create(to: &Model, object: &Object, table_is_new: bool) -> Vec<Statement> {
    let table = object
        .parent
        .as_deref()
        .and_then(|p| p.strip_prefix("table:"))
        .unwrap_or("");
    let existing = !table_is_new && !table.is_empty() && !partitioned(to, table);
    match (&object.detail, object.kind) {
        (_, Kind::Index) if existing && object.def.starts_with("CREATE ") => {
            let sql = object.def.replacen(" INDEX ", " INDEX CONCURRENTLY ", 1);
            vec![Statement {
                sql,
                warning: None,
                no_transaction: true,
            }]
        }
        (
            Detail::Constraint {
                table,
                name,
                contype,
                def,
            },
            _,
        ) if existing && matches!(contype, 'f' | 'c') && !def.ends_with("NOT VALID") => {
            vec![
                Statement::plain(format!(
                    "ALTER TABLE {table} ADD CONSTRAINT {name} {def} NOT VALID"
                )),
                Statement::plain(format!("ALTER TABLE {table} VALIDATE CONSTRAINT {name}")),
            ]
        }
        (Detail::Column(column), _)
            if column.not_null
                && column.default.is_none()
                && column.identity.is_none()
                && column.generated.is_none() =>
        {
            // Adding a NOT NULL column without a default fails on a table with rows; say so.
            vec![Statement {
                sql: object.create[0].clone(),
                warning: Some(format!(
                    "adds NOT NULL column {}.{} without a default: fails if the table has rows",
                    column.table, column.name
                )),
                no_transaction: false,
            }]
        }
        _ => object.create.iter().map(Statement::plain).collect(),
    }
}

/// A column dropped and one of the same type added in the same table may be
/// a rename, which keeps the data.
fn rename_notes(from: &Model, to: &Model, actions: &BTreeMap<String, Action>) -> Vec<String> {
    let mut notes = Vec::new();
    for (key, action) in actions {
        let Some(Object {
            detail: Detail::Column(gone),
            ..
        }) = from.objects.get(key).filter(|_| *action == Action::Drop)
        else {
            continue;
        };
        for (k2, a2) in actions {
            let Some(Object {
                detail: Detail::Column(new),
                ..
            }) = to.objects.get(k2).filter(|_| *a2 == Action::Create)
            else {
                continue;
            };
            if new.table == gone.table && new.data_type == gone.data_type {
                notes.push(format!(
                    "column {}.{} is dropped and {}.{} ({}) added: if it is a rename, write ALTER TABLE {} RENAME COLUMN {} TO {} instead, which keeps the data",
                    gone.table, gone.name, new.table, new.name, new.data_type, new.table, gone.name, new.name
                ));
            }
        }
    }
    notes
}

/// Every object of `model`, each after what it depends on. A column's and
/// a default's dependencies count for their table too, since CREATE TABLE
/// creates them. Ties go by kind, then position, then name; a cycle is
/// broken at its smallest member. (Indices, not strings: schemas of tens of
/// thousands of objects.)
pub fn order(model: &Model) -> Vec<String> {
    let keys: Vec<&String> = model.objects.keys().collect();
    let index: HashMap<&str, usize> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i))
        .collect();
    let objects: Vec<&Object> = model.objects.values().collect();
    let parent: Vec<Option<usize>> = objects
        .iter()
        .map(|o| o.parent.as_deref().and_then(|p| index.get(p).copied()))
        .collect();
    let root = |mut i: usize| {
        while let (Some(p), true) = (parent[i], objects[i].kind.inline()) {
            i = p;
        }
        i
    };
    let within = |mut i: usize, ancestor: usize| loop {
        if i == ancestor {
            return true;
        }
        match parent[i] {
            Some(p) => i = p,
            None => return false,
        }
    };
    let mut needed_by: Vec<Vec<usize>> = vec![Vec::new(); keys.len()];
    let mut waiting: Vec<usize> = vec![0; keys.len()];
    let mut edge = |a: usize, b: usize| {
        needed_by[b].push(a);
        waiting[a] += 1;
    };
    for (a, b) in &model.deps {
        let (Some(&a), Some(&b)) = (index.get(a.as_str()), index.get(b.as_str())) else {
            continue;
        };
        edge(a, b);
        let r = root(a);
        if r != a && !within(b, r) {
            edge(r, b);
        }
    }
    let rank = |i: usize| (objects[i].kind, objects[i].position, i);
    let mut ready: BTreeSet<(Kind, i32, usize)> = (0..keys.len())
        .filter(|i| waiting[*i] == 0)
        .map(rank)
        .collect();
    let mut done = vec![false; keys.len()];
    let mut out = Vec::with_capacity(keys.len());
    while out.len() < keys.len() {
        let next = match ready.pop_first() {
            Some((_, _, i)) => i,
            // A cycle: take the smallest object still waiting.
            None => match (0..keys.len())
                .filter(|i| !done[*i])
                .min_by_key(|i| rank(*i))
            {
                Some(i) => i,
                None => break,
            },
        };
        if done[next] {
            continue;
        }
        done[next] = true;
        for &dependent in &needed_by[next] {
            waiting[dependent] = waiting[dependent].saturating_sub(1);
            if waiting[dependent] == 0 && !done[dependent] {
                ready.insert(rank(dependent));
            }
        }
        out.push(keys[next].clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(l: &[&str]) -> Vec<String> {
        l.iter().map(|s| format!("'{s}'")).collect()
    }

    #[test]
    fn enum_values_are_added_in_place_only_when_old_ones_keep_their_order() {
        let sql = |old: &[&str], new: &[&str]| {
            enum_values("TYPE t", &labels(old), &labels(new))
                .map(|s| s.into_iter().map(|s| s.sql).collect::<Vec<_>>())
        };
        assert_eq!(
            sql(&["a", "b"], &["x", "a", "m", "b", "z"]),
            Some(vec![
                "ALTER TYPE t ADD VALUE 'x' BEFORE 'a'".to_string(),
                "ALTER TYPE t ADD VALUE 'm' AFTER 'a'".to_string(),
                "ALTER TYPE t ADD VALUE 'z' AFTER 'b'".to_string(),
            ])
        );
        assert_eq!(sql(&["a", "b"], &["b", "a"]), None, "a reorder recreates");
        assert_eq!(sql(&["a", "b"], &["a"]), None, "a removal recreates");
    }

    #[test]
    fn privileges_become_the_grants_and_revokes_between_them() {
        let set = |e: &[&str]| e.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        let out = acl_changes(
            "TABLE s.t",
            &set(&["app\tSELECT\tfalse", "app\tINSERT\tfalse"]),
            &set(&["app\tSELECT\tfalse", "PUBLIC\tSELECT\ttrue"]),
        );
        assert_eq!(
            out,
            vec![
                "REVOKE INSERT ON TABLE s.t FROM app",
                "GRANT SELECT ON TABLE s.t TO PUBLIC WITH GRANT OPTION"
            ]
        );
    }

    fn object(key: &str, kind: Kind, parent: Option<&str>) -> Object {
        Object {
            key: key.to_string(),
            kind,
            parent: parent.map(String::from),
            def: String::new(),
            create: vec![format!("CREATE {key}")],
            drop: vec![format!("DROP {key}")],
            target: key.to_string(),
            detail: Detail::None,
            position: 0,
        }
    }

    #[test]
    fn order_puts_dependencies_first_and_lifts_column_needs_to_the_table() {
        let mut m = Model::default();
        m.add(object("view:v", Kind::View, None));
        m.add(object("table:t", Kind::Table, None));
        m.add(object("column:t.c", Kind::Column, Some("table:t")));
        m.add(object("enum:e", Kind::Enum, None));
        m.deps.insert(("view:v".into(), "column:t.c".into()));
        m.deps.insert(("column:t.c".into(), "enum:e".into()));
        let order = order(&m);
        let at = |k: &str| order.iter().position(|o| o == k).unwrap();
        assert!(at("enum:e") < at("table:t"), "{order:?}");
        assert!(
            at("table:t") < at("column:t.c") && at("column:t.c") < at("view:v"),
            "{order:?}"
        );
    }

    #[test]
    fn a_cycle_does_not_lose_objects() {
        let mut m = Model::default();
        m.add(object("function:f", Kind::Function, None));
        m.add(object("table:t", Kind::Table, None));
        m.deps.insert(("function:f".into(), "table:t".into()));
        m.deps.insert(("table:t".into(), "function:f".into()));
        assert_eq!(order(&m), vec!["function:f", "table:t"]);
    }
}
