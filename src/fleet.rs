//! Fleets: one pgwarden watching every database of a server, and several
//! pgwarden instances splitting a fleet between them.
//!
//! A target with `discover = "<regex>"` names a server (its URL's database is
//! only where pgwarden lists `pg_database`) and a pattern; every matching
//! non-template database is watched as a *unit* of that target, labelled
//! `database="…"`. Server-wide measurements run once, in the target's own
//! unit; database-scoped checks run per database (see
//! [`crate::checks::metric::Scope`]).
//!
//! What a fleet costs a server is bounded whatever the number of databases:
//! every connection pgwarden opens to a discovery target's server holds one of
//! `fleet.max_connections_per_server` permits ([`Budgets`]) for as long as it
//! is open, including while it is still in startup; database cycles run at
//! most `fleet.max_concurrent_databases` at a time, each on one connection
//! that is closed when its cycle ends.
//!
//! Sharding needs no coordination: a unit belongs to shard `I` of `N` when a
//! stable hash of its name (FNV-1a of `target` or `target/database`) modulo
//! `N` is `I - 1`, so N instances with the same config split a fleet, and a
//! database created later lands in exactly one of them.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};
use tokio::sync::Semaphore;

use crate::config::{Bounded, Duration, TargetConfig};

pub type ConnectionCap = Bounded<2, 1000>;
pub type DatabaseConcurrency = Bounded<1, 999>;

/// `[fleet]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FleetConfig {
    /// Every connection to one server of a discovery target, all units together.
    pub max_connections_per_server: ConnectionCap,
    /// Database cycles running at once on one server.
    pub max_concurrent_databases: DatabaseConcurrency,
    /// How often `pg_database` is listed again.
    pub discover_interval: Duration,
    /// This instance's part of the fleet (`serve --shard` wins).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            max_connections_per_server: ConnectionCap::new(4),
            max_concurrent_databases: DatabaseConcurrency::new(2),
            discover_interval: Duration::secs(60),
            shard: None,
        }
    }
}

impl FleetConfig {
    /// The pool of a discovery target's own (server-wide) unit: what the
    /// database cycles leave of the server's budget.
    pub fn server_pool_size(&self, target: &TargetConfig) -> usize {
        let cap = self.max_connections_per_server.get();
        let left = cap
            .saturating_sub(self.max_concurrent_databases.get())
            .max(1);
        target.max_connections().min(left as usize)
    }

    pub fn validate(&self) -> Result<(), crate::config::ConfigError> {
        let cap = self.max_connections_per_server.get();
        let databases = self.max_concurrent_databases.get();
        if databases >= cap {
            return Err(crate::config::ConfigError::Invalid {
                key: "fleet.max_concurrent_databases".into(),
                value: databases.to_string(),
                reason: format!(
                    "it must be below fleet.max_connections_per_server ({cap}): each database cycle takes one connection, and the server-wide checks need at least one more"
                ),
            });
        }
        Ok(())
    }

    /// Does this instance take the unit named `key` ([`unit_key`])?
    pub fn owns(&self, key: &str) -> bool {
        self.shard.is_none_or(|shard| shard.owns(key))
    }
}

/// The name a unit is sharded by: `target`, or `target/database`.
pub fn unit_key(target: &str, database: Option<&str>) -> String {
    match database {
        Some(database) => format!("{target}/{database}"),
        None => target.to_string(),
    }
}

/// `I/N`: this instance is shard `I` (1-based) of `N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!("`{text}` is not a shard: {why}; write I/N with 1 <= I <= N, e.g. \"1/2\"")
        };
        let (index, count) = text.trim().split_once('/').ok_or_else(|| bad("no `/`"))?;
        let number = |part: &str| part.trim().parse::<u64>().map_err(|_| bad("not a number"));
        let (index, count) = (number(index)?, number(count)?);
        if count == 0 || index == 0 || index > count {
            return Err(bad("I must be between 1 and N"));
        }
        Ok(Self { index, count })
    }

    pub fn owns(self, key: &str) -> bool {
        stable_hash(key) % self.count == self.index - 1
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        Self::parse(text)
    }
}

