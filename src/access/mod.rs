//! Who is calling and what they may do.
//!
//! [`decide`] is a pure function of (caller, action, resource): the service
//! edge asks it before acting, so the role table below is testable on its
//! own. It knows nothing of tokens, certificates or cookies; [`principals`]
//! turns those into a [`Caller`].
//!
//! | role | may |
//! | --- | --- |
//! | provider | PutRecords for records whose issuer (evaluations) or authority (list entries, penalties) is in its scope, commitments if its scope says so, events on such records; GetProfile of codes it has written |
//! | platform | RegisterTender, AmendTender, RegisterBid, GetTender, ListTenders, Assess, AssessTender, WatchTender, CheckDeposit and GrantCommitteeAccess on tenders in its regions |
//! | committee | its one tender's page and statements, until the grant expires |
//! | supervisor | read everything: profiles, tenders, statements, metrics, the log's entries; classify firms, draw inspections, read outcomes |
//! | anyone | health, ListKeys, reflection, the page's assets; the log's checkpoints, proofs and hash tiles |
//!
//! A tender outside a caller's scope is "not found", never "forbidden", so
//! ids are not revealed: the service first asks what the caller's role
//! allows on tenders at all ([`Resource::AnyTender`], before any lookup),
//! and only then about the tender found, whose answer is then either allow
//! or the very "not found" an unknown id gets. Moving one's own tender out
//! of one's regions, or registering one there, is refused naming the rule
//! ([`Resource::Placement`]): it concerns a place, not another's tender.

pub mod principals;

use crate::domain::ownership::Writer;
use crate::domain::records::Record;
use crate::domain::vocab::vocabulary;
use crate::domain::{CreditCode, Issuer, RegionCode, TenderId};
use chrono::{DateTime, Utc};
use std::sync::Arc;

vocabulary! {
    /// What a principal is.
    Role {
        /// Writes credit records for its issuers and authorities.
        Provider => "provider",
        /// A tendering platform: runs tenders in its regions.
        Platform => "platform",
        /// A bid evaluation committee member, through a grant for one tender.
        Committee => "committee",
        /// Reads everything and runs supervision (classes, draws, outcomes).
        Supervisor => "supervisor",
    }
}

/// What a principal may act on, by role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Issuers of evaluations and authorities of list entries and penalties it writes for.
    Provider {
        /// Issuers (national or a province) whose evaluations it writes.
        issuers: Vec<Issuer>,
        /// Authorities whose list entries and penalties it writes, by name.
        authorities: Vec<String>,
        /// Whether it may write commitments (then only its own).
        commitments: bool,
    },
    /// GB/T 2260 regions whose tenders it runs (a province covers its cities and counties).
    Platform {
        /// The regions; a tender is in scope when one of them contains its region.
        regions: Vec<RegionCode>,
    },
    /// One tender until the grant expires.
    Committee {
        /// The tender whose page and statements it may read.
        tender: TenderId,
        /// The grant's expiry; from then on it is answered UNAUTHENTICATED.
        expires_at: DateTime<Utc>,
    },
    /// Every region and tender, for reading and for supervision's signed acts.
    Supervisor,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Unique in the principals file; kept as the source of what it writes.
    pub name: String,
    /// What it is; `scope` is the same kind (a committee member's comes
    /// from its grant, never from the principals file).
    pub role: Role,
    /// What it may act on.
    pub scope: Scope,
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No principals are configured: the server runs for its own host only
    /// (loopback), as the demo does, and every action is allowed.
    Local,
    /// Principals are configured, and the caller proved none.
    Anonymous,
    /// A principal proved by a bearer token, a client certificate or a
    /// committee session.
    Principal(Arc<Principal>),
}

impl Caller {
    /// The name kept with what this caller writes.
    pub fn source(&self) -> Option<&str> {
        match self {
            Caller::Principal(p) => Some(&p.name),
            _ => None,
        }
    }

