//! The gate every request passes: who is calling, and whether that caller
//! is within its rate and concurrency limits. It puts a [`Caller`] into the
//! request's extensions for the admission layer and the handlers, which ask
//! [`crate::access::decide`] what the caller may do.
//!
//! **Two layers, either side of admission** (`crate::shed`, which reads the
//! body). [`GateLayer`] identifies the caller from the request's headers
//! alone, before a byte of its body is read: an unknown token or
//! certificate, an ended committee session, and an unidentified caller of
//! an RPC that needs an identity are refused at once, so that no one can
//! make the server hold a body it would refuse anyway (the outside attack
//! on issue 23 held GiBs so). [`LimitsLayer`] applies the principal's
//! rate and concurrency once the body is whole, as the ceiling's slots
//! are: a principal whose bodies come slowly (or never) holds none of its
//! own places meanwhile. Admission sits between the two because it needs
//! to know who is unidentified (their share of the ceiling and of the body
//! budget) and because the limits are for work, which begins with a whole
//! body.
//!
//! - No principals configured: every caller is [`Caller::Local`] (the server
//!   listens on loopback only; this is how `demo` runs).
//! - `authorization: Bearer …`: the principal whose token it is; an unknown
//!   or revoked token is UNAUTHENTICATED at once.
//! - A client certificate: the principal its subject maps to.
//! - The `ct_session` cookie: the committee grant it was issued for, while
//!   the grant lives (else 401).
//! - Nothing: [`Caller::Anonymous`], which may reach only public things.

use crate::access::principals::{Admission, Found, SharedPrincipals};
use crate::access::{Caller, Principal, Role, Scope};
use crate::metrics::Metrics;
use crate::received::Peer;
use crate::store::Store;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::sync::OwnedSemaphorePermit;
use tonic::body::Body;
use tonic::codegen::http;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "ct_session";

/// Committee sessions' admissions, by grant (file principals carry their own).
#[derive(Default)]
struct Limiters {
    committees: Mutex<HashMap<String, Arc<Admission>>>,
}

/// Why a caller was stopped at the gate.
/// Each carries `why` in English (gRPC's message) and `zh`, the Chinese
/// sentence a page's answer carries instead.
enum Stop {
    Unauthenticated {
        why: String,
        zh: String,
        code: &'static str,
    },
    /// The store could not say whether a session lives.
    Unavailable(String),
    Exhausted {
        why: String,
        zh: String,
        retry_after_ms: u64,
    },
}

/// What the gate needs; shared by every connection.
pub struct Gate {
    principals: Option<Arc<SharedPrincipals>>,
    store: Store,
    metrics: Arc<Metrics>,
    limiters: Limiters,
    /// The replica's clock: a committee session ends when its grant expires by it.
    clock: crate::clock::Clock,
}

fn sha256_hex(s: &str) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, s.as_bytes()))
}

/// The credentials of an `authorization` value, if its scheme is Bearer:
/// schemes are case-insensitive (RFC 9110 §11.1), so `bearer` and `BEARER`
/// are Bearer too; one or more spaces part the scheme from the token.
fn bearer_token(value: &str) -> Option<String> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
}

/// What a request offers as identity, read before the gate awaits anything.
struct Proof {
    /// `Some(None)`: an authorization header that is not a bearer token.
    bearer: Option<Option<String>>,
    certificate_subject: Option<String>,
    session: Option<String>,
}

impl Proof {
    fn of<B>(req: &http::Request<B>) -> Proof {
        let bearer = req.headers().get(http::header::AUTHORIZATION).map(|v| v.to_str().ok().and_then(bearer_token));
        let certs = req.extensions().get::<Peer>().and_then(|p| p.certificates.clone());
        let certificate_subject = certs.as_ref().and_then(|c| c.first()).map(|c| crate::tls::certificate_subject(c).unwrap_or_default());
        let session = cookie(req.headers(), SESSION_COOKIE).map(str::to_owned);
        Proof { bearer, certificate_subject, session }
    }
}

