//! What a transactional migration (one transaction with its history row) must not do.

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableType, ObjectType};

use super::ast::{self, at};
use super::rules_index::object_name;
use super::{Hit, Impact, Rule, Severity, State, Stmt};

pub static TRANSACTION_CONTROL: Rule = Rule {
    id: "transaction-control",
    severity: Severity::Error,
    impact: Impact::Statement,
    why: "pgwarden runs this file in one transaction together with its history row; a BEGIN/COMMIT/ROLLBACK inside would commit half of it without the history row",
    fix: "remove it, or put `-- pgwarden:no-transaction` in the file's header to manage transactions yourself",
};

pub static LOCK_HELD: Rule = Rule {
    id: "lock-held-by-later-statements",
    severity: Severity::Warning,
    impact: Impact::ExistingTable,
    why: "the lock an earlier statement took (ACCESS EXCLUSIVE, or SHARE for CREATE INDEX) is held until the whole migration commits, so every later statement extends the time the table is blocked",
    fix: "put the lock-heavy statement last, or in a migration of its own",
};

pub static ENUM_ADD_VALUE: Rule = Rule {
    id: "enum-add-value-in-transaction",
    severity: Severity::Warning,
    impact: Impact::Statement,
    why: "a value added by ALTER TYPE … ADD VALUE cannot be used until the transaction commits: later statements of this migration that use it fail (\"unsafe use of new value\")",
    fix: "add enum values in a migration of their own, before the migration that uses them",
};

pub fn check(s: &Stmt, _state: &State, out: &mut Vec<Hit>) {
    if !s.transactional {
        return;
    }
    match s.node {
        NodeEnum::TransactionStmt(_) => {
            out.push(Hit::new(
                &TRANSACTION_CONTROL,
                None,
                "transaction control in a transactional migration",
            ));
        }
        NodeEnum::AlterEnumStmt(e) if !e.new_val.is_empty() && !s.only_enum_values_follow => {
            let name = ast::strings(&e.type_name).join(".");
            out.push(Hit::new(&ENUM_ADD_VALUE, None, format!("ALTER TYPE {name} ADD VALUE '{}' followed by other statements in the same transaction", e.new_val)));
        }
        _ => {}
    }
}

/// The existing table a statement locks against writes or worse (held to the end of the transaction).
pub fn lock_taken(node: &NodeEnum, state: &State) -> Option<String> {
    let table = match node {
        NodeEnum::AlterTableStmt(a) if a.objtype == ObjectType::ObjectTable as i32 => {
            // Validation alone takes a weaker lock that lets writes through.
            let weak =
                ast::commands(a).all(|c| c.subtype == at(AlterTableType::AtValidateConstraint));
            if weak {
                None
            } else {
                ast::relation(a.relation.as_ref())
            }
        }
        NodeEnum::RenameStmt(r) => ast::relation(r.relation.as_ref()),
        NodeEnum::TruncateStmt(t) => t.relations.first().and_then(|n| match &n.node {
            Some(NodeEnum::RangeVar(r)) => Some(ast::table(r)),
            _ => None,
        }),
        // A plain CREATE INDEX holds SHARE (writes wait) until the commit too.
        NodeEnum::IndexStmt(i) if !i.concurrent => ast::relation(i.relation.as_ref()),
        NodeEnum::DropStmt(d) if d.remove_type == ObjectType::ObjectTable as i32 => {
            d.objects.first().and_then(object_name)
        }
        _ => None,
    }?;
    (!state.created.contains(&table)).then_some(table)
}
