//! Reading a [`Model`] from a live database's catalogs.
//!
//! A fixed number of catalog queries whatever the size of the schema (one per
//! kind of object, plus comments, privileges and `pg_depend`), sent together
//! on one connection so their round trips overlap. Definitions come from the
//! server's own `pg_get_*def` functions. pgwarden's bookkeeping tables and
//! objects that belong to extensions are left out.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use tokio_postgres::{Client, Row};

use super::model::{Column, Detail, Kind, Model, Object};
use crate::checks::rows::{col, opt};
use crate::error::{Error, Result};
use crate::migrate::plan::literal;

/// Schemas that are PostgreSQL's own.
const USER_NS: &str = "n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'";

fn not_member(class: &str, oid: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = '{class}'::regclass AND e.objid = {oid} AND e.deptype = 'e')"
    )
}

fn qname(ns: &str, name: &str) -> String {
    format!("quote_ident({ns}.nspname) || '.' || quote_ident({name})")
}

/// Where an object came from in the catalogs: (catalog, oid, sub-id).
type CatalogId = (String, u32, i32);

#[derive(Default)]
struct Builder {
    model: Model,
    ids: HashMap<CatalogId, String>,
    /// Relation oid → (key, qualified name).
    relations: HashMap<u32, (String, String)>,
}

impl Builder {
    fn add(&mut self, id: Option<CatalogId>, object: Object) {
        if let Some(id) = id {
            self.ids.insert(id, object.key.clone());
        }
        self.model.add(object);
    }

    fn id_key(&self, class: &str, oid: u32, sub: i32) -> Option<&String> {
        self.ids
            .get(&(class.to_string(), oid, sub))
            .or_else(|| self.ids.get(&(class.to_string(), oid, 0)))
    }
}

fn object(kind: Kind, key_name: &str, parent: Option<String>, target: String) -> Object {
    Object {
        key: format!("{}:{key_name}", kind.label()),
        kind,
        parent,
        def: String::new(),
        create: Vec::new(),
        drop: Vec::new(),
        target,
        detail: Detail::None,
        position: 0,
    }
}

async fn query(client: &Client, what: &str, sql: String) -> Result<Vec<Row>> {
    let started = std::time::Instant::now();
    let rows = client.query(&sql, &[]).await;
    // Pipelined: each time is when its answer was complete, from the first query.
    tracing::debug!(
        what,
        rows = rows.as_ref().map_or(0, Vec::len),
        seconds = started.elapsed().as_secs_f64(),
        "catalog query"
    );
    rows.map_err(|e| {
        Error::failed(format!(
            "reading {what} from the catalogs: {}",
            crate::migrate::session::db_message(&e)
        ))
    })
}

fn read<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, i: usize) -> Result<T> {
    col(row, i).map_err(Error::failed)
}

fn maybe<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, i: usize) -> Result<Option<T>> {
    opt(row, i).map_err(Error::failed)
}

/// Read the whole schema of the database `client` is connected to.
pub async fn read_model(client: &Client) -> Result<Model> {
    // All at once: tokio-postgres pipelines them on the one connection.
    let (
        (schemas, extensions, types, sequences, relations),
        (columns, constraints, indexes, functions, triggers, policies),
        (comments, acls, depends),
    ) = futures::try_join!(
        futures::future::try_join5(
            query(client, "schemas", schemas_sql()),
            query(client, "extensions", extensions_sql()),
            query(client, "types", types_sql()),
            query(client, "sequences", sequences_sql()),
            query(client, "relations", relations_sql()),
        ),
        async {
            futures::try_join!(
                query(client, "columns", columns_sql()),
                query(client, "constraints", constraints_sql()),
                query(client, "indexes", indexes_sql()),
                query(client, "functions", functions_sql()),
                query(client, "triggers", triggers_sql()),
                query(client, "policies", policies_sql()),
            )
        },
        futures::future::try_join3(
            query(client, "comments", comments_sql()),
            query(client, "privileges", acls_sql()),
            query(client, "dependencies", depends_sql()),
        ),
    )?;
    let mut b = Builder::default();
    add_schemas(&mut b, &schemas)?;
    add_extensions(&mut b, &extensions)?;
    add_types(&mut b, &types)?;
    add_sequences(&mut b, &sequences)?;
    add_relations(&mut b, &relations)?;
    add_columns(&mut b, &columns)?;
    add_constraints(&mut b, &constraints)?;
    add_indexes(&mut b, &indexes)?;
    add_functions(&mut b, &functions)?;
    add_triggers(&mut b, &triggers)?;
    add_policies(&mut b, &policies)?;
    add_comments(&mut b, &comments)?;
    add_acls(&mut b, &acls)?;
    add_depends(&mut b, &depends)?;
    b.model.prune();
    Ok(b.model)
}