/// Paths anyone may reach: health, reflection, public keys, page assets, and
/// the committee's link itself.
fn is_public(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.")
        || path.starts_with("/grpc.reflection.")
        || path.starts_with("/credit_tender.v1.KeyService/")
        || path.starts_with("/assets/")
        || path == "/api/keys"
        || path.starts_with("/committee/enter/")
}

/// The log's checkpoints and proofs: hashes only, open to anyone
/// (`crate::access::decide`, `Action::ReadLogProofs`).
const LOG_PROOFS: [&str; 3] = [
    "/credit_tender.v1.LogService/GetCheckpoint",
    "/credit_tender.v1.LogService/GetInclusionProof",
    "/credit_tender.v1.LogService/GetConsistencyProof",
];

/// Whether an unidentified caller's gRPC call to `path` is refused from its
/// headers: every method of this API needs an identity but the public ones
/// and the log's proofs (the access matrix in tests/api/access.rs holds the
/// same answers, so the two cannot part unnoticed). Other paths are not
/// this API's: they go on to be answered UNIMPLEMENTED.
fn needs_identity(path: &str) -> bool {
    path.starts_with("/credit_tender.") && !is_public(path) && !LOG_PROOFS.contains(&path)
}

fn cookie<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find_map(|(k, v)| (k == name).then_some(v))
}

impl Gate {
    pub fn new(principals: Option<Arc<SharedPrincipals>>, store: Store, metrics: Arc<Metrics>, clock: crate::clock::Clock) -> Arc<Gate> {
        Arc::new(Gate { principals, store, metrics, limiters: Limiters::default(), clock })
    }

    async fn identify(&self, proof: Option<Proof>) -> Result<(Caller, Option<Arc<Admission>>), Stop> {
        let (Some(principals), Some(proof)) = (&self.principals, proof) else { return Ok((Caller::Local, None)) };
        let principals = principals.get();
        let found = |f: Found| (Caller::Principal(f.0), Some(f.1));
        if let Some(token) = proof.bearer {
            return match token.and_then(|t| principals.by_token(&t)) {
                Some(f) => Ok(found(f)),
                None => Err(Stop::Unauthenticated {
                    why: "unknown or revoked bearer token".into(),
                    zh: "身份凭证无效：所持访问令牌未知或已被撤销。".into(),
                    code: "UNAUTHENTICATED",
                }),
            };
        }
        if let Some(subject) = proof.certificate_subject {
            return match principals.by_certificate_subject(&subject) {
                Some(f) => Ok(found(f)),
                None => Err(Stop::Unauthenticated {
                    why: format!("client certificate '{subject}' is not a known principal"),
                    zh: format!("客户端证书「{}」不属于已登记的调用方。", crate::domain::text::shown(&subject)),
                    code: "UNAUTHENTICATED",
                }),
            };
        }
        if let Some(session) = proof.session {
            let grant = self
                .store
                .grant_by_session(&sha256_hex(&session))
                .await
                .map_err(|e| Stop::Unavailable(format!("cannot check the committee session: {e}")))?;
            let now = self.clock.now();
            return match grant {
                Some(g) if g.is_live(now) => {
                    let admission = {
                        let mut all = self.limiters.committees.lock().expect("limiter lock");
                        all.entry(g.grant_id.clone()).or_insert_with(|| Admission::new(principals.limits(Role::Committee))).clone()
                    };
                    let principal = Principal {
                        name: format!("committee:{}", g.grant_id),
                        role: Role::Committee,
                        scope: Scope::Committee { tender: g.tender_id, expires_at: g.expires_at },
                    };
                    Ok((Caller::Principal(Arc::new(principal)), Some(admission)))
                }
                _ => Err(Stop::Unauthenticated {
                    why: "the committee session has ended (expired or revoked)".into(),
                    zh: "评标委员会会话已结束（已过期或已撤销）。请向招标平台重新申请评标委员会访问链接。".into(),
                    code: "SESSION_ENDED",
                }),
            };
        }
        Ok((Caller::Anonymous, None))
    }
}

