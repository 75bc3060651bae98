//! Assembly: one listener serving the API over gRPC, gRPC-Web and the
//! Connect protocol, gRPC health and server reflection (v1 and v1alpha),
//! the pages, with request limits and a bounded shutdown.

use crate::access::principals::SharedPrincipals;
use crate::background::Background;
use crate::cache::CacheConfig;
use crate::log::Log;
use crate::metrics::Metrics;
use crate::proto::v1::credit_data_service_server::CreditDataServiceServer;
use crate::proto::v1::key_service_server::KeyServiceServer;
use crate::proto::v1::log_service_server::LogServiceServer;
use crate::proto::v1::supervision_service_server::SupervisionServiceServer;
use crate::proto::v1::tender_service_server::TenderServiceServer;
use crate::rules::Rules;
use crate::service::{AssessmentApi, AssessmentRoutes, Cache, CreditDataApi, KeyApi, LogApi, PolicySet, TenderApi};
use crate::signing::SharedKeyring;
use crate::store::Store;
use crate::tls::SharedTls;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic_health::ServingStatus;
use tower::layer::util::{Identity, Stack};

/// Largest request or response message, in bytes. A full `PutRecords` batch
/// of [`crate::service::MAX_BATCH`] records fits well inside.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
// Admission reads a whole request body of at most one such message first.
const _: () = assert!(crate::shed::MAX_BODY_BYTES == MAX_MESSAGE_BYTES + 5);

/// How the server runs, beyond what it serves.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// How long in-flight requests may take to finish after shutdown begins.
    pub shutdown_grace: Duration,
    /// Longest a single request may run.
    pub request_timeout: Duration,
    /// Test-only hooks on the web page (see `web::WebState::test_hooks`).
    pub web_test_hooks: bool,
    /// Who may call: `None` serves every caller as the local operator
    /// (loopback only, as `demo` runs).
    pub principals: Option<Arc<SharedPrincipals>>,
    /// TLS on the port; `None` is plain TCP.
    pub tls: Option<Arc<SharedTls>>,
    /// Requests served at once, process-wide; more are shed at once
    /// (`crate::shed`, the hard ceiling).
    pub max_in_flight: usize,
    /// The wait for its turn past which a request is refused (`crate::shed`).
    pub queue_target: Duration,
    /// New statements made at once for callers; a call that needs one more
    /// is refused at once (`crate::shed::DEFAULT_MAX_SIGNING`).
    pub max_signing: usize,
    /// How long a request's body may take to arrive after its headers;
    /// later, it is refused (`crate::shed`).
    pub body_timeout: Duration,
    /// Bytes of request bodies held at once, process-wide; a body that
    /// would pass it is refused (`crate::shed::DEFAULT_BODY_BUDGET`).
    pub body_budget: usize,
    /// Test-only: honour `crate::shed::TEST_WAIT_HEADER`, which adds to a
    /// request's measured wait (tests inject a wait rather than sleep).
    pub queue_wait_test_hook: bool,
    /// HTTP/2 streams one connection may open at once (advertised).
    pub max_streams_per_connection: u32,
    /// Connections open at once; past it, the next client is accepted and
    /// waits unserved for a place, and the others wait in the backlog.
    pub max_connections: usize,
    /// A connection that moves nothing but keep-alives this long is closed.
    pub idle_timeout: Duration,
    /// How long a new connection has to send its first bytes (plain TCP)
    /// or finish its TLS handshake (`crate::listen`).
    pub handshake_timeout: Duration,
    /// The transparency log; `None` runs without one (for measurement).
    pub log: Option<LogOptions>,
    /// Sign the statements of open tenders' bids in the background when a
    /// bid is registered or a bidder's records change (`crate::refresh`).
    pub background_refresh: bool,
    /// Told the address once everything the server needs is loaded and it
    /// accepts connections (the CLI prints `listening on ADDR` then).
    pub ready: Ready,
    /// A folder of risk policies besides the shipped ones (`crate::supervision`).
    pub risk_policies: Option<std::path::PathBuf>,
}

