//! The principals file: who may call, how each proves it, and the limits per role.
//!
//! ```toml
//! [limits.platform]                 # per role; these are the defaults
//! requests_per_second = 200
//! burst = 400
//! concurrent = 32
//!
//! [[principal]]
//! name = "gd-platform"
//! role = "platform"
//! regions = ["440000"]              # GB/T 2260 codes; a province covers its cities
//! token_sha256 = "…"                # printed by `credit-tender token create`
//!
//! [[principal]]
//! name = "sx-provider"
//! role = "provider"
//! issuers = ["140000"]              # "national" or province codes
//! authorities = ["山西省交通运输厅"]
//! certificate_subject = "CN=sx-provider"   # or a client certificate
//! ```
//!
//! Only a SHA-256 of each token is kept; tokens are compared by that hash in
//! constant time. A malformed file is refused with the line and the reason,
//! and the principals in use stay as they were.

use super::{Principal, Role, Scope};
use crate::domain::{Issuer, RegionCode};
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use subtle::ConstantTimeEq;

/// Rate and concurrency limits for the principals of one role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Sustained requests per second per principal; over it a request is
    /// refused at once as exhausted, with the wait as its retry-after.
    pub requests_per_second: u32,
    /// Requests a principal may make at once above the sustained rate (the
    /// token bucket's size).
    pub burst: u32,
    /// Requests a principal may have in flight at once; one more is refused
    /// at once rather than queued.
    pub concurrent: u32,
}

impl Limits {
    fn default_for(role: Role) -> Limits {
        match role {
            Role::Provider => Limits { requests_per_second: 50, burst: 100, concurrent: 8 },
            Role::Platform => Limits { requests_per_second: 200, burst: 400, concurrent: 32 },
            Role::Committee => Limits { requests_per_second: 20, burst: 60, concurrent: 8 },
            Role::Supervisor => Limits { requests_per_second: 100, burst: 200, concurrent: 16 },
        }
    }
}

/// How a principal proves who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Credentials {
    token_sha256: Option<[u8; 32]>,
    certificate_subject: Option<String>,
}

/// One principal's share of the server: its request rate and the requests
/// it may have in flight, made when the file is read (a reload starts them afresh).
pub struct Admission {
    /// The limits the two below were made from, for refusal messages.
    pub limits: Limits,
    /// A token bucket of `requests_per_second` refilled, `burst` deep: one
    /// per principal, not per connection, so opening more connections buys
    /// no more rate.
    pub rate: governor::DefaultDirectRateLimiter,
    /// `concurrent` permits; a request holds one until the service returns
    /// its response, and a request that finds none is refused (never queued).
    pub in_flight: Arc<tokio::sync::Semaphore>,
}

impl Admission {
    /// A fresh share for `limits`; a rate or burst of 0 counts as 1, a
    /// `concurrent` of 0 refuses every request.
    pub fn new(limits: Limits) -> Arc<Admission> {
        let per_second = std::num::NonZeroU32::new(limits.requests_per_second).unwrap_or(std::num::NonZeroU32::MIN);
        let burst = std::num::NonZeroU32::new(limits.burst).unwrap_or(std::num::NonZeroU32::MIN);
        Arc::new(Admission {
            limits,
            rate: governor::RateLimiter::direct(governor::Quota::per_second(per_second).allow_burst(burst)),
            in_flight: Arc::new(tokio::sync::Semaphore::new(limits.concurrent as usize)),
        })
    }
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission").field("limits", &self.limits).finish_non_exhaustive()
    }
}

/// A principal as the gate finds it: who, and its admission.
pub type Found = (Arc<Principal>, Arc<Admission>);

/// The principals of one file version.
#[derive(Debug, Default)]
pub struct Principals {
    entries: Vec<(Arc<Principal>, Credentials, Arc<Admission>)>,
    limits: BTreeMap<Role, Limits>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    limits: BTreeMap<String, Limits>,
    #[serde(default)]
    principal: Vec<toml::Spanned<Entry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    role: String,
    #[serde(default)]
    regions: Vec<String>,
    #[serde(default)]
    issuers: Vec<String>,
    #[serde(default)]
    authorities: Vec<String>,
    #[serde(default)]
    commitments: bool,
    token_sha256: Option<String>,
    certificate_subject: Option<String>,
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|b| *b == b'\n').count() + 1
}

impl Principals {
    /// Parses a principals file; an error says "line N: reason".
    pub fn from_toml(text: &str) -> Result<Principals, String> {
        let file: File = toml::from_str(text).map_err(|e| match e.span() {
            Some(span) => format!("line {}: {}", line_of(text, span.start), e.message()),
            None => e.message().to_owned(),
        })?;
        let mut limits = BTreeMap::new();
        for role in Role::ALL {
            limits.insert(*role, Limits::default_for(*role));
        }
        for (name, l) in file.limits {
            let role = Role::parse(&name).ok_or_else(|| format!("limits.{name}: unknown role, expected one of: {}", Role::expected()))?;
            if l.requests_per_second == 0 || l.burst == 0 || l.concurrent == 0 {
                return Err(format!("limits.{name}: every limit must be positive"));
            }
            limits.insert(role, l);
        }
        let mut names = HashSet::new();
        let mut tokens = HashSet::new();
        let mut entries = Vec::new();
        for spanned in file.principal {
            let line = line_of(text, spanned.span().start);
            let entry = spanned.into_inner();
            let (principal, credentials) = entry_to_principal(entry).map_err(|e| format!("line {line}: {e}"))?;
            if !names.insert(principal.name.clone()) {
                return Err(format!("line {line}: name '{}' is used by an earlier principal", principal.name));
            }
            if let Some(t) = credentials.token_sha256
                && !tokens.insert(t)
            {
                return Err(format!("line {line}: principal '{}' has the same token as an earlier principal", principal.name));
            }
            let admission = Admission::new(limits[&principal.role]);
            entries.push((Arc::new(principal), credentials, admission));
        }
        Ok(Principals { entries, limits })
    }

