//! Assembly: one listener serving the API over gRPC, gRPC-Web and the
//! Connect protocol, gRPC health and server reflection (v1 and v1alpha),
//! the pages, with request limits and a bounded shutdown.

use crate::access::principals::SharedPrincipals;
use crate::cache::CacheConfig;
use crate::config::Rules;
use crate::log::Log;
use crate::metrics::Metrics;
use crate::proto::v1::assessment_service_server::AssessmentServiceServer;
use crate::proto::v1::credit_data_service_server::CreditDataServiceServer;
use crate::proto::v1::key_service_server::KeyServiceServer;
use crate::proto::v1::log_service_server::LogServiceServer;
use crate::proto::v1::tender_service_server::TenderServiceServer;
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
        LogOptions { origin: DEFAULT_LOG_ORIGIN.into(), checkpoint_interval: Duration::from_secs(1) }
    }
}

/// The origin of a log whose operator did not name it.
pub const DEFAULT_LOG_ORIGIN: &str = "credit-tender.local/statements";

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            shutdown_grace: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            web_test_hooks: false,
            principals: None,
            tls: None,
            max_in_flight: crate::shed::DEFAULT_MAX_IN_FLIGHT,
            queue_target: crate::shed::DEFAULT_QUEUE_TARGET,
            max_signing: crate::shed::DEFAULT_MAX_SIGNING,
            body_timeout: crate::shed::DEFAULT_BODY_TIMEOUT,
            queue_wait_test_hook: false,
            max_streams_per_connection: 128,
            max_connections: 1024,
            idle_timeout: Duration::from_secs(300),
            handshake_timeout: Duration::from_secs(10),
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
        let weigh = |a: &crate::service::CachedAnswer| {
            let r = &a.response;
            let payload = r.envelope.as_ref().map_or(0, |e| e.payload.len()) + a.encoded.len();
            // The envelope's payload, the decoded copy (its strings and
            // vectors: more than as large again, measured with RSS under
            // 200,000 distinct bidders, tests/api/cache.rs), and the signatures.
            (payload * 3 + 1024).min(u32::MAX as usize) as u32
        };
        let cache = Cache::new(store.clone(), cache, metrics.clone(), weigh).await?;
        Ok(AppState { store, rules: Arc::new(rules), policies: Arc::new(policies), keys, metrics, cache })
    }
}

