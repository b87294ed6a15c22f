//! Opening connections: one attempt in flight per target, never abandoned.
//!
//! Why: a server whose catalog is locked (`LOCK pg_class`) accepts TCP, then
//! leaves every new backend waiting in startup. A client that gives up after
//! `connect_timeout` and tries again leaves the old backend behind — the
//! server only notices the closed socket once the lock is gone — so a
//! monitor that retries every interval fills the server's connection slots.
//!
//! So a [`Gate`] runs each attempt in a task of its own that goes on after
//! the caller stops waiting; the next caller takes over the same attempt (or
//! the connection it produced) instead of starting another. A target thus
//! has at most its pool plus one connection in startup, whatever the server
//! does. TCP keepalives end an attempt whose peer has really gone, so a
//! vanished host does not hold the gate forever.
//!
//! The TCP connect and the PostgreSQL startup are separate steps here
//! (`connect_raw`), so an error can say which of the two did not finish.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore, oneshot};
use tokio_postgres::config::Host;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{Client, Config};
use tokio_postgres_rustls::MakeRustlsConnect;

/// How a dead peer is noticed while the server has not answered yet.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
const KEEPALIVE_RETRIES: u32 = 3;

/// Why no connection was made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The server (or the driver) refused: authentication, TLS, no such
    /// database, too many clients, or the connection broke during startup.
    #[error(transparent)]
    Driver(#[from] tokio_postgres::Error),
    /// No TCP (or Unix socket) connection to any of the hosts.
    #[error("cannot reach {address}: {source}")]
    Socket {
        address: String,
        #[source]
        source: std::io::Error,
    },
    /// The TCP connect did not finish within `connect_timeout`.
    #[error("no TCP connection to {address} within {timeout:?}")]
    SocketTimeout { address: String, timeout: Duration },
    /// The attempt's task ended without an answer (it panicked).
    #[error("the connection attempt ended without a result")]
    Lost,
}

/// What an unfinished attempt was doing when a caller stopped waiting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// No attempt is running.
    Idle,
    /// Waiting for the TCP (or Unix socket) connection.
    Socket,
    /// Connected; the server has not finished authentication and startup.
    Startup,
    /// Waiting for one of the server's connection slots (`[fleet]`).
    Queued,
}

impl Phase {
    pub fn from_atomic(value: &AtomicU8) -> Self {
        Self::from_u8(value.load(Ordering::Relaxed))
    }

    fn from_u8(value: u8) -> Self {
        match value {
            1 => Self::Socket,
            2 => Self::Startup,
            3 => Self::Queued,
            _ => Self::Idle,
        }
    }
}

/// A pooled connection: the client, and its connection task running beside it.
/// Dropping the client ends the task, which says goodbye to the server, and
/// gives back the server slot it held (if its gate has a budget).
pub struct Conn {
    client: Client,
    _slot: Option<OwnedSemaphorePermit>,
}

impl std::ops::Deref for Conn {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Conn")
    }
}

type Attempt = Result<Conn, ConnectError>;

/// One attempt in flight per target (see the module docs).
pub struct Gate {
    config: Config,
    tls: MakeRustlsConnect,
    socket_timeout: Duration,
    /// The running (or finished, not yet collected) attempt. Holding the lock
    /// is what makes a caller the one that waits on it.
    attempt: Mutex<Option<oneshot::Receiver<Attempt>>>,
    phase: Arc<AtomicU8>,
    /// The server's connection slots, when its connections are capped
    /// (discovery targets): an attempt holds one from before it connects
    /// until its connection closes.
    budget: Option<Arc<Semaphore>>,
}

impl Gate {
    pub fn new(config: Config, tls: MakeRustlsConnect, socket_timeout: Duration) -> Self {
        Self {
            config,
            tls,
            socket_timeout,
            attempt: Mutex::new(None),
            phase: Arc::new(AtomicU8::new(0)),
            budget: None,
        }
    }

    /// Every connection of this gate holds a slot of `budget` while open.
    pub fn with_budget(mut self, budget: Option<Arc<Semaphore>>) -> Self {
        self.budget = budget;
        self
    }

    /// What the running attempt is doing (for error messages).
    pub fn phase(&self) -> Phase {
        Phase::from_atomic(&self.phase)
    }

    /// A new connection: the result of the attempt in flight, or of a new
    /// one. Cancelling this future leaves the attempt running for the next
    /// caller.
    pub async fn connect(&self) -> Attempt {
        let mut slot = self.attempt.lock().await;
        loop {
            let receiver = slot.get_or_insert_with(|| self.start());
            let outcome = receiver.await;
            *slot = None;
            match outcome {
                // Finished while nobody waited, and closed since: try afresh.
                Ok(Ok(client)) if client.is_closed() => continue,
                Ok(outcome) => return outcome,
                Err(_) => return Err(ConnectError::Lost),
            }
        }
    }

