//! Scheduled backups beside the daemon.
//!
//! The schedule loop itself lives in [`crate::backup::schedule`]; this only
//! keeps one running for the current config and exports its metrics. A
//! reload restarts the loop only when the backup settings or the backed-up
//! targets changed, because restarting it cancels a backup in flight.

use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::state::{BackupPlan, MetricSource, Shared};
use crate::backup::{BackupConfig, BackupMetrics, schedule};
use crate::config::{Config, TargetConfig};
use crate::report::Measurement;

impl MetricSource for BackupMetrics {
    fn measurements(&self) -> Vec<(String, Measurement)> {
        BackupMetrics::measurements(self)
    }
}

pub struct BackupScheduler {
    metrics: BackupMetrics,
    shared: Arc<Shared>,
    running: Option<Running>,
}

/// The loop, what it was started with, and how to stop it.
struct Running {
    key: Key,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), String>>,
}

/// What the loop was started with.
type Key = (BackupConfig, Vec<TargetConfig>);

impl BackupScheduler {
    /// Export the backup metrics of every `backup = true` target from the start.
    pub fn new(config: &Config, shared: &Arc<Shared>) -> Self {
        let metrics = BackupMetrics::new(backed_up(config).iter().map(|t| t.name.as_str()));
        shared.add_source(Arc::new(metrics.clone()));
        Self {
            metrics,
            shared: shared.clone(),
            running: None,
        }
    }

    /// Start the loop for `config`, or keep it when nothing it uses changed.
    pub fn apply(&mut self, config: &Arc<Config>) {
        let key = (config.backup.clone(), backed_up(config));
        self.shared
            .set_backup_plan(config.backup.schedule.is_set().then(|| BackupPlan {
                schedule: config.backup.schedule.clone(),
                timezone: config.backup.timezone,
            }));
        if matches!(&self.running, Some(running) if running.key == key) {
            return;
        }
        if let Some(old) = self.running.take() {
            tracing::warn!("backup settings changed: the backup schedule restarts");
            // The old loop cancels its backups in flight and ends by itself.
            let _ = old.stop.send(());
        }
        let (config, targets, metrics) = ((**config).clone(), key.1.clone(), self.metrics.clone());
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            let stopped = async {
                let _ = stopped.await;
            };
            schedule::run_until(config, targets, metrics, stopped)
                .await
                .map_err(|e| e.to_string())
        });
        self.running = Some(Running { key, stop, task });
    }

    /// Resolves if the schedule's loop ends (an error or a panic), which it
    /// never does while it works; never without a schedule.
    pub async fn died(&mut self) -> String {
        let Some(Running { task, .. }) = &mut self.running else {
            return std::future::pending().await;
        };
        let ended = task.await;
        self.running = None;
        match ended {
            // No schedule, or one with no next time (it said so): not a death.
            Ok(Ok(())) => std::future::pending().await,
            Ok(Err(e)) => format!("the backup scheduler stopped: {e}"),
            Err(e) => super::task_ended("the backup scheduler", Err(e)),
        }
    }

    /// Stop the loop and wait for it: backups in flight are cancelled (pg_dump
    /// killed, temporary files removed), logged and counted as failures.
    pub async fn stop(&mut self) {
        if let Some(Running { stop, task, .. }) = self.running.take() {
            let _ = stop.send(());
            let _ = task.await;
        }
    }
}

fn backed_up(config: &Config) -> Vec<TargetConfig> {
    config
        .targets
        .iter()
        .filter(|t| t.backup)
        .cloned()
        .collect()
}
