//! The `credit-tender` command: `credit-tender --help` lists its subcommands
//! (`serve`, `demo`, `import`, `verify`, `audit`, ...); the README shows each.

use credit_tender::cli::{Cli, Exit, run};
use futures_util::FutureExt;
use std::io::Write;

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,sqlx=warn".into()))
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: not in files, journals or pipes.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // clap exits 2 on a usage error; the exit table says 64 (help and
    // --version are not errors, and stay 0). An empty CREDIT_TENDER_*
    // variable counts as unset.
    let cli = match Cli::try_parse_env() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            std::process::exit(if e.use_stderr() { Exit::USAGE } else { 0 });
        }
    };
    // A panic is a bug: the message is printed by the panic hook, and the
    // status is the table's "internal error", not Rust's 101.
    let outcome = std::panic::AssertUnwindSafe(async {
        // Debug builds only (the tests' binary): a way to reach this row of
        // the exit table, which no input should ever reach in a release.
        #[cfg(debug_assertions)]
        if std::env::var_os("CREDIT_TENDER_TEST_PANIC").is_some() {
            panic!("CREDIT_TENDER_TEST_PANIC is set");
        }
        run(cli).await
    })
    .catch_unwind()
    .await;
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(exit)) => {
            // Not eprintln!: a closed stderr must not turn this status into a panic.
            let _ = writeln!(std::io::stderr(), "credit-tender: {}", exit.message);
            std::process::exit(exit.status);
        }
        Err(_) => {
            let _ = writeln!(std::io::stderr(), "credit-tender: internal error (a bug): please report the message above");
            std::process::exit(Exit::SOFTWARE);
        }
    }
}
