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
    /// the input, because the input may hold a password; it names the part
    /// that is wrong (the user, the database name, a parameter).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let url = url::Url::parse(text).map_err(|e| format!("not a URL ({e}); {EXPECTED_FORM}"))?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(format!(
                "scheme `{}` is not postgres:// or postgresql://; {EXPECTED_FORM}",
                url.scheme()
            ));
        }
        check_escapes(&url)?;
        check_parameters(&url)?;
        let has_socket_host = url.query_pairs().any(|(k, _)| k == "host");
        if url.host_str().unwrap_or("").is_empty() && !has_socket_host {
            return Err(format!("the URL names no host; {EXPECTED_FORM}"));
        }
        let parsed = Self { url };
        tokio_postgres::Config::from_str(parsed.url.as_str())
            .map_err(|e| format!("PostgreSQL rejects it: {}; {EXPECTED_FORM}", chain(&e)))?;
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

    /// The same server and credentials, another database. The name is data,
    /// not URL text: every byte outside the unreserved set is percent-encoded,
    /// so `%ff`, `/` or `?` in a name stay part of the name.
    pub fn with_database(&self, database: &str) -> Self {
        let mut url = self.url.clone();
        url.set_path(&format!("/{}", encode(database)));
        Self { url }
    }

    /// The same URL with the password replaced (for `password_file`).
    pub fn with_password(&self, password: &str) -> Result<Self, String> {
        let mut url = self.url.clone();
        // Encoded here: `set_password` would take a `%` in the secret as
        // the start of an escape and change the password.
        url.set_password(Some(&encode(password)))
            .map_err(|_| "this URL cannot carry a password".to_string())?;
        Ok(Self { url })
    }
}

/// Percent-encode everything but RFC 3986's unreserved characters.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Does `text`, percent-decoded, make valid UTF-8? (The driver decodes every
/// part of the URL and refuses the whole string otherwise, without saying
/// which part.)
fn decodes(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .filter(|_| bytes[i] == b'%')
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(out).is_ok()
}

/// Name the part of the URL whose percent-escapes do not decode.
fn check_escapes(url: &url::Url) -> Result<(), String> {
    let bad = |part: &str| {
        format!(
            "the {part} holds a percent-escape that is not UTF-8 text (such as %ff); encode the text as UTF-8 and then percent-encode it; {EXPECTED_FORM}"
        )
    };
    if !decodes(url.username()) {
        return Err(bad("user name"));
    }
    if !url.password().is_none_or(decodes) {
        return Err(bad("password"));
    }
    if !decodes(url.host_str().unwrap_or("")) {
        return Err(bad("host"));
    }
    if !decodes(url.path()) {
        return Err(bad("database name (the path)"));
    }
    for (key, value) in raw_parameters(url) {
        if !decodes(key) || !decodes(value) {
            return Err(bad(&format!("parameter `{}`", shown_key(key))));
        }
    }
    Ok(())
}

/// Try each `?key=value` on its own, so an unknown parameter or a bad value
/// is reported by name (the driver only says "invalid connection string").
fn check_parameters(url: &url::Url) -> Result<(), String> {
    for pair in url.query().unwrap_or("").split('&') {
        if !pair.is_empty() && !pair.contains('=') {
            return Err(format!(
                "parameter `{}` has no value; write it as {0}=VALUE",
                shown_key(pair)
            ));
        }
    }
    for (key, value) in raw_parameters(url) {
        let alone = format!("postgresql://localhost/?{key}={value}");
        if let Err(e) = tokio_postgres::Config::from_str(&alone) {
            let key = shown_key(key);
            let hint = if key == "sslmode" {
                "; the URL takes sslmode=disable, prefer or require (for verify-ca or verify-full set the target's `sslmode` key instead)"
            } else {
                ""
            };
            let value = if is_secret(&key) {
                String::new()
            } else {
                format!("={value}")
            };
            return Err(format!(
                "parameter `{key}{value}` is not accepted: {}{hint}",
                chain(&e)
            ));
        }
    }
    Ok(())
}

/// The `key=value` pairs of the query, still percent-encoded.
fn raw_parameters(url: &url::Url) -> Vec<(&str, &str)> {
    url.query()
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .collect()
}

fn shown_key(key: &str) -> String {
    url::form_urlencoded::parse(format!("{key}=").as_bytes())
        .next()
        .map_or_else(|| key.to_string(), |(k, _)| k.into_owned())
}

fn is_secret(key: &str) -> bool {
    matches!(key, "password" | "sslpassword")
}

/// An error and its causes on one line ("invalid connection string: unknown
/// option `x`"): the driver's own Display stops at the first.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        text.push_str(&format!(": {cause}"));
        next = cause.source();
    }
    text
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

    #[test]
    fn bad_parts_are_named() {
        for (bad, named) in [
            ("postgres://u:hunter2@h/db?sslmode=bogus", "sslmode=bogus"),
            (
                "postgres://u:hunter2@h/db?sslmode=verify-full",
                "`sslmode` key",
            ),
            ("postgres://u:hunter2@h/db?frobnicate=1", "`frobnicate=1`"),
            ("postgres://u:hunter2@h/%ff", "database name"),
            ("postgres://%ff:hunter2@h/db", "user name"),
            ("postgres://u:hunter2%ff@h/db", "password"),
            (
                "postgres://u:hunter2@h/db?application_name=%ff",
                "`application_name`",
            ),
            (
                "postgres://u:hunter2@h/db?password=%ffhunter2",
                "`password`",
            ),
            ("postgres://u:hunter2@h/db?port=notaport", "port"),
            (
                "postgres://u:hunter2@h/db?password",
                "`password` has no value",
            ),
        ] {
            let err = DbUrl::parse(bad).unwrap_err();
            assert!(err.contains(named), "{bad}: {err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn database_names_are_data() {
        let url = DbUrl::parse("postgres://u:pw@h:5433/db?sslmode=disable").unwrap();
        for name in [
            "%ff", "a/b", "x?y#z", "q\"uote", "sp ace", "naïve", "100%", "",
        ] {
            let other = url.with_database(name);
            let expected = if name.is_empty() { "u" } else { name };
            assert_eq!(other.database(), expected, "{name}");
            assert_eq!(other.port(), 5433);
            assert_eq!(other.password().as_deref(), Some("pw"));
        }
        let odd = url.with_password("p@ss:%ff/?#").unwrap();
        assert_eq!(odd.password().as_deref(), Some("p@ss:%ff/?#"));
    }
}