/// Refuses addresses other callers could reach while callers are not
/// authenticated, unless the operator says otherwise.
/// Beyond loopback, callers must come over TLS and prove who they are,
/// unless the operator says a trusted proxy in front does that.
pub fn check_listen_address(addr: SocketAddr, secured: bool, allow_remote: bool) -> Result<(), String> {
    if addr.ip().is_loopback() || secured || allow_remote {
        return Ok(());
    }
    Err(format!(
        "refusing to listen on {addr} without --tls-cert/--tls-key and --principals: anyone who can reach this \
         address could write credit records. Give both, listen on 127.0.0.1, or pass --insecure-allow-remote if a \
         trusted network or proxy in front of it does TLS and authentication."
    ))
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

/// Every service and page on the one port: the gRPC services (each with its
/// message size limits), reflection, and the web routes (the committee's
/// page, the log's tiles, /metrics: `crate::web::paths`).
fn routes(state: &AppState, options: &ServerOptions, log: Option<Arc<Log>>) -> anyhow::Result<Routes> {
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let credit_data = CreditDataServiceServer::new(CreditDataApi::new(state.rules.clone(), state.cache.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);

    let tenders = TenderServiceServer::new(TenderApi::new(state.rules.clone(), state.policies.clone(), state.cache.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let assessment_api =
        AssessmentApi::new(state.rules.clone(), state.policies.clone(), state.keys.clone(), state.cache.clone(), log.clone())
            .with_signing_limit(options.max_signing);
    let assessments = AssessmentRoutes::new(assessment_api.clone(), MAX_MESSAGE_BYTES);
    let keys = KeyServiceServer::new(KeyApi::new(state.keys.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);

    let supervision = supervision(state, options, log.clone())?;
    let pages = crate::web::router(crate::web::WebState {
        supervision: supervision.clone(),
        cache: state.cache.clone(),
        assessments: assessment_api,
        keys: state.keys.clone(),
        log: log.clone(),
        test_hooks: options.web_test_hooks,
    });
    let routes = Routes::from(pages)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(credit_data)
        .add_service(tenders)
        .add_service(assessments)
        .add_service(keys);
    let routes = routes.add_service(
        crate::proto::v1::supervision_service_server::SupervisionServiceServer::new(supervision)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES),
    );
    let routes = match log {
        Some(log) => routes.add_service(
            LogServiceServer::new(LogApi::new(log, state.metrics.clone()))
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        ),
        None => routes,
    };
    Ok(routes)
}

/// The supervision platform's service (`crate::supervision`), over the
/// shipped risk policies and `options.risk_policies`.
fn supervision(state: &AppState, options: &ServerOptions, log: Option<Arc<Log>>) -> anyhow::Result<crate::supervision::SupervisionApi> {
    let risk = crate::supervision::policies::RiskPolicySet::load(options.risk_policies.as_deref())?;
    for (id, grade) in risk.grade_policies() {
        anyhow::ensure!(state.policies.current(grade).is_some(), "risk policy '{id}': its grade_policy '{grade}' is not loaded");
    }
    let interval = options.log.as_ref().map_or(Duration::from_secs(1), |o| o.checkpoint_interval);
    let api = crate::supervision::SupervisionApi::new(
        state.rules.clone(),
        state.cache.clone(),
        state.policies.clone(),
        Arc::new(risk),
        state.keys.clone(),
        log,
        interval,
    );
    api.complete_orphans_at_start();
    Ok(api)
}

/// Serves on `listener` until `shutdown` completes, then drains for at most
/// `options.shutdown_grace` before stopping regardless.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    options: ServerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<CreditDataServiceServer<CreditDataApi>>().await;

    check_options(&state, &options).map_err(anyhow::Error::msg)?;
    let (log, log_tasks) = match &options.log {
        Some(o) => {
            let (log, sequencer) = Log::new(state.store.clone(), o.origin.clone(), state.keys.clone(), state.metrics.clone());
            let sequencer = tokio::spawn(sequencer);
            let publisher = tokio::spawn(log.clone().publish_every(o.checkpoint_interval));
            (Some(log), Some((sequencer, publisher)))
        }
        None => (None, None),
    };
    let refresher = (options.background_refresh && state.cache.enabled()).then(|| {
        let (tx, rx) = tokio::sync::mpsc::channel(crate::refresh::QUEUE);
        state.cache.tell_changes_to(tx);
        let api = AssessmentApi::new(state.rules.clone(), state.policies.clone(), state.keys.clone(), state.cache.clone(), log.clone());
        tokio::spawn(crate::refresh::run(api, state.cache.clone(), rx))
    });
    let refresher_abort = refresher.as_ref().map(tokio::task::JoinHandle::abort_handle);
    let routes = routes(&state, &options, log)?.add_service(health_service);
    health.set_serving::<TenderServiceServer<TenderApi>>().await;
    health.set_serving::<AssessmentServiceServer<AssessmentApi>>().await;
    health.set_serving::<KeyServiceServer<KeyApi>>().await;
    let watcher = tokio::spawn(watch_store(state.store.clone(), health.clone()));
    let checkpointer = tokio::spawn(checkpoint_wal(state.store.clone(), state.metrics.clone()));
    let reloader = tokio::spawn(reload_on_hangup(state.keys.clone(), options.principals.clone(), options.tls.clone()));
    let gate = crate::gate::Gate::new(options.principals.clone(), state.store.clone(), state.metrics.clone());
    let follower = tokio::spawn(state.cache.clone().follow());
    let sink: Arc<dyn crate::store::ChangeSink> = state.cache.clone();
    let listener_task = state.cache.enabled().then(|| state.store.listen(sink)).flatten().map(tokio::spawn);
    let background = move || {
        if let Some((_, publisher)) = &log_tasks {
            publisher.abort();
        }
        if let Some(refresher) = &refresher_abort {
            refresher.abort();
        }
        watcher.abort();
        checkpointer.abort();
        reloader.abort();
        follower.abort();
        if let Some(t) = &listener_task {
            t.abort();
        }
    };

    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let router = tonic::transport::Server::builder()
        // HTTP/1.1 for the pages and for gRPC-Web, which browsers speak.
        .accept_http1(true)
        // Outermost: a gRPC-Web call is a gRPC call to every layer below.
        .layer(crate::grpc_web::GrpcWebLayer)
        // Then Connect: a Connect call is a gRPC call to every layer below.
        .layer(crate::connect::ConnectLayer::new(state.metrics.clone(), options.body_timeout))
        .layer(crate::metrics_layer::MetricsLayer::new(state.metrics.clone()))
        .layer(crate::shed::ShedLayer::new(
            crate::shed::AdmissionOptions {
                max_in_flight: options.max_in_flight,
                queue_target: options.queue_target,
                body_timeout: options.body_timeout,
                identifies: options.principals.is_some(),
                test_hook: options.queue_wait_test_hook,
            },
            state.metrics.clone(),
        ))
        .layer(crate::gate::GateLayer(gate))
        .layer(crate::wire_errors::WireErrorsLayer)
        .timeout(options.request_timeout)
        .max_concurrent_streams(options.max_streams_per_connection)
        .http2_max_header_list_size(16 * 1024)
        .tcp_keepalive(Some(Duration::from_secs(60)))
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .add_routes(routes);
    let stopped = async {
        let _ = stop_rx.await;
    };
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
            background();
            result??;
            return Ok(());
        }
        () = shutdown => {}
    }
    tracing::info!(grace = ?options.shutdown_grace, "shutting down: no longer serving, draining requests");
    health.set_service_status("", ServingStatus::NotServing).await;
    health.set_not_serving::<CreditDataServiceServer<CreditDataApi>>().await;
    health.set_not_serving::<TenderServiceServer<TenderApi>>().await;
    health.set_not_serving::<AssessmentServiceServer<AssessmentApi>>().await;
    health.set_not_serving::<KeyServiceServer<KeyApi>>().await;
    background();
    // Nothing is signed in the background once shutdown has begun: the
    // refresh ends at its next await (a store read, a log append).
    if let Some(refresher) = refresher {
        let _ = refresher.await;
    }
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
    Ok(())
}

/// Health tells the truth about the store: probed every
/// [`crate::store::CreditStore::probe_every`] (every second for SQLite: its
/// file by `stat`, SQLite's descriptors of it, and a read by a fresh
/// connection; a quarter of `--store-timeout-ms` for PostgreSQL: a query on
/// the probe's own connection, which must answer within three quarters of
/// it), and at once when a request saw the store fail. While it fails, the
/// services that need the store are NOT_SERVING ([`set_health`]); SERVING
/// again at the first probe it answers. A store that is only busy (another
/// process writing) is serving.
async fn watch_store(store: Store, health: tonic_health::server::HealthReporter) {
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
                set_health(&health, ServingStatus::Serving).await;
                serving = true;
            }
            Err(e) if serving => {
                tracing::error!(error = %e, cause = ?std::error::Error::source(&e), "the credit store fails its probe: not serving");
                set_health(&health, ServingStatus::NotServing).await;
                serving = false;
            }
            _ => {}
        }
    }
}

