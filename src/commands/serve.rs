//! `pgwarden serve`

use crate::cli::Context;
use crate::config::Config;
use crate::error::Result;
use crate::serve::Daemon;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn run(ctx: &Context, _args: Args) -> Result<u8> {
    let options = ctx.options.clone();
    let exporter = ctx.exporter.clone();
    // SIGHUP re-reads the same file, environment and `.env` as the start did.
    let loader = Box::new(move || {
        let mut options = options.clone();
        let cwd = std::env::current_dir().unwrap_or_else(|_| ".".into());
        options.env = crate::config::EnvVars::from_process(&cwd)?;
        let mut config = Config::load(&options)?;
        exporter.apply(&mut config)?;
        Ok(config)
    });
    let daemon = Daemon::bind(ctx.config.clone(), loader).await?;
    tracing::info!("metrics at {}/metrics", daemon.base_url());
    daemon.run().await?;
    Ok(0)
}
