//! The risk policies a server offers: the shipped ones, and `*.toml` in the
//! `risk/` folder of the operator's policies directory (a file there with a
//! shipped id replaces it). Each version a statement names is kept in the
//! store with the tender policies when first used.

use super::risk::RiskPolicy;
use crate::rules::ConfigError;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Risk policies shipped in `policies/risk/`, compiled in: (file name, text).
pub const SHIPPED_RISK_POLICIES: &[(&str, &str)] =
    &[("policies/risk/transport-risk-classes.toml", include_str!("../../policies/risk/transport-risk-classes.toml"))];

/// Current risk policies by id.
pub struct RiskPolicySet {
    current: BTreeMap<String, Arc<RiskPolicy>>,
}

impl RiskPolicySet {
    /// The shipped policies, then `dir`'s `*.toml` (sorted by name); two
    /// files of one id in `dir` are refused.
    pub fn load(dir: Option<&Path>) -> Result<RiskPolicySet, ConfigError> {
        let mut files: Vec<(PathBuf, String, bool)> =
            SHIPPED_RISK_POLICIES.iter().map(|(name, text)| (PathBuf::from(name), (*text).to_owned(), true)).collect();
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
                files.push((p, text, false));
            }
        }
        let mut current = BTreeMap::new();
        let mut from_dir: BTreeMap<String, PathBuf> = BTreeMap::new();
        for (path, text, shipped) in files {
            let policy = RiskPolicy::from_toml(&text).map_err(|reason| ConfigError::Invalid { path: path.clone(), reason })?;
            if !shipped {
                if let Some(first) = from_dir.get(&policy.id) {
                    return Err(ConfigError::Invalid {
                        path,
                        reason: format!("id: '{}' is already defined by {}", policy.id, first.display()),
                    });
                }
                from_dir.insert(policy.id.clone(), path);
            }
            current.insert(policy.id.clone(), Arc::new(policy));
        }
        Ok(RiskPolicySet { current })
    }

    /// The risk policy with this id as loaded now, if there is one.
    pub fn current(&self, id: &str) -> Option<Arc<RiskPolicy>> {
        self.current.get(id).cloned()
    }

    /// The ids offered, sorted, for error messages that list them.
    pub fn ids(&self) -> Vec<&str> {
        self.current.keys().map(String::as_str).collect()
    }

    /// Every grade policy the risk policies name, for a check at start-up.
    pub fn grade_policies(&self) -> impl Iterator<Item = (&str, &str)> {
        self.current.values().map(|p| (p.id.as_str(), p.grade_policy.as_str()))
    }
}