fn schemas_sql() -> String {
    format!(
        "SELECT n.oid, quote_ident(n.nspname) FROM pg_namespace n WHERE {USER_NS} AND {}",
        not_member("pg_namespace", "n.oid")
    )
}

fn add_schemas(b: &mut Builder, rows: &[Row]) -> Result<()> {
    for row in rows {
        let (oid, name): (u32, String) = (read(row, 0)?, read(row, 1)?);
        let mut o = object(Kind::Schema, &name, None, format!("SCHEMA {name}"));
        o.create = vec![format!("CREATE SCHEMA {name}")];
        o.drop = vec![format!("DROP SCHEMA {name}")];
        b.add(Some(("pg_namespace".into(), oid, 0)), o);
    }
    Ok(())
}

fn extensions_sql() -> String {
    "SELECT x.oid, quote_ident(x.extname), quote_ident(n.nspname) FROM pg_extension x \
     JOIN pg_namespace n ON n.oid = x.extnamespace"
        .to_string()
}

fn add_extensions(b: &mut Builder, rows: &[Row]) -> Result<()> {
    for row in rows {
        let (oid, name, schema): (u32, String, String) =
            (read(row, 0)?, read(row, 1)?, read(row, 2)?);
        let mut o = object(Kind::Extension, &name, None, format!("EXTENSION {name}"));
        o.def = schema.clone();
        o.create = vec![format!(
            "CREATE EXTENSION IF NOT EXISTS {name} WITH SCHEMA {schema}"
        )];
        o.drop = vec![format!("DROP EXTENSION {name}")];
        b.add(Some(("pg_extension".into(), oid, 0)), o);
    }
    Ok(())
}

fn types_sql() -> String {
    format!(
        "SELECT t.oid, t.typtype::text, quote_ident(n.nspname), quote_ident(t.typname),
           ARRAY(SELECT quote_literal(e.enumlabel) FROM pg_enum e WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder),
           format_type(t.typbasetype, t.typtypmod), t.typnotnull, t.typdefault,
           ARRAY(SELECT quote_ident(c.conname) || ' ' || pg_get_constraintdef(c.oid) FROM pg_constraint c
                 WHERE c.contypid = t.oid ORDER BY c.conname)
         FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
         WHERE t.typtype IN ('e', 'd') AND {USER_NS} AND {}",
        not_member("pg_type", "t.oid")
    )
}

fn add_types(b: &mut Builder, rows: &[Row]) -> Result<()> {
    for row in rows {
        let oid: u32 = read(row, 0)?;
        let typtype: String = read(row, 1)?;
        let (schema, name): (String, String) = (read(row, 2)?, read(row, 3)?);
        let q = format!("{schema}.{name}");
        let o = if typtype == "e" {
            let labels: Vec<String> = read(row, 4)?;
            let mut o = object(Kind::Enum, &q, None, format!("TYPE {q}"));
            o.def = labels.join(", ");
            o.create = vec![format!("CREATE TYPE {q} AS ENUM ({})", o.def)];
            o.drop = vec![format!("DROP TYPE {q}")];
            o.detail = Detail::Enum {
                schema,
                name,
                labels,
            };
            o
        } else {
            domain(row, schema, name)?
        };
        b.add(Some(("pg_type".into(), oid, 0)), o);
    }
    Ok(())
}

fn domain(row: &Row, schema: String, name: String) -> Result<Object> {
    let q = format!("{schema}.{name}");
    let base: String = read(row, 5)?;
    let not_null: bool = read(row, 6)?;
    let default: Option<String> = maybe(row, 7)?;
    let checks: BTreeMap<String, String> = read::<Vec<String>>(row, 8)?
        .into_iter()
        .map(|c| match c.split_once(' ') {
            Some((n, d)) => (n.to_string(), d.to_string()),
            None => (c, String::new()),
        })
        .collect();
    let mut o = object(Kind::Domain, &q, None, format!("DOMAIN {q}"));
    let mut create = format!("CREATE DOMAIN {q} AS {base}");
    if let Some(d) = &default {
        create.push_str(&format!(" DEFAULT {d}"));
    }
    if not_null {
        create.push_str(" NOT NULL");
    }
    for (n, d) in &checks {
        create.push_str(&format!(" CONSTRAINT {n} {d}"));
    }
    o.def = create.clone();
    o.create = vec![create];
    o.drop = vec![format!("DROP DOMAIN {q}")];
    o.detail = Detail::Domain {
        schema,
        name,
        base,
        default,
        not_null,
        checks,
    };
    Ok(o)
}