/// A call made once the server serves: after the keys, the log, the store,
/// TLS and the principals are all in place, never before.
#[derive(Clone, Default)]
pub struct Ready(Option<Arc<dyn Fn(SocketAddr) + Send + Sync>>);

impl Ready {
    pub fn new(f: impl Fn(SocketAddr) + Send + Sync + 'static) -> Ready {
        Ready(Some(Arc::new(f)))
    }
}

impl std::fmt::Debug for Ready {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Ready(Some(..))" } else { "Ready(None)" })
    }
}

/// How the transparency log is kept.
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// The log's name: the checkpoints' origin line and the note key's name.
    pub origin: String,
    /// How often a checkpoint is published while the tree grows.
    pub checkpoint_interval: Duration,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions { origin: DEFAULT_LOG_ORIGIN.into(), checkpoint_interval: DEFAULT_CHECKPOINT_INTERVAL }
    }
}

/// The origin of a log whose operator did not name it.
pub const DEFAULT_LOG_ORIGIN: &str = "credit-tender.local/statements";
/// Defaults the CLI offers too (`serve --help`): the shutdown grace, the
/// HTTP/2 streams per connection, the checkpoints' interval.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
pub const DEFAULT_MAX_STREAMS_PER_CONNECTION: u32 = 128;
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            request_timeout: Duration::from_secs(30),
            web_test_hooks: false,
            principals: None,
            tls: None,
            max_in_flight: crate::shed::DEFAULT_MAX_IN_FLIGHT,
            queue_target: crate::shed::DEFAULT_QUEUE_TARGET,
            max_signing: crate::shed::DEFAULT_MAX_SIGNING,
            body_timeout: crate::shed::DEFAULT_BODY_TIMEOUT,
            body_budget: crate::shed::DEFAULT_BODY_BUDGET,
            queue_wait_test_hook: false,
            max_streams_per_connection: DEFAULT_MAX_STREAMS_PER_CONNECTION,
            max_connections: crate::listen::DEFAULT_MAX_CONNECTIONS,
            idle_timeout: crate::listen::DEFAULT_IDLE_TIMEOUT,
            handshake_timeout: crate::listen::DEFAULT_HANDSHAKE_TIMEOUT,
            log: Some(LogOptions::default()),
            background_refresh: true,
            ready: Ready::default(),
            risk_policies: None,
        }
    }
}

/// What the services share.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub rules: Arc<Rules>,
    pub policies: Arc<PolicySet>,
    pub keys: SharedKeyring,
    pub metrics: Arc<Metrics>,
    /// Profiles and signed statements, shared by every request of this replica.
    pub cache: Arc<Cache>,
}

impl AppState {
    /// Assembles the shared state; the cache starts at the store's current version.
    pub async fn new(
        store: Store,
        rules: Rules,
        policies: PolicySet,
        keys: SharedKeyring,
        cache: CacheConfig,
    ) -> Result<AppState, crate::store::StoreError> {
        let metrics = Arc::new(Metrics::new());
        let cache = Cache::new(store.clone(), cache, metrics.clone(), crate::service::CachedAnswer::weight).await?;
        Ok(AppState { store, rules: Arc::new(rules), policies: Arc::new(policies), keys, metrics, cache })
    }
}

/// What `run` refuses before it serves anything: a log without its key, a
/// log origin that is not a name. The CLI asks first, so that a bad
/// configuration is reported as one (exit 78), with nothing announced.
pub fn check_options(state: &AppState, options: &ServerOptions) -> Result<(), String> {
    if let Some(o) = &options.log {
        if state.keys.get().log_signer().is_none() {
            return Err("the transparency log signs checkpoints with its own key: add one to the keys file \
                        (`credit-tender keygen --out log.pk8`, then a [[key]] with role = \"log\" and status = \"active\"), \
                        or run with --no-transparency-log"
                .into());
        }
        if o.origin.is_empty() || o.origin.chars().any(|c| c.is_whitespace() || c == '+') {
            return Err(format!("--log-origin '{}' is not a log name: it must be non-empty, without spaces or '+'", o.origin));
        }
    }
    Ok(())
}

