//! Small value types that validate themselves while the TOML is read.
//!
//! Checking a value inside `Deserialize` (rather than after) means the TOML
//! parser still knows where the value sits, so the error names the line.

use std::fmt;
use std::time::Duration as StdDuration;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// A whole number that must lie in `MIN..=MAX`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bounded<const MIN: u64, const MAX: u64>(u64);

impl<const MIN: u64, const MAX: u64> Bounded<MIN, MAX> {
    /// Panics when out of range: for defaults written in code only.
    pub const fn new(value: u64) -> Self {
        assert!(value >= MIN && value <= MAX);
        Self(value)
    }

    pub fn try_new(value: u64) -> Result<Self, String> {
        if (MIN..=MAX).contains(&value) {
            Ok(Self(value))
        } else {
            Err(format!(
                "{value} is out of range: expected {}",
                Self::expected()
            ))
        }
    }

    pub fn get(self) -> u64 {
        self.0
    }

    fn expected() -> String {
        format!("a whole number from {MIN} to {MAX}")
    }
}

/// The same rule for a command-line flag as for the config key
/// (`backup --jobs` and `backup.jobs`).
impl<const MIN: u64, const MAX: u64> std::str::FromStr for Bounded<MIN, MAX> {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let value: u64 = text
            .trim()
            .parse()
            .map_err(|_| format!("`{text}` is not {}", Self::expected()))?;
        Self::try_new(value)
    }
}

impl<const MIN: u64, const MAX: u64> fmt::Debug for Bounded<MIN, MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<const MIN: u64, const MAX: u64> Serialize for Bounded<MIN, MAX> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de, const MIN: u64, const MAX: u64> Deserialize<'de> for Bounded<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor<const MIN: u64, const MAX: u64>;
        impl<const MIN: u64, const MAX: u64> de::Visitor<'_> for Visitor<MIN, MAX> {
            type Value = Bounded<MIN, MAX>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(&Bounded::<MIN, MAX>::expected())
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                u64::try_from(v)
                    .ok()
                    .and_then(|v| Bounded::try_new(v).ok())
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Signed(v), &self))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Bounded::try_new(v)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
            }
        }
        d.deserialize_any(Visitor::<MIN, MAX>)
    }
}

/// A duration written as `"500ms"`, `"5s"`, `"2m"`, `"1h"`, `"1d"` or a
/// plain number of seconds.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Duration(pub StdDuration);

impl Duration {
    pub const fn secs(secs: u64) -> Self {
        Self(StdDuration::from_secs(secs))
    }

    pub const fn millis(ms: u64) -> Self {
        Self(StdDuration::from_millis(ms))
    }

    pub fn get(self) -> StdDuration {
        self.0
    }

    /// Parse a duration. Plain digits are seconds (the old toolkit's form);
    /// anything with a unit goes to `humantime`, which reports an overflow
    /// instead of wrapping. Whole milliseconds up to [`Duration::MAX`] only,
    /// so every value prints back as itself.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let parsed = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            text.parse::<u64>()
                .ok()
                .and_then(|secs| secs.checked_mul(1_000))
                .map(StdDuration::from_millis)
                .ok_or_else(|| too_long(text))?
        } else {
            humantime::parse_duration(text).map_err(|e| explain(&e, text))?
        };
        if parsed > Self::MAX.0 {
            return Err(too_long(text));
        }
        if parsed.subsec_nanos() % 1_000_000 != 0 {
            return Err(format!(
                "`{text}` is finer than a millisecond; pgwarden counts durations in whole milliseconds"
            ));
        }
        Ok(Self(parsed))
    }

    /// The longest duration any key accepts (ten years); keys have tighter
    /// bounds of their own (see `config::validate`).
    pub const MAX: Duration = Duration::secs(3650 * 86_400);
}

fn too_long(text: &str) -> String {
    format!(
        "`{text}` is too long: durations go up to \"{}\"",
        Duration::MAX
    )
}