    /// Who writes records, for the ownership rule
    /// ([`crate::domain::ownership`]): the local operator (keeping the source
    /// the request names), or a provider principal with its scope. `None`
    /// for anyone else, who may not write records at all.
    pub fn writer(&self, requested_source: &str) -> Option<Writer> {
        match self {
            Caller::Local => Some(Writer::operator(requested_source)),
            Caller::Principal(p) => match &p.scope {
                Scope::Provider { issuers, authorities, commitments } => Some(Writer::Provider {
                    name: p.name.clone(),
                    issuers: issuers.clone(),
                    authorities: authorities.clone(),
                    commitments: *commitments,
                }),
                _ => None,
            },
            Caller::Anonymous => None,
        }
    }

    /// For logs: the principal's name, "local" or "anonymous".
    pub fn label(&self) -> &str {
        match self {
            Caller::Local => "local",
            Caller::Anonymous => "anonymous",
            Caller::Principal(p) => &p.name,
        }
    }
}

/// What the caller wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Write credit records (PutRecords).
    PutRecords,
    /// Read one credit code's records (GetProfile).
    GetProfile,
    /// Register a tender (RegisterTender).
    RegisterTender,
    /// Register a new version of a tender (AmendTender).
    AmendTender,
    /// Register a bidder on a tender (RegisterBid).
    RegisterBid,
    /// Read a tender and its bidders (GetTender).
    ReadTender,
    /// List tenders in scope (ListTenders).
    ListTenders,
    /// Assess one bidder under a tender's policy (Assess).
    Assess,
    /// Assess every bidder of a tender (AssessTender).
    AssessTender,
    /// WatchTender: AssessTender's statements as they change (no committee).
    WatchTender,
    /// Check a bidder's deposit against its credit (CheckDeposit).
    CheckDeposit,
    /// Grant a committee member one tender's page (GrantCommitteeAccess).
    GrantCommitteeAccess,
    /// Open the committee page of a tender and its statements.
    ViewCommitteePage,
    /// Read the Prometheus metrics.
    ReadMetrics,
    /// Checkpoints, inclusion and consistency proofs, hash tiles: hashes
    /// only, for anyone who holds a statement to check it was logged.
    ReadLogProofs,
    /// The log's entries: every statement of every tender (supervisors).
    ReadLogEntries,
    /// A firm's signed credit-risk class (supervisors).
    ClassifyFirm,
    /// A signed, logged inspection draw (supervisors).
    DrawInspection,
    /// What credit changed in tendering, for regions (supervisors; platforms
    /// for their own regions).
    ReadOutcomes,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::PutRecords => "PutRecords",
            Action::GetProfile => "GetProfile",
            Action::RegisterTender => "RegisterTender",
            Action::AmendTender => "AmendTender",
            Action::RegisterBid => "RegisterBid",
            Action::ReadTender => "GetTender",
            Action::ListTenders => "ListTenders",
            Action::Assess => "Assess",
            Action::AssessTender => "AssessTender",
            Action::WatchTender => "WatchTender",
            Action::CheckDeposit => "CheckDeposit",
            Action::GrantCommitteeAccess => "GrantCommitteeAccess",
            Action::ViewCommitteePage => "the committee page",
            Action::ReadMetrics => "metrics",
            Action::ReadLogProofs => "the log's checkpoints and proofs",
            Action::ReadLogEntries => "the log's entries",
            Action::ClassifyFirm => "ClassifyFirm",
            Action::DrawInspection => "DrawInspection",
            Action::ReadOutcomes => "GetOutcomes",
        }
    }
}

