//! One connection pool per target, and the words for why a connection failed.
//!
//! Pools are lazy: building one never touches the network, so a target that is
//! down cannot hold up the others. Every connection announces itself as
//! `application_name=pgwarden`, so operators can find (and count) pgwarden's
//! sessions in `pg_stat_activity`.

mod connect;

use std::sync::Arc;
use std::sync::atomic::AtomicU8;
use std::time::Instant;

use serde::Serialize;
use tokio_postgres::config::SslMode as DriverSslMode;

pub use self::connect::{ConnectError, Phase};
use crate::config::{SslMode, TargetConfig};
use crate::error::{Error, Result};

pub const APPLICATION_NAME: &str = "pgwarden";

/// A target's connection pool: at most `pool_size + max_overflow`
/// connections, opened through one [`connect::Gate`] (one attempt in flight).
pub type Pool = deadpool::managed::Pool<connect::Manager>;
/// A connection lent by a [`Pool`]; dereferences to a `tokio_postgres::Client`.
pub type Object = deadpool::managed::Object<connect::Manager>;
pub type PoolError = deadpool::managed::PoolError<ConnectError>;
pub use deadpool::managed::{Status, TimeoutType};

/// A configured database and its pool.
#[derive(Clone)]
pub struct Target {
    pub config: TargetConfig,
    pub pool: Pool,
}

impl Target {
    pub fn new(config: &TargetConfig) -> Result<Self> {
        Ok(Self {
            pool: build_pool(config)?,
            config: config.clone(),
        })
    }

    /// A target whose connections (at most `max_size`) each hold a slot of
    /// its server's `budget` while open (see [`crate::fleet`]).
    pub fn budgeted(
        config: &TargetConfig,
        max_size: usize,
        budget: Arc<tokio::sync::Semaphore>,
    ) -> Result<Self> {
        Ok(Self {
            pool: build_budgeted_pool(config, max_size, Some(budget))?,
            config: config.clone(),
        })
    }

    /// Close the idle connections (giving back their server slots).
    pub fn close_idle(&self) {
        self.pool.retain(|_, _| false);
    }

    pub fn name(&self) -> &str {
        self.config.name.as_str()
    }

    /// A pooled connection, or an error that says why there is none.
    pub async fn client(&self) -> Result<Object> {
        self.pool.get().await.map_err(|e| {
            Error::unreachable(describe_pool_error(&e, &self.pool, &self.config))
                .context(format!("target `{}`", self.name()))
        })
    }
}

/// The driver settings of a target: URL, application_name, TLS mode.
/// Pools and direct sessions are both built from this.
fn pg_config(target: &TargetConfig) -> tokio_postgres::Config {
    let mut pg = target.url().pg_config();
    pg.application_name(APPLICATION_NAME);
    pg.connect_timeout(target.connect_timeout.get());
    pg.ssl_mode(match target.sslmode {
        SslMode::Disable => DriverSslMode::Disable,
        SslMode::Prefer => DriverSslMode::Prefer,
        _ => DriverSslMode::Require,
    });
    pg
}

/// A session of its own, outside every pool: for work whose session state
/// (advisory locks, `SET`s) must never be handed to another caller, such as
/// migrations. The session ends when the client is dropped.
pub async fn connect_direct(target: &TargetConfig) -> Result<tokio_postgres::Client> {
    let phase = AtomicU8::new(0);
    let timeout = target.connect_timeout.get();
    let config = pg_config(target);
    let opening = connect::open(&config, tls::connector(target)?, timeout, &phase);
    // The socket step is bounded inside; this bounds the server's startup.
    let unreachable =
        |message: String| Error::unreachable(message).context(format!("target `{}`", target.name));
    match tokio::time::timeout(timeout, opening).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(unreachable(describe_connect_error(&e, target))),
        Err(_) => Err(unreachable(sentence(
            stalled(connect::Phase::from_atomic(&phase)),
            None,
            target,
        ))),
    }
}

/// Build (lazily) the pool for one target.
pub fn build_pool(target: &TargetConfig) -> Result<Pool> {
    build_budgeted_pool(target, target.max_connections(), None)
}

/// A pool of at most `max_size` connections, each holding a slot of
/// `budget` (the server's, for discovery targets) while open.
pub fn build_budgeted_pool(
    target: &TargetConfig,
    max_size: usize,
    budget: Option<Arc<tokio::sync::Semaphore>>,
) -> Result<Pool> {
    let timeout = target.connect_timeout.get();
    let gate =
        connect::Gate::new(pg_config(target), tls::connector(target)?, timeout).with_budget(budget);
    let manager = connect::Manager {
        gate: Arc::new(gate),
    };
    Pool::builder(manager)
        .max_size(max_size)
        .runtime(deadpool::Runtime::Tokio1)
        .wait_timeout(Some(target.pool_timeout.get()))
        // How long a caller waits for a new connection; the attempt itself
        // goes on in the gate (see `connect`), so none is ever abandoned.
        .create_timeout(Some(timeout))
        .recycle_timeout(Some(timeout))
        .build()
        .map_err(|e| Error::usage(format!("target `{}`: cannot build pool: {e}", target.name)))
}