fn explain(error: &humantime::DurationError, text: &str) -> String {
    match error {
        humantime::DurationError::UnknownUnit { unit, .. } => {
            format!("unknown unit `{unit}` in `{text}`; {DURATION_FORMS}")
        }
        humantime::DurationError::NumberOverflow => too_long(text),
        _ => format!("`{text}` is not a duration; {DURATION_FORMS}"),
    }
}

const DURATION_FORMS: &str = "write it like \"500ms\", \"5s\", \"2m\", \"1h\" or \"1d\"";

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms == 0 {
            return f.write_str("0s");
        }
        let units = [
            (86_400_000, "d"),
            (3_600_000, "h"),
            (60_000, "m"),
            (1_000, "s"),
        ];
        for (size, unit) in units {
            if ms >= size && ms.is_multiple_of(size) {
                return write!(f, "{}{unit}", ms / size);
            }
        }
        write!(f, "{ms}ms")
    }
}

impl fmt::Debug for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as \"5s\" or a number of seconds")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
                u64::try_from(v)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
                Duration::parse(&v.to_string()).map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                Duration::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Which environment this deployment is. Production turns on the guard
/// rails: backups before migrations, no `seed clear`, `restore` needs `--force`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    #[default]
    #[serde(alias = "dev")]
    Development,
    #[serde(alias = "stage")]
    Staging,
    #[serde(alias = "prod")]
    Production,
}

impl Environment {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "development" | "dev" => Ok(Self::Development),
            "staging" | "stage" => Ok(Self::Staging),
            "production" | "prod" => Ok(Self::Production),
            other => Err(format!(
                "unknown environment `{other}`: expected development, staging or production"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Development => "development",
            Self::Staging => "staging",
            Self::Production => "production",
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// libpq's sslmode values that pgwarden supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    Disable,
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// A target's name: it becomes a metric label and part of backup file names,
/// so it is kept to letters, digits, `-` and `_`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Hash, PartialOrd, Ord)]
pub struct TargetName(String);

impl TargetName {
    pub fn parse(text: &str) -> Result<Self, String> {
        let ok = !text.is_empty()
            && text.len() <= 63
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if ok {
            Ok(Self(text.to_string()))
        } else {
            Err(format!(
                "target name `{text}` must be 1-63 letters, digits, `-` or `_` (it is used as a metric label and in backup file names)"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TargetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for TargetName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        TargetName::parse(&text).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip() {
        for (text, ms) in [
            ("500ms", 500),
            ("5s", 5000),
            ("2m", 120_000),
            ("1h", 3_600_000),
            ("7", 7000),
        ] {
            assert_eq!(Duration::parse(text).unwrap().0.as_millis(), ms, "{text}");
        }
        assert_eq!(Duration::millis(1500).to_string(), "1500ms");
        assert_eq!(Duration::secs(120).to_string(), "2m");
        assert!(
            Duration::parse("5 parsecs")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(
            Duration::parse("soon")
                .unwrap_err()
                .contains("not a duration")
        );
    }

    #[test]
    fn durations_that_would_overflow_or_not_print_back_are_refused() {
        for text in [
            "18446744073709551615d",
            "18446744073709551615",
            "99999999999999999999999s",
            "3651d",
        ] {
            let err = Duration::parse(text).unwrap_err();
            assert!(
                err.contains("too long") && err.contains(text),
                "{text}: {err}"
            );
        }
        assert!(
            Duration::parse("1500us")
                .unwrap_err()
                .contains("millisecond")
        );
        assert!(Duration::parse("").unwrap_err().contains("not a duration"));
        assert!(
            Duration::parse("-5s")
                .unwrap_err()
                .contains("not a duration")
        );
        // humantime's compound forms are welcome, and print back as one unit.
        assert_eq!(Duration::parse("1h 30m").unwrap().to_string(), "90m");
        assert_eq!(Duration::parse("3650d").unwrap(), Duration::MAX);
        assert_eq!(Duration::parse("1min").unwrap(), Duration::secs(60));
        assert_eq!(Duration::parse("2w").unwrap().to_string(), "14d");
        assert_eq!(Duration::parse("10min").unwrap().to_string(), "10m");
        assert_eq!(Duration::parse("1d").unwrap(), Duration::secs(86_400));
    }
}
