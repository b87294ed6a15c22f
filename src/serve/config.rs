//! `[http]`: where the daemon listens, and its optional TLS and basic auth.
//!
//! Shaped like the Prometheus exporter-toolkit web config (a certificate and
//! key file; users mapped to bcrypt hashes), so operators who secured
//! node_exporter can secure pgwarden the same way.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize, Serializer};

/// `[http]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address and port of /metrics, /health, /ready. Loopback by default.
    pub listen: String,
    /// PEM certificate chain; with `tls_key_file`, turns on HTTPS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of `tls_cert_file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key_file: Option<PathBuf>,
    /// user = "bcrypt hash" (`htpasswd -nBC 10 user`); non-empty turns on basic auth.
    #[serde(serialize_with = "redact_hashes")]
    pub basic_auth_users: BTreeMap<String, String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9733".into(),
            tls_cert_file: None,
            tls_key_file: None,
            basic_auth_users: BTreeMap::new(),
        }
    }
}

/// A hash is not a password, but it can be cracked offline: never print it.
fn redact_hashes<S: Serializer>(
    users: &BTreeMap<String, String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_map(users.keys().map(|user| (user, "***")))
}

impl HttpConfig {
    /// Check what deserialisation cannot: the pair of TLS files and the hashes.
    /// (`http.listen` is checked by binding it: a host name is fine there.)
    pub fn validate(&self) -> crate::Result<()> {
        use crate::Error;
        match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(_), None) | (None, Some(_)) => {
                return Err(Error::usage(
                    "http.tls_cert_file and http.tls_key_file must be set together (or neither)",
                ));
            }
            _ => {}
        }
        for (key, file) in [
            ("tls_cert_file", &self.tls_cert_file),
            ("tls_key_file", &self.tls_key_file),
        ] {
            if let Some(file) = file {
                std::fs::metadata(file).map_err(|e| {
                    Error::usage(format!("cannot read http.{key} {}: {e}", file.display()))
                })?;
            }
        }
        for (user, hash) in &self.basic_auth_users {
            if hash.parse::<bcrypt::HashParts>().is_err() {
                return Err(Error::usage(format!(
                    "http.basic_auth_users.{user}: not a bcrypt hash; create one with `htpasswd -nBC 10 {user}` and paste the part after the colon"
                )));
            }
        }
        Ok(())
    }
}
