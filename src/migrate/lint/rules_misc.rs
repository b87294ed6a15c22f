//! Maintenance commands, session settings, retries, names.

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableType, ObjectType, VariableSetKind};

use super::ast::{self, at};
use super::{Hit, Impact, Rule, Severity, State, Stmt};

pub static VACUUM_FULL: Rule = Rule {
    id: "vacuum-full",
    severity: Severity::Error,
    impact: Impact::Sized,
    why: "VACUUM FULL rewrites the table under an ACCESS EXCLUSIVE lock: no reads or writes until it is done",
    fix: "leave space reclamation to autovacuum, or use pg_repack online, outside migrations",
};

pub static VACUUM_IN_TRANSACTION: Rule = Rule {
    id: "vacuum-in-transaction",
    severity: Severity::Error,
    impact: Impact::Statement,
    why: "VACUUM cannot run inside a transaction block, and pgwarden runs this file in one: the migration fails",
    fix: "put it in a migration whose header has `-- pgwarden:no-transaction`, or leave it to autovacuum",
};

pub static CLUSTER: Rule = Rule {
    id: "cluster",
    severity: Severity::Error,
    impact: Impact::Sized,
    why: "CLUSTER rewrites the table in index order under an ACCESS EXCLUSIVE lock",
    fix: "use pg_repack --order-by online, outside migrations",
};

pub static REFRESH_MATVIEW: Rule = Rule {
    id: "refresh-materialized-view-non-concurrently",
    severity: Severity::Warning,
    impact: Impact::Sized,
    why: "REFRESH MATERIALIZED VIEW without CONCURRENTLY blocks every read of the view until it is done",
    fix: "REFRESH MATERIALIZED VIEW CONCURRENTLY (needs a unique index on the view) in a no-transaction migration",
};

pub static LOCK_TABLE: Rule = Rule {
    id: "lock-table",
    severity: Severity::Warning,
    impact: Impact::ExistingTable,
    why: "an explicit LOCK TABLE (ACCESS EXCLUSIVE by default) blocks every query on the table until the migration commits",
    fix: "let each statement take the lock it needs, for as short as it needs; remove the LOCK",
};

pub static LOCK_TIMEOUT_DISABLED: Rule = Rule {
    id: "lock-timeout-disabled",
    severity: Severity::Warning,
    impact: Impact::Statement,
    why: "pgwarden sets lock_timeout (migrations.lock_timeout) so a statement waiting for a lock gives up instead of blocking every query queued behind it; turning it off removes that protection",
    fix: "remove the SET; raise migrations.lock_timeout or migrations.lock_retries if the default is too short",
};

pub static NON_IDEMPOTENT: Rule = Rule {
    id: "non-idempotent-without-transaction",
    severity: Severity::Warning,
    impact: Impact::Statement,
    why: "this file runs outside a transaction (pgwarden:no-transaction): if it stops midway, the statements that ran stay, and running it again fails on them",
    fix: "use IF NOT EXISTS / IF EXISTS so the file can be re-run after a failure",
};

pub static IDENTIFIER_TOO_LONG: Rule = Rule {
    id: "identifier-too-long",
    severity: Severity::Error,
    impact: Impact::Statement,
    why: "PostgreSQL silently truncates identifiers to 63 bytes: two long names can collide, and the name in the database is not the one in the code or in the down script",
    fix: "use a name of at most 63 bytes",
};

pub fn check(s: &Stmt, _state: &State, out: &mut Vec<Hit>) {
    match s.node {
        NodeEnum::VacuumStmt(v) if v.is_vacuumcmd => {
            let full = v
                .options
                .iter()
                .any(|o| matches!(&o.node, Some(NodeEnum::DefElem(d)) if d.defname == "full"));
            if s.transactional {
                out.push(Hit::new(
                    &VACUUM_IN_TRANSACTION,
                    None,
                    "VACUUM in a transactional migration",
                ));
            }
            if full {
                let tables = vacuum_tables(v);
                if tables.is_empty() {
                    out.push(Hit::new(
                        &VACUUM_FULL,
                        None,
                        "VACUUM FULL of the whole database",
                    ));
                }
                for t in tables {
                    out.push(Hit::new(
                        &VACUUM_FULL,
                        Some(t.clone()),
                        format!("VACUUM FULL {t}"),
                    ));
                }
            }
        }
        NodeEnum::ClusterStmt(c) => {
            let table = ast::relation(c.relation.as_ref());
            let what = format!(
                "CLUSTER {}",
                table
                    .clone()
                    .unwrap_or_else(|| "of every clustered table".into())
            );
            out.push(Hit::new(&CLUSTER, table, what));
        }
        NodeEnum::RefreshMatViewStmt(r) if !r.concurrent => {
            let view = ast::relation(r.relation.as_ref());
            let what = format!(
                "REFRESH MATERIALIZED VIEW {}",
                view.clone().unwrap_or_default()
            );
            out.push(Hit::new(&REFRESH_MATVIEW, view, what));
        }
        NodeEnum::LockStmt(l) if l.mode == 8 => {
            for r in l.relations.iter().filter_map(|n| match &n.node {
                Some(NodeEnum::RangeVar(r)) => Some(ast::table(r)),
                _ => None,
            }) {
                out.push(Hit::new(
                    &LOCK_TABLE,
                    Some(r.clone()),
                    format!("LOCK TABLE {r}"),
                ));
            }
        }
        NodeEnum::VariableSetStmt(v) if v.name == "lock_timeout" => {
            let off = v.kind == VariableSetKind::VarSetValue as i32 && v.args.iter().any(is_zero);
            if off {
                out.push(Hit::new(
                    &LOCK_TIMEOUT_DISABLED,
                    None,
                    "SET lock_timeout = 0",
                ));
            }
        }
        _ => {}
    }
    if !s.transactional
        && let Some(what) = not_idempotent(s.node)
    {
        out.push(Hit::new(&NON_IDEMPOTENT, None, what));
    }
    for name in long_identifiers(s.text) {
        out.push(Hit::new(
            &IDENTIFIER_TOO_LONG,
            None,
            format!("`{name}` is {} bytes", name.len()),
        ));
    }
}