fn sequences_sql() -> String {
    format!(
        "SELECT c.oid, {q}, format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement, s.seqmax, s.seqmin,
           s.seqcache, s.seqcycle, ot.oid, quote_ident(oa.attname)
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_sequence s ON s.seqrelid = c.oid
         LEFT JOIN pg_depend od ON od.classid = 'pg_class'::regclass AND od.objid = c.oid
              AND od.refclassid = 'pg_class'::regclass AND od.deptype = 'a' AND od.refobjsubid > 0
         LEFT JOIN pg_class ot ON ot.oid = od.refobjid
         LEFT JOIN pg_attribute oa ON oa.attrelid = od.refobjid AND oa.attnum = od.refobjsubid
         WHERE c.relkind = 'S' AND {USER_NS} AND {}
           AND NOT EXISTS (SELECT 1 FROM pg_depend i WHERE i.classid = 'pg_class'::regclass AND i.objid = c.oid AND i.deptype = 'i')",
        not_member("pg_class", "c.oid"),
        q = qname("n", "c.relname"),
    )
}

fn add_sequences(b: &mut Builder, rows: &[Row]) -> Result<()> {
    for row in rows {
        let oid: u32 = read(row, 0)?;
        let q: String = read(row, 1)?;
        let options = format!(
            "AS {} INCREMENT BY {} MINVALUE {} MAXVALUE {} START WITH {} CACHE {} {}",
            read::<String>(row, 2)?,
            read::<i64>(row, 4)?,
            read::<i64>(row, 6)?,
            read::<i64>(row, 5)?,
            read::<i64>(row, 3)?,
            read::<i64>(row, 7)?,
            if read::<bool>(row, 8)? {
                "CYCLE"
            } else {
                "NO CYCLE"
            }
        );
        let mut o = object(Kind::Sequence, &q, None, format!("SEQUENCE {q}"));
        o.def = options.clone();
        o.create = vec![format!("CREATE SEQUENCE {q} {options}")];
        // IF EXISTS: dropping its owning column may already have dropped it.
        o.drop = vec![format!("DROP SEQUENCE IF EXISTS {q}")];
        o.detail = Detail::Sequence { options };
        let key = o.key.clone();
        b.add(Some(("pg_class".into(), oid, 0)), o);
        // Ownership is its own object: it needs the column, the column's
        // default (nextval) needs the sequence.
        if let (Some(table), Some(column)) = (maybe::<u32>(row, 9)?, maybe::<String>(row, 10)?) {
            let mut owned = object(Kind::Owned, &q, Some(key), format!("SEQUENCE {q}"));
            owned.def = format!("{table}.{column}");
            // Resolved once relations are known (add_relations runs later).
            owned.create = vec![format!("{table}\u{0}{column}")];
            owned.drop = vec![format!("ALTER SEQUENCE {q} OWNED BY NONE")];
            b.model.add(owned);
        }
    }
    Ok(())
}

fn relations_sql() -> String {
    format!(
        "SELECT c.oid, c.relkind::text, {q}, c.relpersistence::text,
           CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END,
           CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END,
           ARRAY(SELECT {pq} FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent
                 JOIN pg_namespace pn ON pn.oid = p.relnamespace WHERE i.inhrelid = c.oid ORDER BY i.inhseqno),
           CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END,
           array_to_string(c.reloptions, ', '), c.relrowsecurity, c.relforcerowsecurity, c.relispartition
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p', 'v', 'm') AND {USER_NS} AND {}
           AND c.relname NOT IN ('{}', '{}', '{}')",
        not_member("pg_class", "c.oid"),
        crate::migrate::plan::HISTORY_TABLE,
        crate::migrate::history::INCOMPLETE_TABLE,
        super::drift::FINGERPRINT_TABLE,
        q = qname("n", "c.relname"),
        pq = qname("pn", "p.relname"),
    )
}

