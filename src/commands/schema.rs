//! `pgwarden schema`: compare schemas (databases, folders of SQL, migrations).

use crate::cli::Context;
use crate::error::Result;
use crate::schema::{self, Source};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Print the SQL that turns FROM into TO (nothing when they are the same).
    Diff {
        /// A postgresql:// URL, a target name, a folder of SQL, `migrations` or `migrations@VERSION`.
        from: String,
        /// The same forms as FROM.
        to: String,
        /// Exit 1 when they differ (for CI).
        #[arg(long)]
        exit_code: bool,
    },
}

pub async fn run(ctx: &Context, args: Args) -> Result<u8> {
    match args.action {
        Action::Diff {
            from,
            to,
            exit_code,
        } => {
            let from = Source::parse(&from, &ctx.config)?;
            let to = Source::parse(&to, &ctx.config)?;
            let diff = schema::diff_sources(&ctx.config, &from, &to).await?;
            print_diff(&diff);
            Ok(if exit_code && !diff.is_empty() { 1 } else { 0 })
        }
    }
}

/// The SQL on stdout; warnings and notes on stderr, where a pipe into psql
/// does not swallow them.
pub fn print_diff(diff: &schema::Diff) {
    print!("{}", diff.render());
    for warning in diff.warnings() {
        eprintln!("warning: {warning}");
    }
    for note in &diff.notes {
        eprintln!("note: {note}");
    }
}