/// Identifiers over 63 bytes as written (PostgreSQL's scanner truncates
/// them, so the parse tree no longer shows it). A cheap look at the words
/// first; the scanner confirms (a long word may sit in a string).
fn long_identifiers(text: &str) -> Vec<String> {
    let is_word = |c: char| c.is_alphanumeric() || c == '_' || c == '$';
    if !text.split(|c: char| !is_word(c)).any(|w| w.len() > 63) {
        return Vec::new();
    }
    let Ok(tokens) = pg_query::scan_tokens(text) else {
        return Vec::new();
    };
    tokens
        .iter()
        .filter(|t| t.token == pg_query::protobuf::Token::Ident as i32)
        .map(|t| {
            text[t.start as usize..t.end as usize]
                .trim_matches('"')
                .to_string()
        })
        .filter(|name| name.len() > 63)
        .collect()
}

fn vacuum_tables(v: &pg_query::protobuf::VacuumStmt) -> Vec<String> {
    v.rels
        .iter()
        .filter_map(|n| match &n.node {
            Some(NodeEnum::VacuumRelation(r)) => ast::relation(r.relation.as_ref()),
            _ => None,
        })
        .collect()
}

fn is_zero(node: &pg_query::protobuf::Node) -> bool {
    use pg_query::protobuf::a_const::Val;
    match &node.node {
        Some(NodeEnum::AConst(c)) => match &c.val {
            Some(Val::Ival(i)) => i.ival == 0,
            Some(Val::Sval(s)) => {
                let digits: String = s
                    .sval
                    .trim()
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                !digits.is_empty() && digits.bytes().all(|b| b == b'0')
            }
            _ => false,
        },
        _ => false,
    }
}

/// What a statement creates or drops without IF [NOT] EXISTS.
fn not_idempotent(node: &NodeEnum) -> Option<String> {
    match node {
        NodeEnum::CreateStmt(c) if !c.if_not_exists => {
            Some("CREATE TABLE without IF NOT EXISTS".into())
        }
        NodeEnum::IndexStmt(i) if !i.if_not_exists => {
            Some("CREATE INDEX without IF NOT EXISTS".into())
        }
        NodeEnum::DropStmt(d) if !d.missing_ok => Some(format!(
            "DROP {} without IF EXISTS",
            object_kind(d.remove_type)
        )),
        NodeEnum::AlterEnumStmt(e) if !e.new_val.is_empty() && !e.skip_if_new_val_exists => {
            Some("ALTER TYPE … ADD VALUE without IF NOT EXISTS".into())
        }
        NodeEnum::AlterTableStmt(a) => ast::commands(a).find_map(|c| {
            let add = c.subtype == at(AlterTableType::AtAddColumn);
            let drop = c.subtype == at(AlterTableType::AtDropColumn);
            (!c.missing_ok && (add || drop)).then(|| {
                format!(
                    "{} COLUMN without {}",
                    if add { "ADD" } else { "DROP" },
                    if add { "IF NOT EXISTS" } else { "IF EXISTS" }
                )
            })
        }),
        _ => None,
    }
}

fn object_kind(remove_type: i32) -> &'static str {
    match ObjectType::try_from(remove_type) {
        Ok(ObjectType::ObjectTable) => "TABLE",
        Ok(ObjectType::ObjectIndex) => "INDEX",
        Ok(ObjectType::ObjectView) => "VIEW",
        _ => "…",
    }
}
