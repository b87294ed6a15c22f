//! The daemon: background check cycles, the Prometheus exporter and
//! `/health`, signals, and systemd notifications.
//!
//! Why it is shaped this way: a scrape must never be the reason a database
//! gets busier, and one sick database must never blind us to the others. So
//! each target has its own collector task (`collector`) that writes its
//! last report into memory (`state`), and HTTP (`http`) only reads that
//! memory. Signals drive the rest: SIGHUP reloads the config (a bad one is
//! rejected and the old one keeps running), SIGUSR1 runs migrations
//! (`migrations`), SIGTERM/SIGINT stop it within [`SHUTDOWN_GRACE`].
//!
//! Other modules feed extra per-target metrics through [`MetricSource`]
//! ([`Daemon::add_source`]); the backup scheduler (`backups`) feeds its metrics
//! that way.

mod backups;
mod collector;
mod config;
mod encoding;
pub mod exporter;
mod fleet;
mod history;
pub(crate) mod http;
mod metrics;
mod migrations;
pub mod notify;
mod page;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch;

pub use self::config::HttpConfig;
pub use self::state::{MetricSource, MigrationState, Shared};
use crate::config::Config;
use crate::error::{Error, Result};

/// How long in-flight work (HTTP requests, a migration run) may take to
/// finish after SIGTERM before it is cut off.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Produces a fresh configuration on SIGHUP (`pgwarden serve` re-reads the
/// file and the environment; `pgwarden demo` has nothing to re-read).
pub type Loader = Box<dyn Fn() -> Result<Config> + Send + Sync>;

/// A bound, not yet running daemon: the listener is open, signal handlers
/// are installed, so the caller can print the address before [`Daemon::run`].
pub struct Daemon {
    config: Arc<Config>,
    loader: Loader,
    listener: TcpListener,
    shared: Arc<Shared>,
    web: Arc<http::Web>,
    signals: Signals,
}

struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
    usr1: Signal,
}

impl Signals {
    /// Installed before anything else, so a SIGHUP that arrives early
    /// reloads instead of killing the process (the default action).
    fn install() -> Result<Self> {
        let on = |kind: SignalKind, name: &str| {
            signal(kind).map_err(|e| Error::failed(format!("cannot handle {name}: {e}")))
        };
        Ok(Self {
            term: on(SignalKind::terminate(), "SIGTERM")?,
            int: on(SignalKind::interrupt(), "SIGINT")?,
            hup: on(SignalKind::hangup(), "SIGHUP")?,
            usr1: on(SignalKind::user_defined1(), "SIGUSR1")?,
        })
    }
}

