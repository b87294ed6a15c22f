//! One file per subcommand: its arguments and a thin `run` over the library.

pub mod backup;
pub mod config;
pub mod demo;
pub mod health;
pub mod migrate;
pub mod schema;
pub mod seed;
pub mod serve;
