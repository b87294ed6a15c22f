//! pgwarden keeps a PostgreSQL database healthy and safely changeable.
//!
//! Data flows one way: [`config`] → [`pool::Target`] (a pool per database) →
//! check cycle ([`checks`]) → [`report::Report`] → renderers (Prometheus
//! metrics, `/health` JSON, the CLI table). The CLI ([`cli`]), the daemon
//! ([`serve`]) and the tests all call these same functions.

pub mod backup;
pub mod checks;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod dburl;
pub mod error;
pub mod fleet;
pub mod health;
pub mod migrate;
pub mod pg_bin;
pub mod pool;
pub mod report;
pub mod schema;
pub mod seed;
pub mod serve;
pub mod sql;

pub use error::{Error, ErrorKind, Result};