fn add_relations(b: &mut Builder, rows: &[Row]) -> Result<()> {
    for row in rows {
        let oid: u32 = read(row, 0)?;
        let relkind: String = read(row, 1)?;
        let q: String = read(row, 2)?;
        let options: Option<String> = maybe::<String>(row, 8)?.filter(|o| !o.is_empty());
        let with = options.map(|o| format!(" WITH ({o})")).unwrap_or_default();
        let o = match relkind.as_str() {
            "v" | "m" => view(row, &relkind, &q, &with)?,
            _ => table(row, &relkind, &q, &with)?,
        };
        let key = o.key.clone();
        if o.kind == Kind::Table && read::<bool>(row, 9)? {
            let force = read::<bool>(row, 10)?;
            let mut rls = object(Kind::Rls, &q, Some(key.clone()), format!("TABLE {q}"));
            rls.def = force.to_string();
            rls.create = vec![format!("ALTER TABLE {q} ENABLE ROW LEVEL SECURITY")];
            if force {
                rls.create
                    .push(format!("ALTER TABLE {q} FORCE ROW LEVEL SECURITY"));
            }
            rls.drop = vec![
                format!("ALTER TABLE {q} DISABLE ROW LEVEL SECURITY"),
                format!("ALTER TABLE {q} NO FORCE ROW LEVEL SECURITY"),
            ];
            b.model.add(rls);
        }
        b.relations.insert(oid, (key, q));
        b.add(Some(("pg_class".into(), oid, 0)), o);
    }
    resolve_ownership(b);
    Ok(())
}

/// Sequences were read before the tables their ownership names.
fn resolve_ownership(b: &mut Builder) {
    let relations = &b.relations;
    for o in b
        .model
        .objects
        .values_mut()
        .filter(|o| o.kind == Kind::Owned)
    {
        let Some((table, column)) = o
            .create
            .first()
            .and_then(|c| c.split_once('\u{0}'))
            .map(|(t, c)| (t.to_string(), c.to_string()))
        else {
            continue;
        };
        let Some((_, tq)) = table.parse::<u32>().ok().and_then(|t| relations.get(&t)) else {
            o.create.clear();
            o.parent = Some(String::new()); // an owner outside the model: pruned
            continue;
        };
        let seq = o.key.trim_start_matches("sequence ownership:").to_string();
        o.def = format!("{tq}.{column}");
        o.create = vec![format!("ALTER SEQUENCE {seq} OWNED BY {tq}.{column}")];
        let column_key = format!("column:{tq}.{column}");
        b.model.deps.insert((o.key.clone(), column_key));
    }
}

fn view(row: &Row, relkind: &str, q: &str, with: &str) -> Result<Object> {
    let def: String = read(row, 7)?;
    let def = def.trim_end().trim_end_matches(';').to_string();
    let (kind, word) = if relkind == "m" {
        (Kind::MatView, "MATERIALIZED VIEW")
    } else {
        (Kind::View, "VIEW")
    };
    let mut o = object(kind, q, None, format!("{word} {q}"));
    let create = format!("CREATE {word} {q}{with} AS\n{def}");
    o.def = create.clone();
    o.create = vec![create];
    o.drop = vec![format!("DROP {word} {q}")];
    Ok(o)
}

fn table(row: &Row, relkind: &str, q: &str, with: &str) -> Result<Object> {
    let unlogged = read::<String>(row, 3)? == "u";
    let partkey: Option<String> = maybe(row, 4)?;
    let bound: Option<String> = maybe(row, 5)?;
    let parents: Vec<String> = read(row, 6)?;
    let is_partition: bool = read(row, 11)?;
    let mut tail = String::new();
    if !is_partition && !parents.is_empty() {
        tail.push_str(&format!(" INHERITS ({})", parents.join(", ")));
    }
    if let Some(key) = &partkey {
        tail.push_str(&format!(" PARTITION BY {key}"));
    }
    tail.push_str(with);
    let head = match (&bound, parents.first()) {
        (Some(bound), Some(parent)) if is_partition => {
            format!("TABLE {q} PARTITION OF {parent} {bound}")
        }
        _ => format!("TABLE {q} (\n{{columns}}\n)"),
    };
    let mut o = object(Kind::Table, q, None, format!("TABLE {q}"));
    // Columns are filled in by add_columns through the {columns} placeholder.
    o.create = vec![format!(
        "CREATE {}{head}{tail}",
        if unlogged { "UNLOGGED " } else { "" }
    )];
    o.drop = vec![format!("DROP TABLE {q}")];
    let shape = format!("{relkind}|{partkey:?}|{bound:?}|{parents:?}|{with}");
    o.def = format!("{shape}|{unlogged}");
    o.detail = Detail::Table {
        qname: q.to_string(),
        unlogged,
        shape,
    };
    Ok(o)
}

