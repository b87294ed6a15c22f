//! `pgwarden migrate trace`: apply the pending migrations to a scratch copy
//! of the target's schema and report, per statement, the locks it took, what
//! it rewrote and how long it ran — joined with the live target's table
//! sizes to say what that would mean in production.
//!
//! The copy is `pg_dump --schema-only` of the target restored into a
//! throwaway cluster ([`crate::cluster::Cluster`]); the target itself is only
//! read (its history, its dump, its table sizes). In a transactional file the
//! locks are read from `pg_locks` of the migration's own backend after each
//! statement, before the transaction ends (locks accumulate: each statement
//! is credited with the ones it added). A no-transaction statement commits
//! as it returns, so a second session watches its backend while it runs,
//! holding a snapshot open so that `CONCURRENTLY` waits for it and cannot
//! slip by unseen; the watcher lets go as soon as the statement waits on it.
//! A rewrite is a relation whose `relfilenode` changed.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_postgres::Client;

use super::files::{Migration, Script};
use super::lint::{Sizes, human_bytes, sizes};
use super::session::{Session, db_message};
use super::{history, split};
use crate::config::{Config, TargetConfig};
use crate::error::{Error, Result};

/// One relation lock a statement took.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Lock {
    pub relation: String,
    pub mode: String,
}

/// What one statement did on the scratch copy.
#[derive(Clone, Debug, Serialize)]
pub struct TracedStatement {
    pub file: PathBuf,
    pub line: usize,
    pub statement: String,
    pub transactional: bool,
    pub locks: Vec<Lock>,
    /// Relations whose relfilenode changed (rewritten).
    pub rewritten: Vec<String>,
    pub duration_ms: f64,
    /// What the locks and rewrites would mean on the target, by its table sizes.
    pub production: Vec<String>,
    /// The error, if the statement failed on the copy (tracing stops there).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Trace the target's pending migrations on a scratch copy of its schema.
pub async fn trace(config: &Config, target: &TargetConfig) -> Result<Vec<TracedStatement>> {
    let files = super::load(config)?;
    let live = Session::open(target, &config.migrations)
        .await
        .map_err(|e| e.context(format!("target `{}`", target.name)))?;
    let applied: BTreeSet<i64> = history::read(&live.client)
        .await?
        .iter()
        .map(|r| r.version)
        .collect();
    let pending: Vec<&Migration> = files
        .iter()
        .filter(|m| !applied.contains(&m.version))
        .collect();
    if pending.is_empty() {
        return Ok(Vec::new());
    }
    let schema = dump_schema(config, target).await?;
    // On schema.dev_url when set, else in a throwaway local cluster.
    let mut provider = crate::schema::scratch::Scratch::new(config);
    let traced = trace_on(&mut provider, &schema, &pending).await;
    provider.close().await;
    let mut traced = traced?;
    let names: Vec<String> = traced
        .iter()
        .flat_map(|t| t.locks.iter().map(|l| l.relation.clone()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let sizes = sizes::lookup(&live.client, &names).await?;
    for t in &mut traced {
        t.production = production(t, &sizes);
    }
    Ok(traced)
}

/// Restore `schema` into a new scratch database and apply `pending` there,
/// statement by statement; its sessions end before the database goes.
async fn trace_on(
    provider: &mut crate::schema::scratch::Scratch,
    schema: &str,
    pending: &[&Migration],
) -> Result<Vec<TracedStatement>> {
    let scratch = restore(&provider.database().await?, schema).await?;
    let mut traced = Vec::new();
    for migration in pending {
        if !apply(&scratch, &migration.up, &mut traced).await? {
            break;
        }
    }
    Ok(traced)
}

/// The target's schema as SQL (`pg_dump --schema-only`), psql meta-commands removed.
async fn dump_schema(config: &Config, target: &TargetConfig) -> Result<String> {
    let tools = crate::backup::tools::Tools::locate(config.backup.bin_dir.as_deref())?;
    let connection = crate::backup::tools::Connection::new(target, None);
    let mut command = connection.command(&tools.pg_dump);
    command
        .args(["--schema-only", "--no-owner", "--no-privileges"])
        .arg(connection.dbname_arg());
    let out =
        crate::backup::tools::run(&mut command, "pg_dump --schema-only of the target").await?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('\\'))
        .collect::<Vec<_>>()
        .join("\n"))
}

/// The scratch database `url` loaded with the schema; the sessions for the migrations.
async fn restore(url: &crate::dburl::DbUrl, schema: &str) -> Result<Scratch> {
    let loader = connect(url).await?;
    loader.batch_execute(schema).await.map_err(|e| {
        Error::failed(format!(
            "restoring the target's schema into the scratch copy: {}",
            db_message(&e)
        ))
    })?;
    let client = connect(url).await?;
    let watcher = connect(url).await?;
    let row = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .map_err(|e| Error::failed(format!("scratch copy: {}", db_message(&e))))?;
    let pid: i32 = crate::checks::rows::value(&row, 0, "the scratch session's pid")?;
    Ok(Scratch {
        client,
        watcher,
        pid,
    })
}

async fn connect(url: &crate::dburl::DbUrl) -> Result<Client> {
    let target = TargetConfig::from_url("scratch", url.clone());
    crate::pool::connect_direct(&target).await
}

struct Scratch {
    client: Client,
    watcher: Client,
    pid: i32,
}

/// Apply one file, tracing each statement; false when a statement failed.
async fn apply(scratch: &Scratch, script: &Script, out: &mut Vec<TracedStatement>) -> Result<bool> {
    let sql = |e: tokio_postgres::Error| Error::failed(format!("scratch copy: {}", db_message(&e)));
    if script.transactional {
        scratch.client.batch_execute("BEGIN").await.map_err(sql)?;
    }
    let mut held: BTreeSet<Lock> = BTreeSet::new();
    for statement in &script.statements {
        let before = relfilenodes(&scratch.client).await?;
        let started = Instant::now();
        let (result, locks) = if script.transactional {
            let result = scratch.client.batch_execute(&statement.text).await;
            let now = own_locks(&scratch.client, scratch.pid).await?;
            let new: Vec<Lock> = now.difference(&held).cloned().collect();
            held = now;
            (result, new)
        } else {
            watched(scratch, &statement.text).await?
        };
        let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        let error = result.err().map(|e| db_message(&e));
        let rewritten = if error.is_none() {
            rewrites(&before, &relfilenodes(&scratch.client).await?)
        } else {
            Vec::new()
        };
        let failed = error.is_some();
        out.push(TracedStatement {
            file: script.path.clone(),
            line: split::line_of(&script.sql, statement.code_offset),
            statement: statement.code().to_string(),
            transactional: script.transactional,
            locks,
            rewritten,
            duration_ms,
            production: Vec::new(),
            error,
        });
        if failed {
            if script.transactional {
                let _ = scratch.client.batch_execute("ROLLBACK").await;
            }
            return Ok(false);
        }
    }
    if script.transactional {
        scratch.client.batch_execute("COMMIT").await.map_err(sql)?;
    }
    Ok(true)
}

const LOCKS: &str = "SELECT coalesce(l.relation::regclass::text, ''), l.mode FROM pg_locks l
     WHERE l.pid = $1 AND l.locktype = 'relation'
       AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())";

