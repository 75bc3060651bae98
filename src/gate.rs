//! The gate every request passes: who is calling, and whether that caller
//! is within its rate and concurrency limits. A tower layer in front of the
//! whole router (gRPC and pages alike); it puts a [`Caller`] into the
//! request's extensions for the handlers, which ask [`crate::access::decide`]
//! what the caller may do.
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
use crate::store::Store;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::sync::OwnedSemaphorePermit;
use tonic::body::Body;
use tonic::codegen::http;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

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

/// What a request offers as identity, read before the gate awaits anything.
struct Proof {
    /// `Some(None)`: an authorization header that is not a bearer token.
    bearer: Option<Option<String>>,
    certificate_subject: Option<String>,
    session: Option<String>,
}

impl Proof {
    fn of<B>(req: &http::Request<B>) -> Proof {
        let bearer = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .map(|v| v.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")).map(|t| t.trim().to_owned()));
        let certs = req.extensions().get::<TlsConnectInfo<TcpConnectInfo>>().and_then(|i| i.peer_certs());
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
/// that a client that offers a wrong identity and never reads the refusal
/// holds no place (found by the outside attack on issue 27).
#[derive(Clone, Copy, Debug)]
pub struct Refused;

/// Put on a request by the admission layer when the caller offered an
/// identity, and so was not counted among unidentified callers: if the
/// identity does not hold on a public route, the gate serves the caller as
/// unidentified only once it has a place in their share.
#[derive(Clone)]
pub struct UnidentifiedShare(pub Arc<tokio::sync::Semaphore>);

/// The place in the unidentified callers' share the gate took, handed back
/// on the answer for the admission layer to hold until the answer's body
/// ends.
#[derive(Clone)]
pub struct SharePlace(pub Arc<Mutex<Option<OwnedSemaphorePermit>>>);

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
        Stop::Exhausted { why, retry_after_ms, .. } if grpc => {
            let mut s = tonic::Status::resource_exhausted(format!("{why}; retry after {retry_after_ms} ms"));
            if let Ok(v) = retry_after_ms.to_string().parse() {
                s.metadata_mut().insert("grpc-retry-pushback-ms", v);
            }
            s.into_http()
        }
        Stop::Exhausted { zh, retry_after_ms, .. } => {
            let wait = std::time::Duration::from_millis(retry_after_ms);
            let zh = format!("{zh}请 {} 秒后重试。", crate::refusal::retry_after_secs(wait));
            plain(StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED", &zh, Some(wait))
        }
    }
}

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
        // The ready inner service serves this request; a fresh clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let gate = self.gate.clone();
        let grpc = req.headers().get(http::header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        let public = is_public(req.uri().path());
        // A committee link is a secret: never in a log line.
        let path =
            if req.uri().path().starts_with("/committee/enter/") { "/committee/enter/…".to_owned() } else { req.uri().path().to_owned() };
        // Without principals every caller is the local operator: nothing to read.
        let proof = self.gate.principals.is_some().then(|| Proof::of(&req));
        Box::pin(async move {
            let mut place = None;
            let (caller, admission) = match gate.identify(proof).await {
                Ok(found) => found,
                Err(_) if public => {
                    // An identity that does not hold: served as unidentified,
                    // within their share like any caller that offers none.
                    if let Some(UnidentifiedShare(share)) = req.extensions().get::<UnidentifiedShare>() {
                        let Ok(p) = share.clone().try_acquire_owned() else {
                            gate.metrics.denied("shed");
                            let stop = Stop::Exhausted {
                                why: "unidentified callers are at their share of requests in flight".into(),
                                zh: "服务器繁忙：未表明身份的调用方同时进行的请求已达其份额，未被处理。".into(),
                                retry_after_ms: 100,
                            };
                            return Ok(refuse(grpc, stop));
                        };
                        place = Some(p);
                    }
                    (Caller::Anonymous, None)
                }
                Err(stop) => {
                    let outcome = if matches!(stop, Stop::Unavailable(_)) { "unavailable" } else { "unauthenticated" };
                    gate.metrics.denied(outcome);
                    tracing::info!(path = %path, outcome, "refused at the gate");
                    return Ok(refuse(grpc, stop));
                }
            };
            let _permit = match (&caller, &admission) {
                (Caller::Principal(p), Some(a)) => match admit(&p.name, a) {
                    Ok(permit) => Some(permit),
                    Err(stop) => {
                        gate.metrics.denied("rate_limited");
                        tracing::info!(principal = %p.name, path = %path, outcome = "rate_limited", "refused at the gate");
                        return Ok(refuse(grpc, stop));
                    }
                },
                _ => None,
            };
            req.extensions_mut().insert(caller);
            let mut res = inner.call(req).await?;
            if let Some(p) = place {
                res.extensions_mut().insert(SharePlace(Arc::new(Mutex::new(Some(p)))));
            }
            Ok(res)
        })
    }
}
