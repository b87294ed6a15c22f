//! TLS to PostgreSQL with libpq's sslmode meanings, against a real server
//! with a real certificate chain made by openssl.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;

use pgwarden::config::{Config, EnvVars, LoadOptions};
use support::*;

struct Certs {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is needed for TLS tests: apt-get install openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a server certificate for 127.0.0.1, readable by the server.
fn make_certs() -> Certs {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        p,
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "2",
                "-subj",
                "/CN=pgwarden test CA",
            ],
        ]
        .concat(),
    );
    openssl(
        p,
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        p.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    openssl(
        p,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
    // The server insists its key is private to the user it runs as.
    Command::new("chmod")
        .args(["0755"])
        .arg(p)
        .status()
        .unwrap();
    Command::new("chmod")
        .args(["0600"])
        .arg(p.join("server.key"))
        .status()
        .unwrap();
    if pgwarden::cluster::running_as_root() {
        Command::new("chown")
            .args(["postgres:"])
            .arg(p.join("server.key"))
            .arg(p.join("server.crt"))
            .status()
            .unwrap();
    }
    Certs {
        ca: p.join("ca.crt"),
        cert: p.join("server.crt"),
        key: p.join("server.key"),
        _dir: dir,
    }
}

fn tls_cluster(certs: &Certs) -> Cluster {
    own_cluster(
        &ClusterOptions::default()
            .setting("ssl", "on")
            .setting("ssl_cert_file", certs.cert.to_str().unwrap())
            .setting("ssl_key_file", certs.key.to_str().unwrap()),
    )
}

fn load(url: &str, extra: &str) -> Config {
    let dir = workdir();
    let path = write_file(
        dir.path(),
        "pgwarden.toml",
        &format!("[[targets]]\nname = \"tls\"\nurl = \"{url}\"\nconnect_timeout = \"3s\"\n{extra}"),
    );
    Config::load(&LoadOptions {
        path: Some(path),
        environment: None,
        env: EnvVars::default(),
    })
    .unwrap()
}

async fn connection_is_encrypted(config: &Config) -> Result<bool, String> {
    let pool = pgwarden::pool::build_pool(&config.targets[0]).map_err(|e| e.to_string())?;
    let client = pool
        .get()
        .await
        .map_err(|e| pgwarden::pool::describe_pool_error(&e, &pool, &config.targets[0]))?;
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.get(0))
}

#[tokio::test]
async fn require_encrypts_and_verify_full_checks_the_chain() {
    let certs = make_certs();
    let cluster = tls_cluster(&certs);
    let url = cluster.url();

    let require = load(url.expose(), "sslmode = \"require\"\n");
    assert_eq!(connection_is_encrypted(&require).await, Ok(true));

    let ca = format!(
        "sslmode = \"verify-full\"\nsslrootcert = \"{}\"\n",
        certs.ca.display()
    );
    let verified = load(url.expose(), &ca);
    assert_eq!(connection_is_encrypted(&verified).await, Ok(true));

    let disabled = load(url.expose(), "sslmode = \"disable\"\n");
    assert_eq!(connection_is_encrypted(&disabled).await, Ok(false));
}

#[tokio::test]
async fn an_untrusted_certificate_is_a_tls_failure_not_a_silent_success() {
    let certs = make_certs();
    let cluster = tls_cluster(&certs);
    // verify-full against the web roots: our private CA is not among them.
    let config = load(cluster.url().expose(), "sslmode = \"verify-full\"\n");
    let probe = pgwarden::pool::probe(&config.targets[0]).await;
    assert!(!probe.reachable, "{probe:?}");
    assert_eq!(
        probe.failure,
        Some(pgwarden::pool::ConnectFailure::Tls),
        "{probe:?}"
    );
    assert!(
        probe.message.contains("TLS negotiation failed"),
        "{}",
        probe.message
    );
    assert!(!probe.message.contains(PASSWORD));
}

#[test]
fn config_check_says_tls_when_the_server_has_no_tls() {
    let dir = workdir();
    let config = format!(
        "[[targets]]\nname = \"plain\"\nurl = \"{}\"\nsslmode = \"require\"\n",
        shared().url().expose()
    );
    let path = write_file(dir.path(), "pgwarden.toml", &config);
    let out = pgwarden(dir.path())
        .args(["--config", path.to_str().unwrap(), "config", "check"])
        .output()
        .unwrap();
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(text.contains("TLS negotiation failed"), "{text}");
}
