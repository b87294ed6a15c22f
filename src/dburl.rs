//! PostgreSQL connection URLs that cannot leak their password.
//!
//! A `DbUrl` prints (Display, Debug, Serialize) as `postgres://app:***@host/db`.
//! The only way to get the password back out is [`DbUrl::pg_config`], which
//! hands it straight to the driver, or [`DbUrl::password`] for the few places
//! (pg_dump's environment) that must pass it on.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

const EXPECTED_FORM: &str = "expected postgres://user:password@host:port/database";

#[derive(Clone, PartialEq, Eq)]
pub struct DbUrl {
    url: url::Url,
}

impl DbUrl {
    /// Parse a `postgres://` or `postgresql://` URL. The error never repeats
    /// the input, because the input may hold a password.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let url = url::Url::parse(text).map_err(|e| format!("not a URL ({e}); {EXPECTED_FORM}"))?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(format!(
                "scheme `{}` is not postgres:// or postgresql://; {EXPECTED_FORM}",
                url.scheme()
            ));
        }
        let has_socket_host = url.query_pairs().any(|(k, _)| k == "host");
        if url.host_str().unwrap_or("").is_empty() && !has_socket_host {
            return Err(format!("the URL names no host; {EXPECTED_FORM}"));
        }
        let parsed = Self { url };
        tokio_postgres::Config::from_str(parsed.url.as_str())
            .map_err(|e| format!("PostgreSQL rejects it: {e}; {EXPECTED_FORM}"))?;
        Ok(parsed)
    }

    /// The URL with its password replaced by `***`, safe for any output.
    pub fn redacted(&self) -> String {
        let mut shown = self.url.clone();
        if shown.password().is_some() {
            let _ = shown.set_password(Some("***"));
        }
        let pairs: Vec<(String, String)> = shown
            .query_pairs()
            .map(|(k, v)| {
                let secret = k == "password" || k == "sslpassword";
                (
                    k.into_owned(),
                    if secret { "***".into() } else { v.into_owned() },
                )
            })
            .collect();
        if !pairs.is_empty() {
            shown.query_pairs_mut().clear().extend_pairs(pairs);
        }
        shown.to_string()
    }

    /// The full URL, password included: only for handing to another program
    /// or config file that needs it, never for output.
    pub fn expose(&self) -> &str {
        self.url.as_str()
    }

    /// The driver configuration, password included.
    pub fn pg_config(&self) -> tokio_postgres::Config {
        tokio_postgres::Config::from_str(self.url.as_str()).expect("validated in DbUrl::parse")
    }

    pub fn password(&self) -> Option<String> {
        self.pg_config()
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned())
    }

    pub fn user(&self) -> String {
        self.pg_config()
            .get_user()
            .unwrap_or("postgres")
            .to_string()
    }

    /// The database name, defaulting like libpq does to the user name.
    pub fn database(&self) -> String {
        let cfg = self.pg_config();
        cfg.get_dbname()
            .map(str::to_string)
            .unwrap_or_else(|| self.user())
    }

    pub fn host(&self) -> String {
        self.url.host_str().unwrap_or("").to_string()
    }

    pub fn port(&self) -> u16 {
        self.url.port().unwrap_or(5432)
    }

    /// The same server and credentials, another database.
    pub fn with_database(&self, database: &str) -> Self {
        let mut url = self.url.clone();
        url.set_path(&format!("/{database}"));
        Self { url }
    }

    /// The same URL with the password replaced (for `password_file`).
    pub fn with_password(&self, password: &str) -> Result<Self, String> {
        let mut url = self.url.clone();
        url.set_password(Some(password))
            .map_err(|_| "this URL cannot carry a password".to_string())?;
        Ok(Self { url })
    }
}

impl fmt::Display for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DbUrl({})", self.redacted())
    }
}

impl Serialize for DbUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for DbUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        DbUrl::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_never_shows() {
        let url = DbUrl::parse("postgres://app:s3cret@db.example:6543/edu?password=x2").unwrap();
        let shown = format!("{url} {url:?} {}", serde_json::to_string(&url).unwrap());
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(!shown.contains("x2"), "{shown}");
        assert!(shown.contains("postgres://app:***@db.example:6543/edu"));
        assert_eq!(url.password().as_deref(), Some("x2"));
        assert_eq!(url.database(), "edu");
        assert_eq!(url.port(), 6543);
    }

    #[test]
    fn bad_urls_are_explained_without_echoing_input() {
        for bad in [
            "mysql://u:hunter2@h/db",
            "hunter2",
            "postgres://u:hunter2@/db",
        ] {
            let err = DbUrl::parse(bad).unwrap_err();
            assert!(!err.contains("hunter2"), "{err}");
            assert!(err.contains("expected postgres://"), "{err}");
        }
    }
}