fn columns_sql() -> String {
    "SELECT a.attrelid, a.attnum, quote_ident(a.attname), format_type(a.atttypid, a.atttypmod),
       a.attnotnull, a.attidentity::text, a.attgenerated::text,
       CASE WHEN a.attcollation <> t.typcollation THEN quote_ident(cn.nspname) || '.' || quote_ident(co.collname) END,
       pg_get_expr(ad.adbin, ad.adrelid), ad.oid, a.attislocal
     FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
     JOIN pg_type t ON t.oid = a.atttypid
     LEFT JOIN pg_collation co ON co.oid = a.attcollation
     LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace
     LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
     WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
       AND c.relnamespace IN (SELECT n.oid FROM pg_namespace n WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema')
     ORDER BY a.attrelid, a.attnum"
        .to_string()
}

fn add_columns(b: &mut Builder, rows: &[Row]) -> Result<()> {
    let mut lists: HashMap<u32, Vec<String>> = HashMap::new();
    for row in rows {
        let rel: u32 = read(row, 0)?;
        let Some((table_key, tq)) = b.relations.get(&rel).cloned() else {
            continue;
        };
        if !read::<bool>(row, 10)? {
            continue; // inherited from a parent or the partitioned table
        }
        let attnum: i16 = read(row, 1)?;
        let name: String = read(row, 2)?;
        let identity = maybe::<String>(row, 5)?.and_then(|s| s.chars().next());
        let generated = maybe::<String>(row, 6)?.filter(|g| g == "s");
        let expr: Option<String> = maybe(row, 8)?;
        let column = Column {
            table: tq.clone(),
            name: name.clone(),
            data_type: read(row, 3)?,
            collation: maybe(row, 7)?,
            not_null: read(row, 4)?,
            identity,
            generated: generated.as_ref().and(expr.clone()),
            default: if generated.is_none() {
                expr.clone()
            } else {
                None
            },
        };
        lists
            .entry(rel)
            .or_default()
            .push(format!("    {}", column.definition()));
        let cq = format!("{tq}.{name}");
        let mut o = object(Kind::Column, &cq, Some(table_key), format!("COLUMN {cq}"));
        o.def = column.def();
        o.create = vec![format!(
            "ALTER TABLE {tq} ADD COLUMN {}",
            column.definition()
        )];
        o.drop = vec![format!("ALTER TABLE {tq} DROP COLUMN {name}")];
        let column_key = o.key.clone();
        if let (Some(default), None) = (&column.default, &column.generated) {
            let mut d = object(Kind::Default, &cq, Some(column_key), format!("COLUMN {cq}"));
            d.def = default.clone();
            d.create = vec![format!(
                "ALTER TABLE {tq} ALTER COLUMN {name} SET DEFAULT {default}"
            )];
            d.drop = vec![format!("ALTER TABLE {tq} ALTER COLUMN {name} DROP DEFAULT")];
            if let Some(oid) = maybe::<u32>(row, 9)? {
                b.ids.insert(("pg_attrdef".into(), oid, 0), d.key.clone());
            }
            b.model.add(d);
        }
        o.detail = Detail::Column(column);
        o.position = attnum.into();
        b.add(Some(("pg_class".into(), rel, attnum as i32)), o);
    }
    for (rel, (key, _)) in &b.relations {
        if let Some(table) = b.model.objects.get_mut(key) {
            let columns = lists.remove(rel).unwrap_or_default().join(",\n");
            for s in &mut table.create {
                *s = s.replace("{columns}", &columns);
            }
        }
    }
    Ok(())
}

fn constraints_sql() -> String {
    "SELECT co.oid, co.conrelid, quote_ident(co.conname), co.contype::text, pg_get_constraintdef(co.oid), co.conindid
     FROM pg_constraint co
     WHERE co.conrelid <> 0 AND co.contype IN ('p', 'u', 'f', 'c', 'x') AND co.conislocal AND co.conparentid = 0"
        .to_string()
}

fn add_constraints(b: &mut Builder, rows: &[Row]) -> Result<()> {
    for row in rows {
        let oid: u32 = read(row, 0)?;
        let Some((table_key, tq)) = b.relations.get(&read::<u32>(row, 1)?).cloned() else {
            continue;
        };
        let name: String = read(row, 2)?;
        let contype = read::<String>(row, 3)?.chars().next().unwrap_or('c');
        let def: String = read(row, 4)?;
        let mut o = object(
            Kind::Constraint,
            &format!("{tq}.{name}"),
            Some(table_key),
            format!("CONSTRAINT {name} ON {tq}"),
        );
        o.def = def.clone();
        o.create = vec![format!("ALTER TABLE {tq} ADD CONSTRAINT {name} {def}")];
        o.drop = vec![format!("ALTER TABLE {tq} DROP CONSTRAINT {name}")];
        o.detail = Detail::Constraint {
            table: tq,
            name,
            contype,
            def,
        };
        if matches!(contype, 'p' | 'u' | 'x') {
            // A foreign key depends on the referenced key's index.
            let index: u32 = read(row, 5)?;
            b.ids.insert(("pg_class".into(), index, 0), o.key.clone());
        }
        b.add(Some(("pg_constraint".into(), oid, 0)), o);
    }
    Ok(())
}

fn indexes_sql() -> String {
    format!(
        "SELECT i.indexrelid, i.indrelid, {q}, pg_get_indexdef(i.indexrelid), ic.relkind = 'I'
         FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_namespace n ON n.oid = ic.relnamespace
         WHERE NOT ic.relispartition AND {USER_NS}
           AND NOT EXISTS (SELECT 1 FROM pg_constraint co WHERE co.conindid = i.indexrelid AND co.contype IN ('p', 'u', 'x'))",
        q = qname("n", "ic.relname"),
    )
}

fn add_indexes(b: &mut Builder, rows: &[Row]) -> Result<()> {
    for row in rows {
        let oid: u32 = read(row, 0)?;
        let Some((table_key, _)) = b.relations.get(&read::<u32>(row, 1)?).cloned() else {
            continue;
        };
        let q: String = read(row, 2)?;
        let mut def: String = read(row, 3)?;
        if read::<bool>(row, 4)? {
            // A partitioned table's index: "ON ONLY" would skip its partitions.
            def = def.replacen(" ON ONLY ", " ON ", 1);
        }
        let mut o = object(Kind::Index, &q, Some(table_key), format!("INDEX {q}"));
        o.def = def.clone();
        o.create = vec![def];
        o.drop = vec![format!("DROP INDEX {q}")];
        b.add(Some(("pg_class".into(), oid, 0)), o);
    }
    Ok(())
}

fn functions_sql() -> String {
    format!(
        "SELECT p.oid, {q}, pg_get_function_identity_arguments(p.oid), p.prokind::text,
           pg_get_functiondef(p.oid), pg_get_function_result(p.oid)
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE p.prokind IN ('f', 'p') AND {USER_NS} AND {}",
        not_member("pg_proc", "p.oid"),
        q = qname("n", "p.proname"),
    )
}

fn add_functions(b: &mut Builder, rows: &[Row]) -> Result<()> {
    for row in rows {
        let oid: u32 = read(row, 0)?;
        let q: String = read(row, 1)?;
        let args: String = read(row, 2)?;
        let word = if read::<String>(row, 3)? == "p" {
            "PROCEDURE"
        } else {
            "FUNCTION"
        };
        let sig = format!("{q}({args})");
        let def: String = read(row, 4)?;
        let mut o = object(Kind::Function, &sig, None, format!("{word} {sig}"));
        o.def = def.clone();
        o.create = vec![def.trim_end().to_string()];
        o.drop = vec![format!("DROP {word} {sig}")];
        o.detail = Detail::Function {
            result: format!("{word} {}", maybe::<String>(row, 5)?.unwrap_or_default()),
        };
        b.add(Some(("pg_proc".into(), oid, 0)), o);
    }
    Ok(())
}

fn triggers_sql() -> String {
    "SELECT t.oid, t.tgrelid, quote_ident(t.tgname), pg_get_triggerdef(t.oid)
     FROM pg_trigger t WHERE NOT t.tgisinternal AND t.tgparentid = 0"
        .to_string()
}

fn add_triggers(b: &mut Builder, rows: &[Row]) -> Result<()> {
    add_on_tables(
        b,
        rows,
        Kind::Trigger,
        "TRIGGER",
        "pg_trigger",
        |_, _, def| def.to_string(),
    )
}

/// Objects that hang off a table, read as (oid, table oid, quoted name,
/// definition): triggers and policies. `create` turns (name, table, definition)
/// into the CREATE statement; the object is dropped `DROP {word} name ON table`.
fn add_on_tables(
    b: &mut Builder,
    rows: &[Row],
    kind: Kind,
    word: &str,
    catalog: &str,
    create: impl Fn(&str, &str, &str) -> String,
) -> Result<()> {
    for row in rows {
        let oid: u32 = read(row, 0)?;
        let Some((table_key, tq)) = b.relations.get(&read::<u32>(row, 1)?).cloned() else {
            continue;
        };
        let name: String = read(row, 2)?;
        let def: String = read(row, 3)?;
        let mut o = object(
            kind,
            &format!("{tq}.{name}"),
            Some(table_key),
            format!("{word} {name} ON {tq}"),
        );
        o.create = vec![create(&name, &tq, &def)];
        o.def = def;
        o.drop = vec![format!("DROP {word} {name} ON {tq}")];
        b.add(Some((catalog.into(), oid, 0)), o);
    }
    Ok(())
}

fn policies_sql() -> String {
    "SELECT p.oid, p.polrelid, quote_ident(p.polname),
       'AS ' || CASE WHEN p.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END
       || ' FOR ' || CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
                                   WHEN 'd' THEN 'DELETE' ELSE 'ALL' END
       || ' TO ' || (SELECT string_agg(CASE WHEN r = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(r)) END, ', '
                                      ORDER BY CASE WHEN r = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(r)) END)
                     FROM unnest(p.polroles) r)
       || coalesce(' USING (' || pg_get_expr(p.polqual, p.polrelid) || ')', '')
       || coalesce(' WITH CHECK (' || pg_get_expr(p.polwithcheck, p.polrelid) || ')', '')
     FROM pg_policy p"
        .to_string()
}

