//! The change window: which credit codes changed after which data version,
//! bounded, so that an entry read at version `v` can be told stale.

use crate::domain::CreditCode;
use std::collections::{HashMap, VecDeque};

/// Recent changes, for telling whether an entry read at version `v` is stale.
///
/// Codes are kept as 64-bit hashes (16 bytes per change instead of ~150):
/// a collision only makes an unchanged code look changed, which costs one
/// reload and never serves stale data.
pub(super) struct ChangeWindow {
    /// Changes are known for versions above `floor`.
    floor: u64,
    log: VecDeque<(u64, u64)>,
    last: HashMap<u64, u64>,
    capacity: usize,
    hasher: std::collections::hash_map::RandomState,
}

impl ChangeWindow {
    pub(super) fn new(floor: u64, capacity: usize) -> ChangeWindow {
        ChangeWindow { floor, log: VecDeque::new(), last: HashMap::new(), capacity: capacity.max(1), hasher: Default::default() }
    }

    fn key(&self, code: &CreditCode) -> u64 {
        std::hash::BuildHasher::hash_one(&self.hasher, code)
    }

    pub(super) fn record(&mut self, version: u64, code: &CreditCode) {
        let key = self.key(code);
        self.last.insert(key, version);
        self.log.push_back((version, key));
        while self.log.len() > self.capacity {
            if let Some((v, k)) = self.log.pop_front() {
                self.floor = self.floor.max(v);
                if self.last.get(&k) == Some(&v) {
                    self.last.remove(&k);
                }
            }
        }
        if self.log.capacity() > 2 * self.capacity {
            self.log.shrink_to(self.capacity);
        }
    }

    /// Every entry read before `version` counts as changed.
    pub(super) fn forget_before(&mut self, version: u64) {
        self.floor = self.floor.max(version);
        self.log = VecDeque::new();
        self.last = HashMap::new();
    }

    pub(super) fn changed_since(&self, code: &CreditCode, read_at: u64) -> bool {
        read_at < self.floor || self.last.get(&self.key(code)).is_some_and(|v| *v > read_at)
    }
}
