//! A small per-process cache whose entries expire: what every "read it from Postgres at most
//! every N seconds" in the services uses (token lookups, active sending domains, DKIM keys).
//!
//! Bounded: when full, it is emptied rather than evicting one entry, so a flood of made-up keys
//! (random tokens, sender domains) costs a refill and never unbounded memory. An expired entry
//! stays readable through [`TtlCache::get_stale`] until it is replaced, for callers that can
//! reuse work when a refresh reads the same data again.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::RwLock;
use std::time::{Duration, Instant};

pub struct TtlCache<K, V> {
    ttl: Duration,
    max_entries: usize,
    entries: RwLock<HashMap<K, (Instant, V)>>,
}

impl<K: Hash + Eq, V: Clone> TtlCache<K, V> {
    pub fn new(ttl: Duration, max_entries: usize) -> Self {
        Self {
            ttl,
            max_entries: max_entries.max(1),
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// The value stored for `key` less than the TTL ago.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, v)| v.clone())
    }

    /// The value stored for `key`, however old.
    pub fn get_stale<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries.get(key).map(|(_, v)| v.clone())
    }

    /// Stores `value` for `key`, fresh from now.
    pub fn insert(&self, key: K, value: V) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.max_entries {
            entries.clear();
        }
        entries.insert(key, (Instant::now(), value));
    }

    /// Forgets `key` (the process that changed what it caches).
    pub fn remove<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        entries.remove(key);
    }

    /// Forgets every entry whose value `matches`.
    pub fn remove_where(&self, matches: impl Fn(&V) -> bool) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        entries.retain(|_, (_, v)| !matches(v));
    }

    /// Entries held now, fresh or not.
    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_fresh_for_its_ttl_then_only_stale() {
        let cache = TtlCache::new(Duration::from_millis(50), 10);
        cache.insert("a".to_owned(), 1);
        assert_eq!(cache.get("a"), Some(1));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get("a"), None);
        assert_eq!(cache.get_stale("a"), Some(1));
        cache.insert("a".to_owned(), 2);
        assert_eq!(cache.get("a"), Some(2));
    }

    #[test]
    fn a_full_cache_starts_over_instead_of_growing() {
        let cache = TtlCache::new(Duration::from_secs(60), 3);
        for i in 0..3 {
            cache.insert(i, i);
        }
        assert_eq!(cache.len(), 3);
        cache.insert(3, 3);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get(&3), Some(3));
        assert_eq!(cache.get(&0), None);
    }

    #[test]
    fn entries_can_be_forgotten_by_key_or_by_value() {
        let cache = TtlCache::new(Duration::from_secs(60), 10);
        cache.insert(1, "x");
        cache.insert(2, "y");
        cache.insert(3, "x");
        cache.remove(&2);
        assert_eq!(cache.get(&2), None);
        cache.remove_where(|v| *v == "x");
        assert!(cache.is_empty());
    }
}
