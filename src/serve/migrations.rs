//! SIGUSR1: apply pending migrations to every target with `migrate = true`.
//!
//! The migration engine does the work (its advisory lock, and in production
//! the backup first); the daemon only makes sure one run at a time is in
//! flight from this process and exports how it went.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::task::JoinHandle;

use super::collector::refresh_migration_status;
use super::state::Shared;
use crate::config::Config;
use futures::FutureExt;

use crate::migrate::UpOptions;

#[derive(Default)]
pub struct MigrationRunner {
    running: Arc<AtomicBool>,
    task: Option<JoinHandle<()>>,
}

/// Clears the running flag however the run ends (even by a panic).
struct Running(Arc<AtomicBool>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl MigrationRunner {
    /// Start a run, unless one is in flight (then log and ignore).
    pub fn trigger(&mut self, config: Arc<Config>, shared: Arc<Shared>) {
        let targets: Vec<_> = config
            .targets
            .iter()
            .filter(|t| t.migrate)
            .cloned()
            .collect();
        if targets.is_empty() {
            tracing::warn!("SIGUSR1: no target has `migrate = true`; nothing to migrate");
            return;
        }
        if self.running.swap(true, Ordering::AcqRel) {
            tracing::warn!("SIGUSR1 ignored: a migration run is already in progress");
            return;
        }
        let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
        tracing::info!(
            "SIGUSR1: applying pending migrations to {}",
            names.join(", ")
        );
        let guard = Running(self.running.clone());
        self.task = Some(tokio::spawn(async move {
            let _guard = guard;
            for target in &targets {
                run_one(&config, target, &shared).await;
            }
        }));
    }

    /// Wait for an in-flight run, at most `grace`; then cancel it (the
    /// engine's transaction rolls back with the dropped connection).
    pub async fn finish(&mut self, grace: std::time::Duration) {
        let Some(mut task) = self.task.take() else {
            return;
        };
        if tokio::time::timeout(grace, &mut task).await.is_err() {
            tracing::warn!("migration run still going after {grace:?}; cancelling it");
            task.abort();
        }
    }
}

async fn run_one(config: &Config, target: &crate::config::TargetConfig, shared: &Shared) {
    let name = target.name.as_str();
    // A panic inside the engine fails this target's run (reported like any
    // failure) instead of silently ending the whole run.
    let options = UpOptions::default();
    // The gate inside `up` refuses on a lint error; counted here for the metric.
    if let Ok((findings, _)) = crate::migrate::lint(config, Some(target), &[], false, &[]).await {
        let errors = crate::migrate::lint::run::errors(&findings).len();
        shared.update_migration(name, |state| state.lint_errors = Some(errors));
    }
    let run = std::panic::AssertUnwindSafe(crate::migrate::up(config, target, &options));
    let outcome = run.catch_unwind().await.unwrap_or_else(|panic| {
        Err(crate::error::Error::failed(format!(
            "internal error: the migration run panicked ({}); please report this",
            crate::checks::panic_message(panic.as_ref())
        )))
    });
    match outcome {
        Ok(report) => {
            tracing::info!(
                target = name,
                applied = report.applied.len(),
                version = ?report.current_version,
                pending = report.pending,
                "migrations applied"
            );
            shared.update_migration(name, |state| {
                state.version = report.current_version;
                state.pending = Some(report.pending);
                state.last_run_success = Some(true);
                state.last_run_at = Some(super::collector::unix_now());
            });
        }
        Err(e) => {
            tracing::error!(target = name, "migration run failed: {e}");
            shared.update_migration(name, |state| {
                state.last_run_success = Some(false);
                state.last_run_at = Some(super::collector::unix_now());
            });
            refresh_migration_status(config, target, shared).await;
        }
    }
}