fn add_policies(b: &mut Builder, rows: &[Row]) -> Result<()> {
    add_on_tables(
        b,
        rows,
        Kind::Policy,
        "POLICY",
        "pg_policy",
        |name, tq, def| format!("CREATE POLICY {name} ON {tq} {def}"),
    )
}

fn comments_sql() -> String {
    "SELECT d.classoid::regclass::text, d.objoid, d.objsubid, d.description
     FROM pg_description d WHERE d.objoid >= 16384"
        .to_string()
}

fn add_comments(b: &mut Builder, rows: &[Row]) -> Result<()> {
    for row in rows {
        let class: String = read(row, 0)?;
        let Some(key) = b.ids.get(&(class, read(row, 1)?, read(row, 2)?)).cloned() else {
            continue;
        };
        let Some(owner) = b.model.objects.get(&key) else {
            continue;
        };
        let text: String = read(row, 3)?;
        let target = owner.target.clone();
        let mut o = object(Kind::Comment, &key, Some(key.clone()), target.clone());
        o.create = vec![format!("COMMENT ON {target} IS {}", literal(&text))];
        o.drop = vec![format!("COMMENT ON {target} IS NULL")];
        o.def = text;
        b.model.add(o);
    }
    Ok(())
}

fn acls_sql() -> String {
    let entry = "CASE WHEN e.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(e.grantee)) END \
                 || chr(9) || e.privilege_type || chr(9) || e.is_grantable::text";
    format!(
        "WITH o(cls, oid, owner, acl, deflt) AS (
           SELECT 'pg_class', c.oid, c.relowner, c.relacl, acldefault((CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END)::\"char\", c.relowner)
             FROM pg_class c WHERE c.relacl IS NOT NULL AND c.oid >= 16384
           UNION ALL SELECT 'pg_proc', p.oid, p.proowner, p.proacl, acldefault('f', p.proowner)
             FROM pg_proc p WHERE p.proacl IS NOT NULL AND p.oid >= 16384
           UNION ALL SELECT 'pg_namespace', n.oid, n.nspowner, n.nspacl, acldefault('n', n.nspowner)
             FROM pg_namespace n WHERE n.nspacl IS NOT NULL AND {USER_NS}
           UNION ALL SELECT 'pg_type', t.oid, t.typowner, t.typacl, acldefault('T', t.typowner)
             FROM pg_type t WHERE t.typacl IS NOT NULL AND t.oid >= 16384)
         SELECT o.cls, o.oid,
           ARRAY(SELECT {entry} FROM aclexplode(o.acl) e WHERE e.grantee <> o.owner),
           ARRAY(SELECT {entry} FROM aclexplode(o.deflt) e WHERE e.grantee <> o.owner)
         FROM o"
    )
}