    /// The principal whose token this is, comparing SHA-256 digests in constant time.
    pub fn by_token(&self, token: &str) -> Option<Found> {
        let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        let mut found = None;
        for (p, c, a) in &self.entries {
            if let Some(want) = &c.token_sha256
                && bool::from(want.as_slice().ct_eq(digest.as_ref()))
            {
                found = Some((p.clone(), a.clone()));
            }
        }
        found
    }

    /// The principal a client certificate's subject maps to.
    pub fn by_certificate_subject(&self, subject: &str) -> Option<Found> {
        self.entries.iter().find(|(_, c, _)| c.certificate_subject.as_deref() == Some(subject)).map(|(p, _, a)| (p.clone(), a.clone()))
    }

    /// The limits for `role`: the file's `[limits.ROLE]`, else the default.
    pub fn limits(&self, role: Role) -> Limits {
        self.limits.get(&role).copied().unwrap_or_else(|| Limits::default_for(role))
    }

    /// How many principals the file lists.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the file lists none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn entry_to_principal(e: Entry) -> Result<(Principal, Credentials), String> {
    let name = e.name.trim().to_owned();
    if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Err("name: must be 1-64 characters of a-z, 0-9, '-', '_' and '.'".into());
    }
    let role = Role::parse(&e.role).ok_or_else(|| format!("role: unknown role '{}', expected one of: {}", e.role, Role::expected()))?;
    let scope = match role {
        Role::Provider => {
            let issuers = e
                .issuers
                .iter()
                .map(|s| Issuer::parse(s).map_err(|err| format!("issuers: '{s}': {err}")))
                .collect::<Result<Vec<_>, _>>()?;
            if issuers.is_empty() && e.authorities.is_empty() && !e.commitments {
                return Err("a provider needs a scope: issuers, authorities or commitments = true".into());
            }
            Scope::Provider { issuers, authorities: e.authorities, commitments: e.commitments }
        }
        Role::Platform => {
            let regions = e
                .regions
                .iter()
                .map(|s| RegionCode::parse(s).map_err(|err| format!("regions: '{s}' is not a region code: {err}")))
                .collect::<Result<Vec<_>, _>>()?;
            if regions.is_empty() {
                return Err("regions: a platform needs at least one region code".into());
            }
            Scope::Platform { regions }
        }
        Role::Supervisor => Scope::Supervisor,
        Role::Committee => {
            return Err("role: committee members are not listed here; the platform grants them access per tender".into());
        }
    };
    let token_sha256 = e
        .token_sha256
        .map(|h| {
            let bytes = hex::decode(h.trim()).map_err(|_| "token_sha256: must be 64 hex digits".to_owned())?;
            <[u8; 32]>::try_from(bytes).map_err(|_| "token_sha256: must be 64 hex digits".to_owned())
        })
        .transpose()?;
    let certificate_subject = e.certificate_subject.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    if token_sha256.is_none() && certificate_subject.is_none() {
        return Err(format!("principal '{name}' has neither token_sha256 nor certificate_subject"));
    }
    Ok((Principal { name, role, scope }, Credentials { token_sha256, certificate_subject }))
}

/// A fresh 256-bit bearer token and its SHA-256 (hex), for `token create`.
pub fn new_token() -> (String, String) {
    use base64::Engine;
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut bytes).expect("the system random source works");
    let token = format!("ct_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes));
    let digest = hex::encode(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()));
    (token, digest)
}

/// The principals in use, and the file they came from; reloaded on SIGHUP.
#[derive(Debug)]
pub struct SharedPrincipals {
    current: RwLock<Arc<Principals>>,
    path: Option<PathBuf>,
}

impl SharedPrincipals {
    /// Reads the file (refused with "PATH: line N: reason").
    pub fn load(path: &Path) -> Result<SharedPrincipals, String> {
        let p = read(path)?;
        Ok(SharedPrincipals { current: RwLock::new(Arc::new(p)), path: Some(path.to_owned()) })
    }

    /// Principals given in code (tests).
    pub fn fixed(p: Principals) -> SharedPrincipals {
        SharedPrincipals { current: RwLock::new(Arc::new(p)), path: None }
    }

    /// The principals in use now; a reload does not change a set already got.
    pub fn get(&self) -> Arc<Principals> {
        self.current.read().expect("principals lock").clone()
    }

    /// Reads the file again; on error the principals in use stay.
    pub fn reload(&self) -> Result<usize, String> {
        let Some(path) = &self.path else { return Ok(self.get().len()) };
        let p = read(path)?;
        let n = p.len();
        *self.current.write().expect("principals lock") = Arc::new(p);
        Ok(n)
    }
}

fn read(path: &Path) -> Result<Principals, String> {
    let text = crate::rules::read_text(path).map_err(|e| format!("{}: cannot read: {}", path.display(), crate::import::io_reason(&e)))?;
    Principals::from_toml(&text).map_err(|e| format!("{}: {e}", path.display()))
}