/// The services whose health follows the store: each has calls that write
/// to it (records, tenders and bids, and every new statement is a leaf of
/// the transparency log in the store), and so does the server as a whole
/// (the empty service name, what a plain health probe asks). `KeyService`
/// needs no store and stays SERVING; cached statements go on being served
/// within `--max-staleness` whatever health says (README, "When the store
/// cannot be reached").
const STORE_SERVICES: [&str; 4] =
    ["", "credit_tender.v1.CreditDataService", "credit_tender.v1.TenderService", "credit_tender.v1.AssessmentService"];

/// How often the background checkpointer copies the SQLite write-ahead log.
const WAL_CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Copies the SQLite write-ahead log into the database every second, off
/// every request's path (PASSIVE: it waits for no lock and holds up no
/// write); connections never checkpoint inside a commit (see
/// [`crate::store::CreditStore::wal_checkpoint`]). Ends at once for a store
/// without such a log (PostgreSQL).
async fn checkpoint_wal(store: Store, metrics: Arc<Metrics>) {
    loop {
        tokio::time::sleep(WAL_CHECKPOINT_EVERY).await;
        match store.wal_checkpoint(crate::store::WalMode::Passive).await {
            Ok(Some(c)) => metrics.wal_checkpoint(c.busy, c.frames),
            Ok(None) => return,
            Err(e) => tracing::debug!(error = %e, "the background WAL checkpoint failed; tried again in a second"),
        }
    }
}

async fn set_health(health: &tonic_health::server::HealthReporter, status: ServingStatus) {
    for name in STORE_SERVICES {
        health.set_service_status(name, status).await;
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
