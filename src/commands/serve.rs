//! `pgwarden serve`

use crate::cli::Context;
use crate::config::Config;
use crate::error::Result;
use crate::serve::Daemon;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Take only shard I of N of the targets and discovered databases
    /// (1 <= I <= N; a stable hash of each name decides), so N instances
    /// split a fleet with no coordination. Beats `fleet.shard`.
    #[arg(long, value_name = "I/N")]
    shard: Option<crate::fleet::Shard>,
}

pub async fn run(ctx: &Context, args: Args) -> Result<u8> {
    let options = ctx.options.clone();
    let exporter = ctx.exporter.clone();
    let shard = args.shard;
    // SIGHUP re-reads the same file, environment and `.env` as the start did.
    let loader = Box::new(move || {
        let mut options = options.clone();
        let cwd = std::env::current_dir().unwrap_or_else(|_| ".".into());
        options.env = crate::config::EnvVars::from_process(&cwd)?;
        let mut config = Config::load(&options)?;
        exporter.apply(&mut config)?;
        config.fleet.shard = shard.or(config.fleet.shard);
        Ok(config)
    });
    let mut config = ctx.config.clone();
    config.fleet.shard = shard.or(config.fleet.shard);
    let daemon = Daemon::bind(config, loader).await?;
    tracing::info!("metrics at {}/metrics", daemon.base_url());
    daemon.run().await?;
    Ok(0)
}