/// Takes one request's worth of the principal's rate and a slot in flight.
fn admit(name: &str, a: &Admission) -> Result<OwnedSemaphorePermit, Stop> {
    if let Err(not_until) = a.rate.check() {
        let wait = not_until.wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default()));
        return Err(Stop::Exhausted {
            why: format!("'{name}' is over its {} requests/s", a.limits.requests_per_second),
            zh: format!("请求过于频繁：调用方「{name}」每秒最多 {} 个请求。", a.limits.requests_per_second),
            retry_after_ms: wait.as_millis().max(1) as u64,
        });
    }
    a.in_flight.clone().try_acquire_owned().map_err(|_| Stop::Exhausted {
        why: format!("'{name}' already has {} requests in flight", a.limits.concurrent),
        zh: format!("请求过于频繁：调用方「{name}」同时进行的请求已达上限 {} 个。", a.limits.concurrent),
        retry_after_ms: 50,
    })
}

/// The answer for a stopped request: a gRPC status, or for pages a
/// Chinese refusal (`crate::refusal`): 401, 503 or 429, the last two with
/// Retry-After in whole seconds.
fn refuse(grpc: bool, stop: Stop) -> http::Response<Body> {
    let mut res = refusal(grpc, stop);
    res.extensions_mut().insert(Refused);
    res
}

/// Marks an answer the gate gave instead of serving the request: the
/// admission layer (`crate::shed`) frees its in-flight places at once, so
/// that a client that never reads the refusal holds no place (found by the
/// outside attack on issue 27).
#[derive(Clone, Copy, Debug)]
pub struct Refused;

/// When the request's bytes reached the host, for admission's wait
/// (`crate::shed`): the kernel's receive time of the newest bytes its
/// connection had read when hyper handed the request on
/// (`crate::received`), else the time of that hand-over. Taken here, by
/// the first layer that awaits anything, so that a committee session's
/// lookup does not count as the request's wait.
#[derive(Clone, Copy, Debug)]
pub struct Arrived(pub std::time::Instant);

/// The identified principal's limits, put on the request by [`GateLayer`]
/// for [`LimitsLayer`] to apply once the body is whole.
#[derive(Clone)]
struct Limited(Arc<Admission>);

