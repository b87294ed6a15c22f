//! Column types that age badly: small keys, serial, timestamps without zone, sized text.

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableType, ColumnDef, ConstrType};

use super::ast::{self, at, con};
use super::{Hit, Impact, Rule, Severity, State, Stmt};

pub static PREFER_BIGINT_PK: Rule = Rule {
    id: "prefer-bigint-primary-key",
    severity: Severity::Warning,
    impact: Impact::Statement,
    why: "an int/smallint primary key runs out (2^31 values) on a busy table, and widening it later rewrites the table and every referencing one",
    fix: "use bigint (bigint GENERATED ALWAYS AS IDENTITY) or uuid",
};

pub static PREFER_IDENTITY: Rule = Rule {
    id: "prefer-identity",
    severity: Severity::Warning,
    impact: Impact::Statement,
    why: "serial makes a sequence the table does not own properly (grants, dumps, copying the table) and lets inserts bypass it",
    fix: "bigint GENERATED ALWAYS AS IDENTITY",
};

pub static PREFER_TIMESTAMPTZ: Rule = Rule {
    id: "prefer-timestamptz",
    severity: Severity::Warning,
    impact: Impact::Statement,
    why: "timestamp without time zone stores wall-clock time with no zone: values shift or become ambiguous when servers, clients or DST differ",
    fix: "timestamptz (timestamp with time zone)",
};

pub static PREFER_TEXT: Rule = Rule {
    id: "prefer-text",
    severity: Severity::Info,
    impact: Impact::Statement,
    why: "varchar(n) gains nothing over text in PostgreSQL, and raising the limit later is a schema change",
    fix: "text, with a CHECK (length(col) <= n) constraint if a limit matters",
};

pub static PREFER_TEXT_OVER_CHAR: Rule = Rule {
    id: "prefer-text-over-char",
    severity: Severity::Warning,
    impact: Impact::Statement,
    why: "char(n) pads values with spaces, wastes space and compares surprisingly",
    fix: "text (with a CHECK constraint on the length if it matters)",
};

pub fn check(s: &Stmt, _state: &State, out: &mut Vec<Hit>) {
    match s.node {
        NodeEnum::CreateStmt(c) => {
            let table = ast::relation(c.relation.as_ref()).unwrap_or_default();
            let keys = table_primary_key(&c.table_elts);
            for col in c.table_elts.iter().filter_map(|n| match &n.node {
                Some(NodeEnum::ColumnDef(col)) => Some(col.as_ref()),
                _ => None,
            }) {
                column(col, &table, keys.contains(&col.colname.as_str()), out);
            }
        }
        NodeEnum::AlterTableStmt(a) => {
            let table = ast::relation(a.relation.as_ref()).unwrap_or_default();
            for cmd in ast::commands(a).filter(|c| {
                c.subtype == at(AlterTableType::AtAddColumn)
                    || c.subtype == at(AlterTableType::AtAlterColumnType)
            }) {
                if let Some(col) = ast::column_def(cmd) {
                    column(col, &table, false, out);
                }
            }
        }
        _ => {}
    }
}

/// The columns of a table-level PRIMARY KEY (…).
fn table_primary_key(elements: &[pg_query::protobuf::Node]) -> Vec<&str> {
    elements
        .iter()
        .filter_map(|n| match &n.node {
            Some(NodeEnum::Constraint(c)) if c.contype == con(ConstrType::ConstrPrimary) => {
                Some(ast::strings(&c.keys))
            }
            _ => None,
        })
        .flatten()
        .collect()
}

fn column(col: &ColumnDef, table: &str, in_table_key: bool, out: &mut Vec<Hit>) {
    let Some(type_name) = col.type_name.as_ref() else {
        return;
    };
    let name = ast::type_name(type_name);
    let what = |t: &str| format!("column {table}.{} is {t}", col.colname);
    let primary = in_table_key
        || ast::column_constraints(col).any(|c| c.contype == con(ConstrType::ConstrPrimary));
    if primary
        && matches!(
            name.as_str(),
            "int4" | "int2" | "serial" | "smallserial" | "serial4" | "serial2"
        )
    {
        out.push(Hit::new(
            &PREFER_BIGINT_PK,
            None,
            what(&format!("a {name} primary key")),
        ));
    }
    if matches!(
        name.as_str(),
        "serial" | "bigserial" | "smallserial" | "serial2" | "serial4" | "serial8"
    ) {
        out.push(Hit::new(&PREFER_IDENTITY, None, what(&name)));
    }
    match name.as_str() {
        "timestamp" => out.push(Hit::new(
            &PREFER_TIMESTAMPTZ,
            None,
            what("timestamp without time zone"),
        )),
        "varchar" if !type_name.typmods.is_empty() => {
            out.push(Hit::new(&PREFER_TEXT, None, what("varchar(n)")))
        }
        "bpchar" => out.push(Hit::new(&PREFER_TEXT_OVER_CHAR, None, what("char(n)"))),
        _ => {}
    }
}
