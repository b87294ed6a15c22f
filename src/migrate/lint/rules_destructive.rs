//! Statements that lose data or break the application code that is running.

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableType, DropBehavior, ObjectType};

use super::ast::{self, at};
use super::rules_index::object_name;
use super::{Hit, Impact, Rule, Severity, State, Stmt};

pub static DROP_TABLE: Rule = Rule {
    id: "drop-table",
    severity: Severity::Warning,
    impact: Impact::ExistingTable,
    why: "DROP TABLE deletes the data for good, and application code still running against it fails",
    fix: "stop using the table in a release first; drop it in a later migration, after a backup (or rename it away and drop it later)",
};

pub static DROP_COLUMN: Rule = Rule {
    id: "drop-column",
    severity: Severity::Warning,
    impact: Impact::ExistingTable,
    why: "dropping a column deletes its data, and running code that still selects or writes it fails",
    fix: "release code that no longer uses the column first, then drop it in a later migration",
};

pub static DROP_NOT_NULL: Rule = Rule {
    id: "drop-not-null",
    severity: Severity::Warning,
    impact: Impact::ExistingTable,
    why: "dropping NOT NULL lets NULLs in that running code and reports may not expect",
    fix: "make sure every reader handles NULL first; keep the constraint if anything relies on it",
};

pub static DROP_DATABASE: Rule = Rule {
    id: "drop-database",
    severity: Severity::Error,
    impact: Impact::Statement,
    why: "DROP DATABASE deletes a whole database; it has no place in a migration",
    fix: "remove it; drop databases by hand, after a backup",
};

pub static DROP_CASCADE: Rule = Rule {
    id: "drop-cascade",
    severity: Severity::Warning,
    impact: Impact::Statement,
    why: "CASCADE silently drops every dependent object (views, foreign keys, …) too, including ones this migration does not know about",
    fix: "drop the dependent objects explicitly, then drop without CASCADE",
};

pub static RENAME_TABLE: Rule = Rule {
    id: "rename-table",
    severity: Severity::Warning,
    impact: Impact::ExistingTable,
    why: "renaming a table breaks every running query that still uses the old name",
    fix: "create a view with the old name (or rename in two releases: add the new name, move the code, then drop the old one)",
};

pub static RENAME_COLUMN: Rule = Rule {
    id: "rename-column",
    severity: Severity::Warning,
    impact: Impact::ExistingTable,
    why: "renaming a column breaks every running query that still uses the old name",
    fix: "add the new column, write both, backfill, move readers, then drop the old column in a later migration",
};

pub static TRUNCATE_CASCADE: Rule = Rule {
    id: "truncate-cascade",
    severity: Severity::Error,
    impact: Impact::Statement,
    why: "TRUNCATE … CASCADE empties every table that references this one, too",
    fix: "truncate the tables you mean by name, without CASCADE",
};

pub fn check(s: &Stmt, _state: &State, out: &mut Vec<Hit>) {
    match s.node {
        NodeEnum::DropStmt(d) => {
            if d.behavior == DropBehavior::DropCascade as i32 {
                out.push(Hit::new(&DROP_CASCADE, None, "DROP … CASCADE"));
            }
            if d.remove_type == ObjectType::ObjectTable as i32 {
                for name in d.objects.iter().filter_map(object_name) {
                    out.push(Hit::new(
                        &DROP_TABLE,
                        Some(name.clone()),
                        format!("DROP TABLE {name}"),
                    ));
                }
            }
        }
        NodeEnum::DropdbStmt(d) => out.push(Hit::new(
            &DROP_DATABASE,
            None,
            format!("DROP DATABASE {}", d.dbname),
        )),
        NodeEnum::AlterTableStmt(a) => {
            let table = ast::relation(a.relation.as_ref());
            let name = table.clone().unwrap_or_default();
            for cmd in ast::commands(a) {
                if cmd.subtype == at(AlterTableType::AtDropColumn) {
                    out.push(Hit::new(
                        &DROP_COLUMN,
                        table.clone(),
                        format!("ALTER TABLE {name} DROP COLUMN {}", cmd.name),
                    ));
                } else if cmd.subtype == at(AlterTableType::AtDropNotNull) {
                    out.push(Hit::new(
                        &DROP_NOT_NULL,
                        table.clone(),
                        format!("ALTER TABLE {name} ALTER COLUMN {} DROP NOT NULL", cmd.name),
                    ));
                }
            }
        }
        NodeEnum::RenameStmt(r) => {
            let table = ast::relation(r.relation.as_ref());
            let name = table.clone().unwrap_or_default();
            if r.rename_type == ObjectType::ObjectTable as i32 {
                out.push(Hit::new(
                    &RENAME_TABLE,
                    table,
                    format!("ALTER TABLE {name} RENAME TO {}", r.newname),
                ));
            } else if r.rename_type == ObjectType::ObjectColumn as i32 {
                out.push(Hit::new(
                    &RENAME_COLUMN,
                    table,
                    format!(
                        "ALTER TABLE {name} RENAME COLUMN {} TO {}",
                        r.subname, r.newname
                    ),
                ));
            }
        }
        NodeEnum::TruncateStmt(t) if t.behavior == DropBehavior::DropCascade as i32 => {
            out.push(Hit::new(&TRUNCATE_CASCADE, None, "TRUNCATE … CASCADE"));
        }
        _ => {}
    }
}
