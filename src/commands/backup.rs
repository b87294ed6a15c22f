//! `pgwarden backup …` and `pgwarden restore`

use crate::cli::{Context, not_implemented};
use crate::error::Result;

#[derive(Debug, clap::Args)]
pub struct Args {}

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {}

pub async fn run(_ctx: &Context, _args: Args) -> Result<u8> {
    Err(not_implemented("backup"))
}

pub async fn restore(_ctx: &Context, _args: RestoreArgs) -> Result<u8> {
    Err(not_implemented("restore"))
}