fn add_acls(b: &mut Builder, rows: &[Row]) -> Result<()> {
    for row in rows {
        let class: String = read(row, 0)?;
        let Some(key) = b.ids.get(&(class, read(row, 1)?, 0)).cloned() else {
            continue;
        };
        let Some(owner) = b.model.objects.get(&key) else {
            continue;
        };
        let entries: BTreeSet<String> = read::<Vec<String>>(row, 2)?.into_iter().collect();
        let default: BTreeSet<String> = read::<Vec<String>>(row, 3)?.into_iter().collect();
        if entries == default {
            continue;
        }
        let target = acl_target(owner);
        let mut o = object(Kind::Acl, &key, Some(key.clone()), target.clone());
        o.def = entries.iter().cloned().collect::<Vec<_>>().join(";");
        o.create = super::diff::acl_changes(&target, &default, &entries);
        o.drop = super::diff::acl_changes(&target, &entries, &default);
        o.detail = Detail::Acl {
            target,
            entries,
            default,
        };
        b.model.add(o);
    }
    Ok(())
}

/// How GRANT names an object (views and sequences are tables to GRANT,
/// except that sequences have their own word).
fn acl_target(o: &Object) -> String {
    match o.kind {
        Kind::View | Kind::MatView => {
            format!("TABLE {}", o.key.split_once(':').map_or("", |(_, n)| n))
        }
        _ => o.target.clone(),
    }
}

