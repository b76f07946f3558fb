//! Making room: the CLOCK hand (second chance, an approximation of LRU) that chooses which
//! entries go when a fill would pass a bound, and the periodic sweep of entries past their TTL.
//! Both go round the index's ring of filled entries.

use super::Store;
use super::entry::now_ns;
use super::index::{Index, State};
use std::sync::atomic::Ordering::Relaxed;

impl Store {
    /// Chooses what to evict so that `entries` more entries and `bytes` more bytes fit: the
    /// CLOCK hand goes round the ring; an entry used since the last round is spared once, an
    /// expired one always goes. The victims leave the index here; their entries are for the
    /// caller to remove from the maps.
    pub(super) fn make_room(&self, index: &mut Index, entries: usize, bytes: usize) -> Vec<u64> {
        let mut victims = Vec::new();
        // Two rounds at most: the first clears every "used" bit it passes.
        let mut budget = 2 * index.ring.len() + 1;
        while (index.entries + entries > self.limits.max_entries
            || index.bytes + bytes > self.limits.max_bytes)
            && budget > 0
        {
            budget -= 1;
            let Some((hash, seq)) = index.ring.pop_front() else {
                break;
            };
            if !Self::is_current(index, hash, seq) {
                continue;
            }
            let spare = self.with_entry(hash, |e| {
                e.is_some_and(|e| !e.expired(now_ns()) && e.referenced.swap(false, Relaxed))
            });
            if spare {
                index.ring.push_back((hash, seq));
            } else if Self::unindex(index, hash).is_some() {
                self.evictions.fetch_add(1, Relaxed);
                victims.push(hash);
            }
        }
        self.compact_ring(index);
        victims
    }

    fn is_current(index: &Index, hash: u64, seq: u64) -> bool {
        matches!(
            index.slots.get(&hash).map(|s| &s.state),
            Some(State::Filled { seq: s, .. }) if *s == seq
        )
    }

    /// Drops ring places whose entries are gone once they outnumber the live ones.
    fn compact_ring(&self, index: &mut Index) {
        if index.ring.len() > 2 * index.entries + 64 {
            let ring = std::mem::take(&mut index.ring);
            index.ring = ring
                .into_iter()
                .filter(|&(h, s)| Self::is_current(index, h, s))
                .collect();
        }
    }

    /// Drops up to `budget` expired entries, continuing round the ring from the last call.
    pub fn sweep(&self, budget: usize) -> usize {
        let mut index = self.lock();
        let now = now_ns();
        let mut expired = 0;
        for _ in 0..budget.min(index.ring.len()) {
            let Some((hash, seq)) = index.ring.pop_front() else {
                break;
            };
            if !Self::is_current(&index, hash, seq) {
                continue;
            }
            let gone = self.with_entry(hash, |e| e.is_none_or(|e| e.expired(now)));
            if gone {
                if self.remove_slot(&mut index, hash).is_some() {
                    expired += 1;
                }
            } else {
                index.ring.push_back((hash, seq));
            }
        }
        self.compact_ring(&mut index);
        self.count_removed(&index);
        self.evictions.fetch_add(expired as u64, Relaxed);
        expired
    }
}
