//! Indexes and the constraints that build one.

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableType, ConstrType, ObjectType, ReindexObjectType};

use super::ast::{self, at, con};
use super::{Hit, Impact, Rule, Severity, State, Stmt};

pub static CREATE_INDEX: Rule = Rule {
    id: "create-index-non-concurrently",
    severity: Severity::Error,
    impact: Impact::Sized,
    why: "CREATE INDEX holds a SHARE lock on the table for the whole build: every INSERT, UPDATE and DELETE waits until it is done",
    fix: "CREATE INDEX CONCURRENTLY IF NOT EXISTS … in a migration of its own whose header has `-- pgwarden:no-transaction`",
};

pub static DROP_INDEX: Rule = Rule {
    id: "drop-index-non-concurrently",
    severity: Severity::Warning,
    impact: Impact::Sized,
    why: "DROP INDEX takes an ACCESS EXCLUSIVE lock on the table: it queues behind running queries and blocks every query behind it",
    fix: "DROP INDEX CONCURRENTLY IF EXISTS … in a migration whose header has `-- pgwarden:no-transaction`",
};

pub static REINDEX: Rule = Rule {
    id: "reindex-non-concurrently",
    severity: Severity::Error,
    impact: Impact::Sized,
    why: "REINDEX blocks writes to the table (and reads through the index) while it rebuilds",
    fix: "REINDEX … CONCURRENTLY in a migration whose header has `-- pgwarden:no-transaction`",
};

pub static CONCURRENTLY_IN_TRANSACTION: Rule = Rule {
    id: "concurrently-in-transaction",
    severity: Severity::Error,
    impact: Impact::Statement,
    why: "CONCURRENTLY cannot run inside a transaction block, and pgwarden runs this file in one: the migration fails",
    fix: "put it in a migration of its own whose header has `-- pgwarden:no-transaction`",
};

pub static ADD_UNIQUE_WITHOUT_INDEX: Rule = Rule {
    id: "add-unique-without-index",
    severity: Severity::Error,
    impact: Impact::Sized,
    why: "adding a PRIMARY KEY or UNIQUE constraint builds its index under an ACCESS EXCLUSIVE lock: reads and writes wait for the whole build",
    fix: "CREATE UNIQUE INDEX CONCURRENTLY first (no-transaction migration), then ALTER TABLE … ADD CONSTRAINT … UNIQUE USING INDEX (or PRIMARY KEY USING INDEX)",
};

pub static ADD_EXCLUSION: Rule = Rule {
    id: "add-exclusion-constraint",
    severity: Severity::Error,
    impact: Impact::Sized,
    why: "an EXCLUDE constraint builds its index and checks every row under an ACCESS EXCLUSIVE lock",
    fix: "add it while the table is new, or in a maintenance window; there is no concurrent way to add one",
};

pub fn check(s: &Stmt, _state: &State, out: &mut Vec<Hit>) {
    match s.node {
        NodeEnum::IndexStmt(i) => {
            let table = ast::relation(i.relation.as_ref());
            if i.concurrent && s.transactional {
                out.push(Hit::new(
                    &CONCURRENTLY_IN_TRANSACTION,
                    None,
                    "CREATE INDEX CONCURRENTLY in a transactional migration",
                ));
            } else if !i.concurrent {
                let name = table.clone().unwrap_or_default();
                out.push(Hit::new(
                    &CREATE_INDEX,
                    table,
                    format!("CREATE INDEX on {name}"),
                ));
            }
        }
        NodeEnum::DropStmt(d) if d.remove_type == ObjectType::ObjectIndex as i32 => {
            if d.concurrent && s.transactional {
                out.push(Hit::new(
                    &CONCURRENTLY_IN_TRANSACTION,
                    None,
                    "DROP INDEX CONCURRENTLY in a transactional migration",
                ));
            } else if !d.concurrent {
                for name in d.objects.iter().filter_map(object_name) {
                    out.push(Hit::new(
                        &DROP_INDEX,
                        Some(name.clone()),
                        format!("DROP INDEX {name}"),
                    ));
                }
            }
        }
        NodeEnum::ReindexStmt(r) => {
            let concurrent = r.params.iter().any(
                |p| matches!(&p.node, Some(NodeEnum::DefElem(d)) if d.defname == "concurrently"),
            );
            let name = match ast::relation(r.relation.as_ref()) {
                Some(t) => Some(t),
                None if r.kind == ReindexObjectType::ReindexObjectIndex as i32
                    || r.kind == ReindexObjectType::ReindexObjectTable as i32 =>
                {
                    Some(r.name.clone())
                }
                None => None,
            };
            if concurrent && s.transactional {
                out.push(Hit::new(
                    &CONCURRENTLY_IN_TRANSACTION,
                    None,
                    "REINDEX CONCURRENTLY in a transactional migration",
                ));
            } else if !concurrent {
                let what = format!(
                    "REINDEX {}",
                    name.clone()
                        .unwrap_or_else(|| "of a whole schema or database".into())
                );
                out.push(Hit::new(&REINDEX, name, what));
            }
        }
        NodeEnum::RefreshMatViewStmt(r) if r.concurrent && s.transactional => {
            out.push(Hit::new(
                &CONCURRENTLY_IN_TRANSACTION,
                None,
                "REFRESH MATERIALIZED VIEW CONCURRENTLY in a transactional migration",
            ));
        }
        NodeEnum::AlterTableStmt(a) => {
            let table = ast::relation(a.relation.as_ref());
            let name = table.clone().unwrap_or_default();
            for cmd in ast::commands(a) {
                let constraints: Vec<_> = if cmd.subtype == at(AlterTableType::AtAddConstraint) {
                    ast::constraint(cmd).into_iter().collect()
                } else if cmd.subtype == at(AlterTableType::AtAddColumn) {
                    ast::column_def(cmd)
                        .map(|c| ast::column_constraints(c).collect())
                        .unwrap_or_default()
                } else {
                    Vec::new()
                };
                for c in constraints {
                    let keyed = c.contype == con(ConstrType::ConstrPrimary)
                        || c.contype == con(ConstrType::ConstrUnique);
                    if keyed && c.indexname.is_empty() {
                        out.push(Hit::new(
                            &ADD_UNIQUE_WITHOUT_INDEX,
                            table.clone(),
                            format!(
                                "ALTER TABLE {name} ADD {} without USING INDEX",
                                if c.contype == con(ConstrType::ConstrPrimary) {
                                    "PRIMARY KEY"
                                } else {
                                    "UNIQUE"
                                }
                            ),
                        ));
                    } else if c.contype == con(ConstrType::ConstrExclusion) {
                        out.push(Hit::new(
                            &ADD_EXCLUSION,
                            table.clone(),
                            format!("ALTER TABLE {name} ADD EXCLUDE"),
                        ));
                    }
                }
            }
        }
        _ => {}
    }
}

/// `schema.name` of a DROP's object (a list of String nodes).
pub fn object_name(node: &pg_query::protobuf::Node) -> Option<String> {
    match &node.node {
        Some(NodeEnum::List(l)) => {
            let parts = ast::strings(&l.items);
            match parts.as_slice() {
                [name] => Some(ast::qualified("", name)),
                [.., schema, name] => Some(ast::qualified(schema, name)),
                [] => None,
            }
        }
        _ => None,
    }
}