/// What the action is on.
#[derive(Debug, Clone, Copy)]
pub enum Resource<'a> {
    /// Nothing in particular (ListTenders: filtered per tender afterwards).
    Service,
    /// Some tender, before it is looked up: what the caller's role allows
    /// on tenders at all. Asked first, so that a refusal cannot depend on
    /// which tender ids exist.
    AnyTender,
    /// A tender, by id and region (its newest version's).
    Tender {
        /// The tender's id.
        id: &'a TenderId,
        /// Its newest version's region.
        region: RegionCode,
    },
    /// Where a tender is to be after a registration or an amendment.
    Placement {
        /// The tender's id.
        id: &'a TenderId,
        /// The region it is to be in.
        region: RegionCode,
    },
    /// A batch of records.
    Records(&'a [&'a Record]),
    /// A credit code's profile, and whether the caller has written any of its records.
    Profile {
        /// The firm.
        code: &'a CreditCode,
        /// Whether the caller wrote any record of it (a provider may read only those).
        written_by_caller: bool,
    },
    /// Tenders whose region code starts with these digits ("" is every region).
    RegionPrefix(&'a str),
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// No identity, or one that no longer holds (UNAUTHENTICATED).
    Unauthenticated(String),
    /// A known caller outside its role or scope (PERMISSION_DENIED); the rule in a sentence.
    Deny(String),
    /// A tender the caller may not see: answered as if it did not exist.
    NotFound,
}

/// Whether `caller` may do `action` on `resource` at `now`.
pub fn decide(caller: &Caller, action: Action, resource: Resource<'_>, now: DateTime<Utc>) -> Decision {
    // Hashes only: anyone holding a statement may check it was logged, and an
    // auditor needs no account to follow the log (checkpoints, proofs, hash tiles).
    if action == Action::ReadLogProofs {
        return Decision::Allow;
    }
    let p = match caller {
        Caller::Local => return Decision::Allow,
        Caller::Anonymous => {
            return Decision::Unauthenticated(format!("{} needs a caller identity: a bearer token or a client certificate", action.name()));
        }
        Caller::Principal(p) => p,
    };
    let denied = || Decision::Deny(format!("{} '{}' may not call {}", p.role, p.name, action.name()));
    match (&p.scope, action) {
        (Scope::Supervisor, a) if is_read(a) => Decision::Allow,
        // Supervision's own acts: each is signed and logged, never a write to credit data.
        (Scope::Supervisor, Action::ClassifyFirm | Action::DrawInspection | Action::ReadOutcomes) => Decision::Allow,
        (Scope::Supervisor, _) => Decision::Deny(format!("supervisor '{}' reads only; {} writes", p.name, action.name())),
        (Scope::Provider { .. }, Action::PutRecords) => provider_records(p, resource),
        (Scope::Provider { .. }, Action::GetProfile) => match resource {
            Resource::Profile { written_by_caller: true, .. } => Decision::Allow,
            Resource::Profile { code, .. } => {
                Decision::Deny(format!("provider '{}' reads only the profiles of codes it has written, not {code}", p.name))
            }
            _ => denied(),
        },
        (Scope::Provider { .. }, _) => denied(),
        (Scope::Platform { regions }, a) if platform_action(a) => match resource {
            Resource::AnyTender => Decision::Allow,
            Resource::Tender { region, .. } if regions.iter().any(|r| r.contains(region)) => Decision::Allow,
            // Out of scope and unknown are one answer: the service says "no tender" for both.
            Resource::Tender { .. } => Decision::NotFound,
            Resource::Placement { region, .. } if regions.iter().any(|r| r.contains(region)) => Decision::Allow,
            // The caller's own write, about a place: reveals nothing; say which rule.
            Resource::Placement { id, region } => Decision::Deny(format!(
                "platform '{}' keeps tenders only in its regions ({}): '{id}' may not be placed in {region}",
                p.name,
                regions.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            )),
            Resource::Service if a == Action::ListTenders => Decision::Allow,
            _ => denied(),
        },
        (Scope::Platform { regions }, Action::ReadOutcomes) => match resource {
            Resource::RegionPrefix(prefix) if regions.iter().any(|r| prefix.starts_with(&significant_digits(*r))) => Decision::Allow,
            _ => Decision::Deny(format!(
                "platform '{}' reads outcomes only within its regions ({}): give a region_prefix starting with {}",
                p.name,
                regions.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
                regions.iter().map(|r| format!("'{}'", significant_digits(*r))).collect::<Vec<_>>().join(" or ")
            )),
        },
        (Scope::Platform { .. }, _) => denied(),
        (Scope::Committee { tender, expires_at, .. }, Action::ViewCommitteePage | Action::AssessTender) => {
            if now >= *expires_at {
                return Decision::Unauthenticated(format!("the committee grant for {tender} expired at {expires_at}"));
            }
            match resource {
                Resource::Tender { id, .. } if id == tender => Decision::Allow,
                Resource::Tender { .. } => Decision::NotFound,
                Resource::Service | Resource::AnyTender => Decision::Allow,
                _ => denied(),
            }
        }
        (Scope::Committee { .. }, _) => denied(),
    }
}

