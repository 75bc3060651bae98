//! Who is calling, and whether the access rules let them: every service
//! asks here, so a refusal is logged, counted and said the same way.

use super::error::{ApiError, no_tender};
use crate::access::{Action, Caller, Decision, Resource, decide};

/// The caller the gate identified (anonymous if none did: fail closed).
pub(crate) fn caller<T>(r: &tonic::Request<T>) -> Caller {
    r.extensions().get::<Caller>().cloned().unwrap_or(Caller::Anonymous)
}

/// Asks the access rules, logs the answer with the principal and what it
/// concerned, counts refusals, and turns them into errors: an unseen tender
/// is "not found", never "forbidden". Refusals log at INFO; allowed calls at
/// DEBUG (`RUST_LOG=credit_tender::service=debug` logs every call), so the
/// hot path formats nothing by default.
pub(crate) fn authorize(
    caller: &Caller,
    action: Action,
    resource: Resource<'_>,
    metrics: &crate::metrics::Metrics,
    clock: &crate::clock::Clock,
) -> Result<(), ApiError> {
    let concerns = || match resource {
        Resource::Tender { id, .. } | Resource::Placement { id, .. } => id.to_string(),
        Resource::AnyTender => "a tender".to_owned(),
        Resource::Profile { code, .. } => code.to_string(),
        Resource::Records(r) => format!("{} record(s)", r.len()),
        Resource::RegionPrefix(p) => format!("region prefix '{p}'"),
        Resource::Service => String::new(),
    };
    let (outcome, result) = match decide(caller, action, resource, clock.now()) {
        Decision::Allow => {
            if !matches!(caller, Caller::Local) {
                tracing::debug!(principal = caller.label(), action = ?action, concerns = concerns(), outcome = "allowed", "access");
            }
            return Ok(());
        }
        Decision::Unauthenticated(why) => ("unauthenticated", ApiError::Unauthenticated(why)),
        Decision::Deny(why) => ("permission_denied", ApiError::Denied(why)),
        Decision::NotFound => ("not_found", no_tender(&concerns())),
    };
    metrics.denied(outcome);
    tracing::info!(principal = caller.label(), action = ?action, concerns = concerns(), outcome, "access refused");
    Err(result)
}
