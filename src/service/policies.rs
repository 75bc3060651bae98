//! The policies a server offers, and every version it has ever bound a tender to.

use super::error::ApiError;
use crate::policy::Policy;
use crate::rules::{ConfigError, SHIPPED_POLICIES};
use crate::store::{Store, StoredPolicy};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// Current policies by id, and any version by digest (loaded from the store
/// when a tender refers to a version no longer on disk).
pub struct PolicySet {
    current: BTreeMap<String, Arc<Policy>>,
    by_digest: RwLock<HashMap<String, Arc<Policy>>>,
    store: Store,
}

impl PolicySet {
    /// Loads the shipped policies and every `*.toml` in `dir`, records each
    /// version in the store, and refuses two files with one id.
    pub async fn load(store: Store, dir: Option<&Path>) -> Result<PolicySet, ConfigError> {
        let mut files: Vec<(PathBuf, String)> =
            SHIPPED_POLICIES.iter().map(|(name, text)| (PathBuf::from(name), (*text).to_owned())).collect();
        if let Some(dir) = dir {
            let read = |source| ConfigError::Read { path: dir.to_owned(), source };
            let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(read)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            paths.sort();
            for p in paths {
                let text = crate::rules::read_text(&p).map_err(|source| ConfigError::Read { path: p.clone(), source })?;
                files.push((p, text));
            }
        }
        let mut current: BTreeMap<String, Arc<Policy>> = BTreeMap::new();
        let mut origin: HashMap<String, PathBuf> = HashMap::new();
        for (path, text) in files {
            let policy = Policy::from_toml(&text).map_err(|reason| ConfigError::Invalid { path: path.clone(), reason })?;
            if let Some(first) = origin.get(&policy.id) {
                // A directory file may replace a shipped policy of the same id.
                if !first.starts_with("policies/") || path.starts_with("policies/") {
                    return Err(ConfigError::Invalid {
                        path,
                        reason: format!("id: '{}' is already defined by {}", policy.id, first.display()),
                    });
                }
            }
            origin.insert(policy.id.clone(), path.clone());
            current.insert(policy.id.clone(), Arc::new(policy));
        }
        for p in current.values() {
            store
                .put_policy(&p.id, &p.digest, &p.source)
                .await
                .map_err(|e| ConfigError::Store { what: format!("policy '{}'", p.id), reason: e.to_string() })?;
        }
        let by_digest = current.values().map(|p| (p.digest.clone(), p.clone())).collect();
        Ok(PolicySet { current, by_digest: RwLock::new(by_digest), store })
    }

    pub fn current(&self, id: &str) -> Option<Arc<Policy>> {
        self.current.get(id).cloned()
    }

    pub fn ids(&self) -> Vec<&str> {
        self.current.keys().map(String::as_str).collect()
    }

    /// The exact policy version a tender is bound to.
    pub async fn by_digest(&self, digest: &str) -> Result<Arc<Policy>, ApiError> {
        if let Some(p) = self.by_digest.read().expect("policy lock").get(digest) {
            return Ok(p.clone());
        }
        let Some(StoredPolicy { policy_id: id, source }) = self.store.policy_source(digest).await? else {
            return Err(ApiError::Internal(format!("policy version {digest} is missing from the store")));
        };
        // A version an earlier release accepted and this one refuses (say,
        // a negative stage figure, refused since points per stage are at
        // least 0): the tender cannot be assessed under its rules as bound,
        // and the platform can do something about it.
        let policy = Policy::from_toml(&source).map_err(|e| {
            tracing::warn!(policy = %id, %digest, error = %e, "a stored policy version no longer parses");
            ApiError::Precondition(format!(
                "the tender is bound to policy '{id}' version {digest}, which this release cannot apply ({e}); \
                 no statement is issued under rules it would apply differently: register the tender again under a \
                 policy this release accepts"
            ))
        })?;
        let policy = Arc::new(policy);
        self.by_digest.write().expect("policy lock").insert(digest.to_owned(), policy.clone());
        Ok(policy)
    }
}