/// What a connect that did not finish in time was stuck on.
fn stalled(phase: Phase) -> ConnectFailure {
    match phase {
        Phase::Startup => ConnectFailure::StartupStalled,
        Phase::Queued => ConnectFailure::NoServerSlot,
        Phase::Socket | Phase::Idle => ConnectFailure::TimedOut,
    }
}

/// Why a connection attempt failed, in the operator's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectFailure {
    Refused,
    AuthFailed,
    TimedOut,
    /// TCP connected, but the server did not finish the startup in time.
    StartupStalled,
    Tls,
    NoSuchDatabase,
    HostNotFound,
    PoolExhausted,
    /// Every one of the server's `fleet.max_connections_per_server` slots was busy.
    NoServerSlot,
    Other,
}

impl ConnectFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Refused => "connection refused",
            Self::AuthFailed => "authentication failed",
            Self::TimedOut => "timed out",
            Self::StartupStalled => {
                "timed out after connecting: the server did not finish the connection startup"
            }
            Self::Tls => "TLS negotiation failed",
            Self::NoSuchDatabase => "database does not exist",
            Self::HostNotFound => "host not found",
            Self::PoolExhausted => "no free connection in pgwarden's pool",
            Self::NoServerSlot => "no free connection slot for this server",
            Self::Other => "connection failed",
        }
    }

    fn advice(self, target: &TargetConfig) -> String {
        let url = target.url();
        match self {
            Self::Refused => format!(
                "is PostgreSQL running and listening on {}:{}?",
                url.host(),
                url.port()
            ),
            Self::AuthFailed => format!(
                "check the user `{}` and its password (url, password_file) and pg_hba.conf",
                url.user()
            ),
            Self::TimedOut => format!(
                "no answer within connect_timeout = {}; check the host, port and firewalls",
                target.connect_timeout
            ),
            Self::StartupStalled => format!(
                "{}:{} accepted the connection but PostgreSQL did not get through authentication \
                 and startup within connect_timeout = {}: its catalog is locked (a long \
                 `LOCK pg_class`, VACUUM FULL or DDL on a catalog), the server is overloaded, or \
                 what listens there is not PostgreSQL; \
                 look at pg_locks and pg_stat_activity there. pgwarden keeps this one attempt \
                 waiting and opens no other",
                url.host(),
                url.port(),
                target.connect_timeout
            ),
            Self::Tls => "check sslmode and sslrootcert against the server's certificate".into(),
            Self::NoSuchDatabase => format!("create database `{}` or fix the url", url.database()),
            Self::HostNotFound => format!("check the host name `{}`", url.host()),
            Self::PoolExhausted => format!(
                "all {} connections are busy for longer than pool_timeout = {}; raise pool_size or max_overflow",
                target.max_connections(),
                target.pool_timeout
            ),
            Self::NoServerSlot => format!(
                "pgwarden's connections to {}:{} are capped at fleet.max_connections_per_server, and all were busy for connect_timeout = {}; raise the cap, or lower fleet.max_concurrent_databases",
                url.host(),
                url.port(),
                target.connect_timeout
            ),
            Self::Other => format!(
                "the words in parentheses are the server's or the driver's; check the url and the server log of {}:{}",
                url.host(),
                url.port()
            ),
        }
    }
}

/// Classify a driver error from connecting.
pub fn classify(error: &tokio_postgres::Error) -> ConnectFailure {
    if let Some(db) = error.as_db_error() {
        return match db.code().code() {
            "28P01" | "28000" => ConnectFailure::AuthFailed,
            "3D000" => ConnectFailure::NoSuchDatabase,
            _ => ConnectFailure::Other,
        };
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return ConnectFailure::Refused,
                std::io::ErrorKind::TimedOut => return ConnectFailure::TimedOut,
                _ => {}
            }
        }
        source = e.source();
    }
    let text = error.to_string().to_ascii_lowercase();
    if text.contains("timeout") || text.contains("timed out") {
        ConnectFailure::TimedOut
    } else if text.contains("tls") || text.contains("certificate") || text.contains("ssl") {
        ConnectFailure::Tls
    } else if text.contains("lookup") || text.contains("resolve") || text.contains("dns") {
        ConnectFailure::HostNotFound
    } else {
        ConnectFailure::Other
    }
}

