//! The `credit-tender` command: `serve`, `demo`, `import`, `keygen`,
//! `verify`, and the small clients `assess` and `keys`.

mod access;
mod audit_draws;
mod client;
mod exit;
mod log;
mod offline;
mod open;
mod out;
mod remote;
mod render;
mod supervision;
mod verify;

#[cfg(test)]
mod tests;

pub use exit::Exit;
pub use offline::{Encoding, ImportArgs, KeygenArgs};
pub use open::RuleArgs;

use offline::{import, keygen};
use open::{DEFAULT_DB, load_rules, open_store, open_store_with, store_failed, store_url};
use out::outln;

use crate::access::principals::SharedPrincipals;
use crate::rules::Rules;
use crate::server::{self, AppState, ServerOptions};
use crate::service::PolicySet;
use crate::signing::{Keyring, SharedKeyring};
use crate::tls::{SharedTls, TlsFiles};
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Signed, reproducible transport-credit assessments for public tenders.
#[derive(Debug, Parser)]
#[command(name = "credit-tender", version, about, after_long_help = exit::HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The command line and the environment, as clap reads them, except that
    /// a variable set to the empty string counts as unset: `CREDIT_TENDER_CA=`
    /// (a shell profile's or a unit file's empty line) means "no CA file",
    /// not a file named "", and every `CREDIT_TENDER_*` a flag reads falls
    /// back to its default or to nothing the same way.
    pub fn try_parse_env() -> Result<Cli, clap::Error> {
        use clap::{CommandFactory, FromArgMatches};
        let mut cmd = without_empty_env(Cli::command());
        let mut matches = cmd.try_get_matches_from_mut(std::env::args_os())?;
        Cli::from_arg_matches_mut(&mut matches).map_err(|e| e.format(&mut cmd))
    }
}

