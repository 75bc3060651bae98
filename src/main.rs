use clap::Parser;
use credit_tender::cli::{run, Cli};

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: not in files, journals or pipes.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if let Err(exit) = run(Cli::parse()).await {
        eprintln!("credit-tender: {}", exit.message);
        std::process::exit(exit.status);
    }
}
