//! The daemon: Prometheus exporter and /health (issue 5 fills this in).

use serde::{Deserialize, Serialize};

/// `[http]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address and port of /metrics, /health, /ready. Loopback by default.
    pub listen: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9733".into(),
        }
    }
}