/// pg_depend with both ends resolved to what the model knows: a view's rule
/// is the view, a column's default is the default, a table's row type is the
/// table, an array type is its element type.
fn depends_sql() -> String {
    let side = |c: &str, o: &str, s: &str| {
        format!(
            "SELECT 'pg_class'::text k, rw.ev_class o, 0 s FROM pg_rewrite rw WHERE d.{c} = 'pg_rewrite'::regclass AND rw.oid = d.{o}
             UNION ALL SELECT 'pg_class', t.typrelid, 0 FROM pg_type t WHERE d.{c} = 'pg_type'::regclass AND t.oid = d.{o} AND t.typrelid <> 0
             UNION ALL SELECT 'pg_type', t.typelem, 0 FROM pg_type t WHERE d.{c} = 'pg_type'::regclass AND t.oid = d.{o}
                       AND t.typrelid = 0 AND t.typcategory = 'A' AND t.typelem <> 0
             UNION ALL SELECT d.{c}::regclass::text, d.{o}, d.{s} WHERE d.{c} <> 'pg_rewrite'::regclass
                       AND NOT EXISTS (SELECT 1 FROM pg_type t WHERE d.{c} = 'pg_type'::regclass AND t.oid = d.{o}
                                       AND (t.typrelid <> 0 OR (t.typcategory = 'A' AND t.typelem <> 0)))"
        )
    };
    format!(
        "SELECT a.k, a.o, a.s, r.k, r.o, r.s FROM pg_depend d
         CROSS JOIN LATERAL ({}) a CROSS JOIN LATERAL ({}) r
         WHERE d.objid >= 16384 AND d.refobjid >= 16384 AND d.deptype IN ('n', 'a')",
        side("classid", "objid", "objsubid"),
        side("refclassid", "refobjid", "refobjsubid"),
    )
}

fn add_depends(b: &mut Builder, rows: &[Row]) -> Result<()> {
    for row in rows {
        let (class, oid, sub): (String, u32, i32) = (read(row, 0)?, read(row, 1)?, read(row, 2)?);
        let (rclass, roid, rsub): (String, u32, i32) =
            (read(row, 3)?, read(row, 4)?, read(row, 5)?);
        let (Some(from), Some(to)) = (b.id_key(&class, oid, sub), b.id_key(&rclass, roid, rsub))
        else {
            continue;
        };
        let mut from = from.clone();
        // A sequence's dependency on its owning column is its ownership's.
        if from.starts_with("sequence:") && to.starts_with("column:") {
            from = format!("sequence ownership:{}", &from["sequence:".len()..]);
        }
        let to = to.clone();
        b.model.deps.insert((from, to));
    }
    Ok(())
}