/// `cmd` and its subcommands with every argument whose variable is set but
/// empty read as if the variable were not set.
fn without_empty_env(cmd: clap::Command) -> clap::Command {
    cmd.mut_args(|arg| {
        let empty = arg.get_env().and_then(std::env::var_os).is_some_and(|v| v.is_empty());
        if empty { arg.env(None::<&'static str>) } else { arg }
    })
    .mut_subcommands(without_empty_env)
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the gRPC API over a credit store.
    Serve(Box<ServeArgs>),
    /// Serve a temporary SQLite store loaded with the shipped demo data.
    Demo(Box<DemoArgs>),
    /// Import JSON Lines (.jsonl) and evaluation tables (.csv), each file all or nothing.
    Import(ImportArgs),
    /// Write a new Ed25519 signing key (PKCS#8) and print its key id.
    Keygen(KeygenArgs),
    /// Check a signed statement offline and print it.
    Verify(verify::VerifyArgs),
    /// Ask a running server for a bidder's signed assessment.
    Assess(client::AssessArgs),
    /// Print a running server's public keys (the ListKeys answer) as JSON.
    Keys(client::KeysArgs),
    /// Bearer tokens for the principals file.
    #[command(subcommand)]
    Token(access::TokenCommand),
    /// A test CA with server and client certificates, for a test deployment over TLS.
    Cert(access::CertArgs),
    /// Write the newest checkpoint and a statement's inclusion proof (for `verify --checkpoint --proof`).
    Proof(log::ProofArgs),
    /// Follow the transparency log: check each checkpoint, its consistency with the last one
    /// seen, every entry's signature, and that no question got two different answers.
    Audit(log::AuditArgs),
    /// Recompute a logged statement from the store and show it equals the signed one.
    Recompute(log::RecomputeArgs),
    /// Recompute an inspection draw offline from its population, seed checkpoint and procedure.
    VerifyDraw(supervision::VerifyDrawArgs),
    /// Sum what credit changed in tendering from a verified copy of the log's statements.
    Outcomes(supervision::OutcomesArgs),
}

#[derive(Debug, Args)]
pub struct ListenArgs {
    /// Address to listen on: IP:PORT, or HOST:PORT resolved at start.
    #[arg(long, default_value = "127.0.0.1:50051", env = "CREDIT_TENDER_LISTEN", value_parser = listen_address)]
    pub listen: SocketAddr,
    /// Allow a non-loopback address although callers are not authenticated.
    #[arg(long)]
    pub insecure_allow_remote: bool,
    /// Seconds in-flight requests get to finish on shutdown.
    #[arg(long, default_value_t = server::DEFAULT_SHUTDOWN_GRACE.as_secs(), value_name = "SECONDS")]
    pub shutdown_grace: u64,
    /// Requests served at once, process-wide (health, /metrics and key
    /// listing aside); one more is answered RESOURCE_EXHAUSTED at once.
    #[arg(long, default_value_t = crate::shed::DEFAULT_MAX_IN_FLIGHT, value_name = "N", value_parser = positive_count)]
    pub max_in_flight: usize,
    /// New statements signed and logged at once for callers; a request that
    /// needs one more is answered RESOURCE_EXHAUSTED at once, before anything
    /// is signed (cached answers are never counted).
    #[arg(long, default_value_t = crate::shed::DEFAULT_MAX_SIGNING, value_name = "N", value_parser = positive_count)]
    pub max_signing: usize,
    /// A request that has waited longer than this for its turn is answered
    /// RESOURCE_EXHAUSTED before any work is done for it (decimals allowed).
    #[arg(
        long,
        env = "CREDIT_TENDER_QUEUE_TARGET_MS",
        default_value_t = crate::shed::DEFAULT_QUEUE_TARGET.as_secs_f64() * 1000.0,
        value_name = "MS",
        value_parser = queue_target_millis
    )]
    pub queue_target_ms: f64,
    /// A request whose body has not all arrived this long after its headers
    /// is refused (it holds no in-flight slot meanwhile).
    #[arg(long, default_value_t = crate::shed::DEFAULT_BODY_TIMEOUT.as_secs_f64() * 1000.0, value_name = "MS", value_parser = positive_millis)]
    pub body_timeout_ms: f64,
    /// MiB of request bodies held at once, process-wide (unidentified
    /// callers a quarter); a body past it is answered RESOURCE_EXHAUSTED.
    #[arg(long, default_value_t = crate::shed::DEFAULT_BODY_BUDGET >> 20, value_name = "MIB", value_parser = body_budget_mib)]
    pub body_budget_mib: usize,
    /// HTTP/2 streams one connection may have open at once.
    #[arg(long, default_value_t = server::DEFAULT_MAX_STREAMS_PER_CONNECTION, value_name = "N")]
    pub max_streams_per_connection: u32,
    /// Connections open at once; past it, the next client waits accepted but
    /// unserved and the others in the listen backlog.
    #[arg(long, default_value_t = crate::listen::DEFAULT_MAX_CONNECTIONS, value_name = "N")]
    pub max_connections: usize,
    /// Seconds a connection may move nothing (keep-alive pings aside) before it is closed.
    #[arg(long, default_value_t = crate::listen::DEFAULT_IDLE_TIMEOUT.as_secs(), value_name = "SECONDS")]
    pub idle_timeout: u64,
    /// Seconds a new connection has to send its first bytes (plain TCP) or
    /// finish its TLS handshake; a silent one is closed, freeing its place.
    #[arg(long, default_value_t = crate::listen::DEFAULT_HANDSHAKE_TIMEOUT.as_secs(), value_name = "SECONDS")]
    pub handshake_timeout: u64,
    /// The transparency log's name: the first line of every checkpoint and
    /// the name of the note key that signs them (a URL without scheme).
    #[arg(long, default_value = crate::server::DEFAULT_LOG_ORIGIN, value_name = "ORIGIN")]
    pub log_origin: String,
    /// Milliseconds between checkpoints while the log grows.
    #[arg(long, default_value_t = server::DEFAULT_CHECKPOINT_INTERVAL.as_millis() as u64, value_name = "MS")]
    pub checkpoint_interval_ms: u64,
    /// Run without the transparency log: statements are signed but not
    /// recorded (for measuring what the log costs; not for production).
    #[arg(long)]
    pub no_transparency_log: bool,
    /// Do not sign open tenders' statements in the background when bids are
    /// registered or bidders' records change (they are then signed when asked).
    #[arg(long)]
    pub no_background_refresh: bool,
}

