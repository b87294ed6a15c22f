//! ALTER TABLE: columns and constraints on a table that already holds data.

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableCmd, AlterTableType, ColumnDef, ConstrType};

use super::ast::{self, con};
use super::{Hit, Impact, Rule, Severity, State, Stmt};

pub static ADD_COLUMN_VOLATILE_DEFAULT: Rule = Rule {
    id: "add-column-volatile-default",
    severity: Severity::Error,
    impact: Impact::Sized,
    why: "a volatile DEFAULT (random(), gen_random_uuid(), clock_timestamp(), nextval()) makes ADD COLUMN rewrite the whole table under an ACCESS EXCLUSIVE lock",
    fix: "add the column without a default (or with a constant one), set the default in a second statement, and backfill existing rows in batches",
};

pub static ADD_COLUMN_SERIAL_OR_IDENTITY: Rule = Rule {
    id: "add-column-serial-or-identity",
    severity: Severity::Error,
    impact: Impact::Sized,
    why: "adding a serial or identity column fills every existing row: the table is rewritten under an ACCESS EXCLUSIVE lock",
    fix: "add a plain bigint column, attach a sequence default, backfill in batches, then add the key with a unique index built CONCURRENTLY",
};

pub static ADD_COLUMN_GENERATED_STORED: Rule = Rule {
    id: "add-column-generated-stored",
    severity: Severity::Error,
    impact: Impact::Sized,
    why: "a STORED generated column is computed for every existing row: the table is rewritten under an ACCESS EXCLUSIVE lock",
    fix: "add a plain column filled by a trigger and a batched backfill, or compute the value in a view",
};

pub static ADD_COLUMN_REQUIRED: Rule = Rule {
    id: "add-column-required-without-default",
    severity: Severity::Error,
    impact: Impact::FailsWithRows,
    why: "a NOT NULL column without a DEFAULT cannot be added to a table that has rows: the migration fails",
    fix: "give it a constant DEFAULT (no rewrite since PostgreSQL 11), or add it nullable, backfill, then add NOT NULL safely",
};

pub static ALTER_COLUMN_TYPE: Rule = Rule {
    id: "alter-column-type",
    severity: Severity::Error,
    impact: Impact::Sized,
    why: "this type change rewrites the table and its indexes under an ACCESS EXCLUSIVE lock: no reads or writes until it is done (only widening varchar/numeric or going to text is free)",
    fix: "add a new column of the new type, dual-write and backfill in batches, then switch readers and drop the old column",
};

pub static SET_NOT_NULL: Rule = Rule {
    id: "set-not-null",
    severity: Severity::Error,
    impact: Impact::Sized,
    why: "SET NOT NULL scans the whole table under an ACCESS EXCLUSIVE lock",
    fix: "ADD CONSTRAINT … CHECK (col IS NOT NULL) NOT VALID, then VALIDATE CONSTRAINT in a later statement, then SET NOT NULL (it uses the validated check and skips the scan), then drop the check",
};

pub static ADD_FOREIGN_KEY: Rule = Rule {
    id: "add-foreign-key-without-not-valid",
    severity: Severity::Error,
    impact: Impact::Sized,
    why: "adding a FOREIGN KEY checks every row while holding SHARE ROW EXCLUSIVE locks on both tables: writes to both wait",
    fix: "ADD CONSTRAINT … FOREIGN KEY … NOT VALID, then ALTER TABLE … VALIDATE CONSTRAINT … (takes a lock that lets writes through) in a later migration",
};

pub static ADD_CHECK: Rule = Rule {
    id: "add-check-without-not-valid",
    severity: Severity::Error,
    impact: Impact::Sized,
    why: "adding a CHECK constraint scans every row under an ACCESS EXCLUSIVE lock",
    fix: "ADD CONSTRAINT … CHECK (…) NOT VALID, then VALIDATE CONSTRAINT in a later migration",
};

pub static SET_LOGGED: Rule = Rule {
    id: "set-logged-or-unlogged",
    severity: Severity::Error,
    impact: Impact::Sized,
    why: "SET LOGGED / SET UNLOGGED rewrites the table under an ACCESS EXCLUSIVE lock",
    fix: "create the table with the persistence it needs, or plan a maintenance window",
};

pub static SET_TABLESPACE: Rule = Rule {
    id: "set-tablespace",
    severity: Severity::Error,
    impact: Impact::Sized,
    why: "SET TABLESPACE copies the whole table under an ACCESS EXCLUSIVE lock",
    fix: "plan a maintenance window, or use pg_repack to move it online",
};

/// Functions whose DEFAULT forces a rewrite (volatile).
const VOLATILE: &[&str] = &[
    "random",
    "gen_random_uuid",
    "uuid_generate_v1",
    "uuid_generate_v1mc",
    "uuid_generate_v4",
    "uuidv4",
    "uuidv7",
    "clock_timestamp",
    "timeofday",
    "nextval",
    "txid_current",
];

/// Target types that are free from the usual sources (text, longer varchar, wider numeric).
const FREE_TARGETS: &[&str] = &["text", "varchar", "numeric", "varbit", "citext"];

