//! `migrate check` and `migrate create --autogenerate`: the migrations at
//! head against the desired schema (`schema.dir`).
//!
//! A generated migration is proven before it is written: in a scratch
//! database at head, the migration engine itself applies the new files (the
//! result must equal `schema/`) and reverts them (the result must equal the
//! head again). Indexes on existing tables are built CONCURRENTLY, which
//! cannot run in a transaction: they go to a second, non-transactional
//! migration of their own.

use std::path::{Path, PathBuf};

use chrono::Utc;

use super::diff::{self, Diff, Statement};
use super::scratch::{Scratch, scratch_target};
use super::{Model, Source, read_url};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::migrate::{self, DownOptions, UpOptions, files};

/// What `migrate check` found: the diff from the migrations at head to `schema/`.
pub async fn check(config: &Config) -> Result<Diff> {
    let to = Source::Folder(config.schema.dir.clone());
    require_dir(config)?;
    super::diff_sources(config, &Source::Migrations(None), &to).await
}

fn require_dir(config: &Config) -> Result<()> {
    if config.schema.dir.is_dir() {
        return Ok(());
    }
    Err(Error::usage(format!(
        "no schema folder {}: put the desired schema's CREATE statements there, or set schema.dir",
        config.schema.dir.display()
    )))
}

/// What `migrate create --autogenerate` wrote (nothing when there were no changes).
#[derive(Debug, Default)]
pub struct Generated {
    pub files: Vec<PathBuf>,
    pub up: Diff,
}

pub async fn create(config: &Config, message: &str) -> Result<Generated> {
    require_dir(config)?;
    let mut scratch = Scratch::new(config);
    let result = generate(config, message, &mut scratch).await;
    scratch.close().await;
    result
}

async fn generate(config: &Config, message: &str, scratch: &mut Scratch) -> Result<Generated> {
    let head_url = scratch.load_migrations(config, None).await?;
    let head = read_url(&head_url).await?;
    let want = read_url(&scratch.load_folder(&config.schema.dir).await?).await?;
    let up = diff::diff(&head, &want);
    if up.is_empty() {
        return Ok(Generated::default());
    }
    let down = diff::diff(&want, &head);
    let staging =
        tempfile::tempdir().map_err(|e| Error::failed(format!("cannot create a temp dir: {e}")))?;
    copy_migrations(&migrate::dir(config), staging.path())?;
    let written = write_files(staging.path(), message, &up, &down)?;
    let mut staged = config.clone();
    staged.migrations.dir = staging.path().to_path_buf();
    prove(&staged, &head_url, &head, &want)
        .await
        .map_err(|e| e.context("the generated migration was not written"))?;
    let mut files = Vec::new();
    std::fs::create_dir_all(migrate::dir(config)).map_err(|e| {
        Error::failed(format!(
            "cannot create {}: {e}",
            migrate::dir(config).display()
        ))
    })?;
    for path in written {
        let name = path.file_name().expect("a file");
        let dest = migrate::dir(config).join(name);
        std::fs::copy(&path, &dest)
            .map_err(|e| Error::failed(format!("cannot write {}: {e}", dest.display())))?;
        files.push(dest);
    }
    Ok(Generated { files, up })
}

/// Apply the staged migrations on the database at head (must give `want`),
/// then revert them (must give `head`), with the migration engine itself.
async fn prove(
    staged: &Config,
    url: &crate::dburl::DbUrl,
    head: &Model,
    want: &Model,
) -> Result<()> {
    let (config, target) = scratch_target(staged, url);
    let before = migrate::status(&config, &target).await?.current_version;
    migrate::up(&config, &target, &UpOptions::default()).await?;
    let after_up = diff::diff(&read_url(url).await?, want);
    if !after_up.is_empty() {
        return Err(Error::failed(format!(
            "after applying it, the database still differs from {}:\n{}",
            staged.schema.dir.display(),
            after_up.render()
        )));
    }
    let revision = Some(before.unwrap_or(0));
    migrate::down(&config, &target, &DownOptions { revision }).await?;
    let after_down = diff::diff(&read_url(url).await?, head);
    if !after_down.is_empty() {
        return Err(Error::failed(format!(
            "its down script does not return to the migrations at head:\n{}",
            after_down.render()
        )));
    }
    Ok(())
}

fn copy_migrations(from: &Path, to: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(from) else {
        return Ok(()); // no folder yet: the first migration
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_file() {
            std::fs::copy(&path, to.join(entry.file_name()))
                .map_err(|e| Error::failed(format!("cannot copy {}: {e}", path.display())))?;
        }
    }
    Ok(())
}