impl Serialize for Shard {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Shard {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(de::Error::custom)
    }
}

/// FNV-1a, 64 bits: the same on every machine and in every version, which
/// a std hasher does not promise, so instances agree on who owns what.
pub fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// `discover = "<regex>"`: the databases of the target's server to watch.
#[derive(Clone)]
pub struct Pattern(regex::Regex);

impl Pattern {
    pub fn matches(&self, database: &str) -> bool {
        self.0.is_match(database)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0.as_str(), f)
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.as_str())
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        regex::Regex::new(&text).map(Self).map_err(|e| {
            de::Error::custom(format!(
                "`{text}` is not a regular expression ({e}); write e.g. \"^school_\", or \".\" for every database"
            ))
        })
    }
}

/// A database `pg_database` lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Database {
    pub name: String,
    /// Why pgwarden will not connect, when the catalog already says it
    /// would be refused (`datallowconn = false`, `CONNECTION LIMIT 0`).
    pub refused: Option<&'static str>,
}

/// Non-template databases, with what the catalog says about connecting.
pub const DATABASES_SQL: &str = "SELECT datname::text, datallowconn, datconnlimit \
     FROM pg_database WHERE NOT datistemplate ORDER BY datname";

pub fn database(row: &tokio_postgres::Row) -> Result<Database, String> {
    use crate::checks::rows::{col, opt};
    let name: String = col(row, 0)?;
    let allowed: Option<bool> = opt(row, 1)?;
    let limit: Option<i32> = opt(row, 2)?;
    let refused = if allowed == Some(false) {
        Some("the database does not allow connections (datallowconn = false)")
    } else if limit == Some(0) {
        Some("the database allows no connections (CONNECTION LIMIT 0)")
    } else {
        None
    };
    Ok(Database { name, refused })
}

/// One permit pool per server, shared by every discovery target that points
/// at it. A server is its URL's hosts and ports.
#[derive(Default)]
pub struct Budgets {
    servers: Mutex<BTreeMap<String, Arc<Semaphore>>>,
}

impl Budgets {
    /// The budget of `target`'s server (made on first use). A reload that
    /// changes the cap gets a new one (the old one goes with the collectors
    /// the reload stops).
    pub fn of(&self, target: &TargetConfig, fleet: &FleetConfig) -> Arc<Semaphore> {
        let url = target.url();
        let cap = fleet.max_connections_per_server.get();
        let server = format!("{}:{} (cap {cap})", url.host(), url.port());
        let mut servers = self.servers.lock().unwrap_or_else(|e| e.into_inner());
        servers
            .entry(server)
            .or_insert_with(|| Arc::new(Semaphore::new(cap as usize)))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_every_key_exactly_once() {
        let shards: Vec<Shard> = (1..=3).map(|i| Shard { index: i, count: 3 }).collect();
        let mut taken = [0usize; 3];
        for n in 0..300 {
            let key = unit_key("fleet", Some(&format!("school_{n:03}")));
            let owners: Vec<usize> = (0..3).filter(|&i| shards[i].owns(&key)).collect();
            assert_eq!(owners.len(), 1, "{key}: {owners:?}");
            taken[owners[0]] += 1;
        }
        assert!(taken.iter().all(|&n| n > 50), "uneven split: {taken:?}");
    }

    #[test]
    fn the_hash_is_fnv1a() {
        assert_eq!(stable_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash("a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn bad_shards_say_how_to_write_one() {
        for bad in ["", "1", "0/2", "3/2", "a/b", "1/0"] {
            let err = Shard::parse(bad).unwrap_err();
            assert!(err.contains("I/N"), "{bad}: {err}");
        }
        assert_eq!(Shard::parse(" 2/3 ").unwrap(), Shard { index: 2, count: 3 });
    }
}
