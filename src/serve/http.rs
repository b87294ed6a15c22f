//! The HTTP side: `/metrics`, `/health`, `/ready`, `/`, over plain TCP or
//! TLS, optionally behind basic auth.
//!
//! Handlers only read [`Shared`]; nothing here can wait on a database. Each
//! connection is its own task with a header-read timeout, so a slow or
//! malicious client holds up nobody else. On shutdown the listener closes
//! first, then open connections finish their current request (bounded).

use std::collections::{BTreeMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{
    AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HeaderValue, VARY, WWW_AUTHENTICATE,
};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::config::HttpConfig;
use super::encoding;
use super::state::Shared;
use crate::error::{Error, Result};

/// A client gets this long to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// What every connection shares: the state to read and the access rules.
pub struct Web {
    shared: Arc<Shared>,
    auth: Option<BasicAuth>,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Web {
    pub fn new(config: &HttpConfig, shared: Arc<Shared>) -> Result<Self> {
        Ok(Self {
            shared,
            auth: (!config.basic_auth_users.is_empty())
                .then(|| BasicAuth::new(config.basic_auth_users.clone())),
            tls: tls_acceptor(config)?,
        })
    }

    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        if let Some(auth) = &self.auth
            && !auth.allows(request.headers().get(AUTHORIZATION)).await
        {
            let mut response = text(StatusCode::UNAUTHORIZED, "unauthorized\n");
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"pgwarden\""),
            );
            return response;
        }
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
        }
        match request.uri().path() {
            "/metrics" => self.metrics(request.headers()),
            "/probe" => self.probe(request.uri().query().unwrap_or("")),
            "/health" => self.health(),
            "/ready" => self.ready(),
            "/" => body(
                StatusCode::OK,
                "text/html; charset=utf-8",
                Bytes::from(super::page::render(&self.shared)),
            ),
            _ => text(
                StatusCode::NOT_FOUND,
                "not found; try /metrics, /probe?target=NAME, /health, /ready\n",
            ),
        }
    }

    /// The cached body, as OpenMetrics and gzip-compressed when asked.
    fn metrics(&self, headers: &hyper::HeaderMap) -> Response<Full<Bytes>> {
        let text = self.shared.metrics();
        let (content_type, text) = if encoding::wants_openmetrics(headers) {
            let om = encoding::openmetrics(&String::from_utf8_lossy(&text));
            (encoding::OPENMETRICS_TYPE, Bytes::from(om))
        } else {
            (encoding::PROMETHEUS_TYPE, text)
        };
        let gzipped = encoding::wants_gzip(headers)
            .then(|| encoding::gzip(&text))
            .flatten();
        let compressed = gzipped.is_some();
        let mut response = body(StatusCode::OK, content_type, gzipped.unwrap_or(text));
        let headers = response.headers_mut();
        headers.insert(VARY, HeaderValue::from_static("Accept, Accept-Encoding"));
        if compressed {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        response
    }

    /// `/probe?target=NAME[&database=DB]`: one target's (or one discovered
    /// database's) series, for Prometheus' multi-target pattern.
    fn probe(&self, query: &str) -> Response<Full<Bytes>> {
        let mut target = None;
        let mut database = None;
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "target" => target = Some(value.into_owned()),
                "database" => database = Some(value.into_owned()),
                _ => {}
            }
        }
        let Some(target) = target else {
            return text(
                StatusCode::BAD_REQUEST,
                "name the target: /probe?target=NAME (and &database=DB for a discovered database)\n",
            );
        };
        match self.shared.probe(&target, database.as_deref()) {
            Ok(metrics) => body(
                StatusCode::OK,
                encoding::PROMETHEUS_TYPE,
                Bytes::from(metrics),
            ),
            Err(message) => body(
                StatusCode::NOT_FOUND,
                "text/plain; charset=utf-8",
                Bytes::from(message),
            ),
        }
    }

    fn health(&self) -> Response<Full<Bytes>> {
        let (healthy, report) = self.shared.health();
        let json = serde_json::to_vec_pretty(&report).unwrap_or_default();
        let status = if healthy {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        body(status, "application/json", Bytes::from(json))
    }

    fn ready(&self) -> Response<Full<Bytes>> {
        let waiting = self.shared.waiting_for();
        if waiting.is_empty() {
            text(StatusCode::OK, "ready\n")
        } else {
            let message = format!("waiting for the first cycle of: {}\n", waiting.join(", "));
            body(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain; charset=utf-8",
                Bytes::from(message),
            )
        }
    }
}