impl ListenArgs {
    /// The server's options as these flags set them (who may call, TLS,
    /// risk policies and the ready call aside).
    fn options(&self) -> ServerOptions {
        ServerOptions {
            shutdown_grace: Duration::from_secs(self.shutdown_grace),
            max_in_flight: self.max_in_flight,
            max_signing: self.max_signing,
            queue_target: Duration::from_secs_f64(self.queue_target_ms / 1000.0),
            body_timeout: Duration::from_secs_f64(self.body_timeout_ms / 1000.0),
            body_budget: self.body_budget_mib << 20,
            max_streams_per_connection: self.max_streams_per_connection.max(1),
            max_connections: self.max_connections.max(1),
            idle_timeout: Duration::from_secs(self.idle_timeout.max(1)),
            handshake_timeout: Duration::from_secs(self.handshake_timeout.max(1)),
            background_refresh: !self.no_background_refresh,
            log: (!self.no_transparency_log).then(|| crate::server::LogOptions {
                origin: self.log_origin.clone(),
                checkpoint_interval: Duration::from_millis(self.checkpoint_interval_ms.max(10)),
            }),
            ..ServerOptions::default()
        }
    }
}

#[derive(Debug, Args)]
pub struct CacheArgs {
    /// Read the store on every request: no profile or statement cache (for diagnosis).
    #[arg(long)]
    pub no_cache: bool,
    /// Memory bound of each cache (profiles, statements), in MiB.
    #[arg(long, default_value_t = crate::cache::DEFAULT_CACHE_BYTES >> 20, value_name = "MIB")]
    pub cache_mib: u64,
    /// Seconds cached data may still be served while the store cannot be reached.
    #[arg(long, default_value_t = crate::cache::DEFAULT_MAX_STALENESS.as_secs(), value_name = "SECONDS")]
    pub max_staleness: u64,
    /// Milliseconds between backstop polls of the change table.
    #[arg(long, default_value_t = crate::cache::DEFAULT_POLL_INTERVAL.as_millis() as u64, value_name = "MS")]
    pub poll_ms: u64,
}

impl CacheArgs {
    fn config(&self) -> crate::cache::CacheConfig {
        crate::cache::CacheConfig {
            enabled: !self.no_cache,
            profile_bytes: self.cache_mib << 20,
            statement_bytes: self.cache_mib << 20,
            max_staleness: Duration::from_secs(self.max_staleness),
            poll_interval: Duration::from_millis(self.poll_ms.max(10)),
            ..crate::cache::CacheConfig::default()
        }
    }
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Credit store: sqlite://PATH (created if missing) or postgres://…
    #[arg(long, env = "CREDIT_TENDER_DB", default_value = DEFAULT_DB, value_parser = store_url)]
    pub db: String,
    /// Connections to the credit store held open (the pool's size).
    #[arg(long, default_value_t = crate::store::DEFAULT_CONNECTIONS, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub db_connections: u32,
    /// Milliseconds a write waits for its turn while another process (an
    /// import) holds the store's write lock; then it is answered UNAVAILABLE
    /// "the credit store is busy", with a retry hint, and nothing is stored.
    #[arg(long, default_value_t = crate::store::DEFAULT_WRITE_WAIT.as_millis() as u64, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub write_wait_ms: u64,
    /// PostgreSQL: milliseconds the store may leave a request unanswered
    /// before this replica counts it unreachable; then every request that
    /// needs it is answered UNAVAILABLE "the credit store cannot be reached"
    /// at once, with a retry hint, and health says NOT_SERVING, until it
    /// answers again (probed every quarter of this).
    #[arg(long, default_value_t = crate::store::DEFAULT_STORE_TIMEOUT.as_millis() as u64, value_name = "MS", value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub store_timeout_ms: u64,
    #[command(flatten)]
    pub listen: ListenArgs,
    #[command(flatten)]
    pub rules: RuleArgs,
    #[command(flatten)]
    pub cache: CacheArgs,
    /// Signing key configuration (TOML: [[key]] file, status, valid_from, valid_to).
    /// SIGHUP re-reads it, so keys rotate without a restart.
    #[arg(long, env = "CREDIT_TENDER_KEYS", value_name = "FILE")]
    pub keys: PathBuf,
    /// Directory of extra policy files (*.toml); one with a shipped id replaces it.
    #[arg(long, value_name = "DIR")]
    pub policies: Option<PathBuf>,
    #[command(flatten)]
    pub access: AccessArgs,
}

/// TLS and caller identity for `serve`.
#[derive(Debug, Args)]
pub struct AccessArgs {
    /// Server certificate chain (PEM); with --tls-key, the port speaks TLS only.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// CA whose client certificates identify callers (mutual TLS); callers may still use tokens.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub client_ca: Option<PathBuf>,
    /// Who may call and what they may do (TOML); SIGHUP re-reads it. Without
    /// it every caller is the local operator, which only loopback allows.
    #[arg(long, value_name = "FILE")]
    pub principals: Option<PathBuf>,
}