/// The API's services, each listed once: the router serves them, and health
/// reports each by name, following the store for those that need it.
struct Services {
    routes: Routes,
    /// Every service's health name, with whether it needs the store.
    names: Vec<(&'static str, NeedsStore)>,
}

/// Whether a service's health follows the store's ([`watch_store`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum NeedsStore {
    Yes,
    No,
}

impl Services {
    fn new(pages: axum::Router) -> Services {
        Services { routes: Routes::from(pages), names: Vec::new() }
    }

    /// Serves `service` and reports its health under its gRPC name.
    fn add<S>(mut self, service: S, store: NeedsStore) -> Services
    where
        S: tower::Service<tonic::codegen::http::Request<tonic::body::Body>, Error = std::convert::Infallible>
            + tonic::server::NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Response: axum::response::IntoResponse,
        S::Future: Send + 'static,
    {
        self.names.push((S::NAME, store));
        self.routes = self.routes.add_service(service);
        self
    }

    /// The names health reports: the server as a whole (the empty name, what
    /// a plain health probe asks) needs the store, then every service.
    fn health_names(&self) -> impl Iterator<Item = (&'static str, NeedsStore)> + '_ {
        std::iter::once(("", NeedsStore::Yes)).chain(self.names.iter().copied())
    }
}

/// Sets every limit a generated service takes, the same for all.
macro_rules! limited {
    ($server:expr) => {
        $server.max_decoding_message_size(MAX_MESSAGE_BYTES).max_encoding_message_size(MAX_MESSAGE_BYTES)
    };
}

/// Every service and page on the one port: the gRPC services (each with its
/// message size limits), reflection, and the web routes (the committee's
/// page, the log's tiles, /metrics: `crate::web::paths`).
fn services(state: &AppState, options: &ServerOptions, log: Option<Arc<Log>>, background: &mut Background) -> anyhow::Result<Services> {
    let assessment_api =
        AssessmentApi::new(state.rules.clone(), state.policies.clone(), state.keys.clone(), state.cache.clone(), log.clone())
            .with_signing_limit(options.max_signing);
    let supervision = supervision(state, options, log.clone(), background)?;
    let pages = crate::web::router(crate::web::WebState {
        supervision: supervision.clone(),
        cache: state.cache.clone(),
        assessments: assessment_api.clone(),
        keys: state.keys.clone(),
        log: log.clone(),
        test_hooks: options.web_test_hooks,
    });
    let rules = &state.rules;
    let mut services = Services::new(pages)
        .add(limited!(CreditDataServiceServer::new(CreditDataApi::new(rules.clone(), state.cache.clone()))), NeedsStore::Yes)
        .add(
            limited!(TenderServiceServer::new(TenderApi::new(rules.clone(), state.policies.clone(), state.cache.clone()))),
            NeedsStore::Yes,
        )
        .add(AssessmentRoutes::new(assessment_api, MAX_MESSAGE_BYTES), NeedsStore::Yes)
        // Key listing needs no store: it answers while the store is away.
        .add(limited!(KeyServiceServer::new(KeyApi::new(state.keys.clone()))), NeedsStore::No)
        .add(limited!(SupervisionServiceServer::new(supervision)), NeedsStore::Yes);
    if let Some(log) = log {
        // The log's proofs and entries are read from the store.
        services = services
            .add(limited!(LogServiceServer::new(LogApi::new(log, state.metrics.clone(), state.cache.clock().clone()))), NeedsStore::Yes);
    }
    // Reflection describes the services; it is not one and has no health.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    services.routes = services.routes.add_service(reflection().build_v1()?).add_service(reflection().build_v1alpha()?);
    Ok(services)
}

/// The supervision platform's service (`crate::supervision`), over the
/// shipped risk policies and `options.risk_policies`.
fn supervision(
    state: &AppState,
    options: &ServerOptions,
    log: Option<Arc<Log>>,
    background: &mut Background,
) -> anyhow::Result<crate::supervision::SupervisionApi> {
    let risk = crate::supervision::policies::RiskPolicySet::load(options.risk_policies.as_deref())?;
    for (id, grade) in risk.grade_policies() {
        anyhow::ensure!(state.policies.current(grade).is_some(), "risk policy '{id}': its grade_policy '{grade}' is not loaded");
    }
    let interval = options.log.as_ref().map_or(DEFAULT_CHECKPOINT_INTERVAL, |o| o.checkpoint_interval);
    let api = crate::supervision::SupervisionApi::new(
        state.rules.clone(),
        state.cache.clone(),
        state.policies.clone(),
        Arc::new(risk),
        state.keys.clone(),
        log,
        interval,
    );
    if let Some(orphans) = api.complete_orphans_at_start() {
        background.spawn("orphaned inspection completer", orphans);
    }
    Ok(api)
}

/// Serves on `listener` until `shutdown` completes, then drains for at most
/// `options.shutdown_grace` before stopping regardless.
// Long because: the assembly in the order it must happen (log, services, background tasks, accept loop, drain), read top to bottom.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    options: ServerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    check_options(&state, &options).map_err(anyhow::Error::msg)?;
    let mut background = Background::new();
    let log = options.log.as_ref().map(|o| {
        let (log, sequencer) = Log::new(state.store.clone(), o.origin.clone(), state.keys.clone(), state.metrics.clone());
        // The sequencer is not in the set: it ends once every handle of the
        // log is gone, after appending what it was handed.
        tokio::spawn(sequencer);
        background.spawn("checkpoint publisher", log.clone().publish_every(o.checkpoint_interval));
        log
    });
    // The background signing is drained first at shutdown: nothing is
    // signed in the background once shutdown has begun (it ends at its
    // next await: a store read, a log append).
    let mut signing = Background::new();
    if options.background_refresh && state.cache.enabled() {
        let (tx, rx) = tokio::sync::mpsc::channel(crate::refresh::QUEUE);
        state.cache.tell_changes_to(tx);
        let api = AssessmentApi::new(state.rules.clone(), state.policies.clone(), state.keys.clone(), state.cache.clone(), log.clone());
        signing.spawn("background signing", crate::refresh::run(api, state.cache.clone(), rx));
    }
    let services = services(&state, &options, log, &mut background)?;
    let (health, health_service) = tonic_health::server::health_reporter();
    let health_names: Vec<_> = services.health_names().collect();
    set_health(&health, &health_names, |_| true, ServingStatus::Serving).await;
    background.spawn("store probe", watch_store(state.store.clone(), health.clone(), health_names.clone()));
    background.spawn("WAL checkpointer", checkpoint_wal(state.store.clone(), state.metrics.clone()));
    background.spawn("SIGHUP reloader", reload_on_hangup(state.keys.clone(), options.principals.clone(), options.tls.clone()));
    background.spawn("cache follower", state.cache.clone().follow());
    let sink: Arc<dyn crate::store::ChangeSink> = state.cache.clone();
    if let Some(listen) = state.cache.enabled().then(|| state.store.change_listener(sink)).flatten() {
        background.spawn("change feed listener", listen);
    }

    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let stopped = async {
        let _ = stop_rx.await;
    };
    let router = edge(&state, &options).add_routes(services.routes.add_service(health_service));
    // Our own accept loop (crate::listen): a connection cap, back-off on
    // EMFILE, and TCP_NODELAY — small writes must not wait on Nagle's
    // algorithm and the peer's delayed ACK (~40 ms).
    let limits = crate::listen::Limits {
        max_connections: options.max_connections,
        handshake_timeout: options.handshake_timeout,
        idle_timeout: options.idle_timeout,
    };
    let metrics = state.metrics.clone();
    let mut server = match &options.tls {
        Some(tls) => tokio::spawn(router.serve_with_incoming_shutdown(crate::listen::tls(listener, limits, metrics, tls.clone()), stopped)),
        None => tokio::spawn(router.serve_with_incoming_shutdown(crate::listen::plain(listener, limits, metrics), stopped)),
    };
    tracing::info!(%addr, store = state.store.backend_name(), signing_key = state.keys.get().active_key_id(), "serving gRPC");
    if let Some(ready) = &options.ready.0 {
        ready(addr);
    }