enum Event {
    Stop(&'static str),
    Reload,
    Migrate,
}

impl Daemon {
    /// Validate the config, install signal handlers and open the listener.
    pub async fn bind(config: Config, loader: Loader) -> Result<Daemon> {
        validate(&config)?;
        let signals = Signals::install()?;
        let names = target_names(&config);
        let shared = Arc::new(Shared::new(config.environment.as_str(), &names));
        let web = Arc::new(http::Web::new(&config.http, shared.clone())?);
        let listener = TcpListener::bind(&config.http.listen).await.map_err(|e| {
            Error::failed(format!(
                "cannot listen on {} (http.listen): {e}; pick a free address and port",
                config.http.listen
            ))
        })?;
        Ok(Daemon {
            config: Arc::new(config),
            loader,
            listener,
            shared,
            web,
            signals,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// `http://127.0.0.1:9733` (or `https://…`).
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.web.scheme(), self.local_addr())
    }

    /// Feed extra per-target measurements into `/metrics` (see [`MetricSource`]).
    pub fn add_source(&self, source: Arc<dyn MetricSource>) {
        self.shared.add_source(source);
    }

    /// The in-memory state, for modules that run beside the daemon.
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Serve until SIGTERM or SIGINT, then stop within [`SHUTDOWN_GRACE`].
    pub async fn run(self) -> Result<()> {
        let Daemon {
            mut config,
            loader,
            listener,
            shared,
            web,
            mut signals,
        } = self;
        let notifier = notify::Notifier::from_env();
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = Background {
            http: Some(spawn_http(listener, web, stop_rx)?),
            watchdog: notify::watchdog_interval().map(|every| tokio::spawn(watchdog(every))),
        };
        let mut collectors = collector::Collectors::default();
        collectors.apply(&config, &shared);
        let mut backups = backups::BackupScheduler::new(&config, &shared);
        backups.apply(&config);
        let mut migrations = migrations::MigrationRunner::default();
        notifier.ready(&status_line(&config));
        tracing::info!(
            listen = %config.http.listen,
            targets = config.targets.len(),
            "pgwarden serving"
        );
        let ended = loop {
            let event = tokio::select! {
                event = next_event(&mut signals) => event,
                died = tasks.died() => break Err(died),
                died = backups.died() => break Err(died),
            };
            match event {
                Event::Stop(reason) => break Ok(reason),
                Event::Reload => {
                    notifier.reloading();
                    config = reload(&loader, config, &shared, &mut collectors);
                    backups.apply(&config);
                    notifier.ready(&status_line(&config));
                }
                Event::Migrate => migrations.trigger(config.clone(), shared.clone()),
            }
        };
        match &ended {
            Ok(reason) => tracing::info!("{reason}: shutting down"),
            Err(died) => tracing::error!("{died}; shutting down so that systemd restarts pgwarden"),
        }
        notifier.stopping();
        let _ = stop_tx.send(true);
        collectors.stop().await;
        backups.stop().await;
        migrations.finish(SHUTDOWN_GRACE).await;
        if let Some(http) = tasks.http.take() {
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, http).await;
        }
        if let Some(watchdog) = &tasks.watchdog {
            watchdog.abort();
        }
        if let Err(died) = ended {
            return Err(Error::failed(died));
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// The daemon's own background tasks, none of which may end while it runs:
/// if one does (a panic), the process exits non-zero and systemd restarts it,
/// rather than serving on without it. (Collectors are restarted in place:
/// see `collector::supervise`.)
/// The HTTP server on a runtime of its own (two threads), so that a scrape
/// is answered at once while a fleet's check cycles keep the main runtime's
/// workers busy parsing rows.
fn spawn_http(
    listener: TcpListener,
    web: Arc<http::Web>,
    stop: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>> {
    let failed = |e: std::io::Error| Error::failed(format!("cannot start the HTTP server: {e}"));
    let listener = listener.into_std().map_err(failed)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("pgwarden-http")
        .enable_all()
        .build()
        .map_err(failed)?;
    Ok(tokio::task::spawn_blocking(move || {
        runtime.block_on(async move {
            match TcpListener::from_std(listener) {
                Ok(listener) => http::serve(listener, web, stop, SHUTDOWN_GRACE).await,
                Err(e) => tracing::error!("cannot serve HTTP: {e}"),
            }
        })
    }))
}

struct Background {
    http: Option<tokio::task::JoinHandle<()>>,
    watchdog: Option<tokio::task::JoinHandle<()>>,
}

impl Background {
    /// Resolves when a task ended, saying which and why (and forgets it).
    async fn died(&mut self) -> String {
        tokio::select! {
            ended = ended(&mut self.http) => task_ended("the HTTP server", ended),
            ended = ended(&mut self.watchdog) => task_ended("the systemd watchdog", ended),
        }
    }
}

/// The end of a task that may be absent (then never); the handle is taken.
async fn ended(
    task: &mut Option<tokio::task::JoinHandle<()>>,
) -> Result<(), tokio::task::JoinError> {
    let Some(handle) = task else {
        return std::future::pending().await;
    };
    let ended = handle.await;
    *task = None;
    ended
}

/// "the HTTP server died (panicked: …)" for a task that was meant to run forever.
pub(crate) fn task_ended(task: &str, ended: Result<(), tokio::task::JoinError>) -> String {
    match ended {
        Ok(()) => format!("{task} task stopped unexpectedly"),
        Err(e) if e.is_panic() => format!(
            "{task} task died (panicked: {})",
            crate::checks::panic_message(e.into_panic().as_ref())
        ),
        Err(e) => format!("{task} task died ({e})"),
    }
}

async fn next_event(signals: &mut Signals) -> Event {
    tokio::select! {
        _ = signals.term.recv() => Event::Stop("SIGTERM"),
        _ = signals.int.recv() => Event::Stop("SIGINT"),
        _ = signals.hup.recv() => Event::Reload,
        _ = signals.usr1.recv() => Event::Migrate,
    }
}

/// Pings systemd's watchdog from the runtime itself: if the runtime wedges,
/// the pings stop and systemd restarts us.
async fn watchdog(every: Duration) {
    let notifier = notify::Notifier::from_env();
    let mut ticker = tokio::time::interval(every);
    loop {
        ticker.tick().await;
        // Tests kill this task with FAILPOINTS=watchdog=panic.
        fail::fail_point!("watchdog");
        notifier.watchdog();
    }
}

/// SIGHUP: load the new config; keep the old one when it is invalid.
fn reload(
    loader: &Loader,
    current: Arc<Config>,
    shared: &Arc<Shared>,
    collectors: &mut collector::Collectors,
) -> Arc<Config> {
    let new = match loader().and_then(|c| validate(&c).map(|()| c)) {
        Ok(new) => new,
        Err(e) => {
            tracing::error!("SIGHUP: config reload rejected, the running config stays: {e}");
            shared.set_reload_ok(false);
            return current;
        }
    };
    if new.http != current.http {
        tracing::warn!("SIGHUP: [http] changes take effect at the next restart");
    }
    let new = Arc::new(Config {
        http: current.http.clone(),
        ..new
    });
    shared.set_targets(new.environment.as_str(), &target_names(&new));
    let discovering: Vec<String> = new
        .targets
        .iter()
        .filter(|t| t.discover.is_some())
        .map(|t| t.name.to_string())
        .collect();
    shared.retain_fleets(&discovering);
    collectors.apply(&new, shared);
    shared.set_reload_ok(true);
    tracing::info!(targets = new.targets.len(), "SIGHUP: config reloaded");
    new
}

fn validate(config: &Config) -> Result<()> {
    config.require_targets()?;
    config.http.validate()
}

/// The targets whose own series this instance exports (its shard's).
fn target_names(config: &Config) -> Vec<String> {
    config
        .targets
        .iter()
        .map(|t| t.name.to_string())
        .filter(|name| config.fleet.owns(name))
        .collect()
}

fn status_line(config: &Config) -> String {
    format!(
        "serving {} target(s) on {}",
        config.targets.len(),
        config.http.listen
    )
}