/// What `serve --principals --tls-*` loaded: who may call, and the TLS configuration.
type Access = (Option<Arc<SharedPrincipals>>, Option<Arc<SharedTls>>);

impl AccessArgs {
    fn load(&self) -> Result<Access, Exit> {
        let principals = self.principals.as_deref().map(SharedPrincipals::load).transpose().map_err(Exit::config)?.map(Arc::new);
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => {
                let files = TlsFiles { cert: cert.clone(), key: key.clone(), client_ca: self.client_ca.clone() };
                Some(SharedTls::load(files).map_err(Exit::config)?)
            }
            _ => None,
        };
        Ok((principals, tls))
    }
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub listen: ListenArgs,
    #[command(flatten)]
    pub cache: CacheArgs,
}

/// `--listen`: an address, or a host name and port resolved now (the
/// first address it resolves to), so that `localhost:50051` works.
/// A duration in milliseconds, decimals allowed: above 0, at most an hour.
/// A count of places (requests, statements): above 0 and at most
/// 1,000,000 (a semaphore holds at most `usize::MAX >> 3`; a larger value
/// once crashed startup with exit 70, found by the outside attack).
fn positive_count(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n > 0 && n <= 1_000_000 => Ok(n),
        _ => Err(format!("'{s}' is not a whole number above 0 and at most 1000000")),
    }
}

/// At least 17 MiB, so that one largest message (16 MiB) fits; at most 1 TiB.
fn body_budget_mib(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (17..=1 << 20).contains(&n) => Ok(n),
        _ => Err(format!("'{s}' is not a whole number of MiB from 17 (one 16 MiB message must fit) to 1048576")),
    }
}

fn positive_millis(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(ms) if ms.is_finite() && ms > 0.0 && ms <= 3_600_000.0 => Ok(ms),
        _ => Err(format!("'{s}' is not a number of milliseconds above 0 and at most 3600000 (such as 5 or 0.5)")),
    }
}

/// A wait target: at least [`MIN_QUEUE_TARGET_MS`] (below it an idle
/// server's own scheduling, tens of µs, would refuse every call).
fn queue_target_millis(s: &str) -> Result<f64, String> {
    match positive_millis(s) {
        Ok(ms) if ms >= MIN_QUEUE_TARGET_MS => Ok(ms),
        Ok(_) => Err(format!(
            "'{s}' ms is below the {MIN_QUEUE_TARGET_MS} ms minimum: an idle server takes tens of µs to schedule a request, so every call would be refused"
        )),
        Err(e) => Err(e),
    }
}

/// The smallest `--queue-target-ms` taken (0.1 ms).
const MIN_QUEUE_TARGET_MS: f64 = 0.1;

fn listen_address(s: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse() {
        return Ok(addr);
    }
    use std::net::ToSocketAddrs;
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(format!("'{s}' is not HOST:PORT (such as 127.0.0.1:50051 or localhost:50051)"));
    };
    if port.parse::<u16>().is_err() {
        return Err(format!("'{port}' is not a port number (0 to 65535)"));
    }
    match s.to_socket_addrs() {
        Ok(mut addrs) => addrs.next().ok_or_else(|| format!("'{host}' resolves to no address")),
        Err(e) => Err(format!("cannot resolve '{host}': {e}")),
    }
}

/// Runs a parsed command line; whatever it printed is flushed, and a write
/// error on the way (other than a reader gone away) is status 74.
pub async fn run(cli: Cli) -> Result<(), Exit> {
    out::finish(run_command(cli).await)
}

