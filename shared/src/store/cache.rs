//! A short-lived, per-process cache of configuration items (the tier ladder, multiplier windows,
//! check-in campaigns). Every ledger decision needs them; reading them on every request would put
//! the whole product behind one item, and one item serves at most 3,000 strongly consistent reads
//! a second. A warm Lambda re-reads them after `CONFIG_CACHE_SECONDS` (default 30), so an admin's
//! change takes effect within that time; the process that made the change sees it at once.
//!
//! Correctness never rests on the cache: what must be exact (the seat count of a capped tier) is
//! written with a version condition, and a retry after a lost race reads fresh.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Item, Key};

#[derive(Debug)]
pub(crate) struct ConfigCache {
    ttl: Duration,
    items: Mutex<HashMap<Key, (Instant, Option<Item>)>>,
}

impl ConfigCache {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            items: Mutex::new(HashMap::new()),
        }
    }

    /// Configuration items are the ones admins write: `CONFIG/*` and `*/CONFIG`.
    pub(crate) fn is_config(key: &Key) -> bool {
        key.pk == "CONFIG" || key.sk == "CONFIG"
    }

    fn items(&self) -> std::sync::MutexGuard<'_, HashMap<Key, (Instant, Option<Item>)>> {
        self.items.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The cached item (`Some(None)`: known to be absent), if read within the TTL.
    pub(crate) fn get(&self, key: &Key) -> Option<Option<Item>> {
        let items = self.items();
        items
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, item)| item.clone())
    }

    pub(crate) fn put(&self, key: Key, item: Option<Item>) {
        if !self.ttl.is_zero() {
            self.items().insert(key, (Instant::now(), item));
        }
    }

    pub(crate) fn forget(&self, key: &Key) {
        self.items().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::keys;

    #[test]
    fn serves_within_the_ttl_and_remembers_absence() {
        let cache = ConfigCache::new(Duration::from_secs(60));
        assert!(ConfigCache::is_config(&keys::tiers()));
        assert!(ConfigCache::is_config(&keys::campaign("daily")));
        assert!(!ConfigCache::is_config(&keys::account(
            &crate::domain::UserId::parse("u").unwrap()
        )));
        assert_eq!(cache.get(&keys::tiers()), None);
        cache.put(keys::tiers(), None);
        assert_eq!(cache.get(&keys::tiers()), Some(None), "absence is cached too");
        cache.forget(&keys::tiers());
        assert_eq!(cache.get(&keys::tiers()), None);
        let off = ConfigCache::new(Duration::ZERO);
        off.put(keys::tiers(), None);
        assert_eq!(off.get(&keys::tiers()), None, "a zero TTL caches nothing");
    }
}