/// Classify a failed connect.
pub fn classify_connect(error: &ConnectError) -> ConnectFailure {
    match error {
        ConnectError::Driver(e) => classify(e),
        ConnectError::Socket { source, .. } => match source.kind() {
            std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound => {
                ConnectFailure::Refused
            }
            std::io::ErrorKind::TimedOut => ConnectFailure::TimedOut,
            _ if source.to_string().contains("lookup") => ConnectFailure::HostNotFound,
            _ => ConnectFailure::Other,
        },
        ConnectError::SocketTimeout { .. } => ConnectFailure::TimedOut,
        ConnectError::Lost => ConnectFailure::Other,
    }
}

/// Classify a pool error: waiting for a connection past `connect_timeout`
/// says what the attempt was stuck on (no TCP answer, or a server that
/// accepted and stalled in startup).
pub fn classify_pool_error(error: &PoolError, pool: &Pool) -> ConnectFailure {
    match error {
        PoolError::Backend(e) => classify_connect(e),
        PoolError::Timeout(TimeoutType::Wait) => ConnectFailure::PoolExhausted,
        PoolError::Timeout(TimeoutType::Create) => stalled(pool.manager().gate.phase()),
        PoolError::Timeout(_) => ConnectFailure::TimedOut,
        _ => ConnectFailure::Other,
    }
}

/// The whole sentence: what failed, the server's words, and what to do.
pub fn describe_pool_error(error: &PoolError, pool: &Pool, target: &TargetConfig) -> String {
    let detail = match error {
        PoolError::Backend(e) => connect_detail(e),
        _ => None,
    };
    sentence(classify_pool_error(error, pool), detail, target)
}

/// The same sentence for a failed direct connection.
pub fn describe_connect_error(error: &ConnectError, target: &TargetConfig) -> String {
    sentence(classify_connect(error), connect_detail(error), target)
}

fn connect_detail(error: &ConnectError) -> Option<String> {
    match error {
        ConnectError::Driver(e) => driver_detail(e),
        other => Some(other.to_string()),
    }
}

fn sentence(failure: ConnectFailure, detail: Option<String>, target: &TargetConfig) -> String {
    match detail {
        Some(detail) => format!(
            "{} ({detail}); {}",
            failure.as_str(),
            failure.advice(target)
        ),
        None => format!("{}; {}", failure.as_str(), failure.advice(target)),
    }
}

/// The most specific text the driver has: the server's message, or the I/O error.
fn driver_detail(error: &tokio_postgres::Error) -> Option<String> {
    if let Some(db) = error.as_db_error() {
        return Some(db.message().to_string());
    }
    let mut source = std::error::Error::source(error);
    let mut last = None;
    while let Some(e) = source {
        last = Some(e.to_string());
        source = e.source();
    }
    last.or_else(|| Some(error.to_string()))
}

/// The result of trying a target once: what `config check` prints.
#[derive(Clone, Debug, Serialize)]
pub struct Reachability {
    pub target: String,
    pub url: String,
    pub reachable: bool,
    pub failure: Option<ConnectFailure>,
    pub message: String,
    pub server_version: Option<String>,
    pub in_recovery: Option<bool>,
    pub latency_seconds: f64,
}

/// Connect once (through a fresh pool) and run a probe query.
pub async fn probe(target: &TargetConfig) -> Reachability {
    match build_pool(target) {
        Ok(pool) => probe_pool(&pool, target).await,
        Err(e) => reachability(
            target,
            Err((ConnectFailure::Other, e.to_string())),
            Instant::now(),
        ),
    }
}

/// Run the probe query on a connection from `pool` (connecting when none is
/// idle), bounded by the target's connect timeout plus `query_timeout`. The
/// daemon probes through its own pool so that it never holds more
/// connections than the pool allows.
pub async fn probe_pool(pool: &Pool, target: &TargetConfig) -> Reachability {
    bounded_probe(target, async {
        let client = pool.get().await.map_err(|e| {
            (
                classify_pool_error(&e, pool),
                describe_pool_error(&e, pool, target),
            )
        })?;
        probe_query(&client).await
    })
    .await
}

/// The probe on a connection of the pool's gate rather than a pooled one:
/// for a pool whose connections are all busy, which must not make a healthy
/// server look down. It is the one attempt the gate allows beside the pool,
/// so the target's connections stay within `pool_size + max_overflow + 1`.
pub async fn probe_beside_pool(pool: &Pool, target: &TargetConfig) -> Reachability {
    let gate = &pool.manager().gate;
    bounded_probe(target, async {
        let connecting = tokio::time::timeout(target.connect_timeout.get(), gate.connect());
        let client = match connecting.await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => return Err((classify_connect(&e), describe_connect_error(&e, target))),
            Err(_) => {
                let failure = stalled(gate.phase());
                return Err((failure, sentence(failure, None, target)));
            }
        };
        probe_query(&client).await
    })
    .await
}

