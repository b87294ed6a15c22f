//! Small readers of pg_query's parse tree shared by the rules.

use pg_query::NodeEnum;
use pg_query::protobuf::{
    AlterTableCmd, AlterTableStmt, AlterTableType, ColumnDef, ConstrType, Constraint, Node,
    RangeVar, TypeName,
};

/// `name` or `schema.name` (`public` is left out, as the search path would).
pub fn qualified(schema: &str, name: &str) -> String {
    if schema.is_empty() || schema == "public" {
        name.to_string()
    } else {
        format!("{schema}.{name}")
    }
}

pub fn table(range: &RangeVar) -> String {
    qualified(&range.schemaname, &range.relname)
}

pub fn relation(range: Option<&RangeVar>) -> Option<String> {
    range.map(table)
}

pub fn at(t: AlterTableType) -> i32 {
    t as i32
}

pub fn con(t: ConstrType) -> i32 {
    t as i32
}

/// The ALTER TABLE commands of a statement.
pub fn commands(s: &AlterTableStmt) -> impl Iterator<Item = &AlterTableCmd> {
    s.cmds.iter().filter_map(|n| match &n.node {
        Some(NodeEnum::AlterTableCmd(c)) => Some(c.as_ref()),
        _ => None,
    })
}

pub fn column_def(cmd: &AlterTableCmd) -> Option<&ColumnDef> {
    match cmd.def.as_deref().and_then(|d| d.node.as_ref()) {
        Some(NodeEnum::ColumnDef(c)) => Some(c),
        _ => None,
    }
}

pub fn constraint(cmd: &AlterTableCmd) -> Option<&Constraint> {
    match cmd.def.as_deref().and_then(|d| d.node.as_ref()) {
        Some(NodeEnum::Constraint(c)) => Some(c),
        _ => None,
    }
}

/// The constraints attached to a column definition.
pub fn column_constraints(col: &ColumnDef) -> impl Iterator<Item = &Constraint> {
    col.constraints.iter().filter_map(|n| match &n.node {
        Some(NodeEnum::Constraint(c)) => Some(c.as_ref()),
        _ => None,
    })
}

/// The string values of a list of `String` nodes (qualified names).
pub fn strings(nodes: &[Node]) -> Vec<&str> {
    nodes
        .iter()
        .filter_map(|n| match &n.node {
            Some(NodeEnum::String(s)) => Some(s.sval.as_str()),
            _ => None,
        })
        .collect()
}

/// A type's own name without `pg_catalog.` (`int4`, `varchar`, `serial`).
pub fn type_name(t: &TypeName) -> String {
    strings(&t.names).last().copied().unwrap_or("").to_string()
}

/// Every function called anywhere under `node` (the tree walked through its
/// serde form, so no expression kind is missed).
pub fn called_functions(node: &Node) -> Vec<String> {
    let mut names = Vec::new();
    if let Ok(value) = serde_json::to_value(node) {
        walk(&value, &mut |key, v| {
            if key == "FuncCall" {
                let last = v["funcname"]
                    .as_array()
                    .and_then(|a| a.last())
                    .and_then(|n| n["node"]["String"]["sval"].as_str());
                names.extend(last.map(str::to_string));
            }
        });
    }
    names
}

fn walk(value: &serde_json::Value, f: &mut impl FnMut(&str, &serde_json::Value)) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                f(key, v);
                walk(v, f);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, f)),
        _ => {}
    }
}