/// Relation locks held by `pid`, the catalogs (and the lock query's own) left out.
async fn own_locks(client: &Client, pid: i32) -> Result<BTreeSet<Lock>> {
    let rows = client.query(LOCKS, &[&pid]).await.map_err(|e| {
        Error::failed(format!(
            "reading pg_locks on the scratch copy: {}",
            db_message(&e)
        ))
    })?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let relation: Option<String> = r.try_get(0).ok().flatten();
            let mode: Option<String> = r.try_get(1).ok().flatten();
            Some(Lock {
                relation: relation?,
                mode: mode?,
            })
        })
        // Catalogs, and relations gone by now (a rewrite's transient heap: only an oid).
        .filter(|l| {
            !l.relation.starts_with("pg_") && !l.relation.starts_with("information_schema.")
        })
        .filter(|l| !l.relation.bytes().all(|b| b.is_ascii_digit()))
        .collect())
}

/// Run a no-transaction statement while the watcher samples its backend's
/// locks, holding a snapshot (so CONCURRENTLY waits) until the statement waits on it.
async fn watched(
    scratch: &Scratch,
    text: &str,
) -> Result<(std::result::Result<(), tokio_postgres::Error>, Vec<Lock>)> {
    let watcher = &scratch.watcher;
    let sql = |e: tokio_postgres::Error| {
        Error::failed(format!("scratch copy watcher: {}", db_message(&e)))
    };
    watcher
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1")
        .await
        .map_err(sql)?;
    let mut seen = BTreeSet::new();
    let mut holding = true;
    let started = Instant::now();
    let run = scratch.client.batch_execute(text);
    tokio::pin!(run);
    let result = loop {
        tokio::select! {
            result = &mut run => break result,
            _ = tokio::time::sleep(Duration::from_millis(2)) => {
                seen.extend(own_locks(watcher, scratch.pid).await?);
                if holding && (waits(watcher, scratch.pid).await? || started.elapsed() > LET_GO_AFTER) {
                    watcher.batch_execute("COMMIT").await.map_err(sql)?;
                    holding = false;
                }
            }
        }
    };
    if holding {
        watcher.batch_execute("COMMIT").await.map_err(sql)?;
    }
    Ok((result, seen.into_iter().collect()))
}

/// The watcher lets go by then even if the statement never waited on it
/// (it waits on something else: holding on would only add to that).
const LET_GO_AFTER: Duration = Duration::from_secs(10);