type ProbeOutcome = std::result::Result<(String, bool), (ConnectFailure, String)>;

async fn probe_query(client: &tokio_postgres::Client) -> ProbeOutcome {
    let failed = |e: tokio_postgres::Error| {
        let detail = driver_detail(&e).unwrap_or_else(|| e.to_string());
        (classify(&e), detail)
    };
    let row = client
        .query_one(
            "SELECT current_setting('server_version'), pg_is_in_recovery()",
            &[],
        )
        .await
        .map_err(failed)?;
    use crate::checks::rows::col;
    let unreadable = |e| (ConnectFailure::Other, e);
    Ok((
        col(&row, 0).map_err(unreadable)?,
        col(&row, 1).map_err(unreadable)?,
    ))
}

/// Time a probe and bound it: a server that accepted the connection long
/// ago and now never answers.
async fn bounded_probe(
    target: &TargetConfig,
    probe: impl std::future::Future<Output = ProbeOutcome>,
) -> Reachability {
    let started = Instant::now();
    let bound = target.pool_timeout.get() + 2 * target.connect_timeout.get();
    let outcome = tokio::time::timeout(bound, probe)
        .await
        .unwrap_or_else(|_| {
            Err((
                ConnectFailure::TimedOut,
                format!("the server did not answer the probe query within {bound:?}"),
            ))
        });
    reachability(target, outcome, started)
}

fn reachability(target: &TargetConfig, outcome: ProbeOutcome, started: Instant) -> Reachability {
    let mut result = Reachability {
        target: target.name.to_string(),
        url: target.url().redacted(),
        reachable: false,
        failure: None,
        message: String::new(),
        server_version: None,
        in_recovery: None,
        latency_seconds: started.elapsed().as_secs_f64(),
    };
    match outcome {
        Ok((version, recovery)) => {
            result.reachable = true;
            let role = if recovery { "standby" } else { "primary" };
            result.message = format!("reachable: PostgreSQL {version}, {role}");
            result.server_version = Some(version);
            result.in_recovery = Some(recovery);
        }
        Err((failure, message)) => {
            result.failure = Some(failure);
            result.message = message;
        }
    }
    result
}

mod tls {
    //! rustls for PostgreSQL, with libpq's meaning of each sslmode: `prefer`
    //! and `require` encrypt without checking the certificate; `verify-ca` and
    //! `verify-full` check it against `sslrootcert` or the web roots.
    use super::*;
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, SignatureScheme};

    pub fn connector(target: &TargetConfig) -> Result<tokio_postgres_rustls::MakeRustlsConnect> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::failed(format!("TLS setup failed: {e}")))?;
        let config = match target.sslmode {
            SslMode::VerifyCa | SslMode::VerifyFull => builder
                .with_root_certificates(root_store(target)?)
                .with_no_client_auth(),
            _ => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
                .with_no_client_auth(),
        };
        Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
    }

    fn root_store(target: &TargetConfig) -> Result<rustls::RootCertStore> {
        let mut store = rustls::RootCertStore::empty();
        let Some(path) = &target.sslrootcert else {
            store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            return Ok(store);
        };
        let pem = std::fs::read(path).map_err(|e| {
            Error::usage(format!(
                "target `{}`: cannot read sslrootcert {}: {e}",
                target.name,
                path.display()
            ))
        })?;
        let certs = rustls::pki_types::pem::PemObject::pem_slice_iter(&pem)
            .collect::<std::result::Result<Vec<CertificateDer>, _>>()
            .map_err(|e| {
                Error::usage(format!(
                    "target `{}`: sslrootcert {} is not PEM: {e}",
                    target.name,
                    path.display()
                ))
            })?;
        for cert in certs {
            store.add(cert).map_err(|e| {
                Error::usage(format!(
                    "target `{}`: bad certificate in {}: {e}",
                    target.name,
                    path.display()
                ))
            })?;
        }
        Ok(store)
    }

    /// libpq's `require`: encrypt, but accept any certificate.
    #[derive(Debug)]
    struct EncryptOnly(Arc<rustls::crypto::CryptoProvider>);

    impl ServerCertVerifier for EncryptOnly {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> std::result::Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            let algs = &self.0.signature_verification_algorithms;
            rustls::crypto::verify_tls12_signature(message, cert, dss, algs)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            let algs = &self.0.signature_verification_algorithms;
            rustls::crypto::verify_tls13_signature(message, cert, dss, algs)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
}
