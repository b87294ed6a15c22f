//! `pgwarden seed`

use crate::cli::{Context, not_implemented};
use crate::error::Result;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn run(_ctx: &Context, _args: Args) -> Result<u8> {
    Err(not_implemented("seed"))
}