    tokio::select! {
        result = &mut server => {
            signing.drain(options.shutdown_grace).await;
            background.drain(options.shutdown_grace).await;
            result??;
            return Ok(());
        }
        () = shutdown => {}
    }
    tracing::info!(grace = ?options.shutdown_grace, "shutting down: no longer serving, draining requests");
    set_health(&health, &health_names, |_| true, ServingStatus::NotServing).await;
    signing.drain(options.shutdown_grace).await;
    let background = tokio::spawn(background.drain(options.shutdown_grace));
    let _ = stop_tx.send(());
    match tokio::time::timeout(options.shutdown_grace, &mut server).await {
        Ok(result) => {
            result??;
            tracing::info!("shut down cleanly");
        }
        Err(_) => {
            server.abort();
            tracing::warn!(grace = ?options.shutdown_grace, "shutdown grace ran out: closing remaining connections");
        }
    }
    let _ = background.await;
    Ok(())
}

/// The layers of [`edge`], innermost first as tower nests them (each
/// `.layer` call wraps the ones before it).
type EdgeLayers = Stack<
    crate::wire_errors::WireErrorsLayer,
    Stack<
        crate::gate::LimitsLayer,
        Stack<
            crate::shed::ShedLayer,
            Stack<
                crate::gate::GateLayer,
                Stack<
                    crate::metrics_layer::MetricsLayer,
                    Stack<crate::connect::ConnectLayer, Stack<crate::grpc_web::GrpcWebLayer, Identity>>,
                >,
            >,
        >,
    >,