fn refusal(grpc: bool, stop: Stop) -> http::Response<Body> {
    use crate::refusal::plain;
    use http::StatusCode;
    match stop {
        Stop::Unauthenticated { why, .. } if grpc => tonic::Status::unauthenticated(why).into_http(),
        Stop::Unauthenticated { zh, code, .. } => plain(StatusCode::UNAUTHORIZED, code, &zh, None),
        Stop::Unavailable(why) if grpc => tonic::Status::unavailable(why).into_http(),
        Stop::Unavailable(why) => {
            tracing::warn!(error = %why, "gate: cannot check a committee session");
            let zh = "暂时无法核对评标委员会会话：信用数据库当前无法访问。请 1 秒后重试。";
            plain(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", zh, Some(std::time::Duration::from_secs(1)))
        }
        // The same hint the shedding gives: RetryInfo and the pushback.
        Stop::Exhausted { why, retry_after_ms, .. } if grpc => {
            crate::service::retry_status(tonic::Code::ResourceExhausted, &why, std::time::Duration::from_millis(retry_after_ms)).into_http()
        }
        Stop::Exhausted { zh, retry_after_ms, .. } => {
            let wait = std::time::Duration::from_millis(retry_after_ms);
            let zh = format!("{zh}请 {} 秒后重试。", crate::refusal::retry_after_secs(wait));
            plain(StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED", &zh, Some(wait))
        }
    }
}

fn is_grpc<B>(req: &http::Request<B>) -> bool {
    req.headers().get(http::header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// Who is calling, from the headers; outside admission (see the module's doc).
#[derive(Clone)]
pub struct GateLayer(pub Arc<Gate>);

impl<S> tower::Layer<S> for GateLayer {
    type Service = GateService<S>;
    fn layer(&self, inner: S) -> GateService<S> {
        GateService { inner, gate: self.0.clone() }
    }
}

#[derive(Clone)]
pub struct GateService<S> {
    inner: S,
    gate: Arc<Gate>,
}

impl<S, B> tower::Service<http::Request<B>> for GateService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        // Admission's stamp: hyper calls this from the connection's task as
        // soon as it has read the request's headers, so the connection's
        // latest read holds them (a session's lookup below must not count
        // as the request's wait).
        let now = std::time::Instant::now();
        let received = req.extensions().get::<Peer>().and_then(|p| p.received.last()).map_or(now, |at| at.min(now));
        req.extensions_mut().insert(Arrived(received));
        // The ready inner service serves this request; a fresh clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let gate = self.gate.clone();
        let grpc = is_grpc(&req);
        let public = is_public(req.uri().path());
        let needs_identity = grpc && needs_identity(req.uri().path());
        // A committee link is a secret: never in a log line.
        let path =
            if req.uri().path().starts_with("/committee/enter/") { "/committee/enter/…".to_owned() } else { req.uri().path().to_owned() };
        // Without principals every caller is the local operator: nothing to read.
        let proof = self.gate.principals.is_some().then(|| Proof::of(&req));
        Box::pin(async move {
            let (caller, admission) = match gate.identify(proof).await {
                Ok(found) => found,
                // An identity that does not hold, on a public route: served
                // as unidentified, within their share like any caller that
                // offers none.
                Err(_) if public => (Caller::Anonymous, None),
                Err(stop) => {
                    let outcome = if matches!(stop, Stop::Unavailable(_)) { "unavailable" } else { "unauthenticated" };
                    gate.metrics.denied(outcome);
                    tracing::info!(path = %path, outcome, "refused at the gate");
                    return Ok(refuse(grpc, stop));
                }
            };
            if caller == Caller::Anonymous && needs_identity {
                // What the method's handler would answer, before its body is read.
                gate.metrics.denied("unauthenticated");
                tracing::info!(path = %path, outcome = "unauthenticated", "refused at the gate");
                let method = path.rsplit('/').next().unwrap_or_default();
                let stop = Stop::Unauthenticated {
                    why: format!("{method} needs a caller identity: a bearer token or a client certificate"),
                    zh: "需要表明调用方身份：请附上访问令牌或客户端证书。".into(),
                    code: "UNAUTHENTICATED",
                };
                return Ok(refuse(grpc, stop));
            }
            req.extensions_mut().insert(caller);
            if let Some(a) = admission {
                req.extensions_mut().insert(Limited(a));
            }
            inner.call(req).await
        })
    }
}

/// The principal's rate and concurrency, once its body is whole; inside
/// admission (see the module's doc).
#[derive(Clone)]
pub struct LimitsLayer(pub Arc<Metrics>);

impl<S> tower::Layer<S> for LimitsLayer {
    type Service = Limits<S>;
    fn layer(&self, inner: S) -> Limits<S> {
        Limits { inner, metrics: self.0.clone() }
    }
}

#[derive(Clone)]
pub struct Limits<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B> tower::Service<http::Request<B>> for Limits<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let limited = req.extensions_mut().remove::<Limited>();
        let principal = match req.extensions().get::<Caller>() {
            Some(Caller::Principal(p)) => Some(p.clone()),
            _ => None,
        };
        let grpc = is_grpc(&req);
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let _permit = match (principal, limited) {
                (Some(p), Some(Limited(a))) => match admit(&p.name, &a) {
                    Ok(permit) => Some(permit),
                    Err(stop) => {
                        metrics.denied("rate_limited");
                        tracing::info!(principal = %p.name, path = %req.uri().path(), outcome = "rate_limited", "refused at the gate");
                        return Ok(refuse(grpc, stop));
                    }
                },
                _ => None,
            };
            inner.call(req).await
        })
    }
}
