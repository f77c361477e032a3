//! A cache of rendered instance lists. Listing a user's apps is the API's hottest read, and its
//! body only changes when the store does, so each rendered page is kept with the store's write
//! generation and served again until any write commits.

use crate::locks;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Mutex;

/// Which list: (user id, route, `all`, offset, limit).
pub type ListKey = (u64, &'static str, bool, u64, u64);

/// Bounds memory: when more pages than this are cached, or their bodies would take more than
/// [`MAX_BYTES`], the cache keeps only the current generation's, or starts afresh.
const MAX_ENTRIES: usize = 1024;
const MAX_BYTES: usize = 8 << 20;

#[derive(Default)]
pub struct ListCache {
    // A std Mutex: held for a map lookup or insert only, never across an await.
    entries: Mutex<HashMap<ListKey, (u64, Bytes, u64)>>,
}

impl ListCache {
    /// The cached body and total for `key`, if it was rendered at `generation`.
    pub fn get(&self, key: &ListKey, generation: u64) -> Option<(Bytes, u64)> {
        let entries = locks::lock(&self.entries);
        match entries.get(key) {
            Some((g, body, total)) if *g == generation => Some((body.clone(), *total)),
            _ => None,
        }
    }

    pub fn put(&self, key: ListKey, generation: u64, body: Bytes, total: u64) {
        if body.len() > MAX_BYTES {
            return;
        }
        let mut entries = locks::lock(&self.entries);
        let full = |e: &HashMap<ListKey, (u64, Bytes, u64)>| {
            e.len() >= MAX_ENTRIES
                || e.values().map(|(_, b, _)| b.len()).sum::<usize>() + body.len() > MAX_BYTES
        };
        if full(&entries) {
            entries.retain(|_, (g, ..)| *g == generation);
            if full(&entries) {
                entries.clear();
            }
        }
        entries.insert(key, (generation, body, total));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_served_only_at_the_generation_it_was_rendered_at() {
        let c = ListCache::default();
        let k = (1, "v1", false, 0, 50);
        c.put(k, 7, Bytes::from_static(b"[]"), 0);
        assert!(c.get(&k, 7).is_some());
        assert!(c.get(&k, 8).is_none());
        assert!(c.get(&(2, "v1", false, 0, 50), 7).is_none());
    }

    #[test]
    fn the_bodies_kept_never_add_up_to_more_than_the_byte_bound() {
        let c = ListCache::default();
        let big = Bytes::from(vec![b'x'; 3 << 20]);
        for user in 0..5 {
            c.put((user, "all", false, 0, 0), 1, big.clone(), 0);
            let kept: usize = locks::lock(&c.entries)
                .values()
                .map(|(_, b, _)| b.len())
                .sum();
            assert!(kept <= MAX_BYTES, "{kept}");
            assert!(
                c.get(&(user, "all", false, 0, 0), 1).is_some(),
                "the newest is kept"
            );
        }
        c.put(
            (9, "all", false, 0, 0),
            1,
            Bytes::from(vec![0; MAX_BYTES + 1]),
            0,
        );
        assert!(
            c.get(&(9, "all", false, 0, 0), 1).is_none(),
            "too big to keep"
        );
    }
}