>;

/// The edge every request crosses before its service, outermost first: the
/// protocols turned into gRPC (gRPC-Web, Connect), metrics, identity from
/// the headers alone (`crate::gate`: an unknown caller is refused before its
/// body is read), admission (`crate::shed`: waiting time, in-flight ceiling,
/// the body budget), the caller's own limits, the client's undecodable
/// requests named (`crate::wire_errors`), and HTTP/2's limits.
fn edge(state: &AppState, options: &ServerOptions) -> tonic::transport::Server<EdgeLayers> {
    let gate = crate::gate::Gate::new(options.principals.clone(), state.store.clone(), state.metrics.clone(), state.cache.clock().clone());
    tonic::transport::Server::builder()
        // HTTP/1.1 for the pages and for gRPC-Web, which browsers speak.
        .accept_http1(true)
        // Outermost: a gRPC-Web call is a gRPC call to every layer below.
        .layer(crate::grpc_web::GrpcWebLayer)
        // Then Connect: a Connect call is a gRPC call to every layer below.
        .layer(crate::connect::ConnectLayer::new(state.metrics.clone(), options.body_timeout))
        .layer(crate::metrics_layer::MetricsLayer::new(state.metrics.clone()))
        // Who is calling, from the headers, before admission reads a body
        // (`crate::gate`: an identity that does not hold reads none).
        .layer(crate::gate::GateLayer(gate))
        .layer(crate::shed::ShedLayer::new(
            crate::shed::AdmissionOptions {
                max_in_flight: options.max_in_flight,
                queue_target: options.queue_target,
                body_timeout: options.body_timeout,
                body_budget: options.body_budget,
                test_hook: options.queue_wait_test_hook,
            },
            state.metrics.clone(),
        ))
        // The principal's rate and concurrency, once its body is whole.
        .layer(crate::gate::LimitsLayer(state.metrics.clone()))
        .layer(crate::wire_errors::WireErrorsLayer)
        .timeout(options.request_timeout)
        .max_concurrent_streams(options.max_streams_per_connection)
        .http2_max_header_list_size(16 * 1024)
        .tcp_keepalive(Some(Duration::from_secs(60)))
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
}

