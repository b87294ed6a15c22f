//! The command-line conventions of the Prometheus exporters: `--web.listen-address`,
//! `--web.config.file` (the exporter-toolkit web configuration YAML) and
//! `--log.format` / `--log.level`, beside pgwarden's own config keys.
//!
//! They override the config file, and are applied again after every SIGHUP
//! reload, so a flag keeps winning over the file it was meant to beat.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::{Config, LogFormat};
use crate::error::{Error, Result};

#[derive(Clone, Debug, Default, clap::Args)]
pub struct ExporterFlags {
    /// Address of /metrics, /health, /ready and / (beats http.listen).
    #[arg(
        long = "web.listen-address",
        env = "PGWARDEN_WEB_LISTEN_ADDRESS",
        global = true,
        value_name = "HOST:PORT"
    )]
    pub listen_address: Option<String>,

    /// Exporter-toolkit web config (YAML: tls_server_config, basic_auth_users); beats [http]'s TLS and users.
    #[arg(long = "web.config.file", global = true, value_name = "PATH")]
    pub web_config_file: Option<PathBuf>,

    /// Log format: text (also spelt logfmt) or json (beats log.format).
    #[arg(long = "log.format", global = true, value_name = "FORMAT", value_parser = parse_log_format)]
    pub log_format: Option<LogFormat>,

    /// Log level or filter, e.g. debug, info, warn, error (beats log.level).
    #[arg(long = "log.level", global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,
}

fn parse_log_format(text: &str) -> std::result::Result<LogFormat, String> {
    match text {
        "text" | "logfmt" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err("expected text (or logfmt) or json".into()),
    }
}

impl ExporterFlags {
    /// Put the flags over `config`, and check what they changed.
    pub fn apply(&self, config: &mut Config) -> Result<()> {
        if let Some(listen) = &self.listen_address {
            crate::config::listen_address(listen).map_err(|e| {
                Error::usage(e.to_string())
                    .context("--web.listen-address (or PGWARDEN_WEB_LISTEN_ADDRESS)")
            })?;
            config.http.listen = listen.clone();
        }
        if let Some(path) = &self.web_config_file {
            WebConfig::load(path)?.apply(config);
            let named = |e: Error| e.context(format!("--web.config.file {}", path.display()));
            config.http.validate().map_err(named)?;
            super::http::tls_acceptor(&config.http).map_err(named)?;
        }
        if let Some(format) = self.log_format {
            config.log.format = format;
        }
        if let Some(level) = &self.log_level {
            tracing_subscriber::EnvFilter::try_new(level).map_err(|e| {
                Error::usage(format!(
                    "--log.level {level:?}: {e}; write debug, info, warn or error"
                ))
            })?;
            config.log.level = level.clone();
        }
        Ok(())
    }
}

/// The exporter-toolkit web configuration, the parts pgwarden serves.
/// Unknown keys are refused by name rather than silently not applied.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebConfig {
    #[serde(default)]
    tls_server_config: Option<TlsServerConfig>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsServerConfig {
    cert_file: PathBuf,
    key_file: PathBuf,
}

impl WebConfig {
    fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::usage(format!(
                "cannot read --web.config.file {}: {e}",
                path.display()
            ))
        })?;
        let mut config: WebConfig = if text.trim().is_empty() {
            WebConfig::default()
        } else {
            serde_norway::from_str(&text).map_err(|e| {
                Error::usage(format!(
                    "--web.config.file {}: {e}; pgwarden reads tls_server_config (cert_file, key_file) and basic_auth_users (user: bcrypt hash)",
                    path.display()
                ))
            })?
        };
        // As in the exporter-toolkit: relative paths are relative to the file.
        if let Some(tls) = &mut config.tls_server_config {
            let dir = path.parent().unwrap_or(Path::new("."));
            tls.cert_file = dir.join(&tls.cert_file);
            tls.key_file = dir.join(&tls.key_file);
        }
        Ok(config)
    }

    fn apply(self, config: &mut Config) {
        if let Some(tls) = self.tls_server_config {
            config.http.tls_cert_file = Some(tls.cert_file);
            config.http.tls_key_file = Some(tls.key_file);
        }
        if !self.basic_auth_users.is_empty() {
            config.http.basic_auth_users = self.basic_auth_users;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<WebConfig> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.yml");
        std::fs::write(&path, text).unwrap();
        WebConfig::load(&path)
    }

    #[test]
    fn the_exporter_toolkit_file_is_read_and_other_keys_are_refused_by_name() {
        let web = load(
            "tls_server_config:\n  cert_file: tls.crt\n  key_file: /etc/k.key\nbasic_auth_users:\n  prometheus: $2y$10$abc\n",
        )
        .unwrap();
        let tls = web.tls_server_config.unwrap();
        assert!(tls.cert_file.ends_with("tls.crt") && tls.cert_file.is_absolute());
        assert_eq!(tls.key_file, PathBuf::from("/etc/k.key"));
        assert_eq!(web.basic_auth_users["prometheus"], "$2y$10$abc");
        let err = load("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_ca_file: c\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("client_ca_file"), "{err}");
        assert!(load("").unwrap().basic_auth_users.is_empty());
        assert_eq!(parse_log_format("logfmt"), Ok(LogFormat::Text));
        assert!(parse_log_format("xml").is_err());
    }
}
