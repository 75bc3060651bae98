//! Everything a request can fail with ([`ApiError`]) and its one mapping to
//! a gRPC status, with the bounds that keep a status within client limits.

use crate::cache::CacheError;
use crate::domain::FieldError;
use crate::store::StoreError;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// Everything a request can fail with, before it becomes a gRPC status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Bad input: each violation names its field (e.g. `records[2].credit_code`).
    #[error("invalid request: {}", summary(.0))]
    Invalid(Vec<FieldError>),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("internal error: {0}")]
    Internal(String),
    /// The request is well formed but what it refers to cannot be used as it
    /// stands (a tender bound to a policy version this release refuses); the
    /// sentence says what to change.
    #[error("failed precondition: {0}")]
    Precondition(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    TooStale(String),
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// No identity, or one that no longer holds.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// A known caller outside its role or scope; the sentence names the rule.
    #[error("permission denied: {0}")]
    Denied(String),
    /// A statement was signed but could not be put in the transparency log:
    /// it is not given out.
    #[error("not logged: {0}")]
    NotLogged(String),
    /// One failure seen by every request that waited on the same work (the
    /// cache's single-flight loads).
    #[error(transparent)]
    Shared(std::sync::Arc<ApiError>),
    /// A caller's share of a bounded resource is in use (its open
    /// WatchTender streams): RESOURCE_EXHAUSTED with the busy retry hint;
    /// the sentence is Chinese first, then English.
    #[error("{0}")]
    Limit(String),
}

impl From<std::sync::Arc<ApiError>> for ApiError {
    fn from(e: std::sync::Arc<ApiError>) -> ApiError {
        std::sync::Arc::try_unwrap(e).unwrap_or_else(ApiError::Shared)
    }
}