    fn start(&self) -> oneshot::Receiver<Attempt> {
        let (sender, receiver) = oneshot::channel();
        let (config, tls, timeout) = (self.config.clone(), self.tls.clone(), self.socket_timeout);
        let (phase, budget) = (self.phase.clone(), self.budget.clone());
        tokio::spawn(async move {
            let outcome = open_in_budget(budget, &config, tls, timeout, &phase).await;
            phase.store(Phase::Idle as u8, Ordering::Relaxed);
            // Nobody left to take it (the pool is gone): the client drops here.
            let _ = sender.send(outcome);
        });
        receiver
    }
}

/// A server slot (when budgeted), then a connection that keeps it.
async fn open_in_budget(
    budget: Option<Arc<Semaphore>>,
    config: &Config,
    tls: MakeRustlsConnect,
    socket_timeout: Duration,
    phase: &AtomicU8,
) -> Attempt {
    let slot = match budget {
        Some(budget) => {
            phase.store(Phase::Queued as u8, Ordering::Relaxed);
            // The semaphore is never closed.
            budget.acquire_owned().await.ok()
        }
        None => None,
    };
    let client = open(config, tls, socket_timeout, phase).await?;
    Ok(Conn {
        client,
        _slot: slot,
    })
}

/// Open one connection: the socket (bounded by `socket_timeout`), then the
/// PostgreSQL startup (unbounded here: callers bound their wait, and
/// keepalives end it if the peer dies). Its connection task is spawned.
pub async fn open(
    config: &Config,
    tls: MakeRustlsConnect,
    socket_timeout: Duration,
    phase: &AtomicU8,
) -> Result<Client, ConnectError> {
    phase.store(Phase::Socket as u8, Ordering::Relaxed);
    let (stream, host) = socket(config, socket_timeout).await?;
    phase.store(Phase::Startup as u8, Ordering::Relaxed);
    match stream {
        Stream::Tcp(tcp) => startup(config, tls, &host, tcp).await,
        Stream::Unix(unix) => startup(config, tls, &host, unix).await,
    }
}

enum Stream {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

/// The first host (in the URL's order) that accepts a connection.
async fn socket(config: &Config, timeout: Duration) -> Result<(Stream, String), ConnectError> {
    let ports = config.get_ports();
    let mut last = None;
    for (i, host) in config.get_hosts().iter().enumerate() {
        let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
        match socket_to(host, port, timeout).await {
            Ok(connected) => return Ok(connected),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| ConnectError::Socket {
        address: "(no host)".into(),
        source: std::io::Error::other("the URL names no host"),
    }))
}

async fn socket_to(
    host: &Host,
    port: u16,
    timeout: Duration,
) -> Result<(Stream, String), ConnectError> {
    let (address, name) = match host {
        Host::Tcp(name) => (format!("{name}:{port}"), name.clone()),
        Host::Unix(dir) => (
            dir.join(format!(".s.PGSQL.{port}")).display().to_string(),
            String::new(),
        ),
    };
    let connecting = async {
        match host {
            Host::Tcp(name) => {
                let tcp = tokio::net::TcpStream::connect((name.as_str(), port)).await?;
                keep_alive(&tcp)?;
                Ok(Stream::Tcp(tcp))
            }
            Host::Unix(_) => Ok(Stream::Unix(
                tokio::net::UnixStream::connect(&address).await?,
            )),
        }
    };
    match tokio::time::timeout(timeout, connecting).await {
        Ok(Ok(stream)) => Ok((stream, name)),
        Ok(Err(source)) => Err(ConnectError::Socket { address, source }),
        Err(_) => Err(ConnectError::SocketTimeout { address, timeout }),
    }
}

fn keep_alive(tcp: &tokio::net::TcpStream) -> std::io::Result<()> {
    tcp.set_nodelay(true)?;
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_RETRIES);
    socket2::SockRef::from(tcp).set_tcp_keepalive(&keepalive)
}

async fn startup<S>(
    config: &Config,
    mut tls: MakeRustlsConnect,
    host: &str,
    stream: S,
) -> Result<Client, ConnectError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Ok(tls) = MakeTlsConnect::<S>::make_tls_connect(&mut tls, host);
    let (client, connection) = config.connect_raw(stream, tls).await?;
    tokio::spawn(async move {
        // A server restart or a dropped client ends it; the collector logs
        // the target going down once, so this stays at debug.
        if let Err(e) = connection.await {
            tracing::debug!("connection ended: {e}");
        }
    });
    Ok(client)
}

/// deadpool's manager over a [`Gate`]: creating is connecting through the
/// gate; recycling only checks the connection is still open (session state
/// is kept, as deadpool-postgres's `Fast` method did).
pub struct Manager {
    pub gate: Arc<Gate>,
}

impl deadpool::managed::Manager for Manager {
    type Type = Conn;
    type Error = ConnectError;

    async fn create(&self) -> Result<Conn, ConnectError> {
        self.gate.connect().await
    }

    async fn recycle(
        &self,
        conn: &mut Conn,
        _: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<ConnectError> {
        if conn.is_closed() {
            return Err(deadpool::managed::RecycleError::message(
                "connection closed",
            ));
        }
        Ok(())
    }
}