fn body(status: StatusCode, content_type: &'static str, bytes: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(bytes));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn text(status: StatusCode, message: &'static str) -> Response<Full<Bytes>> {
    body(
        status,
        "text/plain; charset=utf-8",
        Bytes::from_static(message.as_bytes()),
    )
}

/// Basic auth against bcrypt hashes. bcrypt is slow on purpose, so a header
/// that verified once is remembered (in memory only) and later requests of a
/// scraper cost a set lookup, not a hash.
struct BasicAuth {
    users: BTreeMap<String, String>,
    verified: Mutex<HashSet<String>>,
}

const MAX_REMEMBERED: usize = 64;

impl BasicAuth {
    fn new(users: BTreeMap<String, String>) -> Self {
        Self {
            users,
            verified: Mutex::new(HashSet::new()),
        }
    }

    async fn allows(&self, header: Option<&HeaderValue>) -> bool {
        let Some(header) = header.and_then(|h| h.to_str().ok()) else {
            return false;
        };
        if self.remembered().contains(header) {
            return true;
        }
        let Some((user, password)) = decode_basic(header) else {
            return false;
        };
        // An unknown user costs a bcrypt verify too, so that the answer's
        // timing does not tell which user names exist.
        let known = self.users.get(&user).cloned();
        let ok = tokio::task::spawn_blocking(move || {
            let hash = known.as_deref().unwrap_or_else(|| unknown_user_hash());
            bcrypt::verify(password, hash).unwrap_or(false) && known.is_some()
        })
        .await
        .unwrap_or(false);
        if ok {
            let mut remembered = self.remembered();
            if remembered.len() >= MAX_REMEMBERED {
                remembered.clear();
            }
            remembered.insert(header.to_string());
        }
        ok
    }

    fn remembered(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.verified.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A hash no password matches in practice, at the cost the README suggests (10), for unknown users.
fn unknown_user_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| bcrypt::hash("pgwarden: no such user", 10).unwrap_or_default())
}

fn decode_basic(header: &str) -> Option<(String, String)> {
    use base64::Engine;
    let encoded = header.strip_prefix("Basic ")?.trim();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

pub(crate) fn tls_acceptor(config: &HttpConfig) -> Result<Option<tokio_rustls::TlsAcceptor>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let (Some(cert), Some(key)) = (&config.tls_cert_file, &config.tls_key_file) else {
        return Ok(None);
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| {
            Error::usage(format!(
                "http.tls_cert_file {}: {e}; give a PEM certificate chain",
                cert.display()
            ))
        })?;
    let private_key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        Error::usage(format!(
            "http.tls_key_file {}: {e}; give the PEM private key of the certificate",
            key.display()
        ))
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, private_key))
        .map_err(|e| {
            Error::usage(format!(
                "http.tls_cert_file / http.tls_key_file do not make a usable TLS setup: {e}"
            ))
        })?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(server))))
}

/// Accept connections until `shutdown` turns true, then give open ones
/// `grace` to finish.
pub async fn serve(
    listener: TcpListener,
    web: Arc<Web>,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    // Tests kill this task with FAILPOINTS=http_accept=panic.
                    fail::fail_point!("http_accept");
                    let _ = stream.set_nodelay(true);
                    connections.spawn(connection(stream, peer, web.clone(), shutdown.clone()));
                }
                // Out of file descriptors, say: back off instead of spinning.
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            "{} HTTP connection(s) still open after {grace:?}; closing them",
            connections.len()
        );
        connections.abort_all();
    }
}

async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    web: Arc<Web>,
    shutdown: watch::Receiver<bool>,
) {
    match web.tls.clone() {
        None => serve_http(stream, web, shutdown).await,
        Some(acceptor) => match tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream)).await
        {
            Ok(Ok(tls)) => serve_http(tls, web, shutdown).await,
            Ok(Err(e)) => tracing::debug!("TLS handshake with {peer} failed: {e}"),
            Err(_) => tracing::debug!("TLS handshake with {peer} timed out"),
        },
    }
}

async fn serve_http<S>(io: S, web: Arc<Web>, mut shutdown: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request| {
        let web = web.clone();
        async move { Ok::<_, Infallible>(web.handle(request).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!("HTTP connection ended: {e}");
            }
        }
        _ = shutdown.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