impl From<crate::log::LogError> for ApiError {
    fn from(e: crate::log::LogError) -> ApiError {
        use crate::log::LogError;
        match e {
            LogError::Store(e) => ApiError::Store(e),
            LogError::Append(why) => ApiError::NotLogged(why),
            LogError::OutOfRange(why) => ApiError::field("", why),
            e @ LogError::NoKey => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<CacheError> for ApiError {
    fn from(e: CacheError) -> ApiError {
        match e {
            CacheError::Store(e) => ApiError::Store(e),
            CacheError::SharedLoad(e) => match &*e {
                StoreError::Unavailable(cause) => ApiError::Unavailable(cause.to_string()),
                StoreError::Busy(why) => ApiError::Store(StoreError::Busy(why.clone())),
                StoreError::Queued(why) => ApiError::Store(StoreError::Queued(why.clone())),
                StoreError::Lost(why) => ApiError::Store(StoreError::Lost(why.clone())),
                other => ApiError::Internal(other.to_string()),
            },
            e @ CacheError::TooStale(..) => ApiError::TooStale(e.to_string()),
        }
    }
}

/// Field violations sent back at most, in bytes (before base64): every gRPC
/// client accepts the trailer that carries them. With the message (at most
/// [`MAX_MESSAGE_BYTES`], percent-encoded: three times that at worst), the
/// trailers stay under grpcio's 8 KiB soft limit on metadata; past it, and
/// surely past 16 KiB, grpcio reports RESOURCE_EXHAUSTED instead of the
/// error, and clients retry what is permanently wrong.
const MAX_DETAIL_BYTES: usize = 3 * 1024;

/// A status message's length at most, in bytes.
const MAX_MESSAGE_BYTES: usize = 1024;

/// A violation's field name and reason at most, in bytes.
const MAX_FIELD_BYTES: usize = 256;
const MAX_REASON_BYTES: usize = 768;

/// `s` cut to at most `max` bytes at a character boundary, marked with an
/// ellipsis. Every echoed value is bounded where it is written
/// ([`crate::domain::text::shown`]); this is the last guard at the wire.
fn bounded(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max.saturating_sub('…'.len_utf8());
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

fn summary(v: &[FieldError]) -> String {
    let mut s = v.iter().take(3).map(FieldError::to_string).collect::<Vec<_>>().join("; ");
    if v.len() > 3 {
        s.push_str(&format!("; and {} more", v.len() - 3));
    }
    s
}

impl ApiError {
    pub fn field(field: impl Into<String>, reason: impl Into<String>) -> ApiError {
        ApiError::Invalid(vec![FieldError::new(field, reason)])
    }

    /// The field errors of a bad request, or this error as one without a field.
    pub fn into_field_errors(self) -> Vec<FieldError> {
        match self {
            ApiError::Invalid(v) => v,
            other => vec![FieldError::new("", other.to_string())],
        }
    }
}

/// Field violations as google.rpc.BadRequest details that every client
/// accepts: grpcio and Go refuse response metadata over 16 KiB (8 KiB
/// soft), so the first violations that fit well under that are sent, and
/// how many more there are (import --dry-run lists them all).
fn violation_details(violations: Vec<FieldError>) -> ErrorDetails {
    let mut details = ErrorDetails::new();
    let mut bytes = 0;
    let total = violations.len();
    let mut sent = 0;
    for v in violations {
        bytes += v.field.len() + v.reason.len() + 8;
        if bytes > MAX_DETAIL_BYTES {
            break;
        }
        details.add_bad_request_violation(v.field, v.reason);
        sent += 1;
    }
    if sent < total {
        let more = format!("{} more problem(s) not listed here; `credit-tender import --dry-run` lists every one", total - sent);
        details.add_bad_request_violation("…", more);
    }
    details
}

/// What a client is told to wait before retrying a write the store was too
/// busy to take (google.rpc.RetryInfo, and grpc-retry-pushback-ms for gRPC
/// clients with a retry policy).
pub const BUSY_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// The answer to a write that waited its whole bound behind another
/// process's write (an import): the store is there, only busy.
fn busy_status(why: &str) -> Status {
    tracing::warn!(%why, "credit store busy: another process holds its write lock");
    with_retry(Code::Unavailable, "the credit store is busy (another process is writing); retry".into(), BUSY_RETRY_AFTER)
}

/// What a client is told to wait before retrying a request the store could
/// not be reached for: the store's probe runs every quarter of
/// `--store-timeout-ms`, so a second is about when a store back from a
/// restart has been seen again.
pub const UNREACHABLE_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// The answer to a request that needs a store that cannot be reached: at
/// once while it is known to be down, within `--store-timeout-ms` when it
/// went down during the request. Nothing new is stored or issued (a write
/// cut off in flight may have committed; its retry is idempotent).
fn unreachable_status() -> Status {
    let message = "the credit store cannot be reached; no credit answer can be given; retry";
    with_retry(Code::Unavailable, message.into(), UNREACHABLE_RETRY_AFTER)
}

/// The answer to a write refused in this server's own write queue
/// ([`StoreError::Queued`]): RESOURCE_EXHAUSTED, as the admission layer
/// answers overload, with the same retry hint as a busy store. (Logged
/// where the store refuses it; counted by [`count_refusal`].)
fn queued_status(why: &str) -> Status {
    retry_status(Code::ResourceExhausted, &format!("the server is overloaded with writes: {why}"), BUSY_RETRY_AFTER)
}

/// The answer to a caller whose share of a bounded resource is in use
/// ([`ApiError::Limit`]): RESOURCE_EXHAUSTED with the busy retry hint.
fn limit_status(why: &str) -> Status {
    retry_status(Code::ResourceExhausted, why, BUSY_RETRY_AFTER)
}

/// A gRPC refusal the client should retry after `wait`: `why`, then
/// "; retry after N ms", a `google.rpc.RetryInfo` detail saying `wait`
/// (which the Connect door passes on as the error's detail) and the
/// `grpc-retry-pushback-ms` trailer (gRPC's retry policy reads it), both
/// naming the same N (at least 1). The one retry hint of every layer: the
/// handlers', the admission's and the gate's.
pub fn retry_status(code: Code, why: &str, wait: std::time::Duration) -> Status {
    let ms = wait.as_millis().max(1);
    with_retry(code, format!("{why}; retry after {ms} ms"), std::time::Duration::from_millis(ms as u64))
}

/// `message` (bounded) with RetryInfo and the pushback naming `wait`.
fn with_retry(code: Code, message: String, wait: std::time::Duration) -> Status {
    let mut details = ErrorDetails::new();
    details.set_retry_info(Some(wait));
    let mut status = Status::with_error_details(code, bounded(message, MAX_MESSAGE_BYTES), details);
    if let Ok(v) = wait.as_millis().to_string().parse() {
        status.metadata_mut().insert("grpc-retry-pushback-ms", v);
    }
    status
}

/// Counts a write refused in this server's own queue in
/// `credit_tender_access_denials_total{reason="write_queue"}`; other errors pass.
pub(crate) fn count_refusal(metrics: &crate::metrics::Metrics, e: StoreError) -> StoreError {
    if matches!(e, StoreError::Queued(_)) {
        metrics.denied("write_queue");
    }
    e
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Status {
        match e {
            ApiError::Invalid(violations) => {
                let violations: Vec<FieldError> = violations
                    .into_iter()
                    .map(|v| FieldError { field: bounded(v.field, MAX_FIELD_BYTES), reason: bounded(v.reason, MAX_REASON_BYTES) })
                    .collect();
                let message = bounded(format!("invalid request: {}", summary(&violations)), MAX_MESSAGE_BYTES);
                Status::with_error_details(Code::InvalidArgument, message, violation_details(violations))
            }
            ApiError::Shared(e) => match &*e {
                ApiError::Invalid(v) => ApiError::Invalid(v.clone()).into(),
                ApiError::NotFound(s) => Status::not_found(bounded(s.clone(), MAX_MESSAGE_BYTES)),
                ApiError::Precondition(s) => Status::failed_precondition(bounded(s.clone(), MAX_MESSAGE_BYTES)),
                ApiError::NotLogged(s) => ApiError::NotLogged(s.clone()).into(),
                ApiError::Unavailable(s) => ApiError::Unavailable(s.clone()).into(),
                ApiError::TooStale(s) => ApiError::TooStale(s.clone()).into(),
                ApiError::Store(StoreError::Unavailable(s)) => ApiError::Unavailable(s.to_string()).into(),
                ApiError::Store(StoreError::Lost(s)) => ApiError::Store(StoreError::Lost(s.clone())).into(),
                ApiError::Store(StoreError::Busy(s)) => busy_status(s),
                ApiError::Store(StoreError::Queued(s)) => queued_status(s),
                other => {
                    tracing::error!(error = %other, "internal error");
                    Status::internal("internal error")
                }
            },
            ApiError::NotFound(what) => Status::not_found(bounded(what, MAX_MESSAGE_BYTES)),
            ApiError::Precondition(why) => Status::failed_precondition(bounded(why, MAX_MESSAGE_BYTES)),
            ApiError::Unauthenticated(why) => Status::unauthenticated(bounded(why, MAX_MESSAGE_BYTES)),
            ApiError::Denied(why) => Status::permission_denied(bounded(why, MAX_MESSAGE_BYTES)),
            ApiError::NotLogged(why) => Status::unavailable(format!(
                "the statement could not be recorded in the transparency log ({why}); no statement is given out unrecorded"
            )),
            ApiError::Unavailable(cause) => {
                tracing::warn!(%cause, "store unavailable");
                unreachable_status()
            }
            ApiError::TooStale(why) => {
                tracing::warn!(reason = %why, "refusing to answer from stale data");
                Status::unavailable(bounded(format!("{why}; no credit answer can be given"), MAX_MESSAGE_BYTES))
            }
            ApiError::Internal(what) => {
                tracing::error!(error = %what, "internal error");
                Status::internal("internal error")
            }
            ApiError::Store(e @ (StoreError::TenderExists(_) | StoreError::TenderIdTaken(_))) => {
                Status::already_exists(bounded(e.to_string(), MAX_MESSAGE_BYTES))
            }
            ApiError::Store(e @ StoreError::UnknownTender(_)) => Status::not_found(bounded(e.to_string(), MAX_MESSAGE_BYTES)),
            ApiError::Store(StoreError::Rejected(problems)) => {
                let violations = problems.into_iter().map(|(i, v)| v.within(&format!("records[{i}]"))).collect();
                ApiError::Invalid(violations).into()
            }
            ApiError::Store(StoreError::FutureVersion { requested, current }) => {
                ApiError::field("data_version", format!("{requested} is ahead of the store's current data version {current}")).into()
            }
            ApiError::Store(StoreError::NotOwner(problems)) => {
                let violations: Vec<FieldError> = problems.into_iter().map(|(i, v)| v.within(&format!("records[{i}]"))).collect();
                let message = summary(&violations);
                Status::with_error_details(Code::PermissionDenied, message, violation_details(violations))
            }
            ApiError::Store(StoreError::Busy(why)) => busy_status(&why),
            ApiError::Store(StoreError::Queued(why)) => queued_status(&why),
            ApiError::Limit(why) => limit_status(&why),
            ApiError::Store(StoreError::Lost(why)) => {
                tracing::error!(%why, "the credit store is lost; refusing");
                Status::unavailable(format!("the credit store is lost ({why}); nothing was stored"))
            }
            ApiError::Store(e @ StoreError::Unavailable(_)) => {
                tracing::warn!(error = %e, cause = ?std::error::Error::source(&e), "store unavailable");
                unreachable_status()
            }
            ApiError::Store(e) => {
                tracing::error!(error = %e, cause = ?std::error::Error::source(&e), "store failure");
                Status::internal("internal store error")
            }
        }
    }
}

/// The one answer for a tender id the caller may not see, whether it
/// exists out of the caller's scope or not at all: the same code and the
/// same bytes, so that no answer tells which ids exist.
pub(crate) fn no_tender(id: &str) -> ApiError {
    ApiError::NotFound(format!("no tender '{id}'"))
}