/// Health tells the truth about the store: probed every
/// [`crate::store::StoreUpkeep::probe_every`] (every second for SQLite: its
/// file by `stat`, SQLite's descriptors of it, and a read by a fresh
/// connection; a quarter of `--store-timeout-ms` for PostgreSQL: a query on
/// the probe's own connection, which must answer within three quarters of
/// it), and at once when a request saw the store fail. While it fails, the
/// services that need the store are NOT_SERVING ([`set_health`]); SERVING
/// again at the first probe it answers. A store that is only busy (another
/// process writing) is serving.
async fn watch_store(store: Store, health: tonic_health::server::HealthReporter, names: Vec<(&'static str, NeedsStore)>) {
    let mut serving = true;
    loop {
        tokio::select! {
            () = tokio::time::sleep(store.probe_every()) => {}
            () = store.probe_wanted() => {}
        }
        match store.probe().await {
            // Another process is writing (an import): the store is there.
            Err(crate::store::StoreError::Busy(why)) => tracing::debug!(%why, "the credit store is busy; still serving"),
            Ok(()) if !serving => {
                tracing::info!("the credit store answers again: serving");
                set_health(&health, &names, |n| n == NeedsStore::Yes, ServingStatus::Serving).await;
                serving = true;
            }
            Err(e) if serving => {
                tracing::error!(error = %e, cause = ?std::error::Error::source(&e), "the credit store fails its probe: not serving");
                set_health(&health, &names, |n| n == NeedsStore::Yes, ServingStatus::NotServing).await;
                serving = false;
            }
            _ => {}
        }
    }
}

/// How often the background checkpointer copies the SQLite write-ahead log.
const WAL_CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Copies the SQLite write-ahead log into the database every second, off
/// every request's path (PASSIVE: it waits for no lock and holds up no
/// write); connections never checkpoint inside a commit (see
/// [`crate::store::StoreUpkeep::wal_checkpoint`]). Ends at once for a store
/// without such a log (PostgreSQL).
async fn checkpoint_wal(store: Store, metrics: Arc<Metrics>) {
    loop {
        tokio::time::sleep(WAL_CHECKPOINT_EVERY).await;
        match store.wal_checkpoint_and_restart().await {
            Ok(Some(c)) => metrics.wal_checkpoint(c.busy, c.frames),
            Ok(None) => return,
            Err(e) => tracing::warn!(error = %e, "the background WAL checkpoint failed; tried again in a second"),
        }
    }
}

/// Sets the health of the services `which` picks among `names`. The
/// services that need the store each have calls that read or write it
/// (records, tenders and bids, the log's leaves and proofs, supervision's
/// figures), and so does the server as a whole; `KeyService` needs none and
/// stays SERVING while the store is away, and cached statements go on being
/// served within `--max-staleness` whatever health says (README, "When the
/// store cannot be reached").
async fn set_health(
    health: &tonic_health::server::HealthReporter,
    names: &[(&'static str, NeedsStore)],
    which: impl Fn(NeedsStore) -> bool,
    status: ServingStatus,
) {
    for &(name, needs) in names {
        if which(needs) {
            health.set_service_status(name, status).await;
        }
    }
}

/// On SIGHUP: the signing keys, the principals file and the TLS
/// certificates are read again; whatever fails to load is logged and the
/// version in use stays. Established connections are not dropped.
async fn reload_on_hangup(keys: SharedKeyring, principals: Option<Arc<SharedPrincipals>>, tls: Option<Arc<SharedTls>>) {
    #[cfg(unix)]
    {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            if let Some(p) = &principals {
                match p.reload() {
                    Ok(n) => tracing::info!(principals = n, "principals reloaded"),
                    Err(e) => tracing::error!(error = %e, "principals reload failed; keeping the current ones"),
                }
            }
            if let Some(t) = &tls {
                match t.reload() {
                    Ok(()) => tracing::info!("TLS certificates reloaded"),
                    Err(e) => tracing::error!(error = %e, "TLS reload failed; keeping the current certificates"),
                }
            }
            match keys.reload() {
                Ok(active) => tracing::info!(active_key = %active, "keys reloaded"),
                Err(e) => tracing::error!(error = %e, "key reload failed; keeping the current keys"),
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (keys, principals, tls);
}

/// Completes on Ctrl-C or, on Unix, SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("received Ctrl-C"),
        () = term => tracing::info!("received SIGTERM"),
    }
}