pub fn check(s: &Stmt, state: &State, out: &mut Vec<Hit>) {
    let NodeEnum::AlterTableStmt(a) = s.node else {
        return;
    };
    let table = ast::relation(a.relation.as_ref());
    let name = table.clone().unwrap_or_default();
    for cmd in ast::commands(a) {
        let hit = |rule: &'static Rule, what: String| Hit::new(rule, table.clone(), what);
        match AlterTableType::try_from(cmd.subtype).unwrap_or(AlterTableType::Undefined) {
            AlterTableType::AtAddColumn => {
                if let Some(col) = ast::column_def(cmd) {
                    add_column(col, &name, &hit, out);
                }
            }
            AlterTableType::AtAlterColumnType => {
                if let Some(what) = rewriting_type_change(cmd, &name) {
                    out.push(hit(&ALTER_COLUMN_TYPE, what));
                }
            }
            AlterTableType::AtSetNotNull
                if !table.as_ref().is_some_and(|t| state.validated.contains(t)) =>
            {
                out.push(hit(
                    &SET_NOT_NULL,
                    format!("ALTER TABLE {name} ALTER COLUMN {} SET NOT NULL", cmd.name),
                ));
            }
            AlterTableType::AtAddConstraint => {
                let Some(c) = ast::constraint(cmd) else {
                    continue;
                };
                if c.skip_validation {
                    continue;
                }
                if c.contype == con(ConstrType::ConstrForeign) {
                    let referenced = ast::relation(c.pktable.as_ref()).unwrap_or_default();
                    out.push(hit(&ADD_FOREIGN_KEY, format!("ALTER TABLE {name} ADD FOREIGN KEY … REFERENCES {referenced} without NOT VALID")));
                } else if c.contype == con(ConstrType::ConstrCheck) {
                    out.push(hit(
                        &ADD_CHECK,
                        format!("ALTER TABLE {name} ADD CHECK without NOT VALID"),
                    ));
                }
            }
            AlterTableType::AtSetLogged | AlterTableType::AtSetUnLogged => {
                out.push(hit(
                    &SET_LOGGED,
                    format!("ALTER TABLE {name} SET LOGGED/UNLOGGED"),
                ));
            }
            AlterTableType::AtSetTableSpace => {
                out.push(hit(
                    &SET_TABLESPACE,
                    format!("ALTER TABLE {name} SET TABLESPACE"),
                ));
            }
            _ => {}
        }
    }
}

fn add_column(
    col: &ColumnDef,
    table: &str,
    hit: &impl Fn(&'static Rule, String) -> Hit,
    out: &mut Vec<Hit>,
) {
    let what = |s: &str| format!("ALTER TABLE {table} ADD COLUMN {} {s}", col.colname);
    let type_name = col
        .type_name
        .as_ref()
        .map(ast::type_name)
        .unwrap_or_default();
    let constraints: Vec<_> = ast::column_constraints(col).collect();
    let has = |t: ConstrType| constraints.iter().any(|c| c.contype == con(t));
    let default = constraints
        .iter()
        .find(|c| c.contype == con(ConstrType::ConstrDefault))
        .and_then(|c| c.raw_expr.as_deref());
    let serial = matches!(
        type_name.as_str(),
        "serial" | "bigserial" | "smallserial" | "serial4" | "serial8" | "serial2"
    );
    if serial || has(ConstrType::ConstrIdentity) {
        out.push(hit(
            &ADD_COLUMN_SERIAL_OR_IDENTITY,
            what("(serial/identity)"),
        ));
        return;
    }
    if has(ConstrType::ConstrGenerated) {
        out.push(hit(
            &ADD_COLUMN_GENERATED_STORED,
            what("GENERATED ALWAYS AS (…) STORED"),
        ));
        return;
    }
    if let Some(default) = default {
        let volatile: Vec<String> = ast::called_functions(default)
            .into_iter()
            .filter(|f| VOLATILE.contains(&f.as_str()))
            .collect();
        if let Some(f) = volatile.first() {
            out.push(hit(
                &ADD_COLUMN_VOLATILE_DEFAULT,
                what(&format!("DEFAULT {f}()")),
            ));
        }
    } else if has(ConstrType::ConstrNotnull) || has(ConstrType::ConstrPrimary) {
        out.push(hit(&ADD_COLUMN_REQUIRED, what("NOT NULL without DEFAULT")));
    }
}

/// A description of the change when it rewrites the table.
fn rewriting_type_change(cmd: &AlterTableCmd, table: &str) -> Option<String> {
    let col = ast::column_def(cmd)?;
    let target = col
        .type_name
        .as_ref()
        .map(ast::type_name)
        .unwrap_or_default();
    let what = format!(
        "ALTER TABLE {table} ALTER COLUMN {} TYPE {target}",
        cmd.name
    );
    // USING always computes a new value for every row.
    if col.raw_default.is_some() {
        return Some(format!("{what} USING …"));
    }
    if FREE_TARGETS.contains(&target.as_str()) {
        return None;
    }
    Some(what)
}