async fn waits(watcher: &Client, pid: i32) -> Result<bool> {
    let row = watcher
        .query_opt(
            "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1",
            &[&pid],
        )
        .await
        .map_err(|e| {
            Error::failed(format!(
                "reading pg_stat_activity on the scratch copy: {}",
                db_message(&e)
            ))
        })?;
    Ok(row
        .and_then(|r| r.try_get::<_, Option<bool>>(0).ok().flatten())
        .unwrap_or(false))
}

/// oid → (name, relfilenode) of the user relations.
async fn relfilenodes(client: &Client) -> Result<HashMap<u32, (String, u32)>> {
    let rows = client
        .query(
            "SELECT c.oid, c.oid::regclass::text, c.relfilenode FROM pg_class c
              JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
               AND c.relfilenode <> 0",
            &[],
        )
        .await
        .map_err(|e| Error::failed(format!("reading pg_class on the scratch copy: {}", db_message(&e))))?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let oid: Option<u32> = r.try_get(0).ok().flatten();
            let name: Option<String> = r.try_get(1).ok().flatten();
            let node: Option<u32> = r.try_get(2).ok().flatten();
            Some((oid?, (name?, node?)))
        })
        .collect())
}

fn rewrites(
    before: &HashMap<u32, (String, u32)>,
    after: &HashMap<u32, (String, u32)>,
) -> Vec<String> {
    let mut names: Vec<String> = before
        .iter()
        .filter_map(|(oid, (name, node))| {
            after
                .get(oid)
                .filter(|(_, n)| n != node)
                .map(|_| name.clone())
        })
        .collect();
    names.sort();
    names
}

/// What each relation's strongest lock (and a rewrite) would mean on the
/// target, by the relation's size there.
fn production(t: &TracedStatement, sizes: &Sizes) -> Vec<String> {
    let mut strongest: Vec<&Lock> = Vec::new();
    for lock in &t.locks {
        match strongest.iter_mut().find(|l| l.relation == lock.relation) {
            Some(l) if rank(&lock.mode) > rank(&l.mode) => *l = lock,
            Some(_) => {}
            None => strongest.push(lock),
        }
    }
    let until = if t.transactional {
        "until the migration commits"
    } else {
        "while the statement runs"
    };
    strongest
        .into_iter()
        .filter_map(|lock| {
            let size = sizes.get(&lock.relation)?;
            let effect = effect(&lock.mode)?;
            let how_big = if size.bytes == 0 {
                "empty in the target, so brief".to_string()
            } else {
                format!("{} in the target", human_bytes(size.bytes))
            };
            let rewrite = if t.rewritten.contains(&lock.relation) && size.bytes > 0 {
                format!(
                    ", and all {} of it is rewritten while the lock is held",
                    human_bytes(size.bytes)
                )
            } else {
                String::new()
            };
            Some(format!(
                "{} on {} ({how_big}): {effect} {until}{rewrite}",
                lock.mode, lock.relation
            ))
        })
        .collect()
}

/// PostgreSQL's table lock modes, weakest first.
fn rank(mode: &str) -> usize {
    const MODES: [&str; 8] = [
        "AccessShareLock",
        "RowShareLock",
        "RowExclusiveLock",
        "ShareUpdateExclusiveLock",
        "ShareLock",
        "ShareRowExclusiveLock",
        "ExclusiveLock",
        "AccessExclusiveLock",
    ];
    MODES.iter().position(|m| *m == mode).unwrap_or(0)
}

fn effect(mode: &str) -> Option<&'static str> {
    Some(match mode {
        "AccessExclusiveLock" => "blocks every read and write of it",
        "ExclusiveLock" => "blocks every write and SELECT … FOR UPDATE",
        "ShareRowExclusiveLock" | "ShareLock" => "blocks every INSERT, UPDATE and DELETE",
        "ShareUpdateExclusiveLock" => "reads and writes go on; only schema changes and VACUUM wait",
        _ => return None,
    })
}

/// For people: each statement, its locks, rewrites, duration and production meaning.
pub fn render_text(traced: &[TracedStatement]) -> String {
    if traced.is_empty() {
        return "nothing pending to trace\n".into();
    }
    let mut out = String::new();
    for t in traced {
        let first = t.statement.lines().next().unwrap_or("");
        out.push_str(&format!(
            "{}:{}  {first}  ({:.1} ms on the scratch copy)\n",
            t.file.display(),
            t.line,
            t.duration_ms
        ));
        let locks: Vec<String> = t
            .locks
            .iter()
            .map(|l| format!("{} on {}", l.mode, l.relation))
            .collect();
        out.push_str(&format!(
            "    locks: {}\n",
            if locks.is_empty() {
                "none on user relations".into()
            } else {
                locks.join(", ")
            }
        ));
        if !t.rewritten.is_empty() {
            out.push_str(&format!("    rewritten: {}\n", t.rewritten.join(", ")));
        }
        for note in &t.production {
            out.push_str(&format!("    in production: {note}\n"));
        }
        if let Some(error) = &t.error {
            out.push_str(&format!(
                "    FAILED on the scratch copy: {error} (tracing stopped here)\n"
            ));
        }
    }
    out
}