/// The up/down pair; before it, a pair of its own for new enum values (a
/// value added in a transaction cannot be used before it commits); after
/// it, a non-transactional pair for the concurrently built indexes,
/// re-runnable (`IF NOT EXISTS`) should one fail midway. What is written
/// passes `migrate lint` by construction (a test holds it to that).
fn write_files(dir: &Path, message: &str, up: &Diff, down: &Diff) -> Result<Vec<PathBuf>> {
    let (concurrent, transactional): (Vec<&Statement>, Vec<&Statement>) =
        up.statements.iter().partition(|s| s.no_transaction);
    let (enum_values, transactional): (Vec<&Statement>, Vec<&Statement>) = transactional
        .into_iter()
        .partition(|s| adds_enum_value(&s.sql));
    let index_names: Vec<String> = concurrent
        .iter()
        .filter_map(|s| index_name(&s.sql))
        .collect();
    let (index_drops, other_drops): (Vec<&Statement>, Vec<&Statement>) =
        down.statements.iter().partition(|s| {
            index_names
                .iter()
                .any(|n| s.sql == format!("DROP INDEX {n}"))
        });
    // The down script runs in one transaction: indexes it rebuilds are built plainly.
    let other_drops: Vec<Statement> = other_drops.into_iter().map(in_transaction).collect();
    let other_drops: Vec<&Statement> = other_drops.iter().collect();
    let mut written = Vec::new();
    let now = Utc::now();
    if !enum_values.is_empty() {
        let title = format!("{message} (enum values)");
        let (u, d) = files::create(dir, &title, now)?;
        write(&u, &header(&title, "", &enum_values))?;
        // Nothing to undo here: the next migration's down script recreates
        // the types without the values (PostgreSQL cannot drop one in place).
        write(&d, &header(&format!("reverts: {title}"), "", &[]))?;
        written.extend([u, d]);
    }
    if !transactional.is_empty() || !other_drops.is_empty() {
        let (u, d) = files::create(dir, message, now)?;
        write(&u, &header(message, "", &transactional))?;
        write(
            &d,
            &header(&format!("reverts: {message}"), "", &other_drops),
        )?;
        written.extend([u, d]);
    }
    if !concurrent.is_empty() {
        let marker = format!("{}\n", files::NO_TRANSACTION_MARKER);
        let title = format!("{message} (indexes)");
        let (u, d) = files::create(dir, &title, now)?;
        let concurrent_drops: Vec<Statement> = index_drops
            .iter()
            .map(|s| Statement {
                sql: s
                    .sql
                    .replacen("DROP INDEX ", "DROP INDEX CONCURRENTLY IF EXISTS ", 1),
                ..(*s).clone()
            })
            .collect();
        let creates: Vec<Statement> = concurrent
            .iter()
            .map(|s| Statement {
                sql: s
                    .sql
                    .replacen(" CONCURRENTLY ", " CONCURRENTLY IF NOT EXISTS ", 1),
                ..(*s).clone()
            })
            .collect();
        write(
            &u,
            &header(&title, &marker, &creates.iter().collect::<Vec<_>>()),
        )?;
        write(
            &d,
            &header(
                &format!("reverts: {title}"),
                &marker,
                &concurrent_drops.iter().collect::<Vec<_>>(),
            ),
        )?;
        written.extend([u, d]);
    }
    Ok(written)
}

fn adds_enum_value(sql: &str) -> bool {
    sql.starts_with("ALTER TYPE ") && sql.contains(" ADD VALUE ")
}

fn in_transaction(s: &Statement) -> Statement {
    Statement {
        sql: s.sql.replacen(" INDEX CONCURRENTLY ", " INDEX ", 1),
        no_transaction: false,
        ..s.clone()
    }
}

fn index_name(sql: &str) -> Option<String> {
    let rest = sql.split_once(" CONCURRENTLY ")?.1;
    let name = rest.split_whitespace().next()?;
    let schema = sql
        .split_once(" ON ")?
        .1
        .split_whitespace()
        .find(|w| *w != "ONLY")?;
    let schema = schema.rsplit_once('.').map(|(s, _)| s)?;
    Some(format!("{schema}.{name}"))
}

fn header(title: &str, marker: &str, statements: &[&Statement]) -> String {
    let owned: Vec<Statement> = statements.iter().map(|s| (*s).clone()).collect();
    format!(
        "-- {title}\n-- Generated by `pgwarden migrate create --autogenerate` from the schema folder.\n{marker}\n{}",
        diff::render(&owned)
    )
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text)
        .map_err(|e| Error::failed(format!("cannot write {}: {e}", path.display())))
}
