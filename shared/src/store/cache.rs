//! A short-lived, per-process cache of configuration items (the tier ladder, multiplier windows,
//! check-in campaigns). Every ledger decision needs them; reading them on every request would put
//! the whole product behind one item, and one item serves at most 3,000 strongly consistent reads
//! a second. A warm Lambda re-reads them after `CONFIG_CACHE_SECONDS` (default 30), so an admin's
//! change takes effect within that time; the process that made the change sees it at once.
//!
//! Correctness never rests on the cache: what must be exact (the seat count of a capped tier) is
//! written with a version condition, and a retry after a lost race reads fresh.
//!
//! The cache holds at most [`MAX_ENTRIES`] items. Members choose some of the ids that are looked up
//! (`GET /v1/checkins?campaign_id=…`), so absence is cached too but never grows process memory: a
//! full cache drops expired entries first, then remembered absences, then the oldest entry.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Item, Key};

/// Items one process caches at most.
pub(crate) const MAX_ENTRIES: usize = 256;

#[derive(Debug)]
pub(crate) struct ConfigCache {
    ttl: Duration,
    items: Mutex<Entries>,
}

/// The cached items with when they were read; `next` numbers the puts (oldest = smallest).
#[derive(Debug, Default)]
struct Entries {
    map: HashMap<Key, Entry>,
    next: u64,
}

#[derive(Debug)]
struct Entry {
    at: Instant,
    order: u64,
    item: Option<Item>,
}

impl ConfigCache {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            items: Mutex::new(Entries::default()),
        }
    }

    /// Configuration items are the ones admins write: `CONFIG/*` and `*/CONFIG`.
    pub(crate) fn is_config(key: &Key) -> bool {
        key.pk == "CONFIG" || key.sk == "CONFIG"
    }

    fn items(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.items.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The cached item (`Some(None)`: known to be absent), if read within the TTL.
    pub(crate) fn get(&self, key: &Key) -> Option<Option<Item>> {
        let items = self.items();
        items
            .map
            .get(key)
            .filter(|e| e.at.elapsed() < self.ttl)
            .map(|e| e.item.clone())
    }

    pub(crate) fn put(&self, key: Key, item: Option<Item>) {
        if self.ttl.is_zero() {
            return;
        }
        let mut items = self.items();
        let Entries { map, next } = &mut *items;
        if map.len() >= MAX_ENTRIES && !map.contains_key(&key) {
            map.retain(|_, e| e.at.elapsed() < self.ttl);
        }
        if map.len() >= MAX_ENTRIES && !map.contains_key(&key) {
            // An absence first (the kind member input creates), else the oldest entry.
            let victim = map
                .iter()
                .min_by_key(|(_, e)| (e.item.is_some(), e.order))
                .map(|(k, _)| k.clone());
            if let Some(victim) = victim {
                map.remove(&victim);
            }
        }
        *next += 1;
        let entry = Entry {
            at: Instant::now(),
            order: *next,
            item,
        };
        map.insert(key, entry);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.items().map.len()
    }

    /// How long an item is served from the cache.
    pub(crate) fn ttl(&self) -> Duration {
        self.ttl
    }

    pub(crate) fn forget(&self, key: &Key) {
        self.items().map.remove(key);
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

    #[test]
    fn member_chosen_ids_never_grow_the_cache_past_its_bound() {
        let cache = ConfigCache::new(Duration::from_secs(60));
        let present = Item::from([(
            "x".to_owned(),
            aws_sdk_dynamodb::types::AttributeValue::N("1".into()),
        )]);
        cache.put(keys::tiers(), Some(present.clone()));
        for i in 0..10 * MAX_ENTRIES {
            cache.put(keys::campaign(&format!("random-{i}")), None);
            assert!(
                cache.len() <= MAX_ENTRIES,
                "{} entries after {i} puts",
                cache.len()
            );
        }
        assert_eq!(cache.len(), MAX_ENTRIES);
        assert_eq!(
            cache.get(&keys::tiers()),
            Some(Some(present)),
            "absences go first: a flood of unknown ids does not evict what exists"
        );
        assert_eq!(
            cache.get(&keys::campaign("random-0")),
            None,
            "the oldest absence went"
        );
        assert!(
            cache
                .get(&keys::campaign(&format!("random-{}", 10 * MAX_ENTRIES - 1)))
                .is_some()
        );
    }

    #[test]
    fn a_full_cache_of_present_items_drops_the_oldest() {
        let cache = ConfigCache::new(Duration::from_secs(60));
        let item = Item::new();
        for i in 0..=MAX_ENTRIES {
            cache.put(keys::campaign(&format!("c{i}")), Some(item.clone()));
        }
        assert_eq!(cache.len(), MAX_ENTRIES);
        assert_eq!(cache.get(&keys::campaign("c0")), None);
        assert!(cache.get(&keys::campaign("c1")).is_some());
        // Replacing an entry that is there never evicts another.
        cache.put(keys::campaign("c1"), None);
        assert_eq!(cache.len(), MAX_ENTRIES);
        assert!(cache.get(&keys::campaign("c2")).is_some());
    }
}