async fn run_command(cli: Cli) -> Result<(), Exit> {
    match cli.command {
        Command::Serve(args) => {
            let rules = load_rules(&args.rules)?;
            let (principals, tls) = args.access.load()?;
            let secured = principals.is_some() && tls.is_some();
            crate::listen::check_listen_address(args.listen.listen, secured, args.listen.insecure_allow_remote).map_err(Exit::usage)?;
            let keyring = Keyring::load(&args.keys).map_err(|e| Exit::config(e.to_string()))?;
            let keys = SharedKeyring::new(keyring, Some(args.keys.clone()));
            let options = crate::store::StoreOptions {
                connections: args.db_connections,
                write_wait: Duration::from_millis(args.write_wait_ms),
                timeout: Duration::from_millis(args.store_timeout_ms),
                mode: crate::store::OpenMode::Create,
            };
            let store = open_store_with(&args.db, options).await?;
            let policies = PolicySet::load(store.clone(), args.policies.as_deref()).await.map_err(|e| match e {
                crate::rules::ConfigError::Store { .. } => Exit::unavailable(e.to_string()),
                e => Exit::config(e.to_string()),
            })?;
            let state = AppState::new(store, rules, policies, keys, args.cache.config()).await.map_err(store_failed)?;
            // Risk policies live in the policies folder's risk/ (tender policies beside them).
            let risk = args.policies.as_deref().map(|d| d.join("risk")).filter(|d| d.is_dir());
            serve(&args.listen, state, principals, tls, risk).await
        }
        Command::Demo(args) => {
            crate::listen::check_listen_address(args.listen.listen, false, args.listen.insecure_allow_remote).map_err(Exit::usage)?;
            let dir = tempfile::tempdir().map_err(|e| Exit::cant_create(format!("cannot create a temporary directory: {e}")))?;
            let url = format!("sqlite://{}", dir.path().join("demo.db").display());
            let store = open_store(&url, crate::store::OpenMode::Create).await?;
            let rules = Rules::shipped();
            let loaded = crate::demo::load(&store, &rules).await.map_err(|e| Exit::software(format!("loading demo data: {e:#}")))?;
            let policies = PolicySet::load(store.clone(), None).await.map_err(|e| Exit::software(e.to_string()))?;
            let tenders = crate::demo::register_tenders(&store, &policies)
                .await
                .map_err(|e| Exit::software(format!("registering demo tenders: {e:#}")))?;
            tracing::info!(store = %url, data_version = loaded, tenders, "demo data loaded");
            let keys = SharedKeyring::new(Keyring::ephemeral(), None);
            tracing::warn!(
                key = keys.get().active_key_id(),
                "demo signs with a key generated for this run only; `serve --keys` uses configured keys"
            );
            let state = AppState::new(store, rules, policies, keys, args.cache.config()).await.map_err(store_failed)?;
            let result = serve(&args.listen, state, None, None, None).await;
            drop(dir);
            result
        }
        Command::Import(args) => import(args).await,
        Command::Keygen(args) => keygen(&args),
        Command::Verify(args) => verify::run(&args),
        Command::Assess(args) => {
            remote::check_connect(&args.connect)?;
            client::assess(&args).await
        }
        Command::Keys(args) => {
            remote::check_connect(&args.connect)?;
            client::keys(&args).await
        }
        Command::Token(cmd) => access::token(&cmd),
        Command::Cert(args) => access::cert(&args),
        Command::Proof(args) => {
            remote::check_connect(&args.connect)?;
            log::proof(&args).await
        }
        Command::Audit(args) => {
            remote::check_connect(&args.connect)?;
            log::audit(&args).await
        }
        Command::Recompute(args) => log::recompute(&args).await,
        Command::VerifyDraw(args) => supervision::verify_draw(&args),
        Command::Outcomes(args) => {
            remote::check_connect(&args.connect)?;
            supervision::outcomes(&args).await
        }
    }
}

async fn serve(
    listen: &ListenArgs,
    state: AppState,
    principals: Option<Arc<SharedPrincipals>>,
    tls: Option<Arc<SharedTls>>,
    risk_policies: Option<PathBuf>,
) -> Result<(), Exit> {
    let options = ServerOptions {
        risk_policies,
        principals,
        tls,
        // One line on stdout once the server serves, so that a supervisor
        // (or a test) that asked for port 0 learns the port, and knows that
        // everything the server needs loaded: it is never printed by a
        // server that is about to exit.
        ready: server::Ready::new(|addr| outln!("listening on {addr}")),
        ..listen.options()
    };
    server::check_options(&state, &options).map_err(Exit::config)?;
    let listener = tokio::net::TcpListener::bind(listen.listen)
        .await
        .map_err(|e| Exit::unavailable(format!("cannot listen on {}: {}", listen.listen, exit::io_reason(&e))))?;
    server::run(listener, state, options, server::shutdown_signal()).await.map_err(|e| Exit::software(format!("server failed: {e:#}")))
}