/// The digits every code within `r` starts with: a province's two, a
/// city's four, a county's six.
pub fn significant_digits(r: RegionCode) -> String {
    let code = r.to_string();
    let n = if r.is_province() {
        2
    } else if code.ends_with("00") {
        4
    } else {
        6
    };
    code[..n].to_owned()
}

fn is_read(a: Action) -> bool {
    matches!(
        a,
        Action::GetProfile
            | Action::ReadTender
            | Action::ListTenders
            | Action::Assess
            | Action::AssessTender
            | Action::WatchTender
            | Action::CheckDeposit
            | Action::ViewCommitteePage
            | Action::ReadMetrics
            | Action::ReadLogEntries
    )
}

fn platform_action(a: Action) -> bool {
    matches!(
        a,
        Action::RegisterTender
            | Action::AmendTender
            | Action::RegisterBid
            | Action::ReadTender
            | Action::ListTenders
            | Action::Assess
            | Action::AssessTender
            | Action::WatchTender
            | Action::CheckDeposit
            | Action::GrantCommitteeAccess
            | Action::ViewCommitteePage
    )
}

/// Every record must name an owner within the provider's issuers or
/// authorities (commitments: if its scope has them). What needs the stored
/// records (whose an id or an event's target already is: the ownership
/// rule of [`crate::domain::ownership`]) is decided in the store's write
/// path, for every way records come in.
fn provider_records(p: &Principal, resource: Resource<'_>) -> Decision {
    let Scope::Provider { issuers, authorities, commitments } = &p.scope else { unreachable!("checked by the caller") };
    let Resource::Records(records) = resource else {
        return Decision::Deny(format!("provider '{}' may write only records", p.name));
    };
    let within = |r: &Record| match r {
        Record::Evaluation(e) => issuers.contains(&e.issuer),
        Record::ListEntry(l) => authorities.iter().any(|a| a == &l.authority),
        Record::Penalty(x) => authorities.iter().any(|a| a == &x.authority),
        Record::Commitment(_) => *commitments,
        // Its owner is its target's, which the store knows.
        Record::Event(_) => true,
    };
    for (i, record) in records.iter().enumerate() {
        if !within(record) {
            let what = match record {
                Record::Evaluation(e) => format!("an evaluation issued by {}", e.issuer),
                Record::ListEntry(l) => format!("a list entry of authority '{}'", l.authority),
                Record::Penalty(x) => format!("a penalty of authority '{}'", x.authority),
                Record::Commitment(_) => "a commitment".to_owned(),
                Record::Event(_) => unreachable!("events are decided by the store"),
            };
            return Decision::Deny(format!(
                "records[{i}]: provider '{}' may not write {what} ('{}'); its scope is issuers [{}] and authorities [{}]",
                p.name,
                record.id(),
                issuers.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
                authorities.join(", ")
            ));
        }
    }
    Decision::Allow
}

#[cfg(test)]
mod tests;
