//! The `sluice` binary: reads the configuration, opens the spool and runs the API, the
//! scheduler, the delivery engine and the webhook dispatcher in one process.

mod queue_cli;
mod serve;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Sluice, a transactional email sending platform.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the server: API, queue, delivery and webhooks.
    Serve {
        /// Configuration file (TOML). Without one, built-in defaults apply.
        #[arg(long, short, env = "SLUICE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Inspects and steers the queue of a running server.
    Queue {
        #[command(flatten)]
        target: queue_cli::Target,
        #[command(subcommand)]
        command: queue_cli::QueueCommand,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // One crypto provider for the whole process: every TLS user (API, SMTP, webhooks) uses ring.
    rustls::crypto::ring::default_provider()
        .install_default()
        .map_err(|_| anyhow::anyhow!("another TLS crypto provider was installed first"))?;
    match cli.command {
        Command::Serve { config } => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(serve::run(config))
        }
        Command::Queue { target, command } => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(queue_cli::run(target, command))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
